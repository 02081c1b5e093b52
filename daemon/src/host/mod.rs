//! Every effect ifad has on the host goes through `Host`: the simulated host
//! (a faithful model of KVM, for development, tests and policy evaluation)
//! and, on a real RISC-V KVM host, the Linux backend.

pub mod detect;
pub mod linux;
pub mod sim;

use std::collections::HashMap;

use crate::core::ledger::VmRecord;
use crate::core::{AiaMode, Bdf, HartId, Topology, VmId};

/// What the host shows of one vCPU's interrupt file; the core reconciles
/// the ledger with it, so it is the core's type.
pub use crate::core::Observed;

#[derive(Debug, thiserror::Error)]
pub enum HostError {
    #[error("vm {vm}: {reason}")]
    Vm { vm: VmId, reason: String },
    #[error("hart {hart}: {reason}")]
    Hart { hart: HartId, reason: String },
    #[error("the {0} host cannot do that")]
    Unsupported(&'static str),
}

pub trait Host: Send {
    /// "simulated" or "linux", as status reports it.
    fn kind(&self) -> &'static str;

    /// The harts as last discovered.
    fn topology(&self) -> &Topology;

    /// Re-reads which harts are online; true if anything changed.
    fn refresh_topology(&mut self) -> bool;

    /// Takes on a VM whose VMM was started paused: its AIA mode, and each
    /// vCPU (index = position in `harts`) affine to exactly one hart. The
    /// VM runs only after `resume_vm`.
    /// `devices` are its assigned PCI devices, whose host IRQs follow the
    /// vCPUs' harts.
    fn create_vm(
        &mut self,
        vm: &VmId,
        mode: AiaMode,
        harts: &[HartId],
        devices: &[Bdf],
    ) -> Result<(), HostError>;

    /// Lets a created VM run.
    fn resume_vm(&mut self, vm: &VmId) -> Result<(), HostError>;

    /// Re-pins one vCPU thread to one hart.
    fn pin_vcpu(&mut self, vm: &VmId, vcpu: u32, hart: HartId) -> Result<(), HostError>;

    /// Stops managing the VM; on the simulated host its VMM exits.
    fn release_vm(&mut self, vm: &VmId) -> Result<(), HostError>;

    /// Lets running vCPUs enter the guest, so the host's view catches up
    /// with what was applied.
    fn settle(&mut self);

    /// Per vCPU, what the host shows; empty for an unknown VM.
    fn observe(&self, vm: &VmId) -> Vec<Observed>;

    /// Per vCPU, what the host has counted of its interrupts (cumulative),
    /// `None` where it cannot see them now; empty for an unknown VM or a
    /// host that counts nothing.
    fn interrupt_counts(&self, _vm: &VmId) -> Vec<crate::core::pressure::InterruptCount> {
        Vec::new()
    }

    /// Lines KVM holds, per hart; `None` where the host cannot see them.
    fn held_vsfiles(&self) -> Option<Vec<u32>>;

    /// Finds a running VMM's vCPU threads and pins each to its hart.
    fn attach_vm(&mut self, _vm: &VmId, _pid: u32) -> Result<Vec<Option<u32>>, HostError> {
        Err(HostError::Unsupported(self.kind()))
    }

    /// Thread id per vCPU, where known.
    fn vcpu_threads(&self, _vm: &VmId) -> Vec<Option<u32>> {
        Vec::new()
    }

    /// VMs whose VMM process has exited since the last call.
    fn exited_vms(&mut self) -> Vec<VmId> {
        Vec::new()
    }

    /// vCPU threads found running where their placement does not allow
    /// (someone else changed their affinity) since the last call.
    fn drifted(&mut self) -> Vec<Drift> {
        Vec::new()
    }

    /// Periodic upkeep: retries of IRQ moves that failed for a while.
    fn maintain(&mut self) {}

    /// IRQ steering failures since the last call.
    fn irq_failures(&mut self) -> Vec<IrqFailure> {
        Vec::new()
    }

    /// The simulated host, for tests and the simulation-only controls.
    fn sim(&mut self) -> Option<&mut sim::SimHost> {
        None
    }

    /// What the host keeps that belongs to no one VM (the simulated host's
    /// machine when it has no file of its own), for the state. Read at
    /// every commit: a host whose part is more than null keeps it small
    /// or is only for tests.
    fn save(&self) -> serde_json::Value {
        serde_json::Value::Null
    }

    /// What the host keeps of one VM (its VMM process), for the state;
    /// null for nothing. Saved whenever the VM changes or is attached.
    fn save_vm(&self, _vm: &VmId) -> serde_json::Value {
        serde_json::Value::Null
    }

    /// Takes back, after a restart, the VMs the ledger kept (`kept`), as
    /// `saved` left them; lets go of the others.
    fn restore(&mut self, _saved: &SavedHost, kept: &[VmRecord]) -> Restored {
        for vm in kept {
            let harts: Vec<HartId> = vm.vcpus.iter().map(|v| v.hart).collect();
            if let Err(e) = self.create_vm(&vm.id, vm.class.aia_mode(), &harts, &vm.devices) {
                tracing::warn!(vm = %vm.id, "taking it back after a restart: {e}");
            }
        }
        Restored::default()
    }
}

/// What the state kept of the host, as `Host::save` and `Host::save_vm`
/// gave it.
#[derive(Debug, Clone, Copy)]
pub struct SavedHost<'a> {
    pub global: &'a serde_json::Value,
    pub vms: &'a std::collections::BTreeMap<VmId, serde_json::Value>,
}

impl SavedHost<'_> {
    /// Nothing kept: a first start.
    pub fn none() -> SavedHost<'static> {
        static NO_VMS: std::collections::BTreeMap<VmId, serde_json::Value> =
            std::collections::BTreeMap::new();
        SavedHost {
            global: &serde_json::Value::Null,
            vms: &NO_VMS,
        }
    }
}

/// What a host found when it took its VMs back after a restart.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Restored {
    /// VMs (kept or not) whose VMM exited while ifad was down.
    pub gone: Vec<VmId>,
    /// VMMs, still running, of VMs the ledger did not keep (to be placed
    /// again and re-attached).
    pub vmm: HashMap<VmId, u32>,
    /// HWACCEL vCPUs (vm, vcpu, hart) the host could not take back to
    /// their ledger hart, which has no free line for them (an AUTO vCPU
    /// took it while ifad was down), left where they hold one: the
    /// ledger is to follow, or their next entry fails.
    pub stayed: Vec<(VmId, u32, HartId)>,
}

/// A device IRQ that could not be moved where its VM's vCPUs run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IrqFailure {
    pub vm: VmId,
    pub irq: u32,
    pub hart: HartId,
    /// "transient", "target_full", "permanent" (no longer managed), or
    /// "rerouted" (the kernel took the move but routes the IRQ elsewhere).
    pub class: &'static str,
    pub error: String,
}

/// A vCPU thread whose affinity someone else changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Drift {
    pub vm: VmId,
    pub vcpu: u32,
    pub tid: u32,
    pub want: HartId,
    pub found: Vec<HartId>,
    /// Whether ifad set it back (it stops after a few tries: never fight).
    pub reapplied: bool,
}
