use super::*;

fn id(vm: &str, vcpu: u32) -> VcpuId {
    (vm.to_string(), vcpu)
}

#[test]
fn exposure_weighs_time_off_vsfiles_by_interrupt_rate() {
    let mut a = Accounting::default();
    let online = [true, true];
    // A busy vCPU on a VS-file and a quiet one on MRIF, for 2 s; then the
    // busy one on MRIF for 1 s.
    let both = [
        (id("a", 0), 900.0, On::VsFile { hart: 0 }),
        (id("a", 1), 100.0, On::Mrif { hart: 1 }),
    ];
    a.sample(0.0, 2.0, &both, &online);
    let moved = [
        (id("a", 0), 900.0, On::Mrif { hart: 0 }),
        (id("a", 1), 100.0, On::Mrif { hart: 1 }),
    ];
    a.sample(0.0, 1.0, &moved, &online);
    let f = a.figures("x", &mut []);
    // MRIF: 100*2 + 900*1 + 100*1 = 1200 of 1000*3 = 3000.
    assert!((f.mrif_exposure - 0.4).abs() < 1e-12, "{f:?}");
    // vCPU-time: 2 + 1 + 1 = 4 of 6.
    assert!((f.mrif_vcpu_time - 4.0 / 6.0).abs() < 1e-12, "{f:?}");
    assert_eq!((f.demotions, f.migrations), (1, 0));
}

#[test]
fn the_series_shows_each_step() {
    let mut a = Accounting::default();
    let online = [true, true];
    a.sample(
        0.0,
        1.0,
        &[
            (id("a", 0), 300.0, On::VsFile { hart: 1 }),
            (id("a", 1), 100.0, On::Mrif { hart: 0 }),
        ],
        &online,
    );
    a.sample(1.0, 1.0, &[], &online);
    assert_eq!(a.series.t, [0.0, 1.0]);
    assert_eq!(a.series.exposure, [0.25, 0.0]);
    assert_eq!(a.series.used, [vec![0, 1], vec![0, 0]]);
}

#[test]
fn a_release_is_not_a_demotion_and_a_stop_is_a_failure_once() {
    let mut a = Accounting::default();
    let online = [true];
    a.sample(
        0.0,
        1.0,
        &[(id("a", 0), 0.0, On::VsFile { hart: 0 })],
        &online,
    );
    a.sample(0.0, 1.0, &[], &online); // released
    a.sample(0.0, 1.0, &[(id("g", 0), 0.0, On::Stopped)], &online);
    a.sample(0.0, 1.0, &[(id("g", 0), 0.0, On::Stopped)], &online);
    let f = a.figures("x", &mut []);
    assert_eq!((f.demotions, f.hwaccel_entry_failures), (0, 1));
    // Nobody on MRIF nor any rate: exposure 0 of 0 is 0.
    assert_eq!(f.mrif_exposure, 0.0);
    // 3 s placed, 2 of them stopped: a stopped vCPU counts as off a VS-file.
    assert!((f.mrif_vcpu_time - 2.0 / 3.0).abs() < 1e-12, "{f:?}");
}

#[test]
fn threads_per_hart_count_online_harts_only() {
    let mut a = Accounting::default();
    let now = [
        (id("a", 0), 0.0, On::Mrif { hart: 0 }),
        (id("a", 1), 0.0, On::Mrif { hart: 0 }),
        (id("a", 2), 0.0, On::Mrif { hart: 0 }),
        (id("a", 3), 0.0, On::VsFile { hart: 1 }),
    ];
    a.sample(0.0, 1.0, &now, &[true, true, false]);
    let moved = [
        (id("a", 0), 0.0, On::Mrif { hart: 1 }),
        (id("a", 1), 0.0, On::Mrif { hart: 0 }),
        (id("a", 2), 0.0, On::Mrif { hart: 0 }),
        (id("a", 3), 0.0, On::VsFile { hart: 1 }),
    ];
    a.sample(0.0, 1.0, &moved, &[true, true, false]);
    let f = a.figures("x", &mut [30.0, 10.0, 20.0]);
    assert_eq!((f.max_threads_per_hart, f.migrations), (3, 1));
    // Samples 3, 1, 2, 2: p99 is the largest; balanced is 2, worst 3 - 2.
    assert_eq!(f.p99_threads_per_hart, 3);
    assert!((f.max_imbalance - 1.0).abs() < 1e-12);
    assert_eq!((f.decision_p50_us, f.decision_p99_us), (20.0, 30.0));
}

#[test]
fn refusals_are_counted_by_class() {
    let mut r = Refusals::default();
    r.count(Class::Guaranteed);
    r.count(Class::Guaranteed);
    r.count(Class::BestEffort);
    assert_eq!((r.guaranteed, r.burstable, r.best_effort), (2, 0, 1));
}
