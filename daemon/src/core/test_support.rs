//! Helpers the core's unit tests share: requests, and KVM's entries as the
//! ledger predicts them.

use crate::core::request::PlaceSpec;
use crate::core::{Backing, Class, HartId, Ledger, VcpuKey, VmId};

/// A request with no devices.
pub fn spec(vm: &str, vcpus: u32, class: Class) -> PlaceSpec {
    PlaceSpec::parse(vm, vcpus, Some(class), &[]).unwrap()
}

/// What KVM does once every vCPU has entered: each holds a line exactly
/// where the ledger intends.
pub fn run_all(l: &mut Ledger) {
    let all: Vec<(VcpuKey, Option<HartId>)> = l
        .vms()
        .flat_map(|vm| {
            vm.vcpus.iter().enumerate().map(|(i, v)| {
                let key = VcpuKey {
                    vm: vm.id.clone(),
                    vcpu: i as u32,
                };
                (key, (v.backing == Backing::VsFile).then_some(v.hart))
            })
        })
        .collect();
    for (key, held) in all {
        l.observed(&key, held, held.map(|_| 1)).unwrap();
    }
}

/// Two readings of vCPU 0's interrupt count one second apart: it takes
/// `per_second`.
pub fn measured(l: &mut Ledger, vm: &str, per_second: u64) {
    let key = VcpuKey {
        vm: VmId::parse(vm).unwrap(),
        vcpu: 0,
    };
    l.observe_interrupts(&key, Some(0), 0).unwrap();
    l.observe_interrupts(&key, Some(per_second), 1000).unwrap();
}
