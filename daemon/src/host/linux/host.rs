//! `Host` on a real RISC-V KVM host: the VMM runs the VM; ifad pins its
//! vCPU threads, watches the process, and notices drift.

use std::collections::HashMap;
use std::path::PathBuf;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::sync::mpsc;

use std::os::fd::OwnedFd;

use rustix::event::{PollFd, PollFlags, Timespec, poll};
use rustix::process::{Pid, PidfdFlags, RawPid, pidfd_open};
use tracing::{info, warn};

use crate::clock::Clock;
use crate::core::ledger::VmRecord;
use crate::core::{AiaMode, Bdf, HartId, Topology, VmId};
use crate::host::linux::discover::{Discovered, discover};
use crate::host::linux::irq::{self, Outcome, RealFs, Steering};
use crate::host::linux::kprobes::{self, Allocations, Event, ProbeError, Probes};
use crate::host::linux::{affinity, cpulist, threads};
use crate::host::{Drift, Host, HostError, IrqFailure, Observed, Restored, SavedHost};
use crate::repeats::{Repeats, suffix};

/// How ifad answers a thread someone else re-pinned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DriftPolicy {
    /// Set it back, at most `MAX_REAPPLY` times per vCPU, then leave it.
    Reapply,
    /// Report it only.
    Leave,
}

/// Times ifad re-pins one vCPU before it stops fighting whoever else sets
/// its affinity (irqbalance issue #246).
pub const MAX_REAPPLY: u32 = 3;

struct Vmm {
    pid: u32,
    start_time: u64,
    /// Readable once the process exits; `None` on kernels without
    /// pidfd_open, where the start time tells a reused PID apart.
    pidfd: Option<OwnedFd>,
    tids: Vec<Option<u32>>,
}

impl Vmm {
    fn exited(&self, proc_root: &Path) -> bool {
        if let Some(fd) = &self.pidfd {
            let mut fds = [PollFd::new(fd, PollFlags::IN)];
            let zero = Timespec {
                tv_sec: 0,
                tv_nsec: 0,
            };
            if let Ok(n) = poll(&mut fds, Some(&zero)) {
                return n > 0;
            }
        }
        threads::start_time(proc_root, self.pid) != Some(self.start_time)
    }
}

struct Vm {
    harts: Vec<HartId>,
    devices: Vec<Bdf>,
    vmm: Option<Vmm>,
    reapplied: Vec<u32>,
}

pub struct LinuxHost {
    root: PathBuf,
    proc_root: PathBuf,
    max_files: Option<u8>,
    topology: Topology,
    patterns: Vec<String>,
    drift_policy: DriftPolicy,
    vms: HashMap<VmId, Vm>,
    steering: Steering,
    irq_failures: Vec<IrqFailure>,
    clock: Clock,
    kick: Option<nix::sys::signal::Signal>,
    /// Failures repeated every tick are counted, not printed each time.
    repeats: Repeats,
    observer: Option<Observer>,
}

/// KVM's allocations as the kprobes show them, fed by a thread reading
/// trace_pipe.
struct Observer {
    _probes: Probes,
    events: mpsc::Receiver<Event>,
    allocations: Allocations,
}

impl Observer {
    fn start(tracefs: &Path) -> Result<Observer, ProbeError> {
        let probes = Probes::install(tracefs)?;
        let pipe = probes.trace_pipe();
        let file =
            std::fs::File::open(&pipe).map_err(|source| ProbeError::Io { path: pipe, source })?;
        let (tx, events) = mpsc::channel();
        std::thread::Builder::new()
            .name("ifad-kprobes".into())
            .spawn(move || {
                for line in BufReader::new(file).lines().map_while(Result::ok) {
                    if let Some(e) = kprobes::parse(&line)
                        && tx.send(e).is_err()
                    {
                        return;
                    }
                }
            })
            .map_err(|source| ProbeError::Io {
                path: tracefs.to_path_buf(),
                source,
            })?;
        Ok(Observer {
            _probes: probes,
            events,
            allocations: Allocations::default(),
        })
    }

