//! The lag monitor: on an interval, samples the committed offsets of Sightline's own group and
//! of the watched groups, and the high watermarks of their partitions; measures each lagging
//! partition's time lag; evaluates each group's status over its sliding window
//! ([`crate::detectors::lag`]); exports it all as metrics; and writes a lag event when a group's
//! status changes.
//!
//! Time lag is the age of the oldest unconsumed record. It is measured exactly: the record at
//! the committed offset is read (one fetch per partition, assigned at that offset, never
//! committing), and its timestamp is cached, since the record at an offset never changes; so a
//! stalled group costs nothing after the first poll. Only when that record cannot be read (it
//! was deleted by retention, or the read timed out) is the time interpolated from the sampled
//! high watermarks, and the method says so.
//!
//! The monitor runs beside the engine on its own clients; the blocking Kafka calls run on the
//! blocking thread pool.

use crate::config::{Config, LagConfig};
use crate::detectors::lag::{interpolate_written_at, GroupWindows, LagStatus, TimeLagMethod};
use crate::kafka::offsets::{self, Tp};
use crate::observe::events::{KafkaClientError, LagPolled};
use crate::observe::metrics::METRICS;
use crate::outputs::{LagEvent, Output, PartitionLag};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// High-watermark samples kept per partition for interpolation (at least; up to twice).
const HISTORY: usize = 720;

/// What the monitor knows between polls.
pub struct LagTracker {
    window: usize,
    groups: BTreeMap<String, GroupTrack>,
    /// (wall ms, high watermark) per partition, oldest first.
    history: HashMap<Tp, Vec<(i64, i64)>>,
    /// Timestamp of the record at an offset (read once, never changes).
    timestamps: HashMap<(Tp, i64), i64>,
}

struct GroupTrack {
    windows: GroupWindows,
    status: Option<LagStatus>,
    partitions: BTreeSet<Tp>,
}

/// One group's committed offsets at one poll.
pub type Committed = HashMap<Tp, i64>;

impl LagTracker {
    pub fn new(window: usize) -> Self {
        LagTracker {
            window,
            groups: BTreeMap::new(),
            history: HashMap::new(),
            timestamps: HashMap::new(),
        }
    }

    /// Records the high watermarks sampled at `now`.
    pub fn observe_highs(&mut self, now: i64, highs: &HashMap<Tp, i64>) {
        for (tp, &high) in highs {
            let h = self.history.entry(tp.clone()).or_default();
            h.push((now, high));
            // Trimmed in bulk: the history stays one slice, read without copying.
            if h.len() > 2 * HISTORY {
                h.drain(..h.len() - HISTORY);
            }
        }
    }

    /// The (partition, offset) pairs whose record timestamp is needed and not known.
    pub fn wanted_reads(
        &self,
        committed: &BTreeMap<String, Committed>,
        highs: &HashMap<Tp, i64>,
    ) -> Vec<(Tp, i64)> {
        let mut want: BTreeSet<(Tp, i64)> = BTreeSet::new();
        for offsets in committed.values() {
            for (tp, &c) in offsets {
                let lagging = highs.get(tp).is_some_and(|&h| h > c);
                if lagging && !self.timestamps.contains_key(&(tp.clone(), c)) {
                    want.insert((tp.clone(), c));
                }
            }
        }
        want.into_iter().collect()
    }

    /// Remembers record timestamps read at offsets.
    pub fn learn_timestamps(&mut self, read: impl IntoIterator<Item = ((Tp, i64), i64)>) {
        self.timestamps.extend(read);
    }

    /// A partition's time lag at `now` for a consumer at `committed`.
    pub fn time_lag(
        &self,
        tp: &Tp,
        committed: i64,
        high: i64,
        now: i64,
    ) -> (Option<i64>, TimeLagMethod) {
        if high <= committed {
            return (Some(0), TimeLagMethod::Exact);
        }
        if let Some(ts) = self.timestamps.get(&(tp.clone(), committed)) {
            return (Some((now - ts).max(0)), TimeLagMethod::Exact);
        }
        let history = self.history.get(tp).map(Vec::as_slice).unwrap_or(&[]);
        match interpolate_written_at(history, committed) {
            Some(at) => (Some((now - at).max(0)), TimeLagMethod::Interpolated),
            None => (None, TimeLagMethod::Unknown),
        }
    }

