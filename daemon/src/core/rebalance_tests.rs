use super::*;
use crate::core::policy::{apply_moves, apply_placement, plan_place, plan_promotions};
use crate::core::request::PlaceSpec;
use crate::core::test_support::{measured, run_all, spec};
use crate::core::{Class, VmId};

fn key(vm: &str) -> VcpuKey {
    VcpuKey {
        vm: VmId::parse(vm).unwrap(),
        vcpu: 0,
    }
}

fn place(t: &Topology, l: &mut Ledger, s: &PlaceSpec) {
    let p = plan_place(t, l, s).unwrap();
    apply_placement(l, s, &p, 0).unwrap();
    run_all(l);
}

/// Two harts of one file: `v` holds hart 0's, `u` hart 1's, and `w`
/// waits on MRIF; each takes the rate given. `v` is placed as `v_spec`.
fn host(v_spec: PlaceSpec, v: u64, u: u64, w: u64) -> (Topology, Ledger) {
    let t = Topology::uniform(2, 1, 1);
    let mut l = Ledger::new(&t);
    place(&t, &mut l, &v_spec);
    place(&t, &mut l, &spec("u", 1, Class::Burstable));
    place(&t, &mut l, &spec("w", 1, Class::Burstable));
    assert_eq!(l.vcpu(&key("v")).unwrap().held_on, Some(0));
    assert_eq!(l.vcpu(&key("u")).unwrap().held_on, Some(1));
    assert_eq!(l.vcpu(&key("w")).unwrap().backing, Backing::Mrif);
    for (vm, rate) in [("v", v), ("u", u), ("w", w)] {
        measured(&mut l, vm, rate);
    }
    l.verify(&t).unwrap();
    (t, l)
}

fn plain(v: u64, u: u64, w: u64) -> (Topology, Ledger) {
    host(spec("v", 1, Class::Burstable), v, u, w)
}

#[test]
fn the_quietest_holder_gives_its_file_to_the_busy_waiter() {
    let (t, mut l) = plain(100, 30_000, 20_000);
    let r = plan_rebalance(&t, &l, 2000, 0).expect("worth a move");
    assert_eq!(
        r.demote,
        Move {
            key: key("v"),
            from: 0,
            to: 1,
            backing: Backing::Mrif
        }
    );
    assert_eq!(r.favoured, key("w"));
    assert_eq!((r.favoured_rate, r.demoted_rate), (20_000.0, 100.0));
    // Applied, and once v entered on hart 1, promotion gives w the line.
    apply_moves(&mut l, [&r.demote], 2000).unwrap();
    assert!(
        plan_rebalance(&t, &l, 2000, 0).is_none(),
        "one in flight at a time"
    );
    l.observed(&key("v"), None, None).unwrap();
    let promoted = plan_promotions(&t, &l, 2000, 0);
    assert_eq!(promoted.len(), 1, "{promoted:?}");
    assert_eq!((promoted[0].key.clone(), promoted[0].to), (key("w"), 0));
}

#[test]
fn a_move_must_be_worth_four_times_and_a_thousand_a_second() {
    let (t, l) = plain(1000, 30_000, 3_999);
    assert!(plan_rebalance(&t, &l, 2000, 0).is_none(), "under 4x");
    let (t, l) = plain(1000, 30_000, 4_000);
    assert!(
        plan_rebalance(&t, &l, 2000, 0).is_some(),
        "4x and 3,000/s more"
    );
    let (t, l) = plain(0, 30_000, 999);
    assert!(plan_rebalance(&t, &l, 2000, 0).is_none(), "999/s more");
    let (t, l) = plain(0, 30_000, 1000);
    assert!(plan_rebalance(&t, &l, 2000, 0).is_some(), "1,000/s more");
    let (t, l) = plain(300, 30_000, 1200);
    assert!(
        plan_rebalance(&t, &l, 2000, 0).is_none(),
        "4x but 900/s more"
    );
}

#[test]
fn a_holder_of_higher_priority_keeps_its_file() {
    let (t, l) = host(
        spec("v", 1, Class::Burstable).with_priority(1),
        100,
        30_000,
        20_000,
    );
    assert!(plan_rebalance(&t, &l, 2000, 0).is_none());
}

#[test]
fn nobody_moved_within_the_interval_moves_again() {
    const MIN: Millis = 60_000;
    let (t, mut l) = plain(100, 30_000, 20_000);
    // w was moved at 5 s (to hart 1, where it waits beside u's line).
    l.move_vcpu(&key("w"), 1, Backing::Mrif, 5000, true)
        .unwrap();
    assert!(plan_rebalance(&t, &l, 5000 + MIN - 1, MIN).is_none());
    assert!(plan_rebalance(&t, &l, 5000 + MIN, MIN).is_some());
    // v was moved at 5 s (there and back, keeping its line): it keeps
    // its file for the interval.
    let (t, mut l) = plain(100, 30_000, 20_000);
    l.move_vcpu(&key("v"), 1, Backing::VsFile, 4000, true)
        .unwrap();
    l.move_vcpu(&key("v"), 0, Backing::VsFile, 5000, true)
        .unwrap();
    l.verify(&t).unwrap();
    assert!(plan_rebalance(&t, &l, 5000 + MIN - 1, MIN).is_none());
    assert!(plan_rebalance(&t, &l, 5000 + MIN, MIN).is_some());
}

