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
pub mod deliver;
pub mod errors;
pub mod lag;
pub mod repartition;
pub mod setup;
pub mod sources;
pub mod until_end;
pub mod workflows;

use crate::contracts::json::ViolationKind;
use crate::deadletter::DeadLetter;
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
/// How long an input must be silent, while others are paused for read-ahead, before the broker
/// is asked whether it is read to its end.
const PAUSED_DRAIN_CHECK_MS: i64 = 1_000;
/// How long timers may wait for a committing batch before a tick waits for the commit.
const TIMERS_MAX_WAIT: Duration = Duration::from_millis(200);
/// How often the clocks of re-keyed source partitions are sent to every repartition partition.
const MARKS_INTERVAL: Duration = Duration::from_secs(1);
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
    pub repartition_feeds: std::collections::HashMap<String, repartition::Feed>,
    /// The clocks of the source partitions this instance re-keys (repartition.rs): carried in
    /// every re-keyed record and in the markers, never part of a workflow's clock directly.
    pub upstream: clock::StreamClock,
    /// When markers were last sent.
    pub last_marks: Instant,
    /// What the markers last said of each owned source partition (a clock, or idle): a marker
    /// goes out only when that changes, since readers project a clock on with the wall clock
    /// themselves.
    pub sent_marks: std::collections::HashMap<(String, i32), Option<i64>>,
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
    /// The batch whose transaction is committing while the next one is handled (exactly-once).
    pub(crate) inflight: Option<commit::InFlight>,
    /// Why the transactional producer was given up on (a call that never returned): the
    /// engine needs new clients.
    pub producer_stuck: Option<String>,
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
    /// `engine.max_key_bytes`.
    pub max_key_bytes: usize,
    /// `state.dir`, resolved (marked corrupt when a read finds it so).
    pub state_dir: std::path::PathBuf,
    /// The event times a record may carry (ingest/bounds.rs).
    pub time_bounds: crate::ingest::bounds::TimeBounds,
    /// Per keyed source topic, whether its records sit where its partitioner puts their keys.
    pub partition_checks:
        std::collections::HashMap<String, crate::detectors::partitioning::PartitionCheck>,
    /// `engine.max_read_ahead_ms`: inputs further ahead of their partition's slowest input are
    /// paused (0: never).
    pub max_read_ahead_ms: i64,
    /// Input partitions paused for running ahead.
    pub paused: std::collections::HashSet<(String, i32)>,
    /// Input partitions waiting on the registry: when to try again, and the next backoff.
    pub held: std::collections::HashMap<(String, i32), (Instant, Duration)>,
    /// `run --until-end`: where the input ends; None when running live.
    pub until_end: Option<until_end::UntilEnd>,
    /// Timers fired by the last `fire_timers`.
    pub last_fired: usize,
    pub last_idle_check: Instant,
    /// When timers were last looked for.
    pub timers_ran: Instant,
    pub idle_check: Option<tokio::task::JoinHandle<IdleCheck>>,
    /// The per-record metrics' handles, resolved once per label set.
    pub record_metrics: crate::observe::events::RecordHandles,
}

/// A waiting input, and the topic-partitions that must be read to their end for it to have
/// nothing left to deliver.
type WaitingCheck = ((String, i32), Vec<(String, i32)>);

/// What an idle check learnt: inputs idle, backlogged, and drained (idle_check).
type IdleCheck = (Vec<(String, i32)>, Vec<(String, i32)>, Vec<(String, i32)>);

enum Outcome {
    Done,
    /// The record cannot be handled now (the registry is down, rate limiting, refusing
    /// credentials): its partition waits from this record on, the rest of the batch goes on.
    Hold {
        why: String,
        status: String,
    },
    Shutdown,
    /// Stop for good (the state store failed, the producer is fenced or unusable, a restore
    /// failed), without storing the offset.
    Fatal(errors::Stop),
    /// A Kafka transaction failed and was aborted (a broker restart, a timeout): start over
    /// from the last commit with fresh clients, as a restarted process would.
    Restart(String),
    /// The state store is corrupt: the engine is rebuilt, which moves the store aside and
    /// restores it from the changelog.
    Rebuild(String),
}

