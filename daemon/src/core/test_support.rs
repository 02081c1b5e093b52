//! Helpers the core's unit tests share: requests, and KVM's entries as the
//! ledger predicts them.

use crate::core::request::PlaceSpec;
use crate::core::{Backing, Class, HartId, Ledger, VcpuKey};

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
