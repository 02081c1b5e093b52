//! Serves ifa.v1, the standard gRPC health service and server reflection
//! (v1 and v1alpha, so generic tools need no `.proto`) on the Unix sockets.

use std::future::Future;

use ifa_api::v1::allocator_server::AllocatorServer;
use tokio::net::UnixListener;
use tokio::sync::watch;
use tokio_stream::wrappers::UnixListenerStream;
use tonic::transport::Server;
use tonic_reflection::server::v1::{ServerReflection, ServerReflectionServer};
use tonic_reflection::server::v1alpha;

use crate::api::AllocatorService;
use crate::clock::Clock;
use crate::engine::actor::EngineHandle;

/// The listeners the API is served on.
pub struct Listeners {
    pub full: UnixListener,
    /// Reads and watch only, for anyone (libvirt's `-ro` socket).
    pub read_only: Option<UnixListener>,
}

/// Serves until `stop` turns true. Health says NOT_SERVING until `ready`
/// resolves (state restored and first reconcile done); API calls made
/// before wait behind the restore.
pub async fn serve_api(
    listeners: Listeners,
    engine: EngineHandle,
    clock: Clock,
    ready: impl Future<Output = bool> + Send + 'static,
    stop: watch::Receiver<bool>,
) -> Result<(), tonic::transport::Error> {
    let (health, health_service) = tonic_health::server::health_reporter();
    health
        .set_not_serving::<AllocatorServer<AllocatorService>>()
        .await;
    tokio::spawn(async move {
        if ready.await {
            health
                .set_serving::<AllocatorServer<AllocatorService>>()
                .await;
        }
    });
    let until_stopped = |stop: watch::Receiver<bool>| async move {
        let mut stop = stop;
        // An error means the sender is gone, which stops the servers too.
        if stop.wait_for(|s| *s).await.is_err() { /* stopping all the same */ }
    };
    let service = AllocatorService::new(engine, clock, stop.clone());
    let read_only = listeners.read_only.map(|l| {
        Server::builder()
            .add_service(health_service.clone())
            .add_service(reflection_v1())
            .add_service(reflection_v1alpha())
            .add_service(AllocatorServer::new(service.clone().read_only()))
            .serve_with_incoming_shutdown(UnixListenerStream::new(l), until_stopped(stop.clone()))
    });
    let full = Server::builder()
        .add_service(health_service)
        .add_service(reflection_v1())
        .add_service(reflection_v1alpha())
        .add_service(AllocatorServer::new(service))
        .serve_with_incoming_shutdown(UnixListenerStream::new(listeners.full), until_stopped(stop));
    match read_only {
        Some(ro) => tokio::try_join!(full, ro).map(|_| ()),
        None => full.await,
    }
}

/// Reflection answers from descriptors compiled into the binary: ifa.v1,
/// health and reflection itself.
fn reflection() -> tonic_reflection::server::Builder<'static> {
    tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(ifa_api::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
}

fn reflection_v1() -> ServerReflectionServer<impl ServerReflection> {
    reflection()
        .build_v1()
        .expect("the compiled-in descriptors are valid")
}

fn reflection_v1alpha() -> v1alpha::ServerReflectionServer<impl v1alpha::ServerReflection> {
    reflection()
        .build_v1alpha()
        .expect("the compiled-in descriptors are valid")
}