    fn drain(&mut self) {
        while let Ok(e) = self.events.try_recv() {
            self.allocations.feed(e);
        }
    }
}

pub struct LinuxConfig {
    /// Where discovery reads /sys, /proc/cpuinfo and dmesg.txt (`/` live).
    pub root: PathBuf,
    /// The procfs holding the VMM processes (`/proc`).
    pub proc_root: PathBuf,
    pub max_files: Option<u8>,
    pub patterns: Vec<String>,
    pub drift_policy: DriftPolicy,
    /// Try the kprobe observer (tracefs under the root).
    pub kprobes: bool,
    /// Signal that makes a re-pinned vCPU thread re-enter the guest (QEMU:
    /// SIGUSR1); `None`: wait for it to run by itself.
    pub kick: Option<nix::sys::signal::Signal>,
}

impl LinuxHost {
    pub fn new(config: LinuxConfig, found: Discovered) -> Self {
        let observer = if config.kprobes {
            match Observer::start(&config.root.join("sys/kernel/tracing")) {
                Ok(o) => {
                    info!("kprobe observer on: KVM's VS-file allocations are watched");
                    Some(o)
                }
                Err(e) => {
                    info!("kprobe observer off ({e}); VS-file holders are inferred");
                    None
                }
            }
        } else {
            None
        };
        LinuxHost {
            kick: config.kick,
            repeats: Repeats::default(),
            observer,
            steering: Steering::new(config.root.clone(), Box::new(RealFs)),
            irq_failures: Vec::new(),
            clock: Clock::start(),
            root: config.root,
            proc_root: config.proc_root,
            max_files: config.max_files,
            topology: found.topology,
            patterns: config.patterns,
            drift_policy: config.drift_policy,
            vms: HashMap::new(),
        }
    }

    /// Points the VM's device IRQs at its vCPUs' harts.
    fn steer(&mut self, id: &VmId) {
        let Some(v) = self.vms.get(id) else { return };
        if v.devices.is_empty() {
            return;
        }
        let now = self.clock.now();
        let irqs: Vec<u32> = v
            .devices
            .iter()
            .flat_map(|d| self.steering.device_irqs(d))
            .collect();
        let harts = v.harts.clone();
        for outcome in self.steering.steer(&irqs, &harts, now) {
            if let (Outcome::Moved { irq, hart, .. }, Some(cpus)) = (&outcome, outcome.rerouted()) {
                self.irq_failures.push(IrqFailure {
                    vm: id.clone(),
                    irq: *irq,
                    hart: *hart,
                    class: irq::REROUTED,
                    error: format!(
                        "the kernel took the move but routes it to CPUs {}",
                        cpulist::format(cpus)
                    ),
                });
            }
            if let Outcome::Failed {
                irq,
                hart,
                class,
                error,
            } = outcome
            {
                self.irq_failures.push(IrqFailure {
                    vm: id.clone(),
                    irq,
                    hart,
                    class: class.as_str(),
                    error,
                });
            }
        }
    }

    fn vm(&mut self, vm: &VmId) -> Result<&mut Vm, HostError> {
        self.vms.get_mut(vm).ok_or_else(|| HostError::Vm {
            vm: vm.clone(),
            reason: "not placed on this host".into(),
        })
    }
}

fn pin(vm: &VmId, vcpu: usize, tid: u32, hart: HartId) -> Result<(), HostError> {
    affinity::set(tid, &[hart]).map_err(|e| HostError::Vm {
        vm: vm.clone(),
        reason: format!("sched_setaffinity(vcpu {vcpu} thread {tid}, hart {hart}): {e}"),
    })
}

