//! The metric catalogue. Names follow `sightline_<noun>_<unit>`; labels are bounded (topic,
//! partition, event type, class, kind) and never carry a business key.
//!
//! Metrics live in one process-wide registry, so `/metrics` and the demo summary read the same
//! numbers. The README's metrics list is checked against [`catalogue`] by a unit test.

use prometheus::{
    Encoder, GaugeVec, Histogram, HistogramOpts, HistogramVec, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};
use std::sync::{LazyLock, Mutex};

/// The registry all Sightline metrics are registered in.
pub static REGISTRY: LazyLock<Registry> = LazyLock::new(Registry::new);

/// Every family (name, help, labels), recorded at registration: a family with no samples yet
/// is not gathered, but it is still part of the catalogue.
type Family = (&'static str, String, Vec<String>);
static NAMES: Mutex<Vec<Family>> = Mutex::new(Vec::new());

fn register<C: prometheus::core::Collector + Clone + 'static>(name: &'static str, c: C) -> C {
    REGISTRY
        .register(Box::new(c.clone()))
        .expect("metric registered once");
    let desc = c.desc();
    let help = desc.first().map(|d| d.help.clone()).unwrap_or_default();
    let labels = desc
        .first()
        .map(|d| d.variable_labels.clone())
        .unwrap_or_default();
    NAMES.lock().expect("names lock").push((name, help, labels));
    c
}

fn counter(name: &'static str, help: &str, labels: &[&str]) -> IntCounterVec {
    register(
        name,
        IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric"),
    )
}

fn gauge_vec(name: &'static str, help: &str, labels: &[&str]) -> IntGaugeVec {
    register(
        name,
        IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric"),
    )
}

fn fgauge_vec(name: &'static str, help: &str, labels: &[&str]) -> GaugeVec {
    register(
        name,
        GaugeVec::new(Opts::new(name, help), labels).expect("valid metric"),
    )
}

fn gauge(name: &'static str, help: &str) -> IntGauge {
    register(name, IntGauge::new(name, help).expect("valid metric"))
}

fn histogram_vec(
    name: &'static str,
    help: &str,
    labels: &[&str],
    buckets: Vec<f64>,
) -> HistogramVec {
    let opts = HistogramOpts::new(name, help).buckets(buckets);
    register(name, HistogramVec::new(opts, labels).expect("valid metric"))
}

fn histogram(name: &'static str, help: &str, buckets: Vec<f64>) -> Histogram {
    let opts = HistogramOpts::new(name, help).buckets(buckets);
    register(name, Histogram::with_opts(opts).expect("valid metric"))
}

/// All of Sightline's own metrics.
pub struct Metrics {
    pub build_info: IntGaugeVec,
    pub records_consumed: IntCounterVec,
    pub events_consumed: IntCounterVec,
    pub records_dead_lettered: IntCounterVec,
    pub registry_errors: IntCounterVec,
    pub kafka_errors: IntCounterVec,
    pub rebalances: IntCounterVec,
    pub offset_commits: IntCounterVec,
    pub drift_events: IntCounterVec,
    pub contract_violations: IntCounterVec,
    pub alerts_emitted: IntCounterVec,
    pub outputs_produced: IntCounterVec,
    pub sla_events: IntCounterVec,
    pub timers_fired: IntCounterVec,
    pub assigned_partitions: IntGauge,
    pub side_monitors_owner: IntGauge,
    pub ready: IntGauge,
    pub event_age: HistogramVec,
    pub batch_handling: Histogram,
    pub batch_records: Histogram,
    pub consumer_lag_offsets: IntGaugeVec,
    pub consumer_group_lag_offsets: IntGaugeVec,
    pub consumer_lag_seconds: GaugeVec,
    pub consumer_group_lag_seconds: GaugeVec,
    pub consumer_group_status: IntGaugeVec,
    pub lag_time_measurements: IntCounterVec,
    pub lag_status_changes: IntCounterVec,
    pub lag_poll_duration: Histogram,
    pub monitor_event_age: HistogramVec,
    pub restoring: IntGauge,
    pub restored_records: prometheus::IntCounter,
    pub transactions: IntCounterVec,
    pub transaction_commit: Histogram,
    pub engine_restarts: prometheus::IntCounter,
    pub dead_letter_depth: IntGaugeVec,
    pub dead_letter_oldest_age: IntGaugeVec,
    pub dead_letter_records: IntCounterVec,
    pub dead_letter_classes: IntCounterVec,
    pub replays: IntCounterVec,
    pub replayed_records: prometheus::IntCounter,
    pub reloads: IntCounterVec,
    pub own_lag_offsets: IntGauge,
    pub paused_partitions: IntGauge,
    pub instance_loads: IntCounterVec,
    pub http_refused: prometheus::IntCounter,
    pub state_recoveries: prometheus::IntCounter,
    pub http_idle_closed: prometheus::IntCounter,
    pub partitioning_mismatches: IntCounterVec,
    pub own_lag_seconds: prometheus::Gauge,
    pub registry_reachable: IntGauge,
    pub alerts_open: IntGaugeVec,
    pub state_memory: IntGaugeVec,
}

