//! After every change: let the host run, take what it shows as truth for
//! what only KVM decides, promote waiting vCPUs, and start pending VMs whose
//! files are really free.

use tracing::{error, info, warn};

use crate::core::ledger::Millis;
use crate::core::policy::Move;
use crate::core::rebalance;
use crate::core::reconcile::{self, Change};
use crate::core::{Observed, VcpuKey, VmId, policy};
use crate::engine::Engine;

/// vCPUs whose interrupt counts one tick reads at most (ticks are 500 ms
/// apart: 4,096 vCPUs are each read every 8 s).
const MEASURED_PER_TICK: usize = 256;
use crate::engine::events::{Event, EventKind};

/// Rounds of act / run / observe per settle; chains (a line freed by one
/// vCPU's entry promoting another) need more than one.
const MAX_ROUNDS: usize = 8;

impl Engine {
    /// Promotions are decided before the host runs: KVM hands a free line
    /// to whichever AUTO vCPU enters first, so the ledger must have chosen
    /// (and re-pinned) before anyone enters.
    pub(super) fn settle(&mut self, now: Millis) {
        for _ in 0..MAX_ROUNDS {
            let promoted = self.promote(now);
            self.host.settle();
            let changed = self.reconcile(now);
            let started = self.start_ready_vms();
            if !(promoted || changed || started) {
                break;
            }
        }
    }

    /// Takes in what the host shows; true if settling should go on. The
    /// core decides; the engine pins what must move, applies, and reports.
    fn reconcile(&mut self, now: Millis) -> bool {
        let seen = self.observations();
        let decided = reconcile::reconcile(
            self.host.topology(),
            &self.ledger,
            &seen,
            &self.failed_entries,
            now,
        );
        for change in &decided.changes {
            self.report(change);
        }
        self.pin(decided.pins());
        if let Err(e) = reconcile::apply(&mut self.ledger, &decided.changes, now) {
            error!("reconcile: {e}");
        }
        decided.settles_again()
    }

    /// Takes in what the host has counted of the vCPUs' interrupts: the
    /// core's pressure per vCPU, which orders swapping and promotion. A
    /// tick reads at most `MEASURED_PER_TICK` vCPUs (whole VMs, in turn):
    /// on Linux each is a procfs read, and the engine must stay responsive
    /// with thousands of vCPUs; the smoothing takes the real interval.
    pub(super) fn measure_interrupts(&mut self, now: Millis) {
        let vms: Vec<(u64, VmId)> = self
            .ledger
            .vms()
            .map(|vm| (vm.seq, vm.id.clone()))
            .collect();
        let start = vms
            .iter()
            .position(|(seq, _)| *seq >= self.measure_from)
            .unwrap_or(0);
        let (before, from_cursor) = vms.split_at(start);
        let mut budget = MEASURED_PER_TICK;
        self.measure_from = 0;
        for (seq, id) in from_cursor.iter().chain(before) {
            if budget == 0 {
                self.measure_from = *seq;
                break;
            }
            let counts = self.host.interrupt_counts(id);
            budget = budget.saturating_sub(counts.len().max(1));
            for (vcpu, count) in counts.into_iter().enumerate() {
                let key = VcpuKey {
                    vm: id.clone(),
                    vcpu: vcpu as u32,
                };
                if let Err(e) = self.ledger.observe_interrupts(&key, count, now) {
                    warn!(vm = %id, vcpu, "the host counts interrupts of a vCPU the ledger lacks: {e}");
                }
            }
        }
    }

    /// Lets a quiet burstable vCPU give its VS-file up to a far busier one
    /// waiting on MRIF, if the core finds it worth a move; promotion hands
    /// the line over once KVM freed it.
    pub(super) fn rebalance(&mut self, now: Millis) {
        let interval = self.config.min_move_interval;
        let decided = self.decide("rebalance", |t, l| {
            rebalance::plan_rebalance(t, l, now, interval)
        });
        let Some(r) = decided else { return };
        let m = &r.demote;
        let why = format!(
            "rebalanced: it takes {:.0} interrupts/s, vm {} vcpu {} waiting on MRIF {:.0}/s",
            r.demoted_rate, r.favoured.vm, r.favoured.vcpu, r.favoured_rate
        );
        info!(vm = %m.key.vm, vcpu = m.key.vcpu, from = m.from, to = m.to, "{why}");
        let moves: Vec<Move> = std::iter::once(m).chain(&r.cleared).cloned().collect();
        self.pin(&moves);
        self.events.emit(
            Event::new(EventKind::Demoted, why)
                .vm(&m.key.vm)
                .vcpu(m.key.vcpu)
                .moved(m.from, m.to, m.backing),
        );
        for c in &r.cleared {
            let why = format!(
                "rebalanced: off hart {} so that its line goes to vm {} vcpu {}",
                c.from, r.favoured.vm, r.favoured.vcpu
            );
            self.events.emit(
                Event::new(EventKind::Migrated, why)
                    .vm(&c.key.vm)
                    .vcpu(c.key.vcpu)
                    .moved(c.from, c.to, c.backing),
            );
        }
        if let Err(e) = policy::apply_moves(&mut self.ledger, &moves, now) {
            error!("rebalance: {e}");
        }
        self.metrics.rebalanced();
    }

