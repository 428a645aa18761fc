//! Watching dead-letter topics across the estate (Sightline's own, `dead_letters.topics`, and
//! `dead_letters.topics_regex`): every `dead_letters.interval_ms` it measures each topic's
//! depth (records no replay has gone through yet: the dead letters it has read past the replay
//! ledger's position, so transaction markers and aborted records never count), the age of the
//! oldest of them (the record is read), the rate of new ones, and the error classes of what
//! arrives (from provenance headers); it follows the replay audit trail; it exports all of it as
//! metrics and hands threshold alerts (detectors/deadletter.rs) to the engine. Runs beside the
//! loop on its own clients, like the lag poller.

use crate::config::Config;
use crate::detectors::deadletter::{DeadLetterWatch, TopicStats};
use crate::observe::metrics::METRICS;
use crate::outputs::Output;
use crate::replay::provenance::{self, Convention};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

const TIMEOUT: Duration = Duration::from_secs(5);

pub struct DeadLetterPoller {
    topics: Vec<String>,
    regex: Option<regex::Regex>,
    ledger_topic: String,
    audit_topic: String,
    reader: BaseConsumer,
    /// Tails the ledger, the audit topic and the dead-letter topics.
    tail: BaseConsumer,
    tailed: BTreeSet<(String, i32)>,
    /// (topic, partition) -> replay id -> the dead letters it sent or skipped.
    replayed: HashMap<(String, i32), BTreeMap<String, crate::replay::ledger::Ranges>>,
    /// (topic, partition) -> offsets of the dead letters read there, ascending (8 bytes each),
    /// and the next offset the tail will read.
    records: HashMap<(String, i32), (Vec<i64>, i64)>,
    /// (topic, partition, offset) -> record timestamp.
    oldest_cache: HashMap<(String, i32, i64), i64>,
    last: HashMap<String, (i64, Instant)>,
    conventions: Vec<Convention>,
    watch: DeadLetterWatch,
}

impl DeadLetterPoller {
    pub fn new(
        cfg: &Config,
        base: &ClientConfig,
        own: Vec<String>,
        monitors: Vec<crate::topology::monitor::DeadLetterSpec>,
    ) -> anyhow::Result<Self> {
        let group = format!("{}.dead-letter-watch", cfg.kafka.group_id);
        let mut c = crate::kafka::client::reader_config(base, &group);
        c.set("isolation.level", "read_committed");
        let mut topics: Vec<String> = own;
        topics.extend(cfg.dead_letters.topics.iter().cloned());
        topics.extend(
            monitors
                .iter()
                .filter(|m| !m.topic.starts_with('^'))
                .map(|m| m.topic.clone()),
        );
        topics.sort();
        topics.dedup();
        let regex = (!cfg.dead_letters.topics_regex.is_empty())
            .then(|| regex::Regex::new(&cfg.dead_letters.topics_regex))
            .transpose()?;
        let conventions = Convention::all(cfg);
        Ok(DeadLetterPoller {
            topics,
            regex,
            ledger_topic: cfg.replay.ledger_topic.clone(),
            audit_topic: cfg.replay.audit_topic.clone(),
            reader: c.create()?,
            tail: c.create()?,
            tailed: BTreeSet::new(),
            replayed: HashMap::new(),
            records: HashMap::new(),
            oldest_cache: HashMap::new(),
            last: HashMap::new(),
            conventions,
            watch: DeadLetterWatch::new(monitors),
        })
    }

    /// Partition ids of `topic` (empty when it does not exist).
    fn partitions(&self, topic: &str) -> Vec<i32> {
        self.reader
            .fetch_metadata(Some(topic), TIMEOUT)
            .ok()
            .and_then(|md| {
                md.topics()
                    .first()
                    .filter(|t| t.error().is_none())
                    .map(|t| t.partitions().iter().map(|p| p.id()).collect())
            })
            .unwrap_or_default()
    }

