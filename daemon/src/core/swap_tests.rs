use std::collections::HashMap;

use proptest::prelude::*;

use crate::core::policy::{Placement, apply_placement, plan_place};
use crate::core::request::PlaceSpec;
use crate::core::{Backing, Class, HartId, Ledger, Topology, VcpuKey};

fn spec(vm: &str, vcpus: u32, class: Class) -> PlaceSpec {
    PlaceSpec::parse(vm, vcpus, Some(class), &[]).unwrap()
}

/// Every vCPU has entered: each holds a line exactly where the ledger says.
fn run_all(l: &mut Ledger) {
    let all: Vec<(VcpuKey, Option<HartId>)> = l
        .vms()
        .flat_map(|vm| {
            vm.vcpus.iter().enumerate().map(|(i, v)| {
                let key = VcpuKey {
                    vm: vm.id.clone(),
                    vcpu: i as u32,
                };
                (key, (v.backing == Backing::VsFile).then_some(v.hart))
            })
        })
        .collect();
    for (key, held) in all {
        l.observed(&key, held, held.map(|_| 1)).unwrap();
    }
}

fn place(t: &Topology, l: &mut Ledger, s: &PlaceSpec) -> Placement {
    let p = plan_place(t, l, s).unwrap();
    apply_placement(l, s, &p, 0).unwrap();
    run_all(l);
    l.verify(t).unwrap();
    p
}

fn mrif(p: &Placement) -> usize {
    p.demotions
        .iter()
        .filter(|m| m.backing == Backing::Mrif)
        .count()
}

/// Where each burstable vCPU is and whether it holds a line.
type State = HashMap<VcpuKey, (HartId, Backing)>;

fn burstable_state(l: &Ledger) -> State {
    l.vms()
        .filter(|vm| vm.class == Class::Burstable)
        .flat_map(|vm| {
            vm.vcpus.iter().enumerate().map(|(i, v)| {
                let key = VcpuKey {
                    vm: vm.id.clone(),
                    vcpu: i as u32,
                };
                (key, (v.hart, v.backing))
            })
        })
        .collect()
}

/// The end state is one KVM's first come, first served cannot spoil: no
/// hart over its lines, and every burstable vCPU on MRIF sits where
/// burstable VS-files alone take every line (none is the guaranteed VM's).
fn kvm_safe(t: &Topology, end: &State, guaranteed: &[u32]) -> bool {
    let cap = |h: usize| u32::from(t.harts()[h].vsfiles);
    let mut vs = vec![0u32; t.len()];
    let mut waiting = vec![false; t.len()];
    for &(h, b) in end.values() {
        match b {
            Backing::VsFile => vs[h as usize] += 1,
            Backing::Mrif => waiting[h as usize] = true,
        }
    }
    (0..t.len()).all(|h| {
        vs[h] + guaranteed[h] <= cap(h) && (!waiting[h] || (vs[h] == cap(h) && guaranteed[h] == 0))
    })
}

/// The fewest burstable vCPUs that must end on MRIF having held a line, over
/// every end state in which a guaranteed VM of `n` vCPUs gets its lines and
/// KVM cannot spoil it. A vCPU gives up its line only by changing hart.
fn brute_force_min(t: &Topology, start: &State, n: u32) -> Option<usize> {
    let keys: Vec<&VcpuKey> = start.keys().collect();
    let choices = t.len() * 2;
    let mut best = None;
    let mut end = start.clone();
    for code in 0..choices.pow(keys.len() as u32) {
        let mut c = code;
        let mut ok = true;
        for k in &keys {
            let (hart, backing) = ((c % t.len()) as HartId, c / t.len() % 2);
            c /= choices;
            let backing = [Backing::VsFile, Backing::Mrif][backing];
            let (from, was) = start[*k];
            if was == Backing::VsFile && backing == Backing::Mrif && hart == from {
                ok = false;
                break;
            }
            end.insert((*k).clone(), (hart, backing));
        }
        if !ok {
            continue;
        }
        let Some(guaranteed) = guaranteed_lines(t, &end, n) else {
            continue;
        };
        if !kvm_safe(t, &end, &guaranteed) {
            continue;
        }
        let demoted = keys
            .iter()
            .filter(|k| start[**k].1 == Backing::VsFile && end[**k].1 == Backing::Mrif)
            .count();
        best = Some(best.map_or(demoted, |b: usize| b.min(demoted)));
    }
    best
}

/// The guaranteed VM's lines per hart, on harts with no burstable waiter,
/// or `None` if they do not fit.
fn guaranteed_lines(t: &Topology, end: &State, n: u32) -> Option<Vec<u32>> {
    let mut room: Vec<u32> = t.harts().iter().map(|h| u32::from(h.vsfiles)).collect();
    for &(h, b) in end.values() {
        if b == Backing::VsFile {
            room[h as usize] = room[h as usize].checked_sub(1)?;
        }
    }
    for &(h, b) in end.values() {
        if b == Backing::Mrif {
            room[h as usize] = 0;
        }
    }
    let mut left = n;
    let lines = room
        .iter()
        .map(|&r| {
            let take = r.min(left);
            left -= take;
            take
        })
        .collect();
    (left == 0).then_some(lines)
}

