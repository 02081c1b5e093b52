use std::time::Instant;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::*;

type Previous = Vec<Option<Vec<Option<u32>>>>;

fn hart(files: u32, online: bool) -> HartState {
    HartState { files, online }
}

fn vm(class: Class, allowed: Option<&[u32]>, rates: &[f64]) -> VmDemand {
    VmDemand {
        class,
        priority: 0,
        allowed: allowed.map(<[u32]>::to_vec),
        rates: rates.to_vec(),
    }
}

fn may_use(harts: &[HartState], vm: &VmDemand, h: u32) -> bool {
    let Some(state) = harts.get(h as usize) else {
        return false;
    };
    state.online
        && state.files > 0
        && vm.class != Class::BestEffort
        && vm.allowed.as_ref().is_none_or(|a| a.contains(&h))
}

/// Checks `assignment` against every rule, independently of the solver;
/// returns its real objective.
fn validate(harts: &[HartState], vms: &[VmDemand], assignment: &Assignment) -> f64 {
    assert_eq!(assignment.len(), vms.len(), "one entry per VM");
    let mut used = vec![0u32; harts.len()];
    let mut objective = 0.0;
    for (i, (vm, placed)) in vms.iter().zip(assignment).enumerate() {
        assert_eq!(placed.len(), vm.rates.len(), "vm {i}: one entry per vCPU");
        for (j, (&rate, &hart)) in vm.rates.iter().zip(placed).enumerate() {
            match hart {
                None => assert_ne!(vm.class, Class::Guaranteed, "vm {i} vcpu {j} on MRIF"),
                Some(h) => {
                    assert!(may_use(harts, vm, h), "vm {i} vcpu {j} on hart {h}");
                    used[h as usize] += 1;
                    objective += rate + 1.0;
                }
            }
        }
    }
    for (h, (&n, state)) in used.iter().zip(harts).enumerate() {
        assert!(n <= state.files, "hart {h}: {n} used of {}", state.files);
    }
    objective
}

fn kept(assignment: &Assignment, previous: &[Option<Vec<Option<u32>>>]) -> usize {
    assignment
        .iter()
        .enumerate()
        .map(|(i, placed)| {
            let prev = previous.get(i).and_then(Option::as_ref);
            placed
                .iter()
                .enumerate()
                .filter(|&(j, h)| {
                    h.is_some() && prev.and_then(|p| p.get(j).copied().flatten()) == *h
                })
                .count()
        })
        .sum()
}

fn non_best_effort(vms: &[VmDemand]) -> usize {
    vms.iter()
        .filter(|vm| vm.class != Class::BestEffort)
        .map(|vm| vm.rates.len())
        .sum()
}

/// Every feasible assignment (each vCPU on MRIF or on any hart it may use,
/// capacities and guaranteed classes respected), enumerated.
fn brute_force(harts: &[HartState], vms: &[VmDemand]) -> Vec<Assignment> {
    let slots: Vec<(usize, usize)> = vms
        .iter()
        .enumerate()
        .flat_map(|(i, vm)| (0..vm.rates.len()).map(move |j| (i, j)))
        .collect();
    let mut current: Assignment = vms.iter().map(|vm| vec![None; vm.rates.len()]).collect();
    let mut used = vec![0u32; harts.len()];
    let mut all = Vec::new();
    fn go(
        k: usize,
        slots: &[(usize, usize)],
        harts: &[HartState],
        vms: &[VmDemand],
        current: &mut Assignment,
        used: &mut [u32],
        all: &mut Vec<Assignment>,
    ) {
        let Some(&(i, j)) = slots.get(k) else {
            all.push(current.clone());
            return;
        };
        if vms[i].class != Class::Guaranteed {
            current[i][j] = None;
            go(k + 1, slots, harts, vms, current, used, all);
        }
        for h in 0..harts.len() as u32 {
            if may_use(harts, &vms[i], h) && used[h as usize] < harts[h as usize].files {
                used[h as usize] += 1;
                current[i][j] = Some(h);
                go(k + 1, slots, harts, vms, current, used, all);
                used[h as usize] -= 1;
            }
        }
        current[i][j] = None;
    }
    go(0, &slots, harts, vms, &mut current, &mut used, &mut all);
    all
}

