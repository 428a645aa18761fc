//! Typed internal events: each one logs (tracing) and counts (metrics) in one place, in the
//! manner of Vector's `internal_events`. Call sites stay one line: `Event { .. }.emit()`.
//!
//! Every log line about a record carries its topic, partition and offset. Nothing here ever
//! formats a secret: errors are passed in already redacted (see `config::secret`).

use super::metrics::METRICS;
use prometheus::{Histogram, IntCounter};
use std::collections::HashMap;

/// Metric handles of the per-record events, resolved once per label set: a
/// `with_label_values` hashes its labels and takes the metric's lock, four times per record.
/// One per engine loop (not shared between threads).
#[derive(Default)]
pub struct RecordHandles {
    topics: HashMap<String, TopicHandles>,
    /// Age monitor -> (its measure, its histogram).
    monitor_ages: HashMap<String, (&'static str, Histogram)>,
    /// Label sets held.
    kept: usize,
}

/// Label sets held at most: beyond it (event types are read from the data), a record's
/// handles are resolved as they used to be, so memory stays bounded.
const HANDLES_KEPT: usize = 10_000;

struct TopicHandles {
    consumed: IntCounter,
    /// event type -> handles, with the source they were resolved for.
    types: HashMap<String, TypeHandles>,
}

struct TypeHandles {
    source: String,
    events: IntCounter,
    processing: Histogram,
    producer: Histogram,
}

impl RecordHandles {
    /// An age monitor measured an event `age_ms` old.
    pub fn monitor_age(&mut self, monitor: &str, measure: &'static str, age_ms: i64) {
        let secs = age_ms as f64 / 1000.0;
        match self.monitor_ages.get(monitor) {
            Some((m, h)) if *m == measure => h.observe(secs),
            _ => {
                let h = METRICS
                    .monitor_event_age
                    .with_label_values(&[monitor, measure]);
                h.observe(secs);
                if self.kept < HANDLES_KEPT {
                    let new = self
                        .monitor_ages
                        .insert(monitor.to_string(), (measure, h))
                        .is_none();
                    self.kept += usize::from(new);
                }
            }
        }
    }

    fn topic(&mut self, topic: &str) -> Option<&mut TopicHandles> {
        if !self.topics.contains_key(topic) {
            if self.kept >= HANDLES_KEPT {
                return None;
            }
            let consumed = METRICS.records_consumed.with_label_values(&[topic]);
            self.topics.insert(
                topic.to_string(),
                TopicHandles {
                    consumed,
                    types: HashMap::new(),
                },
            );
            self.kept += 1;
        }
        self.topics.get_mut(topic)
    }
}

/// One record read from an input topic (good or bad). Counted, not logged.
pub struct RecordConsumed<'a> {
    pub topic: &'a str,
}

impl RecordConsumed<'_> {
    pub fn emit(&self, handles: &mut RecordHandles) {
        match handles.topic(self.topic) {
            Some(t) => t.consumed.inc(),
            None => METRICS
                .records_consumed
                .with_label_values(&[self.topic])
                .inc(),
        }
    }
}

/// A record decoded and mapped to a business event; its age is observed two ways.
pub struct EventMapped<'a> {
    pub topic: &'a str,
    pub source: &'a str,
    pub event_type: &'a str,
    pub event_time_ms: i64,
    /// The record's broker timestamp (append time, or create time on CreateTime topics).
    pub record_time_ms: Option<i64>,
    pub now_ms: i64,
}

impl EventMapped<'_> {
    fn resolve(&self) -> TypeHandles {
        TypeHandles {
            source: self.source.to_string(),
            events: METRICS
                .events_consumed
                .with_label_values(&[self.topic, self.event_type]),
            processing: METRICS.event_age.with_label_values(&[
                self.source,
                self.event_type,
                "processing",
            ]),
            producer: METRICS.event_age.with_label_values(&[
                self.source,
                self.event_type,
                "producer",
            ]),
        }
    }

    pub fn emit(&self, handles: &mut RecordHandles) {
        let full = handles.kept >= HANDLES_KEPT;
        let mut added = false;
        if let Some(t) = handles.topic(self.topic) {
            let known = t
                .types
                .get(self.event_type)
                .is_some_and(|h| h.source == self.source);
            if !known && !full {
                added = t
                    .types
                    .insert(self.event_type.to_string(), self.resolve())
                    .is_none();
            }
        }
        handles.kept += usize::from(added);
        let fresh;
        let h = match handles
            .topics
            .get(self.topic)
            .and_then(|t| t.types.get(self.event_type))
            .filter(|h| h.source == self.source)
        {
            Some(h) => h,
            None => {
                fresh = self.resolve();
                &fresh
            }
        };
        h.events.inc();
        let secs = |ms: i64| ms.max(0) as f64 / 1000.0;
        h.processing.observe(secs(self.now_ms - self.event_time_ms));
        if let Some(t) = self.record_time_ms {
            h.producer.observe(secs(t - self.event_time_ms));
        }
    }
}

