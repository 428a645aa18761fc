//! Wiring: from config and topologies to a running engine. `sightline run` and the demo both
//! come through here, so the demo exercises the same path as production.

use super::clock::StreamClock;
use super::sources::Sources;
use super::workflows::WorkflowRunner;
use super::{Discard, Engine, EventSink};
use crate::config::{Config, Guarantee};
use crate::contracts::Contract;
use crate::detectors::drift::DriftDetector;
use crate::ingest::{Decoder, Mapper, SourceIngest};
use crate::kafka::admin::{ensure_topics, TopicSpec};
use crate::kafka::consumer::{RestoreHook, RestoreSignal};
use crate::kafka::{client_config, create_consumer, create_producer};
use crate::observe::health::Health;
use crate::outputs::Encoders;
use crate::state::Store;
use crate::topology::{Format, Topology};
use anyhow::Context;
use rdkafka::consumer::Consumer;
use rdkafka::producer::Producer;
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

/// The compacted changelog topic of the state store.
pub fn changelog_spec(cfg: &Config, partitions: i32) -> TopicSpec {
    TopicSpec {
        name: crate::state::changelog::topic(&cfg.kafka.group_id),
        partitions,
        replication_factor: cfg.kafka.topics.replication_factor,
        configs: vec![
            ("cleanup.policy".into(), "compact".into()),
            ("min.compaction.lag.ms".into(), "0".into()),
        ],
    }
}

/// Opens the state store. A store found corrupt (on open, or marked so by an engine that read a
/// corrupt block) is moved aside and replaced by an empty one, which the changelog restores
/// as partitions are assigned; without a changelog (at-least-once) there is nothing to rebuild
/// from, so it stops and says what to do.
fn open_store(cfg: &Config, dir: &std::path::Path, exactly_once: bool) -> anyhow::Result<Store> {
    let open = || {
        Store::open_with(
            dir,
            cfg.state.block_cache_mb,
            cfg.state.write_buffer_mb,
            !exactly_once,
        )
    };
    // Everything start-up reads (checkpoints, clocks, drift knowledge) is read once here, so a
    // corrupt block there is found now rather than in the middle of a rebalance.
    let verify = |store: &Store| -> Result<(), crate::state::StateError> {
        store.scan_prefix(crate::state::CF_META, b"")?;
        store.scan_prefix(crate::state::CF_SCHEMAS, b"")?;
        Ok(())
    };
    let marked = std::fs::read_to_string(dir.join(crate::state::CORRUPT_MARKER)).ok();
    let why = match (marked, open()) {
        (None, Ok(store)) => match verify(&store) {
            Ok(()) => return Ok(store),
            Err(e) if e.is_corruption() => {
                drop(store);
                e.to_string()
            }
            Err(e) => return Err(e.into()),
        },
        (Some(why), Ok(store)) => {
            drop(store);
            why
        }
        (_, Err(e)) if e.is_corruption() => e.to_string(),
        (_, Err(e)) => return Err(e.into()),
    };
    if !exactly_once {
        anyhow::bail!(
            "the state store at {} is corrupt ({why}), and under at_least_once there is no changelog to rebuild it from. \
             Move or delete {} and start again: open instances and pending deadlines are then lost, and rebuilt only as events arrive",
            dir.display(),
            dir.display()
        );
    }
    let aside = crate::state::quarantine(dir)
        .with_context(|| format!("moving the corrupt state dir {} aside", dir.display()))?;
    crate::observe::events::StateRecovered {
        dir: &dir.display().to_string(),
        aside: &aside.display().to_string(),
        why: &why,
    }
    .emit();
    Ok(open()?)
}

/// A partitioning check per source that says it is keyed by the correlation key: not
/// re-keyed, a named topic, read by workflows, with a partitioner that places keys.
fn partition_checks(
    cfg: &Config,
    topologies: &[Topology],
    partitions: &std::collections::BTreeMap<String, i32>,
) -> std::collections::HashMap<String, crate::detectors::partitioning::PartitionCheck> {
    use crate::detectors::partitioning::{Hash, PartitionCheck};
    let mut out = std::collections::HashMap::new();
    for s in topologies
        .iter()
        .filter(|t| !t.workflows.is_empty())
        .flat_map(|t| &t.sources)
        .filter(|s| !s.repartition && s.topic_pattern().is_none())
    {
        let configured = s.partitioner.as_deref().unwrap_or(&cfg.kafka.partitioner);
        let (Some(hash), Some(&n)) = (Hash::of(configured), partitions.get(&s.topic)) else {
            continue;
        };
        if n > 1 {
            out.insert(
                s.topic.clone(),
                PartitionCheck::new(&s.name, &s.topic, configured, hash, n),
            );
        }
    }
    out
}

