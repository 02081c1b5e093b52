//! Taking in what the host shows: only KVM decides which AUTO vCPU gets a
//! free line (the first to enter), so after every run the ledger learns from
//! the host. Where KVM decided differently from the ledger's prediction
//! (possible on a real host, where entry order is a race), KVM wins; the
//! decisions that follow (who keeps a raced line, where an over-committed
//! vCPU goes, when a VM is failed) are made here, purely, and returned as
//! changes for the engine to pin and apply.

use std::borrow::Cow;
use std::collections::HashSet;

use crate::core::ledger::{Millis, VcpuRecord};
use crate::core::policy::{self, Move};
use crate::core::{Backing, Class, CoreError, HartId, Ledger, Topology, VcpuKey};

/// What the host shows of one vCPU's interrupt file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Observed {
    /// The host cannot tell (not run yet, or no way to see it).
    Unknown,
    VsFile {
        hart: HartId,
        line: u8,
    },
    Mrif {
        hart: HartId,
    },
    /// A HWACCEL entry failed for lack of a VS-file on that hart.
    EntryFailed {
        hart: HartId,
    },
}

/// One decision, in the order it was made; `apply` records it in the
/// ledger. Only `MovedAway` and `Rehomed` also need the host (a re-pin).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Where KVM holds the vCPU's line now (`None`: on MRIF), as shown.
    Observed {
        key: VcpuKey,
        held_on: Option<HartId>,
        line: Option<u8>,
    },
    /// Two AUTO vCPUs waiting on `hart` raced for a line freed there; the
    /// ledger promised it to `loser`, KVM gave it to `winner`, which
    /// entered first. That is the race, not a misprediction: the promise
    /// moves to the winner.
    RaceWon {
        winner: VcpuKey,
        loser: VcpuKey,
        hart: HartId,
        line: u8,
    },
    /// Correction: KVM gave an AUTO vCPU a line the ledger had it waiting
    /// for, with nobody there to have lost it.
    UnexpectedFile {
        key: VcpuKey,
        hart: HartId,
        line: u8,
    },
    /// Correction: KVM left an AUTO vCPU the ledger gave a line on MRIF,
    /// and has no line left there.
    LeftOnMrif { key: VcpuKey, hart: HartId },
    /// Correction: the hart is over-committed, and this burstable vCPU,
    /// promised a line there but not holding one, goes back to MRIF.
    PromiseVoided { key: VcpuKey, hart: HartId },
    /// Correction: the hart is over-committed, and this burstable vCPU,
    /// holding a line promised to another, moves to a hart where it may
    /// wait on MRIF, so that KVM frees the line at its next entry.
    MovedAway(Move),
    /// Correction: as `MovedAway`, but no hart can take it; nothing
    /// changes and the engine says so.
    NowhereToGo { key: VcpuKey, hart: HartId },
    /// Correction: a guaranteed vCPU lost its promised line to an AUTO
    /// vCPU that may not leave (a hart came back online while it was
    /// halted); it moves to a free file elsewhere.
    Rehomed(Move),
    /// Correction: as `Rehomed`, but no file is free where it may go: its
    /// next entry will fail, so its VM is failed now and no longer holds
    /// the hart's files.
    Stranded { key: VcpuKey, hart: HartId },
    /// A HWACCEL entry failed (first seen now): the VMM stops the VM.
    EntryFailed { key: VcpuKey, hart: HartId },
}

impl Change {
    /// Whether it corrects a prediction of the ledger that KVM contradicted.
    pub fn is_correction(&self) -> bool {
        !matches!(
            self,
            Change::Observed { .. } | Change::RaceWon { .. } | Change::EntryFailed { .. }
        )
    }

    /// The re-pin the host must carry out, if any.
    pub fn pin(&self) -> Option<&Move> {
        match self {
            Change::MovedAway(m) | Change::Rehomed(m) => Some(m),
            _ => None,
        }
    }
}

/// What reconciling decided, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reconciliation {
    pub changes: Vec<Change>,
}

