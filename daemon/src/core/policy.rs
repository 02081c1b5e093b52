//! Placement policy: which hart each vCPU runs on and whether it holds a
//! VS-file. Decisions only; the engine records them in the ledger and has the
//! host carry them out.

use std::collections::HashSet;

use crate::core::ledger::Millis;
use crate::core::request::PlaceSpec;
use crate::core::swap;
use crate::core::{Backing, Class, CoreError, HartId, Ledger, Refusal, Topology, VcpuKey};

/// One vCPU re-pinned, and what it runs on at its new hart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Move {
    pub key: VcpuKey,
    pub from: HartId,
    pub to: HartId,
    pub backing: Backing,
}

/// A whole VM's placement, and what must move to make room for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    /// Per vCPU, its hart and backing.
    pub vcpus: Vec<(HartId, Backing)>,
    /// Burstable vCPUs that give up their VS-files (swapping).
    pub demotions: Vec<Move>,
    /// Waiting vCPUs moved off the harts whose lines are about to free, so
    /// KVM cannot hand those lines to them first; and burstable vCPUs that
    /// keep their VS-files but move to fill a hart for the demoted to wait on.
    pub rehomes: Vec<Move>,
}

impl Placement {
    /// The VM's files are still held by demoted vCPUs until they next enter.
    pub fn pending(&self) -> bool {
        !self.demotions.is_empty()
    }

    /// vCPUs of the VM placed on `backing`.
    pub fn count(&self, backing: Backing) -> usize {
        self.vcpus.iter().filter(|a| a.1 == backing).count()
    }
}

