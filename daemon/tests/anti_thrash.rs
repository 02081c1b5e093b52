//! `--min-move-interval` in the engine: a waiting vCPU that moved recently
//! is not moved again to take a VS-file that came free on another hart
//! until the interval has passed; then the next tick promotes it.

use ifad::core::request::PlaceSpec;
use ifad::core::{Backing, Class, VcpuKey, VmId};
use ifad::engine::{Engine, EngineConfig};
use ifad::host::sim::{SimHost, SimSpec};
use ifad::metrics::Metrics;

const MOVED_AT: u64 = 1_000;
const FREED_AT: u64 = 2_000;
const INTERVAL: u64 = 60_000;

fn id(s: &str) -> VmId {
    VmId::parse(s).unwrap()
}

fn w() -> VcpuKey {
    VcpuKey {
        vm: id("w"),
        vcpu: 0,
    }
}

fn spec(vm: &str, class: Class, harts: &[u32]) -> PlaceSpec {
    PlaceSpec::parse(vm, 1, Some(class), &[])
        .unwrap()
        .with_harts(harts)
}

/// Where w is, on what, and where KVM holds its line.
fn where_w(e: &Engine) -> (u32, Backing, Option<u32>) {
    let v = e.ledger().vcpu(&w()).unwrap();
    (v.hart, v.backing, v.held_on)
}

/// Two harts of one VS-file, g0 and g1 (guaranteed) holding them. w
/// (burstable) waits on MRIF on hart 0 and is migrated to hart 1 at
/// `MOVED_AT`; g0 is released at `FREED_AT`, freeing hart 0's file, which
/// only a move back can give w.
fn host_with_a_file_freed_after_w_moved(min_move_interval: u64) -> Engine {
    let mut e = Engine::new(
        Box::new(SimHost::from_spec(&SimSpec {
            harts: 2,
            files: 1,
            numa: 1,
        })),
        Metrics::new("test", "simulated"),
        EngineConfig { min_move_interval },
    );
    e.place(spec("g0", Class::Guaranteed, &[0]), 0).unwrap();
    e.place(spec("g1", Class::Guaranteed, &[1]), 0).unwrap();
    e.place(spec("w", Class::Burstable, &[]), 0).unwrap();
    assert_eq!(where_w(&e), (0, Backing::Mrif, None));
    e.migrate(&w(), 1, MOVED_AT).unwrap();
    assert_eq!(where_w(&e), (1, Backing::Mrif, None));
    assert_eq!(e.ledger().vcpu(&w()).unwrap().moved_at, Some(MOVED_AT));
    e.release(&id("g0"), FREED_AT).unwrap();
    e
}

#[test]
fn without_an_interval_the_freed_file_goes_to_w_at_once() {
    let e = host_with_a_file_freed_after_w_moved(0);
    assert_eq!(where_w(&e), (0, Backing::VsFile, Some(0)));
    assert_eq!(e.host_held_vsfiles(), Some(vec![1, 1]));
}

#[test]
fn a_just_moved_vcpu_waits_out_the_interval_then_a_tick_promotes_it() {
    let mut e = host_with_a_file_freed_after_w_moved(INTERVAL);
    assert_eq!(
        where_w(&e),
        (1, Backing::Mrif, None),
        "moved {} ms ago",
        FREED_AT - MOVED_AT
    );
    assert_eq!(
        e.host_held_vsfiles(),
        Some(vec![0, 1]),
        "hart 0's file free"
    );
    e.tick(MOVED_AT + INTERVAL - 1);
    assert_eq!(where_w(&e), (1, Backing::Mrif, None), "1 ms short");
    assert_eq!(e.host_held_vsfiles(), Some(vec![0, 1]));
    e.tick(MOVED_AT + INTERVAL);
    assert_eq!(
        where_w(&e),
        (0, Backing::VsFile, Some(0)),
        "interval passed"
    );
    assert_eq!(e.host_held_vsfiles(), Some(vec![1, 1]));
    let v = e.ledger().vcpu(&w()).unwrap();
    assert_eq!(
        v.moved_at,
        Some(MOVED_AT + INTERVAL),
        "the promotion moved it"
    );
    e.ledger().verify(e.topology()).unwrap();
}
