//! The ledger's own rules: which harts take new vCPUs, what counts as a
//! line being released, and that `verify` rejects every broken invariant.

use super::*;
use crate::core::test_support::spec;

fn key(vm: &str, vcpu: u32) -> VcpuKey {
    VcpuKey {
        vm: VmId::parse(vm).unwrap(),
        vcpu,
    }
}

/// Records a VM exactly where `plan` says, bypassing policy.
fn record(l: &mut Ledger, s: &PlaceSpec, plan: &[(HartId, Backing)]) {
    l.insert(s, plan, false, 0);
}

#[test]
fn drained_offline_and_unknown_harts_are_not_eligible_and_have_no_free_file() {
    let mut t = Topology::uniform(3, 2, 1);
    t.set_online(2, false);
    let mut l = Ledger::new(&t);
    l.set_drained(1, true);
    assert!(l.eligible(&t, 0));
    assert!(!l.eligible(&t, 1), "drained");
    assert!(!l.eligible(&t, 2), "offline");
    assert!(!l.eligible(&t, 3), "no such hart");
    assert_eq!([l.free(&t, 0), l.free(&t, 1), l.free(&t, 2)], [2, 0, 0]);
}

#[test]
fn a_vcpu_moved_away_keeps_its_old_line_releasing_until_it_enters() {
    let t = Topology::uniform(2, 2, 1);
    let mut l = Ledger::new(&t);
    record(
        &mut l,
        &spec("b", 1, Class::Burstable),
        &[(0, Backing::VsFile)],
    );
    l.observed(&key("b", 0), Some(0), Some(1)).unwrap();
    assert_eq!(l.load(0).releasing, 0, "held where it is meant to be");
    l.move_vcpu(&key("b", 0), 1, Backing::VsFile, 5, true)
        .unwrap();
    assert_eq!(l.load(0).releasing, 1);
    assert_eq!(l.free(&t, 0), 1, "the old line is not free yet");
    assert_eq!(l.free(&t, 1), 1);
    l.observed(&key("b", 0), Some(1), Some(1)).unwrap();
    assert_eq!(l.load(0).releasing, 0);
    assert_eq!(l.free(&t, 0), 2);
    l.verify(&t).unwrap();
}

#[test]
fn a_vcpu_demoted_in_place_releases_the_line_it_still_holds() {
    let t = Topology::uniform(1, 2, 1);
    let mut l = Ledger::new(&t);
    record(
        &mut l,
        &spec("b", 1, Class::Burstable),
        &[(0, Backing::VsFile)],
    );
    l.observed(&key("b", 0), Some(0), Some(1)).unwrap();
    l.set_backing(&key("b", 0), Backing::Mrif, 5).unwrap();
    assert_eq!(l.load(0).releasing, 1);
    assert_eq!(l.free(&t, 0), 1, "KVM still holds the demoted vCPU's line");
    l.verify(&t).unwrap();
}

#[test]
fn verify_rejects_counts_that_differ_from_the_records() {
    let t = Topology::uniform(2, 2, 1);
    let mut l = Ledger::new(&t);
    record(
        &mut l,
        &spec("g", 1, Class::Guaranteed),
        &[(0, Backing::VsFile)],
    );
    l.verify(&t).unwrap();
    l.load[0].vcpus += 1;
    assert!(l.verify(&t).unwrap_err().contains("per-hart counts"));
}

#[test]
fn verify_rejects_a_promotion_order_that_differs_from_the_records() {
    let t = Topology::uniform(1, 1, 1);
    let mut l = Ledger::new(&t);
    record(
        &mut l,
        &spec("w", 1, Class::Burstable),
        &[(0, Backing::Mrif)],
    );
    l.verify(&t).unwrap();
    l.waiting.clear();
    assert!(l.verify(&t).unwrap_err().contains("promotion or demotion"));
}

#[test]
fn verify_rejects_a_demotion_order_that_differs_from_the_records() {
    let t = Topology::uniform(1, 1, 1);
    let mut l = Ledger::new(&t);
    record(
        &mut l,
        &spec("v", 1, Class::Burstable),
        &[(0, Backing::VsFile)],
    );
    l.verify(&t).unwrap();
    l.victims.clear();
    assert!(l.verify(&t).unwrap_err().contains("promotion or demotion"));
}

#[test]
fn verify_accepts_a_full_hart_and_rejects_one_placed_over_its_files() {
    let t = Topology::uniform(2, 2, 1);
    let mut l = Ledger::new(&t);
    let full = [(0, Backing::VsFile), (0, Backing::VsFile)];
    record(&mut l, &spec("a", 2, Class::Guaranteed), &full);
    l.verify(&t).unwrap();
    record(
        &mut l,
        &spec("b", 1, Class::Guaranteed),
        &[(0, Backing::VsFile)],
    );
    let err = l.verify(&t).unwrap_err();
    assert!(err.contains("hart 0: 3 VS-files placed"), "{err}");
}

