//! The log holds every change: after any sequence of changes, what a
//! restarted daemon reads back (snapshot plus log) is the whole state the
//! engine holds, whichever path changed it (placement, release, migration,
//! drain, promotion at a tick, a hart going offline, an entry failing).

use proptest::prelude::*;

use crate::core::request::PlaceSpec;
use crate::core::{Class, VcpuKey, VmId};
use crate::engine::{Engine, EngineConfig};
use crate::host::sim::{SimHost, SimSpec};
use crate::metrics::Metrics;
use crate::state::{Loaded, Snapshot, StateDir};

const HARTS: u32 = 3;

#[derive(Debug, Clone)]
enum Change {
    Place {
        vm: u8,
        vcpus: u32,
        class: usize,
    },
    Release {
        vm: u8,
    },
    Migrate {
        vm: u8,
        vcpu: u32,
        hart: u32,
    },
    Drain {
        hart: u32,
    },
    Undrain {
        hart: u32,
    },
    Online {
        hart: u32,
        online: bool,
    },
    Tick,
    /// Reads the state dir back and compares it with the engine.
    Check,
}

fn change() -> impl Strategy<Value = Change> {
    prop_oneof![
        4 => (0..6u8, 1..4u32, 0..3usize).prop_map(|(vm, vcpus, class)| Change::Place { vm, vcpus, class }),
        2 => (0..6u8).prop_map(|vm| Change::Release { vm }),
        2 => (0..6u8, 0..3u32, 0..HARTS).prop_map(|(vm, vcpu, hart)| Change::Migrate { vm, vcpu, hart }),
        1 => (0..HARTS).prop_map(|hart| Change::Drain { hart }),
        1 => (0..HARTS).prop_map(|hart| Change::Undrain { hart }),
        1 => (0..HARTS, any::<bool>()).prop_map(|(hart, online)| Change::Online { hart, online }),
        2 => Just(Change::Tick),
        1 => Just(Change::Check),
    ]
}

fn vm(n: u8) -> VmId {
    VmId::parse(&format!("vm{n}")).unwrap()
}

/// Applies one change; refusals and errors are part of the game.
fn apply(e: &mut Engine, change: &Change, now: u64) {
    let classes = [Class::Guaranteed, Class::Burstable, Class::BestEffort];
    let outcome = match change {
        Change::Place {
            vm: n,
            vcpus,
            class,
        } => {
            let spec = PlaceSpec::parse(&vm(*n).to_string(), *vcpus, Some(classes[*class]), &[]);
            e.place(spec.unwrap(), now).map(drop)
        }
        Change::Release { vm: n } => e.release(&vm(*n), now).map(drop),
        Change::Migrate { vm: n, vcpu, hart } => {
            let key = VcpuKey {
                vm: vm(*n),
                vcpu: *vcpu,
            };
            e.migrate(&key, *hart, now).map(drop)
        }
        Change::Drain { hart } => e.drain(*hart, now).map(drop),
        Change::Undrain { hart } => e.undrain(*hart, now),
        Change::Online { hart, online } => {
            let sim = e.host_mut().sim().expect("simulated");
            if sim.set_hart_online(*hart, *online).is_ok() {
                e.tick(now);
            }
            Ok(())
        }
        Change::Tick | Change::Check => {
            e.tick(now);
            Ok(())
        }
    };
    // Refused or not: the state on disk must match either way.
    drop(outcome);
}

/// The engine's state as it would be written whole, generation aside.
fn whole(e: &Engine) -> Snapshot {
    Snapshot {
        log: 0,
        ..e.snapshot()
    }
}

/// Reads the state dir back with a fresh store (the engine's is closed
/// first, as at a crash), then hands the engine a store again.
fn read_back(e: &mut Engine, dir: &std::path::Path, now: u64) -> Snapshot {
    drop(e.store.take());
    let mut store = StateDir::open(dir).unwrap();
    let Loaded::Restored(saved) = store.load().unwrap() else {
        panic!("a state was written")
    };
    assert_eq!(store.cut_tail(), None, "every record whole");
    e.persist_to(store.with_min_log_bytes(512), now).unwrap();
    Snapshot {
        log: 0,
        ..saved.snapshot
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, rng_seed: proptest::test_runner::RngSeed::Fixed(0x10c), failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn what_is_read_back_is_what_the_engine_holds(changes in proptest::collection::vec(change(), 1..60)) {
        let dir = tempfile::tempdir().unwrap();
        let spec = SimSpec { harts: HARTS, files: 2, numa: 1 };
        let mut e = Engine::new(Box::new(SimHost::from_spec(&spec)), Metrics::new("test", "simulated"), EngineConfig::default());
        // A small log bound, so that compactions happen between records.
        let store = StateDir::open(dir.path()).unwrap().with_min_log_bytes(512);
        e.persist_to(store, 0).unwrap();
        for (i, change) in changes.iter().enumerate() {
            let now = 1_000 * (i as u64 + 1);
            apply(&mut e, change, now);
            if matches!(change, Change::Check) {
                let expected = whole(&e);
                prop_assert_eq!(read_back(&mut e, dir.path(), now), expected, "after {:?}", &changes[..=i]);
            }
        }
        let expected = whole(&e);
        prop_assert_eq!(read_back(&mut e, dir.path(), 0), expected);
    }
}
