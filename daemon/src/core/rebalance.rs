//! Rebalancing by demand (issue 14): when a burstable vCPU waiting on MRIF
//! takes far more interrupts than a burstable vCPU holding a VS-file, the
//! quiet one gives its file up. It moves to a hart where KVM holds every
//! line (so its AUTO entry takes none), its line frees at that entry, and
//! promotion hands the line to the busiest waiter, the one chosen here.

use crate::core::ledger::{Ledger, Millis, VictimKey, WaitKey};
use crate::core::policy::Move;
use crate::core::{Backing, HartId, Topology, VcpuKey};

/// The waiter must take at least this many times the holder's interrupts...
pub const MIN_RATIO: f64 = 4.0;
/// ...and this many more a second: a migration costs more than a few traps.
pub const MIN_GAIN_PER_SECOND: f64 = 1000.0;
/// Waiters (busiest first) and holders (quietest first) looked at per
/// decision: bounds a tick's work on a host of thousands of vCPUs.
const LOOKED_AT: usize = 64;

/// One rebalance: `demote` gives its file up so that `favoured` gets it;
/// `cleared` are the vCPUs that waited on the demoted one's hart, moved to
/// wait elsewhere, or KVM would hand the line to whichever of them entered
/// first.
#[derive(Debug, Clone, PartialEq)]
pub struct Rebalance {
    pub demote: Move,
    pub cleared: Vec<Move>,
    pub favoured: VcpuKey,
    pub favoured_rate: f64,
    pub demoted_rate: f64,
}

/// At most one rebalance: the first waiter that may move now (by priority,
/// then busiest) that is far busier than a holder of no higher priority on
/// a hart its VM may use, and the quietest such holder. Nothing while a line is being released anywhere (a swap
/// or rebalance is still in flight: promotion is about to hand it out).
pub fn plan_rebalance(
    topology: &Topology,
    ledger: &Ledger,
    now: Millis,
    min_interval: Millis,
) -> Option<Rebalance> {
    let in_flight = (0..topology.len() as HartId).any(|h| {
        let l = ledger.load(h);
        l.releasing > l.stuck
    });
    if in_flight {
        return None;
    }
    let moved_recently =
        |t: Option<Millis>| t.is_some_and(|t| now.saturating_sub(t) < min_interval);
    let record =
        |seq: u64, vcpu: u32| &ledger.vm_by_seq(seq).expect("indexed").vcpus[vcpu as usize];
    // Holders that may give their file up at all, quietest first, with
    // their harts and rates: the same for every waiter.
    let holders: Vec<(&VictimKey, HartId, f64)> = ledger
        .victims()
        .filter(|v| {
            let r = record(v.seq(), v.vcpu);
            !moved_recently(r.moved_at) && r.held_on == Some(r.hart)
        })
        .take(LOOKED_AT)
        .map(|v| {
            (
                v,
                record(v.seq(), v.vcpu).hart,
                ledger.rate_at(v.seq(), v.vcpu),
            )
        })
        .collect();
    ledger.waiting().take(LOOKED_AT).find_map(|w| {
        let favoured_rate = ledger.rate_at(w.seq, w.vcpu);
        let waiter_vm = ledger.vm_by_seq(w.seq).expect("indexed");
        let waiter = record(w.seq, w.vcpu);
        holders.iter().find_map(|&(v, hart, demoted_rate)| {
            // A waiter on the holder's hart gets the line where it is: no
            // move, so the anti-thrash interval does not hold it back.
            let may_get = waiter.hart == hart || !moved_recently(waiter.moved_at);
            let eligible = may_get
                && waiter_vm.allows(hart)
                && v.priority <= w.priority.0
                && worth_it(favoured_rate, demoted_rate);
            if !eligible {
                return None;
            }
            let (demote, cleared) = moves(topology, ledger, v, w)?;
            Some(Rebalance {
                demote,
                cleared,
                favoured: ledger.key_of(w.seq, w.vcpu),
                favoured_rate,
                demoted_rate,
            })
        })
    })
}

/// Whether a waiter taking `waiting` interrupts a second is worth the line
/// of a holder taking `held`.
fn worth_it(waiting: f64, held: f64) -> bool {
    waiting >= MIN_RATIO * held && waiting - held >= MIN_GAIN_PER_SECOND
}

/// The holder's move and those of the other vCPUs waiting on its hart,
/// each to the least loaded hart where KVM holds every line (its AUTO
/// entry takes none there); `None` if one of them has nowhere to go.
fn moves(
    topology: &Topology,
    ledger: &Ledger,
    v: &VictimKey,
    w: &WaitKey,
) -> Option<(Move, Vec<Move>)> {
    let from = ledger.vm_by_seq(v.seq()).expect("indexed").vcpus[v.vcpu as usize].hart;
    let mut threads: Vec<u32> = (0..topology.len() as HartId)
        .map(|h| ledger.load(h).vcpus)
        .collect();
    let mut away = |seq: u64, vcpu: u32| {
        let vm = ledger.vm_by_seq(seq).expect("indexed");
        let to = (0..topology.len() as HartId)
            .filter(|&h| {
                h != from
                    && vm.allows(h)
                    && ledger.eligible(topology, h)
                    && ledger.safe_for_waiting(topology, h)
            })
            .min_by_key(|&h| (threads[h as usize], h))?;
        threads[to as usize] += 1;
        Some(Move {
            key: ledger.key_of(seq, vcpu),
            from,
            to,
            backing: Backing::Mrif,
        })
    };
    let demote = away(v.seq(), v.vcpu)?;
    let others: Vec<(u64, u32)> = ledger
        .waiting_on(from)
        .copied()
        .filter(|&q| q != (w.seq, w.vcpu))
        .collect();
    let cleared = others
        .into_iter()
        .map(|(seq, vcpu)| away(seq, vcpu))
        .collect::<Option<Vec<Move>>>()?;
    Some((demote, cleared))
}

#[cfg(test)]
#[path = "rebalance_tests.rs"]
mod tests;