pub static METRICS: LazyLock<Metrics> = LazyLock::new(|| {
    Metrics {
    build_info: gauge_vec(
        "sightline_build_info",
        "Always 1; the version label says which Sightline runs.",
        &["version"],
    ),
    records_consumed: counter(
        "sightline_records_consumed_total",
        "Kafka records read from input topics, good or bad.",
        &["topic"],
    ),
    events_consumed: counter(
        "sightline_events_consumed_total",
        "Records decoded and mapped to a business event, by event type.",
        &["topic", "event_type"],
    ),
    records_dead_lettered: counter(
        "sightline_records_dead_lettered_total",
        "Records sent to a dead-letter topic, by input topic and error class.",
        &["topic", "class"],
    ),
    registry_errors: counter(
        "sightline_registry_errors_total",
        "Failed schema lookups that are retried, not dead-lettered, by what the registry answered (kind: unreachable, timeout, connect, http_500, http_429, http_401, http_403, ...).",
        &["kind"],
    ),
    kafka_errors: counter(
        "sightline_kafka_errors_total",
        "Errors reported by the Kafka client, by kind.",
        &["kind"],
    ),
    rebalances: counter(
        "sightline_rebalances_total",
        "Consumer group rebalance callbacks, by kind (assign, revoke, error).",
        &["kind"],
    ),
    offset_commits: counter(
        "sightline_offset_commits_total",
        "Input offset commits, by result (ok, error).",
        &["result"],
    ),
    drift_events: counter(
        "sightline_schema_drift_events_total",
        "Schema drift events emitted, by topic and verdict (compatible, incompatible).",
        &["topic", "verdict"],
    ),
    contract_violations: counter(
        "sightline_contract_violations_total",
        "JSON records that break their contract, by field and kind; unknown fields count under field=\"_unknown_\".",
        &["topic", "field", "kind"],
    ),
    alerts_emitted: counter(
        "sightline_alerts_emitted_total",
        "Alert records written, by kind and status (firing, resolved).",
        &["kind", "status"],
    ),
    outputs_produced: counter(
        "sightline_outputs_produced_total",
        "Records written to output topics and acknowledged, by topic.",
        &["topic"],
    ),
    sla_events: counter(
        "sightline_sla_events_total",
        "SLA events written, by workflow and outcome (completed, cancelled, expired, step_late).",
        &["workflow", "outcome"],
    ),
    timers_fired: counter(
        "sightline_timers_fired_total",
        "Workflow timers (deadlines, orphan grace, ttl) that came due on the stream clock.",
        &["result"],
    ),
    assigned_partitions: gauge(
        "sightline_assigned_partitions",
        "Input partitions currently assigned to this instance.",
    ),
    side_monitors_owner: gauge(
        "sightline_side_monitors_owner",
        "1 on the one member of the group that emits the lag monitor's and the dead-letter watch's outputs (the owner of the announce topic's partition 0), 0 on the others.",
    ),
    ready: gauge(
        "sightline_ready",
        "1 when /readyz answers 200: partitions assigned, state restored, registry reachable.",
    ),
    event_age: histogram_vec(
        "sightline_event_age_seconds",
        "How old events are: measure=processing is processing time minus event time; measure=producer is the record's broker timestamp minus event time (the delay before the event reached Kafka).",
        &["source", "event_type", "measure"],
        vec![1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 1800.0, 3600.0, 7200.0, 21600.0, 86400.0],
    ),
    batch_handling: histogram(
        "sightline_batch_handling_seconds",
        "Time to handle one micro-batch of input records: decode, detect, outputs acknowledged, state written.",
        vec![0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5],
    ),
    batch_records: histogram(
        "sightline_batch_records",
        "Input records per micro-batch.",
        vec![1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0],
    ),
    consumer_lag_offsets: gauge_vec(
        "sightline_consumer_lag_offsets",
        "Offset lag of a partition for a consumer group (own or watched): high watermark minus committed offset.",
        &["group", "topic", "partition"],
    ),
    consumer_group_lag_offsets: gauge_vec(
        "sightline_consumer_group_lag_offsets",
        "Offset lag of a consumer group: the sum over its partitions.",
        &["group"],
    ),
    consumer_lag_seconds: fgauge_vec(
        "sightline_consumer_lag_seconds",
        "Time lag of a partition for a consumer group: age of the oldest unconsumed record (see sightline_lag_time_measurements_total for how it was measured).",
        &["group", "topic", "partition"],
    ),
    consumer_group_lag_seconds: fgauge_vec(
        "sightline_consumer_group_lag_seconds",
        "Time lag of a consumer group: its largest partition time lag.",
        &["group"],
    ),
    consumer_group_status: gauge_vec(
        "sightline_consumer_group_status",
        "Lag status of a consumer group: 0 OK, 1 REWIND, 2 WARN, 3 ERR, 4 STALL, 5 STOP.",
        &["group"],
    ),
    lag_time_measurements: counter(
        "sightline_lag_time_measurements_total",
        "Partition time-lag measurements, by method (exact, interpolated, unknown).",
        &["method"],
    ),
    lag_status_changes: counter(
        "sightline_lag_status_changes_total",
        "Consumer-group lag status changes (each is an event on the lag topic), by new status.",
        &["status"],
    ),
    lag_poll_duration: histogram(
        "sightline_lag_poll_duration_seconds",
        "Duration of one lag poll over every watched group.",
        vec![0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0],
    ),
    monitor_event_age: histogram_vec(
        "sightline_monitor_event_age_seconds",
        "Event age on arrival of the events an age monitor matches (its stream, event type and dimension values), by measure.",
        &["monitor", "measure"],
        vec![0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 1800.0, 3600.0, 7200.0, 21600.0, 86400.0],
    ),
    restoring: gauge(
        "sightline_state_restoring",
        "1 while local state is being restored from the changelog (/readyz is false meanwhile).",
    ),
    restored_records: register(
        "sightline_state_restored_records_total",
        prometheus::IntCounter::new(
            "sightline_state_restored_records_total",
            "Changelog records applied to local state by restores.",
        )
        .expect("valid metric"),
    ),
    transactions: counter(
        "sightline_transactions_total",
        "Kafka transactions (outputs, dead letters, changelog and input offsets together), by result: committed, aborted.",
        &["result"],
    ),
    transaction_commit: histogram(
        "sightline_transaction_commit_seconds",
        "Time to commit one transaction (send offsets and commit).",
        vec![0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0],
    ),
    engine_restarts: register(
        "sightline_engine_restarts_total",
        prometheus::IntCounter::new(
            "sightline_engine_restarts_total",
            "In-process engine restarts after an aborted Kafka transaction (e.g. a broker restart).",
        )
        .expect("valid metric"),
    ),
    dead_letter_depth: gauge_vec(
        "sightline_dead_letter_depth",
        "Records on a watched dead-letter topic that no replay has gone through yet.",
        &["topic"],
    ),
    dead_letter_oldest_age: gauge_vec(
        "sightline_dead_letter_oldest_age_seconds",
        "Age of the oldest record on a watched dead-letter topic that no replay has gone through (0 when none).",
        &["topic"],
    ),
    dead_letter_records: counter(
        "sightline_dead_letter_records_total",
        "Records written to a watched dead-letter topic (its high watermarks; rate() is the dead-letter rate).",
        &["topic"],
    ),
    dead_letter_classes: counter(
        "sightline_dead_letter_error_classes_total",
        "Dead letters read from a watched topic, by error class (Sightline's class, or the Connect/Spring exception class; unknown without provenance headers).",
        &["topic", "class"],
    ),
    replays: counter(
        "sightline_replays_total",
        "Replays seen on the replay audit topic, by result: completed, dry_run, failed.",
        &["result"],
    ),
    replayed_records: register(
        "sightline_replayed_records_total",
        prometheus::IntCounter::new(
            "sightline_replayed_records_total",
            "Records sent back by replays (from the replay audit topic).",
        )
        .expect("valid metric"),
    ),
    reloads: counter(
        "sightline_reloads_total",
        "Reloads of the source mappings (SIGHUP), by result: ok, refused (more than mappings changed), failed.",
        &["result"],
    ),
    partitioning_mismatches: counter(
        "sightline_partitioning_mismatches_total",
        "Keyed source topics found not partitioned by the correlation key with their configured partitioner (one per topic and process; the alert partitioning_mismatch says which partitioner fits).",
        &["topic"],
    ),
    state_recoveries: register(
        "sightline_state_recoveries_total",
        prometheus::IntCounter::new(
            "sightline_state_recoveries_total",
            "Corrupt state stores moved aside and rebuilt from the changelog.",
        )
        .expect("valid metric"),
    ),
    http_refused: register(
        "sightline_http_connections_refused_total",
        prometheus::IntCounter::new(
            "sightline_http_connections_refused_total",
            "HTTP connections closed at accept because http.max_connections were open.",
        )
        .expect("valid metric"),
    ),
    http_idle_closed: register(
        "sightline_http_connections_idle_closed_total",
        prometheus::IntCounter::new(
            "sightline_http_connections_idle_closed_total",
            "HTTP connections closed after http.idle_timeout_ms without a byte in either direction.",
        )
        .expect("valid metric"),
    ),
    instance_loads: counter(
        "sightline_instance_loads_total",
        "Workflow instances looked up for an event or a due timer, by where they were found: batch (staged in the batch being handled), committing (in the batch whose transaction is committing), cache (the instance cache), store (RocksDB), new (nowhere: the event starts an instance).",
        &["from"],
    ),
    paused_partitions: gauge(
        "sightline_paused_partitions",
        "Input partitions paused because their event time ran more than engine.max_read_ahead_ms ahead of the slowest input of their partition number (time-aligned reading).",
    ),
    own_lag_offsets: gauge(
        "sightline_own_lag_offsets",
        "Offset lag of Sightline's own consumer group (the sum over its partitions; as sightline_consumer_group_lag_offsets for that group).",
    ),
    own_lag_seconds: register(
        "sightline_own_lag_seconds",
        prometheus::Gauge::new(
            "sightline_own_lag_seconds",
            "Time lag of Sightline's own consumer group: its largest partition time lag.",
        )
        .expect("valid metric"),
    ),
    registry_reachable: gauge(
        "sightline_registry_reachable",
        "1 when the schema registry answered its last call (or none is configured), 0 while it does not.",
    ),
    state_memory: gauge_vec(
        "sightline_state_memory_bytes",
        "Memory of the RocksDB state store, by kind: block_cache (in use, bounded by state.block_cache_mb; memtables are charged to it), block_cache_pinned (part of it), memtables, table_readers (index and filter blocks held outside the cache).",
        &["kind"],
    ),
    alerts_open: gauge_vec(
        "sightline_alerts_open",
        "Alerts firing now (emitted FIRING and not yet RESOLVED since this process started), by workflow (empty for stream monitors), step (empty unless a workflow step) and kind.",
        &["workflow", "step", "kind"],
    ),
}
});

