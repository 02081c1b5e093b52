mod args;
mod config;

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};
use ifad::clock::Clock;
use ifad::engine::actor::EngineHandle;
use ifad::engine::{Engine, actor};
use ifad::host::Host;
use ifad::host::detect::not_a_riscv_kvm_host;
use ifad::host::linux::discover::discover;
use ifad::host::linux::threads::DEFAULT_PATTERNS;
use ifad::host::linux::{DriftPolicy, LinuxConfig, LinuxHost};
use ifad::host::sim::SimHost;
use ifad::liveness::Liveness;
use ifad::metrics::Metrics;
use ifad::state::{Loaded, StateDir};
use tokio::sync::watch;
use tracing::{error, info, warn};

use args::{Args, DriftArg, LogFormat, MetricsListen, SimMachine};

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// The simulated machine's own file in the state dir: it changes with the
/// machine, apart from ifad's state, as a real host's kernel does.
const SIM_MACHINE: &str = "simulated-machine";

fn pick_host(args: &Args, state_dir: &Path) -> anyhow::Result<Box<dyn Host>> {
    if let Some(spec) = &args.simulate {
        let host = match args.sim_machine {
            SimMachine::File => {
                SimHost::from_spec(spec).with_machine_file(&state_dir.join(SIM_MACHINE))?
            }
            SimMachine::Memory => SimHost::from_spec(spec).in_memory_only(),
        };
        return Ok(Box::new(host));
    }
    let root = match &args.host_root {
        Some(root) => root.clone(),
        None => {
            // Never silently pretend: the live host must be a RISC-V KVM host.
            if let Some(why) = not_a_riscv_kvm_host(Path::new("/"), std::env::consts::ARCH) {
                bail!("{why}; pass --simulate to run on a simulated RISC-V KVM host");
            }
            PathBuf::from("/")
        }
    };
    let found = discover(&root, args.max_vsfiles)
        .with_context(|| format!("discovering the RISC-V KVM host under {}", root.display()))?;
    for w in &found.warnings {
        warn!("{w}");
    }
    info!(
        "discovered {} harts from the {} under {}",
        found.topology.len(),
        found.source.as_str(),
        root.display()
    );
    let patterns = if args.vcpu_thread_patterns.is_empty() {
        DEFAULT_PATTERNS.iter().map(|p| p.to_string()).collect()
    } else {
        args.vcpu_thread_patterns.clone()
    };
    let config = LinuxConfig {
        root,
        proc_root: args.proc_root.clone(),
        max_files: args.max_vsfiles,
        patterns,
        kprobes: !args.no_kprobes,
        kick: args.kick_signal,
        drift_policy: match args.drift {
            DriftArg::Reapply => DriftPolicy::Reapply,
            DriftArg::Leave => DriftPolicy::Leave,
        },
    };
    Ok(Box::new(LinuxHost::new(config, found)))
}

/// Resolves on SIGTERM or SIGINT. The handlers are installed at the call,
/// before the daemon says it is ready, so an early signal is never lost.
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("SIGINT handler")?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    })
}

/// How often the engine looks at the host on its own: hotplug, lazy
/// releases completing, pending VMs becoming ready, promotions.
const TICK: std::time::Duration = std::time::Duration::from_millis(500);

/// The control loop. Each completed tick is what keeps the daemon live
/// (`/live`) and feeds systemd's watchdog: a stuck engine stops both.
async fn tick(
    engine: EngineHandle,
    clock: Clock,
    liveness: Arc<Liveness>,
    stop: impl std::future::Future<Output = ()>,
) {
    let watchdog = ifad::notify::watchdog_enabled();
    let mut interval = tokio::time::interval(TICK);
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = &mut stop => return,
            _ = interval.tick() => {
                let now = clock.now();
                if engine.call(move |e| e.tick(now)).await.is_err() {
                    return;
                }
                liveness.ticked();
                if watchdog {
                    ifad::notify::watchdog();
                }
            }
        }
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let loaded = match config::parse(std::env::args_os().collect()) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("ifad: {e}");
            std::process::exit(ifa_api::cli::EXIT_USAGE);
        }
    };
    let args = loaded.args;
    if args.check_config {
        match &loaded.file {
            Some(f) => println!("ifad: configuration OK ({} and flags)", f.display()),
            None => println!("ifad: configuration OK (flags only; no config file)"),
        }
        return Ok(());
    }
    init_logging(args.log_format);
    if let Err(e) = run(args).await {
        error!("{e:#}");
        std::process::exit(1);
    }
    Ok(())
}

