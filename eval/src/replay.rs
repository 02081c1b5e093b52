//! Replays a trace against one policy in steps of the daemon's tick, and
//! adds up what the KVM model shows at each step.

use std::collections::{HashMap, HashSet};

use ifad::core::Class;

use crate::figures::{Accounting, Figures, On, Series, VcpuId};
use crate::trace::{Op, PlaceOp, Trace};

/// The daemon's control loop turns every 500 ms: the replay's step.
pub const STEP_S: f64 = 0.5;

/// One way of deciding who gets VS-files, driven by the replay.
pub trait Policy {
    fn name(&self) -> &'static str;
    /// Places a VM at `t`; false if the policy refuses it.
    fn place(&mut self, op: &PlaceOp, t: f64) -> bool;
    fn release(&mut self, vm: &str, t: f64);
    fn set_halted(&mut self, vm: &str, vcpu: u32, halted: bool, t: f64);
    fn set_online(&mut self, hart: u32, online: bool, t: f64);
    /// The interrupts a vCPU receives from `t` on. The optimal bound knows
    /// them; ifad's simulated host counts what a Linux host could see of
    /// them; the others ignore them.
    fn set_rate(&mut self, _vm: &str, _vcpu: u32, _irqs_per_s: f64, _t: f64) {}
    /// Time passes to `t`: ticks, scheduling, guest entries.
    fn step(&mut self, t: f64);
    /// Where every vCPU of every placed VM is now.
    fn observe(&mut self) -> Vec<(VcpuId, On)>;
    /// Harts online now.
    fn online(&self) -> Vec<bool>;
    /// Wall-clock microseconds of each decision the policy made.
    fn decisions_us(&mut self) -> Vec<f64>;
}

/// What the replay knows of the workload, whatever the policy.
#[derive(Default)]
struct Workload {
    placed: HashMap<String, (Class, u32)>,
    refused: HashSet<String>,
    rates: HashMap<VcpuId, f64>,
}

impl Workload {
    fn has(&self, vm: &str, vcpu: Option<u32>) -> bool {
        self.placed
            .get(vm)
            .is_some_and(|&(_, n)| vcpu.is_none_or(|v| v < n))
    }
}

/// The policy's figures, and what it showed step by step.
pub fn run(trace: &Trace, policy: &mut dyn Policy) -> (Figures, Series) {
    let mut w = Workload::default();
    let mut acct = Accounting::default();
    let mut events = trace.events.iter().peekable();
    let end = trace.end();
    let mut t = 0.0;
    while t <= end {
        while let Some(e) = events.next_if(|e| e.t <= t) {
            apply(&e.op, e.t, policy, &mut w, &mut acct);
        }
        policy.step(t);
        let now: Vec<(VcpuId, f64, On)> = policy
            .observe()
            .into_iter()
            .map(|(id, on)| {
                let rate = w.rates.get(&id).copied().unwrap_or(0.0);
                (id, rate, on)
            })
            .collect();
        acct.sample(t, STEP_S, &now, &policy.online());
        t += STEP_S;
    }
    let mut decisions = policy.decisions_us();
    let series = std::mem::take(&mut acct.series);
    (acct.figures(policy.name(), &mut decisions), series)
}

fn apply(op: &Op, t: f64, policy: &mut dyn Policy, w: &mut Workload, acct: &mut Accounting) {
    match op {
        Op::Place(p) => {
            if w.placed.contains_key(&p.vm) || w.refused.contains(&p.vm) {
                return;
            }
            if policy.place(p, t) {
                w.placed.insert(p.vm.clone(), (p.class, p.vcpus));
                for v in 0..p.vcpus {
                    let rate = w.rates.get(&(p.vm.clone(), v)).copied().unwrap_or(0.0);
                    policy.set_rate(&p.vm, v, rate, t);
                }
            } else {
                acct.refusals.count(p.class);
                w.refused.insert(p.vm.clone());
            }
        }
        Op::Rate {
            vm,
            vcpu,
            irqs_per_s,
        } => {
            w.rates.insert((vm.clone(), *vcpu), *irqs_per_s);
            if w.has(vm, Some(*vcpu)) {
                policy.set_rate(vm, *vcpu, *irqs_per_s, t);
            }
        }
        Op::Release { vm } if w.placed.remove(vm).is_some() => policy.release(vm, t),
        Op::Halt { vm, vcpu } if w.has(vm, Some(*vcpu)) => policy.set_halted(vm, *vcpu, true, t),
        Op::Wake { vm, vcpu } if w.has(vm, Some(*vcpu)) => policy.set_halted(vm, *vcpu, false, t),
        Op::Offline { hart } => policy.set_online(*hart, false, t),
        Op::Online { hart } => policy.set_online(*hart, true, t),
        // Ops on VMs never placed, refused or released are skipped.
        Op::Release { .. } | Op::Halt { .. } | Op::Wake { .. } | Op::End => {}
    }
}
