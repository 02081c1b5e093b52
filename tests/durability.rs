//! State that survives the daemon: restarts, corrupt and unreadable files,
//! files from a newer ifad, a second daemon on the same state dir, a host
//! that changed while the daemon was down.

use std::fs;
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::time::Duration;

use ifa_e2e::{Ctl, Daemon, run_ifad};
use serde_json::Value;

fn start(spec: &str, state: &Path) -> Daemon {
    Daemon::start(&[
        &format!("--simulate={spec}"),
        "--state-dir",
        state.to_str().unwrap(),
    ])
}

/// A VM's id, class, state and vCPUs (hart, backing).
type VmShape = (String, String, String, Vec<(u64, String)>);

/// Each VM's shape, for comparing.
fn shape(vms: &Value) -> Vec<VmShape> {
    vms.as_array()
        .unwrap()
        .iter()
        .map(|vm| {
            (
                vm["vm"].as_str().unwrap().to_string(),
                vm["class"].as_str().unwrap().to_string(),
                vm["state"].as_str().unwrap().to_string(),
                vm["vcpus"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| {
                        (
                            v["hart"].as_u64().unwrap(),
                            v["backing"].as_str().unwrap().to_string(),
                        )
                    })
                    .collect(),
            )
        })
        .collect()
}

fn drained(d: &Daemon) -> Vec<u64> {
    d.json("harts")
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| h["drained"] == true)
        .map(|h| h["hart"].as_u64().unwrap())
        .collect()
}

fn over_committed(d: &Daemon) -> Vec<Value> {
    d.json("harts")
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| h["used"].as_u64() > h["vsfiles"].as_u64())
        .cloned()
        .collect()
}

#[test]
fn vms_drains_and_migrations_survive_a_restart() {
    let state = tempfile::tempdir().unwrap();
    let mut d = start("harts=4,files=2", state.path());
    d.ctl("place --vm g --vcpus 2 --class guaranteed").ok();
    let g = d.json("vm g");
    let on = |i: usize| g["vcpus"][i]["hart"].as_u64().unwrap();
    let to = (0..3).find(|&h| h != on(0) && h != on(1)).unwrap();
    d.ctl(&format!("migrate --vm g --vcpu 0 --hart {to}")).ok();
    d.ctl("place --vm b --vcpus 3 --class burstable").ok();
    d.ctl("place --vm e --vcpus 2 --class best-effort").ok();
    d.ctl("drain --hart 3").ok();
    let before = shape(&d.json("vms"));
    assert!(d.stop().is_some_and(|s| s.success()));

    let d = start("harts=4,files=2", state.path());
    assert_eq!(shape(&d.json("vms")), before, "{}", d.log());
    assert_eq!(drained(&d), [3]);
    d.wait_for_log("state restored");
    // And it goes on from there: the id is still taken, the files too.
    assert_eq!(d.ctl("place --vm g --vcpus 1 --class guaranteed").code, 2);
}

fn state_file(dir: &Path) -> std::path::PathBuf {
    dir.join("state")
}

fn corrupt_files(dir: &Path) -> Vec<std::path::PathBuf> {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("state.corrupt-")
        })
        .collect()
}

/// A state dir holding one placed VM, written by a daemon that has exited.
fn saved_state() -> tempfile::TempDir {
    let state = tempfile::tempdir().unwrap();
    let mut d = start("harts=2,files=2", state.path());
    d.ctl("place --vm a --vcpus 2 --class guaranteed").ok();
    d.stop();
    state
}