fn real_objective(vms: &[VmDemand], assignment: &Assignment) -> f64 {
    vms.iter()
        .zip(assignment)
        .flat_map(|(vm, placed)| vm.rates.iter().zip(placed))
        .filter(|(_, h)| h.is_some())
        .map(|(rate, _)| rate + 1.0)
        .sum()
}

/// 2–3 harts of 1–2 files (some offline), 2–3 VMs, at most 5 vCPUs in all,
/// random classes, allowed sets (sometimes naming a hart that does not exist)
/// and rates (often small integers, so that ties are common).
fn random_instance(rng: &mut ChaCha8Rng) -> (Vec<HartState>, Vec<VmDemand>) {
    let n_harts = rng.random_range(2..=3u32);
    let harts = (0..n_harts)
        .map(|_| hart(rng.random_range(1..=2), rng.random_bool(0.85)))
        .collect();
    let n_vms = rng.random_range(2..=3usize);
    let mut budget = 5usize;
    let mut vms = Vec::new();
    for i in 0..n_vms {
        let most = budget - (n_vms - i - 1);
        let n = rng.random_range(1..=most.min(3));
        budget -= n;
        let class = match rng.random_range(0..3) {
            0 => Class::Guaranteed,
            1 => Class::Burstable,
            _ => Class::BestEffort,
        };
        let allowed = rng
            .random_bool(0.5)
            .then(|| (0..=n_harts).filter(|_| rng.random_bool(0.5)).collect());
        let rates = (0..n)
            .map(|_| {
                if rng.random_bool(0.5) {
                    f64::from(rng.random_range(0..3u32))
                } else {
                    rng.random_range(0.0..50.0)
                }
            })
            .collect();
        vms.push(VmDemand {
            class,
            priority: rng.random_range(0..=2),
            allowed,
            rates,
        });
    }
    (harts, vms)
}

fn random_previous(rng: &mut ChaCha8Rng, harts: &[HartState], vms: &[VmDemand]) -> Previous {
    vms.iter()
        .map(|vm| {
            rng.random_bool(0.8).then(|| {
                vm.rates
                    .iter()
                    .map(|_| {
                        rng.random_bool(0.7)
                            .then(|| rng.random_range(0..harts.len() as u32))
                    })
                    .collect()
            })
        })
        .collect()
}

#[test]
fn matches_brute_force_on_random_instances() {
    let mut rng = ChaCha8Rng::seed_from_u64(0x1fad);
    let (mut feasible, mut infeasible) = (0, 0);
    for case in 0..600 {
        let (harts, vms) = random_instance(&mut rng);
        let all = brute_force(&harts, &vms);
        let best = all
            .iter()
            .map(|a| real_objective(&vms, a))
            .fold(None, |m: Option<f64>, o| Some(m.map_or(o, |m| m.max(o))));
        match (solve(&harts, &vms, &[]), best) {
            (Ok(solution), Some(best)) => {
                feasible += 1;
                let objective = validate(&harts, &vms, &solution.assignment);
                assert!(
                    (objective - solution.objective).abs() < 1e-9,
                    "case {case}: reported objective {} is not the assignment's {objective}",
                    solution.objective
                );
                assert!(
                    (solution.objective - best).abs() < 1e-6,
                    "case {case}: {harts:?} {vms:?}: solve {} brute force {best}",
                    solution.objective
                );
            }
            (Err(OptimalError::Infeasible), None) => infeasible += 1,
            (got, best) => {
                panic!("case {case}: {harts:?} {vms:?}: solve {got:?}, brute force {best:?}")
            }
        }
    }
    // The generator exercises both verdicts.
    assert!(
        feasible > 100 && infeasible > 50,
        "{feasible} feasible, {infeasible} infeasible"
    );
}

/// The (tier, rate) of each vCPU holding a file, best first; guaranteed
/// vCPUs rank above every priority.
fn held_keys(vms: &[VmDemand], assignment: &Assignment) -> Vec<(i64, f64)> {
    let mut keys: Vec<(i64, f64)> = vms
        .iter()
        .zip(assignment)
        .flat_map(|(vm, placed)| {
            let tier = match vm.class {
                Class::Guaranteed => i64::MAX,
                _ => i64::from(vm.priority),
            };
            vm.rates
                .iter()
                .zip(placed)
                .filter(|(_, h)| h.is_some())
                .map(move |(&rate, _)| (tier, rate))
        })
        .collect();
    keys.sort_by(|a, b| b.0.cmp(&a.0).then(b.1.total_cmp(&a.1)));
    keys
}

