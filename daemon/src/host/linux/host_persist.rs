//! What the Linux backend saves of its VMs (which VMM process each one is)
//! and how it takes them back after a restart: a VMM still running (same
//! pid, same start time) is attached again, which re-pins whatever drifted
//! while ifad was down; one that exited is reported gone.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use super::LinuxHost;
use crate::core::ledger::VmRecord;
use crate::core::{HartId, VmId};
use crate::host::linux::threads;
use crate::host::{Host, Restored, SavedHost};

/// One VM's VMM, as the state keeps it: the start time tells a pid reused
/// by another process after a reboot or a long downtime.
#[derive(Serialize, Deserialize)]
struct SavedVmm {
    pid: u32,
    start_time: u64,
}

/// How an ifad before the log kept them: all in the host's own part.
#[derive(Deserialize, Default)]
struct Legacy {
    vmms: Vec<LegacyVmm>,
}

#[derive(Deserialize)]
struct LegacyVmm {
    vm: VmId,
    pid: u32,
    start_time: u64,
}

pub(super) fn save_vm(host: &LinuxHost, vm: &VmId) -> serde_json::Value {
    let Some(m) = host.vms.get(vm).and_then(|v| v.vmm.as_ref()) else {
        return serde_json::Value::Null;
    };
    serde_json::to_value(SavedVmm {
        pid: m.pid,
        start_time: m.start_time,
    })
    .expect("plain data")
}

/// Every saved VMM, from each VM's part and from an older ifad's state.
fn saved_vmms(saved: &SavedHost) -> HashMap<VmId, SavedVmm> {
    let legacy: Legacy = serde_json::from_value(saved.global.clone()).unwrap_or_default();
    let mut out: HashMap<VmId, SavedVmm> = legacy
        .vmms
        .into_iter()
        .map(|l| {
            let vmm = SavedVmm {
                pid: l.pid,
                start_time: l.start_time,
            };
            (l.vm, vmm)
        })
        .collect();
    for (vm, v) in saved.vms {
        match serde_json::from_value::<SavedVmm>(v.clone()) {
            Ok(vmm) => {
                out.insert(vm.clone(), vmm);
            }
            Err(e) => warn!(vm = %vm, "its saved VMM is unreadable ({e}): not attached again"),
        }
    }
    out
}

pub(super) fn restore(host: &mut LinuxHost, saved: &SavedHost, kept: &[VmRecord]) -> Restored {
    let saved = saved_vmms(saved);
    let mut out = Restored::default();
    for (vm, s) in &saved {
        let alive = threads::start_time(&host.proc_root, s.pid) == Some(s.start_time);
        if !alive {
            out.gone.push(vm.clone());
        } else if !kept.iter().any(|k| &k.id == vm) {
            out.vmm.insert(vm.clone(), s.pid);
        }
    }
    for vm in kept {
        let harts: Vec<HartId> = vm.vcpus.iter().map(|v| v.hart).collect();
        if let Err(e) = host.create_vm(&vm.id, vm.class.aia_mode(), &harts, &vm.devices) {
            warn!(vm = %vm.id, "taking it back after a restart: {e}");
        }
        let Some(s) = saved.get(&vm.id) else {
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