impl Host for LinuxHost {
    fn kind(&self) -> &'static str {
        "linux"
    }

    fn topology(&self) -> &Topology {
        &self.topology
    }

    fn refresh_topology(&mut self) -> bool {
        match discover(&self.root, self.max_files) {
            Ok(found) if found.topology != self.topology => {
                self.repeats.clear("discover");
                self.topology = found.topology;
                true
            }
            Ok(_) => {
                self.repeats.clear("discover");
                false
            }
            Err(e) => {
                if let Some(held) = self.repeats.check("discover", self.clock.now()) {
                    warn!("re-reading the host: {e}{}", suffix(held));
                }
                false
            }
        }
    }

    fn create_vm(
        &mut self,
        vm: &VmId,
        _mode: AiaMode,
        harts: &[HartId],
        devices: &[Bdf],
    ) -> Result<(), HostError> {
        self.vms.insert(
            vm.clone(),
            Vm {
                harts: harts.to_vec(),
                devices: devices.to_vec(),
                vmm: None,
                reapplied: vec![0; harts.len()],
            },
        );
        self.steer(vm);
        Ok(())
    }

    fn resume_vm(&mut self, _vm: &VmId) -> Result<(), HostError> {
        // The orchestrator resumes the VMM once the VM reports ready.
        Ok(())
    }

    fn pin_vcpu(&mut self, vm: &VmId, vcpu: u32, hart: HartId) -> Result<(), HostError> {
        let id = vm.clone();
        let v = self.vm(vm)?;
        if let Some(h) = v.harts.get_mut(vcpu as usize) {
            *h = hart;
        }
        let pid = v.vmm.as_ref().map(|m| m.pid);
        let tid = v
            .vmm
            .as_ref()
            .and_then(|m| m.tids.get(vcpu as usize).copied().flatten());
        self.steer(&id);
        let (Some(pid), Some(tid)) = (pid, tid) else {
            return Ok(());
        };
        pin(&id, vcpu as usize, tid, hart)?;
        if let Some(signal) = self.kick
            && let Err(e) = affinity::kick(pid, tid, signal)
        {
            warn!(vm = %id, vcpu, tid, "kicking the re-pinned thread: {e}");
        }
        Ok(())
    }

    fn release_vm(&mut self, vm: &VmId) -> Result<(), HostError> {
        self.vms.remove(vm);
        Ok(())
    }

    fn settle(&mut self) {
        if let Some(o) = &mut self.observer {
            o.drain();
        }
    }

    /// Which line KVM gave is visible only through the kprobe observer, and
    /// only for attached threads.
    fn observe(&self, vm: &VmId) -> Vec<Observed> {
        let Some(v) = self.vms.get(vm) else {
            return Vec::new();
        };
        let Some(m) = &v.vmm else {
            return vec![Observed::Unknown; v.harts.len()];
        };
        // Without the kprobes nothing shows a vCPU's backing: RISC-V KVM has
        // no per-vCPU debugfs (only per-VM sums; tests/riscv-kvm/measure),
        // and only the VMM may read a vCPU's binary stats.
        let Some(o) = &self.observer else {
            return vec![Observed::Unknown; v.harts.len()];
        };
        m.tids
            .iter()
            .map(|tid| {
                let Some(tid) = *tid else {
                    return Observed::Unknown;
                };
                match o.allocations.held_by(tid) {
                    Some((cpu, line)) => Observed::VsFile {
                        hart: cpu,
                        line: line as u8,
                    },
                    None => match threads::last_cpu(&self.proc_root, m.pid, tid) {
                        Some(cpu) => Observed::Mrif { hart: cpu },
                        None => Observed::Unknown,
                    },
                }
            })
            .collect()
    }

    fn held_vsfiles(&self) -> Option<Vec<u32>> {
        let o = self.observer.as_ref()?;
        Some(o.allocations.per_cpu(self.topology.len()))
    }

    fn save_vm(&self, vm: &VmId) -> serde_json::Value {
        persist::save_vm(self, vm)
    }

    fn restore(&mut self, saved: &SavedHost, kept: &[VmRecord]) -> Restored {
        persist::restore(self, saved, kept)
    }

    fn attach_vm(&mut self, vm: &VmId, pid: u32) -> Result<Vec<Option<u32>>, HostError> {
        let proc_root = self.proc_root.clone();
        let patterns = self.patterns.clone();
        let id = vm.clone();
        let v = self.vm(vm)?;
        let err = |reason: String| HostError::Vm {
            vm: id.clone(),
            reason,
        };
        let start_time =
            threads::start_time(&proc_root, pid).ok_or_else(|| err(format!("no process {pid}")))?;
        let tids = threads::vcpu_threads(&proc_root, pid, v.harts.len(), &patterns)
            .map_err(|e| err(format!("/proc/{pid}/task: {e}")))?;
        if tids.iter().all(Option::is_none) {
            return Err(err(format!(
                "process {pid} has no vCPU threads named like {}",
                patterns.join(", ")
            )));
        }
        for (vcpu, (tid, &hart)) in tids.iter().zip(&v.harts).enumerate() {
            if let Some(tid) = tid {
                pin(&id, vcpu, *tid, hart)?;
                // The kernel intersects with the thread's cpuset: check.
                let now = affinity::get(*tid).unwrap_or_default();
                if now != [hart] {
                    return Err(err(format!(
                        "vcpu {vcpu} thread {tid} runs on {:?} after pinning to hart {hart}: is its cgroup cpuset narrower?",
                        now
                    )));
                }
            }
        }
        let pidfd = RawPid::try_from(pid)
            .ok()
            .and_then(Pid::from_raw)
            .and_then(|p| pidfd_open(p, PidfdFlags::empty()).ok());
        v.vmm = Some(Vmm {
            pid,
            start_time,
            pidfd,
            tids: tids.clone(),
        });
        self.steer(&id);
        Ok(tids)
    }

    /// Each vCPU thread's wake-ups (voluntary context switches), which its
    /// interrupts cause on either backing; `None` for a thread not found.
    fn interrupt_counts(&self, vm: &VmId) -> Vec<crate::core::pressure::InterruptCount> {
        let Some(m) = self.vms.get(vm).and_then(|v| v.vmm.as_ref()) else {
            return Vec::new();
        };
        m.tids
            .iter()
            .map(|tid| tid.and_then(|t| threads::wakeups(&self.proc_root, m.pid, t)))
            .collect()
    }

    fn vcpu_threads(&self, vm: &VmId) -> Vec<Option<u32>> {
        self.vms
            .get(vm)
            .and_then(|v| v.vmm.as_ref())
            .map(|m| m.tids.clone())
            .unwrap_or_default()
    }

    fn exited_vms(&mut self) -> Vec<VmId> {
        let proc_root = &self.proc_root;
        self.vms
            .iter()
            .filter(|(_, v)| v.vmm.as_ref().is_some_and(|m| m.exited(proc_root)))
            .map(|(id, _)| id.clone())
            .collect()
    }

    fn maintain(&mut self) {
        let ids: Vec<VmId> = self.vms.keys().cloned().collect();
        for id in ids {
            self.steer(&id);
        }
    }

    fn irq_failures(&mut self) -> Vec<IrqFailure> {
        std::mem::take(&mut self.irq_failures)
    }

    fn drifted(&mut self) -> Vec<Drift> {
        let mut out = Vec::new();
        let policy = self.drift_policy;
        let kick = self.kick;
        for (id, v) in &mut self.vms {
            let Some(m) = &v.vmm else { continue };
            for (vcpu, (tid, &want)) in m.tids.iter().zip(&v.harts).enumerate() {
                let Some(tid) = *tid else { continue };
                let Ok(found) = affinity::get(tid) else {
                    continue;
                };
                if found == [want] {
                    continue;
                }
                let tries = &mut v.reapplied[vcpu];
                let reapplied = policy == DriftPolicy::Reapply
                    && *tries < MAX_REAPPLY
                    && affinity::set(tid, &[want]).is_ok();
                if reapplied {
                    *tries += 1;
                    // Pinned back is re-pinned: kicked as pin_vcpu kicks.
                    if let Some(signal) = kick
                        && let Err(e) = affinity::kick(m.pid, tid, signal)
                    {
                        warn!(vm = %id, vcpu, tid, "kicking the re-pinned thread: {e}");
                    }
                }
                out.push(Drift {
                    vm: id.clone(),
                    vcpu: vcpu as u32,
                    tid,
                    want,
                    found,
                    reapplied,
                });
            }
        }
        out
    }
}

#[path = "host_persist.rs"]
mod persist;
