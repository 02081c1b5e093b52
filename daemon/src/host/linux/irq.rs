//! Host IRQs of assigned devices follow their VM's vCPUs: read the current
//! affinity first and skip equal writes, write only online harts, read back
//! the effective affinity, and classify failures as irqbalance's activate.c
//! does. Every path is under a root; file access goes through `IrqFs` so
//! tests can make the kernel answer EBUSY or ENOSPC.

use std::collections::HashMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use nix::errno::Errno;

use crate::core::ledger::Millis;
use crate::core::{Bdf, HartId};
use crate::host::linux::cpulist;

/// Reads and writes the files that steer IRQs.
pub trait IrqFs: Send {
    fn read(&self, path: &Path) -> io::Result<String>;
    fn write(&self, path: &Path, data: &str) -> io::Result<()>;
    fn list(&self, dir: &Path) -> io::Result<Vec<String>>;
}

/// The real /proc and /sys under a root.
pub struct RealFs;

impl IrqFs for RealFs {
    fn read(&self, path: &Path) -> io::Result<String> {
        fs::read_to_string(path)
    }

    fn write(&self, path: &Path, data: &str) -> io::Result<()> {
        fs::write(path, data)
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        fs::read_dir(dir)?
            .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
            .collect()
    }
}

/// How a failed write is treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorClass {
    /// EBUSY (a move still in flight), EAGAIN, EINVAL, ERANGE, ENOMEM: retry
    /// later, with backoff.
    Transient,
    /// ENOSPC: no vector left on that hart; place the IRQ elsewhere.
    TargetFull,
    /// Anything else: stop managing the IRQ and say so once.
    Permanent,
}

impl ErrorClass {
    pub fn of(e: &io::Error) -> ErrorClass {
        match e.raw_os_error().map(Errno::from_raw) {
            Some(Errno::EBUSY | Errno::EAGAIN | Errno::EINVAL | Errno::ERANGE | Errno::ENOMEM) => {
                ErrorClass::Transient
            }
            Some(Errno::ENOSPC) => ErrorClass::TargetFull,
            _ => ErrorClass::Permanent,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorClass::Transient => "transient",
            ErrorClass::TargetFull => "target_full",
            ErrorClass::Permanent => "permanent",
        }
    }
}

/// What one steering attempt did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Already there: nothing written.
    Unchanged { irq: u32, hart: HartId },
    Moved {
        irq: u32,
        hart: HartId,
        effective: Vec<HartId>,
    },
    Failed {
        irq: u32,
        hart: HartId,
        class: ErrorClass,
        error: String,
    },
    /// Given up earlier (permanent error), or waiting out a backoff.
    Skipped { irq: u32 },
    /// The kernel took the move and will make it at the IRQ's next
    /// interrupt (GENERIC_PENDING_IRQ, as RISC-V's IMSIC has): until then it
    /// is delivered where it was. Checked again at every steer.
    Pending { irq: u32, hart: HartId },
}

/// The label of a move the kernel took but routed elsewhere.
pub const REROUTED: &str = "rerouted";

impl Outcome {
    /// The CPUs the kernel chose when it took a move but routed the IRQ
    /// elsewhere (a managed IRQ, or an irqchip that cannot reach the hart).
    /// `None` when it went where asked, or the read-back was unreadable.
    pub fn rerouted(&self) -> Option<&[HartId]> {
        match self {
            Outcome::Moved {
                hart, effective, ..
            } if !effective.is_empty() && !effective.contains(hart) => Some(effective),
            _ => None,
        }
    }
}

/// The host IRQs of a PCI device: its msi_irqs directory, else the
/// `vfio-msi(x)[..](BDF)` lines of /proc/interrupts.
pub fn device_irqs(fs: &dyn IrqFs, root: &Path, bdf: &Bdf) -> Vec<u32> {
    let dir = root.join(format!("sys/bus/pci/devices/{bdf}/msi_irqs"));
    if let Ok(names) = fs.list(&dir) {
        let mut irqs: Vec<u32> = names.iter().filter_map(|n| n.parse().ok()).collect();
        irqs.sort_unstable();
        if !irqs.is_empty() {
            return irqs;
        }
    }
    let needle = format!("({bdf})");
    fs.read(&root.join("proc/interrupts"))
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains("vfio-msi") && l.contains(&needle))
        .filter_map(|l| l.split(':').next()?.trim().parse().ok())
        .collect()
}

#[derive(Debug, Default)]
struct IrqState {
    /// The hart ifad last put it on; it is not written again for the same
    /// hart, so whoever else moves it afterwards is not fought.
    applied: Option<HartId>,
    /// Permanent failure: no longer managed.
    abandoned: bool,
    failures: u32,
    retry_at: Millis,
    /// A move written but not seen in effect yet, with the IRQ's interrupt
    /// count at the write (`None`: not in /proc/interrupts).
    unconfirmed: Option<Option<u64>>,
}

/// Longest wait between retries of a transiently failing IRQ.
const MAX_BACKOFF: Millis = 30_000;
const FIRST_BACKOFF: Millis = 500;