/// The end state a placement plans for the burstable vCPUs, and the
/// guaranteed VM's lines per hart.
fn planned(t: &Topology, l: &Ledger, p: &Placement) -> (State, Vec<u32>) {
    let mut end = burstable_state(l);
    for m in p.demotions.iter().chain(&p.rehomes) {
        end.insert(m.key.clone(), (m.to, m.backing));
    }
    let mut lines = vec![0u32; t.len()];
    for &(h, _) in &p.vcpus {
        lines[h as usize] += 1;
    }
    (end, lines)
}

#[test]
fn the_issue_example_demotes_four_and_keeps_threads_spread() {
    // 8 harts x 5 files; web holds 24, db needs 20 with 16 free.
    let t = Topology::uniform(8, 5, 1);
    let mut l = Ledger::new(&t);
    place(&t, &mut l, &spec("web", 24, Class::Burstable));
    let db = spec("db", 20, Class::Guaranteed);
    let p = plan_place(&t, &l, &db).unwrap();
    assert_eq!(p.demotions.len(), 4, "{p:#?}");
    assert_eq!(mrif(&p), 4);
    assert!(
        p.rehomes.iter().all(|m| m.backing == Backing::VsFile),
        "the vCPUs that fill a landing hart keep a VS-file: {p:#?}"
    );
    let (end, lines) = planned(&t, &l, &p);
    assert!(kvm_safe(&t, &end, &lines), "{p:#?}");
    apply_placement(&mut l, &db, &p, 0).unwrap();
    run_all(&mut l);
    l.verify(&t).unwrap();
    let most = (0..8).map(|h| l.load(h).vcpus).max().unwrap();
    // 44 threads on 8 harts: 6 balanced, one above it at most.
    assert!(most <= 7, "a hart runs {most} vCPU threads");
    assert_eq!((0..8).map(|h| l.load(h).held).sum::<u32>(), 40);
}

#[test]
fn with_a_full_hart_nothing_moves_but_the_demoted() {
    // Hart 0 is full of a's files; b leaves 1 free on hart 1.
    let t = Topology::uniform(2, 2, 1);
    let mut l = Ledger::new(&t);
    place(&t, &mut l, &spec("a", 3, Class::Burstable));
    let p = plan_place(&t, &l, &spec("g", 2, Class::Guaranteed)).unwrap();
    assert_eq!(mrif(&p), 1, "{p:#?}");
    assert!(p.rehomes.is_empty(), "{p:#?}");
}

#[test]
fn landing_harts_never_take_lines_promised_to_a_pending_vm() {
    // g1 is pending on lines a still holds; a landing hart must not be one
    // of g1's, or a demoted vCPU would race g1 for them.
    let t = Topology::uniform(4, 2, 1);
    let mut l = Ledger::new(&t);
    place(&t, &mut l, &spec("a", 4, Class::Burstable));
    let g1 = spec("g1", 5, Class::Guaranteed);
    let p1 = plan_place(&t, &l, &g1).unwrap();
    assert!(p1.pending());
    apply_placement(&mut l, &g1, &p1, 0).unwrap();
    let promised = l.promised_to_pending();
    if let Ok(p2) = plan_place(&t, &l, &spec("g2", 1, Class::Guaranteed)) {
        for m in p2.demotions.iter().chain(&p2.rehomes) {
            assert!(!promised[m.to as usize], "{m:?} lands beside g1's lines");
        }
    }
}

/// A small host with burstable VMs settled on it.
fn host_with_burstable() -> impl Strategy<Value = (u32, u8, Vec<u32>, u32)> {
    (2..=3u32, 1..=2u8).prop_flat_map(|(harts, files)| {
        let lines = harts * u32::from(files);
        (
            Just(harts),
            Just(files),
            proptest::collection::vec(1..=3u32, 1..=3),
            1..=lines,
        )
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn swaps_demote_the_brute_force_minimum((harts, files, vms, n) in host_with_burstable()) {
        let t = Topology::uniform(harts, files, 1);
        let mut l = Ledger::new(&t);
        let mut total = 0;
        for (i, &vcpus) in vms.iter().enumerate() {
            total += vcpus;
            prop_assume!(total <= 5);
            place(&t, &mut l, &spec(&format!("b{i}"), vcpus, Class::Burstable));
        }
        let start = burstable_state(&l);
        let best = brute_force_min(&t, &start, n);
        match plan_place(&t, &l, &spec("g", n, Class::Guaranteed)) {
            Ok(p) => {
                let (end, lines) = planned(&t, &l, &p);
                prop_assert!(kvm_safe(&t, &end, &lines), "unsafe plan {:#?}", p);
                prop_assert_eq!(lines.iter().sum::<u32>(), n);
                prop_assert_eq!(Some(mrif(&p)), best, "{:#?}", p);
            }
            Err(e) => prop_assert_eq!(best, None, "refused: {}", e),
        }
    }
}
