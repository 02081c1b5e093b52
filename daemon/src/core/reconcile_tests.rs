use super::*;
use crate::core::request::PlaceSpec;
use crate::core::{Class, CoreError, VmId};

use Backing::{Mrif, VsFile};
use Observed::Unknown;

/// One vCPU's place in a hand-built ledger: its hart, its backing, and
/// where KVM holds its line (line 1 of that hart).
type Vcpu = (HartId, Backing, Option<HartId>);

/// Adds a VM whose vCPUs are exactly as given; `allowed` empty: any hart.
fn add(l: &mut Ledger, vm: &str, class: Class, allowed: &[HartId], vcpus: &[Vcpu]) {
    let spec = PlaceSpec::parse(vm, vcpus.len() as u32, Some(class), &[])
        .unwrap()
        .with_harts(allowed);
    let plan: Vec<(HartId, Backing)> = vcpus.iter().map(|&(h, b, _)| (h, b)).collect();
    l.insert(&spec, &plan, false, 0);
    for (i, &(_, _, held)) in vcpus.iter().enumerate() {
        l.observed(&key(vm, i as u32), held, held.map(|_| 1))
            .unwrap();
    }
}

fn key(vm: &str, vcpu: u32) -> VcpuKey {
    VcpuKey {
        vm: VmId::parse(vm).unwrap(),
        vcpu,
    }
}

fn vs(hart: HartId, line: u8) -> Observed {
    Observed::VsFile { hart, line }
}

fn mrif(hart: HartId) -> Observed {
    Observed::Mrif { hart }
}

/// What the host shows: as the ledger predicts, except where `seen` says.
fn seen_as_predicted(l: &Ledger, seen: &[(&str, u32, Observed)]) -> Vec<(VcpuKey, Observed)> {
    l.vms()
        .flat_map(|vm| {
            vm.vcpus.iter().enumerate().map(|(i, v)| {
                let key = VcpuKey {
                    vm: vm.id.clone(),
                    vcpu: i as u32,
                };
                let predicted = match v.held_on {
                    Some(h) => vs(h, 1),
                    None if v.backing == Mrif => mrif(v.hart),
                    None => Unknown,
                };
                let shown = seen
                    .iter()
                    .find(|(vm, vcpu, _)| key == self::key(vm, *vcpu))
                    .map_or(predicted, |s| s.2);
                (key, shown)
            })
        })
        .collect()
}

/// Reconciles, checks the result applies cleanly, and returns both.
fn run(t: &Topology, l: &Ledger, seen: &[(&str, u32, Observed)]) -> (Reconciliation, Ledger) {
    let seen = seen_as_predicted(l, seen);
    let r = reconcile(t, l, &seen, &HashSet::new(), 7);
    let mut after = l.clone();
    apply(&mut after, &r.changes, 7).unwrap();
    after.verify(t).unwrap();
    (r, after)
}

fn vcpu<'a>(l: &'a Ledger, vm: &str, i: u32) -> &'a crate::core::ledger::VcpuRecord {
    l.vcpu(&key(vm, i)).unwrap()
}

#[test]
fn nothing_changes_where_the_host_shows_what_the_ledger_predicts() {
    let t = Topology::uniform(2, 1, 1);
    let mut l = Ledger::new(&t);
    add(
        &mut l,
        "a",
        Class::Burstable,
        &[],
        &[(0, VsFile, Some(0)), (1, Mrif, None)],
    );
    add(&mut l, "g", Class::Guaranteed, &[], &[(1, VsFile, Some(1))]);
    let (r, _) = run(&t, &l, &[]);
    assert_eq!(r, Reconciliation::default());
    assert!(r.is_empty());
    assert!(!r.settles_again());
}

#[test]
fn a_line_still_held_where_the_vcpu_moved_from_is_recorded_without_its_number() {
    let t = Topology::uniform(2, 1, 1);
    let mut l = Ledger::new(&t);
    add(&mut l, "a", Class::Burstable, &[], &[(1, Mrif, None)]);
    let (r, after) = run(&t, &l, &[("a", 0, vs(0, 1))]);
    let change = Change::Observed {
        key: key("a", 0),
        held_on: Some(0),
        line: None,
    };
    assert_eq!(r.changes, [change]);
    assert_eq!(r.corrections(), 0);
    assert!(r.settles_again());
    assert_eq!(after.load(0).releasing, 1);
}