    /// Feeds one poll's samples, updates the metrics, and returns every group's event at this
    /// poll: its status now, and the one it had at the previous poll. Which of them are news is
    /// decided where the announced statuses are kept ([`crate::detectors::levels`]).
    pub fn evaluate(
        &mut self,
        now: i64,
        committed: &BTreeMap<String, Committed>,
        highs: &HashMap<Tp, i64>,
    ) -> Vec<LagEvent> {
        let m = &*METRICS;
        let mut events = Vec::new();
        for (group, offsets) in committed {
            let track = self
                .groups
                .entry(group.clone())
                .or_insert_with(|| GroupTrack {
                    windows: GroupWindows::new(self.window),
                    status: None,
                    partitions: BTreeSet::new(),
                });
            let mut rows = Vec::new();
            for (tp, &c) in offsets {
                let Some(&high) = highs.get(tp) else { continue };
                track.windows.observe(&tp.0, tp.1, now, c, high);
                rows.push((tp.clone(), c, high));
            }
            rows.sort();
            let (status, per) = track.windows.status(now);
            tracing::trace!(group = %group, status = status.as_str(), partitions = ?rows, "lag sampled");
            let mut total = 0i64;
            let mut max_time: Option<i64> = None;
            let mut partitions = Vec::with_capacity(rows.len());
            let now_present: BTreeSet<Tp> = rows.iter().map(|r| r.0.clone()).collect();
            for gone in track.partitions.difference(&now_present) {
                let p = gone.1.to_string();
                let _ = m
                    .consumer_lag_offsets
                    .remove_label_values(&[group, &gone.0, &p]);
                let _ = m
                    .consumer_lag_seconds
                    .remove_label_values(&[group, &gone.0, &p]);
            }
            track.partitions = now_present;
            for (tp, c, high) in rows {
                let lag = (high - c).max(0);
                total += lag;
                let (time_lag, method) = self.time_lag(&tp, c, high, now);
                if let Some(t) = time_lag {
                    max_time = Some(max_time.map_or(t, |x: i64| x.max(t)));
                }
                let p = tp.1.to_string();
                m.consumer_lag_offsets
                    .with_label_values(&[group, &tp.0, &p])
                    .set(lag);
                match time_lag {
                    Some(t) => m
                        .consumer_lag_seconds
                        .with_label_values(&[group, &tp.0, &p])
                        .set(t as f64 / 1000.0),
                    None => {
                        let _ = m
                            .consumer_lag_seconds
                            .remove_label_values(&[group, &tp.0, &p]);
                    }
                }
                m.lag_time_measurements
                    .with_label_values(&[&method.as_str().to_ascii_lowercase()])
                    .inc();
                partitions.push(PartitionLag {
                    status: per.get(&tp).copied().unwrap_or(LagStatus::Ok),
                    topic: tp.0,
                    partition: tp.1,
                    committed_offset: c,
                    high_watermark: high,
                    lag_offsets: lag,
                    time_lag_ms: time_lag,
                    time_lag_method: method,
                });
            }
            m.consumer_group_lag_offsets
                .with_label_values(&[group])
                .set(total);
            m.consumer_group_lag_seconds
                .with_label_values(&[group])
                .set(max_time.unwrap_or(0) as f64 / 1000.0);
            m.consumer_group_status
                .with_label_values(&[group])
                .set(status_code(status));
            let track = self.groups.get_mut(group).expect("inserted above");
            {
                events.push(LagEvent {
                    event_id: format!("{group}/{now}"),
                    group: group.clone(),
                    status,
                    previous_status: track.status,
                    detected_at: now,
                    total_lag_offsets: total,
                    max_time_lag_ms: max_time,
                    window_samples: self.window as i32,
                    partitions,
                    sightline_version: crate::VERSION.to_string(),
                });
            }
            track.status = Some(status);
        }
        // Keep only the timestamps of offsets some group is still at.
        let live: HashSet<(Tp, i64)> = committed
            .values()
            .flat_map(|o| o.iter().map(|(tp, &c)| (tp.clone(), c)))
            .collect();
        self.timestamps.retain(|k, _| live.contains(k));
        events
    }

    /// The last evaluated status of a group.
    pub fn status(&self, group: &str) -> Option<LagStatus> {
        self.groups.get(group).and_then(|g| g.status)
    }
}

/// The status as the gauge value (the order of severity).
pub fn status_code(s: LagStatus) -> i64 {
    match s {
        LagStatus::Ok => 0,
        LagStatus::Rewind => 1,
        LagStatus::Warn => 2,
        LagStatus::Err => 3,
        LagStatus::Stall => 4,
        LagStatus::Stop => 5,
    }
}