/// `a` is at least as good as `b` in every position: its k-th best holder
/// ranks no lower than `b`'s, for every k.
fn dominates(a: &[(i64, f64)], b: &[(i64, f64)]) -> bool {
    b.iter().enumerate().all(|(k, theirs)| {
        a.get(k)
            .is_some_and(|ours| ours.0 > theirs.0 || (ours.0 == theirs.0 && ours.1 >= theirs.1))
    })
}

#[test]
fn priority_first_dominates_every_feasible_assignment() {
    let mut rng = ChaCha8Rng::seed_from_u64(0x9e1);
    let (mut checked, mut differs_from_by_rate) = (0, 0);
    for case in 0..600 {
        let (harts, vms) = random_instance(&mut rng);
        let previous = random_previous(&mut rng, &harts, &vms);
        let Ok(solution) = solve_ranked(&harts, &vms, &previous, Ranking::PriorityFirst) else {
            assert!(
                brute_force(&harts, &vms).is_empty(),
                "case {case}: feasible"
            );
            continue;
        };
        checked += 1;
        let objective = validate(&harts, &vms, &solution.assignment);
        assert!((objective - solution.objective).abs() < 1e-9, "case {case}");
        let ours = held_keys(&vms, &solution.assignment);
        let ours_kept = kept(&solution.assignment, &previous);
        for other in brute_force(&harts, &vms) {
            let theirs = held_keys(&vms, &other);
            assert!(
                dominates(&ours, &theirs),
                "case {case}: {harts:?} {vms:?}: {ours:?} does not dominate {theirs:?}"
            );
            // Among equally good sets, the one keeping the most previous files.
            if theirs == ours {
                assert!(
                    kept(&other, &previous) <= ours_kept,
                    "case {case}: {other:?}"
                );
            }
        }
        let by_rate = solve(&harts, &vms, &[]).unwrap();
        if !dominates(&held_keys(&vms, &by_rate.assignment), &ours) {
            differs_from_by_rate += 1;
        }
    }
    // The generator makes priority matter often enough to tell the rankings apart.
    assert!(
        checked > 100 && differs_from_by_rate > 5,
        "{checked} checked, {differs_from_by_rate} where priority changed the answer"
    );
}

#[test]
fn stability_tie_break_matches_brute_force() {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    for case in 0..600 {
        let (harts, vms) = random_instance(&mut rng);
        let previous = random_previous(&mut rng, &harts, &vms);
        let eps = stability_epsilon(non_best_effort(&vms));
        let all = brute_force(&harts, &vms);
        let Some(best_real) = all.iter().map(|a| real_objective(&vms, a)).reduce(f64::max) else {
            assert_eq!(
                solve(&harts, &vms, &previous),
                Err(OptimalError::Infeasible)
            );
            continue;
        };
        let best_combined = all
            .iter()
            .map(|a| real_objective(&vms, a) + eps * kept(a, &previous) as f64)
            .reduce(f64::max)
            .unwrap();
        let solution = solve(&harts, &vms, &previous).unwrap();
        let objective = validate(&harts, &vms, &solution.assignment);
        let combined = objective + eps * kept(&solution.assignment, &previous) as f64;
        assert!(
            (combined - best_combined).abs() < 1e-9,
            "case {case}: {harts:?} {vms:?} {previous:?}: combined {combined} vs {best_combined}: {:?}",
            solution.assignment
        );
        assert!(best_real - objective < STABILITY_BUDGET, "case {case}");
    }
}

#[test]
fn keeps_any_optimal_previous_assignment_unchanged() {
    let mut rng = ChaCha8Rng::seed_from_u64(42);
    let mut nontrivial = 0;
    for case in 0..600 {
        let (harts, vms) = random_instance(&mut rng);
        let all = brute_force(&harts, &vms);
        let Some(best) = all.iter().map(|a| real_objective(&vms, a)).reduce(f64::max) else {
            continue;
        };
        let optimal: Vec<&Assignment> = all
            .iter()
            .filter(|a| real_objective(&vms, a) > best - 1e-9)
            .collect();
        if optimal.len() > 1 {
            nontrivial += 1;
        }
        let chosen = optimal[rng.random_range(0..optimal.len())];
        let previous: Previous = chosen.iter().cloned().map(Some).collect();
        let solution = solve(&harts, &vms, &previous).unwrap();
        assert_eq!(
            &solution.assignment,
            chosen,
            "case {case}: {harts:?} {vms:?}: {} optimal assignments",
            optimal.len()
        );
    }
    assert!(
        nontrivial > 100,
        "only {nontrivial} cases with several optima"
    );
}

