//! The simulated RISC-V KVM host: `SimKvm` plays the kernel, and each placed
//! VM is a simulated VMM (started paused, as QEMU `-S`) whose vCPU threads
//! run wherever their affinity says.

pub mod kvm;
pub mod spec;

use std::collections::HashMap;

use crate::core::ledger::VmRecord;
use crate::core::{AiaMode, Bdf, HartId, Topology, VmId};
use crate::host::{Host, HostError, Observed, Restored};
use kvm::{Entry, KvmError, SimKvm, VmHandle};
pub use spec::SimSpec;

pub struct SimHost {
    topology: Topology,
    kvm: SimKvm,
    vms: HashMap<VmId, (VmHandle, usize)>,
    topology_changed: bool,
}

impl SimHost {
    pub fn new(topology: Topology) -> Self {
        let kvm = SimKvm::new(topology.harts().iter().map(|h| h.vsfiles));
        SimHost {
            topology,
            kvm,
            vms: HashMap::new(),
            topology_changed: false,
        }
    }

    pub fn from_spec(spec: &SimSpec) -> Self {
        SimHost::new(Topology::uniform(spec.harts, spec.files, spec.numa))
    }

    /// The simulated kernel, for tests that compare it with the ledger.
    pub fn kvm(&self) -> &SimKvm {
        &self.kvm
    }

    /// Takes a hart offline or online, as `echo 0 > cpuN/online` would.
    pub fn set_hart_online(&mut self, hart: HartId, online: bool) -> Result<(), HostError> {
        self.kvm
            .set_cpu_online(hart, online)
            .map_err(|e| HostError::Hart {
                hart,
                reason: e.to_string(),
            })?;
        if self.topology.set_online(hart, online) {
            self.topology_changed = true;
        }
        Ok(())
    }

    /// Blocks or wakes a vCPU (an idle guest halted in WFI).
    pub fn set_blocked(&mut self, vm: &VmId, vcpu: u32, blocked: bool) -> Result<(), HostError> {
        let (h, _) = self.handle(vm)?;
        self.kvm
            .set_blocked(h, vcpu as usize, blocked)
            .map_err(|e| vm_err(vm, e))
    }

    fn handle(&self, vm: &VmId) -> Result<(VmHandle, usize), HostError> {
        self.vms.get(vm).copied().ok_or_else(|| HostError::Vm {
            vm: vm.clone(),
            reason: "not running on the simulated host".into(),
        })
    }
}

fn vm_err(vm: &VmId, e: KvmError) -> HostError {
    HostError::Vm {
        vm: vm.clone(),
        reason: e.to_string(),
    }
}

impl Host for SimHost {
    fn kind(&self) -> &'static str {
        "simulated"
    }

    fn topology(&self) -> &Topology {
        &self.topology
    }

    fn refresh_topology(&mut self) -> bool {
        std::mem::take(&mut self.topology_changed)
    }

    fn create_vm(
        &mut self,
        vm: &VmId,
        mode: AiaMode,
        harts: &[HartId],
        _devices: &[Bdf],
    ) -> Result<(), HostError> {
        let h = self
            .kvm
            .create_vm(mode, harts.len())
            .map_err(|e| vm_err(vm, e))?;
        self.vms.insert(vm.clone(), (h, harts.len()));
        self.kvm.set_paused(h, true).map_err(|e| vm_err(vm, e))?;
        for (vcpu, &hart) in harts.iter().enumerate() {
            self.pin_vcpu(vm, vcpu as u32, hart)?;
        }
        Ok(())
    }

    fn resume_vm(&mut self, vm: &VmId) -> Result<(), HostError> {
        let (h, _) = self.handle(vm)?;
        self.kvm.set_paused(h, false).map_err(|e| vm_err(vm, e))
    }

    fn pin_vcpu(&mut self, vm: &VmId, vcpu: u32, hart: HartId) -> Result<(), HostError> {
        let (h, _) = self.handle(vm)?;
        self.kvm
            .set_affinity(h, vcpu as usize, &[hart])
            .map_err(|e| vm_err(vm, e))
    }

    fn release_vm(&mut self, vm: &VmId) -> Result<(), HostError> {
        let (h, _) = self.handle(vm)?;
        self.vms.remove(vm);
        self.kvm.destroy_vm(h).map_err(|e| vm_err(vm, e))
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

    fn observe(&self, vm: &VmId) -> Vec<Observed> {
        let Some(&(handle, vcpus)) = self.vms.get(vm) else {
            return Vec::new();
        };
        (0..vcpus)
            .map(|vcpu| {
                let held = self.kvm.held_line(handle, vcpu).ok().flatten();
                match (self.kvm.last_entry(handle, vcpu).ok().flatten(), held) {
                    (Some(Entry::Failed { cpu }), _) => Observed::EntryFailed { hart: cpu },
                    (_, Some((cpu, line))) => Observed::VsFile { hart: cpu, line },
                    (Some(Entry::SwFile { cpu } | Entry::VsFile { cpu, .. }), None) => {
                        Observed::Mrif { hart: cpu }
                    }
                    (None, None) => Observed::Unknown,
                }
            })
            .collect()
    }

    fn held_vsfiles(&self) -> Option<Vec<u32>> {
        Some(
            (0..self.topology.len() as u32)
                .map(|cpu| self.kvm.used_lines(cpu))
                .collect(),
        )
    }

    fn sim(&mut self) -> Option<&mut SimHost> {
        Some(self)
    }

    /// The simulated VMMs and KVM itself: they outlive the daemon.
    fn save(&self) -> serde_json::Value {
        let mut vms: Vec<(VmId, VmHandle, usize)> = self
            .vms
            .iter()
            .map(|(id, &(h, n))| (id.clone(), h, n))
            .collect();
        // Sorted, so an unchanged host saves the same bytes (no write).
        vms.sort();
        let saved = Saved {
            kvm: self.kvm.clone(),
            vms,
        };
        serde_json::to_value(saved).expect("plain data")
    }

    fn restore(&mut self, saved: &serde_json::Value, kept: &[VmRecord]) -> Restored {
        let Ok(saved) = serde_json::from_value::<Saved>(saved.clone()) else {
            // Nothing (or nothing usable) saved: no simulated VM survived.
            for vm in kept {
                let harts: Vec<HartId> = vm.vcpus.iter().map(|v| v.hart).collect();
                let _ = self.create_vm(&vm.id, vm.class.aia_mode(), &harts, &vm.devices);
                let _ = self.resume_vm(&vm.id);
            }
            return Restored::default();
        };
        self.kvm = saved.kvm;
        let lines: Vec<u8> = self.topology.harts().iter().map(|h| h.vsfiles).collect();
        self.kvm.reshape(&lines);
        for h in 0..self.topology.len() as HartId {
            self.topology.set_online(h, self.kvm.is_online(h));
        }
        self.vms = saved
            .vms
            .into_iter()
            .map(|(id, h, n)| (id, (h, n)))
            .collect();
        let stale: Vec<VmId> = self
            .vms
            .keys()
            .filter(|id| !kept.iter().any(|k| &k.id == *id))
            .cloned()
            .collect();
        for id in stale {
            let _ = self.release_vm(&id);
        }
        Restored::default()
    }
}

/// What the simulated host saves.
#[derive(serde::Serialize, serde::Deserialize)]
struct Saved {
    kvm: SimKvm,
    vms: Vec<(VmId, VmHandle, usize)>,
}