/// The Kafka side of the monitor: one consumer client used for admin requests and for reading
/// records at committed offsets. It never subscribes or commits, so it joins no group.
pub struct LagPoller {
    client: BaseConsumer,
    own_group: String,
    groups: Vec<String>,
    regex: Option<regex::Regex>,
    request_timeout: Duration,
    read_timeout: Duration,
    /// Topics whose partitions are asked for by name when a broker answers "all of a group's
    /// offsets" with nothing (librdkafka's mock cluster does): Sightline's own sources and
    /// `lag.topics`.
    known_topics: Vec<String>,
    pub tracker: LagTracker,
}

impl LagPoller {
    pub fn new(
        base: &ClientConfig,
        own_group: &str,
        cfg: &LagConfig,
        own_topics: &[String],
    ) -> anyhow::Result<Self> {
        let mut c = crate::kafka::client::reader_config(base, &format!("{own_group}.lag-reader"));
        c.set("enable.partition.eof", "false")
            // A deleted offset is an error, not a silent jump: the read falls back instead.
            .set("auto.offset.reset", "error")
            .set("isolation.level", "read_uncommitted")
            // One record per partition is wanted; do not prefetch more.
            .set("queued.min.messages", "1")
            .set("queued.max.messages.kbytes", "1024")
            .set("max.partition.fetch.bytes", "65536")
            .set("fetch.wait.max.ms", "10");
        let client: BaseConsumer = c.create()?;
        let regex = if cfg.groups_regex.is_empty() {
            None
        } else {
            Some(regex::Regex::new(&cfg.groups_regex)?)
        };
        Ok(LagPoller {
            client,
            own_group: own_group.to_string(),
            groups: cfg.groups.clone(),
            regex,
            request_timeout: Duration::from_millis(cfg.request_timeout_ms),
            read_timeout: Duration::from_millis(cfg.read_timeout_ms),
            known_topics: own_topics
                .iter()
                .chain(&cfg.topics)
                .filter(|t| !t.starts_with('^'))
                .cloned()
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect(),
            tracker: LagTracker::new(cfg.window),
        })
    }

    /// The groups to sample this poll: own, listed, and those matching the regex.
    fn watched(&self) -> Vec<String> {
        let mut all: BTreeSet<String> = BTreeSet::new();
        all.insert(self.own_group.clone());
        all.extend(self.groups.iter().cloned());
        if let Some(re) = &self.regex {
            match offsets::list_groups(self.client.client(), self.request_timeout) {
                Ok(names) => all.extend(names.into_iter().filter(|g| re.is_match(g))),
                Err(e) => KafkaClientError {
                    kind: "lag_poll",
                    error: &format!("listing consumer groups: {e}"),
                }
                .emit(),
            }
        }
        all.remove(&format!("{}.lag-reader", self.own_group));
        all.into_iter().collect()
    }

    /// One poll: sample, read, evaluate. Blocking.
    pub fn poll_once(&mut self, now: i64) -> Vec<LagEvent> {
        let started = Instant::now();
        // Group-offset requests go through the group coordinator; librdkafka 2.12 can abort
        // (an enq_once assertion) when such a request times out while no broker is up and the
        // coordinator answers later. So no request starts while the cluster is unreachable.
        if let Err(e) = self.client.fetch_metadata(
            self.known_topics.first().map(String::as_str),
            Duration::from_secs(2),
        ) {
            KafkaClientError {
                kind: "lag_poll",
                error: &format!("cluster unreachable, lag poll skipped: {e}"),
            }
            .emit();
            return Vec::new();
        }
        let mut committed: BTreeMap<String, Committed> = BTreeMap::new();
        let mut named: Option<Vec<Tp>> = None;
        for group in self.watched() {
            let mut answer =
                offsets::group_offsets(self.client.client(), &group, None, self.request_timeout);
            if answer.as_ref().is_ok_and(|o| o.is_empty()) && !self.known_topics.is_empty() {
                let parts = named.get_or_insert_with(|| self.known_partitions());
                answer = offsets::group_offsets(
                    self.client.client(),
                    &group,
                    Some(parts),
                    self.request_timeout,
                );
            }
            match answer {
                Ok(o) => {
                    committed.insert(group, o);
                }
                Err(e) => KafkaClientError {
                    kind: "lag_poll",
                    error: &format!("committed offsets of group `{group}`: {e}"),
                }
                .emit(),
            }
        }
        let partitions: Vec<Tp> = committed
            .values()
            .flat_map(|o| o.keys().cloned())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let highs =
            match offsets::high_watermarks(self.client.client(), &partitions, self.request_timeout)
            {
                Ok(h) => h,
                Err(e) => {
                    KafkaClientError {
                        kind: "lag_poll",
                        error: &format!("high watermarks: {e}"),
                    }
                    .emit();
                    return Vec::new();
                }
            };
        self.tracker.observe_highs(now, &highs);
        let wanted = self.tracker.wanted_reads(&committed, &highs);
        // A record below the log start was deleted (retention): reading it is impossible, so
        // those partitions are interpolated without waiting for a read that cannot succeed.
        let wanted = self.readable(wanted);
        let reads = wanted.len();
        if !wanted.is_empty() {
            let read = self.read_timestamps(&wanted);
            self.tracker.learn_timestamps(read);
        }
        let events = self.tracker.evaluate(now, &committed, &highs);
        if committed.contains_key(&self.own_group) {
            // The own group's figures, under names that need no group label to find.
            let m = &crate::observe::metrics::METRICS;
            let own = [self.own_group.as_str()];
            m.own_lag_offsets
                .set(m.consumer_group_lag_offsets.with_label_values(&own).get());
            m.own_lag_seconds
                .set(m.consumer_group_lag_seconds.with_label_values(&own).get());
        }
        LagPolled {
            groups: committed.len(),
            partitions: partitions.len(),
            reads,
            seconds: started.elapsed().as_secs_f64(),
        }
        .emit();
        events
    }

