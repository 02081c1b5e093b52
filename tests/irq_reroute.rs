//! A device IRQ the kernel routes elsewhere than asked (README, "On a real
//! RISC-V KVM host"): ifad reads back `effective_affinity_list` after each
//! move, logs and counts it (`ifad_irq_steering_errors_total{class=
//! "rerouted"}`). The host is a captured one with a device added whose
//! IRQ's effective affinity stays on CPU 3, as a kernel whose interrupt
//! controller cannot reach the asked CPU reports it.

use ifa_e2e::{Daemon, WAIT_TIMEOUT, metric, wait_until};

#[test]
fn an_irq_the_kernel_routes_elsewhere_is_logged_and_counted() {
    let host = ifa_e2e::derived_host("qemu-virt-aia5");
    let root = host.path();
    let dev = root.join("sys/bus/pci/devices/0000:01:00.0/msi_irqs");
    std::fs::create_dir_all(&dev).unwrap();
    for irq in [40, 41] {
        std::fs::write(dev.join(irq.to_string()), "msix").unwrap();
        let dir = root.join(format!("proc/irq/{irq}"));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("smp_affinity_list"), "3\n").unwrap();
        // IRQ 41 may be delivered to either hart the VM may use, so it
        // holds whichever ifad asks for; IRQ 40 only to CPU 3.
        let effective = if irq == 40 { "3\n" } else { "1-2\n" };
        std::fs::write(dir.join("effective_affinity_list"), effective).unwrap();
    }
    let d = Daemon::start(&["--host-root", root.to_str().unwrap(), "--no-kprobes"]);
    let vm = d.json("place --vm d --vcpus 2 --class burstable --harts 1-2 --device 01:00.0");
    let series = "ifad_irq_steering_errors_total{class=\"rerouted\"}";
    wait_until("a rerouted IRQ counted", WAIT_TIMEOUT, || {
        metric(&d, series) >= 1.0
    });
    d.wait_for_log("routes it to CPUs 3");
    let h0 = vm["vcpus"][0]["hart"].to_string();
    let asked = std::fs::read_to_string(root.join("proc/irq/40/smp_affinity_list")).unwrap();
    assert_eq!(asked, h0, "ifad asked for vCPU 0's hart");
    assert!(d.log().contains("irq=40"), "{}", d.log());
    assert!(!d.log().contains("irq=41"), "{}", d.log());
    assert_eq!(
        metric(&d, series),
        1.0,
        "IRQ 41 is where it was asked to be"
    );
}
