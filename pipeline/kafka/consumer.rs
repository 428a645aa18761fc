//! The pipeline's group consumer: manual offset store and commit, cooperative-sticky
//! assignment, read_committed. Offsets are stored only after a record was processed or
//! dead-lettered, and stored offsets are committed on an interval and on every revoke, so a
//! partition that moves never loses or repeats more than its uncommitted tail.

use crate::observe::events::{OffsetsCommitted, Rebalanced};
use crate::observe::health::Health;
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer,
};
use rdkafka::error::KafkaResult;
use rdkafka::{ClientConfig, ClientContext, TopicPartitionList};
use std::sync::Arc;

pub struct PipelineContext {
    pub health: Arc<Health>,
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
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(tpl) = rebalance {
            // Hand over what is processed: commit the stored offsets before letting go.
            if tpl.count() > 0 {
                let result = consumer.commit_consumer_state(CommitMode::Sync);
                match &result {
                    Ok(()) => OffsetsCommitted {
                        result: Ok(tpl.count()),
                    }
                    .emit(),
                    // Nothing stored since the last commit is not a failure.
                    Err(e) if e.to_string().contains("No offset stored") => {}
                    Err(e) => OffsetsCommitted {
                        result: Err(&e.to_string()),
                    }
                    .emit(),
                }
            }
        }
    }

    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
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
            if !e.to_string().contains("No offset stored") {
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
) -> KafkaResult<PipelineConsumer> {
    let mut c = base.clone();
    // The pipeline's own settings come first; user overrides in `base` are re-applied last.
    c.set("group.id", group_id)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("partition.assignment.strategy", "cooperative-sticky")
        .set("isolation.level", "read_committed")
        .set("session.timeout.ms", "10000")
        .set("heartbeat.interval.ms", "1000");
    for (k, v) in base.config_map() {
        c.set(k, v);
    }
    c.create_with_context(PipelineContext { health })
}
