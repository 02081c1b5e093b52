//! `optimal`: at every instant the best assignment of VS-files the host
//! allows (`crate::optimal`, an exact LP), ignoring KVM's timing and the cost
//! of moving. It admits a VM only if every guaranteed vCPU, old and new,
//! can then hold a file. A bound, not a policy a host could run. As
//! `optimal-priority` it is the bound for policies that honour priority
//! ([`Ranking::PriorityFirst`]).

use std::collections::HashMap;
use std::time::Instant;

use ifad::core::Class;

use crate::figures::{On, VcpuId};
use crate::optimal::{self, Assignment, HartState, OptimalError, Ranking, VmDemand};
use crate::replay::Policy;
use crate::trace::{HostSpec, PlaceOp};

pub struct OptimalPolicy {
    ranking: Ranking,
    harts: Vec<HartState>,
    /// Placed VMs in placement order, with their demand.
    vms: Vec<(String, VmDemand)>,
    /// Per VM (same order), per vCPU: the hart whose file it holds.
    assignment: HashMap<String, Vec<Option<u32>>>,
    /// Something changed since the last solve.
    dirty: bool,
    /// Guaranteed VMs stopped because a hart went offline under them, with
    /// their vCPU counts; shown as stopped until released.
    stopped: Vec<(String, u32)>,
    decisions_us: Vec<f64>,
}

impl OptimalPolicy {
    pub fn new(host: &HostSpec, ranking: Ranking) -> Self {
        OptimalPolicy {
            ranking,
            harts: (0..host.harts)
                .map(|_| HartState {
                    files: u32::from(host.files),
                    online: true,
                })
                .collect(),
            vms: Vec::new(),
            assignment: HashMap::new(),
            dirty: false,
            stopped: Vec::new(),
            decisions_us: Vec::new(),
        }
    }

    fn timed<R>(&mut self, f: impl FnOnce(&Self) -> R) -> R {
        let started = Instant::now();
        let r = f(self);
        self.decisions_us
            .push(started.elapsed().as_secs_f64() * 1e6);
        r
    }

    fn demands(&self) -> Vec<VmDemand> {
        self.vms.iter().map(|(_, d)| d.clone()).collect()
    }

    fn solve(&mut self) {
        loop {
            let previous: Vec<Option<Vec<Option<u32>>>> = self
                .vms
                .iter()
                .map(|(id, _)| self.assignment.get(id).cloned())
                .collect();
            let demands = self.demands();
            let solved =
                self.timed(|p| optimal::solve_ranked(&p.harts, &demands, &previous, p.ranking));
            match solved {
                Ok(solution) => return self.adopt(solution.assignment),
                // A hart went offline under guaranteed VMs: like their VMMs,
                // the newest of them stops until there is room.
                Err(OptimalError::Infeasible) => self.stop_newest_guaranteed(),
                Err(e) => panic!("the optimal bound could not be computed: {e}"),
            }
        }
    }

    fn adopt(&mut self, assignment: Assignment) {
        for ((id, _), a) in self.vms.iter().zip(assignment) {
            self.assignment.insert(id.clone(), a);
        }
    }

    fn stop_newest_guaranteed(&mut self) {
        let newest = self
            .vms
            .iter()
            .rposition(|(_, d)| d.class == Class::Guaranteed)
            .expect("only guaranteed demand can be infeasible");
        let (id, demand) = self.vms.remove(newest);
        self.assignment.remove(&id);
        self.stopped.push((id, demand.rates.len() as u32));
    }

    /// Where a vCPU without a file runs: the least loaded online hart it may
    /// use, so the bound's thread figures are the best spread too.
    fn spread(&self) -> HashMap<VcpuId, u32> {
        let mut load = vec![0u32; self.harts.len()];
        for a in self.assignment.values() {
            for h in a.iter().flatten() {
                load[*h as usize] += 1;
            }
        }
        let mut out = HashMap::new();
        for (id, d) in &self.vms {
            for (i, a) in self.assignment[id].iter().enumerate() {
                if a.is_some() {
                    continue;
                }
                let hart = (0..self.harts.len() as u32)
                    .filter(|&h| self.harts[h as usize].online)
                    .filter(|h| d.allowed.as_ref().is_none_or(|a| a.contains(h)))
                    .min_by_key(|&h| (load[h as usize], h))
                    .unwrap_or(0);
                load[hart as usize] += 1;
                out.insert((id.clone(), i as u32), hart);
            }
        }
        out
    }
}

impl Policy for OptimalPolicy {
    fn name(&self) -> &'static str {
        match self.ranking {
            Ranking::ByRate => "optimal",
            Ranking::PriorityFirst => "optimal-priority",
        }
    }

    fn place(&mut self, op: &PlaceOp, _t: f64) -> bool {
        let candidate = VmDemand {
            class: op.class,
            priority: op.priority,
            allowed: op.harts.clone(),
            rates: vec![0.0; op.vcpus as usize],
        };
        let demands = self.demands();
        if !self.timed(|p| optimal::admits(&p.harts, &demands, &candidate)) {
            return false;
        }
        self.vms.push((op.vm.clone(), candidate));
        self.dirty = true;
        self.solve();
        self.dirty = false;
        true
    }

    fn release(&mut self, vm: &str, _t: f64) {
        self.vms.retain(|(id, _)| id != vm);
        self.stopped.retain(|(id, _)| id != vm);
        self.assignment.remove(vm);
        self.dirty = true;
    }

    fn set_halted(&mut self, _vm: &str, _vcpu: u32, _halted: bool, _t: f64) {
        // A halted vCPU keeps its file in KVM, and here.
    }

    fn set_online(&mut self, hart: u32, online: bool, _t: f64) {
        let others = self
            .harts
            .iter()
            .enumerate()
            .any(|(i, h)| i != hart as usize && h.online);
        // As Linux: the last online CPU stays.
        if online || others {
            self.harts[hart as usize].online = online;
            self.dirty = true;
        }
    }

    fn set_rate(&mut self, vm: &str, vcpu: u32, irqs_per_s: f64, _t: f64) {
        if let Some((_, d)) = self.vms.iter_mut().find(|(id, _)| id == vm) {
            d.rates[vcpu as usize] = irqs_per_s;
            self.dirty = true;
        }
    }

    fn step(&mut self, _t: f64) {
        if self.dirty {
            self.solve();
            self.dirty = false;
        }
    }

    fn observe(&mut self) -> Vec<(VcpuId, On)> {
        let spread = self.spread();
        let mut out = Vec::new();
        for (id, _) in &self.vms {
            for (i, a) in self.assignment[id].iter().enumerate() {
                let key = (id.clone(), i as u32);
                let on = match a {
                    Some(hart) => On::VsFile { hart: *hart },
                    None => On::Mrif { hart: spread[&key] },
                };
                out.push((key, on));
            }
        }
        for (id, vcpus) in &self.stopped {
            out.extend((0..*vcpus).map(|i| ((id.clone(), i), On::Stopped)));
        }
        out
    }

    fn online(&self) -> Vec<bool> {
        self.harts.iter().map(|h| h.online).collect()
    }

    fn decisions_us(&mut self) -> Vec<f64> {
        std::mem::take(&mut self.decisions_us)
    }
}
