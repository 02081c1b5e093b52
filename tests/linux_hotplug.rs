//! A hart going offline on the Linux backend (README, "Policy": an
//! involuntary drain): discovery re-reads the host's online list each
//! tick; the hart's VS-files are gone from the ledger, its vCPUs move to
//! harts their VM may use and their threads are pinned there, a
//! guaranteed vCPU with nowhere to go is counted stranded; back online, its
//! files count again. The host is a captured one whose sysfs the test
//! edits; the threads are a fake VMM's.

use std::path::Path;

use ifa_e2e::{Daemon, FakeVmm, WAIT_TIMEOUT, affinity, metric, wait_until};
use serde_json::Value;

const FAKE_VMM: &str = env!("CARGO_BIN_EXE_fake-vmm");

/// What the kernel shows when `cpu` goes offline or comes back.
fn set_online(root: &Path, online: &str, cpu: u32, up: bool) {
    let cpus = root.join("sys/devices/system/cpu");
    std::fs::write(
        cpus.join(format!("cpu{cpu}/online")),
        if up { "1\n" } else { "0\n" },
    )
    .unwrap();
    std::fs::write(cpus.join("online"), format!("{online}\n")).unwrap();
}

fn hart(d: &Daemon, id: u64) -> Value {
    d.json("harts")
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["hart"] == id)
        .cloned()
        .unwrap_or_else(|| panic!("no hart {id}"))
}

#[test]
fn a_hart_going_offline_is_drained_and_counts_again_when_back() {
    let host = ifa_e2e::derived_host("qemu-virt-aia5");
    let root = host.path();
    let d = Daemon::start(&["--host-root", root.to_str().unwrap(), "--no-kprobes"]);
    // This machine may have only 2 CPUs: the VMs stay on harts 0 and 1.
    d.json("place --vm a --vcpus 2 --class burstable --harts 0-1");
    let vmm = FakeVmm::start(FAKE_VMM, 2, &[]);
    let vm = d.json(&format!("attach --vm a --pid {}", vmm.pid()));
    let on_1 = vm["vcpus"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["hart"] == 1)
        .expect("a vCPU on hart 1")
        .clone();
    let (vcpu, tid) = (
        on_1["vcpu"].as_u64().unwrap() as usize,
        on_1["tid"].as_u64().unwrap(),
    );
    d.json("place --vm g --vcpus 1 --class guaranteed --harts 1");
    assert_eq!(hart(&d, 1)["used"], 2);

    set_online(root, "0,2-3", 1, false);
    wait_until("hart 1 offline", WAIT_TIMEOUT, || {
        hart(&d, 1)["online"] == false
    });
    let h = hart(&d, 1);
    assert_eq!(h["vcpus"], 1, "only g's vCPU, stranded, is left on it: {h}");
    assert_eq!(metric(&d, "ifad_hart_vsfiles{hart=\"1\"}"), 0.0);
    assert_eq!(metric(&d, "ifad_harts_online"), 3.0);
    let a = d.json("vm a");
    assert_eq!(
        a["vcpus"][vcpu]["hart"], 0,
        "moved to the one other hart it may use: {a}"
    );
    assert_eq!(
        a["vcpus"][vcpu]["backing"], "vsfile",
        "hart 0 had files free: {a}"
    );
    assert_eq!(affinity(tid), [0], "its thread is pinned there");
    // g has nowhere else to go: stranded, counted and logged. (It does
    // not show `failed`: on this backend that takes KVM's failed entry,
    // and g has no VMM running it.)
    assert_eq!(metric(&d, "ifad_stranded_vcpus_total"), 1.0);
    d.wait_for_log("guaranteed vCPU stranded on an offline hart");
    d.wait_for_log("hart went offline");

    set_online(root, "0-3", 1, true);
    wait_until("hart 1 back online", WAIT_TIMEOUT, || {
        hart(&d, 1)["online"] == true
    });
    assert_eq!(hart(&d, 1)["vsfiles"], 5);
    assert_eq!(metric(&d, "ifad_hart_vsfiles{hart=\"1\"}"), 5.0);
    assert_eq!(metric(&d, "ifad_harts_online"), 4.0);
}
