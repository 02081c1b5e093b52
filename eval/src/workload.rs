//! Built-in workloads: traces made from a seed, the same on every platform
//! (ChaCha8), each ending at t = 600 s and small enough to replay quickly.
//!
//! - `steady`: 16 harts x 5 files, 2 NUMA nodes; a mix of classes placed in
//!   the first minute, VS-file demand below supply; a few releases and
//!   re-places; from t = 60 a random vCPU gets a new rate every 2..6 s.
//! - `oversubscribed`: 8 x 5 (the default simulated host); burstable VMs take
//!   most files, then guaranteed VMs need more than is free (swapping), some
//!   guaranteed VMs cannot fit at all; skewed rates; releases free files.
//! - `bursty`: 16 x 5; busy vCPUs switch between bursts and quiet every few
//!   seconds, vCPUs halt and wake.
//! - `hotplug`: steady on 8 x 5, plus harts going offline and back online about
//!   every 60 s (never more than half of them, so never the last one).
//! - `shifting`: 8 x 5; burstable VMs only (no priorities, no devices), 1.5
//!   vCPUs per file, placed in the first minute; every 60 s from t = 60 which
//!   vCPUs are busy changes (a fifth of them, skewed rates as `oversubscribed`):
//!   demand that moves while the files stay taken.
//!
//! Times are whole milliseconds and rates whole numbers, so that `to_jsonl`
//! round-trips exactly.

use std::fmt;
use std::str::FromStr;

use ifad::core::Class;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::trace::{Event, HostSpec, Op, PlaceOp, Trace};

/// When every built-in workload ends.
pub const END: f64 = 600.0;

/// Largest VM a built-in workload places.
pub const MAX_VCPUS: u32 = 16;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Workload {
    Steady,
    Oversubscribed,
    Bursty,
    Hotplug,
    Shifting,
}

/// A workload name that is not one of [`Workload::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown workload {0:?}; expected one of steady, oversubscribed, bursty, hotplug, shifting"
)]
pub struct UnknownWorkload(pub String);

impl FromStr for Workload {
    type Err = UnknownWorkload;

    fn from_str(raw: &str) -> Result<Self, UnknownWorkload> {
        Workload::ALL
            .into_iter()
            .find(|w| w.name() == raw)
            .ok_or_else(|| UnknownWorkload(raw.to_string()))
    }
}

impl fmt::Display for Workload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl Workload {
    pub const ALL: [Workload; 5] = [
        Workload::Steady,
        Workload::Oversubscribed,
        Workload::Bursty,
        Workload::Hotplug,
        Workload::Shifting,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Workload::Steady => "steady",
            Workload::Oversubscribed => "oversubscribed",
            Workload::Bursty => "bursty",
            Workload::Hotplug => "hotplug",
            Workload::Shifting => "shifting",
        }
    }

    /// The host the workload runs on.
    pub fn host(self) -> HostSpec {
        let (harts, numa) = match self {
            Workload::Steady | Workload::Bursty => (16, 2),
            Workload::Oversubscribed | Workload::Hotplug | Workload::Shifting => (8, 1),
        };
        HostSpec {
            harts,
            files: 5,
            numa,
        }
    }

    /// The workload's trace for `seed`: the same seed, the same trace.
    pub fn generate(self, seed: u64) -> Trace {
        let mut g = Gen::new(self.host(), seed);
        match self {
            Workload::Steady => steady(&mut g),
            Workload::Oversubscribed => oversubscribed(&mut g),
            Workload::Bursty => bursty(&mut g),
            Workload::Hotplug => hotplug(&mut g),
            Workload::Shifting => shifting(&mut g),
        }
        g.finish()
    }
}

/// A VM the generator placed.
#[derive(Debug, Clone)]
struct Vm {
    name: String,
    class: Class,
    vcpus: u32,
}

impl Vm {
    /// VS-files it asks for when all of its vCPUs get one.
    fn demand(&self) -> u32 {
        demand(self.class, self.vcpus)
    }
}

fn demand(class: Class, vcpus: u32) -> u32 {
    match class {
        Class::BestEffort => 0,
        Class::Guaranteed | Class::Burstable => vcpus,
    }
}

/// Rounds to whole milliseconds.
fn ms(t: f64) -> f64 {
    (t * 1000.0).round() / 1000.0
}

struct Gen {
    rng: ChaCha8Rng,
    host: HostSpec,
    events: Vec<Event>,
    next_id: u32,
    next_bus: u32,
    /// Every VM placed: when it was placed and released (infinity if never).
    spans: Vec<(Vm, f64, f64)>,
}