    /// Starts tailing the partitions of `topic` not tailed yet, from their beginning.
    fn tail_topic(&mut self, topic: &str) {
        let new: Vec<i32> = self
            .partitions(topic)
            .into_iter()
            .filter(|p| !self.tailed.contains(&(topic.to_string(), *p)))
            .collect();
        if new.is_empty() {
            return;
        }
        let mut tpl = TopicPartitionList::new();
        for p in &new {
            let _ = tpl.add_partition_offset(topic, *p, Offset::Beginning);
            self.tailed.insert((topic.to_string(), *p));
        }
        if let Err(e) = self.tail.incremental_assign(&tpl) {
            tracing::warn!(error = %e, topic, "dead-letter watch: cannot follow the topic");
        }
    }

    /// Reads what arrived on the tailed topics (at most `budget` records).
    fn drain(&mut self, budget: usize) {
        for _ in 0..budget {
            let Some(Ok(m)) = self.tail.poll(Duration::from_millis(20)) else {
                return;
            };
            let topic = m.topic();
            if topic == self.ledger_topic {
                let key = m
                    .key()
                    .and_then(|k| std::str::from_utf8(k).ok())
                    .unwrap_or_default();
                let mut parts = key.rsplitn(3, '/');
                let (Some(p), Some(t), Some(id)) = (parts.next(), parts.next(), parts.next())
                else {
                    continue;
                };
                let done = m
                    .payload()
                    .and_then(|v| std::str::from_utf8(v).ok())
                    .and_then(crate::replay::ledger::Ranges::parse);
                if let (Ok(p), Some(done)) = (p.parse::<i32>(), done) {
                    self.replayed
                        .entry((t.to_string(), p))
                        .or_default()
                        .insert(id.to_string(), done);
                }
            } else if topic == self.audit_topic {
                let Ok(a) =
                    serde_json::from_slice::<serde_json::Value>(m.payload().unwrap_or_default())
                else {
                    continue;
                };
                let result = a["event"].as_str().unwrap_or("").to_ascii_lowercase();
                if result != "started" {
                    METRICS.replays.with_label_values(&[&result]).inc();
                }
                if let Some(sent) = a["summary"]["sent"].as_u64() {
                    METRICS.replayed_records.inc_by(sent);
                }
            } else {
                let seen = self
                    .records
                    .entry((topic.to_string(), m.partition()))
                    .or_default();
                if seen.0.last().is_none_or(|&last| m.offset() > last) {
                    seen.0.push(m.offset());
                }
                seen.1 = seen.1.max(m.offset() + 1);
                let headers = provenance::owned_headers(&m);
                let class = provenance::detect(&headers, &self.conventions)
                    .and_then(|p| p.error_class)
                    .unwrap_or_else(|| "unknown".into());
                METRICS
                    .dead_letter_classes
                    .with_label_values(&[topic, &class])
                    .inc();
            }
        }
    }

    /// The watched dead-letter topics now.
    fn watched(&self) -> Vec<String> {
        let mut t = self.topics.clone();
        if let Some(re) = &self.regex {
            if let Ok(md) = self.reader.fetch_metadata(None, TIMEOUT) {
                t.extend(
                    md.topics()
                        .iter()
                        .map(|x| x.name().to_string())
                        .filter(|n| re.is_match(n)),
                );
            }
        }
        t.sort();
        t.dedup();
        t
    }

    /// Record timestamps at the given offsets (cached; None when unreadable in time).
    fn timestamps(&mut self, wanted: &[(String, i32, i64)]) -> HashMap<(String, i32, i64), i64> {
        let mut out = HashMap::new();
        let mut tpl = TopicPartitionList::new();
        for w in wanted {
            match self.oldest_cache.get(w) {
                Some(ts) => {
                    out.insert(w.clone(), *ts);
                }
                None => {
                    let _ = tpl.add_partition_offset(&w.0, w.1, Offset::Offset(w.2));
                }
            }
        }
        if tpl.count() == 0 || self.reader.assign(&tpl).is_err() {
            return out;
        }
        let deadline = Instant::now() + Duration::from_secs(2);
        let mut left = tpl.count();
        while left > 0 && Instant::now() < deadline {
            if let Some(Ok(m)) = self.reader.poll(Duration::from_millis(100)) {
                let k = (m.topic().to_string(), m.partition(), m.offset());
                if wanted.contains(&k) && !out.contains_key(&k) {
                    if let Some(ts) = m.timestamp().to_millis() {
                        self.oldest_cache.insert(k.clone(), ts);
                        out.insert(k, ts);
                    }
                    left -= 1;
                }
            }
        }
        let _ = self.reader.unassign();
        out
    }

