//! What one policy's replay adds up to: the figures `ifad-eval` compares.

use std::collections::HashMap;

use ifad::core::Class;
use serde::Serialize;

/// Where one vCPU is at one instant, as the KVM model holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum On {
    /// Holds a VS-file of this hart.
    VsFile { hart: u32 },
    /// Runs on this hart without one (MRIF, KVM's SW-file).
    Mrif { hart: u32 },
    /// Its VM stopped after a failed HWACCEL entry: no service at all.
    Stopped,
}

impl On {
    fn hart(self) -> Option<u32> {
        match self {
            On::VsFile { hart } | On::Mrif { hart } => Some(hart),
            On::Stopped => None,
        }
    }
}

/// Refused placements by class.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Refusals {
    pub guaranteed: u32,
    pub burstable: u32,
    #[serde(rename = "best-effort")]
    pub best_effort: u32,
}

impl Refusals {
    pub fn count(&mut self, class: Class) {
        match class {
            Class::Guaranteed => self.guaranteed += 1,
            Class::Burstable => self.burstable += 1,
            Class::BestEffort => self.best_effort += 1,
        }
    }
}

/// The figures of one policy over one replay.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Figures {
    pub policy: String,
    /// Sum over vCPUs of rate x time without a VS-file, over rate x time placed.
    pub mrif_exposure: f64,
    /// vCPU-time without a VS-file, over vCPU-time placed.
    pub mrif_vcpu_time: f64,
    /// vCPUs stopped by a failed HWACCEL entry (their VM stops with them).
    pub hwaccel_entry_failures: u32,
    pub refusals: Refusals,
    /// Times a placed vCPU lost its VS-file (its VM still placed).
    pub demotions: u32,
    /// Times a placed vCPU's thread ran on another hart than before.
    pub migrations: u32,
    pub max_threads_per_hart: u32,
    pub p99_threads_per_hart: u32,
    /// Largest distance of a hart's thread count from the balanced count.
    pub max_imbalance: f64,
    pub decision_p50_us: f64,
    pub decision_p99_us: f64,
}

/// One vCPU of a placed VM, identified by the VM's id and its index.
pub type VcpuId = (String, u32);

/// What the replay showed step by step, for pictures.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Series {
    /// Seconds since the start, one entry per step.
    pub t: Vec<f64>,
    /// Interrupt-weighted MRIF exposure within the step (0 when no
    /// interrupts arrived).
    pub exposure: Vec<f64>,
    /// VS-files held per hart within the step.
    pub used: Vec<Vec<u32>>,
}

/// Sums what the replay shows at each instant.
#[derive(Default)]
pub struct Accounting {
    pub series: Series,
    weighted_mrif: f64,
    weighted_total: f64,
    mrif_time: f64,
    placed_time: f64,
    failures: u32,
    pub refusals: Refusals,
    demotions: u32,
    migrations: u32,
    threads: Vec<u32>,
    max_imbalance: f64,
    last: HashMap<VcpuId, On>,
}

impl Accounting {
    /// One instant of `dt` seconds: every placed vCPU, its rate, where it
    /// is; `online` harts count for thread load.
    pub fn sample(&mut self, t: f64, dt: f64, now: &[(VcpuId, f64, On)], online: &[bool]) {
        let mut load = vec![0u32; online.len()];
        let mut used = vec![0u32; online.len()];
        let (mut step_mrif, mut step_total) = (0.0, 0.0);
        let mut seen = HashMap::with_capacity(now.len());
        for (id, rate, on) in now {
            self.placed_time += dt;
            step_total += rate * dt;
            match on {
                On::VsFile { hart } => used[*hart as usize] += 1,
                On::Mrif { .. } | On::Stopped => {
                    self.mrif_time += dt;
                    step_mrif += rate * dt;
                }
            }
            if let Some(h) = on.hart() {
                load[h as usize] += 1;
            }
            self.transition(id, *on);
            seen.insert(id.clone(), *on);
        }
        // Released VMs leave without counting as demoted.
        self.last = seen;
        self.weighted_mrif += step_mrif;
        self.weighted_total += step_total;
        self.series.t.push(t);
        self.series.exposure.push(ratio(step_mrif, step_total));
        self.series.used.push(used);
        self.count_load(&load, online);
    }

    fn transition(&mut self, id: &VcpuId, on: On) {
        let before = self.last.get(id).copied();
        if on == On::Stopped && before != Some(On::Stopped) {
            self.failures += 1;
        }
        let Some(before) = before else {
            return;
        };
        if matches!(before, On::VsFile { .. }) && !matches!(on, On::VsFile { .. }) {
            self.demotions += 1;
        }
        if let (Some(a), Some(b)) = (before.hart(), on.hart())
            && a != b
        {
            self.migrations += 1;
        }
    }

    fn count_load(&mut self, load: &[u32], online: &[bool]) {
        let up: Vec<u32> = load
            .iter()
            .zip(online)
            .filter(|(_, on)| **on)
            .map(|(l, _)| *l)
            .collect();
        if up.is_empty() {
            return;
        }
        let balanced = f64::from(up.iter().sum::<u32>()) / up.len() as f64;
        for &l in &up {
            self.max_imbalance = self.max_imbalance.max((f64::from(l) - balanced).abs());
        }
        self.threads.extend(up);
    }

    pub fn figures(mut self, policy: &str, decisions_us: &mut [f64]) -> Figures {
        self.threads.sort_unstable();
        decisions_us.sort_unstable_by(f64::total_cmp);
        Figures {
            policy: policy.to_string(),
            mrif_exposure: ratio(self.weighted_mrif, self.weighted_total),
            mrif_vcpu_time: ratio(self.mrif_time, self.placed_time),
            hwaccel_entry_failures: self.failures,
            refusals: self.refusals,
            demotions: self.demotions,
            migrations: self.migrations,
            max_threads_per_hart: self.threads.last().copied().unwrap_or(0),
            p99_threads_per_hart: percentile(&self.threads, 0.99).unwrap_or(0),
            max_imbalance: self.max_imbalance,
            decision_p50_us: percentile(decisions_us, 0.50).unwrap_or(0.0),
            decision_p99_us: percentile(decisions_us, 0.99).unwrap_or(0.0),
        }
    }
}

fn ratio(part: f64, whole: f64) -> f64 {
    if whole > 0.0 { part / whole } else { 0.0 }
}

/// The nearest-rank percentile of sorted values.
fn percentile<T: Copy>(sorted: &[T], p: f64) -> Option<T> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (p * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

#[cfg(test)]
#[path = "figures_tests.rs"]
mod tests;
