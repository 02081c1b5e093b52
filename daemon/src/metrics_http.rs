//! The HTTP listener: Prometheus `/metrics`, and `/live` and `/ready` for
//! probes (Kubernetes, load balancers, humans with curl).

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::routing::get;
use tokio::net::TcpListener;

use crate::liveness::Liveness;
use crate::metrics::Metrics;

#[derive(Clone)]
struct Shared {
    metrics: Metrics,
    liveness: Arc<Liveness>,
}

async fn scrape(State(s): State<Shared>) -> impl IntoResponse {
    (
        [(CONTENT_TYPE, prometheus::TEXT_FORMAT)],
        s.metrics.render(),
    )
}

async fn live(State(s): State<Shared>) -> impl IntoResponse {
    if s.liveness.is_live() {
        (StatusCode::OK, "live\n")
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "the control loop has stalled\n",
        )
    }
}

async fn ready(State(s): State<Shared>) -> impl IntoResponse {
    if s.liveness.is_ready() {
        (StatusCode::OK, "ready\n")
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "restoring state and reconciling with the host\n",
        )
    }
}

pub async fn serve(
    listener: TcpListener,
    metrics: Metrics,
    liveness: Arc<Liveness>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = Router::new()
        .route("/metrics", get(scrape))
        .route("/live", get(live))
        .route("/ready", get(ready))
        .with_state(Shared { metrics, liveness });
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}
