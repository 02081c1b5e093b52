//! A change that cannot be made durable is answered INTERNAL (NOT_DURABLE)
//! and counted in `ifad_checkpoint_errors_total`; it was applied in memory,
//! so reads still answer and show it (README, "State").

use ifa_api::errors::Reason;
use ifa_api::v1;
use ifad::clock::Clock;
use ifad::engine::{Engine, EngineConfig, actor};
use ifad::host::sim::{SimHost, SimSpec};
use ifad::metrics::Metrics;
use ifad::state::StateDir;
use tonic::Code;
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

#[tokio::test]
async fn a_failed_checkpoint_answers_internal_and_is_counted() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("ifad.sock");
    let state = dir.path().join("state");
    let listener = ifad::socket::bind(&socket).unwrap();
    let spec = SimSpec {
        harts: 2,
        files: 2,
        numa: 1,
    };
    let metrics = Metrics::new("test", "simulated");
    let mut engine = Engine::new(
        Box::new(SimHost::from_spec(&spec)),
        metrics.clone(),
        EngineConfig::default(),
    );
    engine
        .persist_to(StateDir::open(&state).unwrap(), 0)
        .unwrap();
    assert_eq!(checkpoint_errors(&metrics), 0);
    // The next write cannot create its temporary file: a directory stands
    // where it goes (EISDIR, even for root, where a read-only mode would not).
    std::fs::create_dir(state.join("state.tmp")).unwrap();

    let (handle, _thread) = actor::spawn(engine).unwrap();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
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
    let mut c = ifa_api::client::connect(&socket).await.unwrap();

    let err = c.place(place("a")).await.unwrap_err();
    assert_eq!(err.code(), Code::Internal, "{err:?}");
    assert_eq!(Reason::of(&err), Some(Reason::NotDurable), "{err:?}");
    assert_eq!(err.get_details_error_info().unwrap().domain, "ifa.v1");
    assert!(
        err.message().contains("check before retrying"),
        "{}",
        err.message()
    );
    assert_eq!(checkpoint_errors(&metrics), 1, "counted exactly once");

    // Reads still answer, and show the change applied in memory.
    let vm = c
        .get_vm(v1::GetVmRequest { vm: "a".into() })
        .await
        .expect("reads answer after a failed checkpoint")
        .into_inner();
    assert_eq!(vm.vm, "a");
    c.get_status(v1::GetStatusRequest::default())
        .await
        .expect("status answers after a failed checkpoint");

    // Writable again: the next change is durable, and not counted.
    std::fs::remove_dir(state.join("state.tmp")).unwrap();
    c.place(place("b")).await.expect("durable again");
    assert_eq!(checkpoint_errors(&metrics), 1);

    stop_tx.send(true).unwrap();
    server.await.unwrap().unwrap();
}
