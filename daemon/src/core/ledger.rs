//! Who holds what: every placed VM, its vCPUs' harts and backings, and the
//! per-hart counts placement decides on. The counts are kept incrementally
//! (placement reads them on every decision) and `verify` recomputes them.

use std::collections::{BTreeMap, HashMap};

use crate::core::policy::Assignment;
use crate::core::request::PlaceSpec;
use crate::core::{Backing, Bdf, Class, CoreError, HartId, Topology, VcpuKey, VmId};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VcpuRecord {
    pub hart: HartId,
    pub backing: Backing,
    /// Guest external interrupt line of the VS-file, once the host has
    /// reported which one KVM gave (KVM picks the lowest free line).
    pub line: Option<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmRecord {
    pub id: VmId,
    pub class: Class,
    pub devices: Vec<Bdf>,
    pub vcpus: Vec<VcpuRecord>,
    /// Placement order; earlier VMs win ties, as they entered KVM first.
    pub seq: u64,
}

/// Per-hart occupancy.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HartLoad {
    pub vsfiles_used: u32,
    pub vcpus: u32,
}

#[derive(Debug, Clone, Default)]
pub struct Ledger {
    vms: BTreeMap<VmId, VmRecord>,
    load: Vec<HartLoad>,
    device_owner: HashMap<Bdf, VmId>,
    next_seq: u64,
}

impl Ledger {
    pub fn new(topology: &Topology) -> Self {
        Ledger {
            load: vec![HartLoad::default(); topology.len()],
            ..Ledger::default()
        }
    }

    pub fn vm(&self, id: &VmId) -> Option<&VmRecord> {
        self.vms.get(id)
    }

    pub fn vms(&self) -> impl Iterator<Item = &VmRecord> {
        self.vms.values()
    }

    pub fn load(&self, hart: HartId) -> HartLoad {
        self.load.get(hart as usize).copied().unwrap_or_default()
    }

    pub fn vsfiles_used(&self) -> u32 {
        self.load.iter().map(|l| l.vsfiles_used).sum()
    }

    /// Free VS-files of a hart (0 when offline or unknown).
    pub fn free(&self, topology: &Topology, hart: HartId) -> u32 {
        match topology.hart(hart) {
            Some(h) if h.online => {
                u32::from(h.vsfiles).saturating_sub(self.load(hart).vsfiles_used)
            }
            _ => 0,
        }
    }

    /// Refuses what a placement could not take: a known VM id or a device
    /// another VM holds.
    pub fn check_admissible(&self, spec: &PlaceSpec) -> Result<(), CoreError> {
        if self.vms.contains_key(&spec.vm) {
            return Err(CoreError::VmExists(spec.vm.clone()));
        }
        for dev in &spec.devices {
            if let Some(owner) = self.device_owner.get(dev) {
                return Err(CoreError::DeviceInUse {
                    device: dev.to_string(),
                    owner: owner.clone(),
                });
            }
        }
        Ok(())
    }

    /// Records a planned placement. The plan must come from `policy::plan`
    /// against this ledger, which already checked admissibility and capacity.
    pub fn commit(&mut self, spec: &PlaceSpec, plan: &[Assignment]) {
        debug_assert_eq!(plan.len(), spec.vcpus as usize);
        let vcpus = plan
            .iter()
            .map(|a| {
                self.add_load(a.hart, a.backing);
                VcpuRecord {
                    hart: a.hart,
                    backing: a.backing,
                    line: None,
                }
            })
            .collect();
        for dev in &spec.devices {
            self.device_owner.insert(*dev, spec.vm.clone());
        }
        self.vms.insert(
            spec.vm.clone(),
            VmRecord {
                id: spec.vm.clone(),
                class: spec.class,
                devices: spec.devices.clone(),
                vcpus,
                seq: self.next_seq,
            },
        );
        self.next_seq += 1;
    }

    /// Forgets a VM and everything it held.
    pub fn remove(&mut self, id: &VmId) -> Result<VmRecord, CoreError> {
        let record = self
            .vms
            .remove(id)
            .ok_or_else(|| CoreError::VmNotFound(id.clone()))?;
        for v in &record.vcpus {
            let load = &mut self.load[v.hart as usize];
            load.vcpus -= 1;
            if v.backing == Backing::VsFile {
                load.vsfiles_used -= 1;
            }
        }
        for dev in &record.devices {
            self.device_owner.remove(dev);
        }
        Ok(record)
    }

