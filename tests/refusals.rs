//! Everything refused is refused whole: a clear one-line error, the right
//! exit code, and no change to the daemon's state.

use ifa_e2e::Daemon;
use serde_json::Value;

fn snapshot(d: &Daemon) -> (Value, Value) {
    (d.json("vms"), d.json("harts"))
}

#[test]
fn guaranteed_that_does_not_fit_is_refused_whole_with_exit_1() {
    let d = Daemon::simulate("harts=2,files=2");
    d.json("place --vm b --vcpus 3 --class burstable");
    let before = snapshot(&d);
    // 4 files on the host: even taking b's three cannot make 5.
    let line = d.ctl("place --vm g --vcpus 5 --class guaranteed").fails(1);
    assert!(line.starts_with("ifactl: refused: "), "{line}");
    assert!(
        line.contains("needs 5 VS-files; 1 free and only 3 can be taken from burstable vCPUs"),
        "{line}"
    );
    assert_eq!(snapshot(&d), before);
    let err = d.ctl("vm g").fails(2);
    assert!(err.contains("not placed"), "{err}");
}

#[test]
fn bad_input_exits_2_with_one_line_naming_the_field_and_changes_nothing() {
    let d = Daemon::simulate("harts=2,files=5");
    d.json("place --vm a --vcpus 2 --class burstable --device 0000:02:00.0");
    let before = snapshot(&d);
    let cases = [
        ("place --vm z --vcpus 0 --class guaranteed", "--vcpus"),
        ("place --vm z --vcpus 1 --class gold", "--class"),
        (
            "place --vm z --vcpus 1 --class burstable --device 01:00.9",
            "devices",
        ),
        (
            "place --vm z --vcpus 1 --class burstable --device nope",
            "devices",
        ),
        ("place --vm bad/id --vcpus 1 --class burstable", "vm"),
        ("place --vm a --vcpus 1 --class burstable", "already placed"),
        (
            "place --vm z --vcpus 1 --class burstable --device 02:00.0",
            "already assigned to vm a",
        ),
        ("place --vm z --class burstable", "--vcpus"),
        ("release --vm ghost", "ghost is not placed"),
        ("vm ghost", "ghost is not placed"),
        ("frobnicate", "frobnicate"),
        (
            "place --vm z --vcpus 1 --class burstable --harts 7",
            "hart 7 does not exist",
        ),
        (
            "place --vm z --vcpus 1 --class burstable --harts 3-1",
            "--harts",
        ),
        ("migrate --vm a --vcpu 9 --hart 0", "vcpu"),
        ("migrate --vm a --vcpu 0 --hart 9", "hart 9 does not exist"),
        (
            "migrate --vm ghost --vcpu 0 --hart 0",
            "ghost is not placed",
        ),
        ("drain --hart 9", "hart 9 does not exist"),
        ("undrain --hart 9", "hart 9 does not exist"),
    ];
    for (args, needle) in cases {
        let line = d.ctl(args).fails(2);
        assert!(line.starts_with("ifactl: "), "{args:?}: {line}");
        assert!(
            line.contains(needle),
            "{args:?}: {line:?} should name {needle:?}"
        );
    }
    assert_eq!(snapshot(&d), before, "refused requests changed nothing");
}

#[test]
fn unreachable_daemon_is_exit_1_with_the_socket_named() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("none.sock");
    let mut cmd = std::process::Command::new(ifa_e2e::bin("ifactl"));
    cmd.arg("--socket").arg(&socket).arg("status");
    let line = ifa_e2e::Ctl::run(cmd).fails(1);
    assert!(line.contains(&socket.display().to_string()), "{line}");
    assert!(line.contains("ifad --simulate"), "{line}");
}
