//! The simulated RISC-V KVM host: `SimKvm` plays the kernel, and each placed
//! VM is a simulated VMM (started paused, as QEMU `-S`) whose vCPU threads
//! run wherever their affinity says.
//!
//! The simulated machine (the kernel and its VMMs) outlives the daemon, as
//! a real one does: with a machine file (`SimHost::with_machine_file`) it
//! writes itself there at every change it undergoes, at the moment of the
//! change, not when ifad checkpoints. A daemon killed between a host effect
//! and its checkpoint so comes back to a machine that differs from its
//! ledger, and `restore` reconciles the two as the Linux backend does: VMMs
//! the ledger does not keep exit, kept VMs whose VMM is gone are reported,
//! and every kept vCPU is pinned back to the hart its ledger says.

pub mod interrupts;
pub mod kvm;
pub mod spec;

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};

use tracing::{info, warn};

use crate::core::ledger::{Millis, VmRecord};
use crate::core::pressure::InterruptCount;
use crate::core::{AiaMode, Bdf, HartId, Topology, VmId};
use crate::host::{Host, HostError, Observed, Restored, SavedHost};
use interrupts::SimInterrupts;
use kvm::{Entry, KvmError, SimKvm, VmHandle};
pub use spec::SimSpec;

pub struct SimHost {
    topology: Topology,
    kvm: SimKvm,
    vms: HashMap<VmId, (VmHandle, usize)>,
    topology_changed: bool,
    machine: Option<MachineFile>,
    /// The machine is kept nowhere: neither in a file nor in ifad's state.
    in_memory_only: bool,
    /// Not part of the machine file: a restarted daemon counts afresh, as
    /// it would on Linux.
    interrupts: SimInterrupts,
    /// The machine changed since `interrupts` last took in what the host
    /// shows of each vCPU.
    visibility_stale: bool,
}