    /// Every partition of the known topics (from metadata).
    fn known_partitions(&self) -> Vec<Tp> {
        let mut out = Vec::new();
        for t in &self.known_topics {
            if let Ok(md) = self.client.fetch_metadata(Some(t), self.request_timeout) {
                for topic in md.topics() {
                    for p in topic.partitions() {
                        out.push((topic.name().to_string(), p.id()));
                    }
                }
            }
        }
        out
    }

    fn readable(&self, wanted: Vec<(Tp, i64)>) -> Vec<(Tp, i64)> {
        if wanted.is_empty() {
            return wanted;
        }
        let tps: Vec<Tp> = wanted
            .iter()
            .map(|w| w.0.clone())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        match offsets::list_offsets(
            self.client.client(),
            &tps,
            offsets::End::Earliest,
            self.request_timeout,
        ) {
            Ok(lows) => wanted
                .into_iter()
                .filter(|(tp, c)| lows.get(tp).is_none_or(|low| c >= low))
                .collect(),
            Err(_) => wanted,
        }
    }

    /// Reads the timestamp of the record at each (partition, offset). Several groups may want
    /// different offsets of one partition: each distinct offset is read in its own round.
    fn read_timestamps(&self, wanted: &[(Tp, i64)]) -> Vec<((Tp, i64), i64)> {
        let mut rounds: Vec<Vec<&(Tp, i64)>> = Vec::new();
        for w in wanted {
            match rounds.iter_mut().find(|r| r.iter().all(|x| x.0 != w.0)) {
                Some(r) => r.push(w),
                None => rounds.push(vec![w]),
            }
        }
        let mut out = Vec::new();
        for round in rounds {
            let mut tpl = TopicPartitionList::new();
            for ((topic, p), offset) in round.iter().map(|x| (&x.0, x.1)) {
                let _ = tpl.add_partition_offset(topic, *p, Offset::Offset(offset));
            }
            if let Err(e) = self.client.assign(&tpl) {
                KafkaClientError {
                    kind: "lag_poll",
                    error: &format!("assigning partitions to read time lag: {e}"),
                }
                .emit();
                continue;
            }
            let mut pending: HashMap<Tp, i64> = round.iter().map(|x| (x.0.clone(), x.1)).collect();
            let deadline = Instant::now() + self.read_timeout;
            while !pending.is_empty() {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break;
                }
                // Errors (out of range: deleted, and the like) are skipped: that partition
                // falls back to interpolation when the deadline passes.
                if let Some(Ok(msg)) = self.client.poll(left) {
                    let tp = (msg.topic().to_string(), msg.partition());
                    // The first record at or after the offset (compaction and transaction
                    // markers leave gaps): the oldest unconsumed one.
                    if let Some(&want) = pending.get(&tp).filter(|&&w| msg.offset() >= w) {
                        if let Some(ts) = msg.timestamp().to_millis() {
                            out.push(((tp.clone(), want), ts));
                        }
                        pending.remove(&tp);
                    }
                }
            }
            let _ = self.client.unassign();
        }
        out
    }
}