#[test]
fn two_auto_vcpus_racing_for_a_line_move_the_promise_to_the_winner() {
    let t = Topology::uniform(1, 1, 1);
    let mut l = Ledger::new(&t);
    // The ledger promised the line to vCPU 0; vCPU 1 entered first.
    add(
        &mut l,
        "a",
        Class::Burstable,
        &[],
        &[(0, VsFile, None), (0, Mrif, None)],
    );
    let (r, after) = run(&t, &l, &[("a", 0, mrif(0)), ("a", 1, vs(0, 1))]);
    let race = Change::RaceWon {
        winner: key("a", 1),
        loser: key("a", 0),
        hart: 0,
        line: 1,
    };
    assert_eq!(r.changes, [race]);
    assert!(!r.is_empty());
    assert_eq!(r.corrections(), 0, "a race is no misprediction");
    assert_eq!((r.entry_failures(), r.stranded()), (0, 0));
    assert_eq!(vcpu(&after, "a", 0).backing, Mrif);
    let winner = vcpu(&after, "a", 1);
    assert_eq!(
        (winner.backing, winner.held_on, winner.line),
        (VsFile, Some(0), Some(1))
    );
}

#[test]
fn a_race_pairs_the_winner_with_a_loser_on_its_own_hart() {
    let t = Topology::uniform(2, 1, 1);
    let mut l = Ledger::new(&t);
    add(
        &mut l,
        "a",
        Class::Burstable,
        &[],
        &[(0, VsFile, None), (1, VsFile, None), (1, Mrif, None)],
    );
    let seen = [("a", 0, mrif(0)), ("a", 1, mrif(1)), ("a", 2, vs(1, 1))];
    let (r, _) = run(&t, &l, &seen);
    let race = Change::RaceWon {
        winner: key("a", 2),
        loser: key("a", 1),
        hart: 1,
        line: 1,
    };
    assert_eq!(r.changes, [race]);
}

#[test]
fn a_line_kvm_gave_that_nobody_lost_is_a_correction() {
    // b holds line 1; with a on line 2 the hart's two lines are used.
    let t = Topology::uniform(1, 2, 1);
    let mut l = Ledger::new(&t);
    add(&mut l, "b", Class::Burstable, &[], &[(0, VsFile, Some(0))]);
    add(&mut l, "a", Class::Burstable, &[], &[(0, Mrif, None)]);
    let (r, after) = run(&t, &l, &[("a", 0, vs(0, 2))]);
    let change = Change::UnexpectedFile {
        key: key("a", 0),
        hart: 0,
        line: 2,
    };
    assert_eq!(r.changes, [change]);
    assert_eq!(r.corrections(), 1);
    let a = vcpu(&after, "a", 0);
    assert_eq!((a.backing, a.held_on, a.line), (VsFile, Some(0), Some(2)));
}

#[test]
fn an_auto_vcpu_left_on_mrif_where_every_line_is_held_is_a_correction() {
    let t = Topology::uniform(2, 1, 1);
    let mut l = Ledger::new(&t);
    // b moved to hart 1 but KVM still holds its line on hart 0.
    add(&mut l, "b", Class::Burstable, &[], &[(1, Mrif, Some(0))]);
    add(&mut l, "a", Class::Burstable, &[], &[(0, VsFile, None)]);
    let (r, after) = run(&t, &l, &[("a", 0, mrif(0))]);
    let change = Change::LeftOnMrif {
        key: key("a", 0),
        hart: 0,
    };
    assert_eq!(r.changes, [change]);
    assert_eq!(r.corrections(), 1);
    assert_eq!(vcpu(&after, "a", 0).backing, Mrif);
}

