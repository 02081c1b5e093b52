//! The engine owns all of ifad's state: the ledger and the host. It runs on
//! one thread (`actor`); API handlers send it jobs and await the replies, so
//! no state is ever shared or locked.

pub mod actor;
pub mod view;

use std::collections::HashSet;

use tracing::{error, info, warn};

use crate::core::policy::{self, Assignment};
use crate::core::request::PlaceSpec;
use crate::core::{Backing, Class, CoreError, Ledger, Topology, VcpuKey, VmId};
use crate::host::{Host, HostError, Observed};
use crate::metrics::Metrics;
pub use view::{HartView, StatusView, VcpuView, VmView};

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Core(#[from] CoreError),
    #[error("host refused: {0}")]
    Host(#[from] HostError),
}

pub struct Engine {
    host: Box<dyn Host>,
    ledger: Ledger,
    metrics: Metrics,
    /// vCPUs whose failed HWACCEL entry was already counted.
    failed_entries: HashSet<VcpuKey>,
    /// Times the host showed a backing the ledger had not predicted.
    corrections: u64,
}

impl Engine {
    pub fn new(host: Box<dyn Host>, metrics: Metrics) -> Self {
        let ledger = Ledger::new(host.topology());
        let engine = Engine {
            host,
            ledger,
            metrics,
            failed_entries: HashSet::new(),
            corrections: 0,
        };
        engine.metrics.refresh(&engine.status());
        engine
    }

    pub fn topology(&self) -> &Topology {
        self.host.topology()
    }

    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    pub fn host_kind(&self) -> &'static str {
        self.host.kind()
    }

    /// How often the host contradicted the ledger's prediction of KVM.
    pub fn corrections(&self) -> u64 {
        self.corrections
    }

    /// What the host shows held per hart, to compare with the ledger.
    pub fn host_held_vsfiles(&self) -> Option<Vec<u32>> {
        self.host.held_vsfiles()
    }

    /// Places a VM whole or not at all.
    pub fn place(&mut self, spec: PlaceSpec) -> Result<VmView, EngineError> {
        let plan = match policy::plan(self.host.topology(), &self.ledger, &spec) {
            Ok(plan) => plan,
            Err(e) => {
                if matches!(e, CoreError::Refused(_)) {
                    self.metrics.refused(spec.class);
                    info!(vm = %spec.vm, class = %spec.class, "placement refused: {e}");
                }
                return Err(e.into());
            }
        };
        let harts: Vec<_> = plan.iter().map(|a| a.hart).collect();
        if let Err(e) = self.host.apply_vm(&spec.vm, spec.class.aia_mode(), &harts) {
            // Undo whatever part the host took, so a refusal changes nothing.
            let _ = self.host.release_vm(&spec.vm);
            return Err(e.into());
        }
        self.ledger.commit(&spec, &plan);
        self.metrics.placed(spec.class, &plan);
        info!(
            vm = %spec.vm,
            class = %spec.class,
            vcpus = spec.vcpus,
            vsfile = count(&plan, Backing::VsFile),
            mrif = count(&plan, Backing::Mrif),
            "placed"
        );
        self.settle();
        Ok(self.vm(&spec.vm)?)
    }

    /// Frees everything a VM held; returns how many VS-files it held.
    pub fn release(&mut self, id: &VmId) -> Result<u32, EngineError> {
        let record = self.ledger.remove(id)?;
        self.failed_entries.retain(|k| &k.vm != id);
        if let Err(e) = self.host.release_vm(id) {
            warn!(vm = %id, "host release failed, ledger released anyway: {e}");
        }
        let freed = record
            .vcpus
            .iter()
            .filter(|v| v.backing == Backing::VsFile)
            .count() as u32;
        for key in policy::pending_upgrades(self.host.topology(), &self.ledger) {
            if self
                .ledger
                .set_backing(self.host.topology(), &key, Backing::VsFile)
                .is_ok()
            {
                self.metrics.promoted();
                info!(vm = %key.vm, vcpu = key.vcpu, "promoted to a VS-file");
            }
        }
        info!(vm = %id, vsfiles_freed = freed, "released");
        self.settle();
        Ok(freed)
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
            .map(|r| VmView::new(r, self.topology()))
            .ok_or_else(|| CoreError::VmNotFound(id.clone()))
    }

    pub fn vms(&self) -> Vec<VmView> {
        self.ledger
            .vms()
            .map(|r| VmView::new(r, self.topology()))
            .collect()
    }

    /// Lets the host run, then takes what it shows as truth for what only
    /// KVM decides: which line a vCPU got, and AUTO upgrades and fallbacks.
    fn settle(&mut self) {
        self.host.settle();
        let mut upgrades = Vec::new();
        let ids: Vec<VmId> = self.ledger.vms().map(|r| r.id.clone()).collect();
        for id in ids {
            for (vcpu, seen) in self.host.observe(&id).into_iter().enumerate() {
                let key = VcpuKey {
                    vm: id.clone(),
                    vcpu: vcpu as u32,
                };
                self.reconcile_vcpu(key, seen, &mut upgrades);
            }
        }
        // Downgrades ran first, so the files these take are free now.
        for (key, line) in upgrades {
            warn!(vm = %key.vm, vcpu = key.vcpu, "KVM gave a VS-file the ledger did not expect");
            self.corrected();
            if let Err(e) = self
                .ledger
                .set_backing(self.host.topology(), &key, Backing::VsFile)
            {
                error!("ledger cannot follow the host: {e}");
                continue;
            }
            let _ = self.ledger.set_line(&key, Some(line));
        }
        self.metrics.refresh(&self.status());
    }

    fn reconcile_vcpu(&mut self, key: VcpuKey, seen: Observed, upgrades: &mut Vec<(VcpuKey, u8)>) {
        let Ok(rec) = self.ledger.vcpu(&key) else {
            return;
        };
        let (hart, backing) = (rec.hart, rec.backing);
        match seen {
            Observed::VsFile { hart: h, line } if h == hart => {
                if backing == Backing::Mrif {
                    upgrades.push((key, line));
                } else {
                    let _ = self.ledger.set_line(&key, Some(line));
                }
            }
            Observed::Mrif { hart: h } if h == hart => {
                let class = self.ledger.vm(&key.vm).map(|r| r.class);
                if backing == Backing::VsFile && class == Some(Class::Burstable) {
                    warn!(vm = %key.vm, vcpu = key.vcpu, "KVM left a vCPU on MRIF the ledger gave a VS-file");
                    self.corrected();
                    let _ = self
                        .ledger
                        .set_backing(self.host.topology(), &key, Backing::Mrif);
                }
            }
            Observed::EntryFailed { hart: h } => {
                if self.failed_entries.insert(key.clone()) {
                    self.metrics.hwaccel_entry_failed();
                    error!(vm = %key.vm, vcpu = key.vcpu, hart = h, "HWACCEL guest entry failed: no free VS-file");
                }
            }
            Observed::Unknown => {}
            other => {
                warn!(vm = %key.vm, vcpu = key.vcpu, planned = hart, "vCPU runs off its hart: {other:?}");
            }
        }
    }
}

impl Engine {
    fn corrected(&mut self) {
        self.corrections += 1;
        self.metrics.ledger_corrected();
    }
}

fn count(plan: &[Assignment], backing: Backing) -> usize {
    plan.iter().filter(|a| a.backing == backing).count()
}