/// Why [`Engine::run`] returned without error.
#[derive(Debug)]
pub enum Ended {
    /// Shutdown was requested; handled work is committed.
    Shutdown,
    /// The engine gave up on its clients after an aborted transaction; the caller builds a new
    /// engine, which resumes from the last commit (local state is never ahead of it).
    Restart(String),
    /// `--until-end`: the input was read to its end, every deadline due by the final watermark
    /// fired, and all is committed. Carries the summary to print.
    InputEnded(String),
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
        let mut ended = None;
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
                _ = timer_tick.tick(), if !self.workflows.is_empty() || !self.freshness.is_empty() || !self.age.is_empty() || self.side_outputs.is_some() || self.until_end.is_some() => match self.tick(&mut shutdown).await {
                    Outcome::Done if self.input_ended() => match self.finish_input(&mut shutdown).await {
                        Outcome::Done => {
                            let u = self.until_end.as_ref().expect("until-end");
                            ended = Some(until_end::summary(&u.targets, self.workflows.clock.finished_at(), u.started.elapsed().as_secs_f64()));
                            break;
                        }
                        Outcome::Shutdown => break,
                        Outcome::Fatal(e) => { fatal = Some(e); break }
                            Outcome::Rebuild(e) => { restart = Some(e); break }
                            // Only a record waits on the registry; a tick or a finished batch never does.
                            Outcome::Hold { .. } => {}
                        Outcome::Restart(e) => match self.rewind(&e).await {
                            Ok(()) => {}
                            Err(why) => { restart = Some(format!("{e}; {why}")); break }
                        },
                    },
                    Outcome::Done => {}
                    Outcome::Shutdown => break,
                    Outcome::Fatal(e) => { fatal = Some(e); break }
                            Outcome::Rebuild(e) => { restart = Some(e); break }
                            // Only a record waits on the registry; a tick or a finished batch never does.
                            Outcome::Hold { .. } => {}
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
                        // The assignment moved: the batch still committing is finished before
                        // anything restored or cached is looked at again.
                        let rebalances = consumer.context().rebalances.load(std::sync::atomic::Ordering::Acquire);
                        let mut outcome = if self.workflows.cache_stale(rebalances) {
                            self.finish_commit().await
                        } else {
                            Outcome::Done
                        };
                        // A failed commit of the previous batch restored the monitors as of
                        // before it; this batch's snapshot must not overwrite them.
                        let mut before = None;
                        if matches!(outcome, Outcome::Done) {
                            if let Err(e) = self.take_restore() {
                                fatal = Some(e);
                                break;
                            }
                            self.sync_instance_cache();
                            // The wall-clock monitors' state before this batch, for a rewind.
                            before = exactly_once.then(|| (self.freshness.clone(), self.age.clone()));
                        }
                        let collected_ms = started.elapsed().as_millis() as u64;
                        let mut batch = Batch::default();
                        // Partitions that wait on the registry from this record on: only their
                        // own records wait, the others go on.
                        let mut holding: std::collections::HashMap<(String, i32), i64> = Default::default();
                        let mut handled_ms = 0;
                        // The wall clock, read once for the batch.
                        let now_ms = chrono::Utc::now().timestamp_millis();
                        let held = |holding: &std::collections::HashMap<(String, i32), i64>, m: &BorrowedMessage<'_>| {
                            !holding.is_empty() && holding.get(&(m.topic().to_string(), m.partition())).is_some_and(|&at| m.offset() >= at)
                        };
                        for m in &msgs {
                            if !matches!(outcome, Outcome::Done) {
                                break;
                            }
                            if held(&holding, m) {
                                continue;
                            }
                            outcome = match self.handle(m, now_ms, &mut batch, &mut shutdown).await {
                                Outcome::Hold { why, status } => {
                                    let tp = (m.topic().to_string(), m.partition());
                                    self.registry_wait(&tp, m.offset(), &why, &status);
                                    holding.insert(tp, m.offset());
                                    Outcome::Done
                                }
                                other => other,
                            };
                        }
                        if matches!(outcome, Outcome::Done) {
                            let offsets = commit::next_offsets(msgs.iter().filter(|m| !held(&holding, m)));
                            handled_ms = started.elapsed().as_millis() as u64;
                            outcome = if exactly_once {
                                // Pipelined: the previous batch's transaction committed while
                                // this one was handled; this one commits while the next is.
                                match self.finish_commit().await {
                                    Outcome::Done => self.start_commit(batch, Some(offsets), before.take()).await,
                                    other => {
                                        before = None;
                                        other
                                    }
                                }
                            } else {
                                self.commit_batch(batch, Some(offsets), &mut shutdown).await
                            };
                        }
                        if matches!(outcome, Outcome::Done) {
                            self.hold_partitions(&holding);
                        } else if !holding.is_empty() {
                            // The batch goes back to the last commit anyway.
                            self.release_held();
                        }
                        match outcome {
                            Outcome::Done if exactly_once => {}
                            Outcome::Done => {
                                for m in msgs.iter().filter(|m| !held(&holding, m)) {
                                    if let Err(e) = consumer.store_offset_from_message(m) {
                                        crate::observe::events::KafkaClientError { kind: "offset_store", error: &e.to_string() }.emit();
                                    }
                                }
                            }
                            Outcome::Shutdown => break,
                            Outcome::Fatal(e) => { fatal = Some(e); break }
                            Outcome::Rebuild(e) => { restart = Some(e); break }
                            // Only a record waits on the registry; a tick or a finished batch never does.
                            Outcome::Hold { .. } => {}
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
                        tracing::debug!(records = msgs.len(), collected_ms, handled_ms, done_ms = started.elapsed().as_millis() as u64, "batch done");
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
            if restart.is_some() || fatal.is_some() || ended.is_some() {
                task.abort();
            }
            let _ = task.await;
        }
        if self.inflight.is_some() {
            if fatal.is_none() && restart.is_none() {
                // A whole batch: committed, not read again.
                let _ = self.finish_commit().await;
            } else {
                // Left to its task: the next producer's init_transactions fences it.
                self.inflight = None;
            }
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
        match (fatal, restart, ended) {
            (Some(e), _, _) => anyhow::bail!("the engine stopped: {e}"),
            (None, Some(e), _) => Ok(Ended::Restart(e)),
            (None, None, Some(summary)) => Ok(Ended::InputEnded(summary)),
            (None, None, None) => Ok(Ended::Shutdown),
        }
    }

    /// `--until-end`: whether the group has committed every input to the end offsets seen at
    /// start (asked of the broker at most once a second).
    fn input_ended(&mut self) -> bool {
        let consumer = self.consumer.clone();
        self.until_end.as_mut().is_some_and(|u| u.poll(&consumer))
    }

