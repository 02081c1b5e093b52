use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};
use ifa_api::v1;

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
    #[command(flatten)]
    pub guest_imsic: GuestImsicArgs,
    /// Expected interrupts per second on each vCPU, a hint for before ifad
    /// has measured anything (0..=10000000). ifad stores and shows it; its
    /// policy does not use it yet.
    #[arg(long, value_name = "N", value_parser = parse_irq_rate, allow_negative_numbers = true)]
    pub irq_rate: Option<f64>,
}

/// Where the VMM puts the guest IMSIC pages; without any of these ifad
/// records them as unknown (KVM does not tell it).
#[derive(Debug, clap::Args)]
pub struct GuestImsicArgs {
    /// The VMM's default layout.
    #[arg(long, value_enum, conflicts_with_all = ["imsic_base", "imsic_gpa"])]
    pub vmm: Option<VmmArg>,
    /// QEMU `-smp sockets=` (with --vmm qemu) [default: 1]
    #[arg(long, value_name = "N", requires = "vmm")]
    pub vmm_sockets: Option<u32>,
    /// The guest's own guest-index-bits, from QEMU `aia-guests` (with
    /// --vmm qemu) [default: 0]
    #[arg(long, value_name = "N", requires = "vmm")]
    pub guest_index_bits: Option<u32>,
    /// Guest IMSIC of vCPU 0 (hex with 0x, or decimal); with --imsic-stride.
    #[arg(long, value_name = "ADDR", value_parser = parse_addr, requires = "imsic_stride",
          conflicts_with = "imsic_gpa")]
    pub imsic_base: Option<u64>,
    /// Bytes between consecutive vCPUs' guest IMSICs; with --imsic-base.
    #[arg(long, value_name = "BYTES", value_parser = parse_addr, requires = "imsic_base")]
    pub imsic_stride: Option<u64>,
    /// One guest IMSIC address per vCPU, in vCPU order: `0x28000000,0x28001000`.
    #[arg(long, value_name = "ADDRS", value_parser = parse_addr, value_delimiter = ',',
          num_args = 1..)]
    pub imsic_gpa: Vec<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum VmmArg {
    /// QEMU virt: 0x28000000 + socket x 16 MiB + hart x (4 KiB << guest-index-bits).
    Qemu,
    /// cloud-hypervisor: 0x04000000 + vCPU x 4 KiB.
    CloudHypervisor,
    /// kvmtool: 0x08000000 + vCPU x 4 KiB.
    Kvmtool,
}

impl GuestImsicArgs {
    /// The request's layout; `Err` (one line, exit 2) for QEMU-only flags
    /// given with another VMM, which clap cannot express.
    pub fn to_proto(&self) -> Result<Option<v1::GuestImsicLayout>, String> {
        use v1::guest_imsic_layout::{self as g, Layout};
        let layout = match (self.vmm, self.imsic_base, self.imsic_stride) {
            (Some(VmmArg::Qemu), ..) => Layout::Qemu(g::Qemu {
                sockets: self.vmm_sockets.unwrap_or(1),
                guest_index_bits: self.guest_index_bits.unwrap_or(0),
            }),
            (Some(other), ..) => {
                if self.vmm_sockets.is_some() || self.guest_index_bits.is_some() {
                    return Err(format!(
                        "--vmm-sockets and --guest-index-bits are for --vmm qemu, not {}",
                        other
                            .to_possible_value()
                            .map_or_else(String::new, |v| v.get_name().to_string())
                    ));
                }
                match other {
                    VmmArg::CloudHypervisor => Layout::CloudHypervisor(g::CloudHypervisor {}),
                    _ => Layout::Kvmtool(g::Kvmtool {}),
                }
            }
            (None, Some(base), Some(stride)) => Layout::Strided(g::Strided { base, stride }),
            _ if !self.imsic_gpa.is_empty() => Layout::PerVcpu(g::PerVcpu {
                gpas: self.imsic_gpa.clone(),
            }),
            _ => return Ok(None),
        };
        Ok(Some(v1::GuestImsicLayout {
            layout: Some(layout),
        }))
    }
}

/// An interrupt rate per second: finite, 0 up to the API's maximum, so a
/// bad one is refused as a bad flag before anything is sent.
pub fn parse_irq_rate(raw: &str) -> Result<f64, String> {
    let max = ifa_api::MAX_EXPECTED_IRQ_RATE;
    match raw.parse::<f64>() {
        Ok(rate) if rate.is_finite() && (0.0..=max).contains(&rate) => Ok(rate),
        _ => Err(format!(
            "{raw:?} is not an interrupt rate (a number of interrupts per second, 0 to {max})"
        )),
    }
}

