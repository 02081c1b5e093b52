//! Making changes durable: each commit appends one log record of what
//! changed (the VMs touched, not the whole state) with one `fdatasync`; a
//! whole snapshot is written at start, after a failed append, and when the
//! log outgrows the last one. Events are published only once durable.

use std::sync::Arc;
use std::time::Instant;

use tracing::{error, warn};

use crate::core::VcpuKey;
use crate::core::ledger::Millis;
use crate::engine::{Engine, EngineError};
use crate::repeats::suffix;
use crate::state::{Delta, Op, Snapshot, StateError};

/// When a checkpoint commits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Commits {
    /// At once: the caller is told only once its change is durable.
    Each,
    /// At the end of the group (the actor's batch of jobs), all in one
    /// record; `due` is the clock reading of the last checkpoint asked for.
    Grouped { due: Option<Millis> },
}

impl Engine {
    /// Makes the current state durable (nothing is written when nothing
    /// changed). Every acknowledged change calls it before replying; in a
    /// group it only asks for the group's commit.
    pub(crate) fn checkpoint(&mut self, now: Millis) -> Result<(), EngineError> {
        match &mut self.commits {
            Commits::Each => self.commit(now).map_err(EngineError::State),
            Commits::Grouped { due } => {
                *due = Some(due.map_or(now, |d| d.max(now)));
                Ok(())
            }
        }
    }

    /// From now until `end_group`, checkpoints share one commit.
    pub fn begin_group(&mut self) {
        self.commits = Commits::Grouped { due: None };
    }

    /// Commits what the group changed, if it asked to: one record, one
    /// `fdatasync`, then the group's events are published.
    pub fn end_group(&mut self) -> Result<(), Arc<StateError>> {
        let due = match self.commits {
            Commits::Grouped { due } => due,
            Commits::Each => None,
        };
        self.commits = Commits::Each;
        due.map_or(Ok(()), |now| self.commit(now))
    }

    fn commit(&mut self, now: Millis) -> Result<(), Arc<StateError>> {
        let Some(store) = &self.store else {
            self.forget_changes();
            self.events.publish();
            return Ok(());
        };
        let started = Instant::now();
        let written = if store.needs_snapshot() {
            self.write_snapshot(now).map(|()| true)
        } else {
            self.append_changes(now)
        };
        match written {
            Ok(wrote) => {
                if wrote {
                    self.metrics
                        .checkpoint_written(started.elapsed().as_secs_f64());
                }
                self.repeats.clear("checkpoint");
                self.events.publish();
                self.compact_if_due(now);
                Ok(())
            }
            Err(e) => {
                self.metrics.checkpoint_failed();
                if let Some(held) = self.repeats.check("checkpoint", now) {
                    error!("state not durable: {e}{}", suffix(held));
                }
                Err(Arc::new(e))
            }
        }
    }

    /// Appends what changed since the last commit; false if nothing did.
    /// A failed append loses the record, not the changes: the store then
    /// wants a whole snapshot next.
    fn append_changes(&mut self, now: Millis) -> Result<bool, StateError> {
        let delta = self.changes(now);
        if delta.ops.is_empty() {
            return Ok(false);
        }
        let store = self.store.as_mut().expect("checked by commit");
        store.append(&delta.encode())?;
        self.metrics.state_log_bytes(store.log_bytes());
        Ok(true)
    }

    /// The record of what changed since the last commit, taken from the
    /// ledger's and the engine's change marks.
    fn changes(&mut self, now: Millis) -> Delta {
        let changed = self.ledger.take_changes();
        let mut ids = std::mem::take(&mut self.host_changed);
        ids.extend(changed.vms);
        let mut ops: Vec<Op> = ids
            .into_iter()
            .map(|id| match self.ledger.vm(&id) {
                Some(vm) => Op::Put {
                    vm: Box::new(vm.clone()),
                    host: self.host.save_vm(&id),
                },
                None => Op::Remove { vm: id },
            })
            .collect();
        if changed.drained {
            ops.push(Op::Drained {
                harts: self.ledger.drained_harts(),
            });
        }
        if std::mem::take(&mut self.failed_changed) {
            ops.push(Op::FailedEntries {
                keys: self.sorted_failed_entries(),
            });
        }
        let host = self.host.save();
        if self.saved_host.as_ref() != Some(&host) {
            ops.push(Op::Host { host: host.clone() });
            self.saved_host = Some(host);
        }
        Delta {
            at: now,
            next_seq: self.ledger.next_seq(),
            ops,
        }
    }

    fn sorted_failed_entries(&self) -> Vec<VcpuKey> {
        let mut keys: Vec<VcpuKey> = self.failed_entries.iter().cloned().collect();
        keys.sort();
        keys
    }

    /// Everything, as a snapshot.
    pub(crate) fn snapshot(&self) -> Snapshot {
        let host_vms = self
            .ledger
            .vms()
            .map(|vm| (vm.id.clone(), self.host.save_vm(&vm.id)))
            .filter(|(_, part)| !part.is_null())
            .collect();
        Snapshot {
            host_kind: self.host.kind().to_string(),
            ledger: self.ledger.save(),
            failed_entries: self.sorted_failed_entries(),
            host: self.host.save(),
            host_vms,
            log: 0,
        }
    }

    /// Writes the whole state as the new snapshot; the change marks are
    /// cleared only once it is durable.
    fn write_snapshot(&mut self, now: Millis) -> Result<(), StateError> {
        let snapshot = self.snapshot();
        let host = snapshot.host.clone();
        let store = self.store.as_mut().expect("checked by commit");
        store.write_snapshot(now, snapshot)?;
        self.metrics.state_log_bytes(0);
        self.metrics.compacted();
        self.forget_changes();
        self.saved_host = Some(host);
        Ok(())
    }

    fn forget_changes(&mut self) {
        self.ledger.take_changes();
        self.host_changed.clear();
        self.failed_changed = false;
    }

    /// Folds the log into a new snapshot once it outgrew the last one.
    /// The records are durable already: a failure here is only logged,
    /// and tried again after the next commit.
    fn compact_if_due(&mut self, now: Millis) {
        if !self.store.as_ref().is_some_and(|s| s.wants_compaction()) {
            return;
        }
        if let Err(e) = self.write_snapshot(now)
            && let Some(held) = self.repeats.check("compaction", now)
        {
            warn!("compacting the state log: {e}{}", suffix(held));
        }
    }
}

#[cfg(test)]
#[path = "durable_tests.rs"]
mod tests;
