//! The gRPC health service says NOT_SERVING until the daemon is ready
//! (state restored, first reconcile done), then SERVING.

use ifad::clock::Clock;
use ifad::engine::{Engine, EngineConfig, actor};
use ifad::host::sim::{SimHost, SimSpec};
use ifad::metrics::Metrics;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

async fn allocator_status(socket: &std::path::Path) -> i32 {
    let channel = ifa_api::client::connect_channel(socket).await.unwrap();
    HealthClient::new(channel)
        .check(HealthCheckRequest {
            service: "ifa.v1.Allocator".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .status
}

#[tokio::test]
async fn not_serving_until_ready() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("ifad.sock");
    let listener = ifad::socket::bind(&socket).unwrap();
    let spec = SimSpec {
        harts: 2,
        files: 2,
        numa: 1,
    };
    let engine = Engine::new(
        Box::new(SimHost::from_spec(&spec)),
        Metrics::new("test", "simulated"),
        EngineConfig::default(),
    );
    let (handle, _thread) = actor::spawn(engine).unwrap();
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel::<bool>();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let server = tokio::spawn(ifad::server::serve_api(
        ifad::server::Listeners {
            full: listener,
            read_only: None,
        },
        handle,
        Clock::start(),
        async move { ready_rx.await.unwrap_or(false) },
        stop_rx,
    ));
    assert_eq!(
        allocator_status(&socket).await,
        ServingStatus::NotServing as i32
    );
    ready_tx.send(true).unwrap();
    // The reporter flips it from its own task: poll until it does, with a
    // deadline generous enough for a loaded machine (not a speed claim).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    let mut status = allocator_status(&socket).await;
    while status != ServingStatus::Serving as i32 && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        status = allocator_status(&socket).await;
    }
    assert_eq!(status, ServingStatus::Serving as i32);
    stop_tx.send(true).unwrap();
    server.await.unwrap().unwrap();
}