/// A record that could not be decoded or mapped went to a dead-letter topic.
pub struct RecordDeadLettered<'a> {
    pub topic: &'a str,
    pub partition: i32,
    pub offset: i64,
    pub class: &'a str,
    pub reason: &'a str,
    pub dead_letter_topic: &'a str,
}

impl RecordDeadLettered<'_> {
    pub fn emit(&self) {
        tracing::warn!(
            topic = self.topic,
            partition = self.partition,
            offset = self.offset,
            class = self.class,
            dead_letter_topic = self.dead_letter_topic,
            reason = self.reason,
            "record dead-lettered"
        );
        METRICS
            .records_dead_lettered
            .with_label_values(&[self.topic, self.class])
            .inc();
    }
}

/// The schema registry did not answer; the record's partition holds its position and retries.
pub struct RegistryUnavailable<'a> {
    pub topic: &'a str,
    pub partition: i32,
    pub offset: i64,
    pub error: &'a str,
    /// What the registry answered (`unreachable`, `timeout`, `http_500`, `http_401`, ...).
    pub status: &'a str,
    pub retry_in_ms: u64,
}

impl RegistryUnavailable<'_> {
    pub fn emit(&self) {
        tracing::warn!(
            topic = self.topic,
            partition = self.partition,
            offset = self.offset,
            error = self.error,
            status = self.status,
            retry_in_ms = self.retry_in_ms,
            "schema registry unavailable; this partition holds its position and retries, the others go on"
        );
        METRICS
            .registry_errors
            .with_label_values(&[self.status])
            .inc();
    }
}

/// The registry answers again after an outage.
pub struct RegistryRecovered;

impl RegistryRecovered {
    pub fn emit(&self) {
        tracing::info!("schema registry reachable again");
    }
}

/// The consumer group gave this instance partitions, or took them away.
pub struct Rebalanced<'a> {
    pub kind: &'a str,
    pub partitions: &'a str,
    pub assigned_now: i64,
}

impl Rebalanced<'_> {
    pub fn emit(&self) {
        tracing::info!(
            kind = self.kind,
            partitions = self.partitions,
            assigned_now = self.assigned_now,
            "consumer group rebalance"
        );
        METRICS.rebalances.with_label_values(&[self.kind]).inc();
        METRICS.assigned_partitions.set(self.assigned_now);
    }
}

/// Input offsets were committed (or failed to be).
pub struct OffsetsCommitted<'a> {
    pub result: Result<usize, &'a str>,
}

impl OffsetsCommitted<'_> {
    pub fn emit(&self) {
        match self.result {
            Ok(n) => {
                tracing::debug!(partitions = n, "offsets committed");
                METRICS.offset_commits.with_label_values(&["ok"]).inc();
            }
            Err(e) => {
                tracing::warn!(
                    error = e,
                    "offset commit failed; will retry at the next interval"
                );
                METRICS.offset_commits.with_label_values(&["error"]).inc();
            }
        }
    }
}

/// An error reported by the Kafka client (transport, broker, producer delivery).
pub struct KafkaClientError<'a> {
    pub kind: &'a str,
    pub error: &'a str,
}

impl KafkaClientError<'_> {
    pub fn emit(&self) {
        tracing::warn!(kind = self.kind, error = self.error, "kafka client error");
        METRICS.kafka_errors.with_label_values(&[self.kind]).inc();
    }
}

/// A schema drift event was written.
pub struct DriftDetected<'a> {
    pub topic: &'a str,
    pub drift_id: &'a str,
    pub verdict: &'a str,
}

