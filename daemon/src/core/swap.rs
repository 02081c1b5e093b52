//! Swapping: which burstable vCPUs give up their VS-files to a guaranteed VM
//! that does not fit in the free ones, and where everything that moves goes,
//! in an order KVM's first come, first served cannot spoil.
//!
//! KVM's AUTO mode hands a free line to whichever vCPU enters first. So a
//! demoted vCPU may only wait on MRIF on a hart where every line is held (or
//! about to be taken by another burstable vCPU moving in now: a race among
//! AUTO vCPUs is harmless); never beside a line promised to the guaranteed
//! VM, which would fail its HWACCEL entry. When no hart is full, the swap
//! makes one: burstable vCPUs keep their files but move to fill a landing
//! hart, and the demoted wait there.

use std::collections::{BTreeSet, HashSet};

use crate::core::ledger::VictimKey;
use crate::core::policy::{Move, vsfiles};
use crate::core::request::PlaceSpec;
use crate::core::{Backing, CoreError, Facts, HartId, Ledger, Refusal, Topology};

/// What a swap gives the guaranteed VM, and what moves for it.
pub struct Swap {
    /// One entry per VS-file the VM gets: the hart it is on.
    pub files: Vec<HartId>,
    pub demotions: Vec<Move>,
    /// Waiting vCPUs moved off the harts that free lines, and burstable
    /// vCPUs moved with their VS-files to fill a landing hart.
    pub rehomes: Vec<Move>,
    /// Most vCPU threads on a hart that a vCPU moves to on MRIF.
    crowding: u32,
}

/// Whether the guaranteed VM takes the free files in its scope (and the
/// swap only what is missing), or leaves them to the vCPUs it displaces.
#[derive(Clone, Copy, PartialEq, Eq)]
enum FreeFiles {
    Taken,
    LeftToMovers,
}

/// One way to make room: whose files the VM takes, and who moves with a
/// VS-file to fill which hart first.
struct Attempt {
    demote: Vec<VictimKey>,
    fills: Vec<(VictimKey, HartId)>,
    free_files: FreeFiles,
}

/// KVM's timing leaves no safe sequence: an AUTO vCPU waiting next to a free
/// line would take it before the guaranteed VM's vCPU enters.
const NO_SAFE_WAIT_DEMOTED: &str = "a demoted vCPU would have to wait on MRIF beside a free line, which KVM would hand it before this VM enters";
const NO_SAFE_WAIT_WAITING: &str = "a vCPU waiting on MRIF would have to wait beside a free line, which KVM would hand it before this VM enters";

/// At most this many landing harts are tried: each costs its free lines in
/// moves, and a swap that needs more is rare enough to crowd instead.
const MAX_LANDING_HARTS: usize = 8;

/// Finds `k` VS-files held by burstable vCPUs on `eligible` harts (the
/// guaranteed VM's scope, `free` its free files per hart) and where those
/// vCPUs (and vCPUs waiting on MRIF on the same harts) go. Demotes exactly
/// `k` whenever a KVM-safe plan exists, spreading the demoted over landing
/// harts until none is more than one thread above the balanced count.
pub fn swap(
    topology: &Topology,
    ledger: &Ledger,
    spec: &PlaceSpec,
    eligible: &[HartId],
    k: usize,
    free: &[u32],
) -> Result<Swap, CoreError> {
    let movable = movable(topology, ledger, eligible);
    if movable.len() < k {
        return Err(refusal(
            spec,
            eligible,
            free,
            &format!("only {} can be taken from burstable vCPUs", movable.len()),
            movable.len(),
        ));
    }
    let hart_of = |v: &VictimKey| vcpu_hart(ledger, v);
    let balanced = balanced_threads(topology, ledger, spec.vcpus);
    let mut why = "no victim can move";
    let mut best: Option<Swap> = None;
    for attempt in exact_attempts(topology, ledger, eligible, free, &movable, k) {
        match land(topology, ledger, eligible, free, &attempt) {
            Ok(s) if s.crowding <= balanced + 1 => return Ok(s),
            Ok(s) => {
                if best.as_ref().is_none_or(|b| s.crowding < b.crowding) {
                    best = Some(s);
                }
            }
            Err(e) => why = e,
        }
    }
    if let Some(s) = best {
        return Ok(s);
    }
    // Last resort: take every file from as few harts as possible and leave
    // the free files to the vCPUs that move.
    let n = spec.vcpus as usize;
    if movable.len() >= n {
        let attempt = Attempt {
            demote: grouped(&movable, n, hart_of),
            fills: Vec::new(),
            free_files: FreeFiles::LeftToMovers,
        };
        match land(topology, ledger, eligible, free, &attempt) {
            Ok(s) => return Ok(s),
            Err(e) => why = e,
        }
    }
    Err(refusal(spec, eligible, free, why, movable.len()))
}

