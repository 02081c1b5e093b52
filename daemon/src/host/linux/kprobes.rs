//! Observing KVM's VS-file allocations through tracefs kprobes on the
//! global symbols `kvm_riscv_aia_alloc_hgei(cpu, ...)` (returns the line,
//! or <0) and `kvm_riscv_aia_free_hgei(cpu, hgei)`. Not ABI: detected at
//! start, optional, removed on exit.

use std::collections::HashMap;
use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

const GROUP: &str = "ifad";
const ALLOC: &str = "kvm_riscv_aia_alloc_hgei";
const FREE: &str = "kvm_riscv_aia_free_hgei";

/// The probe definitions written to kprobe_events (RISC-V: a0, a1 carry
/// the first two arguments).
pub fn probe_definitions() -> [String; 3] {
    [
        format!("p:{GROUP}/alloc_hgei {ALLOC} cpu=%a0:s32"),
        format!("r:{GROUP}/alloc_hgei_ret {ALLOC} ret=$retval:s32"),
        format!("p:{GROUP}/free_hgei {FREE} cpu=%a0:s32 hgei=%a1:s32"),
    ]
}

/// One parsed trace line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Alloc { tid: u32, cpu: u32 },
    AllocRet { tid: u32, ret: i32 },
    Free { cpu: u32, hgei: u32 },
}

fn field<T: std::str::FromStr>(line: &str, name: &str) -> Option<T> {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(name)?.strip_prefix('='))?
        .parse()
        .ok()
}

/// Parses a trace_pipe line such as
/// `  CPU 0/KVM-1234  [001] d..1.  12.345678: alloc_hgei: (...) cpu=1`.
/// The task name may hold spaces; it ends at the last '-' before ` [`.
pub fn parse(line: &str) -> Option<Event> {
    let bracket = line.find(" [")?;
    let (_, tid) = line[..bracket].trim().rsplit_once('-')?;
    let tid: u32 = tid.parse().ok()?;
    let rest = &line[bracket..];
    if rest.contains(" alloc_hgei_ret:") {
        Some(Event::AllocRet {
            tid,
            ret: field(rest, "ret")?,
        })
    } else if rest.contains(" alloc_hgei:") {
        Some(Event::Alloc {
            tid,
            cpu: field(rest, "cpu")?,
        })
    } else if rest.contains(" free_hgei:") {
        Some(Event::Free {
            cpu: field(rest, "cpu")?,
            hgei: field(rest, "hgei")?,
        })
    } else {
        None
    }
}

/// Which thread holds which line, as KVM's own calls show it.
#[derive(Debug, Default)]
pub struct Allocations {
    /// Thread -> CPU of its pending alloc call.
    calling: HashMap<u32, u32>,
    /// (cpu, line) -> holding thread.
    held: HashMap<(u32, u32), u32>,
}

impl Allocations {
    pub fn feed(&mut self, event: Event) {
        match event {
            Event::Alloc { tid, cpu } => {
                self.calling.insert(tid, cpu);
            }
            Event::AllocRet { tid, ret } => {
                if let Some(cpu) = self.calling.remove(&tid)
                    && ret > 0
                {
                    // A thread holds one line: KVM frees the old one right
                    // after (its free may predate the probes, as after a
                    // restart).
                    self.held.retain(|_, t| *t != tid);
                    self.held.insert((cpu, ret as u32), tid);
                }
            }
            Event::Free { cpu, hgei } => {
                self.held.remove(&(cpu, hgei));
            }
        }
    }

    /// A line a thread held before the daemon restarted: the probes see
    /// only calls made since they were installed.
    pub fn seed(&mut self, tid: u32, cpu: u32, line: u32) {
        self.held.insert((cpu, line), tid);
    }

    /// (cpu, line) the thread holds, if any.
    pub fn held_by(&self, tid: u32) -> Option<(u32, u32)> {
        self.held.iter().find(|(_, t)| **t == tid).map(|(k, _)| *k)
    }

    /// Lines held per CPU, for `cpus` CPUs.
    pub fn per_cpu(&self, cpus: usize) -> Vec<u32> {
        let mut out = vec![0; cpus];
        for &(cpu, _) in self.held.keys() {
            if let Some(n) = out.get_mut(cpu as usize) {
                *n += 1;
            }
        }
        out
    }
}

/// The installed probes; removed when dropped.
pub struct Probes {
    tracefs: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("no tracefs at {0}")]
    NoTracefs(PathBuf),
    #[error("the kernel does not export {0} (available_filter_functions)")]
    NoSymbol(&'static str),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

fn append(path: &Path, line: &str) -> Result<(), ProbeError> {
    let io = |source| ProbeError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut f = OpenOptions::new().append(true).open(path).map_err(io)?;
    writeln!(f, "{line}").map_err(io)
}

impl Probes {
    /// Feature-detects and installs the probes under `tracefs`
    /// (/sys/kernel/tracing).
    pub fn install(tracefs: &Path) -> Result<Probes, ProbeError> {
        let events = tracefs.join("kprobe_events");
        if !events.exists() {
            return Err(ProbeError::NoTracefs(tracefs.to_path_buf()));
        }
        let funcs =
            fs::read_to_string(tracefs.join("available_filter_functions")).unwrap_or_default();
        for sym in [ALLOC, FREE] {
            if !funcs
                .lines()
                .any(|l| l.split_whitespace().next() == Some(sym))
            {
                return Err(ProbeError::NoSymbol(sym));
            }
        }
        let probes = Probes {
            tracefs: tracefs.to_path_buf(),
        };
        // A daemon killed with SIGKILL leaves its probes behind, and
        // defining them again would fail: clear them first.
        probes.remove();
        for def in probe_definitions() {
            append(&events, &def)?;
        }
        let enable = tracefs.join("events").join(GROUP).join("enable");
        fs::write(&enable, "1").map_err(|source| ProbeError::Io {
            path: enable,
            source,
        })?;
        Ok(probes)
    }

    pub fn trace_pipe(&self) -> PathBuf {
        self.tracefs.join("trace_pipe")
    }

    /// Disables and deletes ifad's probes; those absent are no error.
    fn remove(&self) {
        let absent = |e: &io::Error| e.kind() == io::ErrorKind::NotFound;
        let enable = self.tracefs.join("events").join(GROUP).join("enable");
        if let Err(e) = fs::write(&enable, "0")
            && !absent(&e)
        {
            tracing::warn!("disabling ifad's kprobes ({}): {e}", enable.display());
        }
        let events = self.tracefs.join("kprobe_events");
        for name in ["alloc_hgei", "alloc_hgei_ret", "free_hgei"] {
            match append(&events, &format!("-:{GROUP}/{name}")) {
                Err(ProbeError::Io { source, .. }) if absent(&source) => {}
                Err(e) => tracing::warn!("removing kprobe {GROUP}/{name}: {e}"),
                Ok(()) => {}
            }
        }
    }
}

impl Drop for Probes {
    fn drop(&mut self) {
        self.remove();
    }
}

#[cfg(test)]
#[path = "kprobes_tests.rs"]
mod tests;