/// Where the simulated machine keeps itself between daemons.
struct MachineFile {
    path: PathBuf,
    /// Read at start, taken over by the first `restore`.
    found: Option<Machine>,
    /// The bytes last written, to skip writes that change nothing.
    last: Option<Vec<u8>>,
    /// Set while writes fail, so a failing disk is logged once per streak.
    failing: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum MachineError {
    #[error("simulated machine file {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("simulated machine file {path}: {source}")]
    Format {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
}

impl SimHost {
    pub fn new(topology: Topology) -> Self {
        let kvm = SimKvm::new(topology.harts().iter().map(|h| h.vsfiles));
        SimHost {
            topology,
            kvm,
            vms: HashMap::new(),
            topology_changed: false,
            machine: None,
            interrupts: SimInterrupts::default(),
            visibility_stale: false,
            in_memory_only: false,
        }
    }

    /// Keeps the simulated machine in `path`, written at every change; the
    /// machine found there, if any, is the one the first `restore` takes
    /// back. A file that cannot be read is an error (nothing is written
    /// over it).
    pub fn with_machine_file(mut self, path: &Path) -> Result<Self, MachineError> {
        let found = match std::fs::read(path) {
            Ok(bytes) => Some(serde_json::from_slice::<Machine>(&bytes).map_err(|source| {
                MachineError::Format {
                    path: path.to_path_buf(),
                    source,
                }
            })?),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(source) => {
                return Err(MachineError::Io {
                    path: path.to_path_buf(),
                    source,
                });
            }
        };
        self.machine = Some(MachineFile {
            path: path.to_path_buf(),
            found,
            last: None,
            failing: false,
        });
        Ok(self)
    }

    /// Writes the machine to its file, if it has one and it changed: the
    /// change a kernel makes is there at once, whatever ifad does next.
    /// Written whole and renamed over the old one, so a daemon killed in
    /// the middle leaves the machine as it was before this change. Not
    /// fsynced: the machine outlives ifad's death, not the host's.
    fn persist(&mut self) {
        let Some(m) = &mut self.machine else { return };
        let bytes = serde_json::to_vec(&Machine {
            kvm: self.kvm.clone(),
            vms: sorted(&self.vms),
        })
        .expect("plain data");
        if m.last.as_ref() == Some(&bytes) {
            return;
        }
        let tmp = m.path.with_extension("tmp");
        match std::fs::write(&tmp, &bytes).and_then(|()| std::fs::rename(&tmp, &m.path)) {
            Ok(()) => {
                m.last = Some(bytes);
                m.failing = false;
            }
            Err(e) => {
                if !m.failing {
                    warn!(
                        "writing the simulated machine to {}: {e}; it will not survive the daemon",
                        m.path.display()
                    );
                }
                m.failing = true;
            }
        }
    }

    /// Keeps the machine nowhere: it does not outlive the daemon, and
    /// costs no write (`--sim-machine memory`, for benchmarks).
    pub fn in_memory_only(mut self) -> Self {
        self.in_memory_only = true;
        self
    }

    pub fn from_spec(spec: &SimSpec) -> Self {
        SimHost::new(Topology::uniform(spec.harts, spec.files, spec.numa))
    }

    /// The simulated kernel, for tests that compare it with the ledger.
    pub fn kvm(&self) -> &SimKvm {
        &self.kvm
    }

    /// Takes a hart offline or online, as `echo 0 > cpuN/online` would.
    pub fn set_hart_online(&mut self, hart: HartId, online: bool) -> Result<(), HostError> {
        self.kvm
            .set_cpu_online(hart, online)
            .map_err(|e| HostError::Hart {
                hart,
                reason: e.to_string(),
            })?;
        if self.topology.set_online(hart, online) {
            self.topology_changed = true;
        }
        self.persist();
        Ok(())
    }

    /// Blocks or wakes a vCPU (an idle guest halted in WFI).
    pub fn set_blocked(&mut self, vm: &VmId, vcpu: u32, blocked: bool) -> Result<(), HostError> {
        let (h, _) = self.handle(vm)?;
        let done = self
            .kvm
            .set_blocked(h, vcpu as usize, blocked)
            .map_err(|e| vm_err(vm, e));
        self.persist();
        done
    }

    /// Sets the interrupts per second a vCPU takes (the evaluator's `rate`).
    pub fn set_irq_rate(&mut self, vm: &VmId, vcpu: u32, per_second: f64) -> Result<(), HostError> {
        if self.interrupts.set_rate(vm, vcpu, per_second) {
            Ok(())
        } else {
            Err(HostError::Vm {
                vm: vm.clone(),
                reason: format!("no vcpu {vcpu} running on the simulated host"),
            })
        }
    }

    /// Moves the simulation's clock to `now`: what the host counts of each
    /// vCPU's interrupts grows by its rate while it is visible.
    pub fn advance(&mut self, now: Millis) {
        // Nothing changed since the last settle: the host shows now what
        // it showed over the whole interval.
        if std::mem::take(&mut self.visibility_stale) {
            self.refresh_visibility();
        }
        self.interrupts.advance(now);
    }

    fn refresh_visibility(&mut self) {
        let mut interrupts = std::mem::take(&mut self.interrupts);
        interrupts.refresh(|vm| self.observe(vm));
        self.interrupts = interrupts;
    }

    /// Sets a vCPU thread's affinity, without writing the machine (the
    /// caller does, once its whole change is made).
    fn set_affinity(&mut self, vm: &VmId, vcpu: u32, hart: HartId) -> Result<(), HostError> {
        let (h, _) = self.handle(vm)?;
        self.kvm
            .set_affinity(h, vcpu as usize, &[hart])
            .map_err(|e| vm_err(vm, e))
    }

    /// Takes the machine back: the one found in the machine file, else the
    /// one an older ifad saved in its own state (`saved`), else none (a
    /// fresh machine: no simulated VMM survived). True if one was found.
    fn take_back(&mut self, saved: Option<Saved>) -> bool {
        let found = self.machine.as_mut().and_then(|m| m.found.take());
        let found = found.or_else(|| {
            let s = saved?;
            Some(Machine {
                kvm: s.kvm?,
                vms: s.vms,
            })
        });
        let Some(found) = found else { return false };
        self.kvm = found.kvm;
        let lines: Vec<u8> = self.topology.harts().iter().map(|h| h.vsfiles).collect();
        self.kvm.reshape(&lines);
        for h in 0..self.topology.len() as HartId {
            self.topology.set_online(h, self.kvm.is_online(h));
        }
        self.vms = found
            .vms
            .into_iter()
            .map(|(id, h, n)| (id, (h, n)))
            .collect();
        true
    }

    fn handle(&self, vm: &VmId) -> Result<(VmHandle, usize), HostError> {
        self.vms.get(vm).copied().ok_or_else(|| HostError::Vm {
            vm: vm.clone(),
            reason: "not running on the simulated host".into(),
        })
    }
}

fn vm_err(vm: &VmId, e: KvmError) -> HostError {
    HostError::Vm {
        vm: vm.clone(),
        reason: e.to_string(),
    }
}

impl Host for SimHost {
    fn kind(&self) -> &'static str {
        "simulated"
    }

    fn topology(&self) -> &Topology {
        &self.topology
    }

    fn refresh_topology(&mut self) -> bool {
        std::mem::take(&mut self.topology_changed)
    }

    fn create_vm(
        &mut self,
        vm: &VmId,
        mode: AiaMode,
        harts: &[HartId],
        _devices: &[Bdf],
    ) -> Result<(), HostError> {
        let done = self.start_vmm(vm, mode, harts);
        if done.is_ok() {
            self.interrupts.add_vm(vm, harts.len());
        }
        self.persist();
        done
    }

    fn resume_vm(&mut self, vm: &VmId) -> Result<(), HostError> {
        let (h, _) = self.handle(vm)?;
        let done = self.kvm.set_paused(h, false).map_err(|e| vm_err(vm, e));
        self.persist();
        done
    }

    fn pin_vcpu(&mut self, vm: &VmId, vcpu: u32, hart: HartId) -> Result<(), HostError> {
        let done = self.set_affinity(vm, vcpu, hart);
        self.persist();
        done
    }

    fn release_vm(&mut self, vm: &VmId) -> Result<(), HostError> {
        let (h, _) = self.handle(vm)?;
        self.vms.remove(vm);
        self.interrupts.remove_vm(vm);
        let done = self.kvm.destroy_vm(h).map_err(|e| vm_err(vm, e));
        self.persist();
        done
    }

    fn settle(&mut self) {
        let vms: Vec<(VmHandle, usize)> = self.kvm.vm_handles().collect();
        for (handle, vcpus) in vms {
            for vcpu in 0..vcpus {
                // Handles and vCPU indexes come from the live list, so
                // the entry always finds its vCPU; what it ended in is
                // read back by `observe`.
                if let Err(e) = self.kvm.enter(handle, vcpu) {
                    warn!(handle, vcpu, "a live simulated vCPU could not enter: {e}");
                }
            }
        }
        // Taken in when the clock next moves, not at every settle: it
        // walks every vCPU, and only `advance` needs it.
        self.visibility_stale = true;
        self.persist();
    }

    fn interrupt_counts(&self, vm: &VmId) -> Vec<InterruptCount> {
        self.interrupts.counts_seen(vm, &self.observe(vm))
    }

    fn observe(&self, vm: &VmId) -> Vec<Observed> {
        let Some(&(handle, vcpus)) = self.vms.get(vm) else {
            return Vec::new();
        };
        (0..vcpus)
            .map(|vcpu| {
                let held = self.kvm.held_line(handle, vcpu).ok().flatten();
                match (self.kvm.last_entry(handle, vcpu).ok().flatten(), held) {
                    (Some(Entry::Failed { cpu }), _) => Observed::EntryFailed { hart: cpu },
                    (_, Some((cpu, line))) => Observed::VsFile { hart: cpu, line },
                    (Some(Entry::SwFile { cpu } | Entry::VsFile { cpu, .. }), None) => {
                        Observed::Mrif { hart: cpu }
                    }
                    (None, None) => Observed::Unknown,
                }
            })
            .collect()
    }

    fn held_vsfiles(&self) -> Option<Vec<u32>> {
        Some(
            (0..self.topology.len() as u32)
                .map(|cpu| self.kvm.used_lines(cpu))
                .collect(),
        )
    }

    fn sim(&mut self) -> Option<&mut SimHost> {
        Some(self)
    }

    /// With no machine file of its own, the machine itself (the simulated
    /// VMMs and KVM outlive the daemon); with one, nothing.
    fn save(&self) -> serde_json::Value {
        if self.in_memory_only {
            return serde_json::Value::Null;
        }
        match self.machine {
            Some(_) => serde_json::Value::Null,
            None => serde_json::to_value(Saved {
                kvm: Some(self.kvm.clone()),
                vms: sorted(&self.vms),
            })
            .expect("plain data"),
        }
    }

    /// Reconciles the machine with the ledger's `kept` VMs: a simulated
    /// VMM the ledger does not keep exits; a kept VM whose VMM is gone (or
    /// runs another shape) is reported gone; every vCPU of the others is
    /// pinned back to its ledger hart, undoing host effects whose change
    /// never reached a checkpoint.
    fn restore(&mut self, saved: &SavedHost, kept: &[VmRecord]) -> Restored {
        let saved = serde_json::from_value::<Saved>(saved.global.clone()).ok();
        let mut out = Restored::default();
        if !self.take_back(saved) {
            // No machine survived: the kept VMs' VMMs start again.
            for vm in kept {
                let harts: Vec<HartId> = vm.vcpus.iter().map(|v| v.hart).collect();
                let started = self
                    .start_vmm(&vm.id, vm.class.aia_mode(), &harts)
                    .and_then(|()| {
                        let (h, _) = self.handle(&vm.id)?;
                        self.kvm.set_paused(h, false).map_err(|e| vm_err(&vm.id, e))
                    });
                if let Err(e) = started {
                    warn!(vm = %vm.id, "starting its simulated VMM again: {e}");
                    out.gone.push(vm.id.clone());
                }
            }
            self.count_kept(kept);
            self.persist();
            return out;
        }
        let stale: Vec<VmId> = self
            .vms
            .keys()
            .filter(|id| !kept.iter().any(|k| &k.id == *id))
            .cloned()
            .collect();
        for id in stale {
            info!(vm = %id, "a simulated VMM the ledger does not keep: it exits");
            if let Err(e) = self.release_vm(&id) {
                warn!(vm = %id, "stopping a simulated VMM the ledger does not keep: {e}");
            }
        }
        for vm in kept {
            match self.vms.get(&vm.id) {
                None => {
                    out.gone.push(vm.id.clone());
                    continue;
                }
                Some(&(_, n)) if n != vm.vcpus.len() => {
                    warn!(vm = %vm.id, vcpus = n, "the simulated VMM runs another shape than the ledger's: it exits");
                    if let Err(e) = self.release_vm(&vm.id) {
                        warn!(vm = %vm.id, "stopping it: {e}");
                    }
                    out.gone.push(vm.id.clone());
                    continue;
                }
                Some(_) => {}
            }
            for (vcpu, v) in vm.vcpus.iter().enumerate() {
                if let Err(e) = self.set_affinity(&vm.id, vcpu as u32, v.hart) {
                    warn!(vm = %vm.id, vcpu, hart = v.hart, "pinning back after a restart: {e}");
                }
            }
        }
        out.stayed = self.enter_back(kept);
        self.count_kept(kept);
        self.persist();
        out
    }
}

impl SimHost {
    /// Counts the interrupts of the kept VMs still running, from zero.
    fn count_kept(&mut self, kept: &[VmRecord]) {
        for vm in kept.iter().filter(|vm| self.vms.contains_key(&vm.id)) {
            self.interrupts.add_vm(&vm.id, vm.vcpus.len());
        }
        self.refresh_visibility();
    }

