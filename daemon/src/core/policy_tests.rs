use super::*;
use crate::core::request::PlaceSpec;
use crate::core::test_support::{measured, run_all, spec};
use crate::core::{Class, CoreError, VmId};

/// Places a VM and lets every vCPU enter, as the engine's settle does.
fn place_spec(t: &Topology, l: &mut Ledger, s: &PlaceSpec) -> Placement {
    let p = plan_place(t, l, s).unwrap();
    apply_placement(l, s, &p, 0).unwrap();
    if !p.pending() {
        run_all(l);
    }
    l.verify(t).unwrap();
    p
}

fn place(t: &Topology, l: &mut Ledger, vm: &str, n: u32, class: Class) -> Placement {
    place_spec(t, l, &spec(vm, n, class))
}

fn harts(p: &Placement) -> Vec<HartId> {
    p.vcpus.iter().map(|a| a.0).collect()
}

fn id(s: &str) -> VmId {
    VmId::parse(s).unwrap()
}

fn key(vm: &str, vcpu: u32) -> VcpuKey {
    VcpuKey { vm: id(vm), vcpu }
}

#[test]
fn guaranteed_spreads_over_distinct_harts_first() {
    let t = Topology::uniform(4, 5, 1);
    let mut l = Ledger::new(&t);
    let p = place(&t, &mut l, "a", 6, Class::Guaranteed);
    assert!(p.vcpus.iter().all(|a| a.1 == Backing::VsFile));
    let mut h = harts(&p);
    h.sort();
    assert_eq!(h, [0, 0, 1, 1, 2, 3]);
}

#[test]
fn best_fit_prefers_the_fullest_hart_that_has_room() {
    let t = Topology::uniform(3, 5, 1);
    let mut l = Ledger::new(&t);
    place(&t, &mut l, "a", 3, Class::Guaranteed);
    place(&t, &mut l, "b", 1, Class::Guaranteed);
    let p = place(&t, &mut l, "c", 1, Class::Guaranteed);
    assert_eq!(harts(&p), [0], "fewest free first, then lowest id");
}

