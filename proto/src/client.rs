//! A gRPC client over the daemon's Unix socket.

use std::path::{Path, PathBuf};

use hyper_util::rt::TokioIo;
use tokio::net::UnixStream;
use tonic::transport::{Channel, Endpoint};

use crate::v1::allocator_client::AllocatorClient;

#[derive(Debug, thiserror::Error)]
#[error("cannot reach ifad at {path}: {source}")]
pub struct ConnectError {
    pub path: PathBuf,
    #[source]
    pub source: tonic::transport::Error,
}

/// Dials the daemon's Unix socket. The URI is required by tonic but unused:
/// every connection goes to `path`.
pub async fn connect_channel(path: &Path) -> Result<Channel, ConnectError> {
    let socket = path.to_path_buf();
    Endpoint::from_static("http://ifad.local")
        .connect_with_connector(tower::service_fn(move |_| {
            let socket = socket.clone();
            async move { UnixStream::connect(socket).await.map(TokioIo::new) }
        }))
        .await
        .map_err(|source| ConnectError {
            path: path.to_path_buf(),
            source,
        })
}

/// An `Allocator` client on the daemon's Unix socket.
pub async fn connect(path: &Path) -> Result<AllocatorClient<Channel>, ConnectError> {
    connect_channel(path).await.map(AllocatorClient::new)
}
