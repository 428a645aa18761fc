//! Wiring: from config and topologies to a running engine. `sightline run` and the demo both
//! come through here, so the demo exercises the same path as production.

use super::clock::StreamClock;
use super::sources::Sources;
use super::workflows::WorkflowRunner;
use super::{Discard, Engine, EventSink};
use crate::config::Config;
use crate::contracts::Contract;
use crate::detectors::drift::DriftDetector;
use crate::detectors::workflow::Workflow;
use crate::ingest::{Decoder, Mapper, SourceIngest};
use crate::kafka::admin::{ensure_topics, TopicSpec};
use crate::kafka::{client_config, create_consumer, create_producer};
use crate::observe::health::Health;
use crate::outputs::Encoders;
use crate::state::Store;
use crate::topology::{Format, Topology};
use anyhow::Context;
use rdkafka::consumer::Consumer;
use schema_registry_converter::async_impl::avro::AvroDecoder;
use std::sync::Arc;
use std::time::Duration;

/// The topics Sightline writes to: outputs and one dead-letter topic per source.
pub fn output_topics(cfg: &Config, topologies: &[Topology]) -> Vec<TopicSpec> {
    let spec = |name: &str| TopicSpec {
        name: name.to_string(),
        partitions: cfg.kafka.topics.partitions,
        replication_factor: cfg.kafka.topics.replication_factor,
        configs: Vec::new(),
    };
    let o = &cfg.outputs;
    let mut topics: Vec<TopicSpec> = [&o.alerts, &o.sla, &o.drift, &o.lag]
        .iter()
        .map(|t| spec(t))
        .collect();
    for t in topologies {
        for s in &t.sources {
            // A pattern source's dead-letter topics are created when first needed.
            if s.topic_pattern().is_some() && s.dead_letter_topic.is_none() {
                continue;
            }
            let dlq = s.dead_letter_topic(&o.dead_letter_suffix);
            if !topics.iter().any(|x| x.name == dlq) {
                topics.push(spec(&dlq));
            }
        }
    }
    topics
}

/// Knobs of [`build`] that differ between `run`, the demo and tests.
pub struct BuildOptions {
    /// Create missing output topics (the mock cluster cannot; the demo makes them itself).
    pub create_topics: bool,
    /// Where mapped events go; `None` discards them.
    pub sink: Option<Box<dyn EventSink>>,
}

impl Default for BuildOptions {
    fn default() -> Self {
        BuildOptions {
            create_topics: true,
            sink: None,
        }
    }
}

