use super::*;

fn rate(r: f64) -> Option<IrqRate> {
    Some(IrqRate::try_from(r).unwrap())
}

/// Readings of a counter that climbs at `per_second`, one a second after
/// the last reading (`count` at `from` ms); returns the count reached.
fn feed(p: &mut Pressure, per_second: u64, from: Millis, seconds: u64, count: u64) -> u64 {
    let mut c = count;
    for s in 1..=seconds {
        c += per_second;
        p.observe(None, Some(c), from + s * 1000);
    }
    c
}

fn started(count: u64) -> Pressure {
    let mut p = Pressure::default();
    p.observe(None, Some(count), 0);
    p
}

#[test]
fn levels_climb_four_per_doubling_from_zero() {
    assert_eq!(PressureLevel::of(0.0), PressureLevel(0));
    assert_eq!(PressureLevel::of(-5.0), PressureLevel(0));
    assert_eq!(PressureLevel::of(1.0), PressureLevel(4));
    assert_eq!(PressureLevel::of(3.0), PressureLevel(8));
    assert_eq!(PressureLevel::of(1e7), PressureLevel(93));
    assert!(PressureLevel::of(20_000.0) > PressureLevel::of(500.0));
}

#[test]
fn a_hint_sets_the_level_until_something_is_measured() {
    let p = Pressure::hinted(rate(50_000.0));
    assert_eq!(p.level(), PressureLevel::of(50_000.0));
    assert_eq!(p.per_second(rate(50_000.0)), 50_000.0);
    assert_eq!(Pressure::hinted(None).level(), PressureLevel(0));
}

#[test]
fn the_first_rate_is_the_counted_one_then_it_is_smoothed() {
    let mut p = Pressure::default();
    p.observe(None, Some(100), 0);
    assert_eq!(p.per_second(None), 0.0, "one reading is no rate");
    p.observe(None, Some(2100), 2000);
    assert_eq!(p.per_second(None), 1000.0);
    // The rate drops to 0: after one time constant 1/e of it is left.
    let steps = SMOOTHING / 1000;
    for s in 1..=steps {
        p.observe(None, Some(2100), 2000 + s * 1000);
    }
    let left = p.per_second(None) / 1000.0;
    assert!((left - (-1.0f64).exp()).abs() < 1e-9, "{left}");
    // The level follows to within the hysteresis.
    let exact = PressureLevel::of(p.per_second(None)).0;
    assert!(
        p.level().0.abs_diff(exact) < 2,
        "{:?} for {exact}",
        p.level()
    );
    assert!(p.level() < PressureLevel::of(1000.0));
}

#[test]
fn an_unseen_vcpu_keeps_its_pressure_and_counts_anew_once_seen() {
    let mut p = started(0);
    let c = feed(&mut p, 5000, 0, 3, 0);
    assert_eq!(p.per_second(None), 5000.0);
    p.observe(None, None, 4000);
    assert_eq!(p.per_second(None), 5000.0);
    // Seen again much later with a count far on: no rate over the gap.
    p.observe(None, Some(c + 1_000_000), 9000);
    assert_eq!(p.per_second(None), 5000.0);
    p.observe(None, Some(c + 1_005_000), 10_000);
    assert_eq!(p.per_second(None), 5000.0);
}

#[test]
fn a_count_that_went_back_is_a_new_base_not_a_rate() {
    let mut p = started(10_000);
    let c = feed(&mut p, 300, 0, 2, 10_000);
    p.observe(None, Some(5), 3000);
    assert_eq!(p.per_second(None), 300.0);
    p.observe(None, Some(305), 4000);
    assert_eq!(p.per_second(None), 300.0);
    assert!(c > 5);
    // Readings at one moment, or a clock that went back, give no rate.
    p.observe(None, Some(10_000), 4000);
    p.observe(None, Some(20_000), 3500);
    assert_eq!(p.per_second(None), 300.0);
}

#[test]
fn a_measurement_below_the_hint_does_not_lower_it() {
    let hint = rate(40_000.0);
    let mut p = Pressure::hinted(hint);
    p.observe(hint, Some(0), 0);
    p.observe(hint, Some(10), 1000);
    assert_eq!(p.per_second(hint), 40_000.0);
    assert_eq!(p.level(), PressureLevel::of(40_000.0));
    // Measured above it, the measurement counts.
    for s in 2..=60 {
        p.observe(hint, Some(10 + (s - 1) * 100_000), s * 1000);
    }
    assert!(p.per_second(hint) > 90_000.0, "{}", p.per_second(hint));
}

#[test]
fn the_level_holds_within_one_step_and_moves_beyond() {
    let mut p = started(0);
    let c = feed(&mut p, 1000, 0, 2, 0);
    let settled = p.level();
    assert_eq!(settled, PressureLevel::of(1000.0));
    // 1,150/s is one level up: the level stays.
    let c = feed(&mut p, 1150, 2000, 60, c);
    assert_eq!(PressureLevel::of(p.per_second(None)).0, settled.0 + 1);
    assert_eq!(p.level(), settled);
    // 1,500/s is two levels up: it moves.
    feed(&mut p, 1500, 62_000, 60, c);
    assert!(p.level().0 >= settled.0 + 2, "{:?}", p.level());
}
