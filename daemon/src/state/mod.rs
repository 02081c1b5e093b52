//! ifad's durable state: one file under `--state-dir`, replaced atomically
//! on every change (write a temporary file, fsync, rename, fsync the
//! directory), so a crash leaves either the old state or the new one.

mod envelope;
mod store;

pub use envelope::{CURRENT_VERSION, DecodeError, body, decode, encode};
pub use store::{Loaded, StateDir, StateError};

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
    /// The host's own part (VMM processes and threads; null for the
    /// simulated host, whose machine keeps its own file, and its simulated
    /// VMs in a state an older ifad wrote).
    pub host: serde_json::Value,
}

/// A snapshot with the engine clock's reading when it was taken: times in
/// the ledger are on that clock, which restarts with the daemon.
#[derive(Debug, Clone, PartialEq)]
pub struct Saved {
    pub at: Millis,
    pub snapshot: Snapshot,
}