#[test]
fn keeps_a_hand_made_optimal_assignment() {
    // 2 harts x 2 files, 4 burstable vCPUs of equal rate: every full
    // assignment is optimal; the solver keeps the one it is given.
    let harts = [hart(2, true), hart(2, true)];
    let vms = [
        vm(Class::Burstable, None, &[1.0, 1.0]),
        vm(Class::Burstable, None, &[1.0, 1.0]),
    ];
    for prev in [
        vec![vec![Some(1), Some(1)], vec![Some(0), Some(0)]],
        vec![vec![Some(0), Some(1)], vec![Some(1), Some(0)]],
        vec![vec![Some(1), Some(0)], vec![Some(0), Some(1)]],
    ] {
        let previous: Previous = prev.iter().cloned().map(Some).collect();
        let solution = solve(&harts, &vms, &previous).unwrap();
        assert_eq!(solution.assignment, prev);
        assert_eq!(solution.objective, 8.0);
    }
    // And a solution fed back is a fixed point.
    let first = solve(&harts, &vms, &[]).unwrap();
    let previous: Previous = first.assignment.iter().cloned().map(Some).collect();
    assert_eq!(solve(&harts, &vms, &previous).unwrap(), first);
}

#[test]
fn respects_capacity_allowed_harts_and_offline_harts() {
    let harts = [hart(2, true), hart(3, false), hart(0, true), hart(3, true)];
    let vms = [
        // May use harts 0 (2 files), 1 (offline), 2 (no files), 7 (none).
        vm(
            Class::Burstable,
            Some(&[0, 1, 2, 7]),
            &[50.0, 40.0, 30.0, 20.0],
        ),
        vm(Class::Burstable, None, &[1.0, 2.0, 3.0, 4.0, 5.0]),
    ];
    let solution = solve(&harts, &vms, &[]).unwrap();
    let objective = validate(&harts, &vms, &solution.assignment);
    assert_eq!(objective, solution.objective);
    // Hart 0 goes to the two loudest vCPUs of vm 0, hart 3 to the three
    // loudest of vm 1 (which may not have hart 0 back: vm 0 outbids it).
    assert_eq!(
        solution.assignment,
        vec![
            vec![Some(0), Some(0), None, None],
            vec![None, None, Some(3), Some(3), Some(3)],
        ]
    );
    assert_eq!(solution.objective, 51.0 + 41.0 + 4.0 + 5.0 + 6.0);
    // With every hart offline nothing holds a file.
    let dark = [hart(2, false), hart(3, false)];
    let solution = solve(&dark, &vms, &[]).unwrap();
    assert!(solution.assignment.iter().flatten().all(Option::is_none));
    assert_eq!(solution.objective, 0.0);
}

#[test]
fn best_effort_never_holds_a_file() {
    let harts = [hart(5, true), hart(5, true)];
    let vms = [
        vm(Class::BestEffort, None, &[1e6, 1e6, 1e6]),
        vm(Class::Burstable, None, &[0.0]),
    ];
    let solution = solve(&harts, &vms, &[]).unwrap();
    assert_eq!(solution.assignment[0], vec![None, None, None]);
    assert!(solution.assignment[1][0].is_some());
    assert_eq!(solution.objective, 1.0);
}

#[test]
fn guaranteed_all_hold_a_file_or_infeasible() {
    let harts = [hart(2, true), hart(1, true), hart(4, false)];
    // Exactly enough: the quiet guaranteed vCPUs crowd out the loud burstable one.
    let vms = [
        vm(Class::Guaranteed, None, &[0.0, 0.0, 0.0]),
        vm(Class::Burstable, None, &[100.0]),
    ];
    let solution = solve(&harts, &vms, &[]).unwrap();
    validate(&harts, &vms, &solution.assignment);
    assert!(solution.assignment[0].iter().all(Option::is_some));
    assert_eq!(solution.assignment[1], vec![None]);
    // One more guaranteed vCPU than online files.
    let vms = [vm(Class::Guaranteed, None, &[0.0; 4])];
    assert_eq!(solve(&harts, &vms, &[]), Err(OptimalError::Infeasible));
    // Enough files in all, but not on the allowed harts.
    let vms = [vm(Class::Guaranteed, Some(&[0]), &[0.0; 3])];
    assert_eq!(solve(&harts, &vms, &[]), Err(OptimalError::Infeasible));
    // Only an offline hart allowed.
    let vms = [vm(Class::Guaranteed, Some(&[2]), &[0.0])];
    assert_eq!(solve(&harts, &vms, &[]), Err(OptimalError::Infeasible));
    // Two guaranteed VMs competing for hart 0: feasible only one way.
    let vms = [
        vm(Class::Guaranteed, None, &[0.0, 0.0]),
        vm(Class::Guaranteed, Some(&[0]), &[0.0]),
    ];
    let solution = solve(&harts, &vms, &[]).unwrap();
    validate(&harts, &vms, &solution.assignment);
}