    /// After pinning back, lets the vCPUs that must move enter first, in an
    /// order that gives each its ledger's line back, as the engine's
    /// evacuation orders its moves: a vCPU the ledger backs with a VS-file
    /// enters on its hart once a line is free there; while none can, a
    /// vCPU holding a line the ledger does not give it lets it go (entering
    /// on its hart). Without this, a waiting AUTO vCPU entering first on a
    /// hart could take the line a guaranteed vCPU coming back needs, and
    /// the guaranteed vCPU's entry would fail. The rest enter at the next
    /// settle, but a HWACCEL vCPU that still finds no line free on its
    /// hart (an AUTO vCPU took it and stays there) is pinned where it
    /// holds one and returned, for the ledger to follow.
    fn enter_back(&mut self, kept: &[VmRecord]) -> Vec<(VmId, u32, HartId)> {
        let mut back = Vec::new();
        let mut holding = Vec::new();
        for vm in kept {
            let Some(&(h, _)) = self.vms.get(&vm.id) else {
                continue;
            };
            for (vcpu, v) in vm.vcpus.iter().enumerate() {
                let held = self.kvm.held_line(h, vcpu).ok().flatten();
                let wanted = v.backing == crate::core::Backing::VsFile;
                match held {
                    Some((cpu, _)) if wanted && cpu == v.hart => {}
                    _ if wanted => {
                        let hwaccel = vm.class.aia_mode() == AiaMode::Hwaccel;
                        back.push((h, vcpu, v.hart, hwaccel, &vm.id, held));
                    }
                    Some(_) => holding.push((h, vcpu)),
                    None => {}
                }
            }
        }
        let free = |kvm: &SimKvm, topology: &Topology, hart: HartId| {
            topology
                .hart(hart)
                .is_some_and(|i| i.online && kvm.used_lines(hart) < u32::from(i.vsfiles))
        };
        while !back.is_empty() || !holding.is_empty() {
            let (h, vcpu) = match back
                .iter()
                .position(|&(_, _, hart, ..)| free(&self.kvm, &self.topology, hart))
            {
                Some(i) => {
                    let (h, vcpu, ..) = back.remove(i);
                    (h, vcpu)
                }
                None => match holding.pop() {
                    Some(next) => next,
                    // Only vCPUs whose harts are full are left: the next
                    // settle enters them as KVM would.
                    None => break,
                },
            };
            if let Err(e) = self.kvm.enter(h, vcpu) {
                warn!(handle = h, vcpu, "entering after a restart: {e}");
            }
        }
        let mut stayed = Vec::new();
        for (_, vcpu, _, hwaccel, id, held) in back {
            if let (true, Some((cpu, _))) = (hwaccel, held) {
                match self.set_affinity(id, vcpu as u32, cpu) {
                    Ok(()) => stayed.push((id.clone(), vcpu as u32, cpu)),
                    Err(e) => warn!(vm = %id, vcpu, "leaving it where it holds a line: {e}"),
                }
            }
        }
        stayed
    }

