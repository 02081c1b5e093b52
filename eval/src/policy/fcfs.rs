//! No ifad: KVM's first come, first served. Every VM runs in its class's
//! AIA mode and KVM hands out lines at guest entry (the same `SimKvm` the
//! daemon's simulated host runs). Where the vCPU threads run is decided by
//! a model of Linux's scheduler, which knows nothing of VS-files:
//! - `fcfs`: each thread starts on the least loaded hart it may use; every
//!   second the balancer moves one thread from the busiest to the idlest
//!   hart while they differ by more than one; and a waking thread moves to
//!   a less loaded hart with probability 2 % per step (wake-up placement).
//! - `fcfs-pinned`: the orchestrator pins each vCPU to one hart, round-robin
//!   over the harts the VM may use, as a careful operator would; the
//!   scheduler moves a pinned thread only when its hart goes offline.

use std::collections::HashMap;

use ifad::host::sim::kvm::{SimKvm, VmHandle};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::figures::{On, VcpuId};
use crate::replay::Policy;
use crate::trace::{HostSpec, PlaceOp};

/// How often the load balancer runs.
const BALANCE_PERIOD_S: f64 = 1.0;
/// Chance per step that a running thread is woken onto a less loaded hart.
const WAKE_MIGRATION: f64 = 0.02;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pinning {
    /// Threads go where the load balancer puts them.
    Scheduler,
    /// One hart per vCPU, round-robin, set once at placement.
    RoundRobin,
}

struct Vm {
    handle: VmHandle,
    allowed: Vec<u32>,
    /// The hart each vCPU thread runs on.
    cpu: Vec<u32>,
}

pub struct FcfsPolicy {
    kvm: SimKvm,
    online: Vec<bool>,
    pinning: Pinning,
    vms: HashMap<String, Vm>,
    /// Placement order, so that every pass over the VMs is deterministic.
    order: Vec<String>,
    next_pin: u32,
    last_balance: f64,
    rng: ChaCha8Rng,
}

impl FcfsPolicy {
    pub fn new(host: &HostSpec, pinning: Pinning, seed: u64) -> Self {
        FcfsPolicy {
            kvm: SimKvm::new(std::iter::repeat_n(host.files, host.harts as usize)),
            online: vec![true; host.harts as usize],
            pinning,
            vms: HashMap::new(),
            order: Vec::new(),
            next_pin: 0,
            last_balance: 0.0,
            rng: ChaCha8Rng::seed_from_u64(seed),
        }
    }

    fn load(&self) -> Vec<u32> {
        let mut load = vec![0u32; self.online.len()];
        for vm in self.vms.values() {
            for &c in &vm.cpu {
                load[c as usize] += 1;
            }
        }
        load
    }

    /// The least loaded online hart among `allowed` (lowest id on ties).
    fn idlest(&self, allowed: &[u32], load: &[u32]) -> Option<u32> {
        allowed
            .iter()
            .copied()
            .filter(|&h| self.online[h as usize])
            .min_by_key(|&h| (load[h as usize], h))
    }

    /// The next online hart among `allowed`, round-robin over the host.
    fn next_round_robin(&mut self, allowed: &[u32]) -> Option<u32> {
        let n = self.online.len() as u32;
        let pick = (0..n)
            .map(|k| (self.next_pin + k) % n)
            .find(|h| self.online[*h as usize] && allowed.contains(h))?;
        self.next_pin = (pick + 1) % n;
        Some(pick)
    }

    fn run_on(&mut self, vm: &str, vcpu: usize, hart: u32) {
        let v = self.vms.get_mut(vm).expect("placed");
        v.cpu[vcpu] = hart;
        self.kvm
            .set_affinity(v.handle, vcpu, &[hart])
            .expect("the hart exists");
    }

    fn balance(&mut self) {
        let ids = self.order.clone();
        loop {
            let load = self.load();
            let Some((vm, vcpu, to)) = ids.iter().find_map(|id| {
                let v = &self.vms[id];
                v.cpu.iter().enumerate().find_map(|(i, &c)| {
                    let to = self.idlest(&v.allowed, &load)?;
                    (load[c as usize] > load[to as usize] + 1
                        && load[c as usize] == *load.iter().max().unwrap_or(&0))
                    .then(|| (id.clone(), i, to))
                })
            }) else {
                return;
            };
            self.run_on(&vm, vcpu, to);
        }
    }