#[test]
fn guaranteed_arrival_demotes_exactly_the_quietest() {
    // 4 harts x 2 files; 7 burstable vCPUs hold files, 1 is free.
    let harts = [hart(2, true); 4];
    let burstable = [
        vm(Class::Burstable, None, &[10.0, 3.0, 7.0, 1.0]),
        vm(Class::Burstable, None, &[5.0, 0.5, 8.0]),
    ];
    let before = solve(&harts, &burstable, &[]).unwrap();
    assert!(before.assignment.iter().flatten().all(Option::is_some));
    // (vm, vcpu) from quietest to loudest.
    let quietest = [(1, 1), (0, 3), (0, 1), (1, 0), (0, 2), (1, 2), (0, 0)];
    for k in 1..=4usize {
        // k + 1 guaranteed vCPUs, quieter than all of them: k files must be taken.
        let mut vms = burstable.to_vec();
        vms.push(vm(Class::Guaranteed, None, &vec![0.0; k + 1]));
        let mut previous: Previous = before.assignment.iter().cloned().map(Some).collect();
        previous.push(None);
        let after = solve(&harts, &vms, &previous).unwrap();
        validate(&harts, &vms, &after.assignment);
        assert!(after.assignment[2].iter().all(Option::is_some));
        let mut changed: Vec<(usize, usize)> = Vec::new();
        for (i, held) in before.assignment.iter().enumerate() {
            for (j, &hart) in held.iter().enumerate() {
                if after.assignment[i][j] != hart {
                    assert_eq!(after.assignment[i][j], None, "vm {i} vcpu {j} moved");
                    changed.push((i, j));
                }
            }
        }
        changed.sort();
        let mut expected = quietest[..k].to_vec();
        expected.sort();
        assert_eq!(changed, expected, "k = {k}");
    }
}

#[test]
fn admits_at_the_boundary() {
    // 4 online files (hart 2 is offline).
    let harts = [hart(2, true), hart(2, true), hart(3, false)];
    let vms = [
        vm(Class::Guaranteed, None, &[0.0, 0.0]),
        vm(Class::Guaranteed, Some(&[0]), &[0.0]),
        vm(Class::Burstable, None, &[9.0; 4]),
        vm(Class::BestEffort, None, &[9.0; 4]),
    ];
    assert!(admits(&harts, &vms, &vm(Class::Guaranteed, None, &[0.0])));
    assert!(!admits(
        &harts,
        &vms,
        &vm(Class::Guaranteed, None, &[0.0; 2])
    ));
    // Hart 0 has one file left for a VM confined to it.
    assert!(admits(
        &harts,
        &vms,
        &vm(Class::Guaranteed, Some(&[0]), &[0.0])
    ));
    assert!(!admits(
        &harts,
        &vms,
        &vm(Class::Guaranteed, Some(&[0]), &[0.0; 2])
    ));
    // The offline hart does not count.
    assert!(!admits(
        &harts,
        &vms,
        &vm(Class::Guaranteed, Some(&[2]), &[0.0])
    ));
    // Burstable and best-effort VMs are always admitted, whatever their size...
    assert!(admits(
        &harts,
        &vms,
        &vm(Class::Burstable, None, &[1.0; 100])
    ));
    assert!(admits(
        &harts,
        &vms,
        &vm(Class::BestEffort, None, &[1.0; 100])
    ));
    // ...unless the guaranteed VMs already there do not fit.
    let over = [vm(Class::Guaranteed, None, &[0.0; 5])];
    assert!(!admits(&harts, &over, &vm(Class::BestEffort, None, &[1.0])));
    // Admitted means solve succeeds with the candidate added.
    let mut with = vms.to_vec();
    with.push(vm(Class::Guaranteed, None, &[0.0]));
    validate(
        &harts,
        &with,
        &solve(&harts, &with, &[]).unwrap().assignment,
    );
}

