//! Every state change: validated by the core, recorded in the ledger,
//! carried out on the host, then settled.

use std::collections::HashSet;

use tracing::{debug, error, info, warn};

use crate::core::ledger::Millis;
use crate::core::policy::{self, Move, Placement};
use crate::core::request::PlaceSpec;
use crate::core::{Backing, Class, CoreError, HartId, VcpuKey, VmId};
use crate::engine::events::{Event, EventKind};
use crate::engine::view::{MoveView, VcpuView, VmView};
use crate::engine::{Engine, EngineError};

/// The reply to a placement (or to advice, which changes nothing).
#[derive(Debug, Clone, PartialEq)]
pub struct PlaceOutcome {
    pub vm: VmView,
    /// Burstable vCPUs that gave up their VS-files to make room.
    pub demoted: Vec<MoveView>,
}

/// One vCPU before and after a migration.
#[derive(Debug, Clone, PartialEq)]
pub struct MoveOutcome {
    pub before: VcpuView,
    pub after: VcpuView,
}

impl Engine {
    /// Places a VM whole or not at all.
    pub fn place(&mut self, spec: PlaceSpec, now: Millis) -> Result<PlaceOutcome, EngineError> {
        let placement = self.plan(&spec)?;
        let harts: Vec<HartId> = placement.vcpus.iter().map(|a| a.0).collect();
        self.host
            .create_vm(&spec.vm, spec.class.aia_mode(), &harts, &spec.devices)
            .inspect_err(|refused| {
                // Undo whatever part the host took, so a refusal changes
                // nothing. It usually took nothing, and then the release
                // fails for want of the VM: only worth a debug line.
                if let Err(e) = self.host.release_vm(&spec.vm) {
                    debug!(vm = %spec.vm, "undoing the host's part of a refused placement ({refused}): {e}");
                }
            })?;
        self.pin(placement.demotions.iter().chain(&placement.rehomes));
        policy::apply_placement(&mut self.ledger, &spec, &placement, now)?;
        if !placement.pending() {
            self.host.resume_vm(&spec.vm)?;
        }
        self.metrics.placed(spec.class, &placement);
        let demoted: Vec<MoveView> = placement.demotions.iter().map(MoveView::from).collect();
        for d in &placement.demotions {
            info!(vm = %d.key.vm, vcpu = d.key.vcpu, from = d.from, to = d.to, backing = d.backing.as_str(), "demoted for vm {}", spec.vm);
            self.events.emit(
                Event::new(EventKind::Demoted, format!("for guaranteed vm {}", spec.vm))
                    .vm(&d.key.vm)
                    .vcpu(d.key.vcpu)
                    .moved(d.from, d.to, d.backing),
            );
        }
        for m in &placement.rehomes {
            info!(vm = %m.key.vm, vcpu = m.key.vcpu, from = m.from, to = m.to, backing = m.backing.as_str(), "moved to make room for vm {}", spec.vm);
            let why = match m.backing {
                Backing::VsFile => "keeps its VS-file on a hart the demoted wait on",
                Backing::Mrif => "waits off the harts that free VS-files",
            };
            self.events.emit(
                Event::new(
                    EventKind::Migrated,
                    format!("for guaranteed vm {}: {why}", spec.vm),
                )
                .vm(&m.key.vm)
                .vcpu(m.key.vcpu)
                .moved(m.from, m.to, m.backing),
            );
        }
        self.events.emit(
            Event::new(
                EventKind::Placed,
                format!(
                    "{} vCPUs: {} on VS-files, {} on MRIF{}",
                    spec.vcpus,
                    placement.count(Backing::VsFile),
                    placement.count(Backing::Mrif),
                    if placement.pending() {
                        "; pending until demoted vCPUs free their files"
                    } else {
                        ""
                    }
                ),
            )
            .vm(&spec.vm)
            .class(spec.class),
        );
        info!(
            vm = %spec.vm,
            class = %spec.class,
            vcpus = spec.vcpus,
            vsfile = placement.count(Backing::VsFile),
            mrif = placement.count(Backing::Mrif),
            pending = placement.pending(),
            "placed"
        );
        self.settle(now);
        self.checkpoint(now)?;
        Ok(PlaceOutcome {
            vm: self.vm(&spec.vm)?,
            demoted,
        })
    }

