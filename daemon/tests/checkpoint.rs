//! A change that cannot be made durable is answered INTERNAL (NOT_DURABLE)
//! and counted in `ifad_checkpoint_errors_total`; it was applied in memory,
//! so reads still answer and show it (README, "State"). Faults are injected
//! under the state log: a full disk, a failed `fdatasync`, a torn record.

use ifa_api::errors::Reason;
use ifa_api::v1;
use ifad::clock::Clock;
use ifad::engine::{Engine, EngineConfig, actor};
use ifad::host::sim::{SimHost, SimSpec};
use ifad::metrics::Metrics;
use std::path::Path;

use ifa_api::v1::allocator_client::AllocatorClient;
use ifad::state::{DiskFaults, Loaded, StateDir};
use nix::errno::Errno;
use tonic::Code;
use tonic::transport::Channel;
use tonic_types::StatusExt;

/// `ifad_checkpoint_errors_total` as /metrics shows it.
fn checkpoint_errors(metrics: &Metrics) -> u64 {
    ifa_e2e::sample(&metrics.render(), "ifad_checkpoint_errors_total") as u64
}

fn place(vm: &str) -> v1::PlaceRequest {
    v1::PlaceRequest {
        vm: vm.into(),
        vcpus: 1,
        class: v1::Class::Burstable.into(),
        ..Default::default()
    }
}

struct Served {
    client: AllocatorClient<Channel>,
    stop: tokio::sync::watch::Sender<bool>,
    server: tokio::task::JoinHandle<Result<(), tonic::transport::Error>>,
    engine: std::thread::JoinHandle<()>,
}

impl Served {
    /// Stops the API, then waits for the engine thread to let go of the
    /// state dir (it ends with the last handle).
    async fn stop(self) {
        self.stop.send(true).unwrap();
        self.server.await.unwrap().unwrap();
        drop(self.client);
        let engine = self.engine;
        tokio::task::spawn_blocking(move || engine.join().unwrap())
            .await
            .unwrap();
    }
}

/// A daemon's engine and API on `dir`, its state dir's disk showing `faults`.
async fn serve(dir: &Path, metrics: &Metrics, faults: &DiskFaults) -> Served {
    let socket = dir.join("ifad.sock");
    let state = dir.join("state");
    let listener = ifad::socket::bind(&socket).unwrap();
    let spec = SimSpec {
        harts: 2,
        files: 2,
        numa: 1,
    };
    let mut engine = Engine::new(
        Box::new(SimHost::from_spec(&spec)),
        metrics.clone(),
        EngineConfig::default(),
    );
    let store = StateDir::open(&state).unwrap().with_faults(faults.clone());
    engine.persist_to(store, 0).unwrap();
    let (handle, engine) = actor::spawn(engine).unwrap();
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let server = tokio::spawn(ifad::server::serve_api(
        ifad::server::Listeners {
            full: listener,
            read_only: None,
        },
        handle,
        Clock::start(),
        async { true },
        stop_rx,
    ));
    let client = ifa_api::client::connect(&socket).await.unwrap();
    Served {
        client,
        stop,
        server,
        engine,
    }
}

fn assert_not_durable(err: &tonic::Status) {
    assert_eq!(err.code(), Code::Internal, "{err:?}");
    assert_eq!(Reason::of(err), Some(Reason::NotDurable), "{err:?}");
    assert_eq!(err.get_details_error_info().unwrap().domain, "ifa.v1");
    assert!(
        err.message().contains("check before retrying"),
        "{}",
        err.message()
    );
}

/// The VMs a state dir holds, read back as a restarted daemon would.
fn vms_on_disk(state: &Path) -> Vec<String> {
    let mut store = StateDir::open(state).unwrap();
    match store.load().unwrap() {
        Loaded::Restored(saved) => saved
            .snapshot
            .ledger
            .vms
            .iter()
            .map(|vm| vm.id.to_string())
            .collect(),
        other => panic!("{other:?}"),
    }
}

async fn check_fault(inject: impl Fn(&DiskFaults)) {
    let dir = tempfile::tempdir().unwrap();
    let metrics = Metrics::new("test", "simulated");
    let faults = DiskFaults::default();
    let mut s = serve(dir.path(), &metrics, &faults).await;
    let c = &mut s.client;
    c.place(place("a")).await.expect("durable");
    assert_eq!(checkpoint_errors(&metrics), 0);

    inject(&faults);
    assert_not_durable(&c.place(place("b")).await.unwrap_err());
    assert_eq!(checkpoint_errors(&metrics), 1, "counted exactly once");
    // Reads still answer, and show the change applied in memory.
    let vm = c
        .get_vm(v1::GetVmRequest { vm: "b".into() })
        .await
        .expect("reads answer after a failed checkpoint")
        .into_inner();
    assert_eq!(vm.vm, "b");
    c.get_status(v1::GetStatusRequest::default())
        .await
        .expect("status answers after a failed checkpoint");

    // The disk works again: the next change is durable, and with it the
    // one that was not (a whole snapshot follows a failed append).
    faults.clear();
    c.place(place("c")).await.expect("durable again");
    assert_eq!(checkpoint_errors(&metrics), 1);
    s.stop().await;
    assert_eq!(vms_on_disk(&dir.path().join("state")), ["a", "b", "c"]);
}

#[tokio::test]
async fn a_full_disk_answers_internal_until_space_is_back() {
    check_fault(|f| f.fail_writes(Errno::ENOSPC as i32)).await;
}

#[tokio::test]
async fn a_failed_fdatasync_answers_internal_until_the_disk_recovers() {
    check_fault(|f| f.fail_syncs(Errno::EIO as i32)).await;
}

#[tokio::test]
async fn a_torn_record_answers_internal_and_the_next_change_is_durable() {
    check_fault(DiskFaults::tear_next_append).await;
}

#[tokio::test]
async fn a_crash_after_a_torn_record_restores_everything_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let metrics = Metrics::new("test", "simulated");
    let faults = DiskFaults::default();
    let mut s = serve(dir.path(), &metrics, &faults).await;
    s.client.place(place("a")).await.expect("durable");
    faults.tear_next_append();
    assert_not_durable(&s.client.place(place("b")).await.unwrap_err());
    // The daemon dies here: the torn record is the log's last bytes.
    s.stop().await;
    let state = dir.path().join("state");
    let mut store = StateDir::open(&state).unwrap();
    let Loaded::Restored(saved) = store.load().unwrap() else {
        panic!("restored")
    };
    let vms: Vec<String> = saved
        .snapshot
        .ledger
        .vms
        .iter()
        .map(|v| v.id.to_string())
        .collect();
    assert_eq!(vms, ["a"], "b was never acknowledged");
    let tail = store
        .cut_tail()
        .expect("the torn record is cut off and reported");
    assert!(tail.cut > 0);
}
