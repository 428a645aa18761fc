//! End of input, for replays and backfills (`sightline run --until-end`).
//!
//! At start, the end offset of every input partition is taken. Once the group has committed
//! every one of them, and its internal topics (repartition, announce) to their current ends,
//! nothing more of that input can arrive: the stream clock is moved to the newest event time
//! seen, minus the allowed lateness (clock.rs `finish`), every deadline due by then fires and
//! commits, a summary is printed, and the process exits 0. Live, the clock instead moves on with
//! the wall clock at the end of the data; a history has no wall clock of its own, so without
//! this the deadlines after the last record of the slowest input would never fire.

use crate::kafka::PipelineConsumer;
use rdkafka::consumer::Consumer;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Where the input ends, and whether the group has got there.
pub struct UntilEnd {
    /// Input partitions and their end offsets at start.
    pub targets: Vec<(String, i32, i64)>,
    /// Internal topics, read to their end as it is when checked.
    pub internal: Vec<String>,
    pub started: Instant,
    last_check: Option<Instant>,
    check: Option<tokio::task::JoinHandle<bool>>,
    /// Every target is committed: the input has ended.
    pub reached: bool,
}

impl UntilEnd {
    pub fn new(targets: Vec<(String, i32, i64)>, internal: Vec<String>) -> Self {
        UntilEnd {
            targets,
            internal,
            started: Instant::now(),
            last_check: None,
            check: None,
            reached: false,
        }
    }

    /// Takes the answer of the last check and starts another (at most once a second, on a
    /// blocking thread: the calls wait for the broker). True once the end is reached.
    pub fn poll(&mut self, consumer: &Arc<PipelineConsumer>) -> bool {
        if self.reached {
            return true;
        }
        if let Some(h) = &self.check {
            if !h.is_finished() {
                return false;
            }
            if let Some(Ok(true)) =
                futures::FutureExt::now_or_never(self.check.take().expect("a check"))
            {
                self.reached = true;
                return true;
            }
        }
        if self
            .last_check
            .is_some_and(|at| at.elapsed() < Duration::from_secs(1))
        {
            return false;
        }
        self.last_check = Some(Instant::now());
        let (consumer, targets, internal) = (
            consumer.clone(),
            self.targets.clone(),
            self.internal.clone(),
        );
        self.check = Some(tokio::task::spawn_blocking(move || {
            committed_to_end(&consumer, &targets, &internal)
        }));
        false
    }
}

/// Whether the group has committed every target, and every partition of `internal` to its
/// current end.
fn committed_to_end(
    consumer: &PipelineConsumer,
    targets: &[(String, i32, i64)],
    internal: &[String],
) -> bool {
    let timeout = Duration::from_secs(5);
    let mut ends: Vec<(String, i32, i64)> = targets.to_vec();
    for t in internal {
        let Ok(md) = consumer.fetch_metadata(Some(t), timeout) else {
            return false;
        };
        for p in md
            .topics()
            .first()
            .map(|t| t.partitions())
            .unwrap_or_default()
        {
            let Ok((low, high)) = consumer.fetch_watermarks(t, p.id(), timeout) else {
                return false;
            };
            if high > low {
                ends.push((t.clone(), p.id(), high));
            }
        }
    }
    let ends: Vec<_> = ends.into_iter().filter(|(_, _, end)| *end > 0).collect();
    if ends.is_empty() {
        return true;
    }
    let mut tpl = rdkafka::TopicPartitionList::new();
    for (t, p, _) in &ends {
        tpl.add_partition(t, *p);
    }
    let Ok(committed) = consumer.committed_offsets(tpl, timeout) else {
        return false;
    };
    ends.iter().all(|(t, p, end)| {
        committed
            .find_partition(t, *p)
            .is_some_and(|e| super::committed_to(e.offset(), *end))
    })
}

/// The end offsets of every partition of `topics` now.
pub fn end_offsets(
    base: &rdkafka::ClientConfig,
    topics: &[String],
) -> anyhow::Result<Vec<(String, i32, i64)>> {
    let c: rdkafka::consumer::BaseConsumer = base.create()?;
    let timeout = Duration::from_secs(10);
    let mut out = Vec::new();
    for t in topics {
        let md = c
            .fetch_metadata(Some(t), timeout)
            .map_err(|e| anyhow::anyhow!("--until-end: reading the partitions of `{t}`: {e}"))?;
        for p in md
            .topics()
            .first()
            .map(|t| t.partitions())
            .unwrap_or_default()
        {
            let (_, high) = c.fetch_watermarks(t, p.id(), timeout).map_err(|e| {
                anyhow::anyhow!(
                    "--until-end: reading the end offset of `{t}`[{}]: {e}",
                    p.id()
                )
            })?;
            out.push((t.clone(), p.id(), high));
        }
    }
    Ok(out)
}

/// What a run to the end read and emitted, from the process's own counters.
pub fn summary(targets: &[(String, i32, i64)], watermark: Option<i64>, seconds: f64) -> String {
    use crate::observe::metrics::METRICS;
    let sum = |v: &prometheus::IntCounterVec, keep: &dyn Fn(&str, &str) -> bool| -> u64 {
        crate::observe::metrics::counter_values(v)
            .into_iter()
            .filter(|(labels, _)| labels.iter().any(|(k, v)| keep(k, v)) || labels.is_empty())
            .map(|(_, n)| n)
            .sum()
    };
    let topics: std::collections::BTreeSet<&str> =
        targets.iter().map(|(t, _, _)| t.as_str()).collect();
    let records = sum(&METRICS.records_consumed, &|k, v| {
        k == "topic" && topics.contains(v)
    });
    let all = |_: &str, _: &str| true;
    let dead = sum(&METRICS.records_dead_lettered, &all);
    let firing = sum(&METRICS.alerts_emitted, &|k, v| {
        k == "status" && v == "firing"
    });
    let alerts = sum(&METRICS.alerts_emitted, &all);
    let sla = sum(&METRICS.sla_events, &all);
    let timers = sum(&METRICS.timers_fired, &all);
    let wm = watermark
        .and_then(chrono::DateTime::from_timestamp_millis)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_else(|| "none (no event read)".into());
    format!(
        "until-end: read {records} records from {} partitions of {} topics to the end offsets seen at start \
         ({dead} dead-lettered); final watermark {wm}; emitted {alerts} alerts ({firing} FIRING) and {sla} SLA events; \
         {timers} timers fired; {seconds:.1} s",
        targets.len(),
        topics.len()
    )
}

/// Every topic the topologies read: exact source topics, and the topics a pattern source
/// matches now.
pub fn input_topics(
    base: &rdkafka::ClientConfig,
    topologies: &[crate::topology::Topology],
) -> anyhow::Result<Vec<String>> {
    let mut out = std::collections::BTreeSet::new();
    let mut patterns = Vec::new();
    for s in topologies.iter().flat_map(|t| &t.sources) {
        match s.topic_pattern() {
            Some(p) => patterns.push(regex::Regex::new(p)?),
            None => {
                out.insert(s.topic.clone());
            }
        }
    }
    if !patterns.is_empty() {
        let c: rdkafka::consumer::BaseConsumer = base.create()?;
        let md = c
            .fetch_metadata(None, Duration::from_secs(10))
            .map_err(|e| anyhow::anyhow!("--until-end: listing topics for pattern sources: {e}"))?;
        for t in md.topics() {
            if patterns.iter().any(|r| r.is_match(t.name())) {
                out.insert(t.name().to_string());
            }
        }
    }
    Ok(out.into_iter().collect())
}
