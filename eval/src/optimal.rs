//! The `optimal` bound: the best assignment of VS-files to vCPUs achievable at
//! one instant, which no real policy can beat.
//!
//! It sees the per-hart file counts, which harts are online, each VM's allowed
//! harts and class, and each vCPU's interrupt rate, and ignores everything a real
//! policy pays for: KVM's timing (a line is freed only at the vCPU's next entry on
//! another hart) and the cost of moving a vCPU. Among equally good assignments it
//! keeps the one closest to the previous instant, so the demotions it shows are
//! only those really needed. [`Ranking::PriorityFirst`] is the same bound for a
//! policy that must honour priority as an override, as ifad does.
//!
//! # Model
//!
//! A linear program. For each vCPU `v` that is not best-effort and each hart `h`
//! that is online, has `files(h) > 0` and is allowed for `v`'s VM, a variable
//! `x[v,h]` in `[0, 1]` ("`v` holds a VS-file of `h`"). Best-effort vCPUs get no
//! variables: they never hold a file.
//!
//! - per vCPU: `sum_h x[v,h] <= 1`, and `== 1` for a guaranteed vCPU;
//! - per hart: `sum_v x[v,h] <= files(h)`;
//! - maximise `sum_{v,h} (rate(v) + 1 + eps * [h == previous hart of v]) * x[v,h]`.
//!
//! The `+ 1` makes more vCPUs on VS-files better even when rates are equal or
//! zero. The `eps` term is the stability tie-break: `eps` is
//! [`STABILITY_BUDGET`] divided by (the number of non-best-effort vCPUs + 1), so
//! all the bonuses together are worth less than `STABILITY_BUDGET` (`1e-3`, in
//! the objective's unit, interrupts per second + 1 per vCPU). The stability term
//! can therefore only decide between assignments whose real objectives are less
//! than `1e-3` apart: exact ties (the common case: equal rates, or the same
//! vCPUs placed on other harts) keep previous placements, and the real
//! objective returned is never more than `1e-3` below the true optimum.
//!
//! The constraint matrix is the incidence matrix of a bipartite graph (vCPUs x
//! harts), a transportation matrix, so it is totally unimodular and every vertex
//! of the polytope is integral: the simplex optimum is already a 0/1 assignment.
//! [`solve`] checks that (every `x` within `1e-6` of 0 or 1), re-solving with the
//! variables declared integer if it is not, then checks the rounded assignment
//! against every constraint before returning it. If the guaranteed vCPUs cannot
//! all hold a file the answer is [`OptimalError::Infeasible`].
//!
//! [`Solution::objective`] is the real objective, `sum (rate + 1)` over the
//! vCPUs holding a file, without the stability bonus.

use good_lp::{
    Expression, ProblemVariables, ResolutionError, Solution as _, SolverModel, Variable, microlp,
    variable,
};
use ifad::core::Class;

/// One hart at this instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HartState {
    /// VS-files the hart has (guest interrupt files usable by vCPUs).
    pub files: u32,
    /// An offline hart holds nothing.
    pub online: bool,
}

/// One VM at this instant.
#[derive(Debug, Clone, PartialEq)]
pub struct VmDemand {
    pub class: Class,
    /// The operator's priority; only [`Ranking::PriorityFirst`] looks at it.
    pub priority: i32,
    /// Harts the VM may use (indices into the hart slice); `None`: all.
    /// Indices with no hart are ignored.
    pub allowed: Option<Vec<u32>>,
    /// Interrupts per second of each vCPU; its length is the VM's vCPU count.
    /// Each must be finite and `>= 0`.
    pub rates: Vec<f64>,
}

/// Per VM, per vCPU: the hart whose VS-file it holds, or None (MRIF).
pub type Assignment = Vec<Vec<Option<u32>>>;