impl Gen {
    fn new(host: HostSpec, seed: u64) -> Self {
        Gen {
            rng: ChaCha8Rng::seed_from_u64(seed),
            host,
            events: Vec::new(),
            next_id: 0,
            next_bus: 1,
            spans: Vec::new(),
        }
    }

    fn push(&mut self, t: f64, op: Op) {
        let t = ms(t);
        assert!((0.0..END).contains(&t), "generated t {t} outside 0..{END}");
        self.events.push(Event { t, op });
    }

    /// A uniform time in `lo..hi` seconds.
    fn time(&mut self, lo: f64, hi: f64) -> f64 {
        ms(self.rng.random_range(lo..hi))
    }

    /// A whole number log-uniform in `lo..=hi`.
    fn log_uniform(&mut self, lo: f64, hi: f64) -> f64 {
        let x = self.rng.random_range(lo.ln()..=hi.ln()).exp();
        x.round().clamp(lo, hi)
    }

    fn pick_class(&mut self, guaranteed: f64, burstable: f64) -> Class {
        let x: f64 = self.rng.random();
        if x < guaranteed {
            Class::Guaranteed
        } else if x < guaranteed + burstable {
            Class::Burstable
        } else {
            Class::BestEffort
        }
    }

    /// Harts of one NUMA node, as the simulator splits them (contiguously).
    fn node_harts(&self, node: u32) -> Vec<u32> {
        let per_node = self.host.harts.div_ceil(self.host.numa).max(1);
        (node * per_node..((node + 1) * per_node).min(self.host.harts)).collect()
    }

    /// Places a new VM (a fresh id, fresh devices) at `t`.
    fn place(&mut self, t: f64, class: Class, vcpus: u32, opts: PlaceOpts) -> Vm {
        assert!((1..=MAX_VCPUS).contains(&vcpus), "vcpus {vcpus}");
        let prefix = match class {
            Class::Guaranteed => "db",
            Class::Burstable => "web",
            Class::BestEffort => "batch",
        };
        let name = format!("{prefix}-{}", self.next_id);
        self.next_id += 1;
        let devices = (0..opts.devices)
            .map(|_| {
                let bus = self.next_bus;
                self.next_bus += 1;
                assert!(bus <= 0xff, "out of PCI buses");
                format!("0000:{bus:02x}:00.0")
            })
            .collect();
        self.push(
            t,
            Op::Place(PlaceOp {
                vm: name.clone(),
                vcpus,
                class,
                devices,
                priority: opts.priority,
                harts: opts.harts,
            }),
        );
        let vm = Vm { name, class, vcpus };
        self.spans.push((vm.clone(), ms(t), f64::INFINITY));
        vm
    }

    /// Random extras for a VM: devices on about a third of those that take
    /// VS-files, a priority on some burstable ones, and now and then a VM kept
    /// to one NUMA node (never a guaranteed one, so that demand below supply
    /// stays placeable).
    fn random_opts(&mut self, class: Class) -> PlaceOpts {
        let devices = if class != Class::BestEffort && self.rng.random_bool(0.35) {
            self.rng.random_range(1..=2)
        } else {
            0
        };
        let priority = if class == Class::Burstable && self.rng.random_bool(0.4) {
            self.rng.random_range(1..=3)
        } else {
            0
        };
        let harts =
            if self.host.numa > 1 && class != Class::Guaranteed && self.rng.random_bool(0.15) {
                let node = self.rng.random_range(0..self.host.numa);
                Some(self.node_harts(node))
            } else {
                None
            };
        PlaceOpts {
            devices,
            priority,
            harts,
        }
    }

    fn rate(&mut self, t: f64, vm: &Vm, vcpu: u32, irqs_per_s: f64) {
        self.push(
            t,
            Op::Rate {
                vm: vm.name.clone(),
                vcpu,
                irqs_per_s,
            },
        );
    }

    /// One rate per vCPU at `t`, log-uniform in 10..=100 000.
    fn log_uniform_rates(&mut self, t: f64, vm: &Vm) {
        for vcpu in 0..vm.vcpus {
            let r = self.log_uniform(10.0, 100_000.0);
            self.rate(t, vm, vcpu, r);
        }
    }

    /// One rate per vCPU at `t`: `busy` of them 20 000..=100 000, the rest
    /// 10..=500.
    fn skewed_rates(&mut self, t: f64, vm: &Vm, busy: f64) {
        for vcpu in 0..vm.vcpus {
            let r = if self.rng.random_bool(busy) {
                self.log_uniform(20_000.0, 100_000.0)
            } else {
                self.log_uniform(10.0, 500.0)
            };
            self.rate(t, vm, vcpu, r);
        }
    }

