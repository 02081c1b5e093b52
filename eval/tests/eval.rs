//! ifad-eval end to end: the policies on traces whose outcome is known, and
//! the binary as a user runs it.

use std::process::Command;

use ifad_eval::figures::Figures;
use ifad_eval::optimal::Ranking;
use ifad_eval::policy::fcfs::{FcfsPolicy, Pinning};
use ifad_eval::policy::ifad::IfadPolicy;
use ifad_eval::policy::optimal::OptimalPolicy;
use ifad_eval::replay::{self, Policy};
use ifad_eval::trace::Trace;
use ifad_eval::workload::Workload;

fn trace(lines: &[&str]) -> Trace {
    Trace::parse(lines.join("\n").as_bytes()).expect("a valid trace")
}

fn all(trace: &Trace) -> Vec<Figures> {
    let mut policies: Vec<Box<dyn Policy>> = vec![
        Box::new(IfadPolicy::new(&trace.host)),
        Box::new(FcfsPolicy::new(&trace.host, Pinning::Scheduler, 1)),
        Box::new(FcfsPolicy::new(&trace.host, Pinning::RoundRobin, 1)),
        Box::new(OptimalPolicy::new(&trace.host, Ranking::ByRate)),
        Box::new(OptimalPolicy::new(&trace.host, Ranking::PriorityFirst)),
    ];
    policies
        .iter_mut()
        .map(|p| replay::run(trace, p.as_mut()).0)
        .collect()
}

/// Burstable vCPUs hold every file, then a guaranteed VM arrives.
fn late_guaranteed() -> Trace {
    trace(&[
        r#"{"host": {"harts": 2, "files": 1}}"#,
        r#"{"t": 0, "op": "place", "vm": "b", "vcpus": 2, "class": "burstable"}"#,
        r#"{"t": 0, "op": "rate", "vm": "b", "vcpu": 0, "irqs_per_s": 10}"#,
        r#"{"t": 0, "op": "rate", "vm": "b", "vcpu": 1, "irqs_per_s": 10}"#,
        r#"{"t": 5, "op": "place", "vm": "g", "vcpus": 1, "class": "guaranteed"}"#,
        r#"{"t": 5, "op": "rate", "vm": "g", "vcpu": 0, "irqs_per_s": 1000}"#,
        r#"{"t": 20, "op": "end"}"#,
    ])
}

#[test]
fn kvm_alone_stops_the_late_guaranteed_vm_and_ifad_swaps_for_it() {
    let f = all(&late_guaranteed());
    let [ifad, fcfs, pinned, optimal] = [&f[0], &f[1], &f[2], &f[3]];
    assert_eq!(ifad.hwaccel_entry_failures, 0, "{ifad:?}");
    assert_eq!(fcfs.hwaccel_entry_failures, 1, "{fcfs:?}");
    assert_eq!(pinned.hwaccel_entry_failures, 1, "{pinned:?}");
    // ifad demotes exactly one burstable vCPU, as the bound does.
    assert_eq!((ifad.demotions, optimal.demotions), (1, 1));
    assert_eq!(ifad.refusals.guaranteed, 0);
    assert!(ifad.mrif_exposure < fcfs.mrif_exposure, "{ifad:?} {fcfs:?}");
}

#[test]
fn a_guaranteed_vm_no_assignment_can_hold_is_refused_by_ifad_and_the_bound() {
    let t = trace(&[
        r#"{"host": {"harts": 2, "files": 1}}"#,
        r#"{"t": 0, "op": "place", "vm": "g", "vcpus": 3, "class": "guaranteed"}"#,
        r#"{"t": 1, "op": "release", "vm": "g"}"#,
        r#"{"t": 2, "op": "end"}"#,
    ]);
    let f = all(&t);
    assert_eq!((f[0].refusals.guaranteed, f[3].refusals.guaranteed), (1, 1));
    // Without ifad nothing refuses: KVM stops the VM at entry instead.
    assert_eq!(f[1].refusals.guaranteed, 0);
    assert!(f[1].hwaccel_entry_failures >= 1, "{:?}", f[1]);
}