/// Steers IRQs and remembers which failed, how, and until when to wait.
pub struct Steering {
    root: PathBuf,
    fs: Box<dyn IrqFs>,
    irqs: HashMap<u32, IrqState>,
    /// Harts that answered ENOSPC: no more IRQs go there.
    full: Vec<HartId>,
}

impl Steering {
    pub fn new(root: PathBuf, fs: Box<dyn IrqFs>) -> Self {
        Steering {
            root,
            fs,
            irqs: HashMap::new(),
            full: Vec::new(),
        }
    }

    pub fn device_irqs(&self, bdf: &Bdf) -> Vec<u32> {
        device_irqs(self.fs.as_ref(), &self.root, bdf)
    }

    /// Points `irqs` at `harts` round-robin (vector i to hart i mod n) where that
    /// changes where ifad last put them or retries a failure that is due,
    /// skipping harts that ran out of vectors.
    pub fn steer(&mut self, irqs: &[u32], harts: &[HartId], now: Millis) -> Vec<Outcome> {
        let usable: Vec<HartId> = harts
            .iter()
            .copied()
            .filter(|h| !self.full.contains(h))
            .collect();
        let targets = if usable.is_empty() { harts } else { &usable };
        if targets.is_empty() {
            return Vec::new();
        }
        irqs.iter()
            .enumerate()
            .map(|(i, &irq)| self.steer_one(irq, targets[i % targets.len()], now))
            .collect()
    }

    fn steer_one(&mut self, irq: u32, hart: HartId, now: Millis) -> Outcome {
        let state = self.irqs.entry(irq).or_default();
        if state.applied == Some(hart) {
            return match state.unconfirmed {
                Some(fired) => self.confirm(irq, hart, fired),
                None => Outcome::Skipped { irq },
            };
        }
        if state.abandoned || now < state.retry_at {
            return Outcome::Skipped { irq };
        }
        let dir = self.root.join(format!("proc/irq/{irq}"));
        let current = self.fs.read(&dir.join("smp_affinity_list")).ok();
        if current.as_deref().and_then(cpulist::parse) == Some(vec![hart]) {
            let state = self.irqs.entry(irq).or_default();
            state.failures = 0;
            state.applied = Some(hart);
            return Outcome::Unchanged { irq, hart };
        }
        let fired = self.fired(irq);
        match self
            .fs
            .write(&dir.join("smp_affinity_list"), &hart.to_string())
        {
            Ok(()) => {
                let state = self.irqs.entry(irq).or_default();
                state.failures = 0;
                state.applied = Some(hart);
                state.unconfirmed = Some(fired);
                self.confirm(irq, hart, fired)
            }
            Err(e) => self.failed(irq, hart, now, e),
        }
    }

    /// Where the kernel delivers a moved IRQ now: where asked, done; still
    /// elsewhere and not fired since the write (`fired`: its count then),
    /// pending; fired and still elsewhere (or its count unknown), the
    /// kernel routed it there: `Moved` with that effective affinity.
    fn confirm(&mut self, irq: u32, hart: HartId, fired: Option<u64>) -> Outcome {
        let effective = self
            .fs
            .read(
                &self
                    .root
                    .join(format!("proc/irq/{irq}/effective_affinity_list")),
            )
            .ok()
            .and_then(|s| cpulist::parse(&s))
            .unwrap_or_default();
        let in_effect = effective.is_empty() || effective.contains(&hart);
        let fired_since = match (fired, self.fired(irq)) {
            (Some(then), Some(now)) => now > then,
            _ => true,
        };
        if !in_effect && !fired_since {
            return Outcome::Pending { irq, hart };
        }
        self.irqs.entry(irq).or_default().unconfirmed = None;
        Outcome::Moved {
            irq,
            hart,
            effective,
        }
    }

    /// The IRQ's interrupts so far, all CPUs (its /proc/interrupts line).
    fn fired(&self, irq: u32) -> Option<u64> {
        let all = self.fs.read(&self.root.join("proc/interrupts")).ok()?;
        let label = format!("{irq}:");
        let line = all.lines().find(|l| l.trim_start().starts_with(&label))?;
        let counts = line.trim_start()[label.len()..].split_whitespace();
        Some(counts.map_while(|c| c.parse::<u64>().ok()).sum())
    }

    fn failed(&mut self, irq: u32, hart: HartId, now: Millis, e: io::Error) -> Outcome {
        let class = ErrorClass::of(&e);
        let state = self.irqs.entry(irq).or_default();
        match class {
            ErrorClass::Transient => {
                state.failures += 1;
                let wait = FIRST_BACKOFF << state.failures.min(6);
                state.retry_at = now + wait.min(MAX_BACKOFF);
            }
            ErrorClass::TargetFull => {
                if !self.full.contains(&hart) {
                    self.full.push(hart);
                }
            }
            ErrorClass::Permanent => state.abandoned = true,
        }
        Outcome::Failed {
            irq,
            hart,
            class,
            error: e.to_string(),
        }
    }
}

#[cfg(test)]
#[path = "irq_tests.rs"]
mod tests;
