//! The engine: the loop that moves records from the consumer through ingest to the detectors and
//! outputs, dead-letters what cannot be read, and commits input offsets.
//!
//! Ordering: records of one partition are handled one after another, and a record's offset is
//! stored only once it is fully handled (processed, or its dead letter acknowledged). A transient
//! failure (registry down) holds the partition's position and retries with backoff; it never
//! dead-letters and never skips.

pub mod announce;
pub mod clock;
pub mod commit;
pub mod deadletters;
pub mod lag;
pub mod repartition;
pub mod setup;
pub mod sources;
pub mod workflows;

use crate::contracts::json::ViolationKind;
use crate::deadletter::{self, DeadLetter};
use crate::detectors::drift::{AvroSighting, DriftDetector, DriftOutcome};
use crate::ingest::{Event, RawRecord, Rejection};
use crate::kafka::PipelineConsumer;
use crate::observe::events::{
    ContractViolated, EventMapped, OffsetsCommitted, RecordConsumed, RegistryRecovered,
    RegistryUnavailable,
};
use crate::observe::health::Health;
use crate::observe::metrics::METRICS;
use crate::outputs::Encoders;
use crate::state::Store;
use futures::FutureExt;
use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::producer::FutureProducer;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// Records handled together at most (one state write, one wait for acknowledgements).
const MAX_BATCH: usize = 5_000;
use workflows::{Batch, WorkflowRunner};

/// Receives every event the engine maps (the detectors, in later stages; tests and the demo).
pub trait EventSink: Send + Sync {
    fn on_event(&mut self, event: &Event);
}

/// No detectors: events are counted and dropped.
pub struct Discard;

impl EventSink for Discard {
    fn on_event(&mut self, _event: &Event) {}
}

/// Builds source mappings from topologies (for a reload).
pub type SourceFactory =
    Box<dyn Fn(&[crate::topology::Topology]) -> anyhow::Result<sources::Sources> + Send + Sync>;

pub struct Engine {
    pub consumer: Arc<PipelineConsumer>,
    pub producer: FutureProducer,
    /// Ingest per input topic or topic pattern.
    pub sources: sources::Sources,
    /// Reloaded topologies, and how to build source mappings from them: a new mapping applies
    /// from the next record on (between micro-batches, so a batch is mapped by one mapping).
    pub reload: Option<(
        watch::Receiver<Arc<Vec<crate::topology::Topology>>>,
        SourceFactory,
    )>,
    /// Internal repartition topics the workflows read re-keyed events from.
    pub repartition_inputs: std::collections::HashSet<String>,
    /// Repartition topic -> the source topic it is fed from (exact topics only).
    pub repartition_feeds: std::collections::HashMap<String, String>,
    /// `outputs.dead_letter_suffix`.
    pub dead_letter_suffix: String,
    /// Exactly-once: the input offsets last committed, per partition (to commit the position
    /// past a transaction marker that follows them).
    pub committed_at: std::collections::HashMap<(String, i32), i64>,
    /// The internal topic drift outputs are claimed through, so one owner announces them once.
    pub announce_topic: String,
    /// Client settings and a template for creating a pattern source's dead-letter topic when
    /// it is first needed; None where topics cannot be created (the demo's mock cluster).
    pub topic_template: Option<(rdkafka::ClientConfig, crate::kafka::admin::TopicSpec)>,
    /// Topics known to exist.
    pub ensured_topics: std::collections::HashSet<String>,
    pub health: Arc<Health>,
    pub commit_interval: Duration,
    pub sink: Box<dyn EventSink>,
    pub drift: DriftDetector,
    pub store: Arc<Store>,
    pub guarantee: crate::config::Guarantee,
    /// A transaction is open (exactly-once).
    pub in_transaction: bool,
    /// The state changelog topic (exactly-once).
    pub changelog: Option<String>,
    /// Outputs of the side tasks (lag events, dead-letter alerts; `lag::run_periodic`), committed with the next
    /// timer tick's batch (in its transaction under exactly-once).
    pub side_outputs: Option<tokio::sync::mpsc::UnboundedReceiver<crate::outputs::Output>>,
    /// The dead-letter watch, with its interval; None when `dead_letters.enabled` is false.
    pub dead_letter_watch: Option<(deadletters::DeadLetterPoller, Duration)>,
    /// Set by the rebalance hook after restoring newly assigned partitions; a restore failure
    /// is fatal.
    pub restore: Arc<crate::kafka::consumer::RestoreSignal>,
    pub encoders: Arc<Encoders>,
    /// Consumer-lag polling (own and watched groups); None when `lag.enabled` is false.
    pub lag: Option<(lag::LagPoller, Duration)>,
    /// Subject/version lookup for drift events (None without a registry).
    pub registry_lookup: Option<crate::registry::Lookup>,
    /// The workflow state machines over the state store.
    pub workflows: WorkflowRunner,
    /// Streams that must not fall silent.
    pub freshness: crate::detectors::freshness::Freshness,
    /// Event-age thresholds and periodic age reports.
    pub age: crate::detectors::age::EventAge,
    pub timer_tick: Duration,
    pub last_idle_check: Instant,
    pub idle_check: Option<tokio::task::JoinHandle<(Vec<(String, i32)>, Vec<(String, i32)>)>>,
}