async fn run(args: Args) -> anyhow::Result<()> {
    let shutdown = shutdown_signal()?;
    // The lock first: a second daemon on the same state dir stops here.
    let state_dir = args
        .state_dir
        .clone()
        .unwrap_or_else(|| ifad::state::default_dir(args.simulate.is_some()));
    let mut store = StateDir::open(&state_dir)?.with_min_log_bytes(args.state_log_bytes);
    let loaded = store.load()?;
    match &loaded {
        Loaded::Empty => info!("no saved state in {}: starting afresh", state_dir.display()),
        Loaded::Restored(_) => info!(
            "restoring state from {} and {} log records",
            store.path().display(),
            store.replayed()
        ),
        Loaded::Corrupt { reason, moved_to } => error!(
            "STATE FILE UNREADABLE ({reason}); moved it to {} and rebuilding from what the host shows",
            moved_to.display()
        ),
    }
    if let Some(tail) = store.cut_tail() {
        warn!(
            "STATE LOG CUT at byte {} ({}; {} bytes dropped): the changes before it are restored; \
             a torn last record was never acknowledged",
            tail.offset, tail.reason, tail.cut
        );
    }
    let host = pick_host(&args, &state_dir)?;
    if let Loaded::Restored(saved) = &loaded {
        let wrote = &saved.snapshot.host_kind;
        if !wrote.is_empty() && wrote != host.kind() {
            bail!(
                "{} holds the state of the {wrote} host, and this is the {} host: \
                 give it its own --state-dir (nothing was changed)",
                store.path().display(),
                host.kind()
            );
        }
    }
    let topo = host.topology();
    let nodes = {
        let mut n: Vec<u32> = topo.harts().iter().map(|h| h.numa_node).collect();
        n.dedup();
        n.len()
    };
    info!(
        "ifad {} on the {} host: {} harts, {} VS-files, {} NUMA node(s)",
        env!("CARGO_PKG_VERSION"),
        host.kind(),
        topo.len(),
        topo.vsfiles_online(),
        nodes
    );
    let metrics = Metrics::new(env!("CARGO_PKG_VERSION"), host.kind());
    let config = args.engine_config();
    let (engine, engine_thread) =
        actor::spawn(Engine::new(host, metrics.clone(), config)).context("starting the engine")?;
    let clock = match &loaded {
        Loaded::Restored(saved) => Clock::resume_at(saved.at),
        _ => Clock::start(),
    };
    // Queued before the API starts, so no call runs on a half-restored state.
    let restored = engine
        .call_first(move |e| {
            let now = clock.now();
            let report = match loaded {
                Loaded::Restored(saved) => Some(e.restore(saved, now)),
                _ => {
                    e.start_afresh(now);
                    None
                }
            };
            // The first reconcile with the host (VMMs gone, drift, hotplug)
            // happens before the daemon calls itself ready.
            e.tick(now);
            e.persist_to(store, now).map(|()| report)
        })
        .context("starting the engine")?;
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel::<bool>();
    let liveness = Arc::new(Liveness::new(clock));

    let socket: PathBuf = args.socket.unwrap_or_else(ifa_api::socket::default_path);
    let listener = ifad::socket::bind(&socket)?;
    let read_only = match &args.socket_ro {
        Some(path) => Some(ifad::socket::bind_for(
            path,
            ifad::socket::Access::ReadOnly,
        )?),
        None => None,
    };
    let (stop_tx, stop_rx) = watch::channel(false);
    let api_stop = stop_rx.clone();
    let stopped = move || {
        let mut rx = stop_rx.clone();
        async move {
            // An error means the sender is gone: stop all the same.
            if rx.wait_for(|s| *s).await.is_err() { /* stopping */ }
        }
    };

    let metrics_task = match args.metrics_listen {
        MetricsListen::Off => None,
        MetricsListen::On(addr) => {
            let tcp = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("--metrics-listen {addr}"))?;
            info!("serving metrics on http://{}/metrics", tcp.local_addr()?);
            Some(tokio::spawn(ifad::metrics_http::serve(
                tcp,
                metrics,
                liveness.clone(),
                Some(engine.downgrade()),
                stopped(),
            )))
        }
    };

    let remove_sockets = || {
        for path in std::iter::once(&socket).chain(&args.socket_ro) {
            match std::fs::remove_file(path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => warn!("removing socket {}: {e}", path.display()),
            }
        }
    };
    info!("serving ifa.v1 on unix:{}", socket.display());
    if let Some(path) = &args.socket_ro {
        info!(
            "serving ifa.v1 reads on unix:{} (read-only)",
            path.display()
        );
    }
    let api = tokio::spawn(ifad::server::serve_api(
        ifad::server::Listeners {
            full: listener,
            read_only,
        },
        engine.clone(),
        clock,
        async move { ready_rx.await.unwrap_or(false) },
        api_stop,
    ));
    match restored
        .await
        .context("the engine stopped while restoring")?
    {
        Ok(Some(r)) => info!(
            vms = r.vms,
            released = r.released,
            placed_again = r.replaced,
            lost = r.lost,
            "state restored and reconciled with the host"
        ),
        Ok(None) => {}
        Err(e) => {
            remove_sockets();
            return Err(e).context("making the restored state durable");
        }
    }
    // The API and the ticker hold the last engine handles: the engine
    // thread ends once both have stopped.
    let ticker = tokio::spawn(tick(engine, clock, liveness.clone(), stopped()));
    if ready_tx.send(true).is_err() {
        // The API server already ended; awaiting it below reports why.
    }
    liveness.set_ready();
    ifad::notify::ready();
    info!("ready");

    shutdown.await;
    info!("shutting down");
    ifad::notify::stopping();
    if stop_tx.send(true).is_err() {
        // Every receiver is gone: nothing is left running to stop.
    }
    api.await?.context("gRPC server")?;
    ticker.await?;
    if let Some(t) = metrics_task {
        t.await?.context("metrics server")?;
    }
    remove_sockets();
    if engine_thread.join().is_err() {
        bail!("the engine thread panicked");
    }
    Ok(())
}