    /// The input has ended: the clock moves to the newest event time seen (minus the allowed
    /// lateness), and timers fire (and commit) until none is left due.
    async fn finish_input(&mut self, shutdown: &mut watch::Receiver<bool>) -> Outcome {
        let at = self.workflows.clock.finish();
        tracing::info!(
            watermark_ms = at,
            "input read to its end; firing every deadline due by the newest event time seen"
        );
        loop {
            match self.fire_timers(shutdown).await {
                Outcome::Done if self.last_fired == 0 => return Outcome::Done,
                Outcome::Done => {}
                other => return other,
            }
        }
    }

    /// What the rebalance hook restored for newly assigned partitions: a restore failure is
    /// fatal; restored stream clocks are loaded. Called before a batch of records and before
    /// every timer tick, since a partition read to its end delivers no record and its restored
    /// deadlines must still fire (once, only a record loaded them, and a restore from an empty
    /// state dir with nothing left to read never fired its pending deadlines).
    fn take_restore(&mut self) -> Result<(), errors::Stop> {
        if let Some(e) = self.restore.failed() {
            return Err(errors::Stop::Restore(e));
        }
        if self.restore.take_restored() {
            self.workflows.restore_clocks(&self.store)?;
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
        // A batch still committing ends first (committed or aborted), so the offsets read
        // below are the last commit's.
        let _ = self.finish_commit().await;
        // A producer whose abort failed may be in a fatal state (a broker restart mid-commit:
        // INVALID_TXN_STATE); it can never begin another transaction, so the engine needs new
        // clients (the caller rebuilds it; the new producer's init_transactions fences the old).
        if let Some(why) = &self.producer_stuck {
            return Err(format!("{why}; new clients are needed"));
        }
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
        // The re-keyed sources' clocks may include records read after the commit: they start
        // over (their partitions hold until they deliver again), so no marker runs ahead.
        let mut upstream = clock::StreamClock::new(self.upstream.mode, 0);
        upstream.idle_ms = self.upstream.idle_ms;
        self.upstream = upstream;
        self.sent_marks.clear();
        self.release_held();
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
            Err(e) if crate::kafka::offsets::nothing_to_commit(&e) => {}
            Err(e) => OffsetsCommitted {
                result: Err(&e.to_string()),
            }
            .emit(),
        }
    }