/// Builds the engine: creates missing output topics, connects the registry, subscribes.
pub async fn build(
    cfg: &Config,
    topologies: &[Topology],
    health: Arc<Health>,
    opts: BuildOptions,
) -> anyhow::Result<Engine> {
    let base = client_config(cfg)?;
    if opts.create_topics {
        ensure_topics(&base, &output_topics(cfg, topologies)).await?;
    }

    let registry_settings = crate::registry::settings(cfg)?;
    let encoders = Encoders::new(&cfg.outputs, registry_settings.as_ref()).await?;
    let registry = match registry_settings {
        Some(settings) => {
            let ok = crate::registry::reachable(cfg).await;
            health.set_registry_ok(ok);
            if !ok {
                tracing::warn!(url = %cfg.registry.as_ref().map(|r| r.url.as_str()).unwrap_or(""),
                    "schema registry not reachable at start; Avro records will wait for it");
            }
            Some(Arc::new(AvroDecoder::new(settings)))
        }
        None => None,
    };

    let mut sources = Sources::default();
    for t in topologies {
        for s in &t.sources {
            let decoder = Decoder::new(s.format, registry.clone().map(|r| (r, health.clone())))
                .map_err(|e| anyhow::anyhow!("{}: source `{}`: {e}", t.file.display(), s.name))?;
            if s.format == Format::Avro && registry.is_none() {
                anyhow::bail!(
                    "{}: source `{}` is avro but no [registry] is configured",
                    t.file.display(),
                    s.name
                );
            }
            let contract = match &s.contract {
                Some(name) => Some(
                    Contract::load(&cfg.resolve(&cfg.schemas.dir), name).map_err(|e| {
                        anyhow::anyhow!("{}: source `{}`: {e}", t.file.display(), s.name)
                    })?,
                ),
                None => None,
            };
            let ingest = SourceIngest {
                name: s.name.clone(),
                decoder,
                mapper: Mapper::new(s),
                dead_letter_topic: s.dead_letter_topic.clone(),
                dead_letter_suffix: cfg.outputs.dead_letter_suffix.clone(),
                contract,
            };
            sources
                .insert(&s.topic, ingest)
                .map_err(|e| anyhow::anyhow!("{}: source `{}`: {e}", t.file.display(), s.name))?;
        }
    }
    for t in topologies {
        let monitors = t
            .monitors
            .freshness
            .iter()
            .map(|m| ("freshness", &m.name, &m.source))
            .chain(t.monitors.age.iter().map(|m| ("age", &m.name, &m.source)));
        for (kind, name, source) in monitors {
            if !topologies
                .iter()
                .flat_map(|t| &t.sources)
                .any(|s| s.name == *source)
            {
                anyhow::bail!(
                    "{}: {kind} monitor `{name}` watches source `{source}`, which no topology declares",
                    t.file.display(),
                );
            }
        }
    }
    let o = &cfg.outputs;
    sources.exclude(
        [&o.alerts, &o.sla, &o.drift, &o.lag].into_iter().cloned(),
        &o.dead_letter_suffix,
    );
    if sources.is_empty() {
        anyhow::bail!("no sources: the topologies declare nothing to read (topologies.paths)");
    }

    let consumer = create_consumer(&base, &cfg.kafka.group_id, health.clone())
        .context("creating the Kafka consumer")?;
    let subscription = sources.subscription();
    let topics: Vec<&str> = subscription.iter().map(String::as_str).collect();
    consumer
        .subscribe(&topics)
        .context("subscribing to the source topics")?;
    tracing::info!(topics = %topics.join(","), group = %cfg.kafka.group_id, "subscribed");
    let producer = create_producer(&base).context("creating the Kafka producer")?;
    let state_dir = cfg.resolve(&cfg.state.dir);
    std::fs::create_dir_all(&state_dir)
        .with_context(|| format!("creating state.dir {}", state_dir.display()))?;
    let store = Store::open(&state_dir)?;
    let drift = DriftDetector::restore(&store.scan_prefix(crate::state::CF_SCHEMAS, b"")?);
    let mut compiled = Vec::new();
    for t in topologies {
        for w in &t.workflows {
            compiled.push(Workflow::compile(w).map_err(|e| {
                anyhow::anyhow!("{}: workflow `{}`: {e}", t.file.display(), w.name)
            })?);
        }
    }
    let mut clock = StreamClock::new(cfg.engine.time, cfg.engine.allowed_lateness_ms as i64);
    clock.idle_ms = cfg.engine.idle_timeout_ms as i64;
    let mut workflows = WorkflowRunner::new(compiled, clock);
    workflows.restore_clocks(&store)?;
    health.set_restored(true);

    Ok(Engine {
        consumer: Arc::new(consumer),
        producer,
        sources,
        topic_template: opts
            .create_topics
            .then(|| (base.clone(), output_topics(cfg, &[]).remove(0))),
        ensured_topics: output_topics(cfg, topologies)
            .into_iter()
            .map(|t| t.name)
            .collect(),
        health,
        commit_interval: Duration::from_millis(cfg.kafka.commit_interval_ms),
        sink: opts.sink.unwrap_or_else(|| Box::new(Discard)),
        drift,
        store,
        encoders: Arc::new(encoders),
        lag: super::lag::poller(cfg, &base, &subscription)
            .context("creating the lag poller")?
            .map(|p| (p, Duration::from_millis(cfg.lag.interval_ms))),
        registry_lookup: crate::registry::Lookup::new(cfg)?,
        workflows,
        freshness: crate::detectors::freshness::Freshness::new(
            &topologies
                .iter()
                .flat_map(|t| t.monitors.freshness.clone())
                .collect::<Vec<_>>(),
            chrono::Utc::now().timestamp_millis(),
        ),
        age: crate::detectors::age::EventAge::new(
            &topologies
                .iter()
                .flat_map(|t| t.monitors.age.clone())
                .collect::<Vec<_>>(),
            chrono::Utc::now().timestamp_millis(),
        ),
        timer_tick: Duration::from_millis(cfg.engine.timer_tick_ms),
        last_idle_check: std::time::Instant::now() - Duration::from_secs(10),
        idle_check: None,
    })
}