/// The optimal assignment at one instant.
#[derive(Debug, Clone, PartialEq)]
pub struct Solution {
    /// Same shape as the `vms` given: `assignment[i][j]` is vCPU `j` of VM `i`.
    pub assignment: Assignment,
    /// `sum (rate + 1)` over the vCPUs holding a VS-file (the stability
    /// tie-break is not included).
    pub objective: f64,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum OptimalError {
    /// The guaranteed vCPUs cannot all hold a VS-file.
    #[error("infeasible: the guaranteed vCPUs cannot all hold a VS-file")]
    Infeasible,
    /// The LP solver failed, or its answer did not check out.
    #[error("LP solver: {0}")]
    Solver(String),
    /// A rate is negative or not finite.
    #[error("invalid input: {0}")]
    InvalidInput(String),
}

/// What the bound maximises.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ranking {
    /// `sum (rate + 1)` over the vCPUs holding a file: the best any policy
    /// could do if priority did not exist.
    ByRate,
    /// Priority as an override, as ifad honours it: no vCPU keeps a file a
    /// vCPU of higher priority could have had, and within a priority the
    /// busier first. See [`rank_weights`].
    PriorityFirst,
}

/// What all the stability bonuses together are worth at most, in the
/// objective's unit: the most real objective the tie-break could ever trade.
pub const STABILITY_BUDGET: f64 = 1e-3;

/// The LP's answer is integral if every variable is this close to 0 or 1.
const INTEGRALITY_TOLERANCE: f64 = 1e-6;

/// The stability bonus per vCPU when `vcpus` non-best-effort vCPUs take part.
pub(crate) fn stability_epsilon(vcpus: usize) -> f64 {
    STABILITY_BUDGET / (vcpus as f64 + 1.0)
}

/// The tie-break: `eps` for keeping the file of the hart held before.
fn stability_bonus(vcpu: &Vcpu, hart: u32, eps: f64) -> f64 {
    if vcpu.previous == Some(hart) {
        eps
    } else {
        0.0
    }
}

/// One non-best-effort vCPU of the LP.
struct Vcpu {
    vm: usize,
    index: usize,
    guaranteed: bool,
    weight: f64,
    previous: Option<u32>,
    /// Indices into `Lp::vars`.
    vars: Vec<usize>,
}

struct Lp {
    vcpus: Vec<Vcpu>,
    /// (vCPU index into `vcpus`, hart, objective coefficient)
    vars: Vec<(usize, u32, f64)>,
    /// Per hart: indices into `vars`.
    per_hart: Vec<Vec<usize>>,
}

/// The best assignment of VS-files to vCPUs at this instant by rate, see the
/// module doc.
///
/// `previous[i]` is VM i's assignment at the previous instant (same VM order;
/// `None` for a VM new at this instant). It only breaks ties: a missing entry,
/// a missing vCPU or a hart that is no longer usable is simply no bonus.
pub fn solve(
    harts: &[HartState],
    vms: &[VmDemand],
    previous: &[Option<Vec<Option<u32>>>],
) -> Result<Solution, OptimalError> {
    solve_ranked(harts, vms, previous, Ranking::ByRate)
}

/// As [`solve`], maximising what `ranking` says; [`Solution::objective`] is
/// still `sum (rate + 1)`.
pub fn solve_ranked(
    harts: &[HartState],
    vms: &[VmDemand],
    previous: &[Option<Vec<Option<u32>>>],
    ranking: Ranking,
) -> Result<Solution, OptimalError> {
    let mut lp = build(harts, vms, previous)?;
    if ranking == Ranking::PriorityFirst {
        rank_weights(&mut lp, vms);
    }
    let mut assignment: Assignment = vms.iter().map(|vm| vec![None; vm.rates.len()]).collect();
    if lp.vars.is_empty() {
        // Only possible without guaranteed vCPUs (`build` checked): nothing to place.
        return Ok(Solution {
            assignment,
            objective: 0.0,
        });
    }
    let values = match run(harts, &lp, false)? {
        Some(values) => values,
        // Not integral (cannot happen for a totally unimodular matrix, barring
        // numerical trouble): let branch and bound finish it.
        None => run(harts, &lp, true)?.ok_or_else(|| {
            OptimalError::Solver("integer solve returned a fractional solution".into())
        })?,
    };
    check(harts, &lp, &values)?;
    let mut objective = 0.0;
    for (k, &(v, hart, _)) in lp.vars.iter().enumerate() {
        if values[k] {
            let vcpu = &lp.vcpus[v];
            assignment[vcpu.vm][vcpu.index] = Some(hart);
            objective += vms[vcpu.vm].rates[vcpu.index] + 1.0;
        }
    }
    Ok(Solution {
        assignment,
        objective,
    })
}

