//! Committing a batch: how outputs, dead letters, state and input offsets become durable
//! together.
//!
//! - **exactly_once** (default): a Kafka transaction per batch. At the end of the batch its
//!   dead letters, its outputs and one changelog record per state write are produced together, the input offsets are sent to the transaction with the consumer's
//!   group metadata (KIP-447: a zombie from an older generation is fenced by the broker), and
//!   the transaction commits. Only then is local RocksDB written, in one atomic write with the
//!   changelog checkpoint. A transaction error ([`TxnError`]) that is abortable aborts, and the
//!   engine reads again from the last commit (or, when its producer cannot go on, is rebuilt
//!   with new clients, whose `init_transactions` fences what is left of the old ones); a fatal
//!   one (fenced by a newer producer with the same `transactional.id`) stops the engine.
//! - **at_least_once**: dead letters and outputs are acknowledged, then state is written, then
//!   offsets stored.

use super::errors::{Stop, TxnError};
use super::workflows::Batch;
use super::{Engine, Outcome};
use crate::config::Guarantee;
use crate::observe::events::TransactionEnded;
use crate::outputs::Output;
use crate::state::changelog;
use rdkafka::consumer::Consumer;
use rdkafka::producer::{FutureRecord, Producer};
use rdkafka::TopicPartitionList;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// How long a transaction call may take before the engine gives up (and stops).
const TXN_TIMEOUT: Duration = Duration::from_secs(60);

impl Engine {
    /// Opens the transaction a batch's work goes into (exactly-once only).
    pub(super) fn begin(&mut self) -> Outcome {
        if self.guarantee != Guarantee::ExactlyOnce || self.in_transaction {
            return Outcome::Done;
        }
        match self.producer.begin_transaction() {
            Ok(()) => {
                self.in_transaction = true;
                Outcome::Done
            }
            Err(e) => match TxnError::of("beginning a Kafka transaction", e) {
                err if err.is_abortable() => Outcome::Restart(err.to_string()),
                err => Outcome::Fatal(Stop::Transaction(err)),
            },
        }
    }

