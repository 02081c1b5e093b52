//! After every change: let the host run, take what it shows as truth for
//! what only KVM decides, promote waiting vCPUs, and start pending VMs whose
//! files are really free.

use tracing::{error, info, warn};

use crate::core::ledger::Millis;
use crate::core::policy;
use crate::core::{Backing, Class, VcpuKey, VmId};
use crate::engine::Engine;
use crate::engine::events::{Event, EventKind};
use crate::host::Observed;

/// How an observation differs from what the ledger predicted.
enum Surprise {
    None,
    /// KVM gave an AUTO vCPU a line the ledger had it waiting for.
    GotFile(u32, u8),
    /// An AUTO vCPU the ledger gave a line is on MRIF.
    NoFile(u32),
}

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
        self.metrics.refresh(self.host.topology(), &self.ledger);
    }

    /// Takes in what the host shows; true if the ledger changed. Where KVM
    /// decided differently from the ledger's prediction (possible on a real
    /// host, where entry order is a race), KVM wins and it is counted.
    fn reconcile(&mut self, now: Millis) -> bool {
        let mut changed = false;
        let ids: Vec<VmId> = self.ledger.vms().map(|r| r.id.clone()).collect();
        let mut upgrades = Vec::new();
        let mut short = Vec::new();
        for id in ids {
            for (vcpu, seen) in self.host.observe(&id).into_iter().enumerate() {
                let key = VcpuKey {
                    vm: id.clone(),
                    vcpu: vcpu as u32,
                };
                let before = self.ledger.vcpu(&key).ok().cloned();
                match self.record(&key, seen) {
                    Surprise::None => {}
                    Surprise::GotFile(hart, line) => upgrades.push((key.clone(), hart, line)),
                    Surprise::NoFile(hart) => short.push((key.clone(), hart)),
                }
                changed |= self.ledger.vcpu(&key).ok() != before.as_ref();
            }
        }
        // Several AUTO vCPUs waiting on one hart race for a line freed
        // there: the ledger promised it to one, KVM gave it to whichever
        // entered first. That is the race, not a misprediction: the promise
        // moves to the winner.
        let mut surprises = Vec::new();
        for (key, hart, line) in upgrades {
            match short.iter().position(|(_, h)| *h == hart) {
                Some(i) => {
                    let (loser, _) = short.swap_remove(i);
                    let _ = self.ledger.set_backing(&loser, Backing::Mrif, now);
                    let _ = self.ledger.set_backing(&key, Backing::VsFile, now);
                    let _ = self.ledger.observed(&key, Some(hart), Some(line));
                    changed = true;
                }
                None => surprises.push((key, hart, line)),
            }
        }
        // An AUTO vCPU left on MRIF where KVM still has a free line simply
        // has not entered since; only where KVM gave every line away did
        // it lose out.
        for (key, hart) in short {
            let taken = surprises.iter().filter(|u| u.1 == hart).count() as u32;
            if self.ledger.load(hart).held + taken >= self.cap(hart) {
                warn!(vm = %key.vm, vcpu = key.vcpu, hart, "KVM left a vCPU on MRIF the ledger gave a VS-file");
                self.corrected();
                let _ = self.ledger.set_backing(&key, Backing::Mrif, now);
                changed = true;
            }
        }
        for (key, hart, line) in surprises {
            warn!(vm = %key.vm, vcpu = key.vcpu, hart, "KVM gave a VS-file the ledger did not expect");
            self.corrected();
            let _ = self.ledger.set_backing(&key, Backing::VsFile, now);
            let _ = self.ledger.observed(&key, Some(hart), Some(line));
            changed = true;
        }
        for hart in 0..self.host.topology().len() as u32 {
            changed |= self.resolve_overcommit(hart, now);
        }
        changed
    }

    fn cap(&self, hart: u32) -> u32 {
        self.host
            .topology()
            .hart(hart)
            .map_or(0, |h| u32::from(h.vsfiles))
    }

    /// KVM handed a line to a waiting vCPU the ledger had promised to
    /// another (which had not entered yet): the promise is void. Burstable
    /// vCPUs promised a line here but not holding one go back to MRIF; if
    /// the promise was a guaranteed VM's, the vCPU that took the line moves
    /// away so KVM frees it.
    fn resolve_overcommit(&mut self, hart: u32, now: Millis) -> bool {
        let over = self
            .ledger
            .load(hart)
            .vsfiles_used
            .saturating_sub(self.cap(hart));
        if over == 0 {
            return false;
        }
        let mut promised: Vec<(bool, VcpuKey)> = self
            .ledger
            .vms()
            .filter(|vm| vm.class == Class::Burstable)
            .flat_map(|vm| {
                vm.vcpus
                    .iter()
                    .enumerate()
                    .filter(move |(_, v)| v.hart == hart && v.backing == Backing::VsFile)
                    .map(move |(i, v)| {
                        let key = VcpuKey {
                            vm: vm.id.clone(),
                            vcpu: i as u32,
                        };
                        (v.held_on == Some(hart), key)
                    })
            })
            .collect();
        promised.sort_by_key(|(holding, _)| *holding);
        for (holding, key) in promised.into_iter().take(over as usize) {
            self.corrected();
            if !holding {
                let _ = self.ledger.set_backing(&key, Backing::Mrif, now);
                continue;
            }
            let topology = self.host.topology();
            let to = (0..topology.len() as u32)
                .filter(|&h| h != hart && self.ledger.safe_for_waiting(topology, h))
                .filter(|&h| self.ledger.vm(&key.vm).is_some_and(|vm| vm.allows(h)))
                .min_by_key(|&h| (self.ledger.load(h).vcpus, h));
            match to {
                Some(to) => self.move_one(key, hart, to, Backing::Mrif, now),
                None => {
                    error!(vm = %key.vm, vcpu = key.vcpu, hart, "a vCPU holds a VS-file promised to another and has nowhere to go")
                }
            }
        }
        self.rehome_unserved_guaranteed(hart, now);
        true
    }

    /// Re-pins one vCPU and records the move, as KVM forced it.
    fn move_one(&mut self, key: VcpuKey, from: u32, to: u32, backing: Backing, now: Millis) {
        let m = policy::Move {
            key,
            from,
            to,
            backing,
        };
        self.pin([&m]);
        let _ = policy::apply_moves(&mut self.ledger, [&m], now);
    }

    /// Still over: a guaranteed vCPU was promised a line that KVM handed to
    /// an AUTO vCPU which may not leave (a hart came back online while the
    /// guaranteed one was halted). It moves to a free file elsewhere if one
    /// is allowed; else its next entry will fail, so its VM is counted as
    /// failed now and no longer holds the hart's files.
    fn rehome_unserved_guaranteed(&mut self, hart: u32, now: Millis) {
        let over = self
            .ledger
            .load(hart)
            .vsfiles_used
            .saturating_sub(self.cap(hart));
        let unserved: Vec<VcpuKey> = self
            .ledger
            .vms()
            .filter(|vm| vm.class == Class::Guaranteed && !vm.failed)
            .flat_map(|vm| {
                vm.vcpus
                    .iter()
                    .enumerate()
                    .filter(move |(_, v)| v.hart == hart && v.held_on != Some(hart))
                    .map(move |(i, _)| VcpuKey {
                        vm: vm.id.clone(),
                        vcpu: i as u32,
                    })
            })
            .take(over as usize)
            .collect();
        for key in unserved {
            self.corrected();
            let topology = self.host.topology();
            let to = (0..topology.len() as u32)
                .filter(|&h| h != hart && self.ledger.free(topology, h) > 0)
                .find(|&h| self.ledger.vm(&key.vm).is_some_and(|vm| vm.allows(h)));
            match to {
                Some(to) => self.move_one(key, hart, to, Backing::VsFile, now),
                None => {
                    error!(vm = %key.vm, vcpu = key.vcpu, hart, "guaranteed vCPU lost its VS-file to an AUTO vCPU that may not leave the hart, and none is free elsewhere: its next entry will fail");
                    self.metrics.stranded(1);
                    self.ledger.set_failed(&key.vm);
                }
            }
        }
    }

    /// Records one observation in the ledger and says how it differs from
    /// the ledger's prediction.
    fn record(&mut self, key: &VcpuKey, seen: Observed) -> Surprise {
        let Ok(rec) = self.ledger.vcpu(key).cloned() else {
            return Surprise::None;
        };
        let burstable = self.ledger.vm(&key.vm).map(|r| r.class) == Some(Class::Burstable);
        match seen {
            Observed::VsFile { hart, line } if hart == rec.hart && rec.backing == Backing::Mrif => {
                return Surprise::GotFile(hart, line);
            }
            Observed::VsFile { hart, line } => {
                let _ = self.ledger.observed(key, Some(hart), Some(line));
            }
            Observed::Mrif { hart } => {
                let _ = self.ledger.observed(key, None, None);
                if burstable && hart == rec.hart && rec.backing == Backing::VsFile {
                    return Surprise::NoFile(hart);
                }
            }
            Observed::EntryFailed { hart } => {
                if self.failed_entries.insert(key.clone()) {
                    self.metrics.hwaccel_entry_failed();
                    error!(vm = %key.vm, vcpu = key.vcpu, hart, "HWACCEL guest entry failed: no free VS-file; the VMM stops the VM, release and place it again");
                    self.ledger.set_failed(&key.vm);
                }
            }
            Observed::Unknown => {}
        }
        Surprise::None
    }

    /// Hands free VS-files to waiting burstable vCPUs; true if any moved.
    fn promote(&mut self, now: Millis) -> bool {
        let started = std::time::Instant::now();
        let moves = policy::plan_promotions(
            self.host.topology(),
            &self.ledger,
            now,
            self.config.min_move_interval,
        );
        self.metrics
            .decided("promote", started.elapsed().as_secs_f64());
        if moves.is_empty() {
            return false;
        }
        self.pin(&moves);
        for m in &moves {
            info!(vm = %m.key.vm, vcpu = m.key.vcpu, from = m.from, to = m.to, "promoted to a VS-file");
            self.events.emit(
                Event::new(EventKind::Promoted, "a VS-file came free")
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