impl DriftDetected<'_> {
    pub fn emit(&self) {
        tracing::info!(
            topic = self.topic,
            drift_id = self.drift_id,
            verdict = self.verdict,
            "schema drift"
        );
        METRICS
            .drift_events
            .with_label_values(&[self.topic, self.verdict])
            .inc();
    }
}

/// A JSON record broke its contract (counted; the drift detector decides whether it is news).
pub struct ContractViolated<'a> {
    pub topic: &'a str,
    pub field: &'a str,
    pub kind: &'a str,
}

impl ContractViolated<'_> {
    pub fn emit(&self) {
        METRICS
            .contract_violations
            .with_label_values(&[self.topic, self.field, self.kind])
            .inc();
    }
}

/// An alert was written.
pub struct AlertEmitted<'a> {
    pub dedupe_id: &'a str,
    pub kind: &'a str,
    pub status: &'a str,
    pub summary: &'a str,
}

impl AlertEmitted<'_> {
    pub fn emit(&self) {
        tracing::warn!(
            dedupe_id = self.dedupe_id,
            kind = self.kind,
            status = self.status,
            summary = self.summary,
            "alert"
        );
        METRICS
            .alerts_emitted
            .with_label_values(&[self.kind, self.status])
            .inc();
    }
}

/// An output record was acknowledged by the broker.
pub struct OutputProduced<'a> {
    pub topic: &'a str,
}

impl OutputProduced<'_> {
    pub fn emit(&self) {
        METRICS
            .outputs_produced
            .with_label_values(&[self.topic])
            .inc();
    }
}

/// An SLA event was written.
pub struct SlaEmitted<'a> {
    pub workflow: &'a str,
    pub outcome: &'a str,
}

impl SlaEmitted<'_> {
    pub fn emit(&self) {
        METRICS
            .sla_events
            .with_label_values(&[self.workflow, self.outcome])
            .inc();
    }
}

/// Workflow timers came due on the stream clock.
pub struct TimersFired {
    pub count: usize,
}

impl TimersFired {
    pub fn emit(&self) {
        if self.count > 0 {
            tracing::debug!(count = self.count, "timers fired");
            METRICS
                .timers_fired
                .with_label_values(&["fired"])
                .inc_by(self.count as u64);
        }
    }
}

/// A consumer group's lag status changed (the event went to the lag topic).
pub struct LagStatusChanged<'a> {
    pub group: &'a str,
    pub status: &'a str,
    pub previous: Option<&'a str>,
    pub total_lag: i64,
}

impl LagStatusChanged<'_> {
    pub fn emit(&self) {
        tracing::info!(
            group = self.group,
            status = self.status,
            previous = self.previous.unwrap_or("none"),
            total_lag = self.total_lag,
            "consumer group lag status changed"
        );
        METRICS
            .lag_status_changes
            .with_label_values(&[self.status])
            .inc();
    }
}

/// One lag poll finished.
pub struct LagPolled {
    pub groups: usize,
    pub partitions: usize,
    pub reads: usize,
    pub seconds: f64,
}

impl LagPolled {
    pub fn emit(&self) {
        tracing::debug!(
            groups = self.groups,
            partitions = self.partitions,
            reads = self.reads,
            seconds = self.seconds,
            "lag polled"
        );
        METRICS.lag_poll_duration.observe(self.seconds);
    }
}

/// A changelog restore began (state is being brought up to date; /readyz is false).
pub struct RestoreStarted {
    pub partitions: usize,
}

impl RestoreStarted {
    pub fn emit(&self) {
        tracing::info!(
            partitions = self.partitions,
            "restoring state from the changelog"
        );
        METRICS.restoring.set(1);
    }
}

/// Restore progress (every 10,000 records).
pub struct RestoreProgress {
    pub records: u64,
}

impl RestoreProgress {
    pub fn emit(&self) {
        tracing::info!(
            records = self.records,
            "restoring state: records applied so far"
        );
    }
}

/// A changelog restore finished.
pub struct RestoreFinished<'a> {
    pub partitions: usize,
    pub records: u64,
    pub millis: u64,
    /// What was read, per changelog partition: `p:from-to` (offsets, `to` exclusive), so that an
    /// operator (or a test) can count exactly what a restore applied.
    pub ranges: &'a str,
}

impl RestoreFinished<'_> {
    pub fn emit(&self) {
        tracing::info!(
            partitions = self.partitions,
            records = self.records,
            millis = self.millis,
            ranges = self.ranges,
            "state restored from the changelog"
        );
        METRICS.restoring.set(0);
    }
}