#[test]
fn verify_rejects_a_hart_where_kvm_holds_more_lines_than_it_has() {
    let t = Topology::uniform(2, 1, 1);
    let mut l = Ledger::new(&t);
    let plan = [(0, Backing::VsFile), (1, Backing::VsFile)];
    record(&mut l, &spec("a", 2, Class::Guaranteed), &plan);
    l.observed(&key("a", 0), Some(0), Some(1)).unwrap();
    l.verify(&t).unwrap();
    // vCPU 1 still holds a line on hart 0 from before it moved.
    l.observed(&key("a", 1), Some(0), Some(1)).unwrap();
    let err = l.verify(&t).unwrap_err();
    assert!(err.contains("2 held, of 1"), "{err}");
}

#[test]
fn verify_rejects_a_guaranteed_vcpu_outside_its_harts_while_one_can_take_it() {
    let t = Topology::uniform(2, 2, 1);
    let mut l = Ledger::new(&t);
    let g = spec("g", 1, Class::Guaranteed).with_harts(&[1]);
    record(&mut l, &g, &[(0, Backing::VsFile)]);
    let err = l.verify(&t).unwrap_err();
    assert!(err.contains("may not use"), "{err}");
    // Once its only hart is drained, Linux's widened affinity is expected.
    l.set_drained(1, true);
    l.verify(&t).unwrap();
}

#[test]
fn verify_lets_burstable_vcpus_run_outside_their_harts() {
    let t = Topology::uniform(2, 2, 1);
    let mut l = Ledger::new(&t);
    let b = spec("b", 1, Class::Burstable).with_harts(&[1]);
    record(&mut l, &b, &[(0, Backing::VsFile)]);
    l.verify(&t).unwrap();
}

#[test]
fn verify_rejects_a_live_guaranteed_vcpu_on_mrif_but_not_a_failed_one() {
    let t = Topology::uniform(1, 1, 1);
    let mut l = Ledger::new(&t);
    record(
        &mut l,
        &spec("g", 1, Class::Guaranteed),
        &[(0, Backing::Mrif)],
    );
    let err = l.verify(&t).unwrap_err();
    assert!(err.contains("is on MRIF"), "{err}");
    l.set_failed(&VmId::parse("g").unwrap());
    l.verify(&t).unwrap();
}

#[test]
fn verify_rejects_a_best_effort_vcpu_on_a_vsfile() {
    let t = Topology::uniform(1, 1, 1);
    let mut l = Ledger::new(&t);
    record(
        &mut l,
        &spec("e", 1, Class::BestEffort),
        &[(0, Backing::VsFile)],
    );
    let err = l.verify(&t).unwrap_err();
    assert!(err.contains("holds a VS-file"), "{err}");
}

#[test]
fn demotion_starts_the_wait_and_later_moves_keep_it() {
    let t = Topology::uniform(2, 1, 1);
    let mut l = Ledger::new(&t);
    record(
        &mut l,
        &spec("b", 1, Class::Burstable),
        &[(0, Backing::VsFile)],
    );
    l.move_vcpu(&key("b", 0), 1, Backing::Mrif, 9, true)
        .unwrap();
    assert_eq!(l.vcpu(&key("b", 0)).unwrap().waiting_since, 9);
    l.move_vcpu(&key("b", 0), 0, Backing::Mrif, 12, true)
        .unwrap();
    assert_eq!(l.vcpu(&key("b", 0)).unwrap().waiting_since, 9);
}

#[test]
fn only_a_policy_move_to_another_hart_is_stamped() {
    let t = Topology::uniform(2, 1, 1);
    let mut l = Ledger::new(&t);
    record(
        &mut l,
        &spec("b", 1, Class::Burstable),
        &[(0, Backing::VsFile)],
    );
    l.move_vcpu(&key("b", 0), 0, Backing::Mrif, 3, true)
        .unwrap();
    assert_eq!(l.vcpu(&key("b", 0)).unwrap().moved_at, None, "same hart");
    l.move_vcpu(&key("b", 0), 1, Backing::Mrif, 4, false)
        .unwrap();
    assert_eq!(l.vcpu(&key("b", 0)).unwrap().moved_at, None, "not policy's");
    l.move_vcpu(&key("b", 0), 0, Backing::Mrif, 5, true)
        .unwrap();
    assert_eq!(l.vcpu(&key("b", 0)).unwrap().moved_at, Some(5));
}

#[test]
fn a_vcpu_keeps_its_line_number_only_while_it_stays_on_a_vsfile_there() {
    let t = Topology::uniform(2, 2, 1);
    let mut l = Ledger::new(&t);
    let plan = [(0, Backing::VsFile), (0, Backing::VsFile)];
    record(&mut l, &spec("b", 2, Class::Burstable), &plan);
    for v in 0..2 {
        l.observed(&key("b", v), Some(0), Some(v as u8 + 1))
            .unwrap();
    }
    l.set_backing(&key("b", 0), Backing::VsFile, 1).unwrap();
    assert_eq!(l.vcpu(&key("b", 0)).unwrap().line, Some(1), "unchanged");
    l.set_backing(&key("b", 0), Backing::Mrif, 1).unwrap();
    assert_eq!(l.vcpu(&key("b", 0)).unwrap().line, None, "demoted");
    l.move_vcpu(&key("b", 1), 1, Backing::VsFile, 1, true)
        .unwrap();
    assert_eq!(l.vcpu(&key("b", 1)).unwrap().line, None, "moved");
}