    /// A simulated VMM for `vm`, started paused, each vCPU affine to its hart.
    fn start_vmm(&mut self, vm: &VmId, mode: AiaMode, harts: &[HartId]) -> Result<(), HostError> {
        let h = self
            .kvm
            .create_vm(mode, harts.len())
            .map_err(|e| vm_err(vm, e))?;
        self.vms.insert(vm.clone(), (h, harts.len()));
        self.kvm.set_paused(h, true).map_err(|e| vm_err(vm, e))?;
        for (vcpu, &hart) in harts.iter().enumerate() {
            self.set_affinity(vm, vcpu as u32, hart)?;
        }
        Ok(())
    }
}

fn sorted(vms: &HashMap<VmId, (VmHandle, usize)>) -> Vec<(VmId, VmHandle, usize)> {
    let mut vms: Vec<(VmId, VmHandle, usize)> =
        vms.iter().map(|(id, &(h, n))| (id.clone(), h, n)).collect();
    vms.sort();
    vms
}

/// The simulated machine, as its file holds it: the kernel and the
/// simulated VMMs (by VM id) running on it.
#[derive(serde::Serialize, serde::Deserialize)]
struct Machine {
    kvm: SimKvm,
    vms: Vec<(VmId, VmHandle, usize)>,
}

/// What the simulated host keeps in ifad's state without a machine file
/// (and what an older ifad kept there, with or without one).
#[derive(serde::Serialize, serde::Deserialize)]
struct Saved {
    kvm: Option<SimKvm>,
    #[serde(default)]
    vms: Vec<(VmId, VmHandle, usize)>,
}
