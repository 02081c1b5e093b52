//! The engine owns all of ifad's state: the ledger and the host. It runs on
//! one thread (`actor`); API handlers send it jobs and await the replies, so
//! no state is ever shared or locked.

pub mod actor;
pub mod events;
mod ops;
mod restore;
mod settle;
pub mod view;

use std::collections::HashSet;

use crate::core::ledger::Millis;
use crate::core::{CoreError, HartId, Ledger, Topology, VcpuKey, VmId};
use crate::host::{Host, HostError};
use crate::metrics::Metrics;
use crate::repeats::{Repeats, suffix};
use crate::state::{Snapshot, StateDir, StateError};
use events::{EventLog, Expired, Subscription};
pub use ops::{MoveOutcome, PlaceOutcome};
pub use restore::RestoreReport;
pub use view::{HartView, MoveView, StatusView, VcpuView, VmState, VmView};

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Core(#[from] CoreError),
    #[error("host refused: {0}")]
    Host(#[from] HostError),
    /// The change was made but could not be made durable.
    #[error("the change could not be made durable: {0}")]
    State(#[from] StateError),
}

/// Policy knobs.
#[derive(Debug, Clone, Copy)]
pub struct EngineConfig {
    /// No vCPU is moved for promotion more often than this.
    pub min_move_interval: Millis,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            min_move_interval: 30_000,
        }
    }
}

pub struct Engine {
    host: Box<dyn Host>,
    ledger: Ledger,
    metrics: Metrics,
    config: EngineConfig,
    /// vCPUs whose failed HWACCEL entry was already counted.
    failed_entries: HashSet<VcpuKey>,
    /// Times the host showed a backing the ledger had not predicted.
    corrections: u64,
    /// vCPU threads seen with someone else's affinity, as last reported.
    drifting: HashSet<(VcpuKey, Vec<HartId>)>,
    /// Where every change is made durable; `None` until restored.
    store: Option<StateDir>,
    events: EventLog,
    /// Failures that repeat (every tick, every retry) are counted, not
    /// printed each time.
    repeats: Repeats,
    /// The placement seq of the VM whose interrupt counts the next tick
    /// reads first (ticks read a share each, in turn).
    measure_from: u64,
}

impl Engine {
    pub fn new(host: Box<dyn Host>, metrics: Metrics, config: EngineConfig) -> Self {
        let ledger = Ledger::new(host.topology());
        let engine = Engine {
            host,
            ledger,
            metrics,
            config,
            failed_entries: HashSet::new(),
            corrections: 0,
            drifting: HashSet::new(),
            store: None,
            events: EventLog::default(),
            repeats: Repeats::default(),
            measure_from: 0,
        };
        engine
            .metrics
            .refresh(engine.host.topology(), &engine.ledger);
        engine
    }

    /// Runs one decision of the core on the host's topology and the
    /// ledger, timing it as `operation` (`ifad_decision_duration_seconds`).
    fn decide<R>(&self, operation: &str, f: impl FnOnce(&Topology, &Ledger) -> R) -> R {
        let started = std::time::Instant::now();
        let decided = f(self.host.topology(), &self.ledger);
        self.metrics
            .decided(operation, started.elapsed().as_secs_f64());
        decided
    }

    pub fn topology(&self) -> &Topology {
        self.host.topology()
    }

    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    /// The host itself, for tests and simulation controls.
    pub fn host_mut(&mut self) -> &mut dyn Host {
        self.host.as_mut()
    }

    /// How often the host contradicted the ledger's prediction of KVM.
    pub fn corrections(&self) -> u64 {
        self.corrections
    }

    /// HWACCEL entries seen failing (a vCPU counted once).
    pub fn failed_entries(&self) -> usize {
        self.failed_entries.len()
    }

    /// The vCPUs whose failed HWACCEL entry was taken in, as `reconcile`
    /// wants them.
    pub fn failed_entry_keys(&self) -> &HashSet<VcpuKey> {
        &self.failed_entries
    }

