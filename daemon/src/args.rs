use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;

use clap::{Parser, ValueEnum};
use ifad::host::sim::SimSpec;

/// ifad: decides which vCPUs of a RISC-V KVM host get a hardware guest
/// interrupt file (VS-file) and which run on MRIF, and serves that over gRPC.
#[derive(Debug, Parser)]
#[command(version, about)]
pub struct Args {
    /// Run on a simulated RISC-V KVM host instead of this machine:
    /// `--simulate` alone is 8 harts x 5 VS-files; or `harts=N,files=F[,numa=K]`
    /// with files 1..=63.
    #[arg(long, value_name = "harts=N,files=F[,numa=K]", num_args = 0..=1, default_missing_value = "")]
    pub simulate: Option<SimSpec>,

    /// Unix socket for the gRPC API [default: /run/ifad/ifad.sock for root,
    /// else $XDG_RUNTIME_DIR/ifad/ifad.sock or /tmp/ifad-<uid>/ifad.sock]
    #[arg(long, env = ifa_api::socket::SOCKET_ENV, value_name = "PATH")]
    pub socket: Option<PathBuf>,

    /// Address for Prometheus /metrics, or `off`.
    #[arg(long, value_name = "ADDR|off", default_value = "127.0.0.1:9464")]
    pub metrics_listen: MetricsListen,

    /// Seconds before policy may move a vCPU again to promote it
    /// (admission, drain and operator migrations are not limited).
    #[arg(long, value_name = "SECONDS", default_value_t = 30)]
    pub min_move_interval: u64,

    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
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
