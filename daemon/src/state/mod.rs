//! ifad's durable state under `--state-dir`: a snapshot (`state`, replaced
//! atomically: write a temporary file, fsync, rename, fsync the directory)
//! and a log of the changes since (`log.<generation>`), one checksummed
//! record per commit, made durable with one `fdatasync`. A change costs its
//! own size; the log is folded into a new snapshot (compaction) once it
//! outgrows it. A crash leaves the last snapshot and every whole record.

mod delta;
mod envelope;
mod faults;
mod log;
mod store;

pub use delta::{Delta, Op, Replay};
pub use envelope::{CURRENT_VERSION, DecodeError, body, decode, encode};
pub use faults::DiskFaults;
pub use log::Tail;
pub use store::{DEFAULT_MIN_LOG_BYTES, Loaded, StateDir, StateError};

use crate::core::VcpuKey;
use crate::core::ledger::{Millis, SavedLedger};

/// The state dir when `--state-dir` is not given. The simulated host's
/// state is kept apart, so a simulation never shows up on a real host.
pub fn default_dir(simulated: bool) -> std::path::PathBuf {
    use std::path::PathBuf;
    let base = if nix::unistd::geteuid().is_root() {
        PathBuf::from("/var/lib/ifad")
    } else if let Some(state) = std::env::var_os("XDG_STATE_HOME").filter(|s| !s.is_empty()) {
        PathBuf::from(state).join("ifad")
    } else if let Some(home) = std::env::var_os("HOME").filter(|s| !s.is_empty()) {
        PathBuf::from(home).join(".local/state/ifad")
    } else {
        std::env::temp_dir().join(format!("ifad-{}", nix::unistd::geteuid()))
    };
    if simulated {
        base.join("simulated")
    } else {
        base
    }
}

/// Everything restored after a restart.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Snapshot {
    /// "simulated" or "linux": a state is only ever restored onto the kind
    /// of host that wrote it.
    #[serde(default)]
    pub host_kind: String,
    pub ledger: SavedLedger,
    /// vCPUs whose failed HWACCEL entry was already counted.
    pub failed_entries: Vec<VcpuKey>,
    /// The host's part that belongs to no VM (null but for the simulated
    /// host without a machine file of its own, which keeps its machine
    /// here; in a state an older ifad wrote, the Linux host's VMMs).
    pub host: serde_json::Value,
    /// The host's own part of each VM (its VMM process), where it has one.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub host_vms: std::collections::BTreeMap<crate::core::VmId, serde_json::Value>,
    /// The generation of the log that continues this snapshot (0 in a
    /// state file written before the log existed: there is none).
    #[serde(default)]
    pub log: u64,
}

/// A snapshot with the engine clock's reading when it was taken: times in
/// the ledger are on that clock, which restarts with the daemon.
#[derive(Debug, Clone, PartialEq)]
pub struct Saved {
    pub at: Millis,
    pub snapshot: Snapshot,
}