#[test]
fn an_auto_vcpu_on_mrif_where_a_line_is_still_free_just_has_not_entered() {
    // c, waiting on hart 1, got its line there: that does not fill hart 0.
    let t = Topology::uniform(2, 1, 1);
    let mut l = Ledger::new(&t);
    add(&mut l, "a", Class::Burstable, &[], &[(0, VsFile, None)]);
    add(&mut l, "c", Class::Burstable, &[], &[(1, Mrif, None)]);
    let (r, _) = run(&t, &l, &[("a", 0, mrif(0)), ("c", 0, vs(1, 1))]);
    let got = Change::UnexpectedFile {
        key: key("c", 0),
        hart: 1,
        line: 1,
    };
    assert_eq!(r.changes, [got]);
}

#[test]
fn over_commit_sends_a_burstable_promised_but_not_holding_back_to_mrif() {
    let t = Topology::uniform(1, 1, 1);
    let mut l = Ledger::new(&t);
    // The line was b's; a, waiting, entered first and took it.
    add(&mut l, "a", Class::Burstable, &[], &[(0, Mrif, None)]);
    add(&mut l, "b", Class::Burstable, &[], &[(0, VsFile, None)]);
    let (r, after) = run(&t, &l, &[("a", 0, vs(0, 1)), ("b", 0, Unknown)]);
    let got = Change::UnexpectedFile {
        key: key("a", 0),
        hart: 0,
        line: 1,
    };
    let voided = Change::PromiseVoided {
        key: key("b", 0),
        hart: 0,
    };
    assert_eq!(r.changes, [got, voided]);
    assert_eq!(r.corrections(), 2);
    assert_eq!(r.pins().count(), 0);
    assert_eq!(vcpu(&after, "a", 0).backing, VsFile);
    assert_eq!(vcpu(&after, "b", 0).backing, Mrif);
}

/// Hart 0's one line was promised to guaranteed g, but KVM gave it to
/// burstable a (which may use only `a_may`; g only `g_may`); `others` are
/// one-vCPU VMs elsewhere.
fn lost_to_an_auto_vcpu(
    harts: u32,
    a_may: &[HartId],
    g_may: &[HartId],
    others: &[(&str, Class, Vcpu)],
) -> (Topology, Ledger) {
    let t = Topology::uniform(harts, 1, 1);
    let mut l = Ledger::new(&t);
    add(&mut l, "g", Class::Guaranteed, g_may, &[(0, VsFile, None)]);
    add(
        &mut l,
        "a",
        Class::Burstable,
        a_may,
        &[(0, VsFile, Some(0))],
    );
    for &(vm, class, v) in others {
        add(&mut l, vm, class, &[], &[v]);
    }
    (t, l)
}

#[test]
fn over_commit_moves_a_holding_burstable_to_the_least_loaded_safe_hart() {
    // Hart 1 holds c's line but also runs c's waiter; hart 2 holds d's
    // line alone; hart 3 has a free line (not safe to wait on).
    let (t, l) = lost_to_an_auto_vcpu(
        4,
        &[],
        &[],
        &[
            ("c", Class::Burstable, (1, VsFile, Some(1))),
            ("w", Class::Burstable, (1, Mrif, None)),
            ("d", Class::Guaranteed, (2, VsFile, Some(2))),
        ],
    );
    let (r, after) = run(&t, &l, &[]);
    let moved = Move {
        key: key("a", 0),
        from: 0,
        to: 2,
        backing: Mrif,
    };
    assert_eq!(r.changes, [Change::MovedAway(moved.clone())]);
    assert_eq!(r.corrections(), 1);
    assert_eq!(r.pins().collect::<Vec<_>>(), [&moved]);
    let a = vcpu(&after, "a", 0);
    assert_eq!((a.hart, a.backing, a.held_on), (2, Mrif, Some(0)));
}

#[test]
fn over_commit_moves_a_holding_burstable_only_where_it_may_run() {
    let (t, l) = lost_to_an_auto_vcpu(
        3,
        &[0, 2],
        &[],
        &[
            ("c", Class::Burstable, (1, VsFile, Some(1))),
            ("d", Class::Burstable, (2, VsFile, Some(2))),
            ("w", Class::Burstable, (2, Mrif, None)),
        ],
    );
    let (r, _) = run(&t, &l, &[]);
    let moved = Move {
        key: key("a", 0),
        from: 0,
        to: 2,
        backing: Mrif,
    };
    assert_eq!(r.changes, [Change::MovedAway(moved)]);
}