    /// What `place` would do, changing nothing.
    pub fn advise(&self, spec: PlaceSpec) -> Result<PlaceOutcome, CoreError> {
        let placement = policy::plan_place(self.topology(), &self.ledger, &spec)?;
        Ok(PlaceOutcome {
            vm: VmView::planned(&spec, &placement),
            demoted: placement.demotions.iter().map(MoveView::from).collect(),
        })
    }

    fn plan(&mut self, spec: &PlaceSpec) -> Result<Placement, CoreError> {
        let plan = self.decide("place", |t, l| policy::plan_place(t, l, spec));
        plan.inspect_err(|e| {
            if let CoreError::Refused(reason, why, _) = e {
                self.metrics.refused(spec.class, *reason);
                self.events.emit_now(
                    Event::new(EventKind::Refused, why.clone())
                        .vm(&spec.vm)
                        .class(spec.class),
                );
                info!(vm = %spec.vm, class = %spec.class, "placement refused: {e}");
            }
        })
    }

    /// Frees everything a VM held; returns how many VS-files it held.
    pub fn release(&mut self, id: &VmId, now: Millis) -> Result<u32, EngineError> {
        self.release_because(id, now, "on request")
    }

    pub(super) fn release_because(
        &mut self,
        id: &VmId,
        now: Millis,
        why: &str,
    ) -> Result<u32, EngineError> {
        let record = self.ledger.remove(id)?;
        let failed = self.failed_entries.len();
        self.failed_entries.retain(|k| &k.vm != id);
        self.failed_changed |= self.failed_entries.len() != failed;
        if let Err(e) = self.host.release_vm(id) {
            warn!(vm = %id, "host release failed, ledger released anyway: {e}");
        }
        let freed = record
            .vcpus
            .iter()
            .filter(|v| v.backing == Backing::VsFile)
            .count() as u32;
        info!(vm = %id, vsfiles_freed = freed, "released");
        self.events.emit(
            Event::new(
                EventKind::Released,
                format!("{why}; {freed} VS-files freed"),
            )
            .vm(id)
            .class(record.class),
        );
        self.settle(now);
        self.checkpoint(now)?;
        Ok(freed)
    }

    /// Moves one vCPU to `hart` (an operator's request: no anti-thrash).
    pub fn migrate(
        &mut self,
        key: &VcpuKey,
        hart: HartId,
        now: Millis,
    ) -> Result<MoveOutcome, EngineError> {
        let m = self.decide("migrate", |t, l| policy::plan_migrate(t, l, key, hart));
        let m = m?;
        let before = self.vcpu_view(key)?;
        self.pin([&m]);
        policy::apply_moves(&mut self.ledger, [&m], now)?;
        self.metrics.migrated();
        info!(vm = %key.vm, vcpu = key.vcpu, from = m.from, to = m.to, backing = m.backing.as_str(), "migrated");
        self.events.emit(
            Event::new(EventKind::Migrated, "on request")
                .vm(&key.vm)
                .vcpu(key.vcpu)
                .moved(m.from, m.to, m.backing),
        );
        self.settle(now);
        self.checkpoint(now)?;
        Ok(MoveOutcome {
            before,
            after: self.vcpu_view(key)?,
        })
    }

    /// Moves every vCPU off `hart` and keeps it out of placement until
    /// `undrain`. Refused whole if a guaranteed vCPU has nowhere to go.
    pub fn drain(&mut self, hart: HartId, now: Millis) -> Result<Vec<MoveView>, EngineError> {
        self.check_hart(hart)?;
        let plan = self.decide("drain", |t, l| policy::plan_evacuate(t, l, hart, false));
        let (moves, _) = plan?;
        self.ledger.set_drained(hart, true);
        self.apply_evacuation(&moves, now, &format!("hart {hart} drained"))?;
        info!(hart, moved = moves.len(), "drained");
        self.events.emit(
            Event::new(
                EventKind::Drained,
                format!("drained; {} vCPUs moved", moves.len()),
            )
            .hart(hart),
        );
        self.checkpoint(now)?;
        Ok(moves.iter().map(MoveView::from).collect())
    }

    pub fn undrain(&mut self, hart: HartId, now: Millis) -> Result<(), EngineError> {
        self.check_hart(hart)?;
        self.ledger.set_drained(hart, false);
        info!(hart, "undrained");
        self.events
            .emit(Event::new(EventKind::Drained, "undrained").hart(hart));
        self.settle(now);
        self.checkpoint(now)?;
        Ok(())
    }