    fn release(&mut self, t: f64, vm: &Vm) {
        if let Some(span) = self.spans.iter_mut().find(|s| s.0.name == vm.name) {
            span.2 = ms(t);
        }
        self.push(
            t,
            Op::Release {
                vm: vm.name.clone(),
            },
        );
    }

    /// From `from` until `until`, every `lo..hi` s one vCPU of a VM placed
    /// and not released at that time gets a new log-uniform rate.
    fn drift(&mut self, from: f64, until: f64, lo: f64, hi: f64) {
        let mut t = from;
        while t < until {
            let live: Vec<Vm> = self
                .spans
                .iter()
                .filter(|(_, on, off)| *on < t && t < *off)
                .map(|(vm, _, _)| vm.clone())
                .collect();
            if let Some(vm) = live.choose(&mut self.rng) {
                let vcpu = self.rng.random_range(0..vm.vcpus);
                let r = self.log_uniform(10.0, 100_000.0);
                self.rate(t, vm, vcpu, r);
            }
            t += self.time(lo, hi);
        }
    }

    /// Sorts by time (ties keep the order they were made in: a place before
    /// its rates) and ends the trace.
    fn finish(mut self) -> Trace {
        self.events.sort_by(|a, b| a.t.total_cmp(&b.t));
        self.events.push(Event {
            t: END,
            op: Op::End,
        });
        Trace {
            host: self.host,
            events: self.events,
        }
    }
}

#[derive(Debug, Clone, Default)]
struct PlaceOpts {
    devices: u32,
    priority: i32,
    harts: Option<Vec<u32>>,
}

/// Places a mix of classes from `start` until `until` or until VS-file demand
/// reaches `target` (never beyond it), each VM 1..4 s after the one before.
/// `rates` gives each new VM's vCPUs their rates.
fn place_mix(
    g: &mut Gen,
    start: f64,
    until: f64,
    target: u32,
    rates: fn(&mut Gen, f64, &Vm),
) -> Vec<(f64, Vm)> {
    let mut placed = Vec::new();
    let mut demand_now = 0;
    let mut t = start;
    while t < until && demand_now < target {
        let class = g.pick_class(0.3, 0.45);
        let max = match class {
            Class::BestEffort => MAX_VCPUS,
            _ => 8.min(target - demand_now),
        };
        let vcpus = g.rng.random_range(1..=max);
        let opts = g.random_opts(class);
        let vm = g.place(t, class, vcpus, opts);
        rates(g, t, &vm);
        demand_now += vm.demand();
        placed.push((t, vm));
        t = ms(t + g.rng.random_range(1.0..4.0));
    }
    placed
}

/// `count` releases, each at least 100 s after the one before, starting at
/// `first`, each followed 5..40 s later by a new VM of the same class and at
/// most as many vCPUs (so demand never grows).
fn release_and_replace(
    g: &mut Gen,
    live: &mut Vec<Vm>,
    first: f64,
    count: u32,
    rates: fn(&mut Gen, f64, &Vm),
) {
    for k in 0..count {
        if live.is_empty() {
            return;
        }
        let t = first + f64::from(k) * 110.0 + g.time(0.0, 30.0);
        let old = live.remove(g.rng.random_range(0..live.len()));
        g.release(t, &old);
        let t = t + g.time(5.0, 40.0);
        let vcpus = g.rng.random_range(1..=old.vcpus);
        let opts = g.random_opts(old.class);
        let vm = g.place(t, old.class, vcpus, opts);
        rates(g, t, &vm);
        live.push(vm);
    }
}

/// VMs placed in the first minute up to `target` VS-files of demand, some
/// released and placed again from `replace_from` on (`replaced` of them),
/// and rates drifting from t = 60: the base of `steady` and `hotplug`.
fn settled_mix(g: &mut Gen, target: u32, replace_from: f64, replaced: u32) {
    let placed = place_mix(g, 0.0, 60.0, target, Gen::log_uniform_rates);
    let mut live = placed.into_iter().map(|(_, vm)| vm).collect();
    release_and_replace(g, &mut live, replace_from, replaced, Gen::log_uniform_rates);
    g.drift(60.0, END - 5.0, 2.0, 6.0);
}

fn steady(g: &mut Gen) {
    // 80 files; demand 56..=64 of them.
    let target = g.rng.random_range(56..=64);
    settled_mix(g, target, 100.0, 4);
}