enum Outcome {
    Done,
    Shutdown,
    /// The state store failed: stop, without storing the offset.
    Fatal(String),
    /// A Kafka transaction failed and was aborted (a broker restart, a timeout): start over
    /// from the last commit with fresh clients, as a restarted process would.
    Restart(String),
}

/// Why [`Engine::run`] returned without error.
#[derive(Debug)]
pub enum Ended {
    /// Shutdown was requested; handled work is committed.
    Shutdown,
    /// The engine gave up on its clients after an aborted transaction; the caller builds a new
    /// engine, which resumes from the last commit (local state is never ahead of it).
    Restart(String),
}

/// The next reloaded topologies; pending forever without a reload channel (or once it closed).
async fn reloaded(
    reload: &mut Option<(
        watch::Receiver<Arc<Vec<crate::topology::Topology>>>,
        SourceFactory,
    )>,
) -> Option<Arc<Vec<crate::topology::Topology>>> {
    match reload {
        Some((rx, _)) => match rx.changed().await {
            Ok(()) => Some(rx.borrow_and_update().clone()),
            Err(_) => std::future::pending().await,
        },
        None => std::future::pending().await,
    }
}

impl Engine {
    /// Replaces the source mappings with those of `topologies`; on an error the running ones
    /// stay, and the error is logged.
    fn reload_sources(&mut self, topologies: &[crate::topology::Topology]) {
        let Some((_, factory)) = &self.reload else {
            return;
        };
        match factory(topologies) {
            Ok(new) => {
                self.sources = new;
                crate::observe::metrics::METRICS
                    .reloads
                    .with_label_values(&["ok"])
                    .inc();
                tracing::info!(
                    files = %topologies.iter().map(|t| t.file.display().to_string()).collect::<Vec<_>>().join(", "),
                    "source mappings reloaded; records from now on are mapped by them"
                );
            }
            Err(e) => {
                crate::observe::metrics::METRICS
                    .reloads
                    .with_label_values(&["failed"])
                    .inc();
                tracing::error!(error = %format!("{e:#}"), "reload refused; the running source mappings stay");
            }
        }
    }