/// Per workflow, the clock inputs that can carry its events: every source (of any topology)
/// whose event types may include one of the workflow's. A source whose type comes from a field
/// or header and that declares no `event_types` may carry anything.
fn workflow_inputs(
    group_id: &str,
    topologies: &[Topology],
    workflows: &[crate::detectors::workflow::Workflow],
) -> std::collections::HashMap<String, super::workflows::WorkflowInputs> {
    use crate::topology::source::ValueFrom;
    let mut out = std::collections::HashMap::new();
    for w in workflows {
        let types: std::collections::HashSet<&str> = w.event_types().collect();
        let mut inputs = super::workflows::WorkflowInputs::default();
        for s in topologies.iter().flat_map(|t| &t.sources) {
            let carries = match &s.event_type {
                ValueFrom::Fixed(t) => types.contains(t.as_str()),
                _ if !s.event_types.is_empty() => {
                    s.event_types.iter().any(|t| types.contains(t.as_str()))
                }
                _ => true,
            };
            if !carries {
                continue;
            }
            if s.repartition {
                inputs
                    .topics
                    .insert(super::repartition::topic(group_id, &s.name));
            } else if let Some(pattern) = s.topic_pattern() {
                if let Ok(r) = regex::Regex::new(pattern) {
                    inputs.patterns.push(r);
                }
            } else {
                inputs.topics.insert(s.topic.clone());
            }
        }
        out.insert(w.name.clone(), inputs);
    }
    out
}

/// Partition counts of the exact (non-pattern) source topics that exist.
async fn source_partitions(
    base: &rdkafka::ClientConfig,
    topologies: &[Topology],
) -> std::collections::BTreeMap<String, i32> {
    let mut out = std::collections::BTreeMap::new();
    for t in topologies {
        for s in &t.sources {
            if s.topic_pattern().is_none() && !out.contains_key(&s.topic) {
                if let Some(n) = topic_partitions(base, &s.topic).await {
                    out.insert(s.topic.clone(), n);
                }
            }
        }
    }
    out
}

/// A topic's partition count (None: missing or unreachable).
async fn topic_partitions(base: &rdkafka::ClientConfig, topic: &str) -> Option<i32> {
    let (base, topic) = (base.clone(), topic.to_string());
    tokio::task::spawn_blocking(move || {
        let c: rdkafka::consumer::BaseConsumer = base.create().ok()?;
        let md = c
            .fetch_metadata(Some(&topic), Duration::from_secs(10))
            .ok()?;
        let t = md.topics().first()?;
        (t.error().is_none() && !t.partitions().is_empty()).then(|| t.partitions().len() as i32)
    })
    .await
    .ok()
    .flatten()
}

/// Workflow state is kept per input partition number, so the topics a workflow's sources read
/// must have the same partition count (and their producers the same partitioner).
fn check_co_partitioned(
    topologies: &[Topology],
    partitions: &std::collections::BTreeMap<String, i32>,
) -> anyhow::Result<()> {
    let mut seen: Option<(String, String, i32)> = None;
    for t in topologies.iter().filter(|t| !t.workflows.is_empty()) {
        for s in &t.sources {
            if s.repartition {
                continue;
            }
            let Some(&n) = partitions.get(&s.topic) else {
                continue;
            };
            match &seen {
                None => seen = Some((s.name.clone(), s.topic.clone(), n)),
                Some((name, topic, m)) if *m != n => anyhow::bail!(
                    "{}: sources `{name}` (topic `{topic}`, {m} partitions) and `{}` (topic `{}`, {n} partitions) \
                     are not co-partitioned. Workflow state is kept per partition number, so every topic a \
                     workflow reads must have the same number of partitions, keyed by the correlation key. \
                     Give the topics the same partition count.",
                    t.file.display(),
                    s.name,
                    s.topic
                ),
                Some(_) => {}
            }
        }
    }
    Ok(())
}

