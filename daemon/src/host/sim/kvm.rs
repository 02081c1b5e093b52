//! A model of how RISC-V KVM hands out guest interrupt files, as Linux's
//! arch/riscv/kvm does it:
//!
//! - allocation happens at guest entry, on the CPU the thread runs on
//!   (`kvm_riscv_vcpu_aia_imsic_update()` in aia_imsic.c, called before
//!   every entry from `kvm_arch_vcpu_ioctl_run()` in vcpu.c, through
//!   `kvm_riscv_vcpu_aia_update()`):
//!   `kvm_riscv_aia_alloc_hgei()` (aia.c) takes the lowest free line, no
//!   priority (first come, first served);
//! - a vCPU keeps its file while it stays on that CPU (sticky), and frees it
//!   (`kvm_riscv_aia_free_hgei()`) only when it next enters on another CPU,
//!   is reset or destroyed (`kvm_riscv_vcpu_aia_imsic_release()`), or the
//!   CPU goes offline (`kvm_riscv_aia_disable()`, aia.c, which pushes every
//!   owner there to its SW-file); a blocked or descheduled vCPU keeps it;
//! - no free line: HWACCEL fails the entry (KVM_EXIT_FAIL_ENTRY with
//!   KVM_EXIT_FAIL_ENTRY_NO_VSFILE, the old file is kept) and the VMM stops
//!   the VM; AUTO drops to the SW-file and retries at every later entry;
//!   EMUL never takes a line. The mode is the AIA device's
//!   `KVM_DEV_RISCV_AIA_CONFIG_MODE` (aia_device.c).
//!
//! This is the digital twin every policy is judged on: keep it faithful.

use crate::core::AiaMode;