#[test]
fn an_observed_line_is_recorded_only_where_the_vcpu_is_meant_to_be() {
    let t = Topology::uniform(2, 2, 1);
    let mut l = Ledger::new(&t);
    record(
        &mut l,
        &spec("b", 1, Class::Burstable),
        &[(0, Backing::VsFile)],
    );
    l.observed(&key("b", 0), Some(1), Some(2)).unwrap();
    assert_eq!(l.vcpu(&key("b", 0)).unwrap().line, None, "held elsewhere");
    l.observed(&key("b", 0), Some(0), Some(2)).unwrap();
    assert_eq!(l.vcpu(&key("b", 0)).unwrap().line, Some(2));
}

#[test]
fn lines_left_behind_by_a_vcpu_on_an_offline_hart_are_stuck() {
    let t = Topology::uniform(2, 1, 1);
    let mut l = Ledger::new(&t);
    record(
        &mut l,
        &spec("b", 1, Class::Burstable),
        &[(1, Backing::VsFile)],
    );
    // It still holds hart 0's line: it has not entered on hart 1 yet.
    l.observed(&key("b", 0), Some(0), None).unwrap();
    assert_eq!((l.load(0).releasing, l.load(0).stuck), (1, 0));
    l.set_offline(1, true);
    assert!(l.is_offline(1) && !l.is_offline(0));
    assert_eq!((l.load(0).releasing, l.load(0).stuck), (1, 1));
    l.verify(&t).unwrap();
    l.set_offline(1, false);
    assert!(!l.is_offline(1));
    assert_eq!(l.load(0).stuck, 0);
}

#[test]
fn a_stopped_vms_held_lines_are_stuck_and_no_longer_reserved() {
    let t = Topology::uniform(1, 1, 1);
    let mut l = Ledger::new(&t);
    record(
        &mut l,
        &spec("g", 1, Class::Guaranteed),
        &[(0, Backing::VsFile)],
    );
    l.observed(&key("g", 0), Some(0), Some(1)).unwrap();
    l.set_failed(&VmId::parse("g").unwrap());
    let load = l.load(0);
    assert_eq!((load.vsfiles_used, load.releasing, load.stuck), (0, 1, 1));
    l.verify(&t).unwrap();
}

#[test]
fn a_hart_that_lost_its_lines_holds_none() {
    let t = Topology::uniform(2, 1, 1);
    let mut l = Ledger::new(&t);
    let plan = [(0, Backing::VsFile), (1, Backing::VsFile)];
    record(&mut l, &spec("g", 2, Class::Guaranteed), &plan);
    l.observed(&key("g", 0), Some(0), Some(1)).unwrap();
    l.observed(&key("g", 1), Some(1), Some(1)).unwrap();
    l.hart_lost_lines(1);
    let v = l.vcpu(&key("g", 1)).unwrap();
    assert_eq!((v.held_on, v.line), (None, None));
    assert_eq!(l.vcpu(&key("g", 0)).unwrap().held_on, Some(0), "other hart");
    assert_eq!((l.load(0).held, l.load(1).held), (1, 0));
    l.verify(&t).unwrap();
}

#[test]
fn a_known_vm_id_or_a_device_in_use_is_not_admissible() {
    let t = Topology::uniform(1, 1, 1);
    let mut l = Ledger::new(&t);
    let dev = |vm| PlaceSpec::parse(vm, 1, Some(Class::Burstable), &["01:00.0".into()]).unwrap();
    assert!(l.check_admissible(&dev("a")).is_ok());
    record(&mut l, &dev("a"), &[(0, Backing::VsFile)]);
    assert!(matches!(
        l.check_admissible(&dev("a")),
        Err(CoreError::VmExists(_))
    ));
    assert!(matches!(
        l.check_admissible(&dev("b")),
        Err(CoreError::DeviceInUse { .. })
    ));
    l.remove(&VmId::parse("a").unwrap()).unwrap();
    assert!(
        l.check_admissible(&dev("b")).is_ok(),
        "released with its VM"
    );
}

#[test]
fn a_pending_vm_promises_the_lines_of_its_vsfile_vcpus_until_they_hold_them() {
    let t = Topology::uniform(2, 1, 1);
    let mut l = Ledger::new(&t);
    let plan = [(0, Backing::VsFile), (1, Backing::Mrif)];
    record(&mut l, &spec("p", 2, Class::Burstable), &plan);
    assert_eq!(l.promised_to_pending(), [false, false], "not pending");
    l.set_pending(&VmId::parse("p").unwrap(), true);
    assert_eq!(l.promised_to_pending(), [true, false]);
    l.observed(&key("p", 0), Some(0), Some(1)).unwrap();
    assert_eq!(l.promised_to_pending(), [false, false], "held now");
}
