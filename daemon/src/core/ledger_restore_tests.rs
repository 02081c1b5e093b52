use super::*;
use crate::core::policy::{apply_placement, plan_place};
use crate::core::request::PlaceSpec;
use crate::core::{Class, IrqRate, VmId};

fn place(t: &Topology, l: &mut Ledger, vm: &str, n: u32, class: Class, devices: &[&str]) {
    let devices: Vec<String> = devices.iter().map(|d| d.to_string()).collect();
    let s = PlaceSpec::parse(vm, n, Some(class), &devices).unwrap();
    let p = plan_place(t, l, &s).unwrap();
    apply_placement(l, &s, &p, 0).unwrap();
}

fn place_hinted(t: &Topology, l: &mut Ledger, vm: &str, class: Class, rates: Vec<IrqRate>) {
    let n = rates.len() as u32;
    let s = PlaceSpec::parse(vm, n, Some(class), &[])
        .unwrap()
        .with_expected_irq_rates(rates)
        .unwrap();
    let p = plan_place(t, l, &s).unwrap();
    apply_placement(l, &s, &p, 0).unwrap();
}

fn id(s: &str) -> VmId {
    VmId::parse(s).unwrap()
}

fn ids(vms: &[VmRecord]) -> Vec<String> {
    vms.iter().map(|v| v.id.to_string()).collect()
}

#[test]
fn a_saved_ledger_comes_back_whole_with_its_indexes() {
    let t = Topology::uniform(4, 3, 1);
    let mut l = Ledger::new(&t);
    place(&t, &mut l, "g", 4, Class::Guaranteed, &["0000:01:00.0"]);
    place(&t, &mut l, "b", 6, Class::Burstable, &[]);
    place(&t, &mut l, "e", 2, Class::BestEffort, &[]);
    l.set_drained(3, true);
    let saved = l.save();
    // Through JSON, as the state file carries it.
    let saved: SavedLedger = serde_json::from_str(&serde_json::to_string(&saved).unwrap()).unwrap();
    let (back, left_out) = Ledger::restore(&t, saved);
    assert!(left_out.is_empty());
    back.verify(&t).unwrap();
    assert_eq!(back.save(), l.save());
    for h in 0..4 {
        assert_eq!(back.load(h), l.load(h), "hart {h}");
    }
    assert!(back.is_drained(3));
    assert_eq!(back.victims().count(), l.victims().count());
    // Numbering goes on where it stopped: a new VM enters after the old ones.
    let mut back = back;
    place(&t, &mut back, "n", 1, Class::BestEffort, &[]);
    assert!(back.vm(&id("n")).unwrap().seq > back.vm(&id("e")).unwrap().seq);
}

#[test]
fn vms_on_a_vanished_hart_are_handed_back_and_the_rest_stays() {
    let big = Topology::uniform(4, 2, 1);
    let mut l = Ledger::new(&big);
    place(&big, &mut l, "a", 4, Class::Guaranteed, &[]); // one per hart
    let mut saved = l.save();
    // Another VM, pinned only to harts 0 and 1.
    saved.vms.push(VmRecord {
        id: id("low"),
        seq: saved.next_seq,
        vcpus: vec![saved.vms[0].vcpus[0].clone(); 1],
        ..saved.vms[0].clone()
    });
    saved.vms[1].vcpus[0].hart = 0;
    saved.next_seq += 1;
    let small = Topology::uniform(2, 2, 1);
    let (back, left_out) = Ledger::restore(&small, saved);
    assert_eq!(ids(&left_out), ["a"]);
    assert!(back.vm(&id("low")).is_some());
    back.verify(&small).unwrap();
}

#[test]
fn a_hart_whose_files_shrank_gives_up_its_newest_vms_until_it_fits() {
    let t = Topology::uniform(1, 4, 1);
    let mut l = Ledger::new(&t);
    place(&t, &mut l, "old", 2, Class::Guaranteed, &[]);
    place(&t, &mut l, "mid", 1, Class::Guaranteed, &[]);
    place(&t, &mut l, "new", 1, Class::Guaranteed, &[]);
    let fewer = Topology::uniform(1, 2, 1);
    let (back, left_out) = Ledger::restore(&fewer, l.save());
    assert_eq!(ids(&left_out), ["new", "mid"]);
    assert_eq!(back.load(0).vsfiles_used, 2);
    back.verify(&fewer).unwrap();
}