    /// One measurement of every watched topic; the alerts it gives.
    pub fn poll_once(&mut self, now_ms: i64) -> Vec<Output> {
        let topics = self.watched();
        for t in [self.ledger_topic.clone(), self.audit_topic.clone()]
            .iter()
            .chain(&topics)
        {
            self.tail_topic(t);
        }
        self.drain(10_000);
        // Where the tail is: past transaction markers too, which no record stands for.
        let positions = self.tail.position().ok();
        let mut stats = Vec::new();
        for topic in topics {
            let mut depth = 0u64;
            let mut total = 0i64;
            let mut firsts = Vec::new();
            for p in self.partitions(&topic) {
                let Ok((low, high)) = self.reader.fetch_watermarks(&topic, p, TIMEOUT) else {
                    continue;
                };
                total += high;
                let mut done = crate::replay::ledger::Ranges::default();
                for r in self
                    .replayed
                    .get(&(topic.clone(), p))
                    .into_iter()
                    .flat_map(|ids| ids.values())
                {
                    done.union(r);
                }
                // Records, not offsets: the dead letters read at or after `from`, plus what the
                // tail has not read yet (counted as offsets until it has).
                let position = positions
                    .as_ref()
                    .and_then(|tpl| match tpl.find_partition(&topic, p)?.offset() {
                        Offset::Offset(o) => Some(o),
                        _ => None,
                    })
                    .unwrap_or(low);
                let (read, tail_at) = self
                    .records
                    .get(&(topic.clone(), p))
                    .map_or((&[][..], position), |(v, next)| {
                        (v.as_slice(), (*next).max(position))
                    });
                let read = &read[read.partition_point(|&o| o < low)..];
                let pending = read.len() - done.count_in(read);
                let unread = (high - tail_at.max(low)).max(0) as u64;
                depth += pending as u64 + unread;
                let first = done.pending(read).next();
                if let Some(first) = first {
                    firsts.push((topic.clone(), p, first));
                } else if unread > 0 {
                    firsts.push((topic.clone(), p, tail_at.max(low)));
                }
            }
            let ts = self.timestamps(&firsts);
            let oldest_ms = ts.values().min().copied();
            let now = Instant::now();
            let per_minute = match self.last.insert(topic.clone(), (total, now)) {
                Some((before, at)) => {
                    let minutes = now.duration_since(at).as_secs_f64() / 60.0;
                    METRICS
                        .dead_letter_records
                        .with_label_values(&[&topic])
                        .inc_by((total - before).max(0) as u64);
                    if minutes > 0.0 {
                        (total - before).max(0) as f64 / minutes
                    } else {
                        0.0
                    }
                }
                None => {
                    METRICS
                        .dead_letter_records
                        .with_label_values(&[&topic])
                        .inc_by(total.max(0) as u64);
                    0.0
                }
            };
            METRICS
                .dead_letter_depth
                .with_label_values(&[&topic])
                .set(depth as i64);
            METRICS
                .dead_letter_oldest_age
                .with_label_values(&[&topic])
                .set(oldest_ms.map_or(0, |t| (now_ms - t).max(0) / 1000));
            stats.push(TopicStats {
                topic,
                depth,
                oldest_ms,
                per_minute,
            });
        }
        self.watch.observe(&stats, now_ms)
    }
}

/// Sightline's own dead-letter topics (exact sources), for the watch.
pub fn own_topics(cfg: &Config, topologies: &[crate::topology::Topology]) -> Vec<String> {
    let mut out: BTreeMap<String, ()> = BTreeMap::new();
    for t in topologies {
        for s in &t.sources {
            if s.topic_pattern().is_none() || s.dead_letter_topic.is_some() {
                out.insert(s.dead_letter_topic(&cfg.outputs.dead_letter_suffix), ());
            }
        }
    }
    out.into_keys().collect()
}
