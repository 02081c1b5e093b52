//! Rebuilding the ledger from saved records after a restart. The host may
//! have changed while the daemon was down, so records that no longer fit it
//! are handed back, to be placed again, instead of over-committing a hart.

use super::{Ledger, VmRecord};
use crate::core::{Backing, HartId, Topology};

/// What is saved of the ledger; the indexes are rebuilt from it.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SavedLedger {
    /// In placement order.
    pub vms: Vec<VmRecord>,
    pub drained: Vec<HartId>,
    pub next_seq: u64,
}

impl Ledger {
    pub fn save(&self) -> SavedLedger {
        SavedLedger {
            vms: self.vms.values().cloned().collect(),
            drained: self.drained_harts(),
            next_seq: self.next_seq,
        }
    }

    pub fn drained_harts(&self) -> Vec<HartId> {
        (0..self.drained.len() as HartId)
            .filter(|&h| self.is_drained(h))
            .collect()
    }

    /// Rebuilds the ledger on today's `topology`. Left out and returned:
    /// a VM with a vCPU on a hart that no longer exists, a VM whose id or
    /// device another saved VM already has, and, newest first, VMs on a hart
    /// whose VS-file count shrank until the rest fit. Lines held on harts
    /// that vanished are forgotten: KVM cannot hold them.
    pub fn restore(topology: &Topology, saved: SavedLedger) -> (Ledger, Vec<VmRecord>) {
        let mut ledger = Ledger::new(topology);
        ledger.next_seq = saved.next_seq;
        let harts = topology.len() as HartId;
        let mut left_out = Vec::new();
        let mut vms = saved.vms;
        vms.sort_by_key(|vm| vm.seq);
        for mut vm in vms {
            let fits = vm.vcpus.iter().all(|v| v.hart < harts)
                && !ledger.ids.contains_key(&vm.id)
                && !ledger.vms.contains_key(&vm.seq)
                && vm
                    .devices
                    .iter()
                    .all(|d| !ledger.device_owner.contains_key(d));
            if !fits {
                left_out.push(vm);
                continue;
            }
            for v in &mut vm.vcpus {
                if v.held_on.is_some_and(|h| h >= harts) {
                    v.held_on = None;
                    v.line = None;
                }
            }
            ledger.next_seq = ledger.next_seq.max(vm.seq + 1);
            ledger.adopt(vm);
        }
        for h in saved.drained {
            ledger.set_drained(h, true);
        }
        while let Some(hart) = topology
            .harts()
            .iter()
            .find(|h| ledger.load(h.id).vsfiles_used > u32::from(h.vsfiles))
        {
            let newest = ledger
                .vms
                .values()
                .rev()
                .find(|vm| {
                    vm.vcpus
                        .iter()
                        .any(|v| v.hart == hart.id && v.backing == Backing::VsFile)
                })
                .map(|vm| vm.id.clone())
                .expect("an over-committed hart has a VS-file vCPU");
            left_out.push(ledger.remove(&newest).expect("just found"));
        }
        (ledger, left_out)
    }

    /// Takes a whole saved record, as it was.
    fn adopt(&mut self, vm: VmRecord) {
        let seq = vm.seq;
        for dev in &vm.devices {
            self.device_owner.insert(*dev, vm.id.clone());
        }
        self.ids.insert(vm.id.clone(), seq);
        self.changes.vms.insert(vm.id.clone());
        let vcpus = vm.vcpus.len() as u32;
        self.vms.insert(seq, vm);
        for vcpu in 0..vcpus {
            self.index(seq, vcpu, true);
        }
    }
}

#[cfg(test)]
#[path = "ledger_restore_tests.rs"]
mod tests;