    /// Finds the VMM's vCPU threads and pins them where the VM is placed.
    pub fn attach(&mut self, id: &VmId, pid: u32, now: Millis) -> Result<VmView, EngineError> {
        self.vm(id)?;
        let tids = self.host.attach_vm(id, pid)?;
        let found = tids.iter().filter(|t| t.is_some()).count();
        info!(vm = %id, pid, vcpu_threads = found, "attached and pinned");
        self.host_changed.insert(id.clone());
        self.checkpoint(now)?;
        Ok(self.vm(id)?)
    }

    /// Periodic work: VMMs that exited, threads that drifted, harts going
    /// offline or online; then settles.
    pub fn tick(&mut self, now: Millis) {
        for id in self.host.exited_vms() {
            info!(vm = %id, "its VMM exited");
            if let Err(e) = self.release_because(&id, now, "its VMM exited") {
                warn!(vm = %id, "releasing after the VMM exited: {e}");
            }
        }
        self.report_drift();
        self.host.maintain();
        for f in self.host.irq_failures() {
            self.metrics.irq_steering_failed(f.class);
            let key = format!("irq {} {} {}", f.irq, f.hart, f.error);
            if let Some(held) = self.repeats.check(&key, now) {
                warn!(vm = %f.vm, irq = f.irq, hart = f.hart, class = f.class, "moving a device IRQ failed: {}{}", f.error, crate::repeats::suffix(held));
            }
        }
        if self.host.refresh_topology() {
            self.hotplug(now);
        }
        self.measure_interrupts(now);
        self.rebalance(now);
        self.settle(now);
        self.refresh_metrics();
        // `checkpoint` logs and counts its failures, and nobody awaits a
        // tick's reply: the next tick (or change) writes it again.
        if self.checkpoint(now).is_err() { /* logged and counted above */ }
    }

    /// Each drift is reported once (counted and logged), however long it
    /// lasts, so a thread someone else owns does not flood the log.
    fn report_drift(&mut self) {
        let drifts = self.host.drifted();
        // Only drifts left in place are "already reported": one ifad pinned
        // back must count again if someone moves it again before a tick
        // saw it back.
        let now_drifting: HashSet<(VcpuKey, Vec<HartId>)> = drifts
            .iter()
            .filter(|d| !d.reapplied)
            .map(|d| {
                (
                    VcpuKey {
                        vm: d.vm.clone(),
                        vcpu: d.vcpu,
                    },
                    d.found.clone(),
                )
            })
            .collect();
        for d in &drifts {
            let key = (
                VcpuKey {
                    vm: d.vm.clone(),
                    vcpu: d.vcpu,
                },
                d.found.clone(),
            );
            if self.drifting.contains(&key) && !d.reapplied {
                continue;
            }
            self.metrics.drift_detected();
            let action = if d.reapplied {
                "pinned it back"
            } else {
                "left it"
            };
            warn!(vm = %d.vm, vcpu = d.vcpu, tid = d.tid, want = d.want, found = ?d.found, "vCPU thread affinity changed by someone else; {action}");
            self.events.emit(
                Event::new(
                    EventKind::Drift,
                    format!("thread {} found on harts {:?}; {action}", d.tid, d.found),
                )
                .vm(&d.vm)
                .vcpu(d.vcpu)
                .hart(d.want),
            );
        }
        self.drifting = now_drifting;
    }

