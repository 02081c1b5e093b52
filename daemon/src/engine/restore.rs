//! Coming back after a restart: the saved ledger is checked against the
//! live host (harts present, VS-file counts, VMM processes alive), then
//! reconciled: VMs whose VMM is gone are released, VMs the host no longer
//! fits are placed again, vCPUs on offline harts are moved, drift re-pinned.

use tracing::{error, info, warn};

use crate::core::ledger::{Millis, VmRecord};
use crate::core::policy;
use crate::core::request::PlaceSpec;
use crate::core::{HartId, Ledger, VcpuKey};
use crate::engine::{Engine, EngineError};
use crate::host::SavedHost;
use crate::state::{Saved, StateDir};

/// What a restore found, for the log.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RestoreReport {
    pub vms: usize,
    /// Their VMM exited while ifad was down.
    pub released: usize,
    /// The host no longer fitted them as they were.
    pub replaced: usize,
    /// Could not be placed again (their class could not be honoured).
    pub lost: usize,
}

impl Engine {
    /// Takes back `saved` (taken at its own clock's `saved.at`) at `now`.
    /// The caller's first `tick` then reconciles with the host (the daemon
    /// runs it before it says ready).
    pub fn restore(&mut self, saved: Saved, now: Millis) -> RestoreReport {
        let Saved { at, snapshot } = saved;
        let mut ledger = snapshot.ledger;
        // Ledger times are on the old daemon's clock: keep their ages.
        let age = |t: Millis| now.saturating_sub(at.saturating_sub(t));
        for v in ledger.vms.iter_mut().flat_map(|vm| vm.vcpus.iter_mut()) {
            v.moved_at = v.moved_at.map(age);
            v.waiting_since = age(v.waiting_since);
        }
        let (ledger, left_out) = Ledger::restore(self.topology(), ledger);
        self.ledger = ledger;
        self.failed_entries = snapshot
            .failed_entries
            .into_iter()
            .filter(|k| self.ledger.vm(&k.vm).is_some())
            .collect();
        let kept: Vec<VmRecord> = self.ledger.vms().cloned().collect();
        let saved_host = SavedHost {
            global: &snapshot.host,
            vms: &snapshot.host_vms,
        };
        let found = self.host.restore(&saved_host, &kept);
        let mut report = RestoreReport::default();
        for (vm, vcpu, hart) in &found.stayed {
            let key = VcpuKey {
                vm: vm.clone(),
                vcpu: *vcpu,
            };
            let Ok(from) = self.ledger.vcpu(&key).map(|v| v.hart) else {
                continue;
            };
            let kept_there = policy::plan_migrate(self.topology(), &self.ledger, &key, *hart)
                .and_then(|m| policy::apply_moves(&mut self.ledger, [&m], now));
            match kept_there {
                Ok(()) => {
                    info!(vm = %vm, vcpu, from, to = hart, "kept where the host holds its VS-file: its hart has none free");
                }
                Err(e) => {
                    warn!(vm = %vm, vcpu, hart, "the host holds its VS-file elsewhere and the ledger cannot follow ({e}): pinned back, its entry may fail");
                    if let Err(e) = self.host.pin_vcpu(vm, *vcpu, from) {
                        warn!(vm = %vm, vcpu, "pinning back: {e}");
                    }
                }
            }
        }
        for id in &found.gone {
            info!(vm = %id, "its VMM exited while ifad was down");
            // A left-out VM is not in the ledger: it is simply not placed again.
            if self.ledger.vm(id).is_none()
                || self
                    .release_because(id, now, "its VMM exited while ifad was down")
                    .is_ok()
            {
                report.released += 1;
            }
        }
        for vm in left_out
            .into_iter()
            .filter(|vm| !found.gone.contains(&vm.id))
        {
            warn!(vm = %vm.id, "the host changed while ifad was down: placing it again");
            let id = vm.id.clone();
            match self.place(self.spec_of(vm), now) {
                Ok(_) => {
                    report.replaced += 1;
                    if let Some(&pid) = found.vmm.get(&id)
                        && let Err(e) = self.attach(&id, pid, now)
                    {
                        warn!(vm = %id, pid, "attaching again: {e}");
                    }
                }
                Err(e) => {
                    report.lost += 1;
                    error!(vm = %id, "could not place it again after a restart: {e}");
                }
            }
        }
        self.hotplug(now);
        report.vms = self.ledger.vm_count();
        report
    }

    /// Starts with nothing placed (no state, or one that could not be read
    /// back): the host lets go of whatever it still runs for an earlier
    /// daemon (the simulated host's VMMs exit; the Linux backend has no
    /// record of its VMMs and leaves them be).
    pub fn start_afresh(&mut self, now: Millis) {
        let found = self.host.restore(&SavedHost::none(), &[]);
        for id in &found.gone {
            info!(vm = %id, "its VMM exited while ifad was down");
        }
        self.hotplug(now);
    }

    /// The request that would place `vm` again, on harts that still exist.
    fn spec_of(&self, vm: VmRecord) -> PlaceSpec {
        let harts = self.topology().len() as HartId;
        // Placed again, it keeps the hint it was first placed with.
        let expected_irq_rates = vm.expected_irq_rates();
        PlaceSpec {
            vcpus: vm.vcpus.len() as u32,
            vm: vm.id,
            class: vm.class,
            devices: vm.devices,
            priority: vm.priority,
            // Emptied, it stays empty: a VM is never spread beyond what
            // its orchestrator allowed (it is refused, and logged lost).
            allowed: vm
                .allowed
                .map(|a| a.into_iter().filter(|&h| h < harts).collect()),
            guest_imsic: vm.guest_imsic,
            expected_irq_rates,
        }
    }

    /// From now on every acknowledged change is made durable in `store`
    /// before the reply; writes what was restored at once.
    pub fn persist_to(&mut self, store: StateDir, now: Millis) -> Result<(), EngineError> {
        self.store = Some(store);
        self.commits = super::Commits::Each;
        self.checkpoint(now)
    }
}