/// VMs of one class placed one after another, `gap_s` apart, until their
/// vCPUs add up to a target; each with skewed rates.
struct Wave {
    class: Class,
    vcpus: std::ops::RangeInclusive<u32>,
    gap_s: std::ops::Range<f64>,
    /// Share of busy vCPUs (`Gen::skewed_rates`).
    busy: f64,
}

impl Wave {
    /// Returns when the next VM would have come.
    fn place(&self, g: &mut Gen, start: f64, target: u32, live: &mut Vec<(f64, Vm)>) -> f64 {
        let mut placed = 0;
        let mut t = start;
        while placed < target {
            let vcpus = g.rng.random_range(self.vcpus.clone()).min(target - placed);
            let opts = g.random_opts(self.class);
            let vm = g.place(t, self.class, vcpus, opts);
            g.skewed_rates(t, &vm, self.busy);
            placed += vcpus;
            live.push((t, vm));
            t = ms(t + g.rng.random_range(self.gap_s.clone()));
        }
        t
    }
}

fn oversubscribed(g: &mut Gen) {
    let busy = 0.2;
    let skewed = |g: &mut Gen, t: f64, vm: &Vm| g.skewed_rates(t, vm, busy);
    let files = g.host.total_files();
    // Every VM placed (and not refused for sure), with when.
    let mut live: Vec<(f64, Vm)> = Vec::new();
    // Burstable VMs take 30..=36 of the 40 files in the first 20 s.
    let burst_target = g.rng.random_range(files * 3 / 4..=files * 9 / 10);
    let burst = Wave {
        class: Class::Burstable,
        vcpus: 4..=10,
        gap_s: 1.0..4.0,
        busy,
    };
    burst.place(g, 0.0, burst_target, &mut live);
    // Best-effort VMs now and then over the run.
    for _ in 0..g.rng.random_range(3..=5) {
        let t = g.time(0.0, 300.0);
        let vcpus = g.rng.random_range(1..=MAX_VCPUS);
        let vm = g.place(t, Class::BestEffort, vcpus, PlaceOpts::default());
        skewed(g, t, &vm);
        live.push((t, vm));
    }
    // Guaranteed VMs from t = 30: 26..=30 vCPUs in all, far more than the
    // 4..=10 files left free, so they fit only by taking burstable files.
    let guaranteed_target = g.rng.random_range(files * 13 / 20..=files * 3 / 4);
    let start = g.time(30.0, 35.0);
    let guaranteed = Wave {
        class: Class::Guaranteed,
        vcpus: 2..=8,
        gap_s: 3.0..8.0,
        busy,
    };
    let mut t = guaranteed.place(g, start, guaranteed_target, &mut live);
    // Guaranteed VMs that cannot fit at all: with the ones above holding 26+
    // files, 16 more exceed the host even when every burstable file is taken.
    for _ in 0..2 {
        t = ms(t + g.rng.random_range(5.0..15.0));
        let opts = g.random_opts(Class::Guaranteed);
        let vm = g.place(t, Class::Guaranteed, MAX_VCPUS, opts);
        skewed(g, t, &vm);
    }
    // Releases from t = 150 free files (only of VMs placed by then); half of
    // them are followed by a new VM that asks for no more than was freed.
    let mut t = g.time(150.0, 170.0);
    while t < 560.0 {
        let placed: Vec<usize> = (0..live.len()).filter(|&i| live[i].0 < t).collect();
        let Some(&i) = placed.choose(&mut g.rng) else {
            break;
        };
        let (_, old) = live.remove(i);
        g.release(t, &old);
        if g.rng.random_bool(0.5) {
            let at = t + g.time(5.0, 30.0);
            let class = match old.class {
                Class::BestEffort => Class::BestEffort,
                _ if g.rng.random_bool(0.5) => Class::Guaranteed,
                _ => Class::Burstable,
            };
            let vcpus = g.rng.random_range(1..=old.vcpus);
            let opts = g.random_opts(class);
            let vm = g.place(at, class, vcpus, opts);
            skewed(g, at, &vm);
            live.push((at, vm));
        }
        t += g.time(40.0, 80.0);
    }
}