/// Plans a whole VM, or refuses it whole.
///
/// - VS-file vCPUs go to distinct harts first, fewest free files first
///   (best-fit, as kubelet packs CPUs), so large VMs still fit later; all on
///   one NUMA node when one node can hold them.
/// - A guaranteed VM that does not fit in free files takes exactly the
///   missing files from burstable vCPUs (no devices first, lowest priority,
///   newest), which move to full harts and run on MRIF there; when no hart
///   is full, other burstable vCPUs first move with their files to fill one
///   (see `swap`).
/// - MRIF vCPUs go to the harts with the fewest vCPU threads. A burstable
///   vCPU only lands on MRIF when its harts have no free file left, so KVM
///   cannot upgrade it behind the ledger's back.
pub fn plan_place(
    topology: &Topology,
    ledger: &Ledger,
    spec: &PlaceSpec,
) -> Result<Placement, CoreError> {
    ledger.check_admissible(spec)?;
    if let Some(bad) = spec
        .allowed
        .iter()
        .flatten()
        .find(|&&h| topology.hart(h).is_none())
    {
        return Err(CoreError::invalid(
            "harts",
            format!(
                "hart {bad} does not exist (the host has {})",
                topology.len()
            ),
        ));
    }
    // KVM refuses AIA mode AUTO (and HWACCEL) with EINVAL on a host without
    // guest interrupt files: only best-effort (EMUL) can run there.
    if spec.class != Class::BestEffort && topology.harts().iter().all(|h| h.vsfiles == 0) {
        return Err(CoreError::refused(
            Refusal::NoGuestFiles,
            format!(
                "{} vm {}: this host has no guest interrupt files, so KVM accepts only AIA mode emul; place it best-effort",
                spec.class, spec.vm
            ),
        ));
    }
    // One pass over the harts: this runs on every placement.
    let harts = topology.harts();
    let mut free = vec![0u32; harts.len()];
    let mut threads = vec![0u32; harts.len()];
    let mut eligible = Vec::with_capacity(harts.len());
    let mut total_free = 0usize;
    for h in harts {
        let load = ledger.load(h.id);
        threads[h.id as usize] = load.vcpus;
        let allowed = spec
            .allowed
            .as_ref()
            .is_none_or(|a| a.binary_search(&h.id).is_ok());
        if h.online && !ledger.is_drained(h.id) && allowed {
            let f = u32::from(h.vsfiles).saturating_sub(load.vsfiles_used + load.releasing);
            free[h.id as usize] = f;
            total_free += f as usize;
            eligible.push(h.id);
        }
    }
    if eligible.is_empty() {
        return Err(CoreError::refused(
            Refusal::NoEligibleHart,
            format!("vm {}: no online, undrained hart it may use", spec.vm),
        ));
    }
    let n = spec.vcpus as usize;
    let want_files = match spec.class {
        Class::Guaranteed => n,
        Class::Burstable => n.min(total_free),
        Class::BestEffort => 0,
    };

    let mut placement = Placement {
        vcpus: Vec::with_capacity(n),
        demotions: Vec::new(),
        rehomes: Vec::new(),
    };
    if want_files > total_free {
        let victims = swap::swap(
            topology,
            ledger,
            spec,
            &eligible,
            want_files - total_free,
            &free,
        )?;
        placement.vcpus = victims
            .files
            .iter()
            .map(|&h| (h, Backing::VsFile))
            .collect();
        placement.demotions = victims.demotions;
        placement.rehomes = victims.rehomes;
        return Ok(placement);
    }

    let node_scope = numa_scope(topology, &free, &eligible, want_files.max(1));
    let scope: &[HartId] = node_scope.as_deref().unwrap_or(&eligible);
    for h in pick_in_rounds(scope, want_files, &mut free, |f| f > 0, |f| *f -= 1) {
        threads[h as usize] += 1;
        placement.vcpus.push((h, Backing::VsFile));
    }
    // An AUTO vCPU waiting on MRIF must not sit where a line is promised to
    // a vCPU that has not entered yet: KVM would hand it the line first.
    let safe_scope: Vec<HartId>;
    let mrif_scope = match spec.class {
        Class::Burstable if n > want_files => {
            // This VM's own VS-file vCPUs have not entered yet either, but
            // a race among its own AUTO vCPUs is harmless.
            let mut mine = vec![0u32; topology.len()];
            for &(h, _) in &placement.vcpus {
                mine[h as usize] += 1;
            }
            safe_scope = scope
                .iter()
                .copied()
                .filter(|&h| {
                    let l = ledger.load(h);
                    l.held + mine[h as usize] >= u32::from(topology.harts()[h as usize].vsfiles)
                        && ledger.settled(topology, h)
                })
                .collect();
            if safe_scope.is_empty() {
                return Err(CoreError::refused(
                    Refusal::TryAgain,
                    format!(
                        "burstable vm {}: every hart it may wait on is handing a VS-file to a vCPU that has not entered yet; try again",
                        spec.vm
                    ),
                ));
            }
            &safe_scope
        }
        _ => scope,
    };
    for h in pick_in_rounds(
        mrif_scope,
        n - want_files,
        &mut threads,
        |_| true,
        |t| *t += 1,
    ) {
        placement.vcpus.push((h, Backing::Mrif));
    }
    Ok(placement)
}

/// Free VS-files per hart (0 where not eligible).
fn free_vector(topology: &Topology, ledger: &Ledger) -> Vec<u32> {
    (0..topology.len() as HartId)
        .map(|h| ledger.free(topology, h))
        .collect()
}

/// Picks `n` harts from `scope` in rounds: within a round each hart at most
/// once, by ascending (weight, id) among harts whose weight `ok` accepts;
/// `take` updates the weight of a picked hart. Stops early if no hart is
/// acceptable. O(|scope|) per round.
fn pick_in_rounds(
    scope: &[HartId],
    n: usize,
    weights: &mut [u32],
    ok: impl Fn(u32) -> bool,
    take: impl Fn(&mut u32),
) -> Vec<HartId> {
    let mut out = Vec::with_capacity(n);
    let mut round: Vec<(u32, HartId)> = Vec::with_capacity(n);
    while out.len() < n {
        // The `need` smallest (weight, id) in one scan, kept sorted: no
        // allocation or sort proportional to the host's size.
        let need = n - out.len();
        round.clear();
        for &h in scope {
            let w = weights[h as usize];
            if !ok(w) {
                continue;
            }
            let item = (w, h);
            if round.len() == need {
                if item >= round[need - 1] {
                    continue;
                }
                round.pop();
            }
            let at = round.partition_point(|x| *x < item);
            round.insert(at, item);
        }
        if round.is_empty() {
            break;
        }
        for &(_, h) in &round {
            take(&mut weights[h as usize]);
            out.push(h);
        }
    }
    out
}

