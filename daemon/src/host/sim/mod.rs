//! The simulated RISC-V KVM host: `SimKvm` plays the kernel, and each placed
//! VM is a simulated VMM whose vCPU threads run wherever their affinity says.

pub mod kvm;
pub mod spec;

use std::collections::HashMap;

use crate::core::{AiaMode, HartId, Topology, VmId};
use crate::host::{Host, HostError, Observed};
use kvm::{Entry, SimKvm, VmHandle};
pub use spec::SimSpec;

pub struct SimHost {
    topology: Topology,
    kvm: SimKvm,
    vms: HashMap<VmId, VmHandle>,
}

impl SimHost {
    pub fn new(topology: Topology) -> Self {
        let kvm = SimKvm::new(topology.harts().iter().map(|h| h.vsfiles));
        SimHost {
            topology,
            kvm,
            vms: HashMap::new(),
        }
    }

    pub fn from_spec(spec: &SimSpec) -> Self {
        SimHost::new(Topology::uniform(spec.harts, spec.files, spec.numa))
    }

    /// The simulated kernel, for tests that compare it with the ledger.
    pub fn kvm(&self) -> &SimKvm {
        &self.kvm
    }
}

impl Host for SimHost {
    fn kind(&self) -> &'static str {
        "simulated"
    }

    fn topology(&self) -> &Topology {
        &self.topology
    }

    fn apply_vm(&mut self, vm: &VmId, mode: AiaMode, harts: &[HartId]) -> Result<(), HostError> {
        let err = |e: kvm::KvmError| HostError::Vm {
            vm: vm.clone(),
            reason: e.to_string(),
        };
        let handle = match self.vms.get(vm) {
            Some(&h) => h,
            None => {
                let h = self.kvm.create_vm(mode, harts.len()).map_err(err)?;
                self.vms.insert(vm.clone(), h);
                h
            }
        };
        for (vcpu, &hart) in harts.iter().enumerate() {
            self.kvm.set_affinity(handle, vcpu, &[hart]).map_err(err)?;
        }
        Ok(())
    }

    fn release_vm(&mut self, vm: &VmId) -> Result<(), HostError> {
        let handle = self.vms.remove(vm).ok_or_else(|| HostError::Vm {
            vm: vm.clone(),
            reason: "not running on the simulated host".into(),
        })?;
        self.kvm.destroy_vm(handle).map_err(|e| HostError::Vm {
            vm: vm.clone(),
            reason: e.to_string(),
        })
    }

    fn settle(&mut self) {
        let vms: Vec<(VmHandle, usize)> = self.kvm.vm_handles().collect();
        for (handle, vcpus) in vms {
            for vcpu in 0..vcpus {
                // Handles come from the live list, so entry cannot miss.
                let _ = self.kvm.enter(handle, vcpu);
            }
        }
    }

    fn held_vsfiles(&self) -> Option<Vec<u32>> {
        Some(
            (0..self.topology.len() as u32)
                .map(|cpu| self.kvm.used_lines(cpu))
                .collect(),
        )
    }

    fn observe(&self, vm: &VmId) -> Vec<Observed> {
        let Some(&handle) = self.vms.get(vm) else {
            return Vec::new();
        };
        let vcpus = self
            .kvm
            .vm_handles()
            .find(|&(h, _)| h == handle)
            .map_or(0, |(_, n)| n);
        (0..vcpus)
            .map(|vcpu| match self.kvm.last_entry(handle, vcpu) {
                Ok(Some(Entry::VsFile { cpu, line })) => Observed::VsFile { hart: cpu, line },
                Ok(Some(Entry::SwFile { cpu })) => Observed::Mrif { hart: cpu },
                Ok(Some(Entry::Failed { cpu })) => Observed::EntryFailed { hart: cpu },
                _ => Observed::Unknown,
            })
            .collect()
    }
}