    /// Runs until `shutdown` turns true, then commits what was handled and returns.
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) -> anyhow::Result<Ended> {
        let mut commit_tick = tokio::time::interval(self.commit_interval);
        commit_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut timer_tick = tokio::time::interval(self.timer_tick);
        timer_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut fatal = None;
        let mut restart = None;
        let consumer = self.consumer.clone();
        let exactly_once = self.guarantee == crate::config::Guarantee::ExactlyOnce;
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        if self.lag.is_some() || self.dead_letter_watch.is_some() {
            self.side_outputs = Some(rx);
        }
        let lag_task = self.lag.take().map(|(poller, interval)| {
            tokio::spawn(lag::run_periodic(
                "lag poller",
                poller,
                lag::poll_outputs,
                interval,
                tx.clone(),
                shutdown.clone(),
            ))
        });
        let dlq_task = self.dead_letter_watch.take().map(|(poller, interval)| {
            tokio::spawn(lag::run_periodic(
                "dead-letter watch",
                poller,
                deadletters::DeadLetterPoller::poll_once,
                interval,
                tx.clone(),
                shutdown.clone(),
            ))
        });
        drop(tx);
        loop {
            tokio::select! {
                biased;
                _ = shutdown.changed() => break,
                Some(topologies) = reloaded(&mut self.reload) => self.reload_sources(&topologies),
                _ = commit_tick.tick(), if !exactly_once => self.commit(CommitMode::Async),
                _ = timer_tick.tick(), if !self.workflows.is_empty() || !self.freshness.is_empty() || !self.age.is_empty() || self.side_outputs.is_some() => match self.fire_timers(&mut shutdown).await {
                    Outcome::Done => {}
                    Outcome::Shutdown => break,
                    Outcome::Fatal(e) => { fatal = Some(e); break }
                    Outcome::Restart(e) => match self.rewind(&e).await {
                        Ok(()) => {}
                        Err(why) => { restart = Some(format!("{e}; {why}")); break }
                    },
                },
                msg = consumer.recv() => match msg {
                    Ok(first) => {
                        // A micro-batch: what is already fetched, up to MAX_BATCH records, shares
                        // one state batch and one wait for the broker's acknowledgements.
                        // Under exactly-once a batch is a transaction, and collects records for up
                        // to the commit interval (a commit costs a round trip to the broker).
                        let started = Instant::now();
                        let collect_until = tokio::time::Instant::now() + if exactly_once { self.commit_interval } else { Duration::ZERO };
                        let mut msgs = vec![first];
                        while msgs.len() < MAX_BATCH {
                            let next = match consumer.recv().now_or_never() {
                                Some(m) => Some(m),
                                None if exactly_once => tokio::time::timeout_at(collect_until, consumer.recv()).await.ok(),
                                None => None,
                            };
                            match next {
                                Some(Ok(m)) => msgs.push(m),
                                Some(Err(e)) => crate::observe::events::KafkaClientError { kind: "consume", error: &e.to_string() }.emit(),
                                None => break,
                            }
                        }
                        // After a revoke, records already fetched may belong to partitions
                        // another instance now owns: they are dropped, not processed (their
                        // owner reads them from the committed offsets).
                        if consumer.context().revoked.swap(false, std::sync::atomic::Ordering::AcqRel) {
                            if let Ok(assigned) = consumer.assignment() {
                                msgs.retain(|m| assigned.find_partition(m.topic(), m.partition()).is_some());
                            }
                            if msgs.is_empty() {
                                continue;
                            }
                        }
                        if let Err(e) = self.take_restore() {
                            fatal = Some(e);
                            break;
                        }
                        self.sync_instance_cache();
                        let mut batch = Batch::default();
                        // The wall-clock monitors' state as of the last commit, for a rewind.
                        let before = exactly_once.then(|| (self.freshness.clone(), self.age.clone()));
                        let mut outcome = self.begin();
                        for m in &msgs {
                            if !matches!(outcome, Outcome::Done) {
                                break;
                            }
                            outcome = self.handle(m, &mut batch, &mut shutdown).await;
                        }
                        if matches!(outcome, Outcome::Done) {
                            let offsets = commit::next_offsets(&msgs);
                            outcome = self.commit_batch(batch, Some(offsets), &mut shutdown).await;
                        }
                        match outcome {
                            Outcome::Done if exactly_once => {}
                            Outcome::Done => {
                                for m in &msgs {
                                    if let Err(e) = consumer.store_offset_from_message(m) {
                                        crate::observe::events::KafkaClientError { kind: "offset_store", error: &e.to_string() }.emit();
                                    }
                                }
                            }
                            Outcome::Shutdown => break,
                            Outcome::Fatal(e) => { fatal = Some(e); break }
                            Outcome::Restart(e) => {
                                if let Some((freshness, age)) = before {
                                    (self.freshness, self.age) = (freshness, age);
                                }
                                match self.rewind(&e).await {
                                    Ok(()) => {}
                                    Err(why) => { restart = Some(format!("{e}; {why}")); break }
                                }
                            }
                        }
                        tracing::debug!(records = msgs.len(), handled_ms = started.elapsed().as_millis() as u64, "batch done");
                        METRICS.batch_handling.observe(started.elapsed().as_secs_f64());
                        METRICS.batch_records.observe(msgs.len() as f64);
                    }
                    Err(e) => crate::observe::events::KafkaClientError { kind: "consume", error: &e.to_string() }.emit(),
                },
            }
        }
        if !exactly_once {
            self.commit(CommitMode::Sync);
        }
        for task in [lag_task, dlq_task].into_iter().flatten() {
            // The side tasks end by themselves only on shutdown: an engine that stops for any
            // other reason ends them (waiting for them once hung a fatally failed engine).
            if restart.is_some() || fatal.is_some() {
                task.abort();
            }
            let _ = task.await;
        }
        if self.in_transaction {
            // Stopped mid-batch (shutdown while waiting on the registry or a dead letter): the
            // batch is aborted and read again on restart.
            let producer = self.producer.clone();
            let _ = tokio::task::spawn_blocking(move || {
                rdkafka::producer::Producer::abort_transaction(&producer, Duration::from_secs(30))
            })
            .await;
        }
        if let Err(e) = self.store.flush() {
            tracing::warn!(error = %e, "flushing the state store on stop failed; the next start restores what is missing from the changelog");
        }
        if restart.is_none() {
            tracing::info!("engine stopped; handled work committed");
        }
        match (fatal, restart) {
            (Some(e), _) => anyhow::bail!("the engine stopped: {e}"),
            (None, Some(e)) => Ok(Ended::Restart(e)),
            (None, None) => Ok(Ended::Shutdown),
        }
    }

    /// What the rebalance hook restored for newly assigned partitions: a restore failure is
    /// fatal; restored stream clocks are loaded. Called before a batch of records and before
    /// every timer tick, since a partition read to its end delivers no record and its restored
    /// deadlines must still fire (once, only a record loaded them, and a restore from an empty
    /// state dir with nothing left to read never fired its pending deadlines).
    fn take_restore(&mut self) -> Result<(), String> {
        if let Some(e) = self.restore.failed() {
            return Err(e);
        }
        if self.restore.take_restored() {
            self.workflows
                .restore_clocks(&self.store)
                .map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    /// Drops the workflows' in-memory view of committed state if the assignment moved since.
    fn sync_instance_cache(&mut self) {
        let rebalances = self
            .consumer
            .context()
            .rebalances
            .load(std::sync::atomic::Ordering::Acquire);
        self.workflows.sync_cache(rebalances);
    }

    /// After an aborted transaction (a rebalance fenced its offsets, a broker went away): read
    /// again from the last commit, with the in-memory state as of it. Local state was never
    /// written past the commit, so it needs nothing. When this fails, the caller rebuilds the
    /// engine instead.
    async fn rewind(&mut self, why: &str) -> Result<(), String> {
        tracing::warn!(reason = %why, "transaction aborted; reading again from the last commit");
        // A producer whose abort failed may be in a fatal state (a broker restart mid-commit:
        // INVALID_TXN_STATE); it can never begin another transaction, so the engine needs new
        // clients (the caller rebuilds it; the new producer's init_transactions fences the old).
        if let Some((code, reason)) =
            rdkafka::producer::Producer::client(&self.producer).fatal_error()
        {
            return Err(format!(
                "the transactional producer failed fatally ({code:?}: {reason}); new clients are needed"
            ));
        }
        let consumer = self.consumer.clone();
        let positions = tokio::task::spawn_blocking(move || {
            let assigned = consumer.assignment().map_err(|e| e.to_string())?;
            if assigned.count() == 0 {
                return Ok(assigned);
            }
            let committed = consumer
                .committed_offsets(assigned, Duration::from_secs(30))
                .map_err(|e| format!("reading the committed offsets: {e}"))?;
            let mut seek = rdkafka::TopicPartitionList::new();
            for e in committed.elements() {
                let at = match e.offset() {
                    rdkafka::Offset::Offset(o) => rdkafka::Offset::Offset(o),
                    _ => rdkafka::Offset::Beginning,
                };
                seek.add_partition_offset(e.topic(), e.partition(), at)
                    .map_err(|e| e.to_string())?;
            }
            let done = consumer
                .seek_partitions(seek, Duration::from_secs(30))
                .map_err(|e| format!("seeking to the committed offsets: {e}"))?;
            if let Some(e) = done.elements().iter().find_map(|e| e.error().err()) {
                return Err(format!("seeking to the committed offsets: {e}"));
            }
            Ok(done)
        })
        .await
        .map_err(|e| e.to_string())??;
        self.workflows.clock.forget();
        self.workflows.clear_cache();
        self.workflows
            .restore_clocks(&self.store)
            .map_err(|e| e.to_string())?;
        self.drift = DriftDetector::restore(
            &crate::state::drift_knowledge(&self.store).map_err(|e| e.to_string())?,
        );
        tracing::info!(partitions = positions.count(), "rewound to the last commit");
        Ok(())
    }

    fn commit(&self, mode: CommitMode) {
        match self.consumer.commit_consumer_state(mode) {
            Ok(()) => {
                if matches!(mode, CommitMode::Sync) {
                    OffsetsCommitted { result: Ok(0) }.emit()
                }
            }
            Err(e) if e.to_string().contains("No offset stored") => {}
            Err(e) => OffsetsCommitted {
                result: Err(&e.to_string()),
            }
            .emit(),
        }
    }

    /// Handles one record into `batch`; dead letters and drift events are sent at once (they
    /// are rare), workflow outputs and state wait for the batch.
    async fn handle(
        &mut self,
        msg: &BorrowedMessage<'_>,
        batch: &mut Batch,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Outcome {
        let topic = msg.topic();
        if self.repartition_inputs.contains(topic) {
            return self.handle_rekeyed(msg, batch, shutdown).await;
        }
        if topic == self.announce_topic {
            return self.handle_claim(msg, batch, shutdown).await;
        }
        let Some(source) = self.sources.get(topic) else {
            tracing::warn!(
                topic,
                partition = msg.partition(),
                offset = msg.offset(),
                "record from a topic no source claims (an output or dead-letter topic matched by a pattern); skipped"
            );
            return Outcome::Done;
        };
        RecordConsumed { topic }.emit();
        let headers = crate::ingest::borrowed_headers(msg);
        let rec = RawRecord::of(msg, &headers);
        let mut backoff = Duration::from_millis(200);
        let mut outage = false;
        let decoded = loop {
            match source.decoder.decode(rec.value).await {
                Ok(d) => break d,
                Err(Rejection::Bad { class, message }) => {
                    return self
                        .dead_letter(topic, &rec, &headers, class, message, shutdown)
                        .await;
                }
                Err(Rejection::Transient { message }) => {
                    outage = true;
                    RegistryUnavailable {
                        topic,
                        partition: rec.partition,
                        offset: rec.offset,
                        error: &message,
                        retry_in_ms: backoff.as_millis() as u64,
                    }
                    .emit();
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = shutdown.changed() => return Outcome::Shutdown,
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(10));
                }
            }
        };
        if outage {
            RegistryRecovered.emit();
        }

        // A record that cannot be mapped is poison: dead-lettered, not counted as drift.
        let event = match source.mapper.map(&decoded.doc, &rec) {
            Ok(event) => event,
            Err(Rejection::Bad { class, message }) => {
                return self
                    .dead_letter(topic, &rec, &headers, class, message, shutdown)
                    .await;
            }
            Err(Rejection::Transient { .. }) => unreachable!("mapping does no I/O"),
        };

        // Contract and drift: at most one drift event per new writer schema or violation kind.
        let now_ms = chrono::Utc::now().timestamp_millis();
        let outcome = match (&decoded.writer, &source.contract) {
            (Some(writer), contract) => {
                if self.drift.knows(topic, writer.id) {
                    DriftOutcome::default()
                } else {
                    let previous = match self.drift.last_id(topic) {
                        Some(id) => source.decoder.schema(id).await,
                        None => None,
                    };
                    let registered = match &self.registry_lookup {
                        Some(l) => l.subject_version(writer.id, topic).await,
                        None => None,
                    };
                    self.drift.observe_avro(&AvroSighting {
                        source: &source.name,
                        topic,
                        schema_id: writer.id,
                        writer: &writer.parsed,
                        subject: registered
                            .as_ref()
                            .map(|r| r.0.clone())
                            .or_else(|| writer.subject.clone()),
                        version: registered.as_ref().map(|r| r.1).or(writer.version),
                        previous: previous.as_ref().map(|p| &p.parsed),
                        contract: contract.as_ref(),
                        now_ms,
                    })
                }
            }
            (None, Some(contract)) => {
                let violations = crate::contracts::json::check(&decoded.doc, &contract.schema);
                for v in &violations {
                    let field = if v.kind == ViolationKind::UnknownField {
                        "_unknown_"
                    } else {
                        v.field.as_str()
                    };
                    ContractViolated {
                        topic,
                        field,
                        kind: v.kind.as_str(),
                    }
                    .emit();
                }
                self.drift
                    .observe_json(&source.name, topic, contract, &violations, now_ms)
            }
            (None, None) => DriftOutcome::default(),
        };
        // Drift events are claimed through the announce topic, whose owner emits each once;
        // the claim and the knowledge behind it commit with the batch.
        batch.outputs.extend(announce::claim(
            &self.announce_topic,
            topic,
            outcome.outputs,
        ));
        batch
            .extra_ops
            .extend(outcome.remember.into_iter().map(|(k, v)| {
                crate::state::Op::Put(
                    crate::state::CF_SCHEMAS,
                    crate::state::knowledge_key(rec.partition, &k),
                    v,
                )
            }));

        EventMapped {
            topic,
            source: &event.source,
            event_type: &event.event_type,
            event_time_ms: event.event_time_ms,
            record_time_ms: rec.timestamp_ms,
            now_ms,
        }
        .emit();
        self.sink.on_event(&event);
        self.freshness.on_event(&event, now_ms, &mut batch.outputs);
        self.age.on_event(&event, now_ms, &mut batch.outputs);
        if let Some(t) = &source.repartition_topic {
            // Not keyed by the correlation key: the workflows get it through its repartition
            // topic, on the partition its key belongs to.
            batch.outputs.push(crate::outputs::Output::Rekeyed {
                topic: t.clone(),
                key: event.key.clone(),
                value: repartition::encode(&event),
            });
            return Outcome::Done;
        }
        self.feed_workflows(batch, topic, rec.partition, rec.offset, &event)
    }

    /// Hands an event read from `topic`/`partition` to the workflow state machines.
    fn feed_workflows(
        &mut self,
        batch: &mut Batch,
        topic: &str,
        partition: i32,
        offset: i64,
        event: &Event,
    ) -> Outcome {
        if self.workflows.is_empty() {
            return Outcome::Done;
        }
        let wall = chrono::Utc::now().timestamp_millis();
        if let Err(e) = self
            .workflows
            .on_event(&self.store, batch, topic, partition, event, wall)
        {
            // The store is local disk: failing here is not the record's fault and not transient.
            tracing::error!(error = %e, topic, partition, offset, "state store failed; stopping");
            return Outcome::Fatal(e.to_string());
        }
        Outcome::Done
    }

    /// A re-keyed event from a repartition topic: decoded, ingest already happened upstream.
    async fn handle_rekeyed(
        &mut self,
        msg: &BorrowedMessage<'_>,
        batch: &mut Batch,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Outcome {
        let topic = msg.topic();
        RecordConsumed { topic }.emit();
        match repartition::decode(msg.payload().unwrap_or_default()) {
            Ok(event) => self.feed_workflows(batch, topic, msg.partition(), msg.offset(), &event),
            Err(e) => {
                self.internal_dead_letter(msg, format!("not a re-keyed event: {e}"), shutdown)
                    .await
            }
        }
    }

    /// A claim from the announce topic: its outputs are emitted unless already announced.
    async fn handle_claim(
        &mut self,
        msg: &BorrowedMessage<'_>,
        batch: &mut Batch,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Outcome {
        RecordConsumed { topic: msg.topic() }.emit();
        let outputs = match announce::decode(msg.payload().unwrap_or_default()) {
            Ok(o) => o,
            Err(e) => {
                return self
                    .internal_dead_letter(msg, format!("not a claim: {e}"), shutdown)
                    .await
            }
        };
        for out in outputs {
            let k = announce::announced_key(msg.partition(), &out);
            let staged = batch.extra_ops.iter().any(
                |op| matches!(op, crate::state::Op::Put(cf, key, _) if *cf == crate::state::CF_META && *key == k),
            );
            let known = match self.store.get(crate::state::CF_META, &k) {
                Ok(v) => v.is_some(),
                Err(e) => return Outcome::Fatal(e.to_string()),
            };
            if !staged && !known {
                batch.extra_ops.push(announce::remember(k));
                batch.outputs.push(out);
            }
        }
        Outcome::Done
    }

    /// A record on an internal topic that Sightline did not write (only it writes there):
    /// dead-lettered to `<topic><suffix>`, so nothing is lost and nothing stalls.
    async fn internal_dead_letter(
        &mut self,
        msg: &BorrowedMessage<'_>,
        error: String,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Outcome {
        let topic = msg.topic();
        let headers = crate::ingest::borrowed_headers(msg);
        let rec = RawRecord::of(msg, &headers);
        let dlq = format!("{topic}{}", self.dead_letter_suffix);
        self.dead_letter_to(
            dlq,
            &rec,
            &headers,
            crate::deadletter::ErrorClass::InvalidJson,
            format!("{error} (only Sightline writes its internal topic {topic})"),
            shutdown,
        )
        .await
    }

    /// Assigned partitions that have delivered nothing hold the stream clock back, unless they
    /// have nothing to read: empty, or committed up to their end. The broker is asked on a
    /// blocking thread (the calls wait for answers), at most once a second and only while some
    /// partition is waiting; answers are applied at the next tick.
    fn mark_idle_partitions(&mut self) {
        if let Some(check) = &self.idle_check {
            if !check.is_finished() {
                return;
            }
            if let Some(Ok((idle, backlogged))) =
                self.idle_check.take().and_then(|h| h.now_or_never())
            {
                for (t, p) in idle {
                    self.workflows.idle(&t, p);
                }
                for (t, p) in backlogged {
                    self.workflows.backlogged(&t, p);
                }
            }
        }
        let waiting = self.workflows.waiting();
        if waiting.is_empty() || self.last_idle_check.elapsed() < Duration::from_secs(1) {
            return;
        }
        self.last_idle_check = Instant::now();
        let consumer = self.consumer.clone();
        let feeds = self.repartition_feeds.clone();
        self.idle_check = Some(tokio::task::spawn_blocking(move || {
            let mut tpl = rdkafka::TopicPartitionList::new();
            for (t, p) in &waiting {
                tpl.add_partition(t, *p);
            }
            let committed = consumer.committed_offsets(tpl, Duration::from_secs(2)).ok();
            let (mut idle, mut backlogged) = (Vec::new(), Vec::new());
            // An empty repartition partition is not idle while the group has not read its
            // source to the end (on any instance): re-keyed events are still on their way.
            let mut source_behind: std::collections::HashMap<String, bool> = Default::default();
            for (t, p) in waiting {
                if let Some(source) = feeds.get(&t) {
                    let behind = *source_behind
                        .entry(source.clone())
                        .or_insert_with(|| group_behind(&consumer, source));
                    if behind {
                        backlogged.push((t, p));
                        continue;
                    }
                }
                let Ok((low, high)) = consumer.fetch_watermarks(&t, p, Duration::from_secs(2))
                else {
                    continue;
                };
                let committed_to_end = committed
                    .as_ref()
                    .and_then(|l| l.find_partition(&t, p))
                    .and_then(|e| e.offset().to_raw())
                    .is_some_and(|o| o >= high);
                if high <= low || committed_to_end {
                    idle.push((t, p));
                } else {
                    backlogged.push((t, p));
                }
            }
            (idle, backlogged)
        }));
    }

    /// Exactly-once: partitions whose position moved past their last commit without a record
    /// (a transaction marker on a transactional input, such as a repartition topic). Committing
    /// the position keeps the group's lag at 0 once everything is read.
    fn trailing_positions(&self) -> Option<rdkafka::TopicPartitionList> {
        if self.guarantee != crate::config::Guarantee::ExactlyOnce || self.committed_at.is_empty() {
            return None;
        }
        let positions = self.consumer.position().ok()?;
        let mut tpl = rdkafka::TopicPartitionList::new();
        for e in positions.elements() {
            let (Some(pos), Some(&at)) = (
                e.offset().to_raw(),
                self.committed_at
                    .get(&(e.topic().to_string(), e.partition())),
            ) else {
                continue;
            };
            if pos > at {
                let _ = tpl.add_partition_offset(
                    e.topic(),
                    e.partition(),
                    rdkafka::Offset::Offset(pos),
                );
            }
        }
        (tpl.count() > 0).then_some(tpl)
    }

    /// Whether `topic`'s partition clocks take part in the stream clock: not the announce
    /// topic, nor a source re-keyed through a repartition topic (that topic takes part instead).
    fn feeds_clock(&self, topic: &str) -> bool {
        topic != self.announce_topic
            && self
                .sources
                .get(topic)
                .is_none_or(|s| s.repartition_topic.is_none())
    }

    /// Fires the timers that are due on the stream clock.
    async fn fire_timers(&mut self, shutdown: &mut watch::Receiver<bool>) -> Outcome {
        if let Err(e) = self.take_restore() {
            return Outcome::Fatal(e);
        }
        for (kind, bytes) in self.store.memory() {
            crate::observe::metrics::METRICS
                .state_memory
                .with_label_values(&[kind])
                .set(bytes as i64);
        }
        if let Some(tpl) = self.trailing_positions() {
            match self
                .commit_batch(Batch::default(), Some(tpl), shutdown)
                .await
            {
                Outcome::Done => {}
                other => return other,
            }
        }
        if let Ok(tpl) = self.consumer.assignment() {
            // Topics whose events reach the workflows on the partition they were read from.
            let assignment: Vec<(String, i32)> = tpl
                .elements()
                .iter()
                .filter(|e| self.feeds_clock(e.topic()))
                .map(|e| (e.topic().to_string(), e.partition()))
                .collect();
            let now = chrono::Utc::now().timestamp_millis();
            if !assignment.is_empty() {
                self.freshness.arm(now);
            }
            self.workflows.assigned(&assignment, now);
        }
        self.mark_idle_partitions();
        self.sync_instance_cache();
        let mut first = true;
        loop {
            let mut batch = Batch::default();
            let wall = chrono::Utc::now().timestamp_millis();
            if std::mem::take(&mut first) {
                self.freshness.tick(wall, &mut batch.outputs);
                self.age.tick(wall, &mut batch.outputs);
                if let Some(rx) = &mut self.side_outputs {
                    while let Ok(out) = rx.try_recv() {
                        batch.outputs.push(out);
                    }
                }
            }
            let fired = match self
                .workflows
                .tick(&self.store, &mut batch, wall, MAX_BATCH)
            {
                Ok(n) => n,
                Err(e) => return Outcome::Fatal(e.to_string()),
            };
            crate::observe::events::TimersFired { count: fired }.emit();
            if batch.is_empty() && batch.outputs.is_empty() {
                return Outcome::Done;
            }
            match self.commit_batch(batch, None, shutdown).await {
                Outcome::Done if fired == MAX_BATCH => continue,
                other => return other,
            }
        }
    }

    async fn dead_letter(
        &mut self,
        topic: &str,
        rec: &RawRecord<'_>,
        headers: &[(&str, Option<&[u8]>)],
        class: crate::deadletter::ErrorClass,
        message: String,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Outcome {
        let source = self
            .sources
            .get(topic)
            .expect("records come from declared sources");
        let dead_letter_topic = source.dead_letter_topic(topic);
        self.dead_letter_to(dead_letter_topic, rec, headers, class, message, shutdown)
            .await
    }

    async fn dead_letter_to(
        &mut self,
        dead_letter_topic: String,
        rec: &RawRecord<'_>,
        headers: &[(&str, Option<&[u8]>)],
        class: crate::deadletter::ErrorClass,
        message: String,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Outcome {
        let topic = rec.topic;
        if !self.ensured_topics.contains(&dead_letter_topic) {
            if let Some((base, template)) = &self.topic_template {
                let spec = crate::kafka::admin::TopicSpec {
                    name: dead_letter_topic.clone(),
                    ..template.clone()
                };
                loop {
                    match crate::kafka::admin::ensure_topics(base, std::slice::from_ref(&spec))
                        .await
                    {
                        Ok(_) => break,
                        Err(e) => {
                            crate::observe::events::KafkaClientError {
                                kind: "create_topic",
                                error: &format!("{e:#}"),
                            }
                            .emit();
                            tokio::select! {
                                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                                _ = shutdown.changed() => return Outcome::Shutdown,
                            }
                        }
                    }
                }
            }
            self.ensured_topics.insert(dead_letter_topic.clone());
        }
        let dl = DeadLetter {
            dead_letter_topic,
            key: rec.key.map(<[u8]>::to_vec),
            value: rec.value.map(<[u8]>::to_vec),
            original_headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.map(<[u8]>::to_vec)))
                .collect(),
            topic: topic.to_string(),
            partition: rec.partition,
            offset: rec.offset,
            timestamp_ms: rec.timestamp_ms,
            class,
            message,
            failed_at_ms: chrono::Utc::now().timestamp_millis(),
        };
        if deadletter::send::send(&self.producer, &dl, shutdown).await {
            Outcome::Done
        } else {
            Outcome::Shutdown
        }
    }
}

/// Whether the consumer's group has not committed some partition of `topic` to its end (or
/// the broker could not say: then it counts as behind, which only delays deadlines).
fn group_behind(consumer: &PipelineConsumer, topic: &str) -> bool {
    let Ok(md) = consumer.fetch_metadata(Some(topic), Duration::from_secs(2)) else {
        return true;
    };
    let Some(t) = md.topics().first() else {
        return true;
    };
    let mut tpl = rdkafka::TopicPartitionList::new();
    for p in t.partitions() {
        tpl.add_partition(topic, p.id());
    }
    let Ok(committed) = consumer.committed_offsets(tpl, Duration::from_secs(2)) else {
        return true;
    };
    t.partitions().iter().any(|p| {
        let Ok((low, high)) = consumer.fetch_watermarks(topic, p.id(), Duration::from_secs(2))
        else {
            return true;
        };
        let at = committed
            .find_partition(topic, p.id())
            .and_then(|e| e.offset().to_raw())
            .unwrap_or(low);
        at < high
    })
}