#[test]
fn no_policy_beats_the_optimal_bound_on_the_built_in_workloads() {
    for w in Workload::ALL {
        let f = all(&w.generate(7));
        let bound = f[3].mrif_exposure;
        for p in &f[..3] {
            assert!(
                bound <= p.mrif_exposure + 1e-9,
                "{w}: {} {} below the bound {bound}",
                p.policy,
                p.mrif_exposure
            );
        }
    }
}

#[test]
fn the_priority_bound_keeps_the_file_for_the_higher_priority_vm() {
    // One file: a quiet priority-1 VM and a busy priority-0 one.
    let t = trace(&[
        r#"{"host": {"harts": 1, "files": 1}}"#,
        r#"{"t": 0, "op": "place", "vm": "busy", "vcpus": 1, "class": "burstable"}"#,
        r#"{"t": 0, "op": "rate", "vm": "busy", "vcpu": 0, "irqs_per_s": 990}"#,
        r#"{"t": 0, "op": "place", "vm": "quiet", "vcpus": 1, "class": "burstable", "priority": 1}"#,
        r#"{"t": 0, "op": "rate", "vm": "quiet", "vcpu": 0, "irqs_per_s": 10}"#,
        r#"{"t": 10, "op": "end"}"#,
    ]);
    let f = all(&t);
    let (by_rate, by_priority) = (&f[3], &f[4]);
    assert_eq!(by_priority.policy, "optimal-priority");
    assert!((by_rate.mrif_exposure - 0.01).abs() < 1e-6, "{by_rate:?}");
    assert!(
        (by_priority.mrif_exposure - 0.99).abs() < 1e-6,
        "{by_priority:?}"
    );
}

fn ifad_eval(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_ifad-eval"))
        .args(args)
        .output()
        .expect("ifad-eval runs")
}

#[test]
fn the_binary_prints_json_for_the_policies_asked() {
    let out = ifad_eval(&[
        "--workload",
        "steady",
        "--policies",
        "ifad,optimal",
        "-o",
        "json",
    ]);
    assert!(out.status.success(), "{out:?}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let names: Vec<&str> = v["policies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["policy"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["ifad", "optimal"]);
    let keys = [
        "mrif_exposure",
        "mrif_vcpu_time",
        "hwaccel_entry_failures",
        "refusals",
        "demotions",
        "migrations",
        "max_threads_per_hart",
        "p99_threads_per_hart",
        "decision_p99_us",
    ];
    for k in keys {
        assert!(v["policies"][0].get(k).is_some(), "{k} missing");
    }
    assert!(v["policies"][0]["refusals"].get("best-effort").is_some());
}

#[test]
fn a_bad_trace_line_exits_2_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.jsonl");
    std::fs::write(
        &path,
        "{\"host\": {\"harts\": 2, \"files\": 1}}\n{\"t\": 0, \"op\": \"explode\"}\n",
    )
    .unwrap();
    let out = ifad_eval(&["--trace", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("line 2"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    let out = ifad_eval(&["--workload", "nonsense"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn plot_writes_one_picture_of_exposure_and_one_of_occupancy_per_policy() {
    let dir = tempfile::tempdir().unwrap();
    let plots = dir.path().join("plots");
    let out = ifad_eval(&[
        "--workload",
        "hotplug",
        "--policies",
        "ifad,fcfs",
        "--plot",
        plots.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{out:?}");
    for name in ["exposure.svg", "occupancy-ifad.svg", "occupancy-fcfs.svg"] {
        let svg = std::fs::read_to_string(plots.join(name)).unwrap();
        assert!(svg.contains("<svg") && svg.contains("<polyline"), "{name}");
    }
    let exposure = std::fs::read_to_string(plots.join("exposure.svg")).unwrap();
    assert!(exposure.contains("ifad (") && exposure.contains("fcfs ("));
}
