//! The engine owns all of ifad's state: the ledger and the host. It runs on
//! one thread (`actor`); API handlers send it jobs and await the replies, so
//! no state is ever shared or locked.

pub mod actor;
mod durable;
pub mod events;
mod ops;
mod restore;
mod settle;
pub mod view;

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;

use crate::core::ledger::Millis;
use crate::core::{CoreError, HartId, Ledger, Topology, VcpuKey, VmId};
use crate::host::{Host, HostError};
use crate::metrics::Metrics;
use crate::repeats::Repeats;
use crate::state::{StateDir, StateError};
use durable::Commits;
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
    /// The change was made but could not be made durable (shared: a
    /// failed group commit fails every change in the group).
    #[error("the change could not be made durable: {0}")]
    State(Arc<StateError>),
}

impl From<StateError> for EngineError {
    fn from(e: StateError) -> Self {
        EngineError::State(Arc::new(e))
    }
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
    /// Whether a checkpoint commits at once or at the end of a group.
    commits: Commits,
    /// VMs whose host part changed with no change in the ledger (attach).
    host_changed: BTreeSet<VmId>,
    /// `failed_entries` changed since the last commit.
    failed_changed: bool,
    /// The host's own part as last committed.
    saved_host: Option<serde_json::Value>,
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
            commits: Commits::Each,
            host_changed: BTreeSet::new(),
            failed_changed: false,
            saved_host: None,
            events: EventLog::default(),
            repeats: Repeats::default(),
            measure_from: 0,
        };
        engine.refresh_metrics();
        engine
    }

    /// Brings the gauges (VS-files, vCPUs and interrupt rates by class and
    /// backing) up to date: at each tick and each scrape, not at each
    /// change, since it walks every hart and vCPU.
    pub fn refresh_metrics(&self) {
        self.metrics.refresh(self.host.topology(), &self.ledger);
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