/// Admission as the optimal policy decides it: can `candidate` be added to
/// `vms` with every guaranteed vCPU (old and new) holding a file?
///
/// Burstable and best-effort vCPUs never stand in the way (they can be on
/// MRIF), so a burstable or best-effort candidate is refused only if the
/// guaranteed VMs already there do not fit. Invalid rates or a solver failure
/// count as a refusal.
pub fn admits(harts: &[HartState], vms: &[VmDemand], candidate: &VmDemand) -> bool {
    let guaranteed: Vec<VmDemand> = vms
        .iter()
        .chain(std::iter::once(candidate))
        .filter(|vm| vm.class == Class::Guaranteed)
        .cloned()
        .collect();
    solve(harts, &guaranteed, &[]).is_ok()
}

/// Re-weights the LP so that it maximises lexicographically by (priority,
/// rate), guaranteed vCPUs above every priority.
///
/// The sets of vCPUs that can hold files at once are the independent sets of
/// a transversal matroid (vCPUs matched into hart lines), so the best set
/// depends only on the order of the weights, not their size: the greedy in
/// that order is optimal for every weight that keeps the order. Weights are
/// therefore the dense rank of each vCPU's (tier, rate) from 1: small
/// integers, where literal tiers (a factor per priority larger than all rates
/// together) would swamp the rates and the stability bonus in floating point.
/// Equal keys share a weight, so the stability bonus still breaks their ties.
fn rank_weights(lp: &mut Lp, vms: &[VmDemand]) {
    let key = |vcpu: &Vcpu| {
        let vm = &vms[vcpu.vm];
        let tier = if vcpu.guaranteed {
            i64::MAX
        } else {
            i64::from(vm.priority)
        };
        (tier, vm.rates[vcpu.index])
    };
    let mut keys: Vec<(i64, f64)> = lp.vcpus.iter().map(key).collect();
    keys.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.total_cmp(&b.1)));
    keys.dedup();
    let eps = stability_epsilon(lp.vcpus.len());
    for (v, hart, coefficient) in &mut lp.vars {
        let vcpu = &lp.vcpus[*v];
        let own = key(vcpu);
        let rank = keys
            .binary_search_by(|k| k.0.cmp(&own.0).then(k.1.total_cmp(&own.1)))
            .expect("every vCPU's key is ranked");
        *coefficient = rank as f64 + 1.0 + stability_bonus(vcpu, *hart, eps);
    }
}

