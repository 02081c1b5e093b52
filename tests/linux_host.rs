//! The Linux backend on this machine's real kernel: discovery from a
//! captured RISC-V host (--host-root), and a VMM stand-in started by the
//! test whose `CPU <n>/KVM` threads get attached, pinned, watched for drift
//! and released when it exits.

use std::process::Command;

use ifa_e2e::{Daemon, FakeVmm, WAIT_TIMEOUT, affinity, bin, set_affinity, wait_until};

fn fixture(name: &str) -> String {
    ifa_e2e::host_fixture(name).to_str().unwrap().to_string()
}

/// A fake VMM with `vcpus` threads, stopped (killed) on drop.
fn vmm(vcpus: u32) -> FakeVmm {
    // Our own package's binary: cargo builds it for this test.
    FakeVmm::start(env!("CARGO_BIN_EXE_fake-vmm"), vcpus, &[])
}

#[test]
fn host_root_discovers_the_captured_host() {
    let d = Daemon::start(&["--host-root", &fixture("qemu-virt-aia5")]);
    let s = d.json("status");
    assert_eq!(s["host"], "linux");
    assert_eq!(s["harts"], 4);
    assert_eq!(s["vsfiles"]["total"], 20);
    // Its S-level node has riscv,guest-index-bits 3 and no hart or group
    // properties: 4 harts take 2 hart bits by the binding's default.
    assert_eq!(
        s["host_imsic"],
        serde_json::json!({"guest_index_bits": 3, "hart_index_bits": 2,
                           "group_index_bits": 0, "group_index_shift": 24})
    );
    d.wait_for_log("discovered 4 harts from the device tree");
}

#[test]
fn a_host_without_aia_is_refused_with_the_reason() {
    let mut cmd = Command::new(bin("ifad"));
    cmd.args([
        "--host-root",
        &fixture("qemu-virt-noaia"),
        "--metrics-listen",
        "off",
    ]);
    let out = ifa_e2e::Ctl::run(cmd);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("no AIA"), "{out:?}");
}

#[test]
fn attach_pins_real_threads_reapplies_on_drift_and_releases_on_exit() {
    // This machine may have only 2 CPUs: keep the VM on harts 0 and 1.
    let d = Daemon::start(&["--host-root", &fixture("qemu-virt-aia5")]);
    d.json("place --vm a --vcpus 2 --class burstable --harts 0-1");
    let vmm = vmm(2);
    let vm = d.json(&format!("attach --vm a --pid {}", vmm.pid()));
    let vcpus = vm["vcpus"].as_array().unwrap().clone();
    for v in &vcpus {
        let tid = v["tid"].as_u64().expect("attached thread id");
        let hart = v["hart"].as_u64().unwrap() as usize;
        assert_eq!(affinity(tid), [hart], "the kernel says where it may run");
    }
    assert_eq!(d.json("vm a"), vm, "vm shows the thread ids");

    // Someone else widens vCPU 0's affinity: ifad pins it back.
    let tid = vcpus[0]["tid"].as_u64().unwrap();
    let hart = vcpus[0]["hart"].as_u64().unwrap() as usize;
    set_affinity(tid, &[0, 1]);
    wait_until("vCPU 0 re-pinned to its hart", WAIT_TIMEOUT, || {
        affinity(tid) == [hart]
    });
    // The counter and the log line may trail the re-pin: wait for them too.
    let metrics = d.metrics.unwrap();
    wait_until("ifad_drift_detected_total 1", WAIT_TIMEOUT, || {
        ifa_e2e::http_get(metrics, "/metrics")
            .lines()
            .any(|l| l == "ifad_drift_detected_total 1")
    });
    d.wait_for_log("affinity changed by someone else; pinned it back");

    // The VMM exits: its VM is released.
    drop(vmm);
    wait_until("vm a released after its VMM exited", WAIT_TIMEOUT, || {
        d.ctl("vm a").code == 2
    });
    d.wait_for_log("its VMM exited");
}

#[test]
fn attach_refuses_what_it_cannot_do() {
    let d = Daemon::start(&["--host-root", &fixture("qemu-virt-aia5")]);
    d.json("place --vm a --vcpus 1 --class burstable --harts 0");
    // This test process has no thread named like a vCPU.
    let line = d
        .ctl(&format!("attach --vm a --pid {}", std::process::id()))
        .fails(1);
    assert!(line.contains("no vCPU threads named like"), "{line}");
    let line = d.ctl("attach --vm ghost --pid 1").fails(2);
    assert!(line.contains("ghost is not placed"), "{line}");
    let sim = Daemon::simulate("harts=2,files=5");
    sim.json("place --vm a --vcpus 1 --class burstable");
    let line = sim
        .ctl(&format!("attach --vm a --pid {}", std::process::id()))
        .fails(1);
    assert!(line.contains("cannot do that"), "{line}");
}

#[test]
fn device_irqs_follow_the_vcpus_harts() {
    // Derived host: device 0000:01:00.0 with MSI-X IRQs 40 and 41, both
    // affine to CPU 3 before placement.
    let host = ifa_e2e::derived_host("qemu-virt-aia5");
    let root = host.path();
    for irq in [40, 41] {
        std::fs::create_dir_all(root.join("sys/bus/pci/devices/0000:01:00.0/msi_irqs")).unwrap();
        std::fs::write(
            root.join(format!("sys/bus/pci/devices/0000:01:00.0/msi_irqs/{irq}")),
            "msix",
        )
        .unwrap();
        std::fs::create_dir_all(root.join(format!("proc/irq/{irq}"))).unwrap();
        std::fs::write(
            root.join(format!("proc/irq/{irq}/smp_affinity_list")),
            "3\n",
        )
        .unwrap();
    }
    let d = Daemon::start(&["--host-root", root.to_str().unwrap()]);
    let vm = d.json("place --vm d --vcpus 2 --class burstable --harts 1-2 --device 01:00.0");
    let harts: Vec<String> = vm["vcpus"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["hart"].to_string())
        .collect();
    let read = |irq: u32| {
        std::fs::read_to_string(root.join(format!("proc/irq/{irq}/smp_affinity_list"))).unwrap()
    };
    assert_eq!(read(40), harts[0]);
    assert_eq!(read(41), harts[1]);
    // A vCPU migrates: the IRQ that followed it moves too.
    let other = if harts[0] == "1" { 2 } else { 1 };
    d.json(&format!("migrate --vm d --vcpu 0 --hart {other}"));
    assert_eq!(read(40), other.to_string());
}
