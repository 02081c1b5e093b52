//! What a Linux host could count of each simulated vCPU's interrupts
//! (issue 14). The rig measured that a vCPU thread's voluntary context
//! switches count its wake-ups, on a VS-file as on MRIF: every interrupt
//! wakes a vCPU halted in WFI, and the thread blocks again when the guest
//! next halts. The model: a running vCPU's thread wakes once per interrupt
//! (an interrupt-driven guest that halts between interrupts, as the rig's
//! guests do); a vCPU that does not run (its VMM paused, its VM stopped)
//! shows nothing.

use std::collections::HashMap;

use crate::core::ledger::Millis;
use crate::core::pressure::InterruptCount;
use crate::core::{Observed, VmId};

/// Whether the host sees a vCPU's interrupts now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Visibility {
    Counted,
    Unseen,
}

impl Visibility {
    /// What the host counts of a vCPU in the state `seen`.
    pub fn of(seen: &Observed) -> Self {
        match seen {
            Observed::VsFile { .. } | Observed::Mrif { .. } => Visibility::Counted,
            Observed::EntryFailed { .. } | Observed::Unknown => Visibility::Unseen,
        }
    }
}

#[derive(Debug, Clone)]
struct VmInterrupts {
    /// Interrupts per second, per vCPU.
    rates: Vec<f64>,
    /// What the host has counted so far, per vCPU.
    counted: Vec<f64>,
    visible: Vec<Visibility>,
}

/// Every simulated VM's interrupt rates and counts, on the simulation's
/// clock.
#[derive(Debug, Clone, Default)]
pub struct SimInterrupts {
    vms: HashMap<VmId, VmInterrupts>,
    clock: Millis,
}

impl SimInterrupts {
    pub fn add_vm(&mut self, vm: &VmId, vcpus: usize) {
        self.vms.insert(
            vm.clone(),
            VmInterrupts {
                rates: vec![0.0; vcpus],
                counted: vec![0.0; vcpus],
                visible: vec![Visibility::Unseen; vcpus],
            },
        );
    }

    pub fn remove_vm(&mut self, vm: &VmId) {
        self.vms.remove(vm);
    }

    /// False if the VM or vCPU is unknown.
    pub fn set_rate(&mut self, vm: &VmId, vcpu: u32, per_second: f64) -> bool {
        match self
            .vms
            .get_mut(vm)
            .and_then(|v| v.rates.get_mut(vcpu as usize))
        {
            Some(r) => {
                *r = per_second.max(0.0);
                true
            }
            None => false,
        }
    }

    /// Counts what the host saw from the last call until `now`, each vCPU
    /// as visible as it was over that time.
    pub fn advance(&mut self, now: Millis) {
        let dt = now.saturating_sub(self.clock) as f64 / 1000.0;
        self.clock = self.clock.max(now);
        for vm in self.vms.values_mut() {
            for ((counted, rate), vis) in vm.counted.iter_mut().zip(&vm.rates).zip(&vm.visible) {
                if *vis == Visibility::Counted {
                    *counted += rate * dt;
                }
            }
        }
    }

    /// Takes in how visible each vCPU is from now on (`seen`: per VM, what
    /// the host shows of its vCPUs).
    pub fn refresh(&mut self, seen: impl Fn(&VmId) -> Vec<Observed>) {
        for (id, vm) in &mut self.vms {
            for (vis, o) in vm.visible.iter_mut().zip(seen(id).iter()) {
                *vis = Visibility::of(o);
            }
        }
    }

    /// Per vCPU, the count so far where the host sees it in `seen` (what
    /// the host shows of the VM now).
    pub fn counts_seen(&self, vm: &VmId, seen: &[Observed]) -> Vec<InterruptCount> {
        let visible: Vec<Visibility> = seen.iter().map(Visibility::of).collect();
        self.counts_with(vm, &visible)
    }

    /// Per vCPU, the count so far where the host saw it at the last
    /// `refresh`.
    #[cfg(test)]
    pub fn counts(&self, vm: &VmId) -> Vec<InterruptCount> {
        let visible = self
            .vms
            .get(vm)
            .map(|v| v.visible.clone())
            .unwrap_or_default();
        self.counts_with(vm, &visible)
    }

    fn counts_with(&self, vm: &VmId, visible: &[Visibility]) -> Vec<InterruptCount> {
        let Some(v) = self.vms.get(vm) else {
            return Vec::new();
        };
        v.counted
            .iter()
            .zip(visible)
            .map(|(&c, &vis)| (vis == Visibility::Counted).then_some(c as u64))
            .collect()
    }
}

#[cfg(test)]
#[path = "interrupts_tests.rs"]
mod tests;
