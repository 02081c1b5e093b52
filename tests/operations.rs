//! What an operator's tooling sees: HTTP probes, systemd's notify protocol.

use std::os::unix::net::UnixDatagram;
use std::process::Command;
use std::time::Duration;

use ifa_e2e::{Daemon, bin, http_get, ifad_under_watchdog, wait_for_notify};

#[test]
fn live_and_ready_answer_on_the_metrics_listener() {
    let d = Daemon::simulate("harts=2,files=2");
    let addr = d.metrics.expect("metrics listener");
    assert_eq!(http_get(addr, "/ready"), "ready\n");
    assert_eq!(http_get(addr, "/live"), "live\n");
}

#[test]
fn speaks_systemds_notify_protocol_ready_watchdog_stopping() {
    let dir = tempfile::tempdir().unwrap();
    let notify = dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&notify).unwrap();
    let socket = dir.path().join("ifad.sock");
    let mut cmd = ifad_under_watchdog(&notify, 2_000_000);
    cmd.args([
        "--simulate=harts=2,files=2",
        "--metrics-listen",
        "off",
        "--socket",
    ])
    .arg(&socket);
    let mut d = Daemon::spawn(cmd, socket, tempfile::tempdir().unwrap());
    wait_for_notify(&sock, "READY=1", Duration::from_secs(10));
    // Fed by the control loop (every 500 ms), not by a timer of its own.
    wait_for_notify(&sock, "WATCHDOG=1", Duration::from_secs(5));
    wait_for_notify(&sock, "WATCHDOG=1", Duration::from_secs(5));
    let status = d.stop().expect("stopped");
    assert!(status.success());
    wait_for_notify(&sock, "STOPPING=1", Duration::from_secs(1));
}

#[test]
fn check_config_names_the_file_the_key_and_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.toml");
    std::fs::write(
        &good,
        "simulate = \"harts=4,files=2\"\nmin-move-interval = 5\n",
    )
    .unwrap();
    let out = ifa_e2e::run_ifad(&["--check-config", "--config", good.to_str().unwrap()], &[]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("configuration OK"), "{out:?}");

    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "simulate = \"harts=4,files=99\"\n").unwrap();
    for args in [
        vec!["--check-config", "--config", bad.to_str().unwrap()],
        vec!["--config", bad.to_str().unwrap()],
    ] {
        let out = ifa_e2e::run_ifad(&args, &[]);
        assert_eq!(out.code, 2, "{out:?}");
        assert_eq!(out.stderr.lines().count(), 1, "{out:?}");
        assert!(
            out.stderr
                .starts_with(&format!("ifad: {}: key `simulate`: ", bad.display())),
            "{out:?}"
        );
    }
    // The default file is read from IFAD_CONFIG as well.
    let out = ifa_e2e::run_ifad(
        &["--check-config"],
        &[("IFAD_CONFIG", bad.to_str().unwrap())],
    );
    assert_eq!(out.code, 2, "{out:?}");
}

#[test]
fn the_environment_and_flags_override_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("ifad.toml");
    let from_file = dir.path().join("file.sock");
    let from_env = dir.path().join("env.sock");
    std::fs::write(
        &config,
        format!(
            "simulate = \"harts=3,files=2\"\nsocket = \"{}\"\nmetrics-listen = \"off\"\n",
            from_file.display()
        ),
    )
    .unwrap();
    // IFAD_SOCKET beats the file's socket; the file's host is used.
    let mut cmd = Command::new("env");
    cmd.arg(format!(
        "{}={}",
        ifa_api::socket::SOCKET_ENV,
        from_env.display()
    ))
    .arg(bin("ifad"))
    .arg("--config")
    .arg(&config);
    let d = Daemon::spawn(cmd, from_env.clone(), tempfile::tempdir().unwrap());
    assert!(!from_file.exists());
    assert_eq!(d.json("status")["harts"], 3);
    drop(d);
    // A flag beats both.
    let d = Daemon::start(&[
        "--config",
        config.to_str().unwrap(),
        "--simulate=harts=5,files=1",
    ]);
    assert_eq!(d.json("status")["harts"], 5);
}

#[test]
fn ifactl_ships_completions_and_a_man_page() {
    let run = |args: &[&str]| {
        let mut cmd = Command::new(bin("ifactl"));
        cmd.args(args);
        ifa_e2e::Ctl::run(cmd)
    };
    let bash = run(&["completions", "bash"]).ok().stdout;
    assert!(
        bash.contains("complete -F") && bash.contains("watch"),
        "{bash}"
    );
    let zsh = run(&["completions", "zsh"]).ok().stdout;
    assert!(zsh.starts_with("#compdef ifactl"), "{zsh}");
    let man = run(&["man"]).ok().stdout;
    assert!(man.contains(".TH ifactl"), "{man}");
    assert!(run(&["completions", "tcsh"]).fails(2).contains("tcsh"));
}

#[test]
fn the_read_only_socket_serves_reads_and_watch_and_refuses_changes() {
    let dir = tempfile::tempdir().unwrap();
    let ro = dir.path().join("ifad-ro.sock");
    let d = Daemon::start(&[
        "--simulate=harts=2,files=2",
        "--socket-ro",
        ro.to_str().unwrap(),
    ]);
    d.ctl("place --vm a --vcpus 1 --class guaranteed").ok();
    let ctl_ro = |command: &str| {
        let mut cmd = Command::new(bin("ifactl"));
        cmd.env_remove(ifa_api::socket::SOCKET_ENV)
            .arg("--socket")
            .arg(&ro)
            .args(command.split_whitespace());
        ifa_e2e::Ctl::run(cmd)
    };
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&ro).unwrap().permissions().mode() & 0o777,
        0o666
    );
    assert!(ctl_ro("vm a").ok().stdout.contains("guaranteed"));
    ctl_ro("harts").ok();
    ctl_ro("advise --vm b --vcpus 1 --class burstable").ok();
    for change in [
        "place --vm b --vcpus 1 --class burstable",
        "release --vm a",
        "migrate --vm a --vcpu 0 --hart 1",
        "drain --hart 0",
        "undrain --hart 0",
        "attach --vm a --pid 1",
    ] {
        let line = ctl_ro(change).fails(1);
        assert!(line.contains("read-only socket"), "{change}: {line}");
    }
    // Nothing changed.
    assert_eq!(d.json("vms").as_array().unwrap().len(), 1);
    assert_eq!(d.json("vm a")["state"], "ready");
}
