//! The event stream: what ifad did, numbered, kept in a bounded ring so a
//! watcher can resume where it left off, and fanned out live. Numbers start
//! from the wall clock (milliseconds x 1000), so they keep growing across
//! restarts and a resume point from before one reads as expired, not as
//! some other event.

use std::collections::VecDeque;
use std::time::{SystemTime, UNIX_EPOCH};

use tokio::sync::broadcast;

use crate::core::{Backing, Class, HartId, VmId};

/// Events kept for resuming watchers.
pub const KEPT: usize = 4096;
/// Events a live watcher may fall behind before it is cut off.
const LIVE_BACKLOG: usize = 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    Placed,
    Refused,
    Demoted,
    Promoted,
    Migrated,
    Drained,
    Drift,
    Released,
    Hart,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub seq: u64,
    pub time_unix_ms: i64,
    pub kind: EventKind,
    pub vm: Option<VmId>,
    pub vcpu: Option<u32>,
    pub hart: Option<HartId>,
    pub from: Option<HartId>,
    pub to: Option<HartId>,
    pub backing: Option<Backing>,
    pub class: Option<Class>,
    pub message: String,
}

impl Event {
    pub fn new(kind: EventKind, message: impl Into<String>) -> Event {
        Event {
            seq: 0,
            time_unix_ms: 0,
            kind,
            vm: None,
            vcpu: None,
            hart: None,
            from: None,
            to: None,
            backing: None,
            class: None,
            message: message.into(),
        }
    }

    pub fn vm(mut self, vm: &VmId) -> Event {
        self.vm = Some(vm.clone());
        self
    }

    pub fn vcpu(mut self, vcpu: u32) -> Event {
        self.vcpu = Some(vcpu);
        self
    }

    pub fn hart(mut self, hart: HartId) -> Event {
        self.hart = Some(hart);
        self
    }

    pub fn moved(mut self, from: HartId, to: HartId, backing: Backing) -> Event {
        self.from = Some(from);
        self.to = Some(to);
        self.backing = Some(backing);
        self
    }

    pub fn class(mut self, class: Class) -> Event {
        self.class = Some(class);
        self
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "resume point {after} has expired: events kept are {oldest} to {newest}; list again and watch from now"
)]
pub struct Expired {
    pub after: u64,
    pub oldest: u64,
    /// The last event so far (oldest - 1 if there is none).
    pub newest: u64,
}

/// A watcher's start: what it missed, the live feed, and the number of the
/// last event before the feed (where to resume if it falls behind at once).
pub struct Subscription {
    pub missed: Vec<Event>,
    pub live: broadcast::Receiver<Event>,
    pub last: u64,
}

pub struct EventLog {
    /// Events of a change not yet durable: published with its checkpoint,
    /// so no watcher sees a change a crash would take back.
    pending: Vec<Event>,
    next: u64,
    kept: VecDeque<Event>,
    live: broadcast::Sender<Event>,
}

fn unix_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

impl Default for EventLog {
    fn default() -> Self {
        EventLog {
            pending: Vec::new(),
            next: unix_ms().max(0) as u64 * 1000,
            kept: VecDeque::with_capacity(KEPT),
            live: broadcast::channel(LIVE_BACKLOG).0,
        }
    }
}

impl EventLog {
    /// Records an event of the change being made; see `publish`.
    pub fn emit(&mut self, event: Event) {
        self.pending.push(event);
    }

    /// Sends the events of the changes now durable, in order.
    pub fn publish(&mut self) {
        for event in std::mem::take(&mut self.pending) {
            self.send(event);
        }
    }

    /// Sends at once an event that changed nothing (a refusal).
    pub fn emit_now(&mut self, event: Event) {
        self.send(event);
    }

    fn send(&mut self, mut event: Event) {
        event.seq = self.next;
        event.time_unix_ms = unix_ms();
        self.next += 1;
        if self.kept.len() == KEPT {
            self.kept.pop_front();
        }
        self.kept.push_back(event.clone());
        // An error only says nobody is watching right now: the event is
        // kept above for watchers that come later.
        if self.live.send(event).is_err() { /* no live watcher */ }
    }

    /// What a watcher resuming after `after` missed, and the live feed
    /// from there on, taken together so nothing falls between them.
    pub fn subscribe(&self, after: Option<u64>) -> Result<Subscription, Expired> {
        let live = self.live.subscribe();
        let last = self.next - 1;
        let Some(after) = after else {
            return Ok(Subscription {
                missed: Vec::new(),
                live,
                last,
            });
        };
        let oldest = self.kept.front().map_or(self.next, |e| e.seq);
        // Older than what is kept, or from the future (a daemon before a
        // clock step back): either way, events would be missed silently.
        if after.saturating_add(1) < oldest || after > last {
            return Err(Expired {
                after,
                oldest,
                newest: last,
            });
        }
        let missed = self
            .kept
            .iter()
            .filter(|e| e.seq > after)
            .cloned()
            .collect();
        Ok(Subscription { missed, live, last })
    }

    /// The sequence number the next event will get.
    pub fn next_seq(&self) -> u64 {
        self.next
    }
}

#[cfg(test)]
#[path = "events_tests.rs"]
mod tests;