    /// Changes a vCPU's backing on its hart, as KVM did (an AUTO upgrade or
    /// fallback). Refused if the hart has no free VS-file for an upgrade.
    pub fn set_backing(
        &mut self,
        topology: &Topology,
        key: &VcpuKey,
        backing: Backing,
    ) -> Result<(), CoreError> {
        let (hart, old) = {
            let v = self.vcpu(key)?;
            (v.hart, v.backing)
        };
        if old == backing {
            return Ok(());
        }
        if backing == Backing::VsFile && self.free(topology, hart) == 0 {
            return Err(CoreError::Refused(format!(
                "hart {hart} has no free VS-file for vm {} vcpu {}",
                key.vm, key.vcpu
            )));
        }
        let load = &mut self.load[hart as usize];
        match backing {
            Backing::VsFile => load.vsfiles_used += 1,
            Backing::Mrif => load.vsfiles_used -= 1,
        }
        let v = self.vcpu_mut(key)?;
        v.backing = backing;
        if backing == Backing::Mrif {
            v.line = None;
        }
        Ok(())
    }

    /// Records the VS-file line the host reported for a vCPU.
    pub fn set_line(&mut self, key: &VcpuKey, line: Option<u8>) -> Result<(), CoreError> {
        self.vcpu_mut(key)?.line = line;
        Ok(())
    }

    pub fn vcpu(&self, key: &VcpuKey) -> Result<&VcpuRecord, CoreError> {
        self.vms
            .get(&key.vm)
            .and_then(|vm| vm.vcpus.get(key.vcpu as usize))
            .ok_or_else(|| CoreError::VmNotFound(key.vm.clone()))
    }

    fn vcpu_mut(&mut self, key: &VcpuKey) -> Result<&mut VcpuRecord, CoreError> {
        self.vms
            .get_mut(&key.vm)
            .and_then(|vm| vm.vcpus.get_mut(key.vcpu as usize))
            .ok_or_else(|| CoreError::VmNotFound(key.vm.clone()))
    }

    fn add_load(&mut self, hart: HartId, backing: Backing) {
        let load = &mut self.load[hart as usize];
        load.vcpus += 1;
        if backing == Backing::VsFile {
            load.vsfiles_used += 1;
        }
    }

    /// Recomputes every count from the records and checks the invariants:
    /// counts agree, no hart holds more VS-files than it has, no VS-file on
    /// an offline hart, no guaranteed vCPU on MRIF, no best-effort on a VS-file.
    pub fn verify(&self, topology: &Topology) -> Result<(), String> {
        let mut load = vec![HartLoad::default(); topology.len()];
        for vm in self.vms.values() {
            for (i, v) in vm.vcpus.iter().enumerate() {
                let l = load
                    .get_mut(v.hart as usize)
                    .ok_or_else(|| format!("vm {} vcpu {i} on unknown hart {}", vm.id, v.hart))?;
                l.vcpus += 1;
                if v.backing == Backing::VsFile {
                    l.vsfiles_used += 1;
                }
                match (vm.class, v.backing) {
                    (Class::Guaranteed, Backing::Mrif) => {
                        return Err(format!("guaranteed vm {} vcpu {i} is on MRIF", vm.id));
                    }
                    (Class::BestEffort, Backing::VsFile) => {
                        return Err(format!("best-effort vm {} vcpu {i} holds a VS-file", vm.id));
                    }
                    _ => {}
                }
            }
        }
        if load != self.load {
            return Err("per-hart counts differ from the records".into());
        }
        for (h, l) in topology.harts().iter().zip(&load) {
            let cap = if h.online { u32::from(h.vsfiles) } else { 0 };
            if l.vsfiles_used > cap {
                return Err(format!(
                    "hart {} holds {} VS-files of {cap}",
                    h.id, l.vsfiles_used
                ));
            }
        }
        Ok(())
    }
}
