mod args;
mod model;
mod render;

use std::process::ExitCode;

use ifa_api::v1;
use serde::Serialize;
use tonic::Code;

use args::{Args, ClassArg, Command, Output, PlaceArgs};

/// Exit codes: 0 done, 1 refused or failed, 2 bad input (as clap does for
/// bad flags).
const EXIT_FAILED: u8 = 1;
const EXIT_USAGE: u8 = ifa_api::cli::EXIT_USAGE as u8;

fn exit_code(code: Code) -> u8 {
    match code {
        Code::InvalidArgument | Code::NotFound | Code::AlreadyExists | Code::OutOfRange => {
            EXIT_USAGE
        }
        _ => EXIT_FAILED,
    }
}

fn print<T: Serialize>(output: Output, value: &T, table: impl FnOnce(&T) -> String) {
    match output {
        Output::Json => match serde_json::to_string_pretty(value) {
            Ok(json) => println!("{json}"),
            Err(e) => eprintln!("ifactl: cannot encode JSON: {e}"),
        },
        Output::Table => print!("{}", table(value)),
    }
}

fn place_request(p: PlaceArgs) -> Result<v1::PlaceRequest, Failure> {
    let guest_imsic = p.guest_imsic.to_proto().map_err(Failure::Usage)?;
    Ok(v1::PlaceRequest {
        vm: p.vm,
        vcpus: p.vcpus,
        class: class_to_proto(p.class).into(),
        devices: p.devices,
        priority: p.priority,
        harts: p.harts.map(|h| h.0).unwrap_or_default(),
        guest_imsic,
        expected_irq_rate: p.irq_rate.map(|rate| v1::ExpectedIrqRate {
            rates: Some(v1::expected_irq_rate::Rates::EachVcpu(rate)),
        }),
    })
}

fn class_to_proto(c: ClassArg) -> v1::Class {
    match c {
        ClassArg::Guaranteed => v1::Class::Guaranteed,
        ClassArg::Burstable => v1::Class::Burstable,
        ClassArg::BestEffort => v1::Class::BestEffort,
    }
}

fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}

enum Failure {
    Rpc(tonic::Status),
    /// Bad input clap could not catch.
    Usage(String),
    Other(anyhow::Error),
}

impl From<tonic::Status> for Failure {
    fn from(s: tonic::Status) -> Self {
        Failure::Rpc(s)
    }
}

impl From<anyhow::Error> for Failure {
    fn from(e: anyhow::Error) -> Self {
        Failure::Other(e)
    }
}

