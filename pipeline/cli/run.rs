//! `sightline run`: load and validate everything, then run the engine until SIGTERM or Ctrl-C.

use crate::config::Config;
use crate::engine;
use crate::observe::health::Health;
use anyhow::Context;
use std::path::Path;
use std::process::ExitCode;
use tokio::sync::watch;

pub async fn run(config: &Path) -> anyhow::Result<ExitCode> {
    let cfg = Config::load(config).map_err(|e| anyhow::anyhow!("{e}"))?;
    let paths: Vec<_> = cfg
        .topologies
        .paths
        .iter()
        .map(|p| cfg.resolve(p))
        .collect();
    let topologies = crate::topology::load_all(&paths).map_err(|errors| {
        anyhow::anyhow!(
            "{} topology error(s):\n{}",
            errors.len(),
            errors
                .iter()
                .map(|e| format!("  - {e}"))
                .collect::<Vec<_>>()
                .join("\n")
        )
    })?;
    crate::observe::metrics::init();
    let health = Health::new();
    let (bound, _http) = crate::observe::http::serve(cfg.http.bind, health.clone())
        .await
        .with_context(|| format!("binding the HTTP server to {} (http.bind)", cfg.http.bind))?;
    tracing::info!(address = %bound, "http: /metrics /healthz /readyz");

    let engine = engine::setup::build(&cfg, &topologies, health, Default::default()).await?;
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(async move {
        shutdown_signal().await;
        tracing::info!("shutdown requested; finishing the record in hand and committing");
        let _ = stop_tx.send(true);
    });
    engine.run(stop_rx).await?;
    Ok(ExitCode::SUCCESS)
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