    /// Makes a batch durable; `offsets`: the input positions it covers (next offsets to read).
    /// Under exactly-once, a batch still committing is finished first, and this one is
    /// committed before returning.
    pub(super) async fn commit_batch(
        &mut self,
        batch: Batch,
        offsets: Option<TopicPartitionList>,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Outcome {
        match self.guarantee {
            Guarantee::AtLeastOnce => {
                let outcome = self.commit_acknowledged(&batch, shutdown).await;
                if matches!(outcome, Outcome::Done) {
                    self.workflows.committed(batch);
                }
                outcome
            }
            Guarantee::ExactlyOnce => match self.finish_commit().await {
                Outcome::Done => match self.start_commit(batch, offsets, None).await {
                    Outcome::Done => self.finish_commit().await,
                    other => other,
                },
                other => other,
            },
        }
    }

    async fn commit_acknowledged(
        &mut self,
        batch: &Batch,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Outcome {
        if !batch.dead_letters.is_empty()
            && !crate::deadletter::send::send_all(&self.producer, &batch.dead_letters, shutdown)
                .await
        {
            return Outcome::Shutdown;
        }
        if !batch.outputs.is_empty()
            && !crate::engine::deliver::send_all(
                &self.producer,
                &self.encoders,
                &batch.outputs,
                shutdown,
            )
            .await
        {
            return Outcome::Shutdown;
        }
        if !batch.is_empty() {
            if let Err(e) = self.store.write(&batch.ops()) {
                tracing::error!(error = %e, "state store write failed; stopping");
                return Outcome::Fatal(Stop::Store(e));
            }
        }
        Outcome::Done
    }

    /// Exactly-once, first half of a commit: produces the batch's dead letters, outputs and
    /// changelog records in its transaction, and hands the rest (their acknowledgements, the
    /// input offsets, the commit) to a task, so the engine reads and handles the next batch
    /// meanwhile. The batch's instances are readable from memory until [`Self::finish_commit`]
    /// writes them. `before`: the wall-clock monitors as they were before the batch, restored
    /// if the commit fails. Nothing may be committing.
    pub(super) async fn start_commit(
        &mut self,
        mut batch: Batch,
        offsets: Option<TopicPartitionList>,
        before: Option<Monitors>,
    ) -> Outcome {
        debug_assert!(self.inflight.is_none(), "one batch commits at a time");
        let failed = |engine: &mut Engine, before: Option<Monitors>| {
            if let Some((freshness, age)) = before {
                (engine.freshness, engine.age) = (freshness, age);
            }
        };
        if let Outcome::Fatal(e) = self.begin() {
            return Outcome::Fatal(e);
        }
        let started = Instant::now();
        let changelog_topic = self
            .changelog
            .clone()
            .expect("exactly-once has a changelog");
        let records = batch.outputs.len();
        let mut outputs: Vec<(Output, String)> = Vec::with_capacity(batch.outputs.len());
        let mut deliveries = Vec::with_capacity(batch.outputs.len() + batch.dead_letters.len());
        for out in std::mem::take(&mut batch.outputs) {
            let produced = {
                let (topic, key, value) = match self.encoders.encode(&out) {
                    Ok(x) => x,
                    Err(e) => {
                        tracing::error!(error = %format!("{e:#}"), "an output could not be encoded; it is dropped");
                        continue;
                    }
                };
                let mut record = FutureRecord::to(&topic).key(&key).payload(value.as_ref());
                if let Some(p) = out.partition() {
                    record = record.partition(p);
                }
                match self.producer.send_result(record) {
                    Ok(d) => Ok((topic, d)),
                    Err((e, _)) => Err(TxnError::of(format!("producing to {topic}"), e)),
                }
            };
            match produced {
                Ok((topic, d)) => {
                    deliveries.push((topic.clone(), d));
                    outputs.push((out, topic));
                }
                Err(e) => {
                    failed(self, before);
                    return self.abort(e).await;
                }
            }
        }
        for dl in &batch.dead_letters {
            match self
                .producer
                .send_result(crate::deadletter::send::record(dl))
            {
                Ok(d) => deliveries.push((dl.dead_letter_topic.clone(), d)),
                Err((e, _)) => {
                    failed(self, before);
                    let e = TxnError::of(format!("producing to {}", dl.dead_letter_topic), e);
                    return self.abort(e).await;
                }
            }
        }
        // The changelog of every state write but the timers (a restore rebuilds those).
        let ops = batch.ops();
        let mut logged = Vec::with_capacity(ops.len());
        for op in ops.iter().filter(|op| changelog::logged(op)) {
            let (p, key, value) = changelog::record(op);
            let mut r = FutureRecord::<[u8], [u8]>::to(&changelog_topic)
                .partition(p)
                .key(&key);
            if let Some(v) = value {
                r = r.payload(v);
            }
            match self.producer.send_result(r) {
                Ok(d) => logged.push(d),
                Err((e, _)) => {
                    failed(self, before);
                    let e = TxnError::of(format!("producing to {changelog_topic}"), e);
                    return self.abort(e).await;
                }
            }
        }
        let sent_in = started.elapsed();
        let sent: Vec<((String, i32), i64)> = offsets
            .as_ref()
            .map(|t| {
                t.elements()
                    .iter()
                    .filter_map(|e| {
                        Some(((e.topic().to_string(), e.partition()), e.offset().to_raw()?))
                    })
                    .collect()
            })
            .unwrap_or_default();
        let producer = self.producer.clone();
        let metadata = self.consumer.group_metadata();
        let logged_count = logged.len();
        let commit = tokio::spawn(async move {
            // Every record acknowledged before the commit is asked for. commit_transaction
            // would flush them itself, but its flush waits for the producer's delivery reports,
            // which rust-rdkafka's polling thread hands over at its 100 ms poll interval: a
            // 100 ms floor under every transaction. Awaiting the deliveries takes only their
            // round trip.
            for (topic, d) in deliveries {
                acknowledged(&topic, d).await?;
            }
            let mut next: BTreeMap<i32, i64> = BTreeMap::new();
            for d in logged {
                let d = acknowledged(&changelog_topic, d).await?;
                let n = next.entry(d.partition).or_insert(0);
                *n = (*n).max(d.offset + 1);
            }
            let produced_in = started.elapsed();
            let committed = bounded(TXN_TIMEOUT + STUCK_MARGIN, move || {
                let t = Instant::now();
                if let Some(tpl) = offsets.filter(|t| t.count() > 0) {
                    let metadata = metadata.ok_or_else(|| {
                        TxnError::abortable(
                            "sending offsets to the transaction",
                            "no consumer group metadata",
                        )
                    })?;
                    producer
                        .send_offsets_to_transaction(&tpl, &metadata, TXN_TIMEOUT)
                        .map_err(|e| TxnError::of("sending offsets to the transaction", e))?;
                }
                let offsets_in = t.elapsed();
                producer
                    .commit_transaction(TXN_TIMEOUT)
                    .map_err(|e| TxnError::of("committing the transaction", e))?;
                tracing::debug!(
                    send_ms = sent_in.as_millis() as u64,
                    changelog_records = logged_count,
                    produce_ms = produced_in.as_millis() as u64,
                    offsets_ms = offsets_in.as_millis() as u64,
                    commit_ms = (t.elapsed() - offsets_in).as_millis() as u64,
                    "transaction committed"
                );
                Ok(())
            })
            .await;
            match committed {
                Some(Ok(Ok(()))) => Ok(next),
                Some(Ok(Err(e))) => Err(Failed::Txn(e)),
                Some(Err(e)) => Err(Failed::Txn(TxnError::abortable(
                    "committing the transaction",
                    format!("the commit task failed: {e}"),
                ))),
                None => Err(Failed::Stuck("committing the transaction")),
            }
        });
        let dead_letters = std::mem::take(&mut batch.dead_letters);
        self.workflows.committing(batch);
        self.inflight = Some(InFlight {
            commit,
            ops,
            outputs,
            dead_letters,
            sent,
            records,
            started,
            before,
        });
        Outcome::Done
    }

    /// Exactly-once, second half of a commit: waits for the committing batch's transaction
    /// (if any), then writes its state to the local store, atomically with the changelog
    /// positions it now includes. A failure restores the wall-clock monitors of before that
    /// batch and aborts (the caller rewinds to the last commit).
    pub(super) async fn finish_commit(&mut self) -> Outcome {
        let Some(f) = self.inflight.take() else {
            return Outcome::Done;
        };
        let result = match f.commit.await {
            Ok(r) => r,
            Err(e) => Err(Failed::Txn(TxnError::abortable(
                "committing the transaction",
                format!("the commit task failed: {e}"),
            ))),
        };
        let next = match result {
            Ok(next) => next,
            Err(failed) => {
                if let Some((freshness, age)) = f.before {
                    (self.freshness, self.age) = (freshness, age);
                }
                return match failed {
                    Failed::Txn(e) => self.abort(e).await,
                    Failed::Stuck(what) => {
                        self.mark_stuck(what);
                        self.producer_stuck_restart()
                    }
                };
            }
        };
        self.in_transaction = false;
        self.committed_at.extend(f.sent);
        TransactionEnded {
            result: "committed",
            seconds: f.started.elapsed().as_secs_f64(),
            records: f.records,
        }
        .emit();
        for (out, topic) in &f.outputs {
            crate::engine::deliver::report(out, topic);
        }
        f.dead_letters
            .iter()
            .for_each(crate::deadletter::send::report);
        // Local state, with the changelog position it now includes.
        if !f.ops.is_empty() {
            let mut writes = f.ops;
            writes.extend(
                next.into_iter()
                    .map(|(p, n)| changelog::checkpoint_op(p, n)),
            );
            let t = Instant::now();
            if let Err(e) = self.store.write(&writes) {
                // The transaction holds the truth; a restart restores it from the changelog.
                tracing::error!(error = %e, "state store write failed; stopping");
                return Outcome::Fatal(Stop::Store(e));
            }
            tracing::debug!(write_ms = t.elapsed().as_millis() as u64, "state written");
        }
        self.workflows.written();
        Outcome::Done
    }

    async fn abort(&mut self, reason: TxnError) -> Outcome {
        if !reason.is_abortable() {
            // Fenced (another instance took this transactional.id) or otherwise unusable: the
            // producer cannot abort; this instance must stop.
            self.abandon_transaction();
            return Outcome::Fatal(Stop::Transaction(reason));
        }
        let producer = self.producer.clone();
        let aborted = match self
            .transaction_call("aborting the transaction", move || {
                producer.abort_transaction(TXN_TIMEOUT)
            })
            .await
        {
            Some(r) => r.is_ok_and(|r| r.is_ok()),
            None => return self.producer_stuck_restart(),
        };
        self.in_transaction = false;
        TransactionEnded {
            result: if aborted { "aborted" } else { "abort_failed" },
            seconds: 0.0,
            records: 0,
        }
        .emit();
        Outcome::Restart(format!(
            "Kafka transaction failed ({reason}); it was {}. The engine starts over from the last committed transaction.",
            if aborted { "aborted" } else { "left to time out" }
        ))
    }

    /// Runs a blocking transaction call on the blocking pool, and gives up on it when it has
    /// not returned well after its own timeout. librdkafka does not always keep that timeout:
    /// `send_offsets_to_transaction` waits forever when the group coordinator it has cached was
    /// down when the call began and no broker changes state afterwards (a broker restart can
    /// leave it so). `None`: the call is left behind, and the producer marked stuck.
    async fn transaction_call<T: Send + 'static>(
        &mut self,
        what: &str,
        call: impl FnOnce() -> T + Send + 'static,
    ) -> Option<Result<T, tokio::task::JoinError>> {
        let returned = bounded(TXN_TIMEOUT + STUCK_MARGIN, call).await;
        if returned.is_none() {
            self.mark_stuck(what);
        }
        returned
    }

    /// The transactional producer did not return from `what`: it is given up on.
    fn mark_stuck(&mut self, what: &str) {
        let why = format!(
            "the transactional producer did not return from {what} within {} s",
            (TXN_TIMEOUT + STUCK_MARGIN).as_secs()
        );
        tracing::error!(reason = %why, "Kafka producer stuck; the engine starts over with new clients");
        self.producer_stuck = Some(why);
    }

    /// The open transaction is given up without an abort (the producer cannot run one).
    fn abandon_transaction(&mut self) {
        self.in_transaction = false;
        TransactionEnded {
            result: "abort_failed",
            seconds: 0.0,
            records: 0,
        }
        .emit();
    }

    /// After a stuck transaction call: no abort is possible with this producer (the broker
    /// aborts the transaction when the new producer's `init_transactions` fences it).
    fn producer_stuck_restart(&mut self) -> Outcome {
        self.abandon_transaction();
        Outcome::Restart(format!(
            "Kafka transaction left open ({}). The engine starts over from the last committed transaction.",
            self.producer_stuck.as_deref().unwrap_or("the producer is stuck")
        ))
    }
}

/// The wall-clock monitors, as a failed commit restores them.
pub(super) type Monitors = (
    crate::detectors::freshness::Freshness,
    crate::detectors::age::EventAge,
);

/// A batch whose records are produced and whose transaction is committing (pipelined commits).
pub(crate) struct InFlight {
    /// Awaits the acknowledgements, sends the offsets and commits: the changelog's next
    /// offset per partition.
    commit: tokio::task::JoinHandle<Result<BTreeMap<i32, i64>, Failed>>,
    /// The batch's state writes, for the store once committed.
    ops: Vec<crate::state::Op>,
    outputs: Vec<(Output, String)>,
    dead_letters: Vec<crate::deadletter::DeadLetter>,
    sent: Vec<((String, i32), i64)>,
    records: usize,
    started: Instant,
    before: Option<Monitors>,
}

impl InFlight {
    /// Whether its transaction has ended (committed or failed).
    pub fn is_finished(&self) -> bool {
        self.commit.is_finished()
    }
}

/// Why a committing transaction failed.
enum Failed {
    Txn(TxnError),
    /// The producer never returned from this call.
    Stuck(&'static str),
}

/// Waits for the broker's acknowledgement of one record produced to `topic` in a transaction.
async fn acknowledged(
    topic: &str,
    d: rdkafka::producer::DeliveryFuture,
) -> Result<rdkafka::producer::future_producer::Delivery, Failed> {
    match d.await {
        Ok(Ok(d)) => Ok(d),
        Ok(Err((e, _))) => Err(Failed::Txn(TxnError::of(
            format!("producing to {topic}"),
            e,
        ))),
        Err(_) => Err(Failed::Txn(TxnError::abortable(
            format!("producing to {topic}"),
            "delivery cancelled",
        ))),
    }
}

/// How much longer than its own timeout a transaction call may take before the producer is
/// given up as stuck.
const STUCK_MARGIN: Duration = Duration::from_secs(15);

/// Runs `call` on the blocking pool and waits for it at most `limit`: `None` when it has not
/// returned by then (it is left running).
async fn bounded<T: Send + 'static>(
    limit: Duration,
    call: impl FnOnce() -> T + Send + 'static,
) -> Option<Result<T, tokio::task::JoinError>> {
    tokio::time::timeout(limit, tokio::task::spawn_blocking(call))
        .await
        .ok()
}

/// The next offsets to read after `msgs`, per partition.
pub fn next_offsets<'a>(
    msgs: impl IntoIterator<Item = &'a rdkafka::message::BorrowedMessage<'a>>,
) -> TopicPartitionList {
    use rdkafka::message::Message;
    let mut max: BTreeMap<(String, i32), i64> = BTreeMap::new();
    for m in msgs {
        let e = max
            .entry((m.topic().to_string(), m.partition()))
            .or_insert(0);
        *e = (*e).max(m.offset() + 1);
    }
    let mut tpl = TopicPartitionList::new();
    for ((t, p), o) in max {
        let _ = tpl.add_partition_offset(&t, p, rdkafka::Offset::Offset(o));
    }
    tpl
}