fn build(
    harts: &[HartState],
    vms: &[VmDemand],
    previous: &[Option<Vec<Option<u32>>>],
) -> Result<Lp, OptimalError> {
    let usable_hart = |h: usize| harts[h].online && harts[h].files > 0;
    let mut vcpus = Vec::new();
    for (i, vm) in vms.iter().enumerate() {
        if let Some((j, rate)) = vm
            .rates
            .iter()
            .enumerate()
            .find(|(_, r)| !r.is_finite() || **r < 0.0)
        {
            return Err(OptimalError::InvalidInput(format!(
                "vm {i} vcpu {j}: rate {rate} (must be finite and >= 0)"
            )));
        }
        if vm.class == Class::BestEffort {
            continue;
        }
        let prev = previous.get(i).and_then(Option::as_ref);
        for (j, &rate) in vm.rates.iter().enumerate() {
            vcpus.push(Vcpu {
                vm: i,
                index: j,
                guaranteed: vm.class == Class::Guaranteed,
                weight: rate + 1.0,
                previous: prev.and_then(|p| p.get(j).copied().flatten()),
                vars: Vec::new(),
            });
        }
    }
    let eps = stability_epsilon(vcpus.len());
    let mut vars = Vec::new();
    let mut per_hart = vec![Vec::new(); harts.len()];
    for (v, vcpu) in vcpus.iter_mut().enumerate() {
        let mut allowed: Vec<usize> = match &vms[vcpu.vm].allowed {
            None => (0..harts.len()).collect(),
            Some(list) => list
                .iter()
                .map(|&h| h as usize)
                .filter(|&h| h < harts.len())
                .collect(),
        };
        allowed.sort_unstable();
        allowed.dedup();
        for h in allowed.into_iter().filter(|&h| usable_hart(h)) {
            let hart = h as u32;
            let coefficient = vcpu.weight + stability_bonus(vcpu, hart, eps);
            vcpu.vars.push(vars.len());
            per_hart[h].push(vars.len());
            vars.push((v, hart, coefficient));
        }
        if vcpu.guaranteed && vcpu.vars.is_empty() {
            return Err(OptimalError::Infeasible);
        }
    }
    Ok(Lp {
        vcpus,
        vars,
        per_hart,
    })
}

/// Solves the LP (or, with `integer`, the ILP); `None` if the answer is not
/// integral, else for each variable whether it is 1.
fn run(harts: &[HartState], lp: &Lp, integer: bool) -> Result<Option<Vec<bool>>, OptimalError> {
    let mut problem = ProblemVariables::new();
    let def = if integer {
        variable().integer().min(0).max(1)
    } else {
        variable().min(0).max(1)
    };
    let x: Vec<Variable> = problem.add_vector(def, lp.vars.len());
    let mut objective = Expression::with_capacity(lp.vars.len());
    for (k, &(_, _, coefficient)) in lp.vars.iter().enumerate() {
        objective.add_mul(coefficient, x[k]);
    }
    let mut model = problem.maximise(objective).using(microlp);
    for vcpu in &lp.vcpus {
        let sum: Expression = vcpu.vars.iter().map(|&k| x[k]).sum();
        model.add_constraint(if vcpu.guaranteed {
            sum.eq(1.0)
        } else {
            sum.leq(1.0)
        });
    }
    for (h, ks) in lp.per_hart.iter().enumerate() {
        // A hart with no more candidates than files constrains nothing.
        if ks.len() > harts[h].files as usize {
            let sum: Expression = ks.iter().map(|&k| x[k]).sum();
            model.add_constraint(sum.leq(f64::from(harts[h].files)));
        }
    }
    let solution = model.solve().map_err(|e| match e {
        ResolutionError::Infeasible => OptimalError::Infeasible,
        other => OptimalError::Solver(other.to_string()),
    })?;
    let mut values = Vec::with_capacity(x.len());
    for &var in &x {
        let value = solution.value(var);
        if (value - 1.0).abs() <= INTEGRALITY_TOLERANCE {
            values.push(true);
        } else if value.abs() <= INTEGRALITY_TOLERANCE {
            values.push(false);
        } else {
            return Ok(None);
        }
    }
    Ok(Some(values))
}

/// Checks the rounded assignment against every constraint.
fn check(harts: &[HartState], lp: &Lp, values: &[bool]) -> Result<(), OptimalError> {
    for vcpu in &lp.vcpus {
        let held = vcpu.vars.iter().filter(|&&k| values[k]).count();
        if held > 1 || (vcpu.guaranteed && held != 1) {
            return Err(OptimalError::Solver(format!(
                "vm {} vcpu {}: holds {held} VS-files",
                vcpu.vm, vcpu.index
            )));
        }
    }
    for (h, ks) in lp.per_hart.iter().enumerate() {
        let used = ks.iter().filter(|&&k| values[k]).count();
        if used > harts[h].files as usize {
            return Err(OptimalError::Solver(format!(
                "hart {h}: {used} VS-files used of {}",
                harts[h].files
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
#[path = "optimal_tests.rs"]
mod tests;
