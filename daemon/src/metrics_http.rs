//! The HTTP listener: Prometheus `/metrics`, and `/live` and `/ready` for
//! probes (Kubernetes, load balancers, humans with curl).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::routing::get;
use tokio::net::TcpListener;

use crate::engine::actor::WeakEngineHandle;
use crate::liveness::Liveness;
use crate::metrics::Metrics;

#[derive(Clone)]
struct Shared {
    metrics: Metrics,
    liveness: Arc<Liveness>,
    engine: Option<WeakEngineHandle>,
}

/// How long a scrape waits for the engine to bring the gauges up to date
/// before it answers with those of the last tick (a stalled engine must
/// not silence /metrics).
const REFRESH_WAIT: Duration = Duration::from_secs(1);

async fn scrape(State(s): State<Shared>) -> impl IntoResponse {
    if let Some(engine) = s.engine.as_ref().and_then(WeakEngineHandle::upgrade) {
        let refreshed = tokio::time::timeout(REFRESH_WAIT, engine.call(|e| e.refresh_metrics()));
        match refreshed.await {
            Ok(Ok(())) => {}
            Ok(Err(gone)) => tracing::debug!("scrape: {gone}; the last tick's gauges"),
            Err(_) => tracing::debug!("scrape: the engine is busy; the last tick's gauges"),
        }
    }
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

/// Serves until `shutdown`; `engine`, if given, brings the gauges up to
/// date at each scrape (they are otherwise refreshed at each tick, not at
/// each change).
pub async fn serve(
    listener: TcpListener,
    metrics: Metrics,
    liveness: Arc<Liveness>,
    engine: Option<WeakEngineHandle>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = Router::new()
        .route("/metrics", get(scrape))
        .route("/live", get(live))
        .route("/ready", get(ready))
        .with_state(Shared {
            metrics,
            liveness,
            engine,
        });
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}
