//! Whether the daemon is live (its control loop still turns) and ready
//! (state restored, first reconcile done), for `/live`, `/ready` and the
//! systemd watchdog.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::clock::Clock;
use crate::core::ledger::Millis;

/// A control loop that has not completed a tick for this long is stuck.
pub const STALLED_AFTER: Millis = 10_000;

pub struct Liveness {
    clock: Clock,
    ready: AtomicBool,
    last_tick: AtomicU64,
}

impl Liveness {
    pub fn new(clock: Clock) -> Self {
        Liveness {
            clock,
            ready: AtomicBool::new(false),
            last_tick: AtomicU64::new(0),
        }
    }

    pub fn set_ready(&self) {
        self.last_tick.store(self.clock.now(), Ordering::Relaxed);
        self.ready.store(true, Ordering::Relaxed);
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }

    /// The control loop completed a tick.
    pub fn ticked(&self) {
        self.last_tick.store(self.clock.now(), Ordering::Relaxed);
    }

    /// Live while starting (a restore may take a while) and while ticks
    /// keep completing.
    pub fn is_live(&self) -> bool {
        !self.is_ready()
            || self
                .clock
                .now()
                .saturating_sub(self.last_tick.load(Ordering::Relaxed))
                < STALLED_AFTER
    }
}
