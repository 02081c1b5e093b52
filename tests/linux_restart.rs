//! Restarting on the Linux backend (README, "State and restarts"): a VM
//! whose VMM exited while ifad was down is released; one whose VMM still
//! runs (same pid, same start time) is attached again and its threads that
//! drifted meanwhile are pinned back. The VMMs are fake ones this test
//! starts, and the dead one is reaped before the restart.

use std::path::Path;

use ifa_e2e::{Daemon, FakeVmm, WAIT_TIMEOUT, affinity, set_affinity, wait_until};

const FAKE_VMM: &str = env!("CARGO_BIN_EXE_fake-vmm");

fn start(state: &Path) -> Daemon {
    let root = ifa_e2e::host_fixture("qemu-virt-aia5");
    Daemon::start(&[
        "--host-root",
        root.to_str().unwrap(),
        "--no-kprobes",
        "--state-dir",
        state.to_str().unwrap(),
    ])
}

#[test]
fn a_vm_whose_vmm_died_while_ifad_was_down_is_released_and_a_live_one_re_pinned() {
    let state = tempfile::tempdir().unwrap();
    let mut d = start(state.path());
    // This machine may have only 2 CPUs: the VMs stay on harts 0 and 1.
    d.json("place --vm dead --vcpus 1 --class burstable --harts 0");
    d.json("place --vm live --vcpus 1 --class burstable --harts 1");
    let dead = FakeVmm::start(FAKE_VMM, 1, &[]);
    let live = FakeVmm::start(FAKE_VMM, 1, &[]);
    d.json(&format!("attach --vm dead --pid {}", dead.pid()));
    let vm = d.json(&format!("attach --vm live --pid {}", live.pid()));
    let tid = vm["vcpus"][0]["tid"].as_u64().unwrap();
    assert_eq!(affinity(tid), [1]);
    assert!(d.stop().is_some_and(|s| s.success()));

    // While ifad is down: one VMM exits (and is reaped, so its pid names
    // nothing), the other's thread is moved by someone else.
    dead.kill();
    set_affinity(tid, &[0, 1]);

    let d = start(state.path());
    d.wait_for_log("its VMM exited while ifad was down");
    assert_eq!(d.ctl("vm dead").code, 2, "released: no longer placed");
    let s = d.json("status");
    assert_eq!(s["vms"], 1, "{s}");
    assert_eq!(s["vsfiles"]["used"], 1, "only live's file is held: {s}");
    d.wait_for_log("VMM still running: attached again");
    let vm = d.json("vm live");
    assert_eq!(vm["vcpus"][0]["tid"], tid, "{vm}");
    wait_until("live's thread pinned back", WAIT_TIMEOUT, || {
        affinity(tid) == [1]
    });
    drop(live);
}
