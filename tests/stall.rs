//! A stalled control loop (README, "Metrics, probes and events" and
//! "Running it: systemd"): `/live` answers 503 once no tick has completed
//! for 10 s, the systemd watchdog is no longer fed (so systemd would
//! restart ifad), `/ready` stays 200, and both come back once the loop
//! turns again. The stall is a real one: on the Linux backend each tick
//! re-reads the host, and the captured host's
//! `sys/devices/system/cpu/online` is replaced by a FIFO nobody writes,
//! so the read blocks as a hung sysfs or NFS read would.

use std::io::Write;
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use ifa_e2e::{Daemon, wait_for_notify, wait_until};

/// Longer than the 10 s after which the loop counts as stalled.
const STALL_TIMEOUT: Duration = Duration::from_secs(40);

fn status(addr: std::net::SocketAddr, path: &str) -> u16 {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(5)))
        .build()
        .into();
    agent
        .get(&format!("http://{addr}{path}"))
        .call()
        .unwrap_or_else(|e| panic!("GET {path}: {e}"))
        .status()
        .as_u16()
}

/// The WATCHDOG=1 datagrams waiting on `sock`, taken without blocking.
fn pings(sock: &UnixDatagram) -> usize {
    let mut buf = [0u8; 512];
    sock.set_nonblocking(true).unwrap();
    let mut n = 0;
    while let Ok(len) = sock.recv(&mut buf) {
        if String::from_utf8_lossy(&buf[..len])
            .lines()
            .any(|l| l == "WATCHDOG=1")
        {
            n += 1;
        }
    }
    sock.set_nonblocking(false).unwrap();
    n
}

#[test]
fn a_stalled_loop_is_not_live_starves_the_watchdog_and_recovers() {
    let host = ifa_e2e::derived_host("qemu-virt-aia5");
    let online = host.path().join("sys/devices/system/cpu/online");
    let dir = tempfile::tempdir().unwrap();
    let notify = dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&notify).unwrap();
    let socket = dir.path().join("ifad.sock");
    let mut cmd = ifa_e2e::ifad_under_watchdog(&notify, 10_000_000);
    cmd.arg("--host-root")
        .arg(host.path())
        .args([
            "--no-kprobes",
            "--metrics-listen",
            "127.0.0.1:0",
            "--socket",
        ])
        .arg(&socket);
    let d = Daemon::spawn(cmd, socket, dir);
    let metrics = d.metrics.unwrap();
    wait_for_notify(&sock, "WATCHDOG=1", Duration::from_secs(15));
    assert_eq!(status(metrics, "/live"), 200);
    assert_eq!(status(metrics, "/ready"), 200);

    // The next tick's read of the online list blocks.
    let saved = std::fs::read(&online).unwrap();
    std::fs::remove_file(&online).unwrap();
    let made = Command::new("mkfifo").arg(&online).status().unwrap();
    assert!(made.success());
    let stalled_from = Instant::now();
    pings(&sock);
    wait_until("/live to answer 503", STALL_TIMEOUT, || {
        status(metrics, "/live") == 503
    });
    assert!(
        stalled_from.elapsed() >= Duration::from_secs(9),
        "not live only after about 10 s without a tick"
    );
    // A turning loop feeds the watchdog every 500 ms: about 20 pings in
    // that time. At most the tick already past its read may have fed it.
    let fed = pings(&sock);
    assert!(fed <= 1, "{fed} watchdog pings while the loop was stuck");
    assert_eq!(status(metrics, "/ready"), 200, "still ready: only not live");

    // The read completes (a writer comes, the file is a file again): the
    // loop turns, /live and the watchdog come back.
    unblock(&online, &saved);
    wait_for_notify(&sock, "WATCHDOG=1", Duration::from_secs(15));
    wait_until("/live to answer 200 again", Duration::from_secs(15), || {
        status(metrics, "/live") == 200
    });
    wait_for_notify(&sock, "WATCHDOG=1", Duration::from_secs(15));
    assert_eq!(status(metrics, "/ready"), 200);
    d.ctl("status").ok();
}

/// Opens the FIFO for writing (which lets the blocked reader's open
/// return), puts a regular file with `content` in its place for later
/// reads, and hands the blocked reader `content` too.
fn unblock(fifo: &Path, content: &[u8]) {
    let mut writer = std::fs::OpenOptions::new().write(true).open(fifo).unwrap();
    let tmp = fifo.with_extension("new");
    std::fs::write(&tmp, content).unwrap();
    std::fs::rename(&tmp, fifo).unwrap();
    writer.write_all(content).unwrap();
}