/// The harts of the NUMA node that best fits `files` VS-files (the fewest
/// free among those with enough); `None`: use all of `eligible`.
fn numa_scope(
    topology: &Topology,
    free: &[u32],
    eligible: &[HartId],
    files: usize,
) -> Option<Vec<HartId>> {
    let node_of = |h: HartId| topology.harts()[h as usize].numa_node;
    let mut per_node: Vec<usize> = Vec::new(); // free files, by node id
    for &h in eligible {
        let node = node_of(h) as usize;
        if per_node.len() <= node {
            per_node.resize(node + 1, 0);
        }
        per_node[node] += free[h as usize] as usize;
    }
    if per_node.iter().filter(|&&f| f > 0).count() < 2 {
        return None;
    }
    let (node, _) = per_node
        .iter()
        .enumerate()
        .filter(|(_, f)| **f >= files)
        .min_by_key(|(node, f)| (**f, *node))?;
    Some(
        eligible
            .iter()
            .copied()
            .filter(|&h| node_of(h) as usize == node)
            .collect(),
    )
}

/// Where one vCPU goes when it must leave its hart (migration without a
/// target, drain, hart offline): a hart with a free file for VS-file vCPUs
/// (fewest free first, same NUMA node first), else, for burstable and
/// best-effort, MRIF on the least loaded full hart. `None`: nowhere.
fn relocate(
    topology: &Topology,
    ledger: &Ledger,
    key: &VcpuKey,
    force: bool,
) -> Option<(HartId, Backing)> {
    let vm = ledger.vm(&key.vm)?;
    let from = vm.vcpus[key.vcpu as usize].hart;
    let node = topology.hart(from).map(|h| h.numa_node);
    // When every hart a VM may use is offline, Linux has already widened
    // its threads' affinity to all CPUs (select_fallback_rq); follow it.
    let widened = force
        && vm.class != Class::Guaranteed
        && !(0..topology.len() as HartId)
            .any(|h| h != from && vm.allows(h) && ledger.eligible(topology, h));
    let candidates = move || {
        (0..topology.len() as HartId).filter(move |&h| {
            h != from && (widened || vm.allows(h)) && ledger.eligible(topology, h)
        })
    };
    let off_node = |h: HartId| topology.hart(h).map(|i| i.numa_node) != node;
    if vm.class != Class::BestEffort {
        let with_file = candidates()
            .filter(|&h| ledger.free(topology, h) > 0)
            .min_by_key(|&h| (off_node(h), ledger.free(topology, h), h));
        if let Some(h) = with_file {
            return Some((h, Backing::VsFile));
        }
        if vm.class == Class::Guaranteed {
            return None;
        }
    }
    if vm.class == Class::BestEffort {
        return candidates()
            .min_by_key(|&h| (off_node(h), ledger.load(h).vcpus, h))
            .map(|h| (h, Backing::Mrif));
    }
    // A burstable vCPU waits best where KVM holds every line; failing that,
    // on a full hart whose lines go to vCPUs moving in now (the engine moves
    // those first, so their lines are held before it runs).
    // Never where a line is promised to a pending guaranteed VM.
    let promised = ledger.promised_to_pending();
    let full = |h: &HartId| {
        ledger.free(topology, *h) == 0 && ledger.settled(topology, *h) && !promised[*h as usize]
    };
    let safe = |h: &HartId| ledger.safe_for_waiting(topology, *h);
    candidates()
        .filter(full)
        .min_by_key(|&h| (!safe(&h), off_node(h), ledger.load(h).vcpus, h))
        .map(|h| (h, Backing::Mrif))
}