/// The source mappings of `topologies`: decoder, mapper, contract and dead-letter topic per
/// input topic (at start, and again on a reload of the mappings).
pub fn build_sources(
    cfg: &Config,
    topologies: &[Topology],
    health: &Arc<Health>,
    registry: Option<Arc<AvroDecoder>>,
) -> anyhow::Result<Sources> {
    let mut sources = Sources::default();
    let lookup = crate::registry::Lookup::new(cfg)?.map(Arc::new);
    for t in topologies {
        for s in &t.sources {
            let decoder = Decoder::new(s.format, registry.clone().map(|r| (r, health.clone())))
                .map_err(|e| anyhow::anyhow!("{}: source `{}`: {e}", t.file.display(), s.name))?
                .with_lookup(lookup.clone());
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
                repartition_topic: s
                    .repartition
                    .then(|| super::repartition::topic(&cfg.kafka.group_id, &s.name)),
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
    Ok(sources)
}

/// Knobs of [`build`] that differ between `run`, the demo and tests.
pub struct BuildOptions {
    /// Create missing output topics (the mock cluster cannot; the demo makes them itself).
    pub create_topics: bool,
    /// Where mapped events go; `None` discards them.
    pub sink: Option<Box<dyn EventSink>>,
    /// New topologies whose source mappings replace the running ones (`sightline run` sends
    /// them on SIGHUP; only mapping changes are sent, see [`crate::topology::mapping_change`]).
    pub reload: Option<tokio::sync::watch::Receiver<Arc<Vec<Topology>>>>,
    /// `run --until-end`: the input partitions and the end offsets seen at start; the engine
    /// stops once it has committed all of them (engine/until_end.rs).
    pub until_end: Option<Vec<(String, i32, i64)>>,
}

impl Default for BuildOptions {
    fn default() -> Self {
        BuildOptions {
            create_topics: true,
            sink: None,
            reload: None,
            until_end: None,
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

    let sources = build_sources(cfg, topologies, &health, registry.clone())?;
    let reload = opts.reload.map(|rx| {
        let (cfg, health) = (cfg.clone(), health.clone());
        let factory: super::SourceFactory =
            Box::new(move |t: &[Topology]| build_sources(&cfg, t, &health, registry.clone()));
        (rx, factory)
    });
    if sources.is_empty() {
        anyhow::bail!("no sources: the topologies declare nothing to read (topologies.paths)");
    }

    // Repartition topics, and the co-partitioned sets of topics each topology's workflows read.
    let partitions = source_partitions(&base, topologies).await;
    let has_workflows = topologies.iter().any(|t| !t.workflows.is_empty());
    if has_workflows {
        check_co_partitioned(topologies, &partitions)?;
    }
    let workflow_partitions = topologies
        .iter()
        .filter(|t| !t.workflows.is_empty())
        .flat_map(|t| &t.sources)
        .filter(|s| !s.repartition)
        .find_map(|s| partitions.get(&s.topic).copied())
        .unwrap_or(cfg.kafka.topics.partitions);
    let mut repartition_inputs = std::collections::HashSet::new();
    let mut repartition_feeds = std::collections::HashMap::new();
    let mut co_partitioned = Vec::new();
    for t in topologies.iter().filter(|t| !t.workflows.is_empty()) {
        let mut set = Vec::new();
        for s in &t.sources {
            if s.repartition {
                let topic = super::repartition::topic(&cfg.kafka.group_id, &s.name);
                repartition_inputs.insert(topic.clone());
                // A pattern source's partitions are not known up front: its repartition topic
                // keeps a clock of its own (the newest event time read on it).
                if let (None, Some(&n)) = (s.topic_pattern(), partitions.get(&s.topic)) {
                    repartition_feeds.insert(
                        topic.clone(),
                        super::repartition::Feed {
                            source_topic: s.topic.clone(),
                            source_partitions: n,
                            partitions: workflow_partitions,
                        },
                    );
                }
                set.push(topic);
            } else if s.topic_pattern().is_none() {
                set.push(s.topic.clone());
            }
        }
        co_partitioned.push(set);
    }
    // Drift claims follow the workflows' partitions too (any one set: they all merge).
    let announce_topic = super::announce::topic(&cfg.kafka.group_id);
    if let Some(first) = co_partitioned.first_mut() {
        first.push(announce_topic.clone());
    }
    let mut repartition_topics: Vec<String> = repartition_inputs.iter().cloned().collect();
    repartition_topics.sort();
    let internal_topics: Vec<String> = repartition_topics
        .iter()
        .cloned()
        .chain([announce_topic.clone()])
        .collect();
    if opts.create_topics {
        let specs: Vec<TopicSpec> = internal_topics
            .iter()
            .map(|name| TopicSpec {
                name: name.clone(),
                partitions: workflow_partitions,
                replication_factor: cfg.kafka.topics.replication_factor,
                configs: Vec::new(),
            })
            .collect();
        ensure_topics(&base, &specs).await?;
        for name in &internal_topics {
            let have = topic_partitions(&base, name).await;
            if has_workflows && have.is_some_and(|n| n != workflow_partitions) {
                anyhow::bail!(
                    "the internal topic `{name}` has {} partitions, but the workflows' topics have {workflow_partitions}: \
                     its records would land on the wrong partition number. Delete `{name}` (stop Sightline \
                     first) and start again, and Sightline recreates it.",
                    have.unwrap_or(0)
                );
            }
        }
    }
    let groups = crate::kafka::copartition::PartitionGroups::new(&co_partitioned);
    // Followers are assigned with their anchor, never on their own; every input is watched for lag.
    let all_inputs: Vec<String> = {
        let mut v = sources.subscription();
        v.extend(internal_topics.iter().cloned());
        v.sort();
        v
    };
    let subscription: Vec<String> = all_inputs
        .iter()
        .filter(|t| !groups.is_follower(t))
        .cloned()
        .collect();
    let state_dir = cfg.resolve(&cfg.state.dir);
    std::fs::create_dir_all(&state_dir)
        .with_context(|| format!("creating state.dir {}", state_dir.display()))?;
    let exactly_once = cfg.kafka.processing_guarantee == Guarantee::ExactlyOnce;
    // Under exactly-once the changelog topic is the log; RocksDB's own would write it twice.
    let store = Arc::new(open_store(cfg, &state_dir, exactly_once)?);
    let signal = Arc::new(RestoreSignal::default());
    let compiled = crate::detectors::workflow::compile_all(topologies)?;
    let derive = super::workflows::restored_timers(&compiled);
    let mut producer_base = base.clone();
    producer_base.set("partitioner", &cfg.kafka.partitioner);
    let (producer, changelog, restore) = if exactly_once {
        let changelog = crate::state::changelog::topic(&cfg.kafka.group_id);
        let needed = partitions
            .values()
            .copied()
            .chain([workflow_partitions])
            .max()
            .unwrap_or(cfg.kafka.topics.partitions);
        if opts.create_topics {
            ensure_topics(&base, &[changelog_spec(cfg, needed)]).await?;
            let have = topic_partitions(&base, &changelog).await.unwrap_or(needed);
            if have < needed {
                anyhow::bail!(
                    "the state changelog `{changelog}` has {have} partitions, but source topics have up to {needed}: \
                     every input partition needs its changelog partition. Add partitions to `{changelog}` \
                     (kafka-topics --alter --partitions {needed}) and start again."
                );
            }
        }
        let producer = crate::kafka::producer::create_transactional_producer(
            &producer_base,
            &cfg.kafka.transactional_id(),
            cfg.kafka.transaction_timeout_ms,
        )
        .context("creating the transactional producer")?;
        // Fences an earlier incarnation of this instance and aborts its open transaction, so
        // the changelog read below ends at what was committed.
        let p = producer.clone();
        tokio::task::spawn_blocking(move || p.init_transactions(Duration::from_secs(60)))
            .await?
            .with_context(|| {
                format!(
                    "initialising transactions (transactional.id `{}`; the broker needs transactions enabled, \
                     and another live instance must not use the same kafka.instance_id)",
                    cfg.kafka.transactional_id()
                )
            })?;
        // Catch local state up with what this instance committed before it stopped, for every
        // partition it held (their changelog tails), before anything reads the state.
        let held = crate::state::changelog::checkpointed(&store)?;
        let (st, b, t, d) = (
            store.clone(),
            base.clone(),
            changelog.clone(),
            derive.clone(),
        );
        tokio::task::spawn_blocking(move || {
            crate::state::changelog::restore(&st, &b, &t, &held, Duration::from_secs(60), &*d)
        })
        .await??;
        let (st, b, t) = (store.clone(), base.clone(), changelog.clone());
        let hook = RestoreHook::new(
            Box::new(move |partitions: &[i32]| {
                crate::state::changelog::restore(
                    &st,
                    &b,
                    &t,
                    partitions,
                    Duration::from_secs(60),
                    &*derive,
                )
                .map(|_| ())
            }),
            signal.clone(),
        );
        (producer, Some(changelog), Some(hook))
    } else {
        (
            create_producer(&producer_base).context("creating the Kafka producer")?,
            None,
            None,
        )
    };
    let consumer = create_consumer(&base, &cfg.kafka.group_id, health.clone(), restore, groups)
        .context("creating the Kafka consumer")?;
    let topics: Vec<&str> = subscription.iter().map(String::as_str).collect();
    consumer
        .subscribe(&topics)
        .context("subscribing to the source topics")?;
    tracing::info!(topics = %topics.join(","), group = %cfg.kafka.group_id, "subscribed");
    let drift = DriftDetector::restore(&crate::state::drift_knowledge(&store)?);
    crate::serve::read::READ.attach(&store, compiled.clone());
    let mut clock = StreamClock::new(cfg.engine.time, cfg.engine.allowed_lateness_ms as i64);
    clock.idle_ms = cfg.engine.idle_timeout_ms as i64;
    let inputs = workflow_inputs(&cfg.kafka.group_id, topologies, &compiled);
    // The oldest event worth reading: the largest ttl ago, plus a margin of 30 days for
    // re-sent history (the ttl alone is 30 days without workflows).
    let max_ttl_ms = compiled
        .iter()
        .map(|w| w.ttl_ms)
        .max()
        .unwrap_or(30 * 86_400_000);
    let mut workflows = WorkflowRunner::new(compiled, clock)
        .with_cache(cfg.state.instance_cache as usize)
        .with_inputs(inputs);
    workflows.restore_clocks(&store)?;
    health.set_restored(true);

    Ok(Engine {
        consumer: Arc::new(consumer),
        producer,
        sources,
        reload,
        repartition_inputs,
        repartition_feeds,
        committed_at: Default::default(),
        dead_letter_suffix: cfg.outputs.dead_letter_suffix.clone(),
        announce_topic,
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
        guarantee: cfg.kafka.processing_guarantee,
        in_transaction: false,
        inflight: None,
        producer_stuck: None,
        changelog,
        side_outputs: None,
        dead_letter_watch: if cfg.dead_letters.enabled {
            Some((
                super::deadletters::DeadLetterPoller::new(
                    cfg,
                    &base,
                    super::deadletters::own_topics(cfg, topologies),
                    topologies
                        .iter()
                        .flat_map(|t| t.monitors.dead_letters.clone())
                        .collect(),
                )
                .context("creating the dead-letter watch")?,
                Duration::from_millis(cfg.dead_letters.interval_ms),
            ))
        } else {
            None
        },
        restore: signal,
        encoders: Arc::new(encoders),
        lag: super::lag::poller(cfg, &base, &all_inputs)
            .context("creating the lag poller")?
            .map(|p| (p, Duration::from_millis(cfg.lag.interval_ms))),
        registry_lookup: crate::registry::Lookup::new(cfg)?,
        upstream: {
            let mut c = StreamClock::new(cfg.engine.time, 0);
            c.idle_ms = cfg.engine.idle_timeout_ms as i64;
            c
        },
        last_marks: std::time::Instant::now(),
        sent_marks: Default::default(),
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
        until_end: opts
            .until_end
            .map(|targets| super::until_end::UntilEnd::new(targets, internal_topics.clone())),
        last_fired: 0,
        max_key_bytes: cfg.engine.max_key_bytes.min(usize::MAX as u64) as usize,
        state_dir: state_dir.clone(),
        time_bounds: crate::ingest::bounds::TimeBounds {
            max_skew_ms: cfg.engine.max_event_time_skew_ms.min(i64::MAX as u64) as i64,
            max_age_ms: match cfg.engine.max_event_age_ms {
                0 => max_ttl_ms.saturating_add(30 * 86_400_000),
                ms => ms.min(i64::MAX as u64) as i64,
            },
        },
        partition_checks: partition_checks(cfg, topologies, &partitions),
        max_read_ahead_ms: cfg.engine.max_read_ahead_ms as i64,
        paused: Default::default(),
        held: Default::default(),
        last_idle_check: std::time::Instant::now() - Duration::from_secs(10),
        timers_ran: std::time::Instant::now(),
        idle_check: None,
        record_metrics: Default::default(),
    })
}