#[test]
fn a_guaranteed_vcpu_that_lost_its_line_moves_to_a_free_file_it_may_use() {
    // a may not leave hart 0; harts 1 and 2 are free, g may use only 0, 2.
    let (t, l) = lost_to_an_auto_vcpu(3, &[0], &[0, 2], &[]);
    let (r, after) = run(&t, &l, &[]);
    let stuck = Change::NowhereToGo {
        key: key("a", 0),
        hart: 0,
    };
    let rehomed = Move {
        key: key("g", 0),
        from: 0,
        to: 2,
        backing: VsFile,
    };
    assert_eq!(r.changes, [stuck, Change::Rehomed(rehomed.clone())]);
    assert_eq!(r.corrections(), 2);
    assert_eq!(r.stranded(), 0);
    assert_eq!(r.pins().collect::<Vec<_>>(), [&rehomed]);
    assert_eq!(vcpu(&after, "g", 0).hart, 2);
    assert!(!after.vm(&VmId::parse("g").unwrap()).unwrap().failed);
}

#[test]
fn a_guaranteed_vcpu_takes_the_lowest_free_hart() {
    let (t, l) = lost_to_an_auto_vcpu(3, &[0], &[], &[]);
    let (r, _) = run(&t, &l, &[]);
    assert_eq!(r.pins().map(|m| m.to).collect::<Vec<_>>(), [1]);
}

#[test]
fn a_guaranteed_vcpu_with_no_free_file_left_fails_its_vm() {
    let (t, l) = lost_to_an_auto_vcpu(
        2,
        &[0],
        &[],
        &[("h", Class::Guaranteed, (1, VsFile, Some(1)))],
    );
    let (r, after) = run(&t, &l, &[]);
    let stuck = Change::NowhereToGo {
        key: key("a", 0),
        hart: 0,
    };
    let stranded = Change::Stranded {
        key: key("g", 0),
        hart: 0,
    };
    assert_eq!(r.changes, [stuck, stranded]);
    assert_eq!((r.corrections(), r.stranded()), (2, 1));
    assert_eq!(r.pins().count(), 0);
    assert!(after.vm(&VmId::parse("g").unwrap()).unwrap().failed);
    assert_eq!(after.load(0).vsfiles_used, 1, "only a's line counts");
}

#[test]
fn a_failed_hwaccel_entry_fails_the_vm_once() {
    let t = Topology::uniform(1, 1, 1);
    let mut l = Ledger::new(&t);
    add(&mut l, "g", Class::Guaranteed, &[], &[(0, VsFile, None)]);
    let seen = seen_as_predicted(&l, &[("g", 0, Observed::EntryFailed { hart: 0 })]);
    let r = reconcile(&t, &l, &seen, &HashSet::new(), 0);
    let failed = Change::EntryFailed {
        key: key("g", 0),
        hart: 0,
    };
    assert_eq!(r.changes, [failed]);
    assert_eq!((r.entry_failures(), r.corrections()), (1, 0));
    assert!(
        !r.settles_again(),
        "as before: a failed entry alone ends settling"
    );
    let mut after = l.clone();
    apply(&mut after, &r.changes, 0).unwrap();
    assert!(after.vm(&VmId::parse("g").unwrap()).unwrap().failed);
    let again = reconcile(&t, &after, &seen, &HashSet::from([key("g", 0)]), 0);
    assert_eq!(again, Reconciliation::default());
}

#[test]
fn apply_applies_every_change_and_returns_the_first_error() {
    let t = Topology::uniform(1, 2, 1);
    let mut l = Ledger::new(&t);
    add(&mut l, "a", Class::Burstable, &[], &[(0, Mrif, None)]);
    let missing = Change::LeftOnMrif {
        key: key("gone", 0),
        hart: 0,
    };
    let past_end = Change::PromiseVoided {
        key: key("a", 5),
        hart: 0,
    };
    let got = Change::UnexpectedFile {
        key: key("a", 0),
        hart: 0,
        line: 2,
    };
    let r = apply(&mut l, &[missing, past_end, got], 0);
    assert_eq!(r, Err(CoreError::VmNotFound(VmId::parse("gone").unwrap())));
    assert_eq!(vcpu(&l, "a", 0).backing, VsFile, "the rest still applied");
}