    /// Handles one record into `batch`, at wall time `now_ms` (read once per batch): its
    /// outputs, dead letters and state are staged there and commit with the batch.
    async fn handle(
        &mut self,
        msg: &BorrowedMessage<'_>,
        now_ms: i64,
        batch: &mut Batch,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Outcome {
        let topic = msg.topic();
        if self.repartition_inputs.contains(topic) {
            return self.handle_rekeyed(msg, now_ms, batch, shutdown).await;
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
        RecordConsumed { topic }.emit(&mut self.record_metrics);
        let headers = crate::ingest::borrowed_headers(msg);
        let rec = RawRecord::of(msg, &headers);
        let decoded = match source.read(&rec).await {
            Ok(d) => d,
            Err(Rejection::Bad { class, message }) => {
                return self
                    .dead_letter(topic, &rec, &headers, class, message, batch, shutdown)
                    .await;
            }
            Err(Rejection::Transient { message, status }) => {
                return Outcome::Hold {
                    why: message,
                    status,
                }
            }
        };
        if self
            .held
            .remove(&(topic.to_string(), rec.partition))
            .is_some()
            && self.held.is_empty()
        {
            RegistryRecovered.emit();
        }

        // A record that cannot be mapped is poison: dead-lettered, not counted as drift.
        let event = match source.mapper.map_fields(&decoded.fields, &rec) {
            Ok(event) => event,
            Err(Rejection::Bad { class, mut message }) => {
                // A writer schema of another subject explains a missing field: say so.
                if let (Some(writer), Some(lookup)) = (&decoded.writer, &self.registry_lookup) {
                    let subject = format!("{topic}-value");
                    if let Some((other, version)) = lookup.subject_version(writer.id, topic).await {
                        if other != subject {
                            message.push_str(&format!(
                                " (the record's schema id {} is registered under subject `{other}` (version {version}), not `{subject}`: its producer may be writing another topic's schema)",
                                writer.id
                            ));
                        }
                    }
                }
                return self
                    .dead_letter(topic, &rec, &headers, class, message, batch, shutdown)
                    .await;
            }
            Err(Rejection::Transient { .. }) => unreachable!("mapping does no I/O"),
        };

        // Contract and drift: at most one drift event per new writer schema or violation kind.
        // A mapped event can still be bad input: a key too long to copy into state and every
        // alert, or an absurd event time, which would move the clock for good.
        if let Some((class, why)) = self.out_of_bounds(&event, rec.timestamp_ms, now_ms) {
            return self
                .dead_letter(topic, &rec, &headers, class, why, batch, shutdown)
                .await;
        }
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
                let doc = decoded
                    .doc
                    .as_ref()
                    .expect("a JSON contract reads the document");
                let violations = crate::contracts::json::check(doc, &contract.schema);
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
        batch.extra_ops.extend(outcome.remember.iter().map(|known| {
            let (k, v) = crate::state::keys::knowledge(rec.partition, known);
            crate::state::Op::Put(crate::state::CF_SCHEMAS, k, v)
        }));

        EventMapped {
            topic,
            source: &event.source,
            event_type: &event.event_type,
            event_time_ms: event.event_time_ms,
            record_time_ms: rec.timestamp_ms,
            now_ms,
        }
        .emit(&mut self.record_metrics);
        self.sink.on_event(&event);
        if let Some(check) = self.partition_checks.get_mut(topic) {
            if let Some(alert) = check.observe(&event.key, rec.partition, now_ms) {
                crate::observe::events::PartitioningMismatch {
                    topic: alert.attributes.get("topic").map_or("", String::as_str),
                    summary: &alert.summary,
                }
                .emit();
                // Claimed through the announce topic: one alert per group, whoever samples it.
                batch.outputs.extend(announce::claim(
                    &self.announce_topic,
                    topic,
                    vec![crate::outputs::Output::Alert(alert)],
                ));
            }
        }
        self.freshness.on_event(&event, now_ms, &mut batch.outputs);
        self.age.on_event(&event, now_ms, &mut batch.outputs);
        let handles = &mut self.record_metrics;
        self.age
            .drain_measured(|name, measure, age| handles.monitor_age(name, measure, age));
        if let Some(t) = &source.repartition_topic {
            // Not keyed by the correlation key: the workflows get it through its repartition
            // topic, on the partition its key belongs to.
            // The record carries its source partition's clock across the shuffle.
            let clock = self
                .upstream
                .observe(topic, rec.partition, event.event_time_ms, now_ms);
            batch.outputs.push(crate::outputs::Output::Rekeyed {
                topic: t.clone(),
                key: event.key.clone(),
                value: repartition::encode(&event, clock.base),
                partition: None,
            });
            return Outcome::Done;
        }
        let at = event.event_time_ms;
        self.feed_workflows(batch, topic, at, rec.partition, rec.offset, &event, now_ms)
    }

    /// Hands an event read from `partition` to the workflow state machines; `input` is the
    /// clock input it moves (its topic, or the upstream partition it was re-keyed from) to
    /// `clock_ms`.
    fn feed_workflows(
        &mut self,
        batch: &mut Batch,
        input: &str,
        clock_ms: i64,
        partition: i32,
        offset: i64,
        event: &Event,
        wall: i64,
    ) -> Outcome {
        if self.workflows.is_empty() {
            return Outcome::Done;
        }
        if let Err(e) =
            self.workflows
                .on_event(&self.store, batch, input, clock_ms, partition, event, wall)
        {
            // The store is local disk: failing here is not the record's fault and not transient.
            tracing::error!(error = %e, input, partition, offset, "state store failed");
            return self.store_failed(e);
        }
        Outcome::Done
    }

    /// A re-keyed event from a repartition topic: decoded, ingest already happened upstream.
    async fn handle_rekeyed(
        &mut self,
        msg: &BorrowedMessage<'_>,
        now_ms: i64,
        batch: &mut Batch,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Outcome {
        let topic = msg.topic();
        RecordConsumed { topic }.emit(&mut self.record_metrics);
        match repartition::decode(msg.payload().unwrap_or_default()) {
            Ok(repartition::Record::Event(event, upstream_clock)) => {
                // The clock input is the upstream partition the event was read from; a topic
                // with no known feed keeps a clock of its own.
                let (input, clock_ms) = if self.repartition_feeds.contains_key(topic) {
                    (
                        repartition::upstream_input(topic, event.coordinates.partition),
                        upstream_clock.unwrap_or(event.event_time_ms),
                    )
                } else {
                    (topic.to_string(), event.event_time_ms)
                };
                self.feed_workflows(
                    batch,
                    &input,
                    clock_ms,
                    msg.partition(),
                    msg.offset(),
                    &event,
                    now_ms,
                )
            }
            Ok(repartition::Record::Marks(marks)) => {
                if self.repartition_feeds.contains_key(topic) {
                    for m in marks.marks {
                        let input = repartition::upstream_input(topic, m.partition);
                        self.workflows.observe_input(
                            batch,
                            &input,
                            msg.partition(),
                            m.clock,
                            now_ms,
                        );
                    }
                }
                Outcome::Done
            }
            Err(e) => {
                self.internal_dead_letter(
                    msg,
                    format!("not a re-keyed event: {e}"),
                    batch,
                    shutdown,
                )
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
        RecordConsumed { topic: msg.topic() }.emit(&mut self.record_metrics);
        let outputs = match announce::decode(msg.payload().unwrap_or_default()) {
            Ok(o) => o,
            Err(e) => {
                return self
                    .internal_dead_letter(msg, format!("not a claim: {e}"), batch, shutdown)
                    .await
            }
        };
        for out in outputs {
            let k = crate::state::keys::announced_output(msg.partition(), &out);
            let staged = batch.extra_ops.iter().any(
                |op| matches!(op, crate::state::Op::Put(cf, key, _) if *cf == crate::state::CF_META && *key == k),
            );
            let known = match self.store.get(crate::state::CF_META, &k) {
                Ok(v) => v.is_some(),
                Err(e) => return self.store_failed(e),
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
        batch: &mut Batch,
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
            batch,
            shutdown,
        )
        .await
    }

    /// Assigned partitions that have delivered nothing hold the stream clock back, unless they
    /// have nothing to read: empty, or committed up to their end. The broker is asked on a
    /// blocking thread (the calls wait for answers), at most once a second and only while some
    /// input is waiting; answers are applied at the next tick. An upstream input of a
    /// repartition topic (source partition `sp` seen on repartition partition `p`) has nothing
    /// to read once the group has committed both `sp` of the source and `p` of the repartition
    /// topic to their ends: every re-keyed record of `sp` is then in `p` and read.
    fn mark_idle_partitions(&mut self) {
        if let Some(check) = &self.idle_check {
            if !check.is_finished() {
                return;
            }
            if let Some(Ok((idle, backlogged, drained))) =
                self.idle_check.take().and_then(|h| h.now_or_never())
            {
                for (t, p) in idle {
                    self.workflows.idle(&t, p);
                    self.upstream.idle(&t, p);
                }
                for (t, p) in backlogged {
                    self.workflows.backlogged(&t, p);
                    self.upstream.backlogged(&t, p);
                }
                for (t, p) in drained {
                    self.workflows.drained(&t, p);
                    self.upstream.drained(&t, p);
                }
            }
        }
        let mut waiting = self.workflows.waiting();
        waiting.extend(self.upstream.waiting());
        // Inputs that delivered and then fell silent: drained ones stop holding. An upstream
        // input of a repartition topic is told so by its writer's markers instead.
        let wall = chrono::Utc::now().timestamp_millis();
        // While inputs are paused for read-ahead, a silent one is asked about after a second:
        // once it is known to be read to its end, what waits on it reads on.
        let after = |idle_ms: i64| {
            if self.paused.is_empty() {
                idle_ms
            } else {
                idle_ms.min(PAUSED_DRAIN_CHECK_MS)
            }
        };
        let mut silent = self
            .workflows
            .silent(wall, after(self.workflows.clock.idle_ms));
        silent.extend(self.upstream.silent(wall, after(self.upstream.idle_ms)));
        silent.retain(|(t, _)| !t.contains('@'));
        if (waiting.is_empty() && silent.is_empty())
            || self.last_idle_check.elapsed() < Duration::from_secs(1)
        {
            return;
        }
        self.last_idle_check = Instant::now();
        let consumer = self.consumer.clone();
        // Each waiting input, with the topic-partitions that must be read to their end for it
        // to have nothing left to deliver.
        let checks: Vec<WaitingCheck> = waiting
            .into_iter()
            .map(|(t, p)| {
                let needs = match t.rsplit_once('@').and_then(|(rt, sp)| {
                    let feed = self.repartition_feeds.get(rt)?;
                    Some((rt, feed, sp.parse::<i32>().ok()?))
                }) {
                    Some((rt, feed, sp)) => {
                        vec![(feed.source_topic.clone(), sp), (rt.to_string(), p)]
                    }
                    None => vec![(t.clone(), p)],
                };
                ((t, p), needs)
            })
            .collect();
        self.idle_check = Some(tokio::task::spawn_blocking(move || {
            let mut tpl = rdkafka::TopicPartitionList::new();
            for (_, needs) in &checks {
                for (t, p) in needs {
                    if tpl.find_partition(t, *p).is_none() {
                        tpl.add_partition(t, *p);
                    }
                }
            }
            let committed = consumer.committed_offsets(tpl, Duration::from_secs(2)).ok();
            let mut at_end: std::collections::HashMap<(String, i32), Option<bool>> =
                Default::default();
            let (mut idle, mut backlogged) = (Vec::new(), Vec::new());
            for (input, needs) in checks {
                let mut all = Some(true);
                for (t, p) in needs {
                    let end = *at_end.entry((t.clone(), p)).or_insert_with(|| {
                        let (low, high) = consumer
                            .fetch_watermarks(&t, p, Duration::from_secs(2))
                            .ok()?;
                        let committed = committed.as_ref()?.find_partition(&t, p)?.offset();
                        Some(high <= low || committed_to(committed, high))
                    });
                    all = match (all, end) {
                        (Some(a), Some(e)) => Some(a && e),
                        _ => None,
                    };
                }
                match all {
                    Some(true) => idle.push(input),
                    Some(false) => backlogged.push(input),
                    // The broker did not answer: ask again at the next check.
                    None => {}
                }
            }
            // A silent input has nothing left to read once its position is at the end.
            let mut drained = Vec::new();
            if !silent.is_empty() {
                if let Ok(positions) = consumer.position() {
                    for (t, p) in silent {
                        let Some(pos) = positions.find_partition(&t, p).map(|e| e.offset()) else {
                            continue;
                        };
                        let Ok((_, high)) =
                            consumer.fetch_watermarks(&t, p, Duration::from_secs(2))
                        else {
                            continue;
                        };
                        if committed_to(pos, high) {
                            drained.push((t, p));
                        }
                    }
                }
            }
            (idle, backlogged, drained)
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
            // A position that is not a real offset (Invalid: nothing read yet) moves nothing.
            let (rdkafka::Offset::Offset(pos), Some(&at)) = (
                e.offset(),
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

    /// Time-aligned reading (Kafka Streams' PartitionGroup): pauses the inputs whose clock
    /// runs more than `engine.max_read_ahead_ms` ahead of the slowest input of their partition
    /// number, and resumes them once within half of that, so a backlog on one topic is read
    /// first rather than holding every deadline back while the others run on.
    fn align_reading(&mut self, assignment: &[(String, i32)], wall_ms: i64) {
        if self.max_read_ahead_ms <= 0 {
            return;
        }
        self.paused.retain(|k| assignment.contains(k));
        let ahead = self.workflows.ahead(self.max_read_ahead_ms, wall_ms);
        let still = self.workflows.ahead(self.max_read_ahead_ms / 2, wall_ms);
        let pause: Vec<(String, i32)> = ahead
            .into_iter()
            .filter(|k| assignment.contains(k) && !self.paused.contains(k))
            .collect();
        // A partition that also waits on the registry stays paused for that.
        let resume: Vec<(String, i32)> = self
            .paused
            .iter()
            .filter(|k| !still.contains(k))
            .cloned()
            .collect();
        let resume_now: Vec<(String, i32)> = resume
            .iter()
            .filter(|k| !self.held.contains_key(*k))
            .cloned()
            .collect();
        let tpl = |ks: &[(String, i32)]| {
            let mut tpl = rdkafka::TopicPartitionList::new();
            for (t, p) in ks {
                tpl.add_partition(t, *p);
            }
            tpl
        };
        if !pause.is_empty() {
            match self.consumer.pause(&tpl(&pause)) {
                Ok(()) => {
                    tracing::debug!(partitions = ?pause, "paused: read ahead of the slowest input");
                    self.paused.extend(pause);
                }
                Err(e) => crate::observe::events::KafkaClientError {
                    kind: "pause",
                    error: &e.to_string(),
                }
                .emit(),
            }
        }
        if !resume.is_empty() {
            let result = if resume_now.is_empty() {
                Ok(())
            } else {
                self.consumer.resume(&tpl(&resume_now))
            };
            match result {
                Ok(()) => {
                    tracing::debug!(partitions = ?resume, "resumed: the slowest input caught up");
                    for k in &resume {
                        self.paused.remove(k);
                    }
                }
                Err(e) => crate::observe::events::KafkaClientError {
                    kind: "resume",
                    error: &e.to_string(),
                }
                .emit(),
            }
        }
        METRICS.paused_partitions.set(self.paused.len() as i64);
    }

    /// A record of `tp` at `offset` waits on the registry: counted and logged, with when the
    /// partition is tried again (doubling from 200 ms to 10 s).
    fn registry_wait(&mut self, tp: &(String, i32), offset: i64, why: &str, status: &str) {
        let backoff = self
            .held
            .get(tp)
            .map_or(Duration::from_millis(200), |(_, b)| {
                (*b * 2).min(Duration::from_secs(10))
            });
        RegistryUnavailable {
            topic: &tp.0,
            partition: tp.1,
            offset,
            error: why,
            status,
            retry_in_ms: backoff.as_millis() as u64,
        }
        .emit();
        self.held
            .insert(tp.clone(), (Instant::now() + backoff, backoff));
    }

    /// After the batch committed: each partition that waits on the registry goes back to its
    /// waiting record and is paused until its retry is due (resume_held).
    fn hold_partitions(&mut self, holding: &std::collections::HashMap<(String, i32), i64>) {
        for ((t, p), offset) in holding {
            if let Err(e) = self.consumer.seek(
                t,
                *p,
                rdkafka::Offset::Offset(*offset),
                Duration::from_secs(5),
            ) {
                crate::observe::events::KafkaClientError {
                    kind: "seek",
                    error: &e.to_string(),
                }
                .emit();
            }
            let mut tpl = rdkafka::TopicPartitionList::new();
            tpl.add_partition(t, *p);
            if let Err(e) = self.consumer.pause(&tpl) {
                crate::observe::events::KafkaClientError {
                    kind: "pause",
                    error: &e.to_string(),
                }
                .emit();
            }
        }
    }

    /// Resumes the partitions whose registry retry is due (they read their waiting record
    /// again), unless they are paused for running ahead.
    fn resume_held(&mut self) {
        let now = Instant::now();
        let due: Vec<(String, i32)> = self
            .held
            .iter()
            .filter(|(k, (at, _))| *at <= now && !self.paused.contains(*k))
            .map(|(k, _)| k.clone())
            .collect();
        if due.is_empty() {
            return;
        }
        let mut tpl = rdkafka::TopicPartitionList::new();
        for (t, p) in &due {
            tpl.add_partition(t, *p);
        }
        if let Err(e) = self.consumer.resume(&tpl) {
            crate::observe::events::KafkaClientError {
                kind: "resume",
                error: &e.to_string(),
            }
            .emit();
        }
        // Held until the record reads: the next failure doubles the backoff.
        for k in due {
            if let Some((at, _)) = self.held.get_mut(&k) {
                *at = now + Duration::from_secs(3600);
            }
        }
    }

    /// Why a mapped event is bad input after all (its key is over `engine.max_key_bytes`, or
    /// its event time outside the bounds around its record's time); None when it is fine.
    fn out_of_bounds(
        &self,
        event: &Event,
        record_ms: Option<i64>,
        now_ms: i64,
    ) -> Option<(crate::deadletter::ErrorClass, String)> {
        use crate::deadletter::ErrorClass;
        if event.key.len() > self.max_key_bytes {
            return Some((
                ErrorClass::KeyTooLong,
                format!(
                    "the correlation key is {} bytes, more than engine.max_key_bytes ({}) allows (it starts `{}`); \
                     fix the source's key mapping, or raise the bound",
                    event.key.len(),
                    self.max_key_bytes,
                    event.key.chars().take(40).collect::<String>()
                ),
            ));
        }
        self.time_bounds
            .check(event.event_time_ms, record_ms, now_ms)
            .err()
            .map(|why| (ErrorClass::EventTimeOutOfRange, why))
    }

    /// What a failed state store read or write means: corruption under exactly-once marks the
    /// store for rebuilding from the changelog (the engine is rebuilt in-process); anything else
    /// stops the engine.
    fn store_failed(&self, e: crate::state::StateError) -> Outcome {
        if e.is_corruption() && self.guarantee == crate::config::Guarantee::ExactlyOnce {
            crate::state::mark_corrupt(&self.state_dir, &e.to_string());
            return Outcome::Rebuild(format!("the state store is corrupt: {e}"));
        }
        Outcome::Fatal(errors::Stop::Store(e))
    }

    /// Resumes every partition waiting on the registry and forgets the waits (a rewind reads
    /// everything again from the last commit).
    fn release_held(&mut self) {
        if self.held.is_empty() {
            return;
        }
        let mut tpl = rdkafka::TopicPartitionList::new();
        for (t, p) in self.held.keys() {
            if !self.paused.contains(&(t.clone(), *p)) {
                tpl.add_partition(t, *p);
            }
        }
        if tpl.count() > 0 {
            let _ = self.consumer.resume(&tpl);
        }
        self.held.clear();
    }

    /// Whether `topic` is a source re-keyed through a repartition topic with a known feed.
    fn rekeyed_source(&self, topic: &str) -> bool {
        self.repartition_feeds
            .values()
            .any(|f| f.source_topic == topic)
    }

    /// The watermark markers for every repartition partition: the clocks of the source
    /// partitions this instance owns (`owned`), at wall time `wall_ms`. A source partition still
    /// holding (not heard from, with records to read) is left out: its readers keep holding.
    fn marks(&mut self, owned: &[(String, i32)], wall_ms: i64) -> Vec<crate::outputs::Output> {
        let mut out = Vec::new();
        let mut feeds: Vec<(String, repartition::Feed)> = self
            .repartition_feeds
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        feeds.sort_by(|a, b| a.0.cmp(&b.0));
        for (rt, feed) in feeds {
            let mut marks = Vec::new();
            for (t, sp) in owned.iter().filter(|(t, _)| *t == feed.source_topic) {
                let clock = match self.upstream.input_state(t, *sp, wall_ms) {
                    clock::InputState::Clock(c) => Some(c),
                    clock::InputState::Idle => None,
                    clock::InputState::Holding => continue,
                };
                let k = (t.clone(), *sp);
                if self.sent_marks.get(&k) == Some(&clock) {
                    continue;
                }
                self.sent_marks.insert(k, clock);
                marks.push(repartition::Mark {
                    partition: *sp,
                    clock,
                });
            }
            if marks.is_empty() {
                continue;
            }
            let value = repartition::encode_marks(&repartition::Marks { marks });
            for p in 0..feed.partitions {
                out.push(crate::outputs::Output::Rekeyed {
                    topic: rt.clone(),
                    key: String::new(),
                    value: value.clone(),
                    partition: Some(p),
                });
            }
        }
        out
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
    /// Whether this timer tick is skipped: a batch's transaction is still committing (timers
    /// would wait for it, and the next batch with them), and timers ran less than
    /// [`TIMERS_MAX_WAIT`] ago.
    fn timers_wait_for_commit(&self) -> bool {
        self.inflight.as_ref().is_some_and(|f| !f.is_finished())
            && self.timers_ran.elapsed() < TIMERS_MAX_WAIT
    }

    /// A timer tick: timers fire, unless the tick is skipped for a committing batch (a tick
    /// does not stop the pipeline for a transaction about to end).
    async fn tick(&mut self, shutdown: &mut watch::Receiver<bool>) -> Outcome {
        if self.timers_wait_for_commit() {
            return Outcome::Done;
        }
        self.fire_timers(shutdown).await
    }

    async fn fire_timers(&mut self, shutdown: &mut watch::Receiver<bool>) -> Outcome {
        self.timers_ran = Instant::now();
        // Timers are scanned in the store: the batch still committing is written first.
        match self.finish_commit().await {
            Outcome::Done => {}
            other => return other,
        }
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
        let mut marks = Vec::new();
        if let Ok(tpl) = self.consumer.assignment() {
            // The clock inputs of the workflows: topics whose events reach them on the
            // partition they were read from, and, for a repartition topic, each upstream
            // source partition feeding it.
            let mut assignment: Vec<(String, i32)> = Vec::new();
            let mut upstream: Vec<(String, i32)> = Vec::new();
            for e in tpl.elements() {
                let (t, p) = (e.topic(), e.partition());
                if let Some(feed) = self.repartition_feeds.get(t) {
                    assignment.extend(
                        (0..feed.source_partitions)
                            .map(|sp| (repartition::upstream_input(t, sp), p)),
                    );
                } else if self.rekeyed_source(t) {
                    upstream.push((t.to_string(), p));
                } else if self.feeds_clock(t) {
                    assignment.push((t.to_string(), p));
                }
            }
            let now = chrono::Utc::now().timestamp_millis();
            if !assignment.is_empty() {
                self.freshness.arm(now);
            }
            self.workflows.assigned(&assignment, now);
            self.upstream.assigned(&upstream, now);
            self.sent_marks.retain(|k, _| upstream.contains(k));
            self.align_reading(&assignment, now);
            let assigned: std::collections::HashSet<(String, i32)> = tpl
                .elements()
                .iter()
                .map(|e| (e.topic().to_string(), e.partition()))
                .collect();
            self.held.retain(|k, _| assigned.contains(k));
            self.resume_held();
            if self.last_marks.elapsed() >= MARKS_INTERVAL {
                self.last_marks = Instant::now();
                marks = self.marks(&upstream, now);
            }
        }
        self.mark_idle_partitions();
        self.sync_instance_cache();
        let mut first = true;
        self.last_fired = 0;
        loop {
            let mut batch = Batch::default();
            let wall = chrono::Utc::now().timestamp_millis();
            if std::mem::take(&mut first) {
                batch.outputs.append(&mut marks);
                self.freshness.tick(wall, &mut batch.outputs);
                self.age.tick(wall, &mut batch.outputs);
                let mut polled = Vec::new();
                if let Some(rx) = &mut self.side_outputs {
                    while let Ok(out) = rx.try_recv() {
                        polled.push(out);
                    }
                }
                if !polled.is_empty() && self.owns_side_monitors() {
                    for out in polled {
                        match self.announce_level(out, &batch) {
                            Ok((news, write)) => {
                                batch.outputs.extend(news);
                                batch.extra_ops.extend(write);
                            }
                            Err(e) => return self.store_failed(e),
                        }
                    }
                }
            }
            let fired = match self
                .workflows
                .tick(&self.store, &mut batch, wall, MAX_BATCH)
            {
                Ok(n) => n,
                Err(e) => return self.store_failed(e),
            };
            crate::observe::events::TimersFired { count: fired }.emit();
            self.last_fired += fired;
            if batch.is_empty() && batch.outputs.is_empty() {
                return Outcome::Done;
            }
            match self.commit_batch(batch, None, shutdown).await {
                Outcome::Done if fired == MAX_BATCH => continue,
                other => return other,
            }
        }
    }

    /// Whether this member emits the side monitors' outputs: it owns the announce topic's
    /// partition 0 (see [`announce::level_key`]). The others drop what their monitors find.
    fn owns_side_monitors(&self) -> bool {
        let owner = self.consumer.assignment().is_ok_and(|tpl| {
            tpl.find_partition(
                &self.announce_topic,
                announce::SIDE_MONITORS_PARTITION as i32,
            )
            .is_some()
        });
        crate::observe::metrics::METRICS
            .side_monitors_owner
            .set(owner as i64);
        owner
    }

    /// A side monitor's output, if its condition's level is news against the level kept
    /// (staged in this batch, or in state); and the write that remembers a new level.
    fn announce_level(
        &self,
        out: crate::outputs::Output,
        batch: &Batch,
    ) -> Result<(Option<crate::outputs::Output>, Option<crate::state::Op>), crate::state::StateError>
    {
        use crate::detectors::levels;
        let Some((id, level)) = levels::condition(&out) else {
            return Ok((Some(out), None));
        };
        let k = announce::level_key(&id);
        let staged = batch.extra_ops.iter().rev().find_map(|op| match op {
            crate::state::Op::Put(cf, key, v) if *cf == crate::state::CF_META && *key == k => {
                Some(v.clone())
            }
            _ => None,
        });
        let last = match staged {
            Some(v) => Some(v),
            None => self.store.get(crate::state::CF_META, &k)?,
        };
        let last = last.and_then(|v| String::from_utf8(v).ok());
        let write = levels::remember(last.as_deref(), level)
            .then(|| crate::state::Op::Put(crate::state::CF_META, k, level.as_bytes().to_vec()));
        let news =
            levels::is_news(last.as_deref(), level).then(|| levels::after(out, last.as_deref()));
        Ok((news, write))
    }

    #[allow(clippy::too_many_arguments)]
    async fn dead_letter(
        &mut self,
        topic: &str,
        rec: &RawRecord<'_>,
        headers: &[(&str, Option<&[u8]>)],
        class: crate::deadletter::ErrorClass,
        message: String,
        batch: &mut Batch,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Outcome {
        let source = self
            .sources
            .get(topic)
            .expect("records come from declared sources");
        let dead_letter_topic = source.dead_letter_topic(topic);
        self.dead_letter_to(
            dead_letter_topic,
            rec,
            headers,
            class,
            message,
            batch,
            shutdown,
        )
        .await
    }

    #[allow(clippy::too_many_arguments)]
    async fn dead_letter_to(
        &mut self,
        dead_letter_topic: String,
        rec: &RawRecord<'_>,
        headers: &[(&str, Option<&[u8]>)],
        class: crate::deadletter::ErrorClass,
        message: String,
        batch: &mut Batch,
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
        // Produced with the batch's outputs, not awaited here.
        batch.dead_letters.push(dl);
        Outcome::Done
    }
}

/// Whether a group's committed offset `committed` is at or past `high`. Only a real offset
/// counts: a partition never committed reads as `Offset::Invalid` (librdkafka's -1001, which
/// once compared as "behind" forever), and the logical offsets say nothing of a position.
fn committed_to(committed: rdkafka::Offset, high: i64) -> bool {
    match committed {
        rdkafka::Offset::Offset(o) => o >= high,
        rdkafka::Offset::Invalid
        | rdkafka::Offset::Beginning
        | rdkafka::Offset::End
        | rdkafka::Offset::Stored
        | rdkafka::Offset::OffsetTail(_) => false,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_a_real_committed_offset_is_at_the_end() {
        use rdkafka::Offset;
        assert!(super::committed_to(Offset::Offset(10), 10));
        assert!(!super::committed_to(Offset::Offset(9), 10));
        for o in [
            Offset::Invalid,
            Offset::Beginning,
            Offset::End,
            Offset::Stored,
            Offset::OffsetTail(1),
        ] {
            assert!(!super::committed_to(o, 0), "{o:?}");
        }
    }
}
