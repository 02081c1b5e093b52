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
    Place(PlaceArgs),
    /// What `place` would do, changing nothing.
    Advise(PlaceArgs),
    /// Move one vCPU to a hart.
    Migrate {
        #[arg(long, value_name = "ID")]
        vm: String,
        #[arg(long, value_name = "N")]
        vcpu: u32,
        #[arg(long, value_name = "H")]
        hart: u32,
    },
    /// Move every vCPU off a hart and keep it out of placement.
    Drain {
        #[arg(long, value_name = "H")]
        hart: u32,
    },
    /// Find a running VMM's vCPU threads and pin them where the VM is placed.
    Attach {
        #[arg(long, value_name = "ID")]
        vm: String,
        #[arg(long, value_name = "PID", value_parser = clap::value_parser!(u32).range(1..))]
        pid: u32,
    },
    /// Let placement use a drained hart again.
    Undrain {
        #[arg(long, value_name = "H")]
        hart: u32,
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
    /// Print events as they happen (placed, refused, demoted, promoted,
    /// migrated, drained, drift, released, hart) until interrupted.
    Watch {
        /// Resume after this sequence number (the SEQ of the last event
        /// seen), replaying what was missed.
        #[arg(long, value_name = "SEQ")]
        after: Option<u64>,
        /// Exit after this many events.
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
        count: Option<u64>,
    },
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff), e.g. `ifactl man | man -l -`.
    Man,
}

#[derive(Debug, clap::Args)]
pub struct PlaceArgs {
    #[arg(long, value_name = "ID")]
    pub vm: String,
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub vcpus: u32,
    #[arg(long, value_enum)]
    pub class: ClassArg,
    /// PCI address of an assigned device (repeatable).
    #[arg(long = "device", value_name = "BDF")]
    pub devices: Vec<String>,
    /// Among burstable VMs, higher keeps its VS-files longer when a
    /// guaranteed VM needs them.
    #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
    pub priority: i32,
    /// Harts the VM may use, as in cpusets: `0-3,8,10-11`.
    #[arg(long, value_name = "LIST", value_parser = parse_hart_list)]
    pub harts: Option<HartList>,
}

/// A parsed cpuset-style hart list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HartList(pub Vec<u32>);

/// Parses `0-3,8,10-11` (the format of /sys/devices/system/cpu/online).
pub fn parse_hart_list(raw: &str) -> Result<HartList, String> {
    let mut out = Vec::new();
    for part in raw.split(',') {
        let bad = || format!("{part:?} is not a hart or a range like 0-3");
        let (lo, hi) = match part.split_once('-') {
            Some((a, b)) => (
                a.parse::<u32>().map_err(|_| bad())?,
                b.parse::<u32>().map_err(|_| bad())?,
            ),
            None => {
                let h = part.parse::<u32>().map_err(|_| bad())?;
                (h, h)
            }
        };
        if lo > hi || hi - lo >= 4096 {
            return Err(bad());
        }
        out.extend(lo..=hi);
    }
    out.sort_unstable();
    out.dedup();
    Ok(HartList(out))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hart_lists_parse_like_cpusets() {
        assert_eq!(
            parse_hart_list("0-3,8,10-11").unwrap().0,
            [0, 1, 2, 3, 8, 10, 11]
        );
        assert_eq!(parse_hart_list("5,5,4").unwrap().0, [4, 5]);
        for bad in ["", "a", "3-1", "1-", "-1", "0-9999"] {
            assert!(parse_hart_list(bad).is_err(), "{bad:?}");
        }
    }
}