impl Reconciliation {
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }

    pub fn corrections(&self) -> usize {
        self.count(Change::is_correction)
    }

    pub fn stranded(&self) -> usize {
        self.count(|c| matches!(c, Change::Stranded { .. }))
    }

    pub fn entry_failures(&self) -> usize {
        self.count(|c| matches!(c, Change::EntryFailed { .. }))
    }

    /// The re-pins, in the order they were decided.
    pub fn pins(&self) -> impl Iterator<Item = &Move> {
        self.changes.iter().filter_map(Change::pin)
    }

    /// Whether settling should run another round. A failed entry alone
    /// does not call for one: the engine never counted it as a change of
    /// the ledger, and a new round would change when promotions happen.
    pub fn settles_again(&self) -> bool {
        self.changes
            .iter()
            .any(|c| !matches!(c, Change::EntryFailed { .. }))
    }

    fn count(&self, pred: impl Fn(&Change) -> bool) -> usize {
        self.changes.iter().filter(|c| pred(c)).count()
    }
}

/// What an observation tells that the ledger does not know yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum News {
    /// A vCPU the ledger put on MRIF holds a line of its hart.
    GotFile { hart: HartId, line: u8 },
    /// A HWACCEL entry failed, not taken in before.
    EntryFailed { hart: HartId },
    Held {
        /// A burstable vCPU the ledger gave a VS-file runs on MRIF on its
        /// hart: it lost a race, or has not entered since.
        no_file: Option<HartId>,
        /// Where it holds a line (hart, line) when that differs from the
        /// record.
        held: Option<(Option<HartId>, Option<u8>)>,
    },
}

/// What `observed` tells about a vCPU whose record is `rec`, of a VM of
/// `class`; `None` if nothing (the common case once vCPUs have entered),
/// so that only news need reach `reconcile`. `already_failed`: whether its
/// failed entry was taken in before (asked only for a failed entry).
pub fn news(
    rec: &VcpuRecord,
    class: Class,
    observed: Observed,
    already_failed: impl FnOnce() -> bool,
) -> Option<News> {
    let (held_on, line, no_file) = match observed {
        Observed::VsFile { hart, line } if hart == rec.hart && rec.backing == Backing::Mrif => {
            return Some(News::GotFile { hart, line });
        }
        Observed::VsFile { hart, line } => (Some(hart), Some(line), None),
        Observed::Mrif { hart } => {
            let lost =
                class == Class::Burstable && hart == rec.hart && rec.backing == Backing::VsFile;
            (None, None, lost.then_some(hart))
        }
        Observed::EntryFailed { hart } => {
            return (!already_failed()).then_some(News::EntryFailed { hart });
        }
        Observed::Unknown => return None,
    };
    // As the ledger keeps it: a line only where the vCPU is pinned.
    let line = line.filter(|_| held_on == Some(rec.hart));
    let held = ((rec.held_on, rec.line) != (held_on, line)).then_some((held_on, line));
    (no_file.is_some() || held.is_some()).then_some(News::Held { no_file, held })
}

/// Decides what the ledger must learn from `seen` (per vCPU, what the host
/// shows; observations that are not `news` change nothing, and may be
/// left out). `already_failed`: vCPUs whose failed entry was already taken in.
/// `now` is only what the changes will be stamped with when applied.
pub fn reconcile(
    topology: &Topology,
    ledger: &Ledger,
    seen: &[(VcpuKey, Observed)],
    already_failed: &HashSet<VcpuKey>,
    now: Millis,
) -> Reconciliation {
    let mut d = Decider {
        topology,
        scratch: Cow::Borrowed(ledger),
        now,
        changes: Vec::new(),
    };
    let mut surprises = Surprises::default();
    for (key, observed) in seen {
        d.record(key, *observed, already_failed, &mut surprises);
    }
    d.settle_races(surprises);
    for hart in 0..topology.len() as HartId {
        d.resolve_overcommit(hart);
    }
    Reconciliation { changes: d.changes }
}

/// Applies every change in order; a change that fails does not stop the
/// rest. Returns the first error.
pub fn apply(ledger: &mut Ledger, changes: &[Change], now: Millis) -> Result<(), CoreError> {
    let mut first = Ok(());
    for change in changes {
        let result = apply_one(ledger, change, now);
        if first.is_ok() {
            first = result;
        }
    }
    first
}

fn apply_one(ledger: &mut Ledger, change: &Change, now: Millis) -> Result<(), CoreError> {
    match change {
        Change::Observed { key, held_on, line } => ledger.observed(key, *held_on, *line),
        Change::RaceWon {
            winner,
            loser,
            hart,
            line,
        } => {
            let lost = ledger.set_backing(loser, Backing::Mrif, now);
            let won = took_line(ledger, winner, *hart, *line, now);
            lost.and(won)
        }
        Change::UnexpectedFile { key, hart, line } => took_line(ledger, key, *hart, *line, now),
        Change::LeftOnMrif { key, .. } | Change::PromiseVoided { key, .. } => {
            ledger.set_backing(key, Backing::Mrif, now)
        }
        Change::MovedAway(m) | Change::Rehomed(m) => policy::apply_moves(ledger, [m], now),
        Change::NowhereToGo { .. } => Ok(()),
        Change::Stranded { key, .. } | Change::EntryFailed { key, .. } => {
            ledger.set_failed(&key.vm);
            Ok(())
        }
    }
}

