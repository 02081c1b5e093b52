//! The engine's time: milliseconds since the daemon started, monotonic. The
//! core never reads a clock; callers pass it `now`.

use std::time::Instant;

use crate::core::ledger::Millis;

#[derive(Debug, Clone, Copy)]
pub struct Clock {
    start: Instant,
}

impl Clock {
    pub fn start() -> Self {
        Clock {
            start: Instant::now(),
        }
    }

    pub fn now(&self) -> Millis {
        self.start.elapsed().as_millis() as Millis
    }
}