#[test]
fn a_truncated_or_flipped_state_file_is_moved_aside_and_the_daemon_starts() {
    type Damage = fn(&mut Vec<u8>);
    let damages: [(&str, Damage); 3] = [
        ("truncated", |b| b.truncate(b.len() - 7)),
        ("flipped byte", |b| {
            let i = b.len() / 2;
            b[i] ^= 0x04;
        }),
        ("not a state file", |b| *b = b"hello".to_vec()),
    ];
    for (what, damage) in damages {
        let state = saved_state();
        let path = state_file(state.path());
        let mut bytes = fs::read(&path).unwrap();
        damage(&mut bytes);
        fs::write(&path, &bytes).unwrap();

        let d = start("harts=2,files=2", state.path());
        d.wait_for_log("STATE FILE UNREADABLE");
        let aside = corrupt_files(state.path());
        assert_eq!(aside.len(), 1, "{what}");
        assert_eq!(
            fs::read(&aside[0]).unwrap(),
            bytes,
            "{what}: kept as it was"
        );
        // Rebuilt from what the host shows: the simulated VMs lived in the
        // same file, so nothing is placed, and nothing is over-committed.
        assert_eq!(d.json("vms"), serde_json::json!([]), "{what}");
        d.ctl("place --vm a --vcpus 2 --class guaranteed").ok();
        assert!(path.exists(), "{what}: a fresh state file is written");
    }
}

#[test]
fn a_state_file_from_a_newer_ifad_is_refused_and_left_alone() {
    let state = saved_state();
    let path = state_file(state.path());
    let bytes = fs::read(&path).unwrap();
    let newline = bytes.iter().position(|&b| b == b'\n').unwrap();
    let header = String::from_utf8(bytes[..newline].to_vec()).unwrap();
    let body = &bytes[newline + 1..];
    // The same file as the next format would write it, checksum and all.
    let version: u32 = header.split(' ').nth(1).unwrap().parse().unwrap();
    let fields = header.rsplit_once(" crc32=").unwrap().0.replacen(
        &format!("ifad-state {version} "),
        &format!("ifad-state {} ", version + 1),
        1,
    );
    let mut h = crc32fast::Hasher::new();
    h.update(fields.as_bytes());
    h.update(body);
    let mut newer = format!("{fields} crc32={:08x}\n", h.finalize()).into_bytes();
    newer.extend_from_slice(body);
    fs::write(&path, &newer).unwrap();

    let out = ifad(&["--simulate", "--state-dir", state.path().to_str().unwrap()]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("newer ifad"), "{out:?}");
    assert!(out.stderr.contains("refusing to start"), "{out:?}");
    assert_eq!(
        fs::read(&path).unwrap(),
        newer,
        "not deleted, not rewritten"
    );
    assert!(corrupt_files(state.path()).is_empty());
}

fn ifad(args: &[&str]) -> Ctl {
    let mut all = vec!["--metrics-listen", "off"];
    all.extend_from_slice(args);
    run_ifad(&all, &[])
}

#[test]
fn a_second_daemon_on_the_same_state_dir_exits_with_a_clear_error() {
    let state = tempfile::tempdir().unwrap();
    let d = start("harts=2,files=2", state.path());
    let out = ifad(&["--simulate", "--state-dir", state.path().to_str().unwrap()]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stderr.contains("in use by another ifad")
            && out.stderr.contains(&format!("pid {}", d.pid())),
        "{out:?}"
    );
    d.json("status");
}

#[test]
fn vms_on_a_hart_that_vanished_while_down_are_placed_again_where_allowed() {
    let state = tempfile::tempdir().unwrap();
    let mut d = start("harts=4,files=2", state.path());
    d.ctl("place --vm low --vcpus 2 --class guaranteed --harts 0-1")
        .ok();
    d.ctl("place --vm top --vcpus 1 --class guaranteed --harts 3")
        .ok();
    d.ctl("place --vm b --vcpus 2 --class burstable --harts 2-3")
        .ok();
    let low = shape(&Value::Array(vec![d.json("vm low")]));
    d.stop();

    let d = start("harts=3,files=2", state.path());
    d.wait_for_log("placing it again");
    let vms = d.json("vms");
    let names: Vec<&str> = vms
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["vm"].as_str().unwrap())
        .collect();
    // b (allowed 2-3) is placed again on hart 2; top may use only hart 3,
    // which is gone: it is refused, never spread to harts it may not use.
    assert_eq!(names, ["b", "low"], "{}", d.log());
    d.wait_for_log("could not place it again");
    for vm in vms.as_array().unwrap() {
        for v in vm["vcpus"].as_array().unwrap() {
            assert!(v["hart"].as_u64().unwrap() < 3, "{vm}");
        }
    }
    // Untouched by the change: the VM on harts that remain.
    assert_eq!(shape(&Value::Array(vec![d.json("vm low")])), low);
    assert_eq!(over_committed(&d), Vec::<Value>::new());
}