    /// Per vCPU of every placed VM, in placement order, what the host shows.
    pub fn observations(&self) -> Vec<(VcpuKey, Observed)> {
        let mut news = Vec::new();
        for vm in self.ledger.vms() {
            let observed = self.host.observe(&vm.id);
            for (vcpu, (seen, rec)) in observed.into_iter().zip(&vm.vcpus).enumerate() {
                let key = || VcpuKey {
                    vm: vm.id.clone(),
                    vcpu: vcpu as u32,
                };
                let failed = || self.failed_entries.contains(&key());
                if reconcile::news(rec, vm.class, seen, failed).is_some() {
                    news.push((key(), seen));
                }
            }
        }
        news
    }

    /// Counts, logs and remembers one decision of the core.
    fn report(&mut self, change: &Change) {
        if change.is_correction() {
            self.corrected();
        }
        match change {
            Change::LeftOnMrif { key, hart } => {
                warn!(vm = %key.vm, vcpu = key.vcpu, hart, "KVM left a vCPU on MRIF the ledger gave a VS-file");
            }
            Change::UnexpectedFile { key, hart, .. } => {
                warn!(vm = %key.vm, vcpu = key.vcpu, hart, "KVM gave a VS-file the ledger did not expect");
            }
            Change::NowhereToGo { key, hart } => {
                error!(vm = %key.vm, vcpu = key.vcpu, hart, "a vCPU holds a VS-file promised to another and has nowhere to go");
            }
            Change::Stranded { key, hart } => {
                error!(vm = %key.vm, vcpu = key.vcpu, hart, "guaranteed vCPU lost its VS-file to an AUTO vCPU that may not leave the hart, and none is free elsewhere: its next entry will fail");
                self.metrics.stranded(1);
            }
            Change::EntryFailed { key, hart } => {
                self.failed_changed |= self.failed_entries.insert(key.clone());
                self.metrics.hwaccel_entry_failed();
                error!(vm = %key.vm, vcpu = key.vcpu, hart, "HWACCEL guest entry failed: no free VS-file; the VMM stops the VM, release and place it again");
            }
            Change::Observed { .. }
            | Change::RaceWon { .. }
            | Change::PromiseVoided { .. }
            | Change::MovedAway(_)
            | Change::Rehomed(_) => {}
        }
    }

    /// Hands free VS-files to waiting burstable vCPUs; true if any moved.
    fn promote(&mut self, now: Millis) -> bool {
        let interval = self.config.min_move_interval;
        let moves = self.decide("promote", |t, l| {
            policy::plan_promotions(t, l, now, interval)
        });
        if moves.is_empty() {
            return false;
        }
        self.pin(&moves);
        for m in &moves {
            // Waiters are promoted busiest first: the event says how busy.
            let rate = self.ledger.interrupt_rate(&m.key).unwrap_or(0.0);
            let why = format!("a VS-file came free; it takes {rate:.0} interrupts/s");
            info!(vm = %m.key.vm, vcpu = m.key.vcpu, from = m.from, to = m.to, "promoted to a VS-file: {why}");
            self.events.emit(
                Event::new(EventKind::Promoted, why)
                    .vm(&m.key.vm)
                    .vcpu(m.key.vcpu)
                    .moved(m.from, m.to, m.backing),
            );
        }
        if let Err(e) = policy::apply_moves(&mut self.ledger, &moves, now) {
            error!("promotion: {e}");
        }
        self.metrics.promoted(moves.len());
        true
    }

    /// Resumes pending VMs whose reserved lines are all free now.
    fn start_ready_vms(&mut self) -> bool {
        let topology = self.host.topology();
        let ready: Vec<VmId> = self
            .ledger
            .vms()
            .filter(|vm| {
                vm.pending
                    && vm
                        .vcpus
                        .iter()
                        .all(|v| self.ledger.settled(topology, v.hart))
            })
            .map(|vm| vm.id.clone())
            .collect();
        for id in &ready {
            match self.host.resume_vm(id) {
                Ok(()) => {
                    self.ledger.set_pending(id, false);
                    info!(vm = %id, "ready: its VS-files are free, resumed");
                }
                Err(e) => error!(vm = %id, "resume failed: {e}"),
            }
        }
        !ready.is_empty()
    }

    fn corrected(&mut self) {
        self.corrections += 1;
        self.metrics.ledger_corrected();
    }
}
