//! `--kick-signal` (README, "On a real RISC-V KVM host"): ifad signals each
//! vCPU thread it re-pins (moved by ifad, or pinned back after someone
//! else moved it), so the vCPU re-enters the guest on its new hart, and no
//! other thread; attaching, the first pin, kicks nothing. The threads are a fake VMM's that record every
//! SIGUSR1 and SIGUSR2 sent to them (tests/bin/fake_vmm.rs).

use ifa_e2e::{Daemon, FakeVmm, WAIT_TIMEOUT, affinity, metric, set_affinity, wait_until};

const FAKE_VMM: &str = env!("CARGO_BIN_EXE_fake-vmm");

/// tgkill(pid, tid, sig): one thread of another process.
fn signal_thread(pid: u32, tid: u64, sig: nix::sys::signal::Signal) {
    #[allow(unsafe_code)]
    // SAFETY: tgkill takes three integers and touches no memory of ours.
    let r = unsafe {
        nix::libc::syscall(
            nix::libc::SYS_tgkill,
            nix::libc::c_long::from(pid as i32),
            nix::libc::c_long::from(tid as i32),
            nix::libc::c_long::from(sig as i32),
        )
    };
    assert_eq!(r, 0, "tgkill {tid}");
}

/// The signals each vCPU thread received since the last call. A SIGUSR2 is
/// sent to every thread as a marker, and taken after any SIGUSR1 pending
/// with it (the lower number goes first): once every thread's marker is
/// back, every kick sent before it has been recorded.
fn kicks_so_far(vmm: &FakeVmm, tids: &[u64]) -> Vec<String> {
    for &tid in tids {
        signal_thread(vmm.pid(), tid, nix::sys::signal::Signal::SIGUSR2);
    }
    let mut markers = 0;
    let mut kicks = Vec::new();
    while markers < tids.len() {
        let line = vmm
            .lines
            .recv_timeout(WAIT_TIMEOUT)
            .expect("a line from the fake VMM");
        if line.starts_with("SIGUSR2 ") {
            markers += 1;
        } else {
            kicks.push(line);
        }
    }
    kicks
}

#[test]
fn kick_signal_reaches_exactly_the_re_pinned_threads() {
    let root = ifa_e2e::host_fixture("qemu-virt-aia5");
    let d = Daemon::start(&[
        "--host-root",
        root.to_str().unwrap(),
        "--no-kprobes",
        "--kick-signal",
        "SIGUSR1",
    ]);
    // This machine may have only 2 CPUs: the VM stays on harts 0 and 1.
    d.json("place --vm a --vcpus 2 --class burstable --harts 0-1");
    let vmm = FakeVmm::start(FAKE_VMM, 2, &[("FAKE_VMM_SIGNALS", "1")]);
    let vm = d.json(&format!("attach --vm a --pid {}", vmm.pid()));
    let vcpus: Vec<(u64, u64)> = vm["vcpus"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| (v["tid"].as_u64().unwrap(), v["hart"].as_u64().unwrap()))
        .collect();
    let tids: Vec<u64> = vcpus.iter().map(|v| v.0).collect();
    assert_ne!(vcpus[0].1, vcpus[1].1, "{vm}");
    assert_eq!(
        kicks_so_far(&vmm, &tids),
        Vec::<String>::new(),
        "attaching pins, it does not re-pin: no kick"
    );

    // vCPU 0 moves to vCPU 1's hart: its thread, and only it, is kicked.
    let to = vcpus[1].1;
    d.json(&format!("migrate --vm a --vcpu 0 --hart {to}"));
    assert_eq!(affinity(tids[0]), [to as usize]);
    assert_eq!(kicks_so_far(&vmm, &tids), ["SIGUSR1 0"]);

    // And back: again exactly vCPU 0's thread.
    d.json(&format!("migrate --vm a --vcpu 0 --hart {}", vcpus[0].1));
    assert_eq!(kicks_so_far(&vmm, &tids), ["SIGUSR1 0"]);

    // Someone else moves vCPU 1's thread; ifad pins it back, which is a
    // re-pin too: vCPU 1's thread, and only it, is kicked.
    set_affinity(tids[1], &[0, 1]);
    wait_until("vCPU 1 pinned back", WAIT_TIMEOUT, || {
        affinity(tids[1]) == [vcpus[1].1 as usize]
    });
    // Counted once the host call that re-pinned (and would kick) returned.
    wait_until("the drift counted", WAIT_TIMEOUT, || {
        metric(&d, "ifad_drift_detected_total") == 1.0
    });
    assert_eq!(kicks_so_far(&vmm, &tids), ["SIGUSR1 1"]);
}