/// What one guest entry ended in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Entry {
    VsFile {
        cpu: u32,
        line: u8,
    },
    SwFile {
        cpu: u32,
    },
    /// KVM_EXIT_FAIL_ENTRY with KVM_EXIT_FAIL_ENTRY_NO_VSFILE.
    Failed {
        cpu: u32,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum KvmError {
    /// Setting HWACCEL or AUTO on a host without guest files returns EINVAL.
    #[error("EINVAL: AIA mode {0} needs guest interrupt files and the host has none")]
    NoGuestFiles(AiaMode),
    #[error("ENOENT: no such vm or vcpu")]
    NoSuchVcpu,
    #[error("EINVAL: cpu {0} does not exist")]
    NoSuchCpu(u32),
    /// Linux never takes its last online CPU down.
    #[error("EBUSY: cpu {0} is the last one online")]
    LastOnlineCpu(u32),
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct Cpu {
    lines: u8,
    /// Bit k set: line k is held (bit 0 is never used).
    used: u64,
    online: bool,
}

impl Cpu {
    fn alloc(&mut self) -> Option<u8> {
        let line = (1..=self.lines).find(|k| self.used & (1u64 << k) == 0)?;
        self.used |= 1u64 << line;
        Some(line)
    }

    fn free(&mut self, line: u8) {
        self.used &= !(1u64 << line);
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
enum File {
    None,
    Hw { cpu: u32, line: u8 },
    Sw,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct Vcpu {
    affinity: Vec<u32>,
    last_cpu: Option<u32>,
    file: File,
    last_entry: Option<Entry>,
    /// Halted in the guest (WFI) with nothing to wake it: no entries, so
    /// it keeps whatever line it holds.
    blocked: bool,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct Vm {
    mode: AiaMode,
    vcpus: Vec<Vcpu>,
    /// Set once an entry failed: QEMU stops the whole VM on exit reason 9.
    stopped: bool,
    /// Started paused (QEMU -S) and not resumed yet.
    paused: bool,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct SimKvm {
    cpus: Vec<Cpu>,
    /// Slots in creation order; a destroyed VM leaves `None`.
    vms: Vec<Option<Vm>>,
}

pub type VmHandle = usize;

impl SimKvm {
    pub fn new(lines_per_cpu: impl IntoIterator<Item = u8>) -> Self {
        SimKvm {
            cpus: lines_per_cpu
                .into_iter()
                .map(|lines| Cpu {
                    lines,
                    used: 0,
                    online: true,
                })
                .collect(),
            vms: Vec::new(),
        }
    }

    /// KVM_CREATE_VM + the AIA device with its mode + KVM_CREATE_VCPU × n.
    /// Every vCPU may run anywhere until its affinity is set.
    pub fn create_vm(&mut self, mode: AiaMode, vcpus: usize) -> Result<VmHandle, KvmError> {
        if mode != AiaMode::Emul && self.cpus.iter().all(|c| c.lines == 0) {
            return Err(KvmError::NoGuestFiles(mode));
        }
        let all: Vec<u32> = (0..self.cpus.len() as u32).collect();
        let vcpu = Vcpu {
            affinity: all,
            last_cpu: None,
            file: File::None,
            last_entry: None,
            blocked: false,
        };
        self.vms.push(Some(Vm {
            mode,
            vcpus: vec![vcpu; vcpus],
            stopped: false,
            paused: false,
        }));
        Ok(self.vms.len() - 1)
    }

    /// sched_setaffinity of a vCPU thread. Nothing is freed here: the old file
    /// stays held until the vCPU enters on another CPU.
    pub fn set_affinity(
        &mut self,
        vm: VmHandle,
        vcpu: usize,
        cpus: &[u32],
    ) -> Result<(), KvmError> {
        if let Some(&bad) = cpus.iter().find(|&&c| c as usize >= self.cpus.len()) {
            return Err(KvmError::NoSuchCpu(bad));
        }
        let v = self.vcpu_mut(vm, vcpu)?;
        v.affinity = cpus.to_vec();
        v.affinity.sort_unstable();
        Ok(())
    }

    /// Pauses or resumes the whole VM (QEMU `-S`, then QMP `cont`).
    pub fn set_paused(&mut self, vm: VmHandle, paused: bool) -> Result<(), KvmError> {
        let m = self
            .vms
            .get_mut(vm)
            .and_then(Option::as_mut)
            .ok_or(KvmError::NoSuchVcpu)?;
        m.paused = paused;
        Ok(())
    }

    /// Blocks or wakes one vCPU (a guest idling in WFI, or woken by an
    /// interrupt).
    pub fn set_blocked(
        &mut self,
        vm: VmHandle,
        vcpu: usize,
        blocked: bool,
    ) -> Result<(), KvmError> {
        self.vcpu_mut(vm, vcpu)?.blocked = blocked;
        Ok(())
    }

    /// Destroys a VM: every file it held is freed at once.
    pub fn destroy_vm(&mut self, vm: VmHandle) -> Result<(), KvmError> {
        let slot = self.vms.get_mut(vm).ok_or(KvmError::NoSuchVcpu)?;
        let gone = slot.take().ok_or(KvmError::NoSuchVcpu)?;
        for v in gone.vcpus {
            if let File::Hw { cpu, line } = v.file {
                self.cpus[cpu as usize].free(line);
            }
        }
        Ok(())
    }

    /// One KVM_RUN guest entry of one vCPU, as `kvm_riscv_vcpu_aia_imsic_update`
    /// does it. A stopped or paused VM and a blocked vCPU do not enter.
    pub fn enter(&mut self, vm: VmHandle, vcpu: usize) -> Result<Option<Entry>, KvmError> {
        let cpu = {
            let v = self.vcpu(vm, vcpu)?;
            if v.blocked || self.vms[vm].as_ref().is_some_and(|m| m.stopped || m.paused) {
                return Ok(None);
            }
            self.schedule(v)
        };
        let mode = self.vms[vm].as_ref().expect("checked").mode;
        let file = self.vcpu(vm, vcpu)?.file;
        let (file, entry) = match (mode, file) {
            (AiaMode::Emul, _) => (File::Sw, Entry::SwFile { cpu }),
            (_, File::Hw { cpu: held, line }) if held == cpu => (file, Entry::VsFile { cpu, line }),
            _ => match self.cpus[cpu as usize].alloc() {
                Some(line) => {
                    self.release_hw(file);
                    (File::Hw { cpu, line }, Entry::VsFile { cpu, line })
                }
                None if mode == AiaMode::Hwaccel => (file, Entry::Failed { cpu }),
                None => {
                    self.release_hw(file);
                    (File::Sw, Entry::SwFile { cpu })
                }
            },
        };
        let vm_state = self.vms[vm].as_mut().expect("checked");
        if matches!(entry, Entry::Failed { .. }) {
            vm_state.stopped = true;
        }
        let v = &mut vm_state.vcpus[vcpu];
        v.file = file;
        v.last_cpu = Some(cpu);
        v.last_entry = Some(entry);
        Ok(Some(entry))
    }

    /// Takes a CPU offline: `kvm_riscv_aia_disable` pushes every owner of a
    /// line there to its SW-file; the scheduler moves the threads elsewhere.
    pub fn set_cpu_online(&mut self, cpu: u32, online: bool) -> Result<(), KvmError> {
        let others_online = self
            .cpus
            .iter()
            .enumerate()
            .any(|(i, c)| i != cpu as usize && c.online);
        let c = self
            .cpus
            .get_mut(cpu as usize)
            .ok_or(KvmError::NoSuchCpu(cpu))?;
        if !online && c.online && !others_online {
            return Err(KvmError::LastOnlineCpu(cpu));
        }
        c.online = online;
        if online {
            return Ok(());
        }
        c.used = 0;
        for v in self
            .vms
            .iter_mut()
            .flatten()
            .flat_map(|vm| vm.vcpus.iter_mut())
        {
            if matches!(v.file, File::Hw { cpu: held, .. } if held == cpu) {
                v.file = File::Sw;
            }
        }
        Ok(())
    }

    /// The machine came back with other CPUs (while ifad was down): a CPU
    /// that is gone, or lines beyond a CPU's new count, are dropped as an
    /// offline CPU's are (owners go to their SW-file); affinities lose the
    /// CPUs that are gone, and a thread left with none may run anywhere.
    pub fn reshape(&mut self, lines_per_cpu: &[u8]) {
        for cpu in lines_per_cpu.len()..self.cpus.len() {
            // Refused only for the last CPU online; it goes away whole
            // below all the same, its lines' owners to their SW-file.
            if self.set_cpu_online(cpu as u32, false).is_err() { /* as above */ }
        }
        self.cpus.truncate(lines_per_cpu.len());
        for (cpu, &lines) in lines_per_cpu.iter().enumerate() {
            match self.cpus.get_mut(cpu) {
                Some(c) => {
                    c.lines = lines;
                    // Lines 1..=lines (bit 0 is never a line).
                    c.used &= u64::MAX >> (63 - lines.min(63)) & !1;
                }
                None => self.cpus.push(Cpu {
                    lines,
                    used: 0,
                    online: true,
                }),
            }
        }
        let n = self.cpus.len() as u32;
        let cpus = &self.cpus;
        for v in self
            .vms
            .iter_mut()
            .flatten()
            .flat_map(|vm| vm.vcpus.iter_mut())
        {
            if let File::Hw { cpu, line } = v.file
                && cpus
                    .get(cpu as usize)
                    .is_none_or(|c| c.used & (1u64 << line) == 0)
            {
                v.file = File::Sw;
            }
            v.affinity.retain(|&c| c < n);
            if v.affinity.is_empty() {
                v.affinity = (0..n).collect();
            }
            v.last_cpu = v.last_cpu.filter(|&c| c < n);
        }
    }

    /// The line a vCPU holds right now, if any (an offline CPU or a
    /// fallback may have taken it since its last entry).
    pub fn held_line(&self, vm: VmHandle, vcpu: usize) -> Result<Option<(u32, u8)>, KvmError> {
        Ok(match self.vcpu(vm, vcpu)?.file {
            File::Hw { cpu, line } => Some((cpu, line)),
            File::Sw | File::None => None,
        })
    }

    /// The result of a vCPU's most recent entry.
    pub fn last_entry(&self, vm: VmHandle, vcpu: usize) -> Result<Option<Entry>, KvmError> {
        Ok(self.vcpu(vm, vcpu)?.last_entry)
    }

    pub fn is_online(&self, cpu: u32) -> bool {
        self.cpus.get(cpu as usize).is_some_and(|c| c.online)
    }

    pub fn is_stopped(&self, vm: VmHandle) -> bool {
        self.vms
            .get(vm)
            .and_then(Option::as_ref)
            .is_some_and(|m| m.stopped)
    }

    /// Lines held on a CPU.
    pub fn used_lines(&self, cpu: u32) -> u32 {
        self.cpus
            .get(cpu as usize)
            .map_or(0, |c| c.used.count_ones())
    }

    /// Every live VM handle and its vCPU count, in creation order.
    pub fn vm_handles(&self) -> impl Iterator<Item = (VmHandle, usize)> + '_ {
        self.vms
            .iter()
            .enumerate()
            .filter_map(|(h, vm)| vm.as_ref().map(|vm| (h, vm.vcpus.len())))
    }

    /// Where the scheduler runs the thread: its last CPU if still allowed
    /// and online, else the lowest allowed online CPU, else (Linux's
    /// select_fallback_rq) the lowest online CPU at all.
    fn schedule(&self, v: &Vcpu) -> u32 {
        let online = |c: &u32| self.cpus[*c as usize].online;
        v.last_cpu
            .filter(|c| v.affinity.contains(c) && online(c))
            .or_else(|| v.affinity.iter().copied().find(online))
            .or_else(|| (0..self.cpus.len() as u32).find(online))
            .unwrap_or(0)
    }

    fn release_hw(&mut self, file: File) {
        if let File::Hw { cpu, line } = file {
            self.cpus[cpu as usize].free(line);
        }
    }

    fn vcpu(&self, vm: VmHandle, vcpu: usize) -> Result<&Vcpu, KvmError> {
        self.vms
            .get(vm)
            .and_then(Option::as_ref)
            .and_then(|m| m.vcpus.get(vcpu))
            .ok_or(KvmError::NoSuchVcpu)
    }

    fn vcpu_mut(&mut self, vm: VmHandle, vcpu: usize) -> Result<&mut Vcpu, KvmError> {
        self.vms
            .get_mut(vm)
            .and_then(Option::as_mut)
            .and_then(|m| m.vcpus.get_mut(vcpu))
            .ok_or(KvmError::NoSuchVcpu)
    }
}

#[cfg(test)]
#[path = "kvm_tests.rs"]
mod tests;
