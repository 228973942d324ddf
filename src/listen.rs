//! The optional HTTP listener (`--listen ADDR`, `listen:`): `/metrics` for Prometheus,
//! `/healthz` and `/readyz` for Kubernetes probes, and the silences API.
//!
//! Off by default: a log tailer should not open a port nobody asked for. It serves plain HTTP/1
//! on the address given; put it on loopback or a pod-internal port, since it has no
//! authentication (it shows counts and rule names, never log lines or secrets).
//!
//! Edges: an address already in use is an error at start (the run does not begin); once
//! running, a failing connection never disturbs the pipeline.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::metrics::Metrics;
use crate::silence::{self, Silences};

/// What the handlers read.
#[derive(Clone)]
pub struct ListenState {
    /// The process's metrics.
    pub metrics: Arc<Metrics>,
    /// The silences in force (shared with the aggregator task).
    pub silences: Silences,
}

/// The content type of the OpenMetrics text `prometheus-client` writes.
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// The classic Prometheus text format's content type.
const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Binds `addr` and serves in the background; returns the bound address (port 0 picks one),
/// logged as `listening on ADDR`.
pub async fn start(addr: SocketAddr, state: ListenState) -> std::io::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let silences = silence::routes(state.silences.clone());
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(state)
        .merge(silences);
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!("the HTTP listener stopped: {e}");
        }
    });
    tracing::info!("listening on {bound}");
    Ok(bound)
}

/// OpenMetrics when the scraper asks for it (Prometheus does), else the classic text format.
async fn metrics(State(state): State<ListenState>, headers: HeaderMap) -> Response {
    let openmetrics = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("application/openmetrics-text"));
    if openmetrics {
        (
            [(header::CONTENT_TYPE, OPENMETRICS)],
            state.metrics.render(),
        )
            .into_response()
    } else {
        (
            [(header::CONTENT_TYPE, PROMETHEUS_TEXT)],
            state.metrics.render_prometheus(),
        )
            .into_response()
    }
}

/// Answered by the runtime that runs the pipeline: if it answers, the process loop is alive.
async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(state): State<ListenState>) -> Response {
    match state.metrics.not_ready() {
        None => (StatusCode::OK, "ready\n").into_response(),
        Some(why) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {why}\n"),
        )
            .into_response(),
    }
}