/// An address or size: `0x...` hex, or decimal.
pub fn parse_addr(raw: &str) -> Result<u64, String> {
    let parsed = match raw.strip_prefix("0x").or_else(|| raw.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(&hex.replace('_', ""), 16),
        None => raw.parse::<u64>(),
    };
    parsed.map_err(|_| format!("{raw:?} is not an address (0x-prefixed hex or decimal)"))
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

    #[test]
    fn addresses_take_hex_or_decimal() {
        assert_eq!(parse_addr("0x2800_0000"), Ok(0x2800_0000));
        assert_eq!(parse_addr("4096"), Ok(4096));
        for bad in ["", "0x", "0xg", "-1", "28000000h"] {
            assert!(parse_addr(bad).is_err(), "{bad:?}");
        }
    }

    fn place(args: &[&str]) -> Result<Args, clap::Error> {
        let base = [
            "ifactl",
            "place",
            "--vm",
            "a",
            "--vcpus",
            "2",
            "--class",
            "burstable",
        ];
        Args::try_parse_from(base.iter().chain(args))
    }

    fn layout(args: &[&str]) -> Result<Option<v1::GuestImsicLayout>, String> {
        match place(args).unwrap().command {
            Command::Place(p) => p.guest_imsic.to_proto(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn layout_flags_build_the_request() {
        use v1::guest_imsic_layout::{Layout, Qemu, Strided};
        let l = |args| layout(args).unwrap().and_then(|l| l.layout);
        assert_eq!(l(&[]), None);
        assert_eq!(
            l(&[
                "--vmm",
                "qemu",
                "--vmm-sockets",
                "2",
                "--guest-index-bits",
                "1"
            ]),
            Some(Layout::Qemu(Qemu {
                sockets: 2,
                guest_index_bits: 1
            }))
        );
        assert_eq!(
            l(&["--vmm", "qemu"]),
            Some(Layout::Qemu(Qemu {
                sockets: 1,
                guest_index_bits: 0
            }))
        );
        assert_eq!(
            l(&["--imsic-base", "0x10000000", "--imsic-stride", "0x2000"]),
            Some(Layout::Strided(Strided {
                base: 0x1000_0000,
                stride: 0x2000
            }))
        );
        match l(&["--imsic-gpa", "0x1000,0x3000"]) {
            Some(Layout::PerVcpu(p)) => assert_eq!(p.gpas, [0x1000, 0x3000]),
            other => panic!("{other:?}"),
        }
        assert!(layout(&["--vmm", "kvmtool", "--vmm-sockets", "2"]).is_err());
    }

    #[test]
    fn irq_rate_takes_rates_from_zero_to_the_maximum_only() {
        let rate = |raw: &str| match place(&["--irq-rate", raw]).map(|a| a.command) {
            Ok(Command::Place(p)) => Ok(p.irq_rate),
            Ok(other) => panic!("{other:?}"),
            Err(e) => Err(e.to_string()),
        };
        assert_eq!(rate("0"), Ok(Some(0.0)));
        assert_eq!(rate("2500.5"), Ok(Some(2500.5)));
        assert_eq!(rate("10000000"), Ok(Some(1e7)));
        for bad in ["-1", "10000000.5", "nan", "inf", "1e400", "many"] {
            let err = rate(bad).unwrap_err();
            assert!(err.contains("--irq-rate"), "{bad}: {err}");
        }
    }

    #[test]
    fn layout_flags_exclude_each_other() {
        for bad in [
            &["--vmm", "qemu", "--imsic-gpa", "0x1000"][..],
            &[
                "--vmm",
                "kvmtool",
                "--imsic-base",
                "0x1000",
                "--imsic-stride",
                "0x1000",
            ],
            &["--imsic-base", "0x1000"],
            &["--imsic-stride", "0x1000"],
            &[
                "--imsic-base",
                "0x1000",
                "--imsic-stride",
                "0x1000",
                "--imsic-gpa",
                "0x1000",
            ],
            &["--vmm-sockets", "2"],
            &["--vmm", "xen"],
        ] {
            assert!(place(bad).is_err(), "{bad:?}");
        }
    }
}
