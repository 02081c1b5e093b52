//! The benchmark host: 1024 harts x 63 VS-files (the RV64 maximum), two
//! NUMA nodes, 50,000 resident vCPUs in 16-vCPU VMs of every class, each
//! vCPU already entered (KVM holds the lines the ledger says).

use ifad::core::ledger::Millis;
use ifad::core::policy;
use ifad::core::request::PlaceSpec;
use ifad::core::{Backing, Class, Ledger, Topology, VcpuKey, VmId};

pub const HARTS: u32 = 1024;
pub const FILES: u8 = 63;
pub const RESIDENT_VCPUS: usize = 50_000;
pub const VM_VCPUS: u32 = 16;

pub fn topology() -> Topology {
    Topology::uniform(HARTS, FILES, 2)
}

fn class_of(i: usize) -> Class {
    match i % 5 {
        0 | 1 => Class::Guaranteed,
        2 | 3 => Class::Burstable,
        _ => Class::BestEffort,
    }
}

pub fn spec(name: &str, class: Class) -> PlaceSpec {
    PlaceSpec::parse(name, VM_VCPUS, Some(class), &[]).expect("valid spec")
}

/// Places a VM and has KVM take the lines, as the engine's settle would.
pub fn place(t: &Topology, l: &mut Ledger, s: &PlaceSpec, now: Millis) {
    let p = policy::plan_place(t, l, s).expect("fits");
    policy::apply_placement(l, s, &p, now).expect("applies");
    for (i, &(hart, backing)) in p.vcpus.iter().enumerate() {
        let key = VcpuKey {
            vm: s.vm.clone(),
            vcpu: i as u32,
        };
        let held = (backing == Backing::VsFile).then_some(hart);
        l.observed(&key, held, held.map(|_| 1)).expect("live");
    }
}

pub fn resident(t: &Topology) -> Ledger {
    let mut l = Ledger::new(t);
    for i in 0..RESIDENT_VCPUS / VM_VCPUS as usize {
        place(t, &mut l, &spec(&format!("vm{i}"), class_of(i)), 0);
    }
    l
}

pub fn id(name: &str) -> VmId {
    VmId::parse(name).expect("valid id")
}
