//! Interrupt pressure per vCPU (issue 14): how many interrupts a second it
//! takes, from what the host counts and from the placement's hint, smoothed,
//! and cut into levels that change only with hysteresis, so that policy
//! orders vCPUs by demand without reordering them on every wobble.
//!
//! The host sees only some interrupts (an IPI into a VS-file never exits), so
//! a measurement is a lower bound: the pressure is the larger of the hint and
//! the smoothed measurement. While the host cannot see a vCPU at all, the
//! last measurement stands.

use crate::core::IrqRate;
use crate::core::ledger::Millis;

/// Time constant of the smoothing: a step in rate is 63 % in after this.
pub const SMOOTHING: Millis = 10_000;
/// Levels per doubling of the rate.
const LEVELS_PER_OCTAVE: f64 = 4.0;
/// A level moves only once the smoothed rate is this many levels away (a
/// factor of about 1.4), so a rate on a boundary does not flap.
const HYSTERESIS_LEVELS: u16 = 2;

/// Pressure, coarsened: `4 * log2(1 + rate)`, rounded down. Higher is busier.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PressureLevel(pub u16);

impl PressureLevel {
    pub fn of(per_second: f64) -> Self {
        // Rates are finite and at most 1e7 (hints) or counted: the cast
        // cannot overflow; a negative or NaN rate counts as none.
        PressureLevel((LEVELS_PER_OCTAVE * (1.0 + per_second.max(0.0)).log2()) as u16)
    }
}

/// What a host counts of one vCPU's interrupts at one moment: a cumulative
/// count, or nothing it can see now.
pub type InterruptCount = Option<u64>;

/// One vCPU's measured demand.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Pressure {
    /// Smoothed measured rate; `None` until two readings were taken.
    measured: Option<f64>,
    /// The last reading, the base of the next rate.
    last: Option<(u64, Millis)>,
    level: PressureLevel,
}

impl Pressure {
    /// Before anything is measured: the hint's level.
    pub fn hinted(hint: Option<IrqRate>) -> Self {
        Pressure {
            level: PressureLevel::of(hint.map_or(0.0, IrqRate::per_second)),
            ..Pressure::default()
        }
    }

    pub fn level(&self) -> PressureLevel {
        self.level
    }

    /// Interrupts per second: the hint or what was measured, whichever is
    /// larger.
    pub fn per_second(&self, hint: Option<IrqRate>) -> f64 {
        let hinted = hint.map_or(0.0, IrqRate::per_second);
        self.measured.map_or(hinted, |m| m.max(hinted))
    }

    /// Takes one reading. A vCPU the host cannot see keeps its pressure and
    /// starts a new base once it is seen again; so does a count that went
    /// back (its VMM restarted).
    pub fn observe(&mut self, hint: Option<IrqRate>, count: InterruptCount, now: Millis) {
        let Some(count) = count else {
            self.last = None;
            return self.relevel(hint);
        };
        if let Some((before, then)) = self.last
            && now > then
            && count >= before
        {
            let dt = (now - then) as f64;
            let rate = (count - before) as f64 * 1000.0 / dt;
            let weight = 1.0 - (-dt / SMOOTHING as f64).exp();
            self.measured = Some(self.measured.map_or(rate, |m| m + weight * (rate - m)));
        }
        if self.last.is_none_or(|(_, then)| now >= then) {
            self.last = Some((count, now));
        }
        self.relevel(hint);
    }

    fn relevel(&mut self, hint: Option<IrqRate>) {
        let now = PressureLevel::of(self.per_second(hint));
        if now.0.abs_diff(self.level.0) >= HYSTERESIS_LEVELS {
            self.level = now;
        }
    }
}

#[cfg(test)]
#[path = "pressure_tests.rs"]
mod tests;
