//! What an operator's tooling sees: HTTP probes, systemd's notify protocol.

use std::os::unix::net::UnixDatagram;
use std::process::Command;
use std::time::{Duration, Instant};

use ifa_e2e::{Daemon, bin, http_get};

#[test]
fn live_and_ready_answer_on_the_metrics_listener() {
    let d = Daemon::simulate("harts=2,files=2");
    let addr = d.metrics.expect("metrics listener");
    assert_eq!(http_get(addr, "/ready"), "ready\n");
    assert_eq!(http_get(addr, "/live"), "live\n");
}

/// Datagrams received on `sock` until `want` arrives or `within` passes.
fn wait_for(sock: &UnixDatagram, want: &str, within: Duration) -> Vec<String> {
    let deadline = Instant::now() + within;
    let mut seen = Vec::new();
    let mut buf = [0u8; 512];
    while Instant::now() < deadline {
        sock.set_read_timeout(Some(
            deadline
                .saturating_duration_since(Instant::now())
                .max(Duration::from_millis(1)),
        ))
        .unwrap();
        match sock.recv(&mut buf) {
            Ok(n) => {
                let msg = String::from_utf8_lossy(&buf[..n]).to_string();
                let done = msg.lines().any(|l| l == want);
                seen.push(msg);
                if done {
                    return seen;
                }
            }
            Err(_) => break,
        }
    }
    panic!("no {want} within {within:?}; got {seen:?}");
}

#[test]
fn speaks_systemds_notify_protocol_ready_watchdog_stopping() {
    let dir = tempfile::tempdir().unwrap();
    let notify = dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&notify).unwrap();
    let socket = dir.path().join("ifad.sock");
    // systemd names the process the watchdog is for: the shell's pid, which
    // exec hands on to ifad.
    let mut cmd = Command::new("sh");
    cmd.args(["-c", "export WATCHDOG_PID=$$; exec \"$0\" \"$@\""])
        .arg(bin("ifad"))
        .args([
            "--simulate=harts=2,files=2",
            "--metrics-listen",
            "off",
            "--socket",
        ])
        .arg(&socket)
        .env("NOTIFY_SOCKET", &notify)
        .env("WATCHDOG_USEC", "2000000");
    let mut d = Daemon::spawn(cmd, socket, tempfile::tempdir().unwrap());
    wait_for(&sock, "READY=1", Duration::from_secs(10));
    // Fed by the control loop (every 500 ms), not by a timer of its own.
    wait_for(&sock, "WATCHDOG=1", Duration::from_secs(5));
    wait_for(&sock, "WATCHDOG=1", Duration::from_secs(5));
    let status = d.stop().expect("stopped");
    assert!(status.success());
    wait_for(&sock, "STOPPING=1", Duration::from_secs(1));
}