async fn run(args: Args) -> Result<(), Failure> {
    let socket = args
        .socket
        .clone()
        .unwrap_or_else(ifa_api::socket::default_path);
    let mut client = ifa_api::client::connect(&socket).await.map_err(|e| {
        anyhow::anyhow!(
            "cannot reach ifad at {}: {}; is it running? (`ifad --simulate` starts one)",
            e.path.display(),
            root_cause(&e)
        )
    })?;
    let out = args.output;
    match args.command {
        Command::Status => {
            let s = client
                .get_status(v1::GetStatusRequest {})
                .await?
                .into_inner();
            print(out, &model::Status::from(s), render::status);
        }
        Command::Harts => {
            let harts = client
                .list_harts(v1::ListHartsRequest {})
                .await?
                .into_inner();
            let harts: Vec<model::Hart> = harts.harts.into_iter().map(Into::into).collect();
            print(out, &harts, |h| render::harts(h));
        }
        Command::Place(p) => {
            let reply = client.place(place_request(p)?).await?.into_inner();
            print(out, &model::Vm::from(reply), render::vm);
        }
        Command::Advise(p) => {
            let reply = client.advise(place_request(p)?).await?.into_inner();
            print(out, &model::Vm::from(reply), render::vm);
        }
        Command::Migrate { vm, vcpu, hart } => {
            let req = v1::MigrateRequest {
                vm: vm.clone(),
                vcpu,
                hart,
            };
            let r = client.migrate(req).await?.into_inner();
            let m = model::Migrated {
                vm,
                before: r.before.unwrap_or_default().into(),
                after: r.after.unwrap_or_default().into(),
            };
            print(out, &m, render::migrated);
        }
        Command::Drain { hart } => {
            let r = client.drain(v1::DrainRequest { hart }).await?.into_inner();
            let d = model::Drained {
                hart,
                moved: r.moved.into_iter().map(Into::into).collect(),
            };
            print(out, &d, render::drained);
        }
        Command::Attach { vm, pid } => {
            let vm = client
                .attach(v1::AttachRequest { vm, pid })
                .await?
                .into_inner();
            print(out, &model::Vm::from(vm), render::vm);
        }
        Command::Undrain { hart } => {
            client.undrain(v1::UndrainRequest { hart }).await?;
            print(
                out,
                &serde_json::json!({ "hart": hart, "drained": false }),
                |_| format!("hart {hart} undrained\n"),
            );
        }
        Command::Vms => {
            let vms = client.list_vms(v1::ListVmsRequest {}).await?.into_inner();
            let vms: Vec<model::Vm> = vms.vms.into_iter().map(Into::into).collect();
            print(out, &vms, |v| render::vms(v));
        }
        Command::Vm { vm } => {
            let vm = client.get_vm(v1::GetVmRequest { vm }).await?.into_inner();
            print(out, &model::Vm::from(vm), render::vm);
        }
        Command::Watch { after, count } => {
            let mut stream = client.watch(v1::WatchRequest { after }).await?.into_inner();
            if out == Output::Table {
                println!("{}", render::EVENT_HEADER);
            }
            let mut seen = 0u64;
            while let Some(e) = stream.message().await? {
                let e = model::Event::from(e);
                match out {
                    // One JSON document per line, for `jq` and log shippers.
                    Output::Json => match serde_json::to_string(&e) {
                        Ok(json) => println!("{json}"),
                        Err(err) => eprintln!("ifactl: cannot encode JSON: {err}"),
                    },
                    Output::Table => print!("{}", render::event(&e)),
                }
                seen += 1;
                if count.is_some_and(|n| seen >= n) {
                    break;
                }
            }
        }
        Command::Completions { .. } | Command::Man => unreachable!("answered without ifad"),
        Command::Release { vm } => {
            let r = client
                .release(v1::ReleaseRequest { vm: vm.clone() })
                .await?
                .into_inner();
            let released = model::Released {
                vm,
                vsfiles_freed: r.vsfiles_freed,
            };
            print(out, &released, |r| {
                format!(
                    "released vm {} ({} VS-files freed)\n",
                    r.vm, r.vsfiles_freed
                )
            });
        }
    }
    Ok(())
}

/// Completions and the man page need no daemon.
fn offline(command: &Command) -> Option<std::io::Result<()>> {
    use clap::CommandFactory;
    let mut cmd = Args::command();
    match command {
        Command::Completions { shell } => {
            clap_complete::generate(*shell, &mut cmd, "ifactl", &mut std::io::stdout());
            Some(Ok(()))
        }
        Command::Man => Some(clap_mangen::Man::new(cmd).render(&mut std::io::stdout())),
        _ => None,
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args: Args = ifa_api::cli::parse_or_exit("ifactl");
    // Layout flags clap cannot cross-check are refused before connecting,
    // like any other bad flag.
    if let Command::Place(p) | Command::Advise(p) = &args.command {
        if let Err(e) = p.guest_imsic.to_proto() {
            eprintln!("ifactl: {e}");
            return ExitCode::from(EXIT_USAGE);
        }
    }
    if let Some(done) = offline(&args.command) {
        return match done {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("ifactl: {e}");
                ExitCode::from(EXIT_FAILED)
            }
        };
    }
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Rpc(status)) => {
            let refused = match ifa_api::errors::Reason::of(&status) {
                Some(reason) if reason.is_refusal() => "refused: ",
                _ => "",
            };
            eprintln!("ifactl: {refused}{}", status.message().replace('\n', " "));
            ExitCode::from(exit_code(status.code()))
        }
        Err(Failure::Usage(e)) => {
            eprintln!("ifactl: {e}");
            ExitCode::from(EXIT_USAGE)
        }
        Err(Failure::Other(e)) => {
            eprintln!("ifactl: {e:#}");
            ExitCode::from(EXIT_FAILED)
        }
    }
}
