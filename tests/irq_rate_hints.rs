//! Interrupt-rate hints through `ifactl place --irq-rate` and back through
//! `ifactl vm`, across a restart. ifad keeps and shows them; the policy does
//! not use them yet (issue 14).

use std::path::Path;

use ifa_e2e::Daemon;
use serde_json::Value;

fn start(state: &Path) -> Daemon {
    Daemon::start(&[
        "--simulate=harts=4,files=5",
        "--state-dir",
        state.to_str().unwrap(),
    ])
}

fn hints(vm: &Value) -> Vec<Value> {
    vm["vcpus"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["expected_irq_rate"].clone())
        .collect()
}

/// The hint column of `ifactl vm`'s vCPU rows (the last column).
fn hint_column(table: &str) -> Vec<String> {
    table
        .lines()
        .skip_while(|l| !l.starts_with("VCPU"))
        .skip(1)
        .map(|l| l.split_whitespace().last().unwrap().to_string())
        .collect()
}

#[test]
fn a_hint_is_shown_per_vcpu_and_survives_a_restart() {
    let state = tempfile::tempdir().unwrap();
    let mut d = start(state.path());
    let placed = d.json("place --vm h --vcpus 3 --class burstable --irq-rate 2500");
    assert_eq!(hints(&placed), [2500.0; 3].map(Value::from));
    d.ctl("place --vm n --vcpus 2 --class best-effort").ok();
    assert_eq!(hints(&d.json("vm n")), [Value::Null, Value::Null]);
    let table = d.ctl("vm h").ok().stdout;
    assert!(table.contains("IRQ/S HINT"), "{table}");
    assert_eq!(hint_column(&table), ["2500"; 3], "{table}");
    assert_eq!(hint_column(&d.ctl("vm n").ok().stdout), ["-"; 2]);
    assert!(d.stop().is_some_and(|s| s.success()));
    let d = start(state.path());
    assert_eq!(hints(&d.json("vm h")), [2500.0; 3].map(Value::from));
    assert_eq!(hints(&d.json("vm n")), [Value::Null, Value::Null]);
}

#[test]
fn a_zero_hint_is_not_no_hint() {
    let d = Daemon::simulate("harts=2,files=2");
    let vm = d.json("place --vm z --vcpus 1 --class best-effort --irq-rate 0");
    assert_eq!(hints(&vm), [Value::from(0.0)]);
    assert_eq!(hint_column(&d.ctl("vm z").ok().stdout), ["0"]);
}

#[test]
fn advice_shows_the_hint_and_places_nothing() {
    let d = Daemon::simulate("harts=2,files=2");
    let vm = d.json("advise --vm a --vcpus 2 --class burstable --irq-rate 1.5");
    assert_eq!(hints(&vm), [1.5; 2].map(Value::from));
    assert_eq!(d.json("vms").as_array().unwrap().len(), 0);
}

#[test]
fn a_bad_rate_is_refused_as_a_bad_flag() {
    let d = Daemon::simulate("harts=2,files=2");
    for bad in ["-1", "nan", "inf", "10000001", "lots"] {
        let err = d
            .ctl(&format!(
                "place --vm bad --vcpus 1 --class best-effort --irq-rate={bad}"
            ))
            .fails(2);
        assert!(err.contains("--irq-rate"), "{bad}: {err}");
    }
    d.ctl("place --vm top --vcpus 1 --class best-effort --irq-rate 10000000")
        .ok();
    assert_eq!(d.json("vms").as_array().unwrap().len(), 1);
}

#[test]
fn a_vm_placed_again_after_its_hart_vanished_keeps_its_hint() {
    let state = tempfile::tempdir().unwrap();
    let mut d = Daemon::start(&[
        "--simulate=harts=4,files=2",
        "--state-dir",
        state.path().to_str().unwrap(),
    ]);
    d.ctl("place --vm b --vcpus 2 --class burstable --harts 2-3 --irq-rate 750")
        .ok();
    d.stop();
    // Hart 3 is gone: b no longer fits as it was and is placed again.
    let d = Daemon::start(&[
        "--simulate=harts=3,files=2",
        "--state-dir",
        state.path().to_str().unwrap(),
    ]);
    d.wait_for_log("placing it again");
    let vm = d.json("vm b");
    assert!(
        vm["vcpus"]
            .as_array()
            .unwrap()
            .iter()
            .all(|v| v["hart"] == 2),
        "{vm}"
    );
    assert_eq!(hints(&vm), [750.0; 2].map(Value::from), "{}", d.log());
}
