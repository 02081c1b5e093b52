//! The daemon as an operator runs it: flags, socket discovery, health,
//! shutdown.

use std::process::Command;

use ifa_e2e::{Ctl, Daemon, bin, run_ifad};

fn ifad(args: &[&str]) -> Ctl {
    run_ifad(args, &[])
}

#[test]
fn ifad_and_ifactl_find_each_other_through_ifad_socket() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("env.sock");
    // Daemon::spawn clears IFAD_SOCKET from the environment; `env` sets it
    // again for this daemon alone.
    let d = {
        let mut wrapped = Command::new("env");
        wrapped.arg(format!(
            "{}={}",
            ifa_api::socket::SOCKET_ENV,
            socket.display()
        ));
        wrapped
            .arg(bin("ifad"))
            .args(["--simulate", "--metrics-listen", "off"]);
        Daemon::spawn(wrapped, socket.clone(), dir)
    };
    d.wait_for_log(&format!("unix:{}", socket.display()));
    let mut ctl = Command::new(bin("ifactl"));
    ctl.env(ifa_api::socket::SOCKET_ENV, &socket)
        .args(["-o", "json", "status"]);
    let out = Ctl::run(ctl).ok();
    assert_eq!(out.json()["harts"], 8);
    assert!(
        d.metrics.is_none(),
        "--metrics-listen off serves no metrics"
    );
}

#[test]
fn simulate_spec_is_validated() {
    for (spec, needle) in [
        ("files=64", "files: 64 is out of range 1..=63"),
        ("files=0", "files: 0 is out of range"),
        ("harts=0", "harts"),
        ("cores=3", "unknown key"),
    ] {
        let line = ifad(&[&format!("--simulate={spec}")]).fails(2);
        assert!(line.starts_with("ifad: "), "{line}");
        assert!(line.contains(needle), "{spec}: {line}");
    }
    let line = ifad(&["--simulate", "--metrics-listen", "nowhere"]).fails(2);
    assert!(line.contains("--metrics-listen"), "{line}");
}

#[test]
fn simulate_shapes_the_host() {
    let d = Daemon::simulate("harts=4,files=63,numa=2");
    let harts = d.json("harts");
    let nodes: Vec<u64> = harts
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            assert_eq!(h["vsfiles"], 63);
            h["numa_node"].as_u64().unwrap()
        })
        .collect();
    assert_eq!(nodes, [0, 0, 1, 1]);
}

#[test]
fn without_simulate_it_never_pretends() {
    if std::env::consts::ARCH == "riscv64" {
        return; // A real RISC-V host may have KVM; the message differs there.
    }
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("s.sock");
    let out = ifad(&[
        "--socket",
        sock.to_str().unwrap(),
        "--metrics-listen",
        "off",
    ]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("not a RISC-V host"), "{out:?}");
    assert!(out.stderr.contains("pass --simulate"), "{out:?}");
    assert!(!sock.exists(), "nothing was served");
}

#[test]
fn a_second_daemon_does_not_steal_the_socket() {
    let d = Daemon::simulate("harts=2,files=5");
    let sock = d.socket.to_str().unwrap().to_string();
    let out = ifad(&["--simulate", "--socket", &sock, "--metrics-listen", "off"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stderr.contains("another ifad is already serving"),
        "{out:?}"
    );
    d.json("status");
}

#[test]
fn grpc_health_reports_serving() {
    let d = Daemon::simulate("harts=2,files=5");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let status = rt.block_on(async {
        let channel = ifa_api::client::connect_channel(&d.socket).await.unwrap();
        let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
        let overall = health
            .check(tonic_health::pb::HealthCheckRequest {
                service: String::new(),
            })
            .await
            .unwrap()
            .into_inner()
            .status;
        let allocator = health
            .check(tonic_health::pb::HealthCheckRequest {
                service: "ifa.v1.Allocator".into(),
            })
            .await
            .unwrap()
            .into_inner()
            .status;
        (overall, allocator)
    });
    let serving = tonic_health::pb::health_check_response::ServingStatus::Serving as i32;
    assert_eq!(status, (serving, serving));
}

#[test]
fn sigterm_stops_cleanly_and_removes_the_socket() {
    let mut d = Daemon::simulate("harts=2,files=5");
    let socket = d.socket.clone();
    assert!(socket.exists());
    let status = d.stop().expect("stopped within the timeout");
    assert!(status.success(), "{status:?}\n{}", d.log());
    assert!(!socket.exists());
}
