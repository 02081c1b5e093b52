//! Swapping, promotion, migration, drain and advice through `ifactl`.

use ifa_e2e::{Daemon, backings, occupancy};
use serde_json::Value;

fn harts_of(vm: &Value) -> Vec<u64> {
    vm["vcpus"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["hart"].as_u64().unwrap())
        .collect()
}

fn count(vm: &Value, backing: &str) -> usize {
    backings(vm).iter().filter(|b| *b == backing).count()
}

#[test]
fn guaranteed_swaps_out_burstable_vcpus_and_names_them() {
    let d = Daemon::simulate("harts=2,files=2");
    d.json("place --vm b --vcpus 4 --class burstable");
    let g = d.json("place --vm g --vcpus 2 --class guaranteed");
    assert_eq!(backings(&g), vec!["vsfile"; 2]);
    assert_eq!(
        g["state"], "ready",
        "the demoted vCPUs ran and freed their lines"
    );
    let demoted = g["demoted"].as_array().unwrap();
    assert_eq!(demoted.len(), 2, "{g}");
    for m in demoted {
        assert_eq!(m["vm"], "b");
        assert_eq!(m["backing"], "mrif");
        assert_ne!(m["from_hart"], m["to_hart"]);
    }
    assert_eq!(count(&d.json("vm b"), "mrif"), 2);
    assert!(occupancy(&d).iter().all(|&(files, used)| used == files));
    let table = d
        .ctl("place --vm g2 --vcpus 1 --class best-effort")
        .ok()
        .stdout;
    assert!(!table.contains("DEMOTED"), "{table}");
}

#[test]
fn low_priority_is_demoted_first_and_devices_break_ties() {
    // Nothing is measured (the simulated vCPUs take no interrupts): by
    // priority (the operator's override), then devices kept, then newest.
    let d = Daemon::simulate("harts=4,files=1");
    d.json("place --vm plain --vcpus 1 --class burstable");
    d.json("place --vm dev --vcpus 1 --class burstable --device 0000:03:00.0");
    d.json("place --vm high --vcpus 1 --class burstable --priority 10");
    d.json("place --vm low --vcpus 1 --class burstable --priority -1");
    let g = d.json("place --vm g --vcpus 2 --class guaranteed");
    let who: Vec<&str> = g["demoted"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["vm"].as_str().unwrap())
        .collect();
    assert_eq!(who, ["low", "plain"]);
    assert_eq!(backings(&d.json("vm dev")), ["vsfile"]);
}

#[test]
fn freed_files_promote_waiting_vcpus_across_harts() {
    let d = Daemon::simulate("harts=2,files=1");
    d.json("place --vm g0 --vcpus 1 --class guaranteed --harts 0");
    d.json("place --vm g1 --vcpus 1 --class guaranteed --harts 1");
    let b = d.json("place --vm b --vcpus 1 --class burstable");
    assert_eq!(backings(&b), ["mrif"]);
    let waiting_on = harts_of(&b)[0];
    let other = if waiting_on == 0 { "g1" } else { "g0" };
    d.ctl(&format!("release --vm {other}")).ok();
    let b = d.json("vm b");
    assert_eq!(backings(&b), ["vsfile"], "promoted without anyone asking");
    assert_ne!(
        harts_of(&b)[0],
        waiting_on,
        "moved to the hart with the free file"
    );
}

#[test]
fn migrate_keeps_the_file_refuses_guaranteed_and_records_the_address_change() {
    let d = Daemon::simulate("harts=2,files=1");
    let g = d.json("place --vm g --vcpus 1 --class guaranteed");
    let b = d.json("place --vm b --vcpus 1 --class burstable");
    assert_eq!(harts_of(&g), [0]);
    assert_eq!(harts_of(&b), [1]);

    let line = d.ctl("migrate --vm g --vcpu 0 --hart 1").fails(1);
    assert!(line.contains("keeps its file on hart 0"), "{line}");

    let m = d.json("migrate --vm b --vcpu 0 --hart 0");
    assert_eq!(m["before"]["hart"], 1);
    assert_eq!(m["before"]["backing"], "vsfile");
    assert!(m["before"]["vsfile_hpa"].is_string());
    assert_eq!(m["after"]["hart"], 0);
    assert_eq!(m["after"]["backing"], "mrif");
    assert!(m["after"]["vsfile_hpa"].is_null());

    // b released its old line when it ran on hart 0: g may move now.
    let g_out = d
        .ctl("migrate --vm g --vcpu 0 --hart 1 -o json")
        .ok()
        .json();
    assert_eq!(g_out["after"]["backing"], "vsfile");
    assert_ne!(g_out["before"]["vsfile_hpa"], g_out["after"]["vsfile_hpa"]);
}

#[test]
fn drain_moves_everything_off_and_keeps_placement_away_until_undrain() {
    let d = Daemon::simulate("harts=3,files=2");
    d.json("place --vm g --vcpus 2 --class guaranteed");
    d.json("place --vm b --vcpus 3 --class burstable");
    let out = d.json("drain --hart 0");
    assert_eq!(out["hart"], 0);
    assert!(!out["moved"].as_array().unwrap().is_empty());
    let harts = d.json("harts");
    assert_eq!(harts[0]["drained"], true);
    assert_eq!(harts[0]["vcpus"], 0);
    assert_eq!(harts[0]["used"], 0);
    assert!(backings(&d.json("vm g")).iter().all(|b| b == "vsfile"));
    let e = d.json("place --vm e --vcpus 4 --class best-effort");
    assert!(!harts_of(&e).contains(&0));
    d.ctl("undrain --hart 0").ok();
    assert_eq!(d.json("harts")[0]["drained"], false);
    let e2 = d.json("place --vm e2 --vcpus 1 --class best-effort");
    assert_eq!(harts_of(&e2), [0], "the emptiest hart again");
}

#[test]
fn drain_is_refused_whole_when_a_guaranteed_vcpu_has_nowhere_to_go() {
    let d = Daemon::simulate("harts=2,files=1");
    d.json("place --vm g --vcpus 2 --class guaranteed");
    let before = d.json("harts");
    let line = d.ctl("drain --hart 0").fails(1);
    assert!(
        line.contains("cannot drain hart 0: guaranteed vm g vcpu"),
        "{line}"
    );
    assert_eq!(d.json("harts"), before);
}

#[test]
fn advise_answers_like_place_and_changes_nothing() {
    let d = Daemon::simulate("harts=2,files=2");
    d.json("place --vm b --vcpus 4 --class burstable");
    let before = (d.json("vms"), d.json("harts"));
    let a = d.json("advise --vm g --vcpus 2 --class guaranteed");
    assert_eq!(a["state"], "advice");
    assert_eq!(backings(&a), vec!["vsfile"; 2]);
    assert_eq!(a["demoted"].as_array().unwrap().len(), 2);
    assert_eq!((d.json("vms"), d.json("harts")), before);
    d.ctl("advise --vm g --vcpus 5 --class guaranteed").fails(1);
}

#[test]
fn harts_restricts_a_vm() {
    let d = Daemon::simulate("harts=4,files=5");
    let vm = d.json("place --vm a --vcpus 6 --class burstable --harts 1-2");
    assert!(harts_of(&vm).iter().all(|h| *h == 1 || *h == 2), "{vm}");
    assert_eq!(vm["allowed_harts"], serde_json::json!([1, 2]));
}