#[test]
fn only_a_guaranteed_vcpu_pinned_to_the_hart_without_its_line_is_rehomed() {
    // w waits on hart 0 (placed first); g's vCPU 0 holds its line on hart
    // 1; only g's vCPU 1 lost its line on hart 0 to a.
    let t = Topology::uniform(3, 1, 1);
    let mut l = Ledger::new(&t);
    add(&mut l, "w", Class::Burstable, &[], &[(0, Mrif, None)]);
    add(
        &mut l,
        "g",
        Class::Guaranteed,
        &[],
        &[(1, VsFile, Some(1)), (0, VsFile, None)],
    );
    add(&mut l, "a", Class::Burstable, &[0], &[(0, VsFile, Some(0))]);
    let (r, _) = run(&t, &l, &[]);
    let rehomed = Move {
        key: key("g", 1),
        from: 0,
        to: 2,
        backing: VsFile,
    };
    assert_eq!(r.pins().collect::<Vec<_>>(), [&rehomed]);
}

mod only_news {
    use super::*;
    use proptest::prelude::*;

    fn backing() -> impl Strategy<Value = Backing> {
        prop_oneof![Just(VsFile), Just(Mrif)]
    }

    fn observed() -> impl Strategy<Value = Observed> {
        prop_oneof![
            Just(Unknown),
            (0..3u32, 1..3u8).prop_map(|(hart, line)| vs(hart, line)),
            (0..3u32).prop_map(mrif),
            (0..3u32).prop_map(|hart| Observed::EntryFailed { hart }),
        ]
    }

    /// Per VM: its class and per vCPU (hart, backing, held on), with what
    /// the host shows of it.
    type Vm = (usize, Vec<((HartId, Backing, Option<HartId>), Observed)>);

    fn vms() -> impl Strategy<Value = Vec<Vm>> {
        let vcpu = (
            (0..3u32, backing(), proptest::option::of(0..3u32)),
            observed(),
        );
        proptest::collection::vec((0..3usize, proptest::collection::vec(vcpu, 1..4)), 1..4)
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2000, rng_seed: proptest::test_runner::RngSeed::Fixed(0x6e5), failure_persistence: None, ..ProptestConfig::default() })]

        /// The engine passes `reconcile` only what `news` says is news:
        /// the decisions must be those of every observation (what is not
        /// news neither decides anything nor weighs in races or overcommit).
        #[test]
        fn leaving_out_what_is_not_news_decides_the_same(vms in vms(), failed_mask in any::<u16>()) {
            let classes = [Class::Guaranteed, Class::Burstable, Class::BestEffort];
            let t = Topology::uniform(3, 2, 1);
            let mut l = Ledger::new(&t);
            let mut seen = Vec::new();
            for (i, (class, vcpus)) in vms.iter().enumerate() {
                let name = format!("vm{i}");
                let shape: Vec<Vcpu> = vcpus.iter().map(|(v, _)| *v).collect();
                add(&mut l, &name, classes[*class], &[], &shape);
                for (j, (_, o)) in vcpus.iter().enumerate() {
                    seen.push((key(&name, j as u32), *o));
                }
            }
            let failed: HashSet<VcpuKey> = seen
                .iter()
                .enumerate()
                .filter(|(n, _)| failed_mask & (1 << (n % 16)) != 0)
                .map(|(_, (k, _))| k.clone())
                .collect();
            let news: Vec<(VcpuKey, Observed)> = seen
                .iter()
                .filter(|(k, o)| {
                    let vm = l.vm(&k.vm).unwrap();
                    let rec = &vm.vcpus[k.vcpu as usize];
                    super::super::news(rec, vm.class, *o, || failed.contains(k)).is_some()
                })
                .cloned()
                .collect();
            let all = reconcile(&t, &l, &seen, &failed, 5);
            let only = reconcile(&t, &l, &news, &failed, 5);
            prop_assert_eq!(all.changes, only.changes);
        }
    }
}