/// Names of every metric family Sightline exports (for docs and dashboard checks).
pub fn catalogue() -> Vec<&'static str> {
    LazyLock::force(&METRICS);
    let mut names: Vec<&'static str> = NAMES
        .lock()
        .expect("names lock")
        .iter()
        .map(|n| n.0)
        .collect();
    names.sort_unstable();
    names
}

/// The metrics list as a Markdown table (README.md embeds it; a test keeps them equal).
pub fn reference_markdown() -> String {
    LazyLock::force(&METRICS);
    let mut rows = NAMES.lock().expect("names lock").clone();
    rows.sort();
    let mut out = String::from("| metric | labels | meaning |\n|---|---|---|\n");
    for (name, help, labels) in rows {
        let labels = if labels.is_empty() {
            "—".to_string()
        } else {
            labels.join(", ")
        };
        out.push_str(&format!("| `{name}` | {labels} | {help} |\n"));
    }
    out
}
/// Initialises the catalogue and sets the build info.
pub fn init() {
    METRICS
        .build_info
        .with_label_values(&[crate::VERSION])
        .set(1);
}

/// The Prometheus text exposition of every metric.
pub fn render() -> String {
    let mut buf = Vec::new();
    TextEncoder::new()
        .encode(&REGISTRY.gather(), &mut buf)
        .expect("text encoding never fails");
    String::from_utf8(buf).expect("prometheus text is utf-8")
}

/// Sum of a counter family over all label values matching `filter` (used by the demo summary).
pub fn counter_values(c: &IntCounterVec) -> Vec<(Vec<(String, String)>, u64)> {
    use prometheus::core::Collector;
    let mut out = Vec::new();
    for mf in c.collect() {
        for m in mf.get_metric() {
            let labels = m
                .get_label()
                .iter()
                .map(|l| (l.name().to_string(), l.value().to_string()))
                .collect();
            out.push((labels, m.get_counter().get_value() as u64));
        }
    }
    out
}