/// Runs a side task's `poll` every `interval` on the blocking pool until shutdown (or until
/// the engine stops taking outputs), handing what it returns to the engine, which commits it
/// with its next timer batch (under exactly-once, in its transaction like every output). The
/// lag poller and the dead-letter watch both run this way.
pub async fn run_periodic<P: Send + 'static>(
    what: &'static str,
    mut poller: P,
    poll: fn(&mut P, i64) -> Vec<Output>,
    interval: Duration,
    outputs_to: tokio::sync::mpsc::UnboundedSender<Output>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.changed() => return,
            _ = tick.tick() => {}
        }
        let now = chrono::Utc::now().timestamp_millis();
        let (p, outputs) = match tokio::task::spawn_blocking(move || {
            let o = poll(&mut poller, now);
            (poller, o)
        })
        .await
        {
            Ok(x) => x,
            Err(e) => {
                tracing::error!(error = %e, task = what, "a side task panicked; it stops");
                return;
            }
        };
        poller = p;
        for o in outputs {
            if outputs_to.send(o).is_err() {
                return; // the engine stopped
            }
        }
    }
}

/// One lag poll, as outputs.
pub fn poll_outputs(poller: &mut LagPoller, now: i64) -> Vec<Output> {
    poller.poll_once(now).into_iter().map(Output::Lag).collect()
}

/// The poller for a config, or None when lag monitoring is off.
pub fn poller(
    cfg: &Config,
    base: &ClientConfig,
    own_topics: &[String],
) -> anyhow::Result<Option<LagPoller>> {
    if !cfg.lag.enabled {
        return Ok(None);
    }
    Ok(Some(LagPoller::new(
        base,
        &cfg.kafka.group_id,
        &cfg.lag,
        own_topics,
    )?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tp() -> Tp {
        ("orders".to_string(), 0)
    }

    #[test]
    fn time_lag_is_exact_when_the_record_was_read_and_interpolated_otherwise() {
        let mut t = LagTracker::new(3);
        // High watermark 100 at t=0 s, 200 at t=10 s: offsets 100..199 written in between.
        t.observe_highs(0, &HashMap::from([(tp(), 100)]));
        t.observe_highs(10_000, &HashMap::from([(tp(), 200)]));
        let committed = BTreeMap::from([("g".to_string(), HashMap::from([(tp(), 150)]))]);
        let highs = HashMap::from([(tp(), 200)]);
        assert_eq!(t.wanted_reads(&committed, &highs), vec![(tp(), 150)]);
        // Not read: interpolated (offset 150 was written about 5.1 s in).
        assert_eq!(
            t.time_lag(&tp(), 150, 200, 20_000),
            (Some(14_900), TimeLagMethod::Interpolated)
        );
        // Older than the history: unknown.
        assert_eq!(
            t.time_lag(&tp(), 50, 200, 20_000),
            (None, TimeLagMethod::Unknown)
        );
        // Read: exact, and not wanted again.
        t.learn_timestamps([((tp(), 150), 3_000)]);
        assert_eq!(
            t.time_lag(&tp(), 150, 200, 20_000),
            (Some(17_000), TimeLagMethod::Exact)
        );
        assert!(t.wanted_reads(&committed, &highs).is_empty());
        // Caught up: zero, exact.
        assert_eq!(
            t.time_lag(&tp(), 200, 200, 20_000),
            (Some(0), TimeLagMethod::Exact)
        );
    }

    #[test]
    fn an_event_is_written_only_when_the_group_status_changes() {
        let mut t = LagTracker::new(3);
        let mut levels = crate::detectors::levels::Levels::default();
        let mut statuses = Vec::new();
        // Committed stays at 10 while the high watermark grows: OK (too few samples), STALL
        // once the window is full, STOP once the last commit is older than the window.
        for i in 0..6i64 {
            let now = i * 1_000;
            let highs = HashMap::from([(tp(), 20 + i)]);
            t.observe_highs(now, &highs);
            let committed = BTreeMap::from([("g".to_string(), HashMap::from([(tp(), 10)]))]);
            let polled: Vec<Output> = t
                .evaluate(now, &committed, &highs)
                .into_iter()
                .map(Output::Lag)
                .collect();
            for o in levels.announce(polled) {
                let Output::Lag(e) = o else { unreachable!() };
                statuses.push((e.previous_status, e.status, e.partitions[0].lag_offsets));
            }
        }
        assert_eq!(
            statuses,
            vec![
                (Some(LagStatus::Ok), LagStatus::Stall, 12),
                (Some(LagStatus::Stall), LagStatus::Stop, 13)
            ]
        );
        assert_eq!(t.status("g"), Some(LagStatus::Stop));
    }
}
