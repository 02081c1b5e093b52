use super::*;
use crate::core::request::PlaceSpec;
use crate::core::{Class, CoreError};

fn spec(vm: &str, vcpus: u32, class: Class) -> PlaceSpec {
    PlaceSpec::parse(vm, vcpus, Some(class), &[]).unwrap()
}

fn place(t: &Topology, l: &mut Ledger, vm: &str, n: u32, class: Class) -> Vec<Assignment> {
    let s = spec(vm, n, class);
    let p = plan(t, l, &s).unwrap();
    l.commit(&s, &p);
    l.verify(t).unwrap();
    p
}

fn harts(p: &[Assignment]) -> Vec<HartId> {
    p.iter().map(|a| a.hart).collect()
}

#[test]
fn guaranteed_spreads_over_distinct_harts_first() {
    let t = Topology::uniform(4, 5, 1);
    let mut l = Ledger::new(&t);
    let p = place(&t, &mut l, "a", 6, Class::Guaranteed);
    assert!(p.iter().all(|a| a.backing == Backing::VsFile));
    let mut h = harts(&p);
    h.sort();
    assert_eq!(h, [0, 0, 1, 1, 2, 3]);
}

#[test]
fn best_fit_prefers_the_fullest_hart_that_has_room() {
    let t = Topology::uniform(3, 5, 1);
    let mut l = Ledger::new(&t);
    place(&t, &mut l, "a", 3, Class::Guaranteed); // one file on each hart
    place(&t, &mut l, "b", 1, Class::Guaranteed); // hart 0: 3 free now
    let p = place(&t, &mut l, "c", 1, Class::Guaranteed);
    assert_eq!(harts(&p), [0], "fewest free first, then lowest id");
}

#[test]
fn guaranteed_refused_whole_when_files_run_out() {
    let t = Topology::uniform(2, 5, 1);
    let mut l = Ledger::new(&t);
    place(&t, &mut l, "a", 7, Class::Guaranteed);
    let before = l.clone();
    match plan(&t, &l, &spec("b", 4, Class::Guaranteed)) {
        Err(CoreError::Refused(msg)) => assert!(msg.contains("needs 4 VS-files, 3 free"), "{msg}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(l.vsfiles_used(), before.vsfiles_used());
}

#[test]
fn burstable_takes_free_files_then_mrif() {
    let t = Topology::uniform(2, 2, 1);
    let mut l = Ledger::new(&t);
    let p = place(&t, &mut l, "a", 6, Class::Burstable);
    let files = p.iter().filter(|a| a.backing == Backing::VsFile).count();
    assert_eq!(files, 4);
    assert_eq!(l.vsfiles_used(), 4);
    // MRIF vCPUs spread over the least loaded harts.
    assert_eq!(l.load(0).vcpus, 3);
    assert_eq!(l.load(1).vcpus, 3);
}

#[test]
fn best_effort_never_takes_a_file() {
    let t = Topology::uniform(2, 5, 1);
    let mut l = Ledger::new(&t);
    let p = place(&t, &mut l, "a", 4, Class::BestEffort);
    assert!(p.iter().all(|a| a.backing == Backing::Mrif));
    assert_eq!(l.vsfiles_used(), 0);
    assert_eq!(harts(&p), [0, 1, 0, 1]);
}

#[test]
fn one_numa_node_when_it_fits() {
    let t = Topology::uniform(8, 2, 2);
    let mut l = Ledger::new(&t);
    place(&t, &mut l, "a", 2, Class::Guaranteed);
    // Node 0 now has 6 free, node 1 has 8: best fit puts 5 vCPUs on node 0.
    let p = place(&t, &mut l, "b", 5, Class::Guaranteed);
    assert!(p.iter().all(|a| a.hart < 4), "{p:?}");
    // 7 fit on neither node alone (1 and 8 free): node 1 holds them.
    let p = place(&t, &mut l, "c", 7, Class::Guaranteed);
    assert!(p.iter().all(|a| a.hart >= 4), "{p:?}");
}

#[test]
fn offline_harts_get_nothing() {
    let mut t = Topology::uniform(2, 5, 1);
    t.set_online(0, false);
    let mut l = Ledger::new(&t);
    let p = place(&t, &mut l, "a", 3, Class::Burstable);
    assert!(p.iter().all(|a| a.hart == 1));
    assert!(matches!(
        plan(&t, &l, &spec("b", 3, Class::Guaranteed)),
        Err(CoreError::Refused(_))
    ));
}

#[test]
fn existing_vm_and_taken_device_are_refused() {
    let t = Topology::uniform(2, 5, 1);
    let mut l = Ledger::new(&t);
    let s = PlaceSpec::parse("a", 1, Some(Class::Burstable), &["01:00.0".into()]).unwrap();
    let p = plan(&t, &l, &s).unwrap();
    l.commit(&s, &p);
    assert!(matches!(plan(&t, &l, &s), Err(CoreError::VmExists(_))));
    let s2 = PlaceSpec::parse("b", 1, Some(Class::Burstable), &["0000:01:00.0".into()]).unwrap();
    assert!(matches!(
        plan(&t, &l, &s2),
        Err(CoreError::DeviceInUse { .. })
    ));
    l.remove(&s.vm).unwrap();
    assert!(plan(&t, &l, &s2).is_ok(), "release frees the device");
}

#[test]
fn release_makes_waiting_burstable_vcpus_pending_upgrades_in_placement_order() {
    let t = Topology::uniform(1, 2, 1);
    let mut l = Ledger::new(&t);
    place(&t, &mut l, "g", 2, Class::Guaranteed);
    place(&t, &mut l, "b1", 1, Class::Burstable);
    place(&t, &mut l, "a2", 1, Class::Burstable);
    assert!(pending_upgrades(&t, &l).is_empty());
    l.remove(&VmId::parse("g").unwrap()).unwrap();
    let up = pending_upgrades(&t, &l);
    let names: Vec<&str> = up.iter().map(|k| k.vm.as_str()).collect();
    assert_eq!(names, ["b1", "a2"], "placement order, not name order");
}

use crate::core::VmId;