#[test]
fn duplicate_ids_and_devices_are_not_taken_twice() {
    let t = Topology::uniform(2, 4, 1);
    let mut l = Ledger::new(&t);
    place(&t, &mut l, "a", 1, Class::Guaranteed, &["0000:01:00.0"]);
    let mut saved = l.save();
    let mut twin = saved.vms[0].clone();
    twin.seq = 7;
    saved.vms.push(twin.clone());
    twin.id = id("b");
    twin.seq = 8;
    saved.vms.push(twin);
    let (back, left_out) = Ledger::restore(&t, saved);
    assert_eq!(ids(&left_out), ["a", "b"]);
    assert_eq!(back.vm_count(), 1);
    back.verify(&t).unwrap();
}

#[test]
fn a_record_saved_before_layouts_existed_loads_as_unknown() {
    // A VmRecord exactly as ifad wrote it before guest IMSIC layouts.
    let old = r#"{"id":"web","class":"burstable","priority":0,"devices":[],
        "allowed":null,"vcpus":[{"hart":0,"backing":"vsfile","line":1,
        "held_on":0,"moved_at":null,"waiting_since":0}],"seq":0,
        "pending":false,"failed":false}"#;
    let vm: VmRecord = serde_json::from_str(old).unwrap();
    assert_eq!(vm.guest_imsic, None);
}

#[test]
fn a_layout_survives_save_and_restore() {
    let t = Topology::uniform(2, 4, 1);
    let mut l = Ledger::new(&t);
    let layout = crate::core::GuestImsicLayout::Qemu {
        sockets: 2,
        guest_index_bits: 1,
    };
    let s = PlaceSpec::parse("q", 2, Some(Class::Burstable), &[])
        .unwrap()
        .with_guest_imsic(layout.clone())
        .unwrap();
    let p = plan_place(&t, &l, &s).unwrap();
    apply_placement(&mut l, &s, &p, 0).unwrap();
    let json = serde_json::to_string(&l.save()).unwrap();
    let saved: SavedLedger = serde_json::from_str(&json).unwrap();
    let (back, _) = Ledger::restore(&t, saved);
    assert_eq!(back.vm(&id("q")).unwrap().guest_imsic, Some(layout));
}

#[test]
fn a_record_saved_before_hints_existed_loads_without_one() {
    // A VmRecord exactly as ifad wrote it before interrupt-rate hints.
    let old = r#"{"id":"web","class":"burstable","priority":0,"devices":[],
        "allowed":null,"vcpus":[{"hart":0,"backing":"vsfile","line":1,
        "held_on":0,"moved_at":null,"waiting_since":0}],"seq":0,
        "pending":false,"failed":false,"guest_imsic":null}"#;
    let vm: VmRecord = serde_json::from_str(old).unwrap();
    assert_eq!(vm.vcpus[0].expected_irq_rate, None);
    // And a VM without a hint is written as before, so an older ifad still
    // reads the state file.
    assert!(
        !serde_json::to_string(&vm)
            .unwrap()
            .contains("expected_irq_rate")
    );
}

#[test]
fn hints_survive_save_and_restore_in_vcpu_order() {
    let t = Topology::uniform(2, 4, 1);
    let mut l = Ledger::new(&t);
    let rates = crate::core::IrqRateHint::PerVcpu(vec![10.0, 0.0, 2.5e6])
        .per_vcpu(3)
        .unwrap();
    place_hinted(&t, &mut l, "h", Class::Burstable, rates);
    let json = serde_json::to_string(&l.save()).unwrap();
    let saved: SavedLedger = serde_json::from_str(&json).unwrap();
    let (back, _) = Ledger::restore(&t, saved);
    let got: Vec<Option<f64>> = back
        .vm(&id("h"))
        .unwrap()
        .vcpus
        .iter()
        .map(|v| v.expected_irq_rate.map(crate::core::IrqRate::per_second))
        .collect();
    assert_eq!(got, [Some(10.0), Some(0.0), Some(2.5e6)]);
}