/// Burstable vCPUs on VS-files in scope that could give theirs up, in
/// demotion order: a vCPU gives up its line only by moving to another hart.
fn movable(topology: &Topology, ledger: &Ledger, eligible: &[HartId]) -> Vec<VictimKey> {
    let in_scope: HashSet<HartId> = eligible.iter().copied().collect();
    ledger
        .victims()
        .filter(|v| {
            let vm = ledger.vm_by_seq(v.seq()).expect("indexed");
            let hart = vcpu_hart(ledger, v);
            in_scope.contains(&hart)
                && (0..topology.len() as HartId)
                    .any(|h| h != hart && vm.allows(h) && ledger.eligible(topology, h))
        })
        .copied()
        .collect()
}

/// The plans that demote exactly `k`, most preferred first: strictly in
/// demotion order; then around one landing hart, then 2, 3, ... filled
/// first; then from as few harts as possible, keeping the others to land on.
fn exact_attempts(
    topology: &Topology,
    ledger: &Ledger,
    eligible: &[HartId],
    free: &[u32],
    movable: &[VictimKey],
    k: usize,
) -> Vec<Attempt> {
    let in_order = Attempt {
        demote: movable.iter().take(k).copied().collect(),
        fills: Vec::new(),
        free_files: FreeFiles::Taken,
    };
    let mut attempts = vec![
        reachable_first(topology, ledger, eligible, movable, k),
        in_order,
    ];
    let candidates = landing_candidates(topology, ledger, eligible, free);
    let tried = candidates.len().min(MAX_LANDING_HARTS);
    // Each candidate alone (which one decides whose files are left), then
    // the best ones together to spread the demoted.
    let singles = candidates[..tried].iter().map(std::slice::from_ref);
    let together = (2..=tried.min(k)).map(|count| &candidates[..count]);
    for landing in singles.chain(together) {
        if let Some(a) = filled_attempt(ledger, landing, free, movable, k) {
            attempts.push(a);
        }
    }
    attempts.push(Attempt {
        demote: grouped(movable, k, |v| vcpu_hart(ledger, v)),
        fills: Vec::new(),
        free_files: FreeFiles::Taken,
    });
    attempts
}

/// In demotion order, but first the vCPUs that can move to a free file
/// outside the guaranteed VM's scope (they lose nothing), then those whose
/// VM may wait on a hart where KVM holds every line: the others may have
/// nowhere safe to go.
fn reachable_first(
    topology: &Topology,
    ledger: &Ledger,
    eligible: &[HartId],
    movable: &[VictimKey],
    k: usize,
) -> Attempt {
    let outside_free: Vec<HartId> = (0..topology.len() as HartId)
        .filter(|h| !eligible.contains(h) && ledger.free(topology, *h) > 0)
        .collect();
    let full: Vec<HartId> = (0..topology.len() as HartId)
        .filter(|&h| ledger.eligible(topology, h) && ledger.safe_for_waiting(topology, h))
        .collect();
    let reach = |v: &VictimKey| {
        let vm = ledger.vm_by_seq(v.seq()).expect("indexed");
        let from = vcpu_hart(ledger, v);
        let keeps_file = outside_free.iter().any(|&h| vm.allows(h));
        let can_wait = full.iter().any(|&h| h != from && vm.allows(h));
        (!keeps_file, !can_wait)
    };
    let mut order = movable.to_vec();
    order.sort_by_key(reach);
    Attempt {
        demote: order.into_iter().take(k).collect(),
        fills: Vec::new(),
        free_files: FreeFiles::Taken,
    }
}

/// Harts in scope the demoted could wait on once moving burstable vCPUs
/// fill their free lines (none for a full hart, which only needs to keep
/// its own vCPUs): every line KVM reports really free, none promised to a
/// pending VM. Fewest free first (fewest moves), then fewest threads.
fn landing_candidates(
    topology: &Topology,
    ledger: &Ledger,
    eligible: &[HartId],
    free: &[u32],
) -> Vec<HartId> {
    let promised = ledger.promised_to_pending();
    let mut out: Vec<HartId> = eligible
        .iter()
        .copied()
        .filter(|&h| ledger.settled(topology, h) && !promised[h as usize])
        .collect();
    out.sort_by_key(|&h| (free[h as usize], ledger.load(h).vcpus, h));
    out
}

