//! `/metrics`, `/healthz`, `/readyz`, the fleet admin endpoints: `GET /v1/cluster`
//! (nodes, controller, partitions led) and `POST`/`DELETE /v1/nodes/{id}/drain` (move
//! every partition off a broker before it is removed, or take it back into service),
//! `GET /v1/lake` (the Iceberg tables this broker writes, their positions and lag),
//! `GET /v1/evidence?topic=&from=&to=` (the evidence report of a feed's window,
//! `crate::evidence`; `/v1/evidence/local` is this broker's part of it),
//! and, for every other path, the Confluent-compatible schema registry API
//! ([`super::registry_api`]).

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::Json;
use axum::Router;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::Broker;
use crate::evidence;
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
        .route("/v1/cluster", get(cluster))
        .route("/v1/lake", get(lake))
        .route("/v1/security/logins", get(failed_logins))
        .route("/v1/evidence", get(evidence))
        .route("/v1/evidence/local", get(evidence_local))
        .route("/v1/nodes/{id}/drain", post(drain).delete(undrain))
        .fallback(schema_registry)
        .with_state((metrics, state));
    Ok(tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = stop.changed().await;
            })
            .await;
    }))
}

type AppState = State<(Arc<Metrics>, HttpState)>;

fn started(s: &HttpState) -> Result<&Arc<Broker>, (StatusCode, String)> {
    s.broker
        .get()
        .ok_or((StatusCode::SERVICE_UNAVAILABLE, "starting".into()))
}

/// The fleet as this broker's metadata shows it.
async fn cluster(State((_, s)): AppState) -> Result<Json<serde_json::Value>, (StatusCode, String)> {
    let meta = started(&s)?.metadata.current();
    let nodes: Vec<serde_json::Value> = meta
        .nodes
        .iter()
        .map(|(id, n)| {
            serde_json::json!({
                "id": id,
                "host": n.host,
                "port": n.port,
                "incarnation": n.incarnation,
                "alive": n.alive,
                "draining": n.draining,
                "partitions_led": meta.partitions_led_by(*id),
            })
        })
        .collect();
    let moving = meta
        .topics
        .values()
        .flat_map(|t| &t.partitions)
        .filter(|p| p.target.is_some())
        .count();
    Ok(Json(serde_json::json!({
        "cluster_id": meta.cluster_id,
        "controller": meta.controller_id(),
        "nodes": nodes,
        "partitions_moving": moving,
    })))
}

/// The tables this broker writes and how far each is behind (`docs/lake.md`).
async fn lake(
    State((_, s)): AppState,
) -> Result<Json<Vec<crate::lake::TableStatus>>, (StatusCode, String)> {
    Ok(Json(started(&s)?.lake_status.snapshot()))
}

/// The source addresses with the most failed logins on this broker since it started
/// (docs/security.md): who is guessing passwords.
async fn failed_logins(
    State((_, s)): AppState,
) -> Result<Json<serde_json::Value>, (StatusCode, String)> {
    let top = started(&s)?.security.login_guard.top_sources(20);
    let sources: Vec<serde_json::Value> = top
        .into_iter()
        .map(|(ip, failures)| serde_json::json!({"source": ip.to_string(), "failures": failures}))
        .collect();
    Ok(Json(serde_json::json!({ "failed_logins": sources })))
}

/// The query of the evidence endpoints.
#[derive(serde::Deserialize)]
struct WindowQuery {
    topic: String,
    from: String,
    to: String,
}

fn evidence_sources(broker: &Broker) -> evidence::Sources {
    evidence::Sources {
        node_id: broker.args.node_id,
        engine: broker.engine.clone(),
        metadata: broker.metadata.clone(),
        schemas: broker.schemas.clone(),
        catalog: broker.lake_catalog.clone(),
        lake_status: broker.lake_status.clone(),
    }
}

fn evidence_failure(e: evidence::EvidenceError) -> (StatusCode, String) {
    let status = match &e {
        evidence::EvidenceError::BadRequest(_) => StatusCode::BAD_REQUEST,
        evidence::EvidenceError::UnknownTopic(_) => StatusCode::NOT_FOUND,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    (status, e.to_string())
}

/// The evidence report of a feed's time window (`docs/replay.md`, "Evidence").
async fn evidence(
    State((_, s)): AppState,
    Query(q): Query<WindowQuery>,
) -> Result<Json<sluice_schema::evidence::Report>, (StatusCode, String)> {
    let broker = started(&s)?;
    let window = evidence::Window::parse(&q.topic, &q.from, &q.to).map_err(evidence_failure)?;
    evidence_sources(broker)
        .report(&window)
        .await
        .map(Json)
        .map_err(evidence_failure)
}

/// This broker's part of an evidence report, for the broker building it.
async fn evidence_local(
    State((_, s)): AppState,
    Query(q): Query<WindowQuery>,
) -> Result<Json<evidence::log_scan::LocalPart>, (StatusCode, String)> {
    let broker = started(&s)?;
    let window = evidence::Window::parse(&q.topic, &q.from, &q.to).map_err(evidence_failure)?;
    evidence_sources(broker)
        .local(&window)
        .await
        .map(Json)
        .map_err(evidence_failure)
}

async fn set_draining(
    s: &HttpState,
    node: i32,
    draining: bool,
) -> Result<Json<serde_json::Value>, (StatusCode, String)> {
    let broker = started(s)?;
    let known = broker
        .metadata
        .update_if(|m| {
            let Some(n) = m.nodes.get_mut(&node) else {
                return Ok::<_, crate::storage::StorageError>(Some(false));
            };
            if n.draining == draining {
                return Ok(None);
            }
            n.draining = draining;
            Ok(Some(true))
        })
        .await
        .map_err(|e| (StatusCode::SERVICE_UNAVAILABLE, e.to_string()))?;
    if known == Some(false) {
        return Err((
            StatusCode::NOT_FOUND,
            format!("no broker {node} is registered"),
        ));
    }
    let meta = broker.metadata.current();
    tracing::info!(node, draining, "drain setting changed");
    Ok(Json(serde_json::json!({
        "node": node,
        "draining": draining,
        "partitions_led": meta.partitions_led_by(node),
    })))
}

/// Moves every partition off `id` (the controller spreads them over the others, a
/// bounded number at a time) and places nothing new on it. Poll `GET /v1/cluster` until
/// its `partitions_led` is 0, then stop it.
async fn drain(
    State((_, s)): AppState,
    Path(id): Path<i32>,
) -> Result<Json<serde_json::Value>, (StatusCode, String)> {
    set_draining(&s, id, true).await
}

async fn undrain(
    State((_, s)): AppState,
    Path(id): Path<i32>,
) -> Result<Json<serde_json::Value>, (StatusCode, String)> {
    set_draining(&s, id, false).await
}

/// Every path not routed above belongs to the schema registry API.
async fn schema_registry(
    State((_, s)): AppState,
    method: axum::http::Method,
    uri: axum::http::Uri,
    body: axum::body::Bytes,
) -> axum::response::Response {
    match started(&s) {
        Ok(broker) => super::registry_api::answer(&broker.schemas, method, uri, body).await,
        Err(e) => e.into_response(),
    }
}
