//! The engine against the simulated KVM host, over random sequences of
//! placements and releases on random hosts: the ledger must always agree with
//! what KVM really holds, and its invariants must always hold.

use ifad::core::request::PlaceSpec;
use ifad::core::{Backing, Class, CoreError, VmId};
use ifad::engine::{Engine, EngineError};
use ifad::host::sim::{SimHost, SimSpec};
use ifad::metrics::Metrics;
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    Place { vm: u8, vcpus: u32, class: Class },
    Release { vm: u8 },
}

fn op() -> impl Strategy<Value = Op> {
    let class = prop_oneof![
        Just(Class::Guaranteed),
        Just(Class::Burstable),
        Just(Class::BestEffort)
    ];
    prop_oneof![
        3 => (0..8u8, 1..12u32, class).prop_map(|(vm, vcpus, class)| Op::Place { vm, vcpus, class }),
        2 => (0..8u8).prop_map(|vm| Op::Release { vm }),
    ]
}

fn engine(harts: u32, files: u8, numa: u32) -> Engine {
    let spec = SimSpec { harts, files, numa };
    Engine::new(
        Box::new(SimHost::from_spec(&spec)),
        Metrics::new("test", "simulated"),
    )
}

fn assert_consistent(e: &Engine) {
    e.ledger().verify(e.topology()).expect("ledger invariants");
    let held = e
        .host_held_vsfiles()
        .expect("the simulated host shows its files");
    let ledger: Vec<u32> = (0..e.topology().len() as u32)
        .map(|h| e.ledger().load(h).vsfiles_used)
        .collect();
    assert_eq!(ledger, held, "ledger per hart vs KVM per hart");
    assert_eq!(e.corrections(), 0, "the core predicted every KVM decision");
    // Every VS-file vCPU knows the line KVM gave it, for irqbypass.
    for vm in e.vms() {
        for v in &vm.vcpus {
            assert_eq!(v.backing == Backing::VsFile, v.vsfile_hpa != 0, "{vm:?}");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn ledger_always_equals_the_simulated_kvm(
        harts in 1..6u32,
        files in 1..6u8,
        numa in 1..3u32,
        ops in proptest::collection::vec(op(), 1..40),
    ) {
        let mut e = engine(harts, files, numa.min(harts));
        for op in ops {
            let before = (e.vms(), e.harts());
            match op {
                Op::Place { vm, vcpus, class } => {
                    let spec = PlaceSpec::parse(&format!("vm{vm}"), vcpus, Some(class), &[]).unwrap();
                    match e.place(spec) {
                        Ok(view) => {
                            if class == Class::Guaranteed {
                                prop_assert!(view.vcpus.iter().all(|v| v.backing == Backing::VsFile));
                            }
                        }
                        Err(EngineError::Core(CoreError::Refused(_) | CoreError::VmExists(_))) => {
                            prop_assert_eq!(&before, &(e.vms(), e.harts()), "a refusal changed state");
                        }
                        Err(other) => prop_assert!(false, "unexpected {other}"),
                    }
                }
                Op::Release { vm } => {
                    let id = VmId::parse(&format!("vm{vm}")).unwrap();
                    if e.release(&id).is_err() {
                        prop_assert_eq!(&before, &(e.vms(), e.harts()), "a failed release changed state");
                    }
                }
            }
            assert_consistent(&e);
        }
        let ids: Vec<VmId> = e.ledger().vms().map(|r| r.id.clone()).collect();
        for id in ids {
            e.release(&id).unwrap();
            assert_consistent(&e);
        }
        prop_assert_eq!(e.ledger().vsfiles_used(), 0);
        prop_assert_eq!(e.host_held_vsfiles().unwrap().iter().sum::<u32>(), 0);
        prop_assert!(e.harts().iter().all(|h| h.vcpus == 0));
    }
}

#[test]
fn promotion_follows_kvm_upgrade_order() {
    // One hart, two files: g holds both; b1 and b2 wait on MRIF.
    let mut e = engine(1, 2, 1);
    let place = |e: &mut Engine, vm: &str, n: u32, class: Class| {
        e.place(PlaceSpec::parse(vm, n, Some(class), &[]).unwrap())
            .unwrap()
    };
    place(&mut e, "g", 2, Class::Guaranteed);
    place(&mut e, "b2", 1, Class::Burstable);
    place(&mut e, "b1", 1, Class::Burstable);
    e.release(&VmId::parse("g").unwrap()).unwrap();
    assert_consistent(&e);
    for vm in ["b1", "b2"] {
        let v = e.vm(&VmId::parse(vm).unwrap()).unwrap();
        assert_eq!(v.vcpus[0].backing, Backing::VsFile, "{vm}");
    }
}
