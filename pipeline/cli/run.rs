//! `sightline run`: load and validate everything, then run the engine until SIGTERM or Ctrl-C
//! (or, with `--until-end`, until the input read to the end offsets it had at start).

use crate::config::Config;
use crate::engine;
use crate::observe::health::Health;
use anyhow::Context;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;
use tokio::sync::watch;

pub async fn run(config: &Path, until_end: bool) -> anyhow::Result<ExitCode> {
    let cfg = Config::load(config).map_err(|e| anyhow::anyhow!("{e}"))?;
    let topologies = crate::topology::load_configured(&cfg)?;
    crate::kafka::client::check_connection_async(&cfg, Duration::from_secs(15)).await?;
    // The end of the input is where it is now, once, for every engine this process builds.
    let end = if until_end {
        let base = crate::kafka::client::client_config(&cfg)?;
        let topologies = topologies.clone();
        let targets = tokio::task::spawn_blocking(move || {
            let topics = engine::until_end::input_topics(&base, &topologies)?;
            engine::until_end::end_offsets(&base, &topics)
        })
        .await??;
        tracing::info!(
            partitions = targets.len(),
            records = targets.iter().map(|(_, _, e)| e).sum::<i64>(),
            "--until-end: reading every input to its end offsets as of now"
        );
        Some(targets)
    } else {
        None
    };
    crate::observe::metrics::init();
    let health = Health::new();
    let (bound, _http) = crate::serve::http::serve_with(
        cfg.http.bind,
        health.clone(),
        crate::serve::http::Limits::of(&cfg.http),
    )
    .await
    .with_context(|| format!("binding the HTTP server to {} (http.bind)", cfg.http.bind))?;
    tracing::info!(address = %bound, "http: /metrics /healthz /readyz");

    let (stop_tx, mut stop_rx) = watch::channel(false);
    tokio::spawn(async move {
        shutdown_signal().await;
        tracing::info!("shutdown requested; finishing the record in hand and committing");
        let _ = stop_tx.send(true);
    });
    // SIGHUP reloads the topology files; a change of source mappings only applies at once,
    // anything else is refused (it needs a restart) and the running topologies stay.
    let (topo_tx, topo_rx) = watch::channel(std::sync::Arc::new(topologies));
    {
        let cfg = cfg.clone();
        tokio::spawn(async move {
            let Ok(mut hup) =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
            else {
                return;
            };
            while hup.recv().await.is_some() {
                reload(&cfg, &topo_tx);
            }
        });
    }
    let build_options = || engine::setup::BuildOptions {
        reload: Some(topo_rx.clone()),
        until_end: end.clone(),
        ..Default::default()
    };
    // A failure at start is a configuration or reachability problem: reported, and the process
    // exits. Later, an aborted transaction restarts the engine in-process: new clients, state
    // caught up from the changelog, input resumed from the last commit.
    let mut engine = engine::setup::build(
        &cfg,
        &topo_rx.borrow().clone(),
        health.clone(),
        build_options(),
    )
    .await?;
    let mut backoff = Duration::from_secs(1);
    loop {
        let why = match engine.run(stop_rx.clone()).await? {
            engine::Ended::Shutdown => return Ok(ExitCode::SUCCESS),
            engine::Ended::InputEnded(summary) => {
                println!("{summary}");
                return Ok(ExitCode::SUCCESS);
            }
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
            let topologies = topo_rx.borrow().clone();
            match engine::setup::build(&cfg, &topologies, health.clone(), build_options()).await {
                Ok(e) => break e,
                Err(e) => {
                    tracing::warn!(error = %format!("{e:#}"), retry_in_ms = backoff.as_millis() as u64, "engine restart failed; retrying")
                }
            }
        };
        backoff = Duration::from_secs(1);
    }
}

/// Re-reads the configured topology files and passes them on when only source mappings
/// changed; otherwise says why not, and the running topologies stay.
fn reload(cfg: &Config, topo_tx: &watch::Sender<std::sync::Arc<Vec<crate::topology::Topology>>>) {
    use crate::observe::metrics::METRICS;
    let new = match crate::topology::load_configured(cfg) {
        Ok(t) => t,
        Err(e) => {
            METRICS.reloads.with_label_values(&["failed"]).inc();
            tracing::error!(error = %format!("{e:#}"), "SIGHUP: reload refused; the running topologies stay");
            return;
        }
    };
    if let Err(problems) = crate::topology::reload::mapping_change(&topo_tx.borrow(), &new) {
        METRICS.reloads.with_label_values(&["refused"]).inc();
        tracing::error!(problems = %problems.join("; "), "SIGHUP: reload refused; the running topologies stay");
        return;
    }
    tracing::info!("SIGHUP: topologies re-read; applying the new source mappings");
    let _ = topo_tx.send(std::sync::Arc::new(new));
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