/// vCPUs that a hart going offline pushed outside their VM's allowed harts,
/// moved back now that one of those harts can take them.
pub fn plan_restore(topology: &Topology, ledger: &Ledger) -> Vec<Move> {
    let mut scratch = ledger.clone();
    let mut moves = Vec::new();
    let outside: Vec<VcpuKey> = ledger
        .vms()
        .flat_map(|vm| {
            vm.vcpus
                .iter()
                .enumerate()
                .filter(|(_, v)| !vm.allows(v.hart))
                .map(|(i, _)| VcpuKey {
                    vm: vm.id.clone(),
                    vcpu: i as u32,
                })
        })
        .collect();
    for key in outside {
        let from = scratch.vcpu(&key).map(|v| v.hart);
        if let (Ok(from), Some((to, backing))) = (from, relocate(topology, &scratch, &key, false)) {
            if scratch.move_vcpu(&key, to, backing, 0, true).is_ok() {
                moves.push(Move {
                    key,
                    from,
                    to,
                    backing,
                });
            }
        }
    }
    moves
}

/// Moves one vCPU to hart `to`. It keeps a VS-file if one is free there;
/// else a guaranteed vCPU refuses to move and a burstable one goes to MRIF.
pub fn plan_migrate(
    topology: &Topology,
    ledger: &Ledger,
    key: &VcpuKey,
    to: HartId,
) -> Result<Move, CoreError> {
    let vm = ledger
        .vm(&key.vm)
        .ok_or_else(|| CoreError::VmNotFound(key.vm.clone()))?;
    let v = ledger.vcpu(key).map_err(|_| {
        CoreError::invalid(
            "vcpu",
            format!("vm {} has vcpus 0..{}", key.vm, vm.vcpus.len()),
        )
    })?;
    let hart = topology.hart(to).ok_or_else(|| {
        CoreError::invalid(
            "hart",
            format!("hart {to} does not exist (the host has {})", topology.len()),
        )
    })?;
    if !hart.online {
        return Err(CoreError::refused_on(
            Refusal::HartUnavailable,
            to,
            format!("hart {to} is offline"),
        ));
    }
    if ledger.is_drained(to) {
        return Err(CoreError::refused_on(
            Refusal::HartUnavailable,
            to,
            format!("hart {to} is drained"),
        ));
    }
    if !vm.allows(to) {
        return Err(CoreError::refused_on(
            Refusal::HartUnavailable,
            to,
            format!("vm {} may not use hart {to}", key.vm),
        ));
    }
    let backing = if to == v.hart {
        v.backing
    } else {
        match (vm.class, ledger.free(topology, to) > 0) {
            (Class::BestEffort, _) => Backing::Mrif,
            (_, true) => Backing::VsFile,
            (Class::Burstable, false) if !ledger.safe_for_waiting(topology, to) => {
                return Err(CoreError::refused_on(
                    Refusal::TryAgain,
                    to,
                    format!("hart {to} is handing a VS-file to a vCPU that has not entered yet"),
                ));
            }
            (Class::Burstable, false) => Backing::Mrif,
            (Class::Guaranteed, false) => {
                return Err(CoreError::refused_on(
                    Refusal::NoFreeVsFile,
                    to,
                    format!(
                        "hart {to} has no free VS-file; guaranteed vm {} vcpu {} keeps its file on hart {}",
                        key.vm, key.vcpu, v.hart
                    ),
                ));
            }
        }
    };
    Ok(Move {
        key: key.clone(),
        from: v.hart,
        to,
        backing,
    })
}

