//! ifad-eval: replays a workload once per policy and prints their figures
//! side by side. Bad input (flags, a trace line) exits 2 with one line.

use std::fs::File;
use std::io::BufReader;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, ValueEnum};

use ifad_eval::figures::{Figures, Series};
use ifad_eval::optimal::Ranking;
use ifad_eval::policy::fcfs::{FcfsPolicy, Pinning};
use ifad_eval::policy::ifad::IfadPolicy;
use ifad_eval::policy::optimal::OptimalPolicy;
use ifad_eval::replay::{self, Policy};
use ifad_eval::trace::Trace;
use ifad_eval::workload::Workload;
use ifad_eval::{plot, report};

const EXIT_USAGE: u8 = 2;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum PolicyName {
    Ifad,
    Fcfs,
    FcfsPinned,
    Optimal,
    OptimalPriority,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Output {
    Table,
    Json,
}

/// Replays a workload on the simulated KVM host once per policy (ifad,
/// KVM's first come first served, FCFS with round-robin pinning, and an
/// optimal bound) and compares what each achieves.
#[derive(Debug, Parser)]
#[command(name = "ifad-eval", version)]
struct Args {
    /// A trace (JSON Lines; format in the README).
    #[arg(long, conflicts_with = "workload")]
    trace: Option<PathBuf>,
    /// A built-in workload.
    #[arg(long, value_parser = parse_workload, required_unless_present = "trace")]
    workload: Option<Workload>,
    /// Seed of the built-in workload and of the scheduler model.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Policies to replay, comma-separated.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "ifad,fcfs,fcfs-pinned,optimal,optimal-priority"
    )]
    policies: Vec<PolicyName>,
    #[arg(short = 'o', long, value_enum, default_value = "table")]
    output: Output,
    /// Also write pictures (SVG) into this directory.
    #[arg(long, value_name = "DIR")]
    plot: Option<PathBuf>,
}

fn parse_workload(s: &str) -> Result<Workload, String> {
    s.parse().map_err(|e| format!("{e}"))
}

fn policy(name: PolicyName, trace: &Trace, seed: u64) -> Box<dyn Policy> {
    match name {
        PolicyName::Ifad => Box::new(IfadPolicy::new(&trace.host)),
        PolicyName::Fcfs => Box::new(FcfsPolicy::new(&trace.host, Pinning::Scheduler, seed)),
        PolicyName::FcfsPinned => Box::new(FcfsPolicy::new(&trace.host, Pinning::RoundRobin, seed)),
        PolicyName::Optimal => Box::new(OptimalPolicy::new(&trace.host, Ranking::ByRate)),
        PolicyName::OptimalPriority => {
            Box::new(OptimalPolicy::new(&trace.host, Ranking::PriorityFirst))
        }
    }
}

fn load(args: &Args) -> Result<Trace, String> {
    match (&args.trace, args.workload) {
        (Some(path), _) => {
            let file = File::open(path).map_err(|e| format!("--trace {}: {e}", path.display()))?;
            Trace::parse(BufReader::new(file)).map_err(|e| format!("{}: {e}", path.display()))
        }
        (None, Some(w)) => Ok(w.generate(args.seed)),
        (None, None) => Err("give --trace FILE or --workload NAME".into()),
    }
}

fn main() -> ExitCode {
    let args: Args = ifa_api::cli::parse_or_exit("ifad-eval");
    let trace = match load(&args) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("ifad-eval: {e}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let runs: Vec<(Figures, Series)> = args
        .policies
        .iter()
        .map(|&name| replay::run(&trace, policy(name, &trace, args.seed).as_mut()))
        .collect();
    let figures: Vec<Figures> = runs.iter().map(|(f, _)| f.clone()).collect();
    match args.output {
        Output::Table => print!("{}", report::table(&figures)),
        Output::Json => println!("{}", report::json(&figures)),
    }
    if let Some(dir) = &args.plot {
        match plot::write(dir, &runs) {
            Ok(files) => files
                .iter()
                .for_each(|f| eprintln!("wrote {}", f.display())),
            Err(e) => {
                eprintln!("ifad-eval: --plot {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    ExitCode::SUCCESS
}
