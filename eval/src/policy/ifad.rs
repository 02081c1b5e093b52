//! `ifad`: the daemon's engine and policy, as shipped, on the simulated host
//! the daemon itself uses (`--simulate`).

use std::time::Instant;

use ifad::core::VmId;
use ifad::core::ledger::Millis;
use ifad::core::request::PlaceSpec;
use ifad::engine::{Engine, EngineConfig};
use ifad::host::Observed;
use ifad::host::sim::{SimHost, SimSpec};
use ifad::metrics::Metrics;

use crate::figures::{On, VcpuId};
use crate::replay::Policy;
use crate::trace::{HostSpec, PlaceOp};

pub struct IfadPolicy {
    engine: Engine,
    decisions_us: Vec<f64>,
}

fn millis(t: f64) -> Millis {
    (t * 1000.0).round() as Millis
}

impl IfadPolicy {
    pub fn new(host: &HostSpec) -> Self {
        let spec = SimSpec {
            harts: host.harts,
            files: host.files,
            numa: host.numa,
        };
        IfadPolicy {
            engine: Engine::new(
                Box::new(SimHost::from_spec(&spec)),
                Metrics::new(env!("CARGO_PKG_VERSION"), "simulated"),
                EngineConfig::default(),
            ),
            decisions_us: Vec::new(),
        }
    }

    /// Runs `f` on the engine, timing it as one decision.
    fn decide<R>(&mut self, f: impl FnOnce(&mut Engine) -> R) -> R {
        let started = Instant::now();
        let r = f(&mut self.engine);
        self.decisions_us
            .push(started.elapsed().as_secs_f64() * 1e6);
        r
    }

    /// Moves the simulated host's clock to `t`, so that what it counts of
    /// interrupts covers the time until this op.
    fn at(&mut self, t: f64) {
        self.sim().advance(millis(t));
    }

    fn sim(&mut self) -> &mut SimHost {
        self.engine
            .host_mut()
            .sim()
            .expect("the evaluator runs the engine on the simulated host")
    }
}

/// An id the daemon would refuse is refused at placement.
fn vm_id(vm: &str) -> Option<VmId> {
    VmId::parse(vm).ok()
}

impl Policy for IfadPolicy {
    fn name(&self) -> &'static str {
        "ifad"
    }

    fn place(&mut self, op: &PlaceOp, t: f64) -> bool {
        self.at(t);
        let Ok(spec) = PlaceSpec::parse(&op.vm, op.vcpus, Some(op.class), &op.devices) else {
            return false;
        };
        let spec = spec
            .with_priority(op.priority)
            .with_harts(op.harts.as_deref().unwrap_or_default());
        self.decide(|e| e.place(spec, millis(t))).is_ok()
    }

    fn release(&mut self, vm: &str, t: f64) {
        self.at(t);
        let id = vm_id(vm).expect("the engine placed it, so its id parses");
        self.decide(|e| e.release(&id, millis(t)))
            .expect("the engine holds every VM the replay placed until released");
    }

    fn set_halted(&mut self, vm: &str, vcpu: u32, halted: bool, t: f64) {
        self.at(t);
        let id = vm_id(vm).expect("the engine placed it, so its id parses");
        self.sim()
            .set_blocked(&id, vcpu, halted)
            .expect("a placed VM runs on the simulated host until released");
    }

    fn set_online(&mut self, hart: u32, online: bool, t: f64) {
        self.at(t);
        // Linux refuses to take the last CPU down; the engine sees what is.
        if self.sim().set_hart_online(hart, online).is_ok() {
            self.decide(|e| e.tick(millis(t)));
        }
    }

    fn set_rate(&mut self, vm: &str, vcpu: u32, irqs_per_s: f64, t: f64) {
        self.at(t);
        let id = vm_id(vm).expect("the engine placed it, so its id parses");
        self.sim()
            .set_irq_rate(&id, vcpu, irqs_per_s)
            .expect("a placed VM runs on the simulated host until released");
    }

    fn step(&mut self, t: f64) {
        self.at(t);
        self.decide(|e| e.tick(millis(t)));
    }

    fn observe(&mut self) -> Vec<(VcpuId, On)> {
        let ids: Vec<VmId> = self.engine.ledger().vms().map(|r| r.id.clone()).collect();
        let mut out = Vec::new();
        for id in ids {
            let failed = self.engine.entry_failed(&id);
            let seen = self.engine.host_mut().observe(&id);
            let placed = self.engine.ledger().vm(&id).map(|r| r.vcpus.clone());
            for (i, o) in seen.into_iter().enumerate() {
                let hart = placed.as_ref().and_then(|v| v.get(i)).map(|v| v.hart);
                let on = match (failed, o) {
                    (true, _) | (_, Observed::EntryFailed { .. }) => On::Stopped,
                    (_, Observed::VsFile { hart, .. }) => On::VsFile { hart },
                    (_, Observed::Mrif { hart }) => On::Mrif { hart },
                    // Paused (pending) and not yet entered: where it will run.
                    (_, Observed::Unknown) => On::Mrif {
                        hart: hart.unwrap_or(0),
                    },
                };
                out.push(((id.to_string(), i as u32), on));
            }
        }
        out
    }

    fn online(&self) -> Vec<bool> {
        self.engine
            .topology()
            .harts()
            .iter()
            .map(|h| h.online)
            .collect()
    }

    fn decisions_us(&mut self) -> Vec<f64> {
        std::mem::take(&mut self.decisions_us)
    }
}
