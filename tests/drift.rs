//! Drift on the Linux backend (README, "On a real RISC-V KVM host"): a vCPU
//! thread someone else re-pinned is counted, logged once and pinned back at
//! most 3 times, then left; `--drift leave` only reports. The threads are
//! those of a fake VMM this test starts, on a captured host (--host-root).
//! ifad runs under a systemd-style watchdog, whose pings (one per
//! completed control-loop tick) tell when the loop has looked again.

use std::os::unix::net::UnixDatagram;

use ifa_e2e::{Daemon, FakeVmm, WAIT_TIMEOUT, affinity, metric, set_affinity, wait_until};

const FAKE_VMM: &str = env!("CARGO_BIN_EXE_fake-vmm");
/// This machine may have only 2 CPUs: the VM stays on harts 0 and 1.
const BOTH: [usize; 2] = [0, 1];

struct Attached {
    d: Daemon,
    _vmm: FakeVmm,
    /// (tid, hart) of each vCPU.
    vcpus: Vec<(u64, usize)>,
    notify: UnixDatagram,
}

impl Attached {
    /// Waits, bounded, until the control loop has completed `n` more
    /// ticks (pings already queued are dropped first).
    fn ticks(&self, n: usize) {
        let mut buf = [0u8; 512];
        self.notify.set_nonblocking(true).unwrap();
        while self.notify.recv(&mut buf).is_ok() {}
        self.notify.set_nonblocking(false).unwrap();
        for _ in 0..n {
            ifa_e2e::wait_for_notify(&self.notify, "WATCHDOG=1", WAIT_TIMEOUT);
        }
    }
}

/// ifad on the captured 4-hart host, a 2-vCPU VM on harts 0-1 attached to
/// a fake VMM.
fn attached(extra: &[&str]) -> Attached {
    let root = ifa_e2e::host_fixture("qemu-virt-aia5");
    let dir = tempfile::tempdir().unwrap();
    let notify_path = dir.path().join("notify.sock");
    let notify = UnixDatagram::bind(&notify_path).unwrap();
    let socket = dir.path().join("ifad.sock");
    let mut cmd = ifa_e2e::ifad_under_watchdog(&notify_path, 60_000_000);
    cmd.arg("--host-root")
        .arg(&root)
        .args([
            "--no-kprobes",
            "--metrics-listen",
            "127.0.0.1:0",
            "--socket",
        ])
        .arg(&socket)
        .args(extra);
    let d = Daemon::spawn(cmd, socket, dir);
    d.json("place --vm a --vcpus 2 --class burstable --harts 0-1");
    let vmm = FakeVmm::start(FAKE_VMM, 2, &[]);
    let vm = d.json(&format!("attach --vm a --pid {}", vmm.pid()));
    let vcpus = vm["vcpus"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            (
                v["tid"].as_u64().unwrap(),
                v["hart"].as_u64().unwrap() as usize,
            )
        })
        .collect();
    Attached {
        d,
        _vmm: vmm,
        vcpus,
        notify,
    }
}

fn wait_for_drift_count(d: &Daemon, n: u32) {
    wait_until(
        &format!("ifad_drift_detected_total {n}"),
        WAIT_TIMEOUT,
        || metric(d, "ifad_drift_detected_total") == f64::from(n),
    );
}

/// When someone else moves a thread again after ifad pinned it back.
#[derive(Clone, Copy, PartialEq)]
enum NextMove {
    /// Later: whole ticks see it in place first.
    AfterTicksSawItBack,
    /// At once, before any tick saw it back.
    AtOnce,
}

impl Attached {
    /// Someone else moves `tid` off `hart` three times; each time ifad pins
    /// it back and counts the drift.
    fn drift_and_repin_three_times(&self, tid: u64, hart: usize, next: NextMove) {
        for n in 1..=3 {
            set_affinity(tid, &BOTH);
            wait_until(&format!("re-pin {n} of vCPU 0"), WAIT_TIMEOUT, || {
                affinity(tid) == [hart]
            });
            wait_for_drift_count(&self.d, n);
            if next == NextMove::AfterTicksSawItBack {
                self.ticks(2);
            }
        }
    }
}

fn lines_with(d: &Daemon, text: &str) -> usize {
    d.log().lines().filter(|l| l.contains(text)).count()
}

#[test]
fn a_drifting_thread_is_pinned_back_three_times_then_left() {
    let a = attached(&[]);
    let (d, vcpus) = (&a.d, &a.vcpus);
    let (tid, hart) = vcpus[0];
    a.drift_and_repin_three_times(tid, hart, NextMove::AfterTicksSawItBack);
    assert_eq!(lines_with(d, "pinned it back"), 3, "{}", d.log());

    // The fourth time ifad reports it and stops fighting.
    set_affinity(tid, &BOTH);
    wait_for_drift_count(d, 4);
    d.wait_for_log("changed by someone else; left it");
    assert_eq!(affinity(tid), BOTH, "not pinned a fourth time");

    // Later ticks (shown by vCPU 1's own drift being pinned back) leave
    // vCPU 0 alone and do not count or log it again.
    let (tid1, hart1) = vcpus[1];
    set_affinity(tid1, &BOTH);
    wait_until("vCPU 1 re-pinned", WAIT_TIMEOUT, || {
        affinity(tid1) == [hart1]
    });
    wait_for_drift_count(d, 5);
    assert_eq!(affinity(tid), BOTH, "vCPU 0 still left where it was put");
    assert_eq!(metric(d, "ifad_drift_detected_total"), 5.0);
    assert_eq!(lines_with(d, "left it"), 1, "{}", d.log());
}

#[test]
fn drift_leave_only_reports() {
    let a = attached(&["--drift", "leave"]);
    let (d, vcpus) = (&a.d, &a.vcpus);
    let (tid, _) = vcpus[0];
    set_affinity(tid, &BOTH);
    wait_for_drift_count(d, 1);
    d.wait_for_log("changed by someone else; left it");

    // A later tick, shown by vCPU 1's drift being reported, has not
    // touched vCPU 0 nor reported it again.
    let (tid1, _) = vcpus[1];
    set_affinity(tid1, &BOTH);
    wait_for_drift_count(d, 2);
    assert_eq!(affinity(tid), BOTH);
    assert_eq!(affinity(tid1), BOTH);
    assert_eq!(lines_with(d, "left it"), 2, "{}", d.log());
    assert_eq!(lines_with(d, "pinned it back"), 0, "{}", d.log());
}

/// A thread moved again right after its last re-pin, before any tick saw
/// it in place, is counted and logged too: a drift ifad pinned back is not
/// "already reported" (this was missed once).
#[test]
fn a_drift_right_after_the_last_re_pin_is_still_reported() {
    let a = attached(&[]);
    let (d, vcpus) = (&a.d, &a.vcpus);
    let (tid, hart) = vcpus[0];
    a.drift_and_repin_three_times(tid, hart, NextMove::AtOnce);
    set_affinity(tid, &BOTH);
    a.ticks(2);
    assert_eq!(metric(d, "ifad_drift_detected_total"), 4.0, "{}", d.log());
}
