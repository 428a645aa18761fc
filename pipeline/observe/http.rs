//! The HTTP server: `/metrics` (Prometheus text), `/healthz` (the process is alive), `/readyz`
//! (200 when ready, 503 with the reasons otherwise), and the read-only JSON API under `/api/`
//! (workflows, instances, timers, open alerts, lag, drift). It binds to localhost unless
//! configured.

use super::health::Health;
use axum::{extract::State, http::StatusCode, response::IntoResponse, routing::get, Json, Router};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;

/// Binds `addr` and serves until the returned task is aborted. Returns the bound address (useful
/// when `addr` has port 0).
pub async fn serve(
    addr: SocketAddr,
    health: Arc<Health>,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let app = router(health);
    let task = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "http server stopped");
        }
    });
    Ok((bound, task))
}

pub fn router(health: Arc<Health>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/api/workflows", get(api_workflows))
        .route(
            "/api/workflows/{workflow}/instances/{key}",
            get(api_instance),
        )
        .route("/api/instances", get(api_instances))
        .route("/api/timers", get(api_timers))
        .route("/api/alerts", get(|| async { Json(READ.open_alerts()) }))
        .route("/api/lag", get(|| async { Json(READ.lag()) }))
        .route("/api/drift", get(|| async { Json(READ.drift()) }))
        .with_state(health)
}

use super::read::READ;
use axum::extract::{Path, Query};
use serde_json::{json, Value};

type ApiResult = Result<Json<Value>, (StatusCode, Json<Value>)>;

fn api_error(code: StatusCode, message: String) -> (StatusCode, Json<Value>) {
    (code, Json(json!({ "error": message })))
}

/// Runs a store query on the blocking pool (scans can be long).
async fn with_store(
    f: impl FnOnce(
            &crate::state::Store,
            &[crate::detectors::workflow::Workflow],
        ) -> Result<Value, String>
        + Send
        + 'static,
) -> ApiResult {
    let Some(store) = READ.store() else {
        return Err(api_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the state store is not open (starting or restarting); try again".into(),
        ));
    };
    let workflows = READ.workflows();
    tokio::task::spawn_blocking(move || f(&store, &workflows))
        .await
        .map_err(|e| api_error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
        .map(Json)
        .map_err(|e| api_error(StatusCode::INTERNAL_SERVER_ERROR, e))
}

async fn api_workflows() -> Json<Value> {
    Json(Value::Array(
        READ.workflows()
            .iter()
            .map(crate::state::query::describe)
            .collect(),
    ))
}

async fn api_instance(Path((workflow, key)): Path<(String, String)>) -> ApiResult {
    let (w, k) = (workflow.clone(), key.clone());
    let found = with_store(move |store, wfs| {
        Ok(crate::state::query::instance(store, wfs, &w, &k)
            .map_err(|e| e.to_string())?
            .unwrap_or(Value::Null))
    })
    .await?;
    if found.0.is_null() {
        return Err(api_error(
            StatusCode::NOT_FOUND,
            format!("no instance of workflow `{workflow}` with key `{key}` on this instance's partitions"),
        ));
    }
    Ok(found)
}

#[derive(serde::Deserialize)]
struct InstancesQuery {
    workflow: Option<String>,
    top: Option<usize>,
}

async fn api_instances(Query(q): Query<InstancesQuery>) -> ApiResult {
    let now = chrono::Utc::now().timestamp_millis();
    with_store(move |store, wfs| {
        crate::state::query::open_instances(
            store,
            wfs,
            q.workflow.as_deref(),
            q.top.unwrap_or(20),
            now,
        )
        .map_err(|e| e.to_string())
    })
    .await
}

#[derive(serde::Deserialize)]
struct TimersQuery {
    within_ms: Option<i64>,
}

async fn api_timers(Query(q): Query<TimersQuery>) -> ApiResult {
    let now = chrono::Utc::now().timestamp_millis();
    let within = q.within_ms.unwrap_or(3_600_000);
    with_store(move |store, wfs| {
        crate::state::query::timers_due(store, wfs, i64::MIN + 1, now + within)
            .map_err(|e| e.to_string())
    })
    .await
}

async fn metrics() -> impl IntoResponse {
    (
        [("content-type", "text/plain; version=0.0.4")],
        super::metrics::render(),
    )
}

async fn readyz(State(health): State<Arc<Health>>) -> impl IntoResponse {
    let r = health.readiness();
    let code = if r.ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(r))
}