/// KVM gave `key` line `line` of `hart`, where it is pinned.
fn took_line(
    ledger: &mut Ledger,
    key: &VcpuKey,
    hart: HartId,
    line: u8,
    now: Millis,
) -> Result<(), CoreError> {
    let backing = ledger.set_backing(key, Backing::VsFile, now);
    let observed = ledger.observed(key, Some(hart), Some(line));
    backing.and(observed)
}

/// Observations that differ from the ledger's prediction, kept until every
/// vCPU was seen: only then can races be told from mispredictions.
#[derive(Default)]
struct Surprises {
    /// KVM gave an AUTO vCPU a line the ledger had it waiting for.
    got_file: Vec<(VcpuKey, HartId, u8)>,
    /// An AUTO vCPU the ledger gave a line is on MRIF.
    no_file: Vec<(VcpuKey, HartId)>,
}

/// Makes decisions one after another on a scratch ledger, each applied
/// before the next is made, since later ones depend on earlier ones. The
/// ledger is copied only once something changes.
struct Decider<'a> {
    topology: &'a Topology,
    scratch: Cow<'a, Ledger>,
    now: Millis,
    changes: Vec<Change>,
}

impl Decider<'_> {
    fn decide(&mut self, change: Change) {
        // Every key comes from the ledger, so this cannot fail; if it did,
        // the engine's apply of the same change reports it.
        if let Err(e) = apply_one(self.scratch.to_mut(), &change, self.now) {
            debug_assert!(false, "reconcile decided a change it cannot apply: {e}");
        }
        self.changes.push(change);
    }

    fn ledger(&self) -> &Ledger {
        &self.scratch
    }

    fn cap(&self, hart: HartId) -> u32 {
        self.topology.hart(hart).map_or(0, |h| u32::from(h.vsfiles))
    }

    /// Takes in one observation, or keeps it as a surprise for later.
    fn record(
        &mut self,
        key: &VcpuKey,
        observed: Observed,
        already_failed: &HashSet<VcpuKey>,
        surprises: &mut Surprises,
    ) {
        let Ok(rec) = self.ledger().vcpu(key) else {
            return;
        };
        let Some(class) = self.ledger().vm(&key.vm).map(|r| r.class) else {
            return;
        };
        let Some(news) = news(rec, class, observed, || already_failed.contains(key)) else {
            return;
        };
        match news {
            News::GotFile { hart, line } => surprises.got_file.push((key.clone(), hart, line)),
            News::EntryFailed { hart } => {
                let key = key.clone();
                self.decide(Change::EntryFailed { key, hart });
            }
            News::Held { no_file, held } => {
                if let Some(hart) = no_file {
                    surprises.no_file.push((key.clone(), hart));
                }
                if let Some((held_on, line)) = held {
                    let key = key.clone();
                    self.decide(Change::Observed { key, held_on, line });
                }
            }
        }
    }

    /// Pairs each unexpected line with a vCPU on the same hart that was
    /// promised one but did not get it (a race); corrects the rest.
    fn settle_races(&mut self, surprises: Surprises) {
        let Surprises {
            got_file,
            mut no_file,
        } = surprises;
        let mut unexpected = Vec::new();
        for (winner, hart, line) in got_file {
            match no_file.iter().position(|(_, h)| *h == hart) {
                Some(i) => {
                    let (loser, _) = no_file.swap_remove(i);
                    self.decide(Change::RaceWon {
                        winner,
                        loser,
                        hart,
                        line,
                    });
                }
                None => unexpected.push((winner, hart, line)),
            }
        }
        // An AUTO vCPU left on MRIF where KVM still has a free line simply
        // has not entered since; only where KVM gave every line away did it
        // lose out. (No unexpected line is on its hart: it would have been
        // paired with it above.)
        for (key, hart) in no_file {
            if self.ledger().load(hart).held >= self.cap(hart) {
                self.decide(Change::LeftOnMrif { key, hart });
            }
        }
        for (key, hart, line) in unexpected {
            self.decide(Change::UnexpectedFile { key, hart, line });
        }
    }

    fn overcommit(&self, hart: HartId) -> u32 {
        self.ledger()
            .load(hart)
            .vsfiles_used
            .saturating_sub(self.cap(hart))
    }

    /// KVM handed a line to a waiting vCPU the ledger had promised to
    /// another (which had not entered yet): the promise is void. Burstable
    /// vCPUs promised a line here but not holding one go back to MRIF
    /// first; then holders move away so KVM frees their lines.
    fn resolve_overcommit(&mut self, hart: HartId) {
        let over = self.overcommit(hart);
        if over == 0 {
            return;
        }
        let mut promised = self.burstable_on_vsfile(hart);
        // Stable: in placement order within each group.
        promised.sort_by_key(|(holding, _)| *holding);
        for (holding, key) in promised.into_iter().take(over as usize) {
            if !holding {
                self.decide(Change::PromiseVoided { key, hart });
                continue;
            }
            let change = match self.waiting_hart_for(&key, hart) {
                Some(to) => Change::MovedAway(Move {
                    key,
                    from: hart,
                    to,
                    backing: Backing::Mrif,
                }),
                None => Change::NowhereToGo { key, hart },
            };
            self.decide(change);
        }
        self.rehome_unserved_guaranteed(hart);
    }

    /// Burstable vCPUs on a VS-file of `hart`, with whether they hold it.
    fn burstable_on_vsfile(&self, hart: HartId) -> Vec<(bool, VcpuKey)> {
        self.ledger()
            .vms()
            .filter(|vm| vm.class == Class::Burstable)
            .flat_map(|vm| {
                vm.vcpus
                    .iter()
                    .enumerate()
                    .filter(move |(_, v)| v.hart == hart && v.backing == Backing::VsFile)
                    .map(move |(i, v)| {
                        let key = VcpuKey {
                            vm: vm.id.clone(),
                            vcpu: i as u32,
                        };
                        (v.held_on == Some(hart), key)
                    })
            })
            .collect()
    }

    /// Where a vCPU leaving `from` may wait on MRIF: the least loaded hart
    /// (lowest id on ties) it may use that is safe for waiting.
    fn waiting_hart_for(&self, key: &VcpuKey, from: HartId) -> Option<HartId> {
        let l = self.ledger();
        (0..self.topology.len() as HartId)
            .filter(|&h| h != from && l.safe_for_waiting(self.topology, h))
            .filter(|&h| l.vm(&key.vm).is_some_and(|vm| vm.allows(h)))
            .min_by_key(|&h| (l.load(h).vcpus, h))
    }

    /// Still over: a guaranteed vCPU was promised a line that KVM handed
    /// to an AUTO vCPU which may not leave. It moves to a free file
    /// elsewhere if one is allowed; else its VM is failed.
    fn rehome_unserved_guaranteed(&mut self, hart: HartId) {
        let over = self.overcommit(hart);
        let unserved: Vec<VcpuKey> = self
            .unserved_guaranteed(hart)
            .into_iter()
            .take(over as usize)
            .collect();
        for key in unserved {
            let change = match self.free_hart_for(&key, hart) {
                Some(to) => Change::Rehomed(Move {
                    key,
                    from: hart,
                    to,
                    backing: Backing::VsFile,
                }),
                None => Change::Stranded { key, hart },
            };
            self.decide(change);
        }
    }

    /// Guaranteed vCPUs of live VMs pinned to `hart` without its line.
    fn unserved_guaranteed(&self, hart: HartId) -> Vec<VcpuKey> {
        self.ledger()
            .vms()
            .filter(|vm| vm.class == Class::Guaranteed && !vm.failed)
            .flat_map(|vm| {
                vm.vcpus
                    .iter()
                    .enumerate()
                    .filter(move |(_, v)| v.hart == hart && v.held_on != Some(hart))
                    .map(move |(i, _)| VcpuKey {
                        vm: vm.id.clone(),
                        vcpu: i as u32,
                    })
            })
            .collect()
    }

    /// The lowest hart other than `from`, with a free file, the vCPU may use.
    fn free_hart_for(&self, key: &VcpuKey, from: HartId) -> Option<HartId> {
        let l = self.ledger();
        (0..self.topology.len() as HartId)
            .filter(|&h| h != from && l.free(self.topology, h) > 0)
            .find(|&h| l.vm(&key.vm).is_some_and(|vm| vm.allows(h)))
    }
}

#[cfg(test)]
#[path = "reconcile_tests.rs"]
mod tests;