#[test]
fn rejects_invalid_rates_and_handles_empty_input() {
    let harts = [hart(1, true)];
    for rate in [f64::NAN, f64::INFINITY, -1.0] {
        let vms = [vm(Class::Burstable, None, &[rate])];
        assert!(matches!(
            solve(&harts, &vms, &[]),
            Err(OptimalError::InvalidInput(_))
        ));
    }
    assert_eq!(
        solve(&[], &[], &[]).unwrap(),
        Solution {
            assignment: vec![],
            objective: 0.0
        }
    );
    let vms = [vm(Class::Burstable, None, &[1.0])];
    assert_eq!(solve(&[], &vms, &[]).unwrap().assignment, vec![vec![None]]);
    assert_eq!(
        solve(&[], &[vm(Class::Guaranteed, None, &[1.0])], &[]),
        Err(OptimalError::Infeasible)
    );
}

#[test]
fn large_instance_solves() {
    // 32 harts x 5 files (two offline), 300 vCPUs in 30 VMs of 10: 100
    // guaranteed, 150 burstable, 50 best-effort; a third confined to a
    // NUMA half.
    let mut rng = ChaCha8Rng::seed_from_u64(300);
    let harts: Vec<HartState> = (0..32).map(|h| hart(5, h != 5 && h != 20)).collect();
    let low: Vec<u32> = (0..16).collect();
    let high: Vec<u32> = (16..32).collect();
    let vms: Vec<VmDemand> = (0..30)
        .map(|i| VmDemand {
            priority: 0,
            class: match i % 6 {
                0 | 1 => Class::Guaranteed,
                2..=4 => Class::Burstable,
                _ => Class::BestEffort,
            },
            allowed: match i % 3 {
                0 => Some(if i % 2 == 0 {
                    low.clone()
                } else {
                    high.clone()
                }),
                _ => None,
            },
            rates: (0..10).map(|_| rng.random_range(0.0..10_000.0)).collect(),
        })
        .collect();
    let start = Instant::now();
    let solution = solve(&harts, &vms, &[]).unwrap();
    let cold = start.elapsed();
    let objective = validate(&harts, &vms, &solution.assignment);
    assert!((objective - solution.objective).abs() < 1e-6);
    let held = solution.assignment.iter().flatten().flatten().count();
    assert_eq!(held, 150, "every online file is used");
    let previous: Previous = solution.assignment.iter().cloned().map(Some).collect();
    let start = Instant::now();
    let again = solve(&harts, &vms, &previous).unwrap();
    let warm = start.elapsed();
    assert_eq!(again.assignment, solution.assignment);
    println!(
        "large instance (32 harts x 5 files, 300 vCPUs): solve {cold:?}, with previous {warm:?}, objective {:.1}",
        solution.objective
    );
}

#[test]
fn integer_fallback_agrees_with_the_lp() {
    // The fallback (variables declared integer) is never needed on these
    // instances; check it gives the same optimum where it would be used.
    let mut rng = ChaCha8Rng::seed_from_u64(99);
    let mut compared = 0;
    for case in 0..300 {
        let (harts, vms) = random_instance(&mut rng);
        let previous = random_previous(&mut rng, &harts, &vms);
        let Ok(lp) = build(&harts, &vms, &previous) else {
            continue;
        };
        if lp.vars.is_empty() {
            continue;
        }
        let value = |values: &[bool]| -> f64 {
            lp.vars
                .iter()
                .zip(values)
                .filter(|(_, x)| **x)
                .map(|(&(_, _, c), _)| c)
                .sum()
        };
        match (run(&harts, &lp, false), run(&harts, &lp, true)) {
            (Ok(Some(relaxed)), Ok(Some(integer))) => {
                check(&harts, &lp, &integer).unwrap();
                assert!(
                    (value(&relaxed) - value(&integer)).abs() < 1e-9,
                    "case {case}"
                );
                compared += 1;
            }
            (Err(OptimalError::Infeasible), Err(OptimalError::Infeasible)) => {}
            (a, b) => panic!("case {case}: LP {a:?}, ILP {b:?}"),
        }
    }
    assert!(compared > 100, "{compared}");
}
