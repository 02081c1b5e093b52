//! The Prometheus exposition of a running daemon.

use ifa_e2e::{Daemon, http_get, sample};

#[test]
fn metrics_follow_placements_and_fallbacks() {
    // Promotion may move the demoted vCPUs straight back for this test.
    let d = Daemon::start(&["--simulate=harts=2,files=2", "--min-move-interval", "0"]);
    let addr = d.metrics.expect("metrics listener");
    let body = http_get(addr, "/metrics");
    assert_eq!(sample(&body, "ifad_vsfiles"), 4.0);
    assert_eq!(sample(&body, "ifad_vsfiles_used"), 0.0);
    assert_eq!(
        sample(
            &body,
            "ifad_mrif_fallbacks_total{reason=\"no_free_vsfile\"}"
        ),
        0.0
    );
    assert!(
        body.contains("ifad_build_info{host=\"simulated\",version=\""),
        "{body}"
    );

    d.json("place --vm b --vcpus 5 --class burstable");
    // More than the host has: refused even with swapping.
    d.ctl("place --vm g --vcpus 5 --class guaranteed").fails(1);
    let body = http_get(addr, "/metrics");
    assert_eq!(sample(&body, "ifad_vsfiles_used"), 4.0);
    assert_eq!(
        sample(&body, "ifad_vcpus{backing=\"vsfile\",class=\"burstable\"}"),
        4.0
    );
    assert_eq!(
        sample(&body, "ifad_vcpus{backing=\"mrif\",class=\"burstable\"}"),
        1.0
    );
    // Per hart: both files of both harts used.
    for hart in ["0", "1"] {
        assert_eq!(
            sample(&body, &format!("ifad_hart_vsfiles{{hart=\"{hart}\"}}")),
            2.0
        );
        assert_eq!(
            sample(&body, &format!("ifad_hart_vsfiles_used{{hart=\"{hart}\"}}")),
            2.0
        );
    }
    assert_eq!(
        sample(&body, "ifad_vcpu_placements_total{class=\"burstable\"}"),
        5.0
    );
    assert_eq!(
        sample(&body, "ifad_vm_placements_total{class=\"burstable\"}"),
        1.0
    );
    assert_eq!(
        sample(
            &body,
            "ifad_mrif_fallbacks_total{reason=\"no_free_vsfile\"}"
        ),
        1.0
    );
    assert_eq!(
        sample(
            &body,
            "ifad_placement_refusals_total{class=\"guaranteed\",reason=\"no_free_vsfile\"}"
        ),
        1.0
    );
    assert_eq!(sample(&body, "ifad_vms"), 1.0);
    for counter in ["ifad_vcpu_placements_total", "ifad_mrif_fallbacks_total"] {
        assert!(
            body.contains(&format!("# TYPE {counter} counter")),
            "{body}"
        );
    }

    // Swapping: a guaranteed VM takes two of b's files.
    d.json("place --vm g --vcpus 2 --class guaranteed");
    let body = http_get(addr, "/metrics");
    assert_eq!(sample(&body, "ifad_demotions_total"), 2.0);
    assert_eq!(
        sample(&body, "ifad_mrif_fallbacks_total{reason=\"demoted\"}"),
        2.0
    );
    assert_eq!(
        sample(&body, "ifad_vcpus{backing=\"mrif\",class=\"burstable\"}"),
        3.0
    );
    assert_eq!(
        sample(&body, "ifad_vcpus{backing=\"vsfile\",class=\"guaranteed\"}"),
        2.0
    );
    assert!(
        sample(
            &body,
            "ifad_decision_duration_seconds_count{operation=\"place\"}"
        ) >= 3.0,
        "{body}"
    );

    d.ctl("release --vm g").ok();
    let body = http_get(addr, "/metrics");
    assert_eq!(sample(&body, "ifad_promotions_total"), 2.0, "{body}");
    assert_eq!(sample(&body, "ifad_ledger_corrections_total"), 0.0);
    d.ctl("release --vm b").ok();
    let body = http_get(addr, "/metrics");
    assert_eq!(sample(&body, "ifad_vsfiles_used"), 0.0);
    assert_eq!(sample(&body, "ifad_vms"), 0.0);
}
