use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

/// Inspect and steer ifad, the interrupt-file allocation daemon.
#[derive(Debug, Parser)]
#[command(version, about)]
pub struct Args {
    /// ifad's Unix socket [default: /run/ifad/ifad.sock for root, else
    /// $XDG_RUNTIME_DIR/ifad/ifad.sock or /tmp/ifad-<uid>/ifad.sock]
    #[arg(long, global = true, env = ifa_api::socket::SOCKET_ENV, value_name = "PATH")]
    pub socket: Option<PathBuf>,

    /// Output format.
    #[arg(short = 'o', long, global = true, value_enum, default_value_t = Output::Table)]
    pub output: Output,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Table,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Host summary: harts, VS-files, vCPUs by backing.
    Status,
    /// One row per hart.
    Harts,
    /// Place a VM: every vCPU gets a hart and a VS-file or MRIF.
    Place {
        #[arg(long, value_name = "ID")]
        vm: String,
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1024))]
        vcpus: u32,
        #[arg(long, value_enum)]
        class: ClassArg,
        /// PCI address of an assigned device (repeatable).
        #[arg(long = "device", value_name = "BDF")]
        devices: Vec<String>,
    },
    /// All placed VMs.
    Vms,
    /// One placed VM.
    Vm {
        #[arg(value_name = "ID")]
        vm: String,
    },
    /// Free everything a VM holds.
    Release {
        #[arg(long, value_name = "ID")]
        vm: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ClassArg {
    /// AIA mode hwaccel: a VS-file for every vCPU, or refused.
    Guaranteed,
    /// AIA mode auto: VS-files while free, else MRIF.
    Burstable,
    /// AIA mode emul: never a VS-file.
    BestEffort,
}
