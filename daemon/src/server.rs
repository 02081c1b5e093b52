//! Serves ifa.v1 and the standard gRPC health service on the Unix socket.

use std::future::Future;

use ifa_api::v1::allocator_server::AllocatorServer;
use tokio::net::UnixListener;
use tokio_stream::wrappers::UnixListenerStream;
use tonic::transport::Server;

use crate::api::AllocatorService;
use crate::clock::Clock;
use crate::engine::actor::EngineHandle;

pub async fn serve_api(
    listener: UnixListener,
    engine: EngineHandle,
    clock: Clock,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), tonic::transport::Error> {
    let (health, health_service) = tonic_health::server::health_reporter();
    // State is in memory and restored at once, so the service is ready as
    // soon as it listens.
    health
        .set_serving::<AllocatorServer<AllocatorService>>()
        .await;
    Server::builder()
        .add_service(health_service)
        .add_service(AllocatorServer::new(AllocatorService::new(engine, clock)))
        .serve_with_incoming_shutdown(UnixListenerStream::new(listener), shutdown)
        .await
}
