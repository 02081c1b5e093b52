use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;

use clap::{Parser, ValueEnum};
use ifad::core::ledger::Millis;
use ifad::engine::EngineConfig;
use ifad::host::sim::SimSpec;

/// The longest `--min-move-interval`, in seconds: the engine counts it in
/// milliseconds, which must fit its clock.
pub const MAX_MIN_MOVE_INTERVAL: u64 = Millis::MAX / 1000;

/// ifad: decides which vCPUs of a RISC-V KVM host get a hardware guest
/// interrupt file (VS-file) and which run on MRIF, and serves that over gRPC.
/// Where the simulated machine lives (`--sim-machine`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SimMachine {
    File,
    Memory,
}

#[derive(Debug, Parser)]
#[command(version, about)]
pub struct Args {
    /// Run on a simulated RISC-V KVM host instead of this machine:
    /// `--simulate` alone is 8 harts x 5 VS-files; or `harts=N,files=F[,numa=K]`
    /// with files 1..=63.
    #[arg(long, value_name = "harts=N,files=F[,numa=K]", num_args = 0..=1, default_missing_value = "")]
    pub simulate: Option<SimSpec>,

    /// Where the simulated machine (its KVM and VMMs) lives: `file`, in the
    /// state dir, rewritten at each change of the machine, so that it
    /// outlives the daemon as a real kernel does; or `memory`, gone with
    /// the daemon (for benchmarks: what is measured is then ifad alone).
    #[arg(
        long,
        value_enum,
        value_name = "WHERE",
        default_value = "file",
        requires = "simulate"
    )]
    pub sim_machine: SimMachine,

    /// Read the host from this tree laid out like `/` instead of the live
    /// system (as node_exporter's --path.rootfs): a captured host, to check
    /// what ifad would see, or the live host mounted elsewhere (a container
    /// with the host's /sys and /proc under /host; pair with --proc-root).
    #[arg(long, value_name = "DIR", conflicts_with = "simulate")]
    pub host_root: Option<PathBuf>,

    /// The procfs holding the VMM processes to attach.
    #[arg(long, value_name = "DIR", default_value = "/proc")]
    pub proc_root: PathBuf,

    /// Use at most this many VS-files per hart (may only lower what the
    /// host has).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u8).range(0..=63))]
    pub max_vsfiles: Option<u8>,

    /// vCPU thread names to look for on attach, `{n}` for the vCPU index
    /// (repeatable) [default: "CPU {n}/KVM", "vcpu{n}", "kvm-vcpu-{n}"]
    #[arg(long = "vcpu-thread-pattern", value_name = "PATTERN")]
    pub vcpu_thread_patterns: Vec<String>,

    /// What to do when someone else re-pins a vCPU thread: `reapply` (at
    /// most 3 times per vCPU, then leave it) or `leave` (report only).
    #[arg(long, value_enum, default_value_t = DriftArg::Reapply)]
    pub drift: DriftArg,

    /// Signal that makes a re-pinned vCPU thread re-enter the guest at once,
    /// so KVM frees its old VS-file even if the guest is idle: `SIGUSR1` is
    /// QEMU's own vCPU kick. Only name a signal the VMM handles.
    #[arg(long, value_name = "SIGNAL")]
    pub kick_signal: Option<nix::sys::signal::Signal>,

    /// Do not try the tracefs kprobe observer of KVM's VS-file allocations.
    #[arg(long)]
    pub no_kprobes: bool,

    /// Unix socket for the gRPC API [default: /run/ifad/ifad.sock for root,
    /// else $XDG_RUNTIME_DIR/ifad/ifad.sock or /tmp/ifad-<uid>/ifad.sock]
    #[arg(long, env = ifa_api::socket::SOCKET_ENV, value_name = "PATH")]
    pub socket: Option<PathBuf>,

    /// Also serve reads and watch only on this socket, open to every local
    /// user (as libvirt's `-ro` socket); changes are refused there.
    #[arg(long, value_name = "PATH")]
    pub socket_ro: Option<PathBuf>,

    /// Where state survives restarts [default: /var/lib/ifad for root, else
    /// $XDG_STATE_HOME/ifad or ~/.local/state/ifad; with --simulate, its
    /// `simulated` subdirectory]. One daemon per directory.
    #[arg(long, env = "IFAD_STATE_DIR", value_name = "DIR")]
    pub state_dir: Option<PathBuf>,

    /// Fold the state log into a new snapshot once it is larger than this
    /// many bytes and than twice the snapshot.
    #[arg(long, value_name = "BYTES", default_value_t = ifad::state::DEFAULT_MIN_LOG_BYTES)]
    pub state_log_bytes: u64,

    /// Address for Prometheus /metrics, or `off`.
    #[arg(long, value_name = "ADDR|off", default_value = "127.0.0.1:9464")]
    pub metrics_listen: MetricsListen,

    /// Seconds before policy may move a vCPU again to promote it
    /// (admission, drain and operator migrations are not limited).
    #[arg(
        long,
        value_name = "SECONDS",
        default_value_t = 30,
        value_parser = clap::value_parser!(u64).range(..=MAX_MIN_MOVE_INTERVAL)
    )]
    pub min_move_interval: u64,

    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// TOML file whose keys are these flags' names (`metrics-listen =
    /// "0.0.0.0:9464"`, `no-kprobes = true`); flags and environment
    /// variables override it [default: /etc/ifad/ifad.toml, if present]
    #[arg(long, env = "IFAD_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Check the configuration (file, environment, flags) and exit: 0 if
    /// it is valid, 2 with the file, key and reason if not.
    #[arg(long)]
    pub check_config: bool,
}

impl Args {
    /// The engine's policy knobs, as the flags set them.
    pub fn engine_config(&self) -> EngineConfig {
        EngineConfig {
            // In range by the flag's parser, so this cannot overflow.
            min_move_interval: self.min_move_interval * 1000,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DriftArg {
    Reapply,
    Leave,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricsListen {
    Off,
    On(SocketAddr),
}

impl FromStr for MetricsListen {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        if s == "off" {
            return Ok(MetricsListen::Off);
        }
        s.parse()
            .map(MetricsListen::On)
            .map_err(|_| format!("{s:?} is neither host:port nor off"))
    }
}