/// `ifad_checkpoint_write_seconds_count`: state files written so far.
fn writes(d: &Daemon) -> u64 {
    let text = ifa_e2e::http_get(d.metrics.expect("metrics on"), "/metrics");
    text.lines()
        .find_map(|l| l.strip_prefix("ifad_checkpoint_write_seconds_count "))
        .expect("checkpoint histogram exported")
        .trim()
        .parse()
        .unwrap()
}

/// Waits, bounded, for `n` more completed control-loop ticks: the loop
/// feeds systemd's watchdog once per tick, so each WATCHDOG=1 on `sock` is
/// one tick done. Datagrams already queued are dropped first.
fn ticks(sock: &UnixDatagram, n: usize) {
    let mut buf = [0u8; 512];
    sock.set_nonblocking(true).unwrap();
    while sock.recv(&mut buf).is_ok() {}
    sock.set_nonblocking(false).unwrap();
    for _ in 0..n {
        ifa_e2e::wait_for_notify(sock, "WATCHDOG=1", Duration::from_secs(15));
    }
}

#[test]
fn each_change_is_written_once_and_an_idle_daemon_writes_nothing() {
    let state = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let notify = dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&notify).unwrap();
    let socket = dir.path().join("ifad.sock");
    let mut cmd = ifa_e2e::ifad_under_watchdog(&notify, 60_000_000);
    cmd.args(["--simulate=harts=2,files=2", "--state-dir"])
        .arg(state.path())
        .args(["--metrics-listen", "127.0.0.1:0", "--socket"])
        .arg(&socket);
    let d = Daemon::spawn(cmd, socket, dir);
    let first = writes(&d);
    d.ctl("place --vm a --vcpus 2 --class burstable").ok();
    let placed = writes(&d);
    assert!(placed > first, "the placement was written before the reply");
    // An absence can only be checked over a window: three completed ticks
    // (counted, not timed) with nothing changing, and no write.
    ticks(&sock, 3);
    assert_eq!(writes(&d), placed);
    d.ctl("release --vm a").ok();
    assert!(writes(&d) > placed);
}

#[test]
fn a_state_written_by_another_kind_of_host_is_refused_and_kept() {
    let state = saved_state();
    let path = state_file(state.path());
    let before = fs::read(&path).unwrap();
    // The Linux backend, on a captured host, over the simulated host's state.
    let host = ifa_e2e::host_fixture("qemu-virt-aia5");
    let out = ifad(&[
        "--host-root",
        host.to_str().unwrap(),
        "--no-kprobes",
        "--state-dir",
        state.path().to_str().unwrap(),
    ]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stderr.contains("holds the state of the simulated host"),
        "{out:?}"
    );
    assert_eq!(fs::read(&path).unwrap(), before);
}

#[test]
fn a_machine_in_memory_only_leaves_no_machine_file_and_its_vms_come_back() {
    let state = tempfile::tempdir().unwrap();
    let dir = state.path().to_str().unwrap();
    let args = [
        "--simulate=harts=2,files=2",
        "--sim-machine",
        "memory",
        "--state-dir",
        dir,
    ];
    let mut d = Daemon::start(&args);
    d.ctl("place --vm a --vcpus 2 --class guaranteed").ok();
    d.stop();
    assert!(!state.path().join("simulated-machine").exists());
    // The machine is gone with the daemon: its VMMs start again, and the
    // ledger keeps the VM.
    let d = Daemon::start(&args);
    assert_eq!(d.json("vm a")["vm"], "a");
}

#[test]
fn a_machine_in_memory_is_only_for_the_simulated_host() {
    let out = ifad(&["--sim-machine", "memory"]);
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stderr.contains("--simulate"), "{out:?}");
}
