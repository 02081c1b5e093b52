//! Repeated identical failures are counted, not printed: the first one is
//! logged, then at most one line per interval saying how many more there
//! were. A failure that repeats every tick must not flood the journal.

use std::collections::HashMap;

use crate::core::ledger::Millis;

/// At most one line per key this often.
pub const INTERVAL: Millis = 60_000;

#[derive(Debug, Default)]
pub struct Repeats {
    seen: HashMap<String, Seen>,
}

#[derive(Debug)]
struct Seen {
    logged_at: Millis,
    since: u64,
}

impl Repeats {
    /// Whether to log this occurrence of `key` now: `Some(n)` with the `n`
    /// occurrences held back since the last line, or `None` to stay quiet.
    pub fn check(&mut self, key: &str, now: Millis) -> Option<u64> {
        // Keys quiet for long are forgotten, so one-off failures (an IRQ
        // that moved once) do not pile up.
        if self.seen.len() > 64 {
            self.seen
                .retain(|_, s| now.saturating_sub(s.logged_at) < 10 * INTERVAL);
        }
        match self.seen.get_mut(key) {
            None => {
                self.seen.insert(
                    key.to_string(),
                    Seen {
                        logged_at: now,
                        since: 0,
                    },
                );
                Some(0)
            }
            Some(s) if now.saturating_sub(s.logged_at) >= INTERVAL => {
                let held = s.since;
                s.logged_at = now;
                s.since = 0;
                Some(held)
            }
            Some(s) => {
                s.since += 1;
                None
            }
        }
    }

    /// The failure stopped: the next one is news again.
    pub fn clear(&mut self, key: &str) {
        self.seen.remove(key);
    }
}

/// " (and N more like it since the last report)" or "".
pub fn suffix(held: u64) -> String {
    if held == 0 {
        String::new()
    } else {
        format!(" ({held} more like it since the last report)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_is_logged_then_one_line_per_interval_with_the_count() {
        let mut r = Repeats::default();
        assert_eq!(r.check("disk", 0), Some(0));
        for t in 1..120 {
            assert_eq!(r.check("disk", t * 500), None, "at {t}");
        }
        assert_eq!(r.check("disk", 60_000), Some(119));
        assert_eq!(r.check("disk", 60_500), None);
        // Another failure is its own story.
        assert_eq!(r.check("irq 42", 60_500), Some(0));
        r.clear("disk");
        assert_eq!(r.check("disk", 61_000), Some(0));
        assert_eq!(suffix(0), "");
        assert_eq!(suffix(3), " (3 more like it since the last report)");
    }
}