/// Demotes the first `k` movable vCPUs not on a landing hart; the next ones
/// in demotion order that may run there fill the landing harts' free lines
/// with their VS-files. `None` if too few can.
fn filled_attempt(
    ledger: &Ledger,
    landing: &[HartId],
    free: &[u32],
    movable: &[VictimKey],
    k: usize,
) -> Option<Attempt> {
    let mut rest = movable
        .iter()
        .filter(|v| !landing.contains(&vcpu_hart(ledger, v)));
    let demote: Vec<VictimKey> = rest.by_ref().take(k).copied().collect();
    if demote.len() < k {
        return None;
    }
    let mut spare: Vec<VictimKey> = rest.copied().collect();
    let mut fills = Vec::new();
    for &l in landing {
        for _ in 0..free[l as usize] {
            let vm_allows = |v: &VictimKey| ledger.vm_by_seq(v.seq()).expect("indexed").allows(l);
            let at = spare.iter().position(vm_allows)?;
            fills.push((spare.remove(at), l));
        }
    }
    Some(Attempt {
        demote,
        fills,
        free_files: FreeFiles::Taken,
    })
}

/// The first `n` movable vCPUs taken hart by hart, each hart in the order
/// of its first candidate.
fn grouped(
    movable: &[VictimKey],
    n: usize,
    hart_of: impl Fn(&VictimKey) -> HartId,
) -> Vec<VictimKey> {
    let hart_of = &hart_of;
    let mut by_hart: Vec<HartId> = Vec::new();
    for v in movable {
        if !by_hart.contains(&hart_of(v)) {
            by_hart.push(hart_of(v));
        }
    }
    by_hart
        .iter()
        .flat_map(|&h| movable.iter().filter(move |v| hart_of(v) == h))
        .take(n)
        .copied()
        .collect()
}

/// vCPU threads per eligible hart once a VM of `adding` vCPUs is placed,
/// rounded up.
fn balanced_threads(topology: &Topology, ledger: &Ledger, adding: u32) -> u32 {
    let (threads, harts) = (0..topology.len() as HartId)
        .filter(|&h| ledger.eligible(topology, h))
        .fold((adding, 0u32), |(t, n), h| {
            (t + ledger.load(h).vcpus, n + 1)
        });
    threads.div_ceil(harts.max(1))
}

/// Where one attempt's vCPUs go: fillers to their landing harts; the
/// demoted, and the vCPUs waiting on MRIF on the harts that free lines, to a
/// hart with a free file if their VM may use one, else to the least loaded
/// hart where every line is held (or taken by a filler) and none is given up.
fn land(
    topology: &Topology,
    ledger: &Ledger,
    eligible: &[HartId],
    free: &[u32],
    attempt: &Attempt,
) -> Result<Swap, &'static str> {
    let taken = attempt.free_files == FreeFiles::Taken;
    let mut filled = vec![0u32; topology.len()];
    for &(_, l) in &attempt.fills {
        filled[l as usize] += 1;
    }
    let freed: Vec<HartId> = attempt
        .demote
        .iter()
        .chain(attempt.fills.iter().map(|(v, _)| v))
        .map(|v| vcpu_hart(ledger, v))
        .collect();
    let mut files: Vec<HartId> = Vec::new();
    if taken {
        for &h in eligible {
            let n = free[h as usize] - filled[h as usize];
            files.extend(std::iter::repeat_n(h, n as usize));
        }
    }
    files.extend(&freed);
    let mut lander = Lander::new(topology, ledger, eligible, free, taken, &freed, filled);
    let mut rehomes: Vec<Move> = attempt
        .fills
        .iter()
        .map(|&(v, l)| lander.fill(v, l))
        .collect();
    let mut demotions = Vec::with_capacity(attempt.demote.len());
    for v in &attempt.demote {
        demotions.push(lander.land(v.seq(), v.vcpu).ok_or(NO_SAFE_WAIT_DEMOTED)?);
    }
    for &h in &lander.freeing.clone() {
        for &(seq, vcpu) in ledger.waiting_on(h) {
            rehomes.push(lander.land(seq, vcpu).ok_or(NO_SAFE_WAIT_WAITING)?);
        }
    }
    Ok(Swap {
        files,
        demotions,
        rehomes,
        crowding: lander.crowding,
    })
}