#[cfg(test)]
mod tests {
    use super::*;
    use rdkafka::config::ClientConfig;
    use rdkafka::consumer::BaseConsumer;
    use rdkafka::mocking::{MockCluster, MockCoordinator};
    use rdkafka::producer::FutureProducer;

    /// librdkafka's `send_offsets_to_transaction` does not keep its timeout when the group
    /// coordinator is down as the call begins: it waits for a broker state change. The engine's
    /// bound on the call is what gets it out.
    #[test]
    fn a_transaction_call_past_its_timeout_is_given_up() {
        // Its own runtime, shut down without waiting for the call left behind.
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(given_up());
        runtime.shutdown_timeout(Duration::from_millis(100));
    }

    async fn given_up() {
        let cluster = MockCluster::new(3).unwrap();
        cluster.create_topic("in", 1, 1).unwrap();
        cluster.create_topic("out", 1, 1).unwrap();
        cluster
            .coordinator(MockCoordinator::Transaction("txn".into()), 1)
            .unwrap();
        cluster
            .coordinator(MockCoordinator::Group("g".into()), 2)
            .unwrap();
        let producer: FutureProducer = ClientConfig::new()
            .set("bootstrap.servers", cluster.bootstrap_servers())
            .set("transactional.id", "txn")
            .create()
            .unwrap();
        producer.init_transactions(Duration::from_secs(10)).unwrap();
        producer.begin_transaction().unwrap();
        producer
            .send(
                FutureRecord::<str, str>::to("out").payload("x"),
                Duration::from_secs(5),
            )
            .await
            .unwrap();
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", cluster.bootstrap_servers())
            .set("group.id", "g")
            .create()
            .unwrap();
        let metadata = consumer.group_metadata().unwrap();
        let mut offsets = TopicPartitionList::new();
        offsets
            .add_partition_offset("in", 0, rdkafka::Offset::Offset(1))
            .unwrap();
        cluster.broker_down(2).unwrap();
        let started = Instant::now();
        let p = producer.clone();
        let r = bounded(Duration::from_secs(8), move || {
            p.send_offsets_to_transaction(&offsets, &metadata, Duration::from_secs(2))
        })
        .await;
        assert!(
            r.is_none(),
            "send_offsets_to_transaction returned after {:?}: librdkafka now keeps its timeout",
            started.elapsed()
        );
        // The call left behind still holds the producer: the cluster stays up under it.
        std::mem::forget(cluster);
    }
}