/// Moves every vCPU off `hart`, as if it were already drained. Refused as a
/// whole, naming the first guaranteed vCPU with nowhere to go, unless
/// `force` (the hart went offline): then such vCPUs stay and are returned
/// as stranded.
pub fn plan_evacuate(
    topology: &Topology,
    ledger: &Ledger,
    hart: HartId,
    force: bool,
) -> Result<(Vec<Move>, Vec<VcpuKey>), CoreError> {
    let mut scratch = ledger.clone();
    scratch.set_drained(hart, true);
    let mut on_hart: Vec<(Class, VcpuKey)> = ledger
        .vms()
        .flat_map(|vm| {
            vm.vcpus
                .iter()
                .enumerate()
                .filter(|(_, v)| v.hart == hart)
                .map(move |(i, _)| {
                    (
                        vm.class,
                        VcpuKey {
                            vm: vm.id.clone(),
                            vcpu: i as u32,
                        },
                    )
                })
        })
        .collect();
    // Guaranteed first: they need the free files most.
    on_hart.sort_by_key(|(class, _)| *class);
    let mut moves = Vec::new();
    let mut stranded = Vec::new();
    for (class, key) in on_hart {
        match relocate(topology, &scratch, &key, force) {
            Some((to, backing)) => {
                scratch.move_vcpu(&key, to, backing, 0, true)?;
                moves.push(Move {
                    key,
                    from: hart,
                    to,
                    backing,
                });
            }
            None if force => stranded.push(key),
            None if class == Class::Guaranteed => {
                return Err(CoreError::refused_on(
                    Refusal::WouldStrand,
                    hart,
                    format!(
                        "cannot drain hart {hart}: guaranteed vm {} vcpu {} has no free VS-file on another hart",
                        key.vm, key.vcpu
                    ),
                ));
            }
            None => {
                return Err(CoreError::refused_on(
                    Refusal::WouldStrand,
                    hart,
                    format!(
                        "cannot drain hart {hart}: {class} vm {} vcpu {} has no other hart it may use{}",
                        key.vm,
                        key.vcpu,
                        if class == Class::Burstable {
                            " (or wait on: files promised to a pending VM are free in KVM until it starts; try again then)"
                        } else {
                            ""
                        }
                    ),
                ));
            }
        }
    }
    Ok((moves, stranded))
}

/// Burstable vCPUs on MRIF that get a VS-file now. First those already on
/// a hart with a free file (KVM's AUTO mode hands it to them at their next
/// entry, earliest placed first, whatever ifad prefers), then the best
/// waiting candidates elsewhere (devices, then longest waiting), moved to
/// a hart with a free file unless they moved less than `min_interval` ago.
pub fn plan_promotions(
    topology: &Topology,
    ledger: &Ledger,
    now: Millis,
    min_interval: Millis,
) -> Vec<Move> {
    let mut free = free_vector(topology, ledger);
    let mut out = Vec::new();
    for h in 0..topology.len() as HartId {
        if !ledger.eligible(topology, h) {
            continue;
        }
        // Lines still being released here count too: KVM gives them to
        // these waiters when the holder next enters elsewhere (unless the
        // holder is stuck here).
        let l = ledger.load(h);
        let unreserved = u32::from(topology.harts()[h as usize].vsfiles)
            .saturating_sub(l.vsfiles_used + l.stuck);
        let on_hart = ledger.waiting_on(h).take(unreserved as usize);
        for &(seq, vcpu) in on_hart {
            free[h as usize] = free[h as usize].saturating_sub(1);
            out.push(Move {
                key: ledger.key_of(seq, vcpu),
                from: h,
                to: h,
                backing: Backing::VsFile,
            });
        }
    }
    let mut left: usize = free.iter().map(|&f| f as usize).sum();
    if left == 0 {
        return out;
    }
    let promoted: HashSet<(u64, u32)> = out
        .iter()
        .map(|m| (ledger.vm(&m.key.vm).expect("live").seq, m.key.vcpu))
        .collect();
    for w in ledger.waiting() {
        if left == 0 {
            break;
        }
        if promoted.contains(&(w.seq, w.vcpu)) {
            continue;
        }
        let vm = ledger.vm_by_seq(w.seq).expect("indexed");
        let v = &vm.vcpus[w.vcpu as usize];
        if v.moved_at
            .is_some_and(|t| now.saturating_sub(t) < min_interval)
        {
            continue;
        }
        let node = topology.hart(v.hart).map(|h| h.numa_node);
        let target = (0..topology.len() as HartId)
            .filter(|&h| free[h as usize] > 0 && vm.allows(h))
            .min_by_key(|&h| {
                (
                    topology.hart(h).map(|i| i.numa_node) != node,
                    free[h as usize],
                    h,
                )
            });
        if let Some(h) = target {
            free[h as usize] -= 1;
            left -= 1;
            out.push(Move {
                key: ledger.key_of(w.seq, w.vcpu),
                from: v.hart,
                to: h,
                backing: Backing::VsFile,
            });
        }
    }
    out
}

