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
    pub(super) async fn commit_batch(
        &mut self,
        batch: Batch,
        offsets: Option<TopicPartitionList>,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Outcome {
        let outcome = match self.guarantee {
            Guarantee::AtLeastOnce => self.commit_acknowledged(&batch, shutdown).await,
            Guarantee::ExactlyOnce => self.commit_transaction(&batch, offsets).await,
        };
        if matches!(outcome, Outcome::Done) {
            self.workflows.committed(batch);
        }
        outcome
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
            && !crate::outputs::send::send_all(
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

    async fn commit_transaction(
        &mut self,
        batch: &Batch,
        offsets: Option<TopicPartitionList>,
    ) -> Outcome {
        if let Outcome::Fatal(e) = self.begin() {
            return Outcome::Fatal(e);
        }
        let started = Instant::now();
        let changelog_topic = self
            .changelog
            .clone()
            .expect("exactly-once has a changelog");
        let records = batch.outputs.len();
        // Outputs.
        let mut outputs: Vec<(&Output, String, _)> = Vec::with_capacity(batch.outputs.len());
        for out in &batch.outputs {
            let (topic, key, value) = match self.encoders.encode(out) {
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
                Ok(d) => outputs.push((out, topic, d)),
                Err((e, _)) => {
                    return self
                        .abort(TxnError::of(format!("producing to {topic}"), e))
                        .await
                }
            }
        }
        // Dead letters.
        let mut dead_letters = Vec::with_capacity(batch.dead_letters.len());
        for dl in &batch.dead_letters {
            match self
                .producer
                .send_result(crate::deadletter::send::record(dl))
            {
                Ok(d) => dead_letters.push(d),
                Err((e, _)) => {
                    return self
                        .abort(TxnError::of(
                            format!("producing to {}", dl.dead_letter_topic),
                            e,
                        ))
                        .await
                }
            }
        }
        // The changelog of every state write.
        let ops = batch.ops();
        let mut logged = Vec::with_capacity(ops.len());
        let logged_count = ops.len();
        for op in &ops {
            let (p, key, value) = changelog::record(op);
            let mut r = FutureRecord::<[u8], [u8]>::to(&changelog_topic)
                .partition(p)
                .key(&key);
            if let Some(v) = &value {
                r = r.payload(v);
            }
            match self.producer.send_result(r) {
                Ok(d) => logged.push(d),
                Err((e, _)) => {
                    return self
                        .abort(TxnError::of(format!("producing to {changelog_topic}"), e))
                        .await
                }
            }
        }
        let sent_in = started.elapsed();
        // Every record acknowledged before the commit is asked for. commit_transaction would
        // flush them itself, but its flush waits for the producer's delivery reports, which
        // rust-rdkafka's polling thread hands over at its 100 ms poll interval: a 100 ms floor
        // under every transaction. Awaiting the deliveries here takes only their round trip.
        let mut delivered = Vec::with_capacity(outputs.len());
        for (out, topic, d) in outputs {
            match d.await {
                Ok(Ok(_)) => delivered.push((out, topic)),
                Ok(Err((e, _))) => {
                    return self
                        .abort(TxnError::of(format!("producing to {topic}"), e))
                        .await
                }
                Err(_) => {
                    return self
                        .abort(TxnError::abortable(
                            format!("producing to {topic}"),
                            "delivery cancelled",
                        ))
                        .await
                }
            }
        }
        for (dl, d) in batch.dead_letters.iter().zip(dead_letters) {
            let failed = match d.await {
                Ok(Ok(_)) => continue,
                Ok(Err((e, _))) => {
                    TxnError::of(format!("producing to {}", dl.dead_letter_topic), e)
                }
                Err(_) => TxnError::abortable(
                    format!("producing to {}", dl.dead_letter_topic),
                    "delivery cancelled",
                ),
            };
            return self.abort(failed).await;
        }
        let mut next: BTreeMap<i32, i64> = BTreeMap::new();
        for d in logged {
            match d.await {
                Ok(Ok(d)) => {
                    let n = next.entry(d.partition).or_insert(0);
                    *n = (*n).max(d.offset + 1);
                }
                Ok(Err((e, _))) => {
                    return self
                        .abort(TxnError::of(format!("producing to {changelog_topic}"), e))
                        .await
                }
                Err(_) => {
                    return self
                        .abort(TxnError::abortable(
                            format!("producing to {changelog_topic}"),
                            "delivery cancelled",
                        ))
                        .await
                }
            }
        }
        // Input offsets, then commit.
        let producer = self.producer.clone();
        let metadata = self.consumer.group_metadata();
        let produced_in = started.elapsed();
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
        let committed = self
            .transaction_call("committing the transaction", move || {
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
        let committed = match committed {
            Some(Ok(r)) => r,
            Some(Err(e)) => Err(TxnError::abortable(
                "committing the transaction",
                format!("the commit task failed: {e}"),
            )),
            // The producer is stuck: nothing can be aborted with it; new clients take over.
            None => return self.producer_stuck_restart(),
        };
        if let Err(e) = committed {
            return self.abort(e).await;
        }
        self.in_transaction = false;
        self.committed_at.extend(sent);
        TransactionEnded {
            result: "committed",
            seconds: started.elapsed().as_secs_f64(),
            records,
        }
        .emit();
        for (out, topic) in delivered {
            crate::outputs::send::report(out, &topic);
        }
        batch
            .dead_letters
            .iter()
            .for_each(crate::deadletter::send::report);
        // Local state, with the changelog position it now includes.
        if !ops.is_empty() {
            let mut writes = ops;
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
            let why = format!(
                "the transactional producer did not return from {what} within {} s",
                (TXN_TIMEOUT + STUCK_MARGIN).as_secs()
            );
            tracing::error!(reason = %why, "Kafka producer stuck; the engine starts over with new clients");
            self.producer_stuck = Some(why);
        }
        returned
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
