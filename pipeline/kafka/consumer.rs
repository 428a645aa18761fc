//! The pipeline's group consumer: manual offset store and commit, cooperative-sticky
//! assignment, read_committed. Offsets are stored only after a record was processed or
//! dead-lettered, and stored offsets are committed on an interval and on every revoke, so a
//! partition that moves never loses or repeats more than its uncommitted tail.

use super::copartition::PartitionGroups;
use crate::observe::events::{OffsetsCommitted, Rebalanced};
use crate::observe::health::Health;
use rdkafka::consumer::RebalanceProtocol;
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer,
};
use rdkafka::error::KafkaResult;
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{ClientConfig, ClientContext, TopicPartitionList};
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

pub struct PipelineContext {
    pub health: Arc<Health>,
    /// Exactly-once: restores newly assigned partitions' state before they are read.
    pub restore: Option<RestoreHook>,
    /// Co-partitioned topics that follow their anchor's assignment.
    pub groups: PartitionGroups,
    /// Set on every revoke: records fetched before it may belong to partitions this instance
    /// no longer owns, and must not be processed.
    pub revoked: AtomicBool,
    /// Counts assignment changes (before and after each): state the engine keeps in memory
    /// about partitions (its instance cache) is dropped when it moves.
    pub rebalances: AtomicU64,
}

/// What the rebalance hook tells the engine about restores.
#[derive(Default)]
pub struct RestoreSignal {
    restored: AtomicBool,
    failed: Mutex<Option<String>>,
}

impl RestoreSignal {
    /// True once after partitions were restored (the engine reloads its stream clocks).
    pub fn take_restored(&self) -> bool {
        self.restored.swap(false, Ordering::AcqRel)
    }

    /// A restore that failed: the engine must stop rather than read on stale state.
    pub fn failed(&self) -> Option<String> {
        self.failed.lock().expect("restore lock").clone()
    }
}

/// Restores the state of some input partitions (their changelog partitions) into the store.
pub type Restore = dyn Fn(&[i32]) -> anyhow::Result<()> + Send + Sync;

/// Restores the state of newly assigned input partitions, inside the rebalance (before
/// incremental assign), so no record of a partition is read before its state is there.
pub struct RestoreHook {
    pub restore: Box<Restore>,
    pub signal: Arc<RestoreSignal>,
    pub owned: Mutex<HashSet<i32>>,
}

impl RestoreHook {
    pub fn new(restore: Box<Restore>, signal: Arc<RestoreSignal>) -> RestoreHook {
        RestoreHook {
            restore,
            signal,
            owned: Mutex::default(),
        }
    }

    fn assign(&self, tpl: &TopicPartitionList, health: &Health) {
        let owned = self.owned.lock().expect("restore lock").clone();
        let new: Vec<i32> = tpl
            .elements()
            .iter()
            .map(|e| e.partition())
            .collect::<HashSet<_>>()
            .difference(&owned)
            .copied()
            .collect();
        if new.is_empty() {
            return;
        }
        health.set_restored(false);
        match (self.restore)(&new) {
            Ok(_) => {
                self.owned.lock().expect("restore lock").extend(new);
                self.signal.restored.store(true, Ordering::Release);
                health.set_restored(true);
            }
            Err(e) => {
                tracing::error!(error = %format!("{e:#}"), "restoring newly assigned partitions failed");
                *self.signal.failed.lock().expect("restore lock") =
                    Some(format!("restoring state from the changelog failed: {e:#}"));
            }
        }
    }

    fn revoke(&self, tpl: &TopicPartitionList) {
        let mut owned = self.owned.lock().expect("restore lock");
        for e in tpl.elements() {
            owned.remove(&e.partition());
        }
    }
}

pub type PipelineConsumer = StreamConsumer<PipelineContext>;

impl ClientContext for PipelineContext {
    fn error(&self, error: rdkafka::error::KafkaError, reason: &str) {
        crate::observe::events::KafkaClientError {
            kind: "client",
            error: &format!("{error}: {reason}"),
        }
        .emit();
    }
}

fn describe(tpl: &TopicPartitionList) -> String {
    let mut parts: Vec<String> = tpl
        .elements()
        .iter()
        .map(|e| format!("{}[{}]", e.topic(), e.partition()))
        .collect();
    parts.sort();
    parts.join(",")
}