/// A Kafka transaction ended.
pub struct TransactionEnded<'a> {
    pub result: &'a str,
    pub seconds: f64,
    pub records: usize,
}

impl TransactionEnded<'_> {
    pub fn emit(&self) {
        METRICS.transactions.with_label_values(&[self.result]).inc();
        if self.result == "committed" {
            METRICS.transaction_commit.observe(self.seconds);
        } else {
            tracing::error!(
                result = self.result,
                records = self.records,
                "transaction not committed"
            );
        }
    }
}

/// A keyed source's records are not where its partitioner puts their correlation keys.
pub struct PartitioningMismatch<'a> {
    pub topic: &'a str,
    pub summary: &'a str,
}

impl PartitioningMismatch<'_> {
    pub fn emit(&self) {
        let topic = self.topic;
        METRICS
            .partitioning_mismatches
            .with_label_values(&[topic])
            .inc();
        tracing::error!(
            topic,
            summary = self.summary,
            "partitioning mismatch: workflow state of this topic lands on the wrong partitions"
        );
    }
}

/// A corrupt state store was moved aside and is rebuilt from the changelog.
pub struct StateRecovered<'a> {
    pub dir: &'a str,
    pub aside: &'a str,
    pub why: &'a str,
}

impl StateRecovered<'_> {
    pub fn emit(&self) {
        METRICS.state_recoveries.inc();
        tracing::error!(
            dir = self.dir,
            moved_to = self.aside,
            reason = self.why,
            "state store corrupt: moved aside (kept for inspection) and rebuilt from the changelog as partitions are assigned"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mapped<'a>(topic: &'a str, source: &'a str, event_type: &'a str) -> EventMapped<'a> {
        EventMapped {
            topic,
            source,
            event_type,
            event_time_ms: 1_000,
            record_time_ms: Some(1_500),
            now_ms: 3_000,
        }
    }

    #[test]
    fn resolved_handles_count_into_the_same_series_as_a_lookup_per_record() {
        let mut handles = RecordHandles::default();
        let consumed = || {
            METRICS
                .records_consumed
                .with_label_values(&["handles.t"])
                .get()
        };
        let events = |ty: &str| {
            METRICS
                .events_consumed
                .with_label_values(&["handles.t", ty])
                .get()
        };
        let ages = |source: &str, measure: &str| {
            METRICS
                .event_age
                .with_label_values(&[source, "placed", measure])
                .get_sample_count()
        };
        let before = (consumed(), events("placed"), ages("a", "processing"));
        for _ in 0..3 {
            RecordConsumed { topic: "handles.t" }.emit(&mut handles);
            mapped("handles.t", "a", "placed").emit(&mut handles);
        }
        assert_eq!(consumed(), before.0 + 3);
        assert_eq!(events("placed"), before.1 + 3);
        assert_eq!(ages("a", "processing"), before.2 + 3);
        assert_eq!(ages("a", "producer"), 3);
        // The topic's source renamed (a reload): the ages go to the new source's series.
        mapped("handles.t", "b", "placed").emit(&mut handles);
        assert_eq!(ages("b", "processing"), 1);
        assert_eq!(ages("a", "processing"), before.2 + 3);
        assert_eq!(events("placed"), before.1 + 4);
    }

    #[test]
    fn past_the_bound_records_are_still_counted() {
        let mut handles = RecordHandles::default();
        for i in 0..HANDLES_KEPT {
            handles.topics.insert(
                format!("filler.{i}"),
                TopicHandles {
                    consumed: METRICS.records_consumed.with_label_values(&["filler"]),
                    types: HashMap::new(),
                },
            );
        }
        handles.kept = HANDLES_KEPT;
        let before = METRICS
            .events_consumed
            .with_label_values(&["bound.t", "x"])
            .get();
        RecordConsumed { topic: "bound.t" }.emit(&mut handles);
        mapped("bound.t", "s", "x").emit(&mut handles);
        assert_eq!(handles.kept, HANDLES_KEPT);
        assert_eq!(
            METRICS
                .records_consumed
                .with_label_values(&["bound.t"])
                .get(),
            1
        );
        assert_eq!(
            METRICS
                .events_consumed
                .with_label_values(&["bound.t", "x"])
                .get(),
            before + 1
        );
    }
}