#[test]
fn guaranteed_refused_whole_when_nothing_can_be_swapped() {
    let t = Topology::uniform(2, 5, 1);
    let mut l = Ledger::new(&t);
    place(&t, &mut l, "a", 7, Class::Guaranteed);
    match plan_place(&t, &l, &spec("b", 4, Class::Guaranteed)) {
        Err(CoreError::Refused(kind, msg, facts)) => {
            assert!(
                msg.contains("needs 4 VS-files; 3 free and only 0 can be taken"),
                "{msg}"
            );
            assert_eq!(kind, Refusal::NoFreeVsFile);
            let expected = crate::core::Facts {
                needed: Some(4),
                free: Some(3),
                takeable: Some(0),
                hart: None,
            };
            assert_eq!(facts, expected);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_refusal_says_how_many_files_burstable_vcpus_could_give() {
    let t = Topology::uniform(2, 2, 1);
    let mut l = Ledger::new(&t);
    place(&t, &mut l, "b", 3, Class::Burstable);
    match plan_place(&t, &l, &spec("g", 5, Class::Guaranteed)) {
        Err(CoreError::Refused(Refusal::NoFreeVsFile, _, facts)) => {
            assert_eq!(
                (facts.needed, facts.free, facts.takeable),
                (Some(5), Some(1), Some(3))
            );
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn refusals_about_a_hart_name_it() {
    let t = Topology::uniform(2, 2, 1);
    let mut l = Ledger::new(&t);
    place(&t, &mut l, "a", 1, Class::Guaranteed);
    l.set_drained(1, true);
    let key = VcpuKey {
        vm: VmId::parse("a").unwrap(),
        vcpu: 0,
    };
    match plan_migrate(&t, &l, &key, 1) {
        Err(CoreError::Refused(Refusal::HartUnavailable, _, facts)) => {
            assert_eq!(facts.hart, Some(1))
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn swapping_demotes_burstable_lowest_priority_newest_devices_last() {
    let t = Topology::uniform(4, 1, 1);
    let mut l = Ledger::new(&t);
    let dev = PlaceSpec::parse("dev", 1, Some(Class::Burstable), &["01:00.0".into()]).unwrap();
    place_spec(&t, &mut l, &dev);
    place_spec(
        &t,
        &mut l,
        &spec("hi", 1, Class::Burstable).with_priority(5),
    );
    place(&t, &mut l, "old", 1, Class::Burstable);
    place(&t, &mut l, "new", 1, Class::Burstable);
    run_all(&mut l);
    let p = plan_place(&t, &l, &spec("g", 2, Class::Guaranteed)).unwrap();
    let demoted: Vec<&str> = p.demotions.iter().map(|m| m.key.vm.as_str()).collect();
    assert_eq!(demoted, ["new", "old"]);
    assert!(
        p.pending(),
        "their lines are released only at their next entry"
    );
    for m in &p.demotions {
        assert_eq!(m.backing, Backing::Mrif);
        assert_ne!(m.to, m.from);
        assert!(
            !harts(&p).contains(&m.to),
            "demoted onto a hart that keeps its files"
        );
    }
    apply_placement(&mut l, &spec("g", 2, Class::Guaranteed), &p, 0).unwrap();
    l.verify(&t).unwrap();
    let g_harts = harts(&p);
    assert!(
        g_harts.iter().all(|&h| !l.settled(&t, h)),
        "files still held"
    );
    run_all(&mut l);
    assert!(g_harts.iter().all(|&h| l.settled(&t, h)));
}

#[test]
fn swapping_moves_waiting_vcpus_off_the_harts_that_free_lines() {
    // 3 harts x 1 file. b holds all three; w waits on MRIF.
    let t = Topology::uniform(3, 1, 1);
    let mut l = Ledger::new(&t);
    place(&t, &mut l, "b", 3, Class::Burstable);
    place(&t, &mut l, "w", 1, Class::Burstable);
    run_all(&mut l);
    let w_hart = l.vcpu(&key("w", 0)).unwrap().hart;
    let p = plan_place(&t, &l, &spec("g", 1, Class::Guaranteed)).unwrap();
    let freed = harts(&p)[0];
    if freed == w_hart {
        assert_eq!(p.rehomes.len(), 1, "{p:?}");
        assert_ne!(p.rehomes[0].to, freed);
    } else {
        assert!(p.rehomes.is_empty());
    }
}

#[test]
fn burstable_takes_free_files_then_mrif() {
    let t = Topology::uniform(2, 2, 1);
    let mut l = Ledger::new(&t);
    let p = place(&t, &mut l, "a", 6, Class::Burstable);
    assert_eq!(p.vcpus.iter().filter(|a| a.1 == Backing::VsFile).count(), 4);
    assert_eq!(l.load(0).vcpus, 3);
    assert_eq!(l.load(1).vcpus, 3);
}

#[test]
fn best_effort_never_takes_a_file() {
    let t = Topology::uniform(2, 5, 1);
    let mut l = Ledger::new(&t);
    let p = place(&t, &mut l, "a", 4, Class::BestEffort);
    assert!(p.vcpus.iter().all(|a| a.1 == Backing::Mrif));
    assert_eq!(harts(&p), [0, 1, 0, 1]);
}

#[test]
fn one_numa_node_when_it_fits() {
    let t = Topology::uniform(8, 2, 2);
    let mut l = Ledger::new(&t);
    place(&t, &mut l, "a", 2, Class::Guaranteed);
    let p = place(&t, &mut l, "b", 5, Class::Guaranteed);
    assert!(harts(&p).iter().all(|&h| h < 4), "{p:?}");
    let p = place(&t, &mut l, "c", 7, Class::Guaranteed);
    assert!(harts(&p).iter().all(|&h| h >= 4), "{p:?}");
}

#[test]
fn allowed_harts_restrict_placement_and_must_exist() {
    let t = Topology::uniform(4, 5, 1);
    let mut l = Ledger::new(&t);
    let s = spec("a", 3, Class::Guaranteed).with_harts(&[3, 2]);
    let p = place_spec(&t, &mut l, &s);
    assert!(harts(&p).iter().all(|&h| h == 2 || h == 3));
    let bad = spec("b", 1, Class::Guaranteed).with_harts(&[9]);
    assert!(matches!(
        plan_place(&t, &l, &bad),
        Err(CoreError::InvalidArgument { field: "harts", .. })
    ));
}

#[test]
fn offline_and_drained_harts_get_nothing() {
    let mut t = Topology::uniform(3, 5, 1);
    t.set_online(0, false);
    let mut l = Ledger::new(&t);
    l.set_drained(1, true);
    let p = place(&t, &mut l, "a", 3, Class::Burstable);
    assert!(harts(&p).iter().all(|&h| h == 2));
}

#[test]
fn existing_vm_and_taken_device_are_refused() {
    let t = Topology::uniform(2, 5, 1);
    let mut l = Ledger::new(&t);
    let s = PlaceSpec::parse("a", 1, Some(Class::Burstable), &["01:00.0".into()]).unwrap();
    place_spec(&t, &mut l, &s);
    assert!(matches!(
        plan_place(&t, &l, &s),
        Err(CoreError::VmExists(_))
    ));
    let s2 = PlaceSpec::parse("b", 1, Some(Class::Burstable), &["0000:01:00.0".into()]).unwrap();
    assert!(matches!(
        plan_place(&t, &l, &s2),
        Err(CoreError::DeviceInUse { .. })
    ));
    l.remove(&s.vm).unwrap();
    assert!(plan_place(&t, &l, &s2).is_ok(), "release frees the device");
}

#[test]
fn migrate_keeps_the_file_or_refuses_guaranteed_or_drops_burstable_to_mrif() {
    let t = Topology::uniform(2, 1, 1);
    let mut l = Ledger::new(&t);
    place(&t, &mut l, "g", 1, Class::Guaranteed);
    place(&t, &mut l, "b", 1, Class::Burstable);
    run_all(&mut l);
    let g_hart = l.vcpu(&key("g", 0)).unwrap().hart;
    let other = 1 - g_hart;
    assert!(matches!(
        plan_migrate(&t, &l, &key("g", 0), other),
        Err(CoreError::Refused(..))
    ));
    let m = plan_migrate(&t, &l, &key("b", 0), g_hart).unwrap();
    assert_eq!(m.backing, Backing::Mrif);
    apply_moves(&mut l, [&m], 0).unwrap();
    l.verify(&t).unwrap();
    assert_eq!(l.load(other).releasing, 1, "b still holds its old line");
    run_all(&mut l);
    assert_eq!(l.load(other).releasing, 0);
    let m = plan_migrate(&t, &l, &key("g", 0), other).unwrap();
    assert_eq!(m.backing, Backing::VsFile);
    assert!(matches!(
        plan_migrate(&t, &l, &key("g", 7), other),
        Err(CoreError::InvalidArgument { field: "vcpu", .. })
    ));
    assert!(matches!(
        plan_migrate(&t, &l, &key("g", 0), 5),
        Err(CoreError::InvalidArgument { field: "hart", .. })
    ));
}

#[test]
fn evacuate_refuses_when_a_guaranteed_vcpu_has_nowhere_to_go() {
    let t = Topology::uniform(2, 2, 1);
    let mut l = Ledger::new(&t);
    place(&t, &mut l, "g", 2, Class::Guaranteed); // one on each hart
    place(&t, &mut l, "b", 1, Class::Burstable); // hart 0: best fit, lowest id
    let (moves, stranded) = plan_evacuate(&t, &l, 0, false).unwrap();
    assert!(stranded.is_empty());
    assert_eq!(moves.len(), 2);
    let g = moves.iter().find(|m| m.key.vm.as_str() == "g").unwrap();
    assert_eq!((g.to, g.backing), (1, Backing::VsFile));
    let b = moves.iter().find(|m| m.key.vm.as_str() == "b").unwrap();
    assert_eq!(
        (b.to, b.backing),
        (1, Backing::Mrif),
        "g took the last file first"
    );
    place(&t, &mut l, "g2", 1, Class::Guaranteed);
    match plan_evacuate(&t, &l, 0, false) {
        Err(CoreError::Refused(_, msg, _)) => assert!(msg.contains("cannot drain hart 0"), "{msg}"),
        other => panic!("{other:?}"),
    }
    let (_, stranded) = plan_evacuate(&t, &l, 0, true).unwrap();
    assert_eq!(stranded.len(), 1);
}

#[test]
fn promotions_take_on_hart_waiters_first() {
    let t = Topology::uniform(2, 1, 1);
    let mut l = Ledger::new(&t);
    place(&t, &mut l, "g", 2, Class::Guaranteed);
    place(&t, &mut l, "b1", 1, Class::Burstable);
    let dev = PlaceSpec::parse("b2", 1, Some(Class::Burstable), &["02:00.0".into()]).unwrap();
    place_spec(&t, &mut l, &dev);
    run_all(&mut l);
    assert_eq!(l.vcpu(&key("b1", 0)).unwrap().hart, 0);
    assert_eq!(l.vcpu(&key("b2", 0)).unwrap().hart, 1);
    assert!(plan_promotions(&t, &l, 0, 0).is_empty(), "nothing free");
    l.remove(&id("g")).unwrap();
    // Each gets the file of its own hart, where KVM gives it anyway: no
    // move, even though b2 (a device) is the better candidate for either.
    let moves = plan_promotions(&t, &l, 0, 0);
    let on_hart = |vm: &str, h: HartId| Move {
        key: key(vm, 0),
        from: h,
        to: h,
        backing: Backing::VsFile,
    };
    assert_eq!(moves, [on_hart("b1", 0), on_hart("b2", 1)]);
}

/// Two harts of one file. g0 holds hart 0's and g1 hart 1's; w and n, both
/// burstable, wait on MRIF on hart 1: w moved there at `moved_at`, n never
/// moved. Then g0 leaves: hart 0's file is free, and only a move to hart 0
/// can promote either of them.
fn anti_thrash_host(moved_at: Millis) -> (Topology, Ledger) {
    let t = Topology::uniform(2, 1, 1);
    let mut l = Ledger::new(&t);
    place_spec(
        &t,
        &mut l,
        &spec("g0", 1, Class::Guaranteed).with_harts(&[0]),
    );
    place_spec(
        &t,
        &mut l,
        &spec("g1", 1, Class::Guaranteed).with_harts(&[1]),
    );
    place(&t, &mut l, "w", 1, Class::Burstable);
    place(&t, &mut l, "n", 1, Class::Burstable);
    assert_eq!(
        l.vcpu(&key("w", 0)).unwrap().hart,
        0,
        "fewest threads first"
    );
    assert_eq!(l.vcpu(&key("n", 0)).unwrap().hart, 1);
    l.move_vcpu(&key("w", 0), 1, Backing::Mrif, moved_at, true)
        .unwrap();
    run_all(&mut l);
    l.remove(&id("g0")).unwrap();
    l.verify(&t).unwrap();
    assert_eq!(l.free(&t, 0), 1);
    assert_eq!(l.free(&t, 1), 0);
    let w = l.vcpu(&key("w", 0)).unwrap();
    assert_eq!((w.moved_at, w.waiting_since), (Some(moved_at), 0));
    assert_eq!(l.vcpu(&key("n", 0)).unwrap().moved_at, None);
    (t, l)
}

fn to_hart_0(vm: &str) -> Move {
    Move {
        key: key(vm, 0),
        from: 1,
        to: 0,
        backing: Backing::VsFile,
    }
}

#[test]
fn anti_thrash_skips_a_vcpu_moved_less_than_min_interval_ago() {
    const MOVED: Millis = 1_000;
    const MIN: Millis = 60_000;
    let (t, l) = anti_thrash_host(MOVED);
    // w waited as long as n and was placed first: the better candidate.
    assert_eq!(plan_promotions(&t, &l, MOVED, 0), [to_hart_0("w")]);
    // Moved just now, and 1 ms short of the interval: n, which never
    // moved, gets the file instead, however soon.
    for now in [MOVED, MOVED + 1, MOVED + MIN - 1] {
        assert_eq!(
            plan_promotions(&t, &l, now, MIN),
            [to_hart_0("n")],
            "now {now}"
        );
    }
    // Exactly the interval, and later: w may move again.
    for now in [MOVED + MIN, MOVED + MIN + 1, Millis::MAX] {
        assert_eq!(
            plan_promotions(&t, &l, now, MIN),
            [to_hart_0("w")],
            "now {now}"
        );
    }
}

#[test]
fn anti_thrash_does_not_hold_back_a_vcpu_that_never_moved() {
    let (t, mut l) = anti_thrash_host(1_000);
    l.remove(&id("w")).unwrap();
    // Even at time 0 with an interval of a day: n has never moved.
    assert_eq!(plan_promotions(&t, &l, 0, 86_400_000), [to_hart_0("n")]);
}

#[test]
fn anti_thrash_does_not_hold_back_a_promotion_on_the_vcpus_own_hart() {
    // w moved to hart 1 just now; g1 leaves, so the file w's own hart
    // frees goes to w without a move, interval or not.
    let (t, mut l) = anti_thrash_host(1_000);
    l.remove(&id("n")).unwrap();
    l.remove(&id("g1")).unwrap();
    let moves = plan_promotions(&t, &l, 1_000, 60_000);
    let w_in_place = Move {
        key: key("w", 0),
        from: 1,
        to: 1,
        backing: Backing::VsFile,
    };
    assert_eq!(moves, [w_in_place]);
}

#[test]
fn replan_all_places_guaranteed_first() {
    let t = Topology::uniform(2, 2, 1);
    let mut l = Ledger::new(&t);
    place(&t, &mut l, "b", 3, Class::Burstable);
    place(&t, &mut l, "e", 2, Class::BestEffort);
    place(&t, &mut l, "g", 1, Class::Guaranteed);
    let (fresh, unplaced) = replan_all(&t, &l);
    assert!(unplaced.is_empty());
    fresh.verify(&t).unwrap();
    assert_eq!(fresh.vsfiles_used(), 4);
    assert_eq!(fresh.vm_count(), 3);
}

#[test]
fn replan_all_keeps_each_vcpus_interrupt_rate_hint() {
    let t = Topology::uniform(2, 2, 1);
    let mut l = Ledger::new(&t);
    let rates: Vec<crate::core::IrqRate> = [10.0, 2e4]
        .into_iter()
        .map(|r| r.try_into().unwrap())
        .collect();
    let hinted = spec("h", 2, Class::Burstable)
        .with_expected_irq_rates(rates.clone())
        .unwrap();
    place_spec(&t, &mut l, &hinted);
    let (fresh, _) = replan_all(&t, &l);
    assert_eq!(
        fresh.vm(&id("h")).unwrap().expected_irq_rates(),
        Some(rates)
    );
}

#[test]
fn a_host_without_guest_files_takes_only_best_effort() {
    let t = Topology::new(
        Topology::uniform(2, 1, 1)
            .harts()
            .iter()
            .map(|h| crate::core::HartInfo {
                vsfiles: 0,
                ..h.clone()
            })
            .collect(),
    );
    let mut l = Ledger::new(&t);
    for class in [Class::Guaranteed, Class::Burstable] {
        match plan_place(&t, &l, &spec("a", 1, class)) {
            Err(CoreError::Refused(_, msg, _)) => {
                assert!(msg.contains("only AIA mode emul"), "{msg}")
            }
            other => panic!("{other:?}"),
        }
    }
    place(&t, &mut l, "e", 2, Class::BestEffort);
}

#[test]
fn a_placement_counts_its_vcpus_per_backing() {
    let t = Topology::uniform(2, 2, 1);
    let mut l = Ledger::new(&t);
    let p = place(&t, &mut l, "a", 6, Class::Burstable);
    assert_eq!((p.count(Backing::VsFile), p.count(Backing::Mrif)), (4, 2));
}

#[test]
fn a_line_still_held_by_a_vcpu_that_moved_away_is_not_free_for_placement() {
    let t = Topology::uniform(2, 2, 1);
    let mut l = Ledger::new(&t);
    place(&t, &mut l, "a", 2, Class::Burstable);
    let from = l.vcpu(&key("a", 0)).unwrap().hart;
    let to = 1 - from;
    // Moved with its file; KVM frees the old line only at its next entry.
    l.move_vcpu(&key("a", 0), to, Backing::VsFile, 0, true)
        .unwrap();
    let p = plan_place(&t, &l, &spec("b", 2, Class::Burstable)).unwrap();
    let files: Vec<HartId> = p
        .vcpus
        .iter()
        .filter(|a| a.1 == Backing::VsFile)
        .map(|a| a.0)
        .collect();
    assert_eq!(files, [from], "{p:?}");
}

/// One NUMA node, `files[h]` VS-files on hart h.
fn files(files: &[u8]) -> Topology {
    let t = Topology::uniform(files.len() as u32, 1, 1);
    Topology::new(
        t.harts()
            .iter()
            .zip(files)
            .map(|(h, &vsfiles)| crate::core::HartInfo {
                vsfiles,
                ..h.clone()
            })
            .collect(),
    )
}

#[test]
fn mrif_vcpus_go_where_fewest_threads_run_counting_the_vms_own() {
    // 5 free files: 4 on hart 0, 1 on hart 1; the sixth vCPU waits.
    let t = files(&[4, 1]);
    let l = Ledger::new(&t);
    let p = plan_place(&t, &l, &spec("b", 6, Class::Burstable)).unwrap();
    let mrif: Vec<HartId> = p
        .vcpus
        .iter()
        .filter(|a| a.1 == Backing::Mrif)
        .map(|a| a.0)
        .collect();
    assert_eq!(mrif, [1], "hart 0 runs 4 of its vCPUs already: {p:?}");
}

#[test]
fn a_burstable_vcpu_does_not_wait_where_a_line_is_promised_to_a_vcpu_not_yet_entered() {
    let t = Topology::uniform(2, 1, 1);
    let mut l = Ledger::new(&t);
    // g's vCPU is placed on hart 0 but has not entered: its line is free in KVM.
    let g = spec("g", 1, Class::Guaranteed);
    let p = plan_place(&t, &l, &g).unwrap();
    apply_placement(&mut l, &g, &p, 0).unwrap();
    assert_eq!(harts(&p), [0]);
    let p = plan_place(&t, &l, &spec("b", 2, Class::Burstable)).unwrap();
    assert_eq!(p.vcpus, [(1, Backing::VsFile), (1, Backing::Mrif)]);
}

#[test]
fn a_burstable_vm_with_nowhere_safe_to_wait_is_told_to_try_again() {
    let t = Topology::uniform(1, 1, 1);
    let mut l = Ledger::new(&t);
    let g = spec("g", 1, Class::Guaranteed);
    let p = plan_place(&t, &l, &g).unwrap();
    apply_placement(&mut l, &g, &p, 0).unwrap();
    match plan_place(&t, &l, &spec("b", 1, Class::Burstable)) {
        Err(CoreError::Refused(kind, _, _)) => assert_eq!(kind, Refusal::TryAgain),
        other => panic!("{other:?}"),
    }
}

#[test]
fn one_numa_node_of_three_when_it_fits() {
    let t = Topology::uniform(6, 2, 3);
    let mut l = Ledger::new(&t);
    let p = place(&t, &mut l, "a", 3, Class::Guaranteed);
    let mut h = harts(&p);
    h.sort();
    assert_eq!(h, [0, 0, 1], "node 0 only: {p:?}");
}

#[test]
fn no_numa_confinement_when_only_one_node_has_free_files() {
    let t = Topology::uniform(4, 1, 2);
    let mut l = Ledger::new(&t);
    place(&t, &mut l, "g", 2, Class::Guaranteed); // fills node 0
    assert_eq!((l.free(&t, 0), l.free(&t, 1)), (0, 0));
    let p = place(&t, &mut l, "e", 4, Class::BestEffort);
    let mut h = harts(&p);
    h.sort();
    assert_eq!(h, [0, 1, 2, 3], "spread over both nodes: {p:?}");
}

/// Hart 0 of 3 (2 files each) goes offline under burstable vCPU `b/0`,
/// which may use `b_harts`; hart 2 has the fewest free files.
fn offline_under_burstable(b_harts: &[HartId]) -> (Topology, Ledger) {
    let mut t = Topology::uniform(3, 2, 1);
    let mut l = Ledger::new(&t);
    place_spec(
        &t,
        &mut l,
        &spec("b", 1, Class::Burstable).with_harts(b_harts),
    );
    place_spec(
        &t,
        &mut l,
        &spec("x", 1, Class::Guaranteed).with_harts(&[2]),
    );
    assert_eq!(l.vcpu(&key("b", 0)).unwrap().hart, 0);
    t.set_online(0, false);
    (t, l)
}

#[test]
fn a_vcpu_leaving_an_offline_hart_stays_within_its_harts_while_one_can_take_it() {
    let (t, l) = offline_under_burstable(&[0, 1]);
    let (moves, stranded) = plan_evacuate(&t, &l, 0, true).unwrap();
    assert!(stranded.is_empty());
    assert_eq!((moves[0].to, moves[0].backing), (1, Backing::VsFile));
}

#[test]
fn a_burstable_vcpu_whose_every_hart_is_offline_follows_linux_anywhere() {
    let (t, l) = offline_under_burstable(&[0]);
    let (moves, stranded) = plan_evacuate(&t, &l, 0, true).unwrap();
    assert!(stranded.is_empty());
    assert_eq!((moves[0].to, moves[0].backing), (2, Backing::VsFile));
}

#[test]
fn draining_the_only_hart_a_burstable_vm_may_use_is_refused() {
    let t = Topology::uniform(2, 2, 1);
    let mut l = Ledger::new(&t);
    place_spec(&t, &mut l, &spec("b", 1, Class::Burstable).with_harts(&[0]));
    match plan_evacuate(&t, &l, 0, false) {
        Err(CoreError::Refused(kind, msg, _)) => {
            assert_eq!(kind, Refusal::WouldStrand);
            assert!(msg.contains("no other hart it may use"), "{msg}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn evacuated_vcpus_never_land_on_a_drained_hart() {
    let t = Topology::uniform(3, 1, 1);
    let mut l = Ledger::new(&t);
    place(&t, &mut l, "e", 1, Class::BestEffort);
    assert_eq!(l.vcpu(&key("e", 0)).unwrap().hart, 0);
    l.set_drained(1, true);
    let (moves, _) = plan_evacuate(&t, &l, 0, false).unwrap();
    assert_eq!(moves[0].to, 2, "hart 1 is drained, though idle");
}

#[test]
fn an_evacuated_vcpu_stays_on_its_numa_node_first() {
    let t = Topology::uniform(4, 2, 2);
    let mut l = Ledger::new(&t);
    place(&t, &mut l, "g", 1, Class::Guaranteed);
    place_spec(
        &t,
        &mut l,
        &spec("x", 1, Class::Guaranteed).with_harts(&[2]),
    );
    assert_eq!(l.vcpu(&key("g", 0)).unwrap().hart, 0);
    let (moves, _) = plan_evacuate(&t, &l, 0, false).unwrap();
    assert_eq!(moves[0].to, 1, "hart 2 fits best, but on the other node");
}

/// Places `s` but lets none of its vCPUs enter: their lines are not held yet.
fn place_not_entered(t: &Topology, l: &mut Ledger, s: &PlaceSpec) {
    let p = plan_place(t, l, s).unwrap();
    apply_placement(l, s, &p, 0).unwrap();
}

#[test]
fn an_evacuated_burstable_vcpu_waits_where_kvm_holds_every_line_first() {
    let t = Topology::uniform(3, 1, 1);
    let mut l = Ledger::new(&t);
    place(&t, &mut l, "b", 1, Class::Burstable);
    place(&t, &mut l, "x", 1, Class::Guaranteed);
    place_not_entered(&t, &mut l, &spec("g", 1, Class::Guaranteed));
    let held = l.vcpu(&key("x", 0)).unwrap().hart;
    assert_eq!(l.vcpu(&key("b", 0)).unwrap().hart, 0);
    let (moves, _) = plan_evacuate(&t, &l, 0, false).unwrap();
    assert_eq!((moves[0].to, moves[0].backing), (held, Backing::Mrif));
}

#[test]
fn a_burstable_vcpu_is_not_sent_to_wait_on_a_hart_whose_line_is_promised() {
    // b holds both harts' lines; g takes one of them by swap and is pending.
    let t = Topology::uniform(2, 1, 1);
    let mut l = Ledger::new(&t);
    place(&t, &mut l, "b", 2, Class::Burstable);
    let g = spec("g", 1, Class::Guaranteed);
    let p = plan_place(&t, &l, &g).unwrap();
    assert!(p.pending());
    apply_placement(&mut l, &g, &p, 0).unwrap();
    let promised = harts(&p)[0];
    match plan_evacuate(&t, &l, 1 - promised, false) {
        Err(CoreError::Refused(kind, _, _)) => assert_eq!(kind, Refusal::WouldStrand),
        other => panic!("{other:?}"),
    }
}

#[test]
fn migrating_burstable_onto_a_full_hart_whose_line_is_not_held_yet_is_try_again() {
    let t = Topology::uniform(2, 1, 1);
    let mut l = Ledger::new(&t);
    place(&t, &mut l, "b", 1, Class::Burstable);
    place_not_entered(&t, &mut l, &spec("g", 1, Class::Guaranteed));
    assert_eq!(l.vcpu(&key("g", 0)).unwrap().hart, 1);
    match plan_migrate(&t, &l, &key("b", 0), 1) {
        Err(CoreError::Refused(kind, _, _)) => assert_eq!(kind, Refusal::TryAgain),
        other => panic!("{other:?}"),
    }
}

#[test]
fn vcpus_pushed_outside_their_harts_go_back_once_one_is_online() {
    let (mut t, mut l) = offline_under_burstable(&[0]);
    let (moves, _) = plan_evacuate(&t, &l, 0, true).unwrap();
    apply_moves(&mut l, &moves, 0).unwrap();
    assert!(plan_restore(&t, &l).is_empty(), "hart 0 is still offline");
    t.set_online(0, true);
    let back = plan_restore(&t, &l);
    assert_eq!(
        back,
        [Move {
            key: key("b", 0),
            from: 2,
            to: 0,
            backing: Backing::VsFile,
        }]
    );
}

#[test]
fn draining_refuses_naming_the_guaranteed_vcpu_without_a_free_file() {
    let t = Topology::uniform(2, 1, 1);
    let mut l = Ledger::new(&t);
    place(&t, &mut l, "g", 2, Class::Guaranteed);
    match plan_evacuate(&t, &l, 0, false) {
        Err(CoreError::Refused(Refusal::WouldStrand, msg, _)) => assert!(
            msg.contains("guaranteed vm g vcpu 0 has no free VS-file on another hart"),
            "{msg}"
        ),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_line_a_stopped_vm_still_holds_is_not_promised_to_a_waiter() {
    let t = Topology::uniform(1, 2, 1);
    let mut l = Ledger::new(&t);
    place(&t, &mut l, "g", 1, Class::Guaranteed);
    place(&t, &mut l, "f", 1, Class::Guaranteed);
    place(&t, &mut l, "w", 1, Class::Burstable);
    assert_eq!(l.vcpu(&key("w", 0)).unwrap().backing, Backing::Mrif);
    // f's HWACCEL entry failed: its VMM stopped it, and KVM keeps its line.
    l.set_failed(&id("f"));
    assert!(plan_promotions(&t, &l, 0, 0).is_empty());
}

/// One guaranteed vCPU pinned to each hart, all entered.
fn one_pinned_per_hart(t: &Topology, l: &mut Ledger) {
    for h in 0..t.len() as HartId {
        let s = spec(&format!("a{h}"), 1, Class::Guaranteed).with_harts(&[h]);
        place_spec(t, l, &s);
    }
}

#[test]
fn promotions_never_give_one_free_file_to_two_waiters() {
    let t = Topology::uniform(4, 1, 1);
    let mut l = Ledger::new(&t);
    one_pinned_per_hart(&t, &mut l);
    place(&t, &mut l, "w1", 1, Class::Burstable);
    place_spec(
        &t,
        &mut l,
        &spec("w2", 1, Class::Burstable).with_harts(&[1, 2]),
    );
    assert_eq!(l.vcpu(&key("w1", 0)).unwrap().hart, 0);
    assert_eq!(l.vcpu(&key("w2", 0)).unwrap().hart, 1);
    l.remove(&id("a2")).unwrap();
    l.remove(&id("a3")).unwrap();
    let moves = plan_promotions(&t, &l, 0, 0);
    let to: Vec<(&str, HartId)> = moves.iter().map(|m| (m.key.vm.as_str(), m.to)).collect();
    assert_eq!(to, [("w1", 2)], "w2 may not use hart 3");
}

#[test]
fn promotions_move_a_waiter_to_its_own_numa_node_first() {
    let t = Topology::uniform(4, 1, 2);
    let mut l = Ledger::new(&t);
    one_pinned_per_hart(&t, &mut l);
    place(&t, &mut l, "w", 1, Class::Burstable);
    assert_eq!(l.vcpu(&key("w", 0)).unwrap().hart, 0);
    l.remove(&id("a1")).unwrap();
    l.remove(&id("a2")).unwrap();
    let moves = plan_promotions(&t, &l, 0, 0);
    assert_eq!(moves.len(), 1);
    assert_eq!(moves[0].to, 1, "hart 2 is on the other node");
}

#[test]
fn replan_all_gives_files_to_higher_priority_burstable_first() {
    let t = Topology::uniform(1, 1, 1);
    let mut l = Ledger::new(&t);
    place(&t, &mut l, "lo", 1, Class::Burstable);
    place_spec(
        &t,
        &mut l,
        &spec("hi", 1, Class::Burstable).with_priority(5),
    );
    assert_eq!(l.vcpu(&key("hi", 0)).unwrap().backing, Backing::Mrif);
    let (fresh, unplaced) = replan_all(&t, &l);
    assert!(unplaced.is_empty());
    assert_eq!(fresh.vcpu(&key("hi", 0)).unwrap().backing, Backing::VsFile);
    assert_eq!(fresh.vcpu(&key("lo", 0)).unwrap().backing, Backing::Mrif);
}

#[test]
fn applied_moves_stamp_only_the_vcpus_that_changed_hart() {
    let t = Topology::uniform(2, 2, 1);
    let mut l = Ledger::new(&t);
    let p = place(&t, &mut l, "b", 2, Class::Burstable);
    assert_eq!(harts(&p), [0, 1]);
    let m = |vcpu, from, to| Move {
        key: key("b", vcpu),
        from,
        to,
        backing: Backing::VsFile,
    };
    apply_moves(&mut l, &[m(0, 0, 1), m(1, 1, 1)], 7).unwrap();
    assert_eq!(l.vcpu(&key("b", 0)).unwrap().moved_at, Some(7));
    assert_eq!(l.vcpu(&key("b", 1)).unwrap().moved_at, None, "stayed");
}

#[test]
fn a_burstable_vcpu_is_not_sent_to_wait_on_a_hart_whose_lines_are_over_reserved() {
    let t = Topology::uniform(4, 1, 1);
    let mut l = Ledger::new(&t);
    place_spec(
        &t,
        &mut l,
        &spec("a", 1, Class::Burstable).with_harts(&[0, 3]),
    );
    place_spec(
        &t,
        &mut l,
        &spec("g", 1, Class::Guaranteed).with_harts(&[1]),
    );
    place_spec(
        &t,
        &mut l,
        &spec("b", 1, Class::Burstable).with_harts(&[0, 2]),
    );
    place_spec(&t, &mut l, &spec("w", 1, Class::Burstable).with_harts(&[0]));
    assert_eq!(l.vcpu(&key("b", 0)).unwrap().hart, 2);
    // a moves to hart 3 and still holds hart 0's line; w, waiting on hart 0,
    // is promoted there in place (KVM gives it the line once a leaves).
    let m = plan_migrate(&t, &l, &key("a", 0), 3).unwrap();
    apply_moves(&mut l, &[m], 0).unwrap();
    let p = plan_promotions(&t, &l, 0, 0);
    apply_moves(&mut l, &p, 0).unwrap();
    assert!(!l.settled(&t, 0), "w's line is still a's");
    match plan_evacuate(&t, &l, 2, false) {
        Err(CoreError::Refused(kind, _, _)) => assert_eq!(kind, Refusal::WouldStrand),
        other => panic!("{other:?}"),
    }
}

fn first_demoted(t: &Topology, l: &Ledger) -> VmId {
    let p = plan_place(t, l, &spec("g", 1, Class::Guaranteed)).unwrap();
    assert_eq!(p.demotions.len(), 1, "{p:#?}");
    p.demotions[0].key.vm.clone()
}

/// Two harts of one file, each held by a one-vCPU burstable VM: `old`
/// (placed first, as `first` says) and `new` (plain).
fn two_holders(first: PlaceSpec) -> (Topology, Ledger) {
    let t = Topology::uniform(2, 1, 1);
    let mut l = Ledger::new(&t);
    place_spec(&t, &mut l, &first);
    place(&t, &mut l, "new", 1, Class::Burstable);
    (t, l)
}

#[test]
fn swapping_takes_the_quietest_burstable_file_first() {
    let (t, mut l) = two_holders(spec("old", 1, Class::Burstable));
    // Nothing measured: the newest gives its file up.
    assert_eq!(first_demoted(&t, &l), id("new"));
    measured(&mut l, "new", 20_000);
    measured(&mut l, "old", 100);
    l.verify(&t).unwrap();
    assert_eq!(first_demoted(&t, &l), id("old"));
    assert_eq!(l.interrupt_rate(&key("new", 0)).unwrap(), 20_000.0);
}

#[test]
fn priority_overrides_pressure_and_pressure_comes_before_devices() {
    let (t, mut l) = two_holders(spec("old", 1, Class::Burstable).with_priority(1));
    measured(&mut l, "new", 20_000);
    assert_eq!(first_demoted(&t, &l), id("new"), "low priority goes first");
    let dev = PlaceSpec::parse("old", 1, Some(Class::Burstable), &["02:00.0".into()]).unwrap();
    let (t, mut l) = two_holders(dev);
    measured(&mut l, "new", 20_000);
    assert_eq!(
        first_demoted(&t, &l),
        id("old"),
        "a quiet device goes first"
    );
}

#[test]
fn a_hint_counts_as_pressure_until_more_is_measured() {
    let rate = crate::core::IrqRate::try_from(50_000.0).unwrap();
    let hinted = spec("old", 1, Class::Burstable)
        .with_expected_irq_rates(vec![rate])
        .unwrap();
    let (t, mut l) = two_holders(hinted);
    assert_eq!(first_demoted(&t, &l), id("new"));
    // Measured lower than its hint, it stays as busy as hinted.
    measured(&mut l, "old", 10);
    measured(&mut l, "new", 1_000);
    assert_eq!(first_demoted(&t, &l), id("new"));
}

#[test]
fn promotion_gives_a_freed_file_to_the_busiest_waiter() {
    let (t, mut l) = anti_thrash_host(0);
    assert_eq!(plan_promotions(&t, &l, 0, 0), [to_hart_0("w")]);
    measured(&mut l, "n", 20_000);
    l.verify(&t).unwrap();
    assert_eq!(plan_promotions(&t, &l, 0, 0), [to_hart_0("n")]);
    measured(&mut l, "w", 40_000);
    assert_eq!(plan_promotions(&t, &l, 0, 0), [to_hart_0("w")]);
}

#[test]
fn interrupt_rates_give_each_vcpu_its_rate_in_vcpu_order() {
    let t = Topology::uniform(2, 2, 1);
    let mut l = Ledger::new(&t);
    let rates: Vec<crate::core::IrqRate> = [10.0, 0.0, 2e4]
        .into_iter()
        .map(|r| r.try_into().unwrap())
        .collect();
    let hinted = spec("h", 3, Class::Burstable)
        .with_expected_irq_rates(rates)
        .unwrap();
    place_spec(&t, &mut l, &hinted);
    measured(&mut l, "h", 50_000);
    let vm = l.vm(&id("h")).unwrap();
    let got: Vec<f64> = l.interrupt_rates(vm).collect();
    assert_eq!(got, [50_000.0, 0.0, 20_000.0]);
    for (i, &r) in got.iter().enumerate() {
        assert_eq!(l.interrupt_rate(&key("h", i as u32)).unwrap(), r);
    }
}