impl ConsumerContext for PipelineContext {
    /// rdkafka's rebalance, with the assigned or revoked partitions expanded by their followers
    /// (see `copartition.rs`): the hooks and the assignment both see the whole set.
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        tpl: &mut TopicPartitionList,
    ) {
        let expanded = self.groups.expand(tpl);
        let rebalance = match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => Rebalance::Assign(&expanded),
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => Rebalance::Revoke(&expanded),
            _ => Rebalance::Error(rdkafka::error::KafkaError::Rebalance(err.into())),
        };
        self.pre_rebalance(consumer, &rebalance);
        let cooperative = matches!(
            consumer.rebalance_protocol(),
            RebalanceProtocol::Cooperative
        );
        let result = match (err, cooperative) {
            (RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS, true) => {
                consumer.incremental_assign(&expanded)
            }
            (RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS, false) => {
                consumer.assign(&expanded)
            }
            (_, true) => consumer.incremental_unassign(&expanded),
            (_, false) => consumer.unassign(),
        };
        if let Err(e) = result {
            crate::observe::events::KafkaClientError {
                kind: "rebalance",
                error: &e.to_string(),
            }
            .emit();
        }
        self.post_rebalance(consumer, &rebalance);
    }

    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        self.rebalances.fetch_add(1, Ordering::AcqRel);
        if let (Some(hook), Rebalance::Assign(tpl)) = (&self.restore, rebalance) {
            hook.assign(tpl, &self.health);
        }
        if let (Some(hook), Rebalance::Revoke(tpl)) = (&self.restore, rebalance) {
            hook.revoke(tpl);
        }
        if let Rebalance::Revoke(tpl) = rebalance {
            self.revoked.store(true, Ordering::Release);
            // Hand over what is processed: commit the stored offsets before letting go.
            if tpl.count() > 0 {
                let result = consumer.commit_consumer_state(CommitMode::Sync);
                match &result {
                    Ok(()) => OffsetsCommitted {
                        result: Ok(tpl.count()),
                    }
                    .emit(),
                    // Nothing stored since the last commit is not a failure.
                    Err(e) if super::offsets::nothing_to_commit(e) => {}
                    Err(e) => OffsetsCommitted {
                        result: Err(&e.to_string()),
                    }
                    .emit(),
                }
            }
        }
    }

    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        self.rebalances.fetch_add(1, Ordering::AcqRel);
        let assigned_now = consumer.assignment().map(|a| a.count()).unwrap_or(0) as i64;
        match rebalance {
            Rebalance::Assign(tpl) => Rebalanced {
                kind: "assign",
                partitions: &describe(tpl),
                assigned_now,
            }
            .emit(),
            Rebalance::Revoke(tpl) => Rebalanced {
                kind: "revoke",
                partitions: &describe(tpl),
                assigned_now,
            }
            .emit(),
            Rebalance::Error(e) => Rebalanced {
                kind: "error",
                partitions: &e.to_string(),
                assigned_now,
            }
            .emit(),
        }
        self.health.set_assigned(assigned_now > 0);
    }

    fn commit_callback(&self, result: KafkaResult<()>, _offsets: &TopicPartitionList) {
        if let Err(e) = result {
            if !super::offsets::nothing_to_commit(&e) {
                OffsetsCommitted {
                    result: Err(&e.to_string()),
                }
                .emit();
            }
        }
    }
}

/// A group consumer for `group_id` with the pipeline's settings on top of `base`.
pub fn create_consumer(
    base: &ClientConfig,
    group_id: &str,
    health: Arc<Health>,
    restore: Option<RestoreHook>,
    groups: PartitionGroups,
) -> KafkaResult<PipelineConsumer> {
    // The pipeline's own settings, unless the user's overrides in `base` say otherwise.
    let mut c = super::client::with_defaults(
        base,
        &[
            ("enable.auto.commit", "false"),
            ("enable.auto.offset.store", "false"),
            ("auto.offset.reset", "earliest"),
            ("partition.assignment.strategy", "cooperative-sticky"),
            ("isolation.level", "read_committed"),
            ("session.timeout.ms", "10000"),
            ("heartbeat.interval.ms", "1000"),
        ],
    );
    c.set("group.id", group_id);
    c.create_with_context(PipelineContext {
        health,
        restore,
        groups,
        revoked: AtomicBool::new(false),
        rebalances: AtomicU64::new(0),
    })
}