/// Plans every vCPU from scratch on an empty host, most demanding first:
/// guaranteed VMs, then burstable by devices and priority, then
/// best-effort. Returns the new ledger and the VMs that no longer fit.
pub fn replan_all(topology: &Topology, ledger: &Ledger) -> (Ledger, Vec<crate::core::VmId>) {
    let mut order: Vec<_> = ledger.vms().collect();
    order.sort_by_key(|vm| (vm.class, vm.devices.is_empty(), -vm.priority, vm.seq));
    let mut fresh = Ledger::new(topology);
    for d in (0..topology.len() as HartId).filter(|&h| ledger.is_drained(h)) {
        fresh.set_drained(d, true);
    }
    let mut unplaced = Vec::new();
    for vm in order {
        let spec = PlaceSpec {
            vm: vm.id.clone(),
            vcpus: vm.vcpus.len() as u32,
            class: vm.class,
            devices: vm.devices.clone(),
            priority: vm.priority,
            allowed: vm.allowed.clone(),
            guest_imsic: vm.guest_imsic.clone(),
            expected_irq_rates: vm.expected_irq_rates(),
        };
        match plan_place(topology, &fresh, &spec) {
            Ok(p) if !p.pending() => {
                let seq = fresh.insert(&spec, &p.vcpus, false, 0);
                // From scratch every vCPU enters where planned: its line is
                // held, so later burstable VMs may wait on full harts.
                for (i, &(h, backing)) in p.vcpus.iter().enumerate() {
                    if backing == Backing::VsFile {
                        let key = fresh.key_of(seq, i as u32);
                        fresh.observed(&key, Some(h), None).expect("just inserted");
                    }
                }
            }
            _ => unplaced.push(vm.id.clone()),
        }
    }
    (fresh, unplaced)
}

/// Records a planned placement: moves what must make room, then the VM.
pub fn apply_placement(
    ledger: &mut Ledger,
    spec: &PlaceSpec,
    placement: &Placement,
    now: Millis,
) -> Result<u64, CoreError> {
    apply_moves(
        ledger,
        placement.demotions.iter().chain(&placement.rehomes),
        now,
    )?;
    Ok(ledger.insert(spec, &placement.vcpus, placement.pending(), now))
}

/// Records moves decided by policy.
pub fn apply_moves<'a>(
    ledger: &mut Ledger,
    moves: impl IntoIterator<Item = &'a Move>,
    now: Millis,
) -> Result<(), CoreError> {
    for m in moves {
        ledger.move_vcpu(&m.key, m.to, m.backing, now, m.to != m.from)?;
    }
    Ok(())
}

pub(crate) fn vsfiles(n: usize) -> String {
    if n == 1 {
        "1 VS-file".into()
    } else {
        format!("{n} VS-files")
    }
}

#[cfg(test)]
#[path = "policy_tests.rs"]
mod tests;
