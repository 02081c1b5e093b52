//! Placement through `ifactl` against a running `ifad --simulate`.

use std::collections::BTreeSet;

use ifa_e2e::{Daemon, backings, occupancy};

#[test]
fn status_and_harts_describe_the_default_simulated_host() {
    let d = Daemon::start(&["--simulate"]);
    let s = d.json("status");
    assert_eq!(s["host"], "simulated");
    assert_eq!(s["harts"], 8);
    assert_eq!(s["vsfiles"]["total"], 40);
    assert_eq!(s["vsfiles"]["free"], 40);
    let harts = d.json("harts");
    let harts = harts.as_array().unwrap();
    assert_eq!(harts.len(), 8);
    for (i, h) in harts.iter().enumerate() {
        assert_eq!(h["hart"], i);
        assert_eq!(h["vsfiles"], 5);
        assert_eq!(h["used"], 0);
        assert_eq!(h["online"], true);
    }
    let table = d.ctl("harts").ok().stdout;
    assert!(
        table.starts_with("HART  NODE  ONLINE  DRAINED  VS-FILES  USED  FREE  RELEASING  VCPUS\n"),
        "{table}"
    );
    assert_eq!(table.lines().count(), 9);
}

#[test]
fn guaranteed_gets_a_vsfile_per_vcpu_on_distinct_harts() {
    let d = Daemon::simulate("harts=8,files=5");
    let vm = d.json("place --vm a --vcpus 6 --class guaranteed");
    assert_eq!(vm["vm"], "a");
    assert_eq!(vm["class"], "guaranteed");
    assert_eq!(vm["aia_mode"], "hwaccel");
    assert_eq!(backings(&vm), vec!["vsfile"; 6]);
    let harts: BTreeSet<u64> = vm["vcpus"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["hart"].as_u64().unwrap())
        .collect();
    assert_eq!(harts.len(), 6, "spread over distinct harts: {vm}");
    // The irqbypass record: each vCPU's VS-file is a page of its hart's IMSIC.
    for v in vm["vcpus"].as_array().unwrap() {
        assert_eq!(v["is_mrif"], false);
        assert!(v["vsfile_hpa"].as_str().unwrap().starts_with("0x"));
        assert!(v["vsfile_line"].as_u64().unwrap() >= 1);
    }
    assert_eq!(vm["state"], "ready");
    assert_eq!(vm["demoted"], serde_json::json!([]));
    let mut placed = vm.clone();
    placed.as_object_mut().unwrap().remove("demoted");
    assert_eq!(d.json("vm a"), placed, "vm shows what place returned");
    assert_eq!(d.json("vms"), serde_json::json!([placed]));
    assert_eq!(d.json("status")["vcpus"]["vsfile"], 6);
}

#[test]
fn burstable_falls_back_to_mrif_and_is_promoted_when_files_free_up() {
    let d = Daemon::simulate("harts=2,files=2");
    d.json("place --vm g --vcpus 2 --class guaranteed");
    let b = d.json("place --vm b --vcpus 4 --class burstable");
    assert_eq!(b["aia_mode"], "auto");
    let mut got = backings(&b);
    got.sort();
    assert_eq!(got, ["mrif", "mrif", "vsfile", "vsfile"]);
    let mrif = &b["vcpus"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["backing"] == "mrif")
        .unwrap();
    assert_eq!(mrif["is_mrif"], true);
    assert!(mrif["vsfile_hpa"].is_null());
    let s = d.json("status");
    assert_eq!(s["vsfiles"]["free"], 0);
    assert_eq!(s["vcpus"]["mrif"], 2);

    // Releasing g frees two files: KVM's AUTO mode upgrades b's MRIF vCPUs.
    let r = d.json("release --vm g");
    assert_eq!(r["vsfiles_freed"], 2);
    assert_eq!(backings(&d.json("vm b")), vec!["vsfile"; 4]);
    assert_eq!(d.json("status")["vcpus"]["mrif"], 0);
}

#[test]
fn best_effort_never_takes_a_vsfile() {
    let d = Daemon::simulate("harts=2,files=5");
    let vm = d.json("place --vm e --vcpus 3 --class best-effort");
    assert_eq!(vm["aia_mode"], "emul");
    assert_eq!(backings(&vm), vec!["mrif"; 3]);
    assert!(occupancy(&d).iter().all(|&(_, used)| used == 0));
}

#[test]
fn release_returns_the_host_to_empty_and_frees_devices() {
    let d = Daemon::simulate("harts=4,files=3,numa=2");
    d.json("place --vm a --vcpus 5 --class guaranteed --device 0000:01:00.0");
    d.json("place --vm b --vcpus 9 --class burstable");
    d.json("place --vm c --vcpus 2 --class best-effort");
    for vm in ["b", "a", "c"] {
        d.ctl(&format!("release --vm {vm}")).ok();
    }
    assert_eq!(d.json("vms"), serde_json::json!([]));
    assert!(occupancy(&d).iter().all(|&(_, used)| used == 0));
    // The device is free again.
    d.json("place --vm a2 --vcpus 1 --class burstable --device 01:00.0");
}

#[test]
fn no_hart_ever_holds_more_than_its_vsfiles() {
    let d = Daemon::simulate("harts=3,files=2");
    let classes = ["guaranteed", "burstable", "best-effort"];
    for i in 0..12u32 {
        let class = classes[(i % 3) as usize];
        let _ = d.ctl(&format!(
            "place --vm vm{i} --vcpus {} --class {class}",
            1 + i % 4
        ));
        if i % 3 == 2 {
            d.ctl(&format!("release --vm vm{}", i - 1)).ok();
        }
        for (vsfiles, used) in occupancy(&d) {
            assert!(used <= vsfiles, "step {i}: {used} of {vsfiles}");
        }
    }
    let table = d.ctl("vms").ok().stdout;
    assert!(table.starts_with("VM "), "{table}");
}