/// The running state of one attempt's landings.
struct Lander<'a> {
    topology: &'a Topology,
    ledger: &'a Ledger,
    eligible: &'a [HartId],
    free: &'a [u32],
    free_taken: bool,
    freeing: BTreeSet<HartId>,
    /// Free files that the guaranteed VM leaves to the vCPUs that move.
    left_free: Vec<u32>,
    /// Lines that moving vCPUs take, not held yet: an AUTO vCPU may wait
    /// beside them.
    landed: Vec<u32>,
    threads: Vec<u32>,
    crowding: u32,
}

impl<'a> Lander<'a> {
    fn new(
        topology: &'a Topology,
        ledger: &'a Ledger,
        eligible: &'a [HartId],
        free: &'a [u32],
        free_taken: bool,
        freed: &[HartId],
        filled: Vec<u32>,
    ) -> Self {
        // `free` counts only the guaranteed VM's scope; outside it, every
        // free file is the movers'.
        let mut left_free: Vec<u32> = (0..topology.len() as HartId)
            .map(|h| ledger.free(topology, h))
            .collect();
        for &h in eligible {
            left_free[h as usize] = if free_taken { 0 } else { free[h as usize] };
        }
        Lander {
            topology,
            ledger,
            eligible,
            free,
            free_taken,
            freeing: freed.iter().copied().collect(),
            left_free,
            landed: filled,
            threads: (0..topology.len() as HartId)
                .map(|h| ledger.load(h).vcpus)
                .collect(),
            crowding: 0,
        }
    }

    fn fill(&mut self, v: VictimKey, to: HartId) -> Move {
        let from = vcpu_hart(self.ledger, &v);
        self.threads[to as usize] += 1;
        Move {
            key: self.ledger.key_of(v.seq(), v.vcpu),
            from,
            to,
            backing: Backing::VsFile,
        }
    }

    fn land(&mut self, seq: u64, vcpu: u32) -> Option<Move> {
        let vm = self.ledger.vm_by_seq(seq).expect("indexed");
        let from = vm.vcpus[vcpu as usize].hart;
        let candidate = |h: HartId| {
            h != from
                && !self.freeing.contains(&h)
                && vm.allows(h)
                && self.ledger.eligible(self.topology, h)
        };
        let least_loaded = |ok: &dyn Fn(HartId) -> bool| {
            (0..self.topology.len() as HartId)
                .filter(|&h| candidate(h) && ok(h))
                .min_by_key(|&h| (self.threads[h as usize], h))
        };
        let (to, backing) = match least_loaded(&|h| self.left_free[h as usize] > 0) {
            Some(h) => {
                self.left_free[h as usize] -= 1;
                self.landed[h as usize] += 1;
                (h, Backing::VsFile)
            }
            None => (least_loaded(&|h| self.full(h))?, Backing::Mrif),
        };
        self.threads[to as usize] += 1;
        if backing == Backing::Mrif {
            self.crowding = self.crowding.max(self.threads[to as usize]);
        }
        Some(Move {
            key: self.ledger.key_of(seq, vcpu),
            from,
            to,
            backing,
        })
    }

    /// Every line held or being taken by a mover, and none of its free
    /// lines going to the guaranteed VM.
    fn full(&self, h: HartId) -> bool {
        let i = h as usize;
        let promised_to_vm =
            self.free_taken && self.free[i] > self.landed[i] && self.eligible.contains(&h);
        let held = self.ledger.load(h).held + self.landed[i];
        self.left_free[i] == 0
            && !promised_to_vm
            && held >= u32::from(self.topology.harts()[i].vsfiles)
            && self.ledger.settled(self.topology, h)
    }
}

fn vcpu_hart(ledger: &Ledger, v: &VictimKey) -> HartId {
    ledger.vm_by_seq(v.seq()).expect("indexed").vcpus[v.vcpu as usize].hart
}

fn refusal(
    spec: &PlaceSpec,
    eligible: &[HartId],
    free: &[u32],
    why: &str,
    takeable: usize,
) -> CoreError {
    let free_in_scope = eligible.iter().map(|&h| free[h as usize]).sum::<u32>();
    let facts = Facts {
        needed: Some(spec.vcpus),
        free: Some(free_in_scope),
        takeable: Some(takeable as u32),
        hart: None,
    };
    let why = format!(
        "guaranteed vm {} needs {}; {free_in_scope} free and {why}",
        spec.vm,
        vsfiles(spec.vcpus as usize),
    );
    CoreError::Refused(Refusal::NoFreeVsFile, why, facts)
}

#[cfg(test)]
#[path = "swap_tests.rs"]
mod tests;
