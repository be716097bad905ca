//! `/metrics`, `/healthz` and `/readyz`.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::Broker;
use crate::metrics::Metrics;

/// Set once the broker has recovered; until then /readyz answers 503.
#[derive(Clone, Default)]
pub struct HttpState {
    broker: Arc<OnceLock<Arc<Broker>>>,
}

impl HttpState {
    pub fn set_broker(&self, broker: Arc<Broker>) {
        let _ = self.broker.set(broker);
    }
}

pub async fn serve(
    addr: SocketAddr,
    metrics: Arc<Metrics>,
    state: HttpState,
    mut stop: watch::Receiver<bool>,
) -> std::io::Result<JoinHandle<()>> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let app = Router::new()
        .route(
            "/metrics",
            get(
                |State((m, _)): State<(Arc<Metrics>, HttpState)>| async move {
                    (
                        [(
                            header::CONTENT_TYPE,
                            "application/openmetrics-text; version=1.0.0; charset=utf-8",
                        )],
                        m.encode(),
                    )
                },
            ),
        )
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/readyz",
            get(
                |State((_, s)): State<(Arc<Metrics>, HttpState)>| async move {
                    match s.broker.get() {
                        Some(b) if b.is_ready() => (StatusCode::OK, "ready").into_response(),
                        _ => (StatusCode::SERVICE_UNAVAILABLE, "recovering").into_response(),
                    }
                },
            ),
        )
        .with_state((metrics, state));
    Ok(tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = stop.changed().await;
            })
            .await;
    }))
}