    /// Whether a VM had a HWACCEL entry fail: its VMM stopped it.
    pub fn entry_failed(&self, vm: &VmId) -> bool {
        self.failed_entries.iter().any(|k| &k.vm == vm)
    }

    /// What the host shows held per hart, to compare with the ledger.
    pub fn host_held_vsfiles(&self) -> Option<Vec<u32>> {
        self.host.held_vsfiles()
    }

    /// Per hart, the lines the ledger predicts KVM holds there once every
    /// vCPU has entered: one per VS-file vCPU of a started (not pending)
    /// VM, on its hart if that hart is online. It is read from the ledger's
    /// own intent (`hart`, `backing`), never from what the host showed
    /// (`held_on`), so comparing it with `host_held_vsfiles` after a settle
    /// checks a prediction. A halted vCPU, a stopped VM or a hart that went
    /// offline can leave KVM holding lines elsewhere.
    pub fn predicted_held_vsfiles(&self) -> Vec<u32> {
        let topology = self.host.topology();
        let mut held = vec![0; topology.len()];
        for vm in self.ledger.vms().filter(|vm| !vm.pending) {
            for v in &vm.vcpus {
                if v.backing == crate::core::Backing::VsFile
                    && topology.hart(v.hart).is_some_and(|h| h.online)
                {
                    held[v.hart as usize] += 1;
                }
            }
        }
        held
    }

    /// Makes the current state durable (a no-op when nothing changed since
    /// the last write). Every acknowledged change calls it before replying.
    pub(crate) fn checkpoint(&mut self, now: Millis) -> Result<(), EngineError> {
        let Some(store) = &mut self.store else {
            self.events.publish();
            return Ok(());
        };
        let mut failed_entries: Vec<VcpuKey> = self.failed_entries.iter().cloned().collect();
        failed_entries.sort();
        let snapshot = Snapshot {
            host_kind: self.host.kind().to_string(),
            ledger: self.ledger.save(),
            failed_entries,
            host: self.host.save(),
        };
        let started = std::time::Instant::now();
        match store.save(now, &snapshot) {
            Ok(true) => {
                self.metrics
                    .checkpoint_written(started.elapsed().as_secs_f64());
                self.repeats.clear("checkpoint");
                self.events.publish();
                Ok(())
            }
            Ok(false) => {
                self.events.publish();
                Ok(())
            }
            Err(e) => {
                self.metrics.checkpoint_failed();
                if let Some(held) = self.repeats.check("checkpoint", now) {
                    tracing::error!("state not durable: {e}{}", suffix(held));
                }
                Err(e.into())
            }
        }
    }

    /// Events missed since `after` and the live feed (see `EventLog`).
    pub fn watch(&self, after: Option<u64>) -> Result<Subscription, Expired> {
        self.events.subscribe(after)
    }

    pub fn status(&self) -> StatusView {
        StatusView::new(self.host.kind(), self.topology(), &self.ledger)
    }

    pub fn harts(&self) -> Vec<HartView> {
        HartView::all(self.topology(), &self.ledger)
    }

    pub fn vm(&self, id: &VmId) -> Result<VmView, CoreError> {
        self.ledger
            .vm(id)
            .map(|r| {
                let rates = self.ledger.interrupt_rates(r);
                VmView::new(r, self.topology(), &self.host.vcpu_threads(id), rates)
            })
            .ok_or_else(|| CoreError::VmNotFound(id.clone()))
    }

    /// All VMs, sorted by id.
    pub fn vms(&self) -> Vec<VmView> {
        let mut vms: Vec<VmView> = self
            .ledger
            .vms()
            .map(|r| {
                let rates = self.ledger.interrupt_rates(r);
                VmView::new(r, self.topology(), &self.host.vcpu_threads(&r.id), rates)
            })
            .collect();
        vms.sort_by(|a, b| a.vm.cmp(&b.vm));
        vms
    }
}