/// `plain`, with w moved to wait on hart 1 beside u's line, and q, quiet,
/// waiting on hart 0 (v's), where it may use `q_harts`.
fn with_q_beside_v(q_harts: &[HartId]) -> (Topology, Ledger) {
    let (t, mut l) = plain(100, 30_000, 20_000);
    l.move_vcpu(&key("w"), 1, Backing::Mrif, 0, true).unwrap();
    place(
        &t,
        &mut l,
        &spec("q", 1, Class::Burstable).with_harts(q_harts),
    );
    measured(&mut l, "q", 10);
    assert_eq!(l.vcpu(&key("q")).unwrap().hart, 0);
    (t, l)
}

#[test]
fn the_other_waiters_on_the_hart_move_away_so_that_kvm_gives_the_line_to_the_busy_one() {
    let (t, l) = with_q_beside_v(&[]);
    let r = plan_rebalance(&t, &l, 2000, 0).expect("worth a move");
    assert_eq!((r.favoured, r.demote.key.clone()), (key("w"), key("v")));
    let q_away = Move {
        key: key("q"),
        from: 0,
        to: 1,
        backing: Backing::Mrif,
    };
    assert_eq!(r.cleared, [q_away]);
    // q may wait nowhere else: KVM would give q the line, so no rebalance.
    let (t, l) = with_q_beside_v(&[0]);
    assert!(plan_rebalance(&t, &l, 2000, 0).is_none());
}

#[test]
fn a_waiter_on_the_holders_hart_gets_its_line_however_recently_it_moved() {
    const MIN: Millis = 60_000;
    // w moved at 5 s, back onto hart 0, v's: it needs no move to take v's
    // line, so the interval does not hold it back.
    let (t, mut l) = plain(100, 30_000, 20_000);
    l.move_vcpu(&key("w"), 1, Backing::Mrif, 4000, true)
        .unwrap();
    l.move_vcpu(&key("w"), 0, Backing::Mrif, 5000, true)
        .unwrap();
    let r = plan_rebalance(&t, &l, 5000 + MIN - 1, MIN).expect("w is on v's hart");
    assert_eq!((r.favoured, r.demote.key), (key("w"), key("v")));
    assert!(r.cleared.is_empty());
}

#[test]
fn no_second_rebalance_while_the_first_ones_line_is_being_released() {
    // Three harts of one file held by quiet a, b and c; busy w1 and w2 wait.
    let t = Topology::uniform(3, 1, 1);
    let mut l = Ledger::new(&t);
    for vm in ["a", "b", "c", "w1", "w2"] {
        place(&t, &mut l, &spec(vm, 1, Class::Burstable));
    }
    for (vm, rate) in [
        ("a", 10),
        ("b", 20),
        ("c", 30),
        ("w1", 50_000),
        ("w2", 40_000),
    ] {
        measured(&mut l, vm, rate);
    }
    let first = plan_rebalance(&t, &l, 2000, 0).expect("worth a move");
    assert_eq!(first.demote.key, key("a"));
    apply_moves(
        &mut l,
        std::iter::once(&first.demote).chain(&first.cleared),
        2000,
    )
    .unwrap();
    assert!(l.load(first.demote.from).releasing > 0);
    assert!(
        plan_rebalance(&t, &l, 2000, 0).is_none(),
        "a's line is still held"
    );
    // a entered where it waits now: its line is free, and the next
    // rebalance may come.
    l.observed(&key("a"), None, None).unwrap();
    assert!(plan_rebalance(&t, &l, 2000, 0).is_some());
}

#[test]
fn the_vcpus_that_move_spread_over_the_least_loaded_full_harts() {
    // Four harts of one file held by a, b, c, d; quiet q1 and q2 wait on
    // hart 0 (a's), busy w on hart 3. a gives its line to w: a, q1 and q2
    // each go to the least loaded full hart of the moment.
    let t = Topology::uniform(4, 1, 1);
    let mut l = Ledger::new(&t);
    for vm in ["a", "b", "c", "d", "w", "q1", "q2"] {
        place(&t, &mut l, &spec(vm, 1, Class::Burstable));
    }
    for (vm, hart) in [("w", 3), ("q1", 0), ("q2", 0)] {
        l.move_vcpu(&key(vm), hart, Backing::Mrif, 0, false)
            .unwrap();
    }
    for (vm, rate) in [("a", 10), ("b", 20), ("c", 30), ("d", 40), ("w", 50_000)] {
        measured(&mut l, vm, rate);
    }
    let r = plan_rebalance(&t, &l, 2000, 0).expect("worth a move");
    let to: Vec<(VcpuKey, HartId)> = std::iter::once(&r.demote)
        .chain(&r.cleared)
        .map(|m| (m.key.clone(), m.to))
        .collect();
    // Threads: hart 1 and 2 one each, hart 3 two (d and w).
    assert_eq!(to, [(key("a"), 1), (key("q1"), 2), (key("q2"), 1)]);
}
