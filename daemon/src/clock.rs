//! The engine's time: monotonic milliseconds, from the daemon's start or,
//! after a restart, from where the saved state's clock stood (so the ages
//! in the ledger carry over). The core never reads a clock; callers pass
//! it `now`.

use std::time::Instant;

use crate::core::ledger::Millis;

#[derive(Debug, Clone, Copy)]
pub struct Clock {
    start: Instant,
    offset: Millis,
}

impl Clock {
    pub fn start() -> Self {
        Clock::resume_at(0)
    }

    /// Goes on from `offset`: the reading a saved state was taken at.
    pub fn resume_at(offset: Millis) -> Self {
        Clock {
            start: Instant::now(),
            offset,
        }
    }

    pub fn now(&self) -> Millis {
        self.offset + self.start.elapsed().as_millis() as Millis
    }
}
