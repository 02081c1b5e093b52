//! Guest IMSIC layouts through `ifactl place` and back through `ifactl vm`,
//! across a restart. Expected addresses are QEMU virt's rule written out by
//! hand: 0x28000000 + socket x 16 MiB + hart x (4 KiB << guest-index-bits).

use std::path::Path;

use ifa_e2e::Daemon;
use serde_json::Value;

fn start(state: &Path) -> Daemon {
    Daemon::start(&[
        "--simulate=harts=8,files=5",
        "--state-dir",
        state.to_str().unwrap(),
    ])
}

fn gpas(vm: &Value) -> Vec<Value> {
    vm["vcpus"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["guest_imsic_gpa"].clone())
        .collect()
}

#[test]
fn qemu_with_two_sockets_and_guest_index_bits_survives_a_restart() {
    let state = tempfile::tempdir().unwrap();
    let mut d = start(state.path());
    d.ctl(
        "place --vm q --vcpus 4 --class burstable --vmm qemu --vmm-sockets 2 --guest-index-bits 1",
    )
    .ok();
    let want = ["0x28000000", "0x28002000", "0x29000000", "0x29002000"];
    let vm = d.json("vm q");
    assert_eq!(gpas(&vm), want.map(Value::from));
    assert_eq!(
        vm["guest_imsic"],
        serde_json::json!({"kind": "qemu", "sockets": 2, "guest_index_bits": 1})
    );
    // QEMU tells KVM group bits 2 at shift 24, hart bits 1, guest bits 1.
    assert_eq!(vm["guest_msi"]["msi_addr_mask"], "0x3003");
    assert_eq!(vm["guest_msi"]["msi_addr_pattern"], "0x28000");
    assert!(d.stop().is_some_and(|s| s.success()));
    let d = start(state.path());
    assert_eq!(gpas(&d.json("vm q")), want.map(Value::from));
}

#[test]
fn a_vm_placed_without_a_layout_says_unknown() {
    let d = Daemon::simulate("harts=4,files=5");
    // The host side is known even so: 5 files need 3 guest-index bits,
    // 4 harts 2 hart-index bits, as on QEMU virt.
    assert_eq!(
        d.json("status")["host_imsic"],
        serde_json::json!({"guest_index_bits": 3, "hart_index_bits": 2,
                           "group_index_bits": 0, "group_index_shift": 24})
    );
    d.ctl("place --vm u --vcpus 2 --class burstable").ok();
    let vm = d.json("vm u");
    assert_eq!(gpas(&vm), [Value::Null, Value::Null]);
    assert_eq!(vm["guest_imsic"], Value::Null);
    assert_eq!(vm["guest_msi"], Value::Null);
    let table = d.ctl("vm u").ok().stdout;
    assert!(table.contains("GUEST IMSIC  unknown"), "{table}");
    let rows: Vec<&str> = table.lines().filter(|l| l.contains("vsfile")).collect();
    assert_eq!(rows.len(), 2, "{table}");
    assert!(rows.iter().all(|r| r.contains(" unknown ")), "{table}");
}

#[test]
fn other_layouts_and_refusals() {
    let d = Daemon::simulate("harts=4,files=5");
    let vm = d.json("place --vm c --vcpus 2 --class best-effort --vmm cloud-hypervisor");
    assert_eq!(gpas(&vm), ["0x4000000", "0x4001000"].map(Value::from));
    let vm = d.json(
        "place --vm s --vcpus 2 --class best-effort --imsic-base 0x40000000 --imsic-stride 0x10000",
    );
    assert_eq!(gpas(&vm), ["0x40000000", "0x40010000"].map(Value::from));
    let vm = d.json("place --vm p --vcpus 2 --class best-effort --imsic-gpa 0x9000,0x3000");
    assert_eq!(gpas(&vm), ["0x9000", "0x3000"].map(Value::from));
    // The daemon names the field; nothing is placed.
    let err = d
        .ctl("place --vm bad --vcpus 2 --class best-effort --imsic-base 0x1234 --imsic-stride 0x1000")
        .fails(2);
    assert!(err.contains("guest_imsic.strided.base"), "{err}");
    let err = d
        .ctl("place --vm bad --vcpus 2 --class best-effort --imsic-gpa 0x1000")
        .fails(2);
    assert!(err.contains("guest_imsic.per_vcpu.gpas"), "{err}");
    let err = d
        .ctl("place --vm bad --vcpus 2 --class best-effort --vmm qemu --vmm-sockets 3")
        .fails(2);
    assert!(err.contains("guest_imsic.qemu.sockets"), "{err}");
    // Flags that exclude each other, caught by ifactl itself.
    d.ctl("place --vm bad --vcpus 2 --class best-effort --vmm kvmtool --imsic-gpa 0x1000,0x2000")
        .fails(2);
    d.ctl("place --vm bad --vcpus 2 --class best-effort --vmm kvmtool --vmm-sockets 2")
        .fails(2);
    assert_eq!(d.json("vms").as_array().unwrap().len(), 3);
}
