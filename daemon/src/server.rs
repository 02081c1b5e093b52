//! Serves ifa.v1 and the standard gRPC health service on the Unix socket.

use std::future::Future;

use ifa_api::v1::allocator_server::AllocatorServer;
use tokio::net::UnixListener;
use tokio::sync::watch;
use tokio_stream::wrappers::UnixListenerStream;
use tonic::transport::Server;

use crate::api::AllocatorService;
use crate::clock::Clock;
use crate::engine::actor::EngineHandle;

/// Serves until `shutdown`. Health says NOT_SERVING until `ready` resolves (state restored and
/// first reconcile done); API calls made before wait behind the restore.
pub async fn serve_api(
    listener: UnixListener,
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
    Server::builder()
        .add_service(health_service)
        .add_service(AllocatorServer::new(AllocatorService::new(
            engine,
            clock,
            stop.clone(),
        )))
        .serve_with_incoming_shutdown(UnixListenerStream::new(listener), async move {
            let mut stop = stop;
            let _ = stop.wait_for(|s| *s).await;
        })
        .await
}