    fn wake_migrations(&mut self) {
        for id in self.order.clone() {
            let n = self.vms[&id].cpu.len();
            for i in 0..n {
                if !self.rng.random_bool(WAKE_MIGRATION) {
                    continue;
                }
                let load = self.load();
                let v = &self.vms[&id];
                let here = v.cpu[i];
                if let Some(to) = self.idlest(&v.allowed, &load)
                    && load[to as usize] < load[here as usize]
                {
                    self.run_on(&id, i, to);
                }
            }
        }
    }

    /// Threads on harts that went offline run elsewhere (Linux breaks the
    /// affinity of a pinned thread whose only CPU goes away).
    fn evacuate(&mut self, hart: u32) {
        for id in self.order.clone() {
            let n = self.vms[&id].cpu.len();
            for i in 0..n {
                if self.vms[&id].cpu[i] != hart {
                    continue;
                }
                let load = self.load();
                let allowed = self.vms[&id].allowed.clone();
                let all: Vec<u32> = (0..self.online.len() as u32).collect();
                let to = self
                    .idlest(&allowed, &load)
                    .or_else(|| self.idlest(&all, &load))
                    .expect("Linux keeps one CPU online");
                self.run_on(&id, i, to);
            }
        }
    }
}

impl Policy for FcfsPolicy {
    fn name(&self) -> &'static str {
        match self.pinning {
            Pinning::Scheduler => "fcfs",
            Pinning::RoundRobin => "fcfs-pinned",
        }
    }

    fn place(&mut self, op: &PlaceOp, _t: f64) -> bool {
        // KVM refuses AUTO and HWACCEL on a host without guest files.
        let Ok(handle) = self.kvm.create_vm(op.class.aia_mode(), op.vcpus as usize) else {
            return false;
        };
        let all: Vec<u32> = (0..self.online.len() as u32).collect();
        let allowed = op.harts.clone().unwrap_or(all);
        let vm = Vm {
            handle,
            allowed: allowed.clone(),
            cpu: vec![0; op.vcpus as usize],
        };
        self.vms.insert(op.vm.clone(), vm);
        self.order.push(op.vm.clone());
        for i in 0..op.vcpus as usize {
            let load = self.load();
            let hart = match self.pinning {
                Pinning::Scheduler => self.idlest(&allowed, &load),
                Pinning::RoundRobin => self.next_round_robin(&allowed),
            };
            self.run_on(&op.vm, i, hart.unwrap_or(0));
        }
        true
    }

    fn release(&mut self, vm: &str, _t: f64) {
        let v = self.vms.remove(vm).expect("placed");
        self.order.retain(|id| id != vm);
        self.kvm.destroy_vm(v.handle).expect("a live VM");
    }

    fn set_halted(&mut self, vm: &str, vcpu: u32, halted: bool, _t: f64) {
        let handle = self.vms[vm].handle;
        self.kvm
            .set_blocked(handle, vcpu as usize, halted)
            .expect("a vCPU of a live VM");
    }

    fn set_online(&mut self, hart: u32, online: bool, _t: f64) {
        // Linux refuses to take the last CPU down.
        if self.kvm.set_cpu_online(hart, online).is_ok() {
            self.online[hart as usize] = online;
            if !online {
                self.evacuate(hart);
            }
        }
    }

    fn step(&mut self, t: f64) {
        if self.pinning == Pinning::Scheduler {
            if t - self.last_balance >= BALANCE_PERIOD_S {
                self.balance();
                self.last_balance = t;
            }
            self.wake_migrations();
        }
        for id in &self.order {
            let v = &self.vms[id];
            for i in 0..v.cpu.len() {
                self.kvm.enter(v.handle, i).expect("a vCPU of a live VM");
            }
        }
    }

    fn observe(&mut self) -> Vec<(VcpuId, On)> {
        let mut out = Vec::new();
        for id in &self.order {
            let v = &self.vms[id];
            let stopped = self.kvm.is_stopped(v.handle);
            for (i, &cpu) in v.cpu.iter().enumerate() {
                let held = self
                    .kvm
                    .held_line(v.handle, i)
                    .expect("a vCPU of a live VM");
                let on = match (stopped, held) {
                    (true, _) => On::Stopped,
                    (false, Some((hart, _))) => On::VsFile { hart },
                    (false, None) => On::Mrif { hart: cpu },
                };
                out.push(((id.clone(), i as u32), on));
            }
        }
        out
    }

    fn online(&self) -> Vec<bool> {
        self.online.clone()
    }

    fn decisions_us(&mut self) -> Vec<f64> {
        Vec::new()
    }
}