fn bursty(g: &mut Gen) {
    // 80 files; demand 56..=64, all placed in the first 30 s.
    let target = g.rng.random_range(56..=64);
    let quiet = |g: &mut Gen, t: f64, vm: &Vm| {
        for vcpu in 0..vm.vcpus {
            let r = g.log_uniform(10.0, 1_000.0);
            g.rate(t, vm, vcpu, r);
        }
    };
    let placed = place_mix(g, 0.0, 30.0, target, quiet);
    let vcpus: Vec<(f64, &Vm, u32)> = placed
        .iter()
        .flat_map(|(t, vm)| (0..vm.vcpus).map(move |v| (*t, vm, v)))
        .collect();
    // 6..=10 busy vCPUs switch between bursts (2..8 s of 20k..=100k/s) and
    // quiet spells (2..8 s of 0..=200/s) for the whole run.
    let busy_count = g.rng.random_range(6..=10).min(vcpus.len());
    let busy: Vec<(f64, &Vm, u32)> = vcpus
        .choose_multiple(&mut g.rng, busy_count)
        .cloned()
        .collect();
    for (placed_at, vm, vcpu) in busy {
        let mut t = placed_at + g.time(0.5, 5.0);
        let mut on = true;
        while t < END - 1.0 {
            let r = if on {
                g.log_uniform(20_000.0, 100_000.0)
            } else if g.rng.random_bool(0.3) {
                0.0
            } else {
                g.log_uniform(10.0, 200.0)
            };
            g.rate(t, vm, vcpu, r);
            on = !on;
            t += g.time(2.0, 8.0);
        }
    }
    // From t = 35, a vCPU halts every 3..10 s and wakes 1..20 s later; a
    // halted one is not halted again before it wakes.
    let mut awake_at = vec![0.0; vcpus.len()];
    let mut t = g.time(35.0, 40.0);
    while t < END - 2.0 {
        let candidates: Vec<usize> = (0..vcpus.len()).filter(|&i| awake_at[i] < t).collect();
        if let Some(&i) = candidates.choose(&mut g.rng) {
            let (_, vm, vcpu) = vcpus[i];
            let wake = (t + g.time(1.0, 20.0)).min(END - 1.0);
            g.push(
                t,
                Op::Halt {
                    vm: vm.name.clone(),
                    vcpu,
                },
            );
            g.push(
                wake,
                Op::Wake {
                    vm: vm.name.clone(),
                    vcpu,
                },
            );
            awake_at[i] = wake;
        }
        t += g.time(3.0, 10.0);
    }
}

fn hotplug(g: &mut Gen) {
    // 40 files; demand 28..=34 of them, placed in the first minute.
    let target = g.rng.random_range(28..=34);
    settled_mix(g, target, 120.0, 3);
    // About every 60 s some harts go offline (usually 1..=harts/4, sometimes
    // up to half) and come back before the next round, so at most half are
    // ever offline and one is always online.
    let harts = g.host.harts;
    let epochs: Vec<f64> = (1..=9)
        .map(|k| f64::from(k) * 60.0 + g.time(-10.0, 10.0))
        .collect();
    for (k, &t) in epochs.iter().enumerate() {
        let next = epochs.get(k + 1).copied().unwrap_or(END);
        let most = if g.rng.random_bool(0.2) {
            harts / 2
        } else {
            (harts / 4).max(1)
        };
        let count = g.rng.random_range(1..=most.max(1));
        if count == 0 || count >= harts {
            continue;
        }
        let all: Vec<u32> = (0..harts).collect();
        let down: Vec<u32> = all
            .choose_multiple(&mut g.rng, count as usize)
            .copied()
            .collect();
        for (i, &hart) in down.iter().enumerate() {
            let off = t + 0.5 * i as f64;
            let back = (off + g.time(10.0, 45.0)).min(next - 2.0);
            g.push(off, Op::Offline { hart });
            g.push(back, Op::Online { hart });
        }
    }
}

#[cfg(test)]
#[path = "workload_tests.rs"]
mod tests;

/// Share of busy vCPUs in `shifting`.
const SHIFTING_BUSY: f64 = 0.2;

fn shifting(g: &mut Gen) {
    let target = g.host.total_files() * 3 / 2;
    let mut live = Vec::new();
    let (mut placed, mut t) = (0, 0.0);
    while placed < target {
        let vcpus = g.rng.random_range(2..=8).min(target - placed);
        let vm = g.place(t, Class::Burstable, vcpus, PlaceOpts::default());
        g.skewed_rates(t, &vm, SHIFTING_BUSY);
        placed += vcpus;
        live.push(vm);
        t = ms(t + g.rng.random_range(0.5..2.0));
    }
    let mut t = 60.0;
    while t < END - 5.0 {
        for vm in &live {
            g.skewed_rates(t, vm, SHIFTING_BUSY);
        }
        t += 60.0;
    }
}
