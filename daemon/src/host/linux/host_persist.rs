//! What the Linux backend saves of its VMs (which VMM process each one is)
//! and how it takes them back after a restart: a VMM still running (same
//! pid, same start time) is attached again, which re-pins whatever drifted
//! while ifad was down; one that exited is reported gone.

use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use super::LinuxHost;
use crate::core::ledger::VmRecord;
use crate::core::{HartId, VmId};
use crate::host::linux::threads;
use crate::host::{Host, Restored};

#[derive(Serialize, Deserialize)]
struct SavedVmm {
    vm: VmId,
    pid: u32,
    start_time: u64,
}

#[derive(Serialize, Deserialize, Default)]
struct Saved {
    vmms: Vec<SavedVmm>,
}

pub(super) fn save(host: &LinuxHost) -> serde_json::Value {
    let mut vmms: Vec<SavedVmm> = host
        .vms
        .iter()
        .filter_map(|(id, v)| {
            v.vmm.as_ref().map(|m| SavedVmm {
                vm: id.clone(),
                pid: m.pid,
                start_time: m.start_time,
            })
        })
        .collect();
    // Sorted, so an unchanged state saves the same bytes.
    vmms.sort_by(|a, b| a.vm.cmp(&b.vm));
    serde_json::to_value(Saved { vmms }).expect("plain data")
}

pub(super) fn restore(
    host: &mut LinuxHost,
    saved: &serde_json::Value,
    kept: &[VmRecord],
) -> Restored {
    let saved: Saved = serde_json::from_value(saved.clone()).unwrap_or_default();
    let mut out = Restored::default();
    for s in &saved.vmms {
        let alive = threads::start_time(&host.proc_root, s.pid) == Some(s.start_time);
        if !alive {
            out.gone.push(s.vm.clone());
        } else if !kept.iter().any(|k| k.id == s.vm) {
            out.vmm.insert(s.vm.clone(), s.pid);
        }
    }
    for vm in kept {
        let harts: Vec<HartId> = vm.vcpus.iter().map(|v| v.hart).collect();
        if let Err(e) = host.create_vm(&vm.id, vm.class.aia_mode(), &harts, &vm.devices) {
            warn!(vm = %vm.id, "taking it back after a restart: {e}");
        }
        let Some(s) = saved.vmms.iter().find(|s| s.vm == vm.id) else {
            continue;
        };
        if out.gone.contains(&vm.id) {
            continue;
        }
        match host.attach_vm(&vm.id, s.pid) {
            Ok(tids) => {
                info!(vm = %vm.id, pid = s.pid, "VMM still running: attached again");
                seed_observer(host, vm, &tids);
            }
            Err(e) => warn!(vm = %vm.id, pid = s.pid, "attaching again after a restart: {e}"),
        }
    }
    out
}

/// The probes see only allocations made since they were installed: the
/// lines vCPUs held across the restart come from the saved ledger.
fn seed_observer(host: &mut LinuxHost, vm: &VmRecord, tids: &[Option<u32>]) {
    let Some(o) = &mut host.observer else { return };
    for (v, tid) in vm.vcpus.iter().zip(tids) {
        if let (Some(tid), Some(cpu), Some(line)) = (tid, v.held_on, v.line) {
            o.allocations.seed(*tid, cpu, u32::from(line));
        }
    }
}