    /// A hart that went offline is an involuntary drain: KVM already pushed
    /// its vCPUs to MRIF; guaranteed ones with nowhere to go stay stranded.
    pub(super) fn hotplug(&mut self, now: Millis) {
        let changed: Vec<(HartId, bool)> = self
            .topology()
            .harts()
            .iter()
            .map(|h| (h.id, !h.online))
            .collect();
        for (hart, offline) in changed {
            if self.ledger.is_offline(hart) != offline {
                let what = if offline {
                    "went offline"
                } else {
                    "came back online"
                };
                self.events
                    .emit(Event::new(EventKind::Hart, what).hart(hart));
            }
            self.ledger.set_offline(hart, offline);
        }
        let offline: Vec<HartId> = self
            .topology()
            .harts()
            .iter()
            .filter(|h| {
                !h.online && self.ledger.load(h.id).vcpus + self.ledger.load(h.id).releasing > 0
            })
            .map(|h| h.id)
            .collect();
        for hart in offline {
            self.ledger.hart_lost_lines(hart);
            match policy::plan_evacuate(self.topology(), &self.ledger, hart, true) {
                Ok((moves, stranded)) => {
                    if let Err(e) =
                        self.apply_evacuation(&moves, now, &format!("hart {hart} offline"))
                    {
                        error!(hart, "evacuating an offline hart: {e}");
                    }
                    for k in &stranded {
                        error!(vm = %k.vm, vcpu = k.vcpu, hart, "guaranteed vCPU stranded on an offline hart: no VS-file free elsewhere");
                    }
                    self.metrics.stranded(stranded.len());
                    warn!(
                        hart,
                        moved = moves.len(),
                        stranded = stranded.len(),
                        "hart went offline"
                    );
                }
                Err(e) => error!(hart, "evacuating an offline hart: {e}"),
            }
        }
        let back = policy::plan_restore(self.topology(), &self.ledger);
        if !back.is_empty() {
            info!(moved = back.len(), "vCPUs back on harts their VMs may use");
            if let Err(e) = self.apply_evacuation(&back, now, "back on a hart the VM may use") {
                error!("moving vCPUs back to their allowed harts: {e}");
            }
        }
    }

    /// Moves in two phases. First the VS-file vCPUs, the vCPUs that can
    /// already wait safely where they go, and the vCPUs waiting on MRIF on
    /// the hart being left (so none stays behind to catch a line freed by a
    /// departing holder) unless a guaranteed vCPU is taking a line where
    /// they go. These enter, and their new lines are held, before the rest
    /// can run beside them.
    fn apply_evacuation(
        &mut self,
        moves: &[Move],
        now: Millis,
        why: &str,
    ) -> Result<(), CoreError> {
        for m in moves {
            self.events.emit(
                Event::new(EventKind::Migrated, why)
                    .vm(&m.key.vm)
                    .vcpu(m.key.vcpu)
                    .moved(m.from, m.to, m.backing),
            );
        }
        let topology = self.host.topology();
        let guaranteed_to: Vec<HartId> = moves
            .iter()
            .filter(|m| {
                m.backing == Backing::VsFile
                    && self.ledger.vm(&m.key.vm).map(|vm| vm.class) == Some(Class::Guaranteed)
            })
            .map(|m| m.to)
            .collect();
        let (first, rest): (Vec<&Move>, Vec<&Move>) = moves.iter().partition(|m| {
            let waiting = self
                .ledger
                .vcpu(&m.key)
                .is_ok_and(|v| v.backing == Backing::Mrif);
            m.backing == Backing::VsFile
                || self.ledger.safe_for_waiting(topology, m.to)
                || (waiting && !guaranteed_to.contains(&m.to))
        });
        for phase in [first, rest] {
            self.pin(phase.iter().copied());
            policy::apply_moves(&mut self.ledger, phase, now)?;
            self.settle(now);
        }
        Ok(())
    }

    fn check_hart(&self, hart: HartId) -> Result<(), CoreError> {
        match self.topology().hart(hart) {
            Some(_) => Ok(()),
            None => Err(CoreError::invalid(
                "hart",
                format!(
                    "hart {hart} does not exist (the host has {})",
                    self.topology().len()
                ),
            )),
        }
    }

    fn vcpu_view(&self, key: &VcpuKey) -> Result<VcpuView, CoreError> {
        let vm = self.vm(&key.vm)?;
        vm.vcpus.get(key.vcpu as usize).cloned().ok_or_else(|| {
            CoreError::invalid(
                "vcpu",
                format!("vm {} has vcpus 0..{}", key.vm, vm.vcpus.len()),
            )
        })
    }

    /// Re-pins vCPU threads; the ledger follows whatever the host shows.
    pub(super) fn pin<'a>(&mut self, moves: impl IntoIterator<Item = &'a Move>) {
        for m in moves {
            if m.to != m.from
                && let Err(e) = self.host.pin_vcpu(&m.key.vm, m.key.vcpu, m.to)
            {
                warn!(vm = %m.key.vm, vcpu = m.key.vcpu, "pinning to hart {} failed: {e}", m.to);
            }
        }
    }
}
