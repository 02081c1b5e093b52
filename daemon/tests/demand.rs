//! Interrupt demand in the engine (issue 14): each tick takes in what the
//! simulated host counts of every vCPU's interrupts, and swapping then takes
//! the file of the quiet burstable vCPU, not of the busy one.

use ifad::core::request::PlaceSpec;
use ifad::core::{Backing, Class, VcpuKey, VmId};
use ifad::engine::{Engine, EngineConfig};
use ifad::host::sim::{SimHost, SimSpec};
use ifad::metrics::Metrics;

fn id(s: &str) -> VmId {
    VmId::parse(s).unwrap()
}

fn key(vm: &str) -> VcpuKey {
    VcpuKey {
        vm: id(vm),
        vcpu: 0,
    }
}

fn one(vm: &str, class: Class) -> PlaceSpec {
    PlaceSpec::parse(vm, 1, Some(class), &[]).unwrap()
}

/// Two harts of one VS-file held by `old` and `new`, one-vCPU burstable
/// VMs; `old` takes `old_rate` interrupts a second, `new` `new_rate`, for
/// ten seconds of one tick each.
fn measured_host(old_rate: f64, new_rate: f64) -> Engine {
    measured_host_with(Metrics::new("test", "simulated"), old_rate, new_rate)
}

fn measured_host_with(metrics: Metrics, old_rate: f64, new_rate: f64) -> Engine {
    let mut e = Engine::new(
        Box::new(SimHost::from_spec(&SimSpec {
            harts: 2,
            files: 1,
            numa: 1,
        })),
        metrics,
        EngineConfig::default(),
    );
    e.place(one("old", Class::Burstable), 0).unwrap();
    e.place(one("new", Class::Burstable), 0).unwrap();
    let sim = e.host_mut().sim().unwrap();
    sim.set_irq_rate(&id("old"), 0, old_rate).unwrap();
    sim.set_irq_rate(&id("new"), 0, new_rate).unwrap();
    for s in 0..=10 {
        let now = s * 1000;
        e.host_mut().sim().unwrap().advance(now);
        e.tick(now);
    }
    e
}

fn backing(e: &Engine, vm: &str) -> Backing {
    e.ledger().vcpu(&key(vm)).unwrap().backing
}

#[test]
fn a_guaranteed_vm_takes_the_file_of_the_quiet_vcpu() {
    let mut e = measured_host(50.0, 30_000.0);
    let old = e.ledger().interrupt_rate(&key("old")).unwrap();
    let new = e.ledger().interrupt_rate(&key("new")).unwrap();
    assert!((old - 50.0).abs() < 1.0, "{old}");
    assert!((new - 30_000.0).abs() < 1.0, "{new}");
    let out = e.place(one("g", Class::Guaranteed), 11_000).unwrap();
    assert_eq!(out.demoted.len(), 1);
    assert_eq!(out.demoted[0].vm, "old");
    assert_eq!(backing(&e, "new"), Backing::VsFile);
}

#[test]
fn with_nothing_counted_the_newest_gives_its_file_up() {
    // Rates of zero: both equally quiet, so the order of old stands.
    let mut e = measured_host(0.0, 0.0);
    let out = e.place(one("g", Class::Guaranteed), 11_000).unwrap();
    assert_eq!(out.demoted[0].vm, "new");
    assert_eq!(backing(&e, "old"), Backing::VsFile);
}

#[test]
fn a_busy_waiter_gets_the_file_of_a_quiet_holder_within_a_tick() {
    let metrics = Metrics::new("test", "simulated");
    let mut e = measured_host_with(metrics.clone(), 50.0, 200.0);
    e.place(one("w", Class::Burstable), 10_000).unwrap();
    assert_eq!(backing(&e, "w"), Backing::Mrif);
    e.host_mut()
        .sim()
        .unwrap()
        .set_irq_rate(&id("w"), 0, 40_000.0)
        .unwrap();
    for s in 11..=13 {
        e.host_mut().sim().unwrap().advance(s * 1000);
        e.tick(s * 1000);
    }
    assert_eq!(backing(&e, "w"), Backing::VsFile);
    assert!(e.ledger().vcpu(&key("w")).unwrap().held_on.is_some());
    // The quietest holder gave it up; the other kept its file.
    assert_eq!(backing(&e, "old"), Backing::Mrif);
    assert_eq!(backing(&e, "new"), Backing::VsFile);
    assert!(metrics.render().contains("ifad_rebalances_total 1"));
}

#[test]
fn a_tick_reads_a_share_of_a_large_host_and_the_next_ones_the_rest() {
    // Four VMs of 100 vCPUs: a tick reads whole VMs until 256 vCPUs are
    // read, so the first reads VMs 0-2 and the second starts with VM 3.
    let mut e = Engine::new(
        Box::new(SimHost::from_spec(&SimSpec {
            harts: 8,
            files: 5,
            numa: 1,
        })),
        Metrics::new("test", "simulated"),
        EngineConfig::default(),
    );
    let names = ["v0", "v1", "v2", "v3"];
    for vm in names {
        let spec = PlaceSpec::parse(vm, 100, Some(Class::BestEffort), &[]).unwrap();
        e.place(spec, 0).unwrap();
        for vcpu in 0..100 {
            let sim = e.host_mut().sim().unwrap();
            sim.set_irq_rate(&id(vm), vcpu, 1000.0).unwrap();
        }
    }
    let rate = |e: &Engine, vm: &str| e.ledger().interrupt_rate(&key(vm)).unwrap();
    for now in [0, 1000] {
        e.host_mut().sim().unwrap().advance(now);
        e.tick(now);
    }
    // v0 was read at both ticks; v3 only at the second.
    assert!((rate(&e, "v0") - 1000.0).abs() < 1.0, "{}", rate(&e, "v0"));
    assert_eq!(rate(&e, "v3"), 0.0);
    for now in [2000, 3000] {
        e.host_mut().sim().unwrap().advance(now);
        e.tick(now);
    }
    for vm in names {
        assert!(
            (rate(&e, vm) - 1000.0).abs() < 1.0,
            "{vm}: {}",
            rate(&e, vm)
        );
    }
}
