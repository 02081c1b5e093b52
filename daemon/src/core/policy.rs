//! Placement policy: which hart each vCPU runs on and whether it holds a
//! VS-file. Decisions only; the ledger records them and the host applies them.

use crate::core::request::PlaceSpec;
use crate::core::{Backing, Class, CoreError, HartId, Ledger, Topology, VcpuKey};

/// Where one vCPU goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Assignment {
    pub hart: HartId,
    pub backing: Backing,
}

/// Plans a whole VM, or refuses it whole.
///
/// - VS-file vCPUs go to distinct harts first, fewest free files first
///   (best-fit, as kubelet packs CPUs), so large VMs still fit later; all on
///   one NUMA node when one node can hold them.
/// - MRIF vCPUs go to the harts with the fewest vCPU threads. A burstable
///   (AUTO) vCPU only lands on MRIF when no hart has a free file, so KVM cannot
///   silently upgrade it behind the ledger's back.
pub fn plan(
    topology: &Topology,
    ledger: &Ledger,
    spec: &PlaceSpec,
) -> Result<Vec<Assignment>, CoreError> {
    ledger.check_admissible(spec)?;
    let n = spec.vcpus as usize;
    let online: Vec<HartId> = topology.online().map(|h| h.id).collect();
    if online.is_empty() {
        return Err(CoreError::Refused("no hart is online".into()));
    }
    let mut free: Vec<u32> = (0..topology.len() as HartId)
        .map(|h| ledger.free(topology, h))
        .collect();
    let mut threads: Vec<u32> = (0..topology.len() as HartId)
        .map(|h| ledger.load(h).vcpus)
        .collect();
    let total_free: u32 = free.iter().sum();
    let want_files = match spec.class {
        Class::Guaranteed if (total_free as usize) < n => {
            return Err(CoreError::Refused(format!(
                "guaranteed vm {} needs {}, {total_free} free on {} online harts",
                spec.vm,
                vsfiles(n),
                online.len()
            )));
        }
        Class::Guaranteed => n,
        Class::Burstable => n.min(total_free as usize),
        Class::BestEffort => 0,
    };

    let scope = numa_scope(topology, &free, &online, want_files.max(1));
    let mut out = Vec::with_capacity(n);
    while out.len() < want_files {
        let mut round: Vec<HartId> = scope
            .iter()
            .copied()
            .filter(|&h| free[h as usize] > 0)
            .collect();
        round.sort_by_key(|&h| (free[h as usize], h));
        for h in round.into_iter().take(want_files - out.len()) {
            free[h as usize] -= 1;
            threads[h as usize] += 1;
            out.push(Assignment {
                hart: h,
                backing: Backing::VsFile,
            });
        }
    }
    while out.len() < n {
        let h = *scope
            .iter()
            .min_by_key(|&&h| (threads[h as usize], h))
            .expect("scope is never empty");
        threads[h as usize] += 1;
        out.push(Assignment {
            hart: h,
            backing: Backing::Mrif,
        });
    }
    Ok(out)
}

/// The online harts of the NUMA node that best fits `files` VS-files (the
/// fewest free among those with enough), else every online hart.
fn numa_scope(topology: &Topology, free: &[u32], online: &[HartId], files: usize) -> Vec<HartId> {
    let mut nodes: Vec<u32> = online
        .iter()
        .map(|&h| topology.harts()[h as usize].numa_node)
        .collect();
    nodes.sort_unstable();
    nodes.dedup();
    if nodes.len() < 2 {
        return online.to_vec();
    }
    let harts_of = |node: u32| -> Vec<HartId> {
        online
            .iter()
            .copied()
            .filter(|&h| topology.harts()[h as usize].numa_node == node)
            .collect()
    };
    nodes
        .into_iter()
        .map(|node| {
            let harts = harts_of(node);
            let node_free: u32 = harts.iter().map(|&h| free[h as usize]).sum();
            (node_free, harts)
        })
        .filter(|(node_free, _)| *node_free as usize >= files)
        .min_by_key(|(node_free, harts)| (*node_free, harts[0]))
        .map(|(_, harts)| harts)
        .unwrap_or_else(|| online.to_vec())
}

/// Burstable vCPUs on MRIF whose hart has a free VS-file: KVM's AUTO mode
/// retries at every guest entry, so each will take one at its next entry.
/// Earliest placed first, the order they first entered KVM in.
pub fn pending_upgrades(topology: &Topology, ledger: &Ledger) -> Vec<VcpuKey> {
    let mut free: Vec<u32> = (0..topology.len() as HartId)
        .map(|h| ledger.free(topology, h))
        .collect();
    let mut vms: Vec<_> = ledger
        .vms()
        .filter(|vm| vm.class == Class::Burstable)
        .collect();
    vms.sort_by_key(|vm| vm.seq);
    let mut out = Vec::new();
    for vm in vms {
        for (i, v) in vm.vcpus.iter().enumerate() {
            if v.backing == Backing::Mrif && free[v.hart as usize] > 0 {
                free[v.hart as usize] -= 1;
                out.push(VcpuKey {
                    vm: vm.id.clone(),
                    vcpu: i as u32,
                });
            }
        }
    }
    out
}

#[cfg(test)]
#[path = "policy_tests.rs"]
mod tests;

fn vsfiles(n: usize) -> String {
    if n == 1 {
        "1 VS-file".into()
    } else {
        format!("{n} VS-files")
    }
}
