//! `sightline run`: load and validate everything, then run the engine until SIGTERM or Ctrl-C.

use crate::config::Config;
use crate::engine;
use crate::observe::health::Health;
use anyhow::Context;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;
use tokio::sync::watch;

pub async fn run(config: &Path) -> anyhow::Result<ExitCode> {
    let cfg = Config::load(config).map_err(|e| anyhow::anyhow!("{e}"))?;
    let topologies = crate::topology::load_configured(&cfg)?;
    crate::observe::metrics::init();
    let health = Health::new();
    let (bound, _http) = crate::observe::http::serve(cfg.http.bind, health.clone())
        .await
        .with_context(|| format!("binding the HTTP server to {} (http.bind)", cfg.http.bind))?;
    tracing::info!(address = %bound, "http: /metrics /healthz /readyz");

    let (stop_tx, mut stop_rx) = watch::channel(false);
    tokio::spawn(async move {
        shutdown_signal().await;
        tracing::info!("shutdown requested; finishing the record in hand and committing");
        let _ = stop_tx.send(true);
    });
    // A failure at start is a configuration or reachability problem: reported, and the process
    // exits. Later, an aborted transaction restarts the engine in-process: new clients, state
    // caught up from the changelog, input resumed from the last commit.
    let mut engine =
        engine::setup::build(&cfg, &topologies, health.clone(), Default::default()).await?;
    let mut backoff = Duration::from_secs(1);
    loop {
        let why = match engine.run(stop_rx.clone()).await? {
            engine::Ended::Shutdown => return Ok(ExitCode::SUCCESS),
            engine::Ended::Restart(why) => why,
        };
        health.set_restored(false);
        tracing::warn!(reason = %why, retry_in_ms = backoff.as_millis() as u64, "engine restarting");
        crate::observe::metrics::METRICS.engine_restarts.inc();
        engine = loop {
            tokio::select! {
                _ = tokio::time::sleep(backoff) => {}
                _ = stop_rx.changed() => return Ok(ExitCode::SUCCESS),
            }
            backoff = (backoff * 2).min(Duration::from_secs(30));
            match engine::setup::build(&cfg, &topologies, health.clone(), Default::default()).await
            {
                Ok(e) => break e,
                Err(e) => {
                    tracing::warn!(error = %format!("{e:#}"), retry_in_ms = backoff.as_millis() as u64, "engine restart failed; retrying")
                }
            }
        };
        backoff = Duration::from_secs(1);
    }
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("installing the SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
