//! The HTTP server: `/metrics` (Prometheus text), `/healthz` (the process is alive), `/readyz`
//! (200 when ready, 503 with the reasons otherwise), and the read-only JSON API under `/api/`
//! (workflows, instances, timers, open alerts, lag, drift). It binds to localhost unless
//! configured.
//!
//! It is beside the engine in the same process, so no client may exhaust it: connections are
//! capped (`http.max_connections`; one more is closed at accept), a request's headers must
//! arrive within `http.header_read_timeout_ms`, and a connection silent in both directions for
//! `http.idle_timeout_ms` is closed. axum's own `serve` has neither a cap nor an idle timeout
//! (1,000 held-open connections once stayed open for good), so connections are served here with
//! hyper directly.

use crate::observe::health::Health;
use axum::{extract::State, http::StatusCode, response::IntoResponse, routing::get, Json, Router};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

/// What one client may take of the server.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_connections: usize,
    pub header_read_timeout: Duration,
    pub idle_timeout: Duration,
}

impl Limits {
    /// The limits `[http]` sets.
    pub fn of(http: &crate::config::HttpConfig) -> Limits {
        Limits {
            max_connections: http.max_connections.clamp(1, 100_000) as usize,
            header_read_timeout: Duration::from_millis(http.header_read_timeout_ms.max(1)),
            idle_timeout: Duration::from_millis(http.idle_timeout_ms.max(1)),
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits::of(&crate::config::HttpConfig::default())
    }
}

/// Binds `addr` and serves until the returned task is aborted. Returns the bound address (useful
/// when `addr` has port 0).
pub async fn serve(
    addr: SocketAddr,
    health: Arc<Health>,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    serve_with(addr, health, Limits::default()).await
}

/// As [`serve`], with these limits.
pub async fn serve_with(
    addr: SocketAddr,
    health: Arc<Health>,
    limits: Limits,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let app = router(health);
    let slots = Arc::new(tokio::sync::Semaphore::new(limits.max_connections));
    let task = tokio::spawn(async move {
        loop {
            let stream = match listener.accept().await {
                Ok((s, _)) => s,
                Err(e) => {
                    // Out of file descriptors and the like: wait, never spin.
                    tracing::warn!(error = %e, "http: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let Ok(slot) = slots.clone().try_acquire_owned() else {
                crate::observe::metrics::METRICS.http_refused.inc();
                drop(stream);
                continue;
            };
            let app = app.clone();
            tokio::spawn(async move {
                let _slot = slot;
                serve_connection(stream, app, limits).await;
            });
        }
    });
    Ok((bound, task))
}

/// Serves one connection until it ends, or has been silent for the idle timeout.
async fn serve_connection(stream: TcpStream, app: Router, limits: Limits) {
    let _ = stream.set_nodelay(true);
    let io = Watched::new(stream);
    let last = io.last.clone();
    let started = io.started;
    let service = hyper_util::service::TowerToHyperService::new(app);
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .keep_alive(true)
        .serve_connection(hyper_util::rt::TokioIo::new(io), service);
    tokio::pin!(conn);
    let tick = limits.idle_timeout.min(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = conn.as_mut() => return,
            _ = tokio::time::sleep(tick) => {
                let idle = started.elapsed().saturating_sub(Duration::from_millis(last.load(Ordering::Relaxed)));
                if idle >= limits.idle_timeout {
                    crate::observe::metrics::METRICS.http_idle_closed.inc();
                    return; // dropping the connection closes the socket
                }
            }
        }
    }
}

/// A socket that remembers when it last moved a byte (ms since it was accepted).
struct Watched {
    inner: TcpStream,
    started: Instant,
    last: Arc<AtomicU64>,
}

impl Watched {
    fn new(inner: TcpStream) -> Self {
        Watched {
            inner,
            started: Instant::now(),
            last: Arc::new(AtomicU64::new(0)),
        }
    }

    fn touch(&self) {
        self.last
            .store(self.started.elapsed().as_millis() as u64, Ordering::Relaxed);
    }
}

impl AsyncRead for Watched {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let r = Pin::new(&mut this.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            this.touch();
        }
        r
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_write(cx, data);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            this.touch();
        }
        r
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
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
        crate::observe::metrics::render(),
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
