//! `sightline replay`: sends dead letters back to where they came from, safely.
//!
//! - **Any dead-letter topic**: provenance comes from Sightline's, Kafka Connect's or Spring
//!   Kafka's headers, or a mapping in config (`provenance.rs`).
//! - **Selective**: time range, offset range, error class, original topic, key pattern, header.
//! - **Idempotent**: a replay has an id. The records it sends and the offsets of what it has
//!   done in each dead-letter partition (the ledger, a compacted topic; `ledger.rs`) commit in
//!   one Kafka transaction per chunk, with `transactional.id = sightline-replay.<id>`.
//!   Re-running the id resumes where it left off: a crash mid-way neither repeats nor skips a
//!   record, and a second run of a finished id sends nothing. The ledger holds only what was
//!   sent (or skipped with `--skip`): a record the filter did not select stays pending. An id
//!   is bound to its selection and target: re-running it with others is refused. (Readers of
//!   the target topics must read committed.)
//! - **Safe targets**: a target topic that does not exist is refused (a producer would make
//!   the broker create it) unless `--create-target`.
//! - **Bounded**: a rate limit in records/s; records already replayed `max_attempts` times are
//!   skipped unless forced.
//! - **Audited**: an audit event per run (operator, filter, counts, start and end) on
//!   `replay.audit_topic`.

pub mod ledger;
pub mod provenance;

use crate::config::Config;
use anyhow::Context;
use provenance::{Convention, Provenance};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, Message, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Which dead letters a replay takes.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Filter {
    /// Dead-letter record timestamps, epoch ms: from (inclusive), until (exclusive).
    pub since_ms: Option<i64>,
    pub until_ms: Option<i64>,
    /// Dead-letter offsets: from (inclusive), until (exclusive).
    pub from_offset: Option<i64>,
    pub until_offset: Option<i64>,
    /// Any of these error classes (empty: all).
    pub error_classes: Vec<String>,
    pub original_topic: Option<String>,
    /// A regex over the record key (UTF-8).
    pub key_pattern: Option<String>,
    /// `name=value`: a header that must have this value.
    pub header: Option<(String, String)>,
}

/// What `sightline replay` was asked to do.
#[derive(Debug, Clone)]
pub struct Options {
    pub id: String,
    pub from: String,
    pub to: Option<String>,
    pub dry_run: bool,
    /// Records per second (0: unlimited).
    pub rate: f64,
    pub force: bool,
    pub filter: Filter,
    pub progress: bool,
    /// Mark the selected dead letters done without sending them (they leave the depth).
    pub skip: bool,
    /// Create a target topic that does not exist (else the replay refuses it).
    pub create_target: bool,
}

/// What a replay did.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Summary {
    /// Dead letters read in this run (a resumed run starts after what earlier runs did).
    pub scanned: i64,
    pub selected: i64,
    pub sent: i64,
    pub filtered_out: i64,
    pub skipped_max_attempts: i64,
    pub skipped_no_target: i64,
    /// Dead letters earlier runs of this id already went through.
    pub done_before: i64,
    /// Selected dead letters marked done without sending (`--skip`).
    pub skipped_by_request: i64,
}

/// Per dead letter: is it taken, and where does it go?
enum Decision {
    Send(String),
    Filtered,
    TooManyAttempts,
    NoTarget,
}

struct Selector {
    filter: Filter,
    key: Option<regex::Regex>,
    conventions: Vec<Convention>,
    to: Option<String>,
    max_attempts: u32,
    force: bool,
}

impl Selector {
    fn decide(
        &self,
        m: &rdkafka::message::BorrowedMessage<'_>,
        headers: &[(String, Option<Vec<u8>>)],
    ) -> (Decision, Option<Provenance>) {
        let f = &self.filter;
        let ts = m.timestamp().to_millis();
        let prov = provenance::detect(headers, &self.conventions);
        let out = |d| (d, prov.clone());
        if f.since_ms.is_some_and(|s| ts.is_none_or(|t| t < s))
            || f.until_ms.is_some_and(|u| ts.is_none_or(|t| t >= u))
        {
            return out(Decision::Filtered);
        }
        if f.from_offset.is_some_and(|o| m.offset() < o) {
            return out(Decision::Filtered);
        }
        let class = prov.as_ref().and_then(|p| p.error_class.as_deref());
        if !f.error_classes.is_empty()
            && !class.is_some_and(|c| f.error_classes.iter().any(|x| x == c))
        {
            return out(Decision::Filtered);
        }
        if let Some(t) = &f.original_topic {
            if prov.as_ref().map(|p| &p.topic) != Some(t) {
                return out(Decision::Filtered);
            }
        }
        if let Some(re) = &self.key {
            if !m
                .key()
                .and_then(|k| std::str::from_utf8(k).ok())
                .is_some_and(|k| re.is_match(k))
            {
                return out(Decision::Filtered);
            }
        }
        if let Some((name, value)) = &f.header {
            let h = provenance::last_values(headers);
            if h.get(name.as_str()) != Some(&value.as_bytes()) {
                return out(Decision::Filtered);
            }
        }
        if !self.force && provenance::replay_count(headers) >= self.max_attempts {
            return out(Decision::TooManyAttempts);
        }
        match (&self.to, &prov) {
            (Some(to), _) => out(Decision::Send(to.clone())),
            (None, Some(p)) => out(Decision::Send(p.topic.clone())),
            (None, None) => out(Decision::NoTarget),
        }
    }
}

fn ledger_key(id: &str, topic: &str, partition: i32) -> String {
    format!("{id}/{topic}/{partition}")
}

/// The ledger key of an id's selection (dead-letter topic, target, filter, skip).
fn selection_key(id: &str) -> String {
    format!("{id}/_selection")
}

/// What an id was first run with, as compared on later runs.
fn selection(o: &Options) -> String {
    serde_json::json!({
        "from": o.from,
        "to": o.to,
        "filter": o.filter,
        "skip": o.skip,
    })
    .to_string()
}

/// What earlier runs of `id` did: per partition of `topic`, the offsets done, and the
/// selection the id was first run with.
type LedgerState = (BTreeMap<i32, ledger::Ranges>, Option<String>);

fn read_ledger(
    base: &ClientConfig,
    ledger: &str,
    id: &str,
    topic: &str,
) -> anyhow::Result<LedgerState> {
    let mut c = crate::kafka::client::reader_config(base, &format!("sightline-replay-ledger-{id}"));
    c.set("isolation.level", "read_committed")
        .set("enable.partition.eof", "true");
    let consumer: BaseConsumer<crate::kafka::client::EofIsNormal> =
        c.create_with_context(crate::kafka::client::EofIsNormal)?;
    let md = consumer
        .fetch_metadata(Some(ledger), Duration::from_secs(10))
        .with_context(|| format!("reading the replay ledger `{ledger}`"))?;
    let mut tpl = TopicPartitionList::new();
    let mut open = 0;
    for p in md
        .topics()
        .first()
        .map(|t| t.partitions())
        .unwrap_or_default()
    {
        let (low, high) = consumer.fetch_watermarks(ledger, p.id(), Duration::from_secs(10))?;
        if high > low {
            tpl.add_partition_offset(ledger, p.id(), Offset::Beginning)?;
            open += 1;
        }
    }
    let mut out = BTreeMap::new();
    let mut chosen = None;
    if open == 0 {
        return Ok((out, chosen));
    }
    consumer.assign(&tpl)?;
    let prefix = format!("{id}/{topic}/");
    let selection_key = selection_key(id);
    let deadline = Instant::now() + Duration::from_secs(60);
    while open > 0 {
        anyhow::ensure!(
            Instant::now() < deadline,
            "reading the replay ledger `{ledger}` took over 60 s"
        );
        match consumer.poll(Duration::from_millis(500)) {
            Some(Ok(m)) => {
                let key = m.key().and_then(|k| std::str::from_utf8(k).ok());
                let value = m.payload().and_then(|v| std::str::from_utf8(v).ok());
                if key == Some(selection_key.as_str()) {
                    chosen = value.map(str::to_string);
                } else if let Some(p) = key.and_then(|k| k.strip_prefix(&prefix)) {
                    if let (Ok(p), Some(done)) =
                        (p.parse::<i32>(), value.and_then(ledger::Ranges::parse))
                    {
                        out.insert(p, done);
                    }
                }
            }
            Some(Err(rdkafka::error::KafkaError::PartitionEOF(_))) => open -= 1,
            Some(Err(e)) => anyhow::bail!("reading the replay ledger `{ledger}`: {e}"),
            None => {}
        }
    }
    Ok((out, chosen))
}

/// Who runs the replay, for the audit trail.
pub fn operator(cfg: &Config) -> String {
    std::env::var("SIGHTLINE_OPERATOR")
        .ok()
        .filter(|s| !s.is_empty())
        .or_else(|| Some(cfg.replay.operator.clone()).filter(|s| !s.is_empty()))
        .or_else(|| std::env::var("USER").ok().filter(|s| !s.is_empty()))
        .unwrap_or_else(|| "unknown".into())
}

#[derive(Serialize)]
struct Audit<'a> {
    replay_id: &'a str,
    event: &'a str,
    operator: &'a str,
    dead_letter_topic: &'a str,
    target: Option<&'a str>,
    dry_run: bool,
    rate_per_second: f64,
    force: bool,
    filter: &'a Filter,
    started_at: i64,
    ended_at: Option<i64>,
    summary: Option<&'a Summary>,
    error: Option<String>,
    sightline_version: &'a str,
}

/// Runs a replay (see the module docs). Prints each selected record on a dry run.
pub async fn run(cfg: &Config, o: Options) -> anyhow::Result<Summary> {
    let base = crate::kafka::client_config(cfg)?;
    crate::kafka::client::check_connection_async(cfg, Duration::from_secs(15)).await?;
    let spec = |name: &str, compact: bool| crate::kafka::admin::TopicSpec {
        name: name.to_string(),
        partitions: 1,
        replication_factor: cfg.kafka.topics.replication_factor,
        configs: if compact {
            vec![("cleanup.policy".into(), "compact".into())]
        } else {
            Vec::new()
        },
    };
    crate::kafka::admin::ensure_topics(
        &base,
        &[
            spec(&cfg.replay.ledger_topic, true),
            spec(&cfg.replay.audit_topic, false),
        ],
    )
    .await?;
    let conventions = Convention::all(cfg);
    let key = match &o.filter.key_pattern {
        Some(p) => Some(regex::Regex::new(p).with_context(|| format!("--key-pattern `{p}`"))?),
        None => None,
    };
    let selector = Selector {
        filter: o.filter.clone(),
        key,
        conventions,
        to: o.to.clone(),
        max_attempts: cfg.replay.max_attempts,
        force: o.force,
    };
    let operator = operator(cfg);
    let started_at = chrono::Utc::now().timestamp_millis();
    let audit_producer: ThreadedProducer<DefaultProducerContext> =
        crate::kafka::producer::producer_config(&base).create()?;
    let audit = |event: &str, summary: Option<&Summary>, error: Option<String>| {
        let a = Audit {
            replay_id: &o.id,
            event,
            operator: &operator,
            dead_letter_topic: &o.from,
            target: o.to.as_deref(),
            dry_run: o.dry_run,
            rate_per_second: o.rate,
            force: o.force,
            filter: &o.filter,
            started_at,
            ended_at: summary.map(|_| chrono::Utc::now().timestamp_millis()),
            summary,
            error,
            sightline_version: crate::VERSION,
        };
        let v = serde_json::to_vec(&a).expect("audit serialises");
        let _ = audit_producer.send(
            BaseRecord::to(&cfg.replay.audit_topic)
                .key(o.id.as_str())
                .payload(&v),
        );
        let _ = audit_producer.flush(Duration::from_secs(10));
    };
    audit("STARTED", None, None);
    let (cfg2, o2) = (cfg.clone(), o.clone());
    let result = tokio::task::spawn_blocking(move || replay_blocking(&cfg2, &base, &o2, &selector))
        .await
        .context("the replay task")?;
    match &result {
        Ok(s) => audit(
            if o.dry_run { "DRY_RUN" } else { "COMPLETED" },
            Some(s),
            None,
        ),
        Err(e) => audit("FAILED", None, Some(format!("{e:#}"))),
    }
    result
}

fn replay_blocking(
    cfg: &Config,
    base: &ClientConfig,
    o: &Options,
    selector: &Selector,
) -> anyhow::Result<Summary> {
    let ledger = &cfg.replay.ledger_topic;
    // A dry run reads the ledger too: it shows what this id would still send.
    let (mut done, chosen) = read_ledger(base, ledger, &o.id, &o.from)?;
    let wanted = selection(o);
    if let Some(before) = &chosen {
        anyhow::ensure!(
            *before == wanted,
            "replay id `{}` was first run with another selection or target ({before}); this run asks for {wanted}. \
             A replay id is bound to what it replays: choose a new --id",
            o.id
        );
    }
    let mut c = crate::kafka::client::reader_config(base, &format!("sightline-replay-{}", o.id));
    c.set("isolation.level", "read_committed")
        .set("enable.partition.eof", "true");
    let consumer: BaseConsumer<crate::kafka::client::EofIsNormal> =
        c.create_with_context(crate::kafka::client::EofIsNormal)?;
    let md = consumer
        .fetch_metadata(Some(&o.from), Duration::from_secs(10))
        .with_context(|| format!("reading the metadata of `{}`", o.from))?;
    let parts: Vec<i32> = md
        .topics()
        .first()
        .filter(|t| t.error().is_none())
        .map(|t| t.partitions().iter().map(|p| p.id()).collect())
        .unwrap_or_default();
    anyhow::ensure!(
        !parts.is_empty(),
        "topic `{}` does not exist or has no partitions (--from names the dead-letter topic to replay)",
        o.from
    );
    // Each partition from where earlier runs stopped to its end as of now.
    let mut summary = Summary::default();
    let mut ranges: BTreeMap<i32, (i64, i64)> = BTreeMap::new();
    let mut tpl = TopicPartitionList::new();
    for &p in &parts {
        let (low, high) = consumer.fetch_watermarks(&o.from, p, Duration::from_secs(10))?;
        let high = o.filter.until_offset.map_or(high, |u| u.min(high));
        let mut start = low.max(o.filter.from_offset.unwrap_or(low));
        if let Some(d) = done.get(&p) {
            // What earlier runs did before the first record still to decide: records, counted.
            let first = d.first_gap(start);
            summary.done_before += d.covered(start, first.min(high));
            start = first;
        }
        if start < high {
            ranges.insert(p, (start, high));
            tpl.add_partition_offset(&o.from, p, Offset::Offset(start))?;
        }
    }
    let total: u64 = ranges.values().map(|(a, b)| (b - a) as u64).sum();
    let bar = if o.progress {
        indicatif::ProgressBar::new(total)
    } else {
        indicatif::ProgressBar::hidden()
    };
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} {pos}/{len} dead letters [{bar:30}] {per_sec} eta {eta} {msg}",
        )
        .expect("progress template")
        .progress_chars("=> "),
    );
    if ranges.is_empty() {
        bar.finish_and_clear();
        return Ok(summary);
    }
    let producer: Option<ThreadedProducer<DefaultProducerContext>> = if o.dry_run {
        None
    } else {
        let mut pc = crate::kafka::producer::producer_config(base);
        pc.set("transactional.id", format!("sightline-replay.{}", o.id))
            .set("transaction.timeout.ms", "30000")
            .set("message.timeout.ms", "29000");
        let p: ThreadedProducer<DefaultProducerContext> = pc.create()?;
        // Fences an earlier run of this id that crashed, and aborts its open chunk.
        p.init_transactions(Duration::from_secs(30))
            .context("initialising the replay's transactions")?;
        p.begin_transaction()?;
        Some(p)
    };
    consumer.assign(&tpl)?;
    let started = Instant::now();
    let mut open: BTreeMap<i32, i64> = ranges.iter().map(|(&p, &(_, e))| (p, e)).collect();
    // Partitions whose done ranges changed since the last commit.
    let mut dirty: std::collections::BTreeSet<i32> = Default::default();
    let mut first_commit = chosen.is_none();
    let mut targets_known: std::collections::HashSet<String> = Default::default();
    let mut chunk = 0usize;
    let mut chunk_started = Instant::now();
    let now_ms = chrono::Utc::now().timestamp_millis();
    let commit = |p: &ThreadedProducer<DefaultProducerContext>,
                  done: &BTreeMap<i32, ledger::Ranges>,
                  dirty: &std::collections::BTreeSet<i32>,
                  first: bool,
                  last: bool|
     -> anyhow::Result<()> {
        if first {
            p.send(
                BaseRecord::to(ledger)
                    .key(&selection_key(&o.id))
                    .payload(&wanted),
            )
            .map_err(|(e, _)| anyhow::anyhow!("writing the replay ledger: {e}"))?;
        }
        for part in dirty {
            let key = ledger_key(&o.id, &o.from, *part);
            let value = done.get(part).map(|d| d.format()).unwrap_or_default();
            p.send(BaseRecord::to(ledger).key(&key).payload(&value))
                .map_err(|(e, _)| anyhow::anyhow!("writing the replay ledger: {e}"))?;
        }
        p.commit_transaction(Duration::from_secs(60))
            .context("committing a replay chunk")?;
        if !last {
            p.begin_transaction()?;
        }
        Ok(())
    };
    while !open.is_empty() {
        let m = match consumer.poll(Duration::from_millis(500)) {
            Some(Ok(m)) => m,
            Some(Err(rdkafka::error::KafkaError::PartitionEOF(p))) => {
                open.remove(&p);
                continue;
            }
            Some(Err(e)) => anyhow::bail!("reading `{}`: {e}", o.from),
            None => continue,
        };
        let p = m.partition();
        let Some(&end) = open.get(&p) else {
            continue;
        };
        if m.offset() >= end {
            open.remove(&p);
            continue;
        }
        bar.inc(1);
        if done.get(&p).is_some_and(|d| d.contains(m.offset())) {
            summary.done_before += 1;
            if m.offset() + 1 >= end {
                open.remove(&p);
            }
            continue;
        }
        summary.scanned += 1;
        let headers = provenance::owned_headers(&m);
        let (decision, prov) = selector.decide(&m, &headers);
        let decision = match decision {
            Decision::Send(target) if !o.skip && !targets_known.contains(&target) => {
                if o.dry_run {
                    // A dry run only says what a real run would refuse.
                    if let Err(e) = ensure_target(&consumer, base, &target, false, cfg) {
                        bar.suspend(|| println!("note: {e:#}"));
                    }
                } else {
                    ensure_target(&consumer, base, &target, o.create_target, cfg)?;
                }
                targets_known.insert(target.clone());
                Decision::Send(target)
            }
            other => other,
        };
        match decision {
            Decision::Filtered => summary.filtered_out += 1,
            Decision::TooManyAttempts => summary.skipped_max_attempts += 1,
            Decision::NoTarget => summary.skipped_no_target += 1,
            Decision::Send(_) if o.skip => {
                summary.selected += 1;
                if producer.is_some() {
                    summary.skipped_by_request += 1;
                    done.entry(p).or_default().insert(m.offset());
                    dirty.insert(p);
                } else {
                    println!(
                        "would skip {}[{p}]@{} (marked done, not sent)",
                        o.from,
                        m.offset()
                    );
                }
            }
            Decision::Send(target) => {
                summary.selected += 1;
                if let Some(producer) = &producer {
                    if o.rate > 0.0 {
                        let due = started + Duration::from_secs_f64(summary.sent as f64 / o.rate);
                        if let Some(wait) = due.checked_duration_since(Instant::now()) {
                            std::thread::sleep(wait);
                        }
                    }
                    let count = (provenance::replay_count(&headers) + 1).to_string();
                    let (part, off) = (p.to_string(), m.offset().to_string());
                    let mut h = OwnedHeaders::new_with_capacity(headers.len() + 5);
                    for (k, v) in &headers {
                        if k.starts_with("sightline.replay.") {
                            continue;
                        }
                        h = h.insert(Header {
                            key: k,
                            value: v.as_deref(),
                        });
                    }
                    for (k, v) in [
                        (provenance::REPLAY_ID, o.id.as_str()),
                        (provenance::REPLAY_COUNT, count.as_str()),
                        (provenance::REPLAY_DLQ_TOPIC, o.from.as_str()),
                        (provenance::REPLAY_DLQ_PARTITION, part.as_str()),
                        (provenance::REPLAY_DLQ_OFFSET, off.as_str()),
                    ] {
                        h = h.insert(Header {
                            key: k,
                            value: Some(v.as_bytes()),
                        });
                    }
                    let mut r = BaseRecord::<[u8], [u8]>::to(&target).headers(h);
                    if let Some(k) = m.key() {
                        r = r.key(k);
                    }
                    if let Some(v) = m.payload() {
                        r = r.payload(v);
                    }
                    producer
                        .send(r)
                        .map_err(|(e, _)| anyhow::anyhow!("sending to `{target}`: {e}"))?;
                    summary.sent += 1;
                    done.entry(p).or_default().insert(m.offset());
                    dirty.insert(p);
                } else {
                    let age = m
                        .timestamp()
                        .to_millis()
                        .map(|t| format!("{:.0} s", (now_ms - t) as f64 / 1000.0))
                        .unwrap_or_else(|| "?".into());
                    let origin = prov
                        .as_ref()
                        .map(|p| {
                            format!(
                                "{}[{}]@{}",
                                p.topic,
                                p.partition.map_or("?".into(), |x| x.to_string()),
                                p.offset.map_or("?".into(), |x| x.to_string())
                            )
                        })
                        .unwrap_or_else(|| "?".into());
                    let class = prov
                        .as_ref()
                        .and_then(|p| p.error_class.clone())
                        .unwrap_or_else(|| "?".into());
                    bar.suspend(|| {
                        println!(
                            "would replay {}[{p}]@{} -> {target}  (from {origin}, error {class}, age {age})",
                            o.from,
                            m.offset()
                        )
                    });
                }
            }
        }
        if m.offset() + 1 >= end {
            open.remove(&p);
        }
        chunk += 1;
        if let Some(producer) = &producer {
            if chunk >= 1_000 || chunk_started.elapsed() > Duration::from_secs(1) {
                commit(producer, &done, &dirty, first_commit, false)?;
                first_commit = false;
                dirty.clear();
                chunk = 0;
                chunk_started = Instant::now();
            }
        }
    }
    if let Some(producer) = &producer {
        commit(producer, &done, &dirty, first_commit, true)?;
    }
    bar.finish_and_clear();
    Ok(summary)
}

/// Refuses a target topic that does not exist (a producer would make the broker create it,
/// with the broker's defaults), unless `create` is set: then it is created.
fn ensure_target(
    consumer: &BaseConsumer<crate::kafka::client::EofIsNormal>,
    base: &ClientConfig,
    target: &str,
    create: bool,
    cfg: &Config,
) -> anyhow::Result<()> {
    let md = consumer
        .fetch_metadata(Some(target), Duration::from_secs(10))
        .with_context(|| format!("reading the metadata of the target `{target}`"))?;
    let exists = md
        .topics()
        .first()
        .is_some_and(|t| t.error().is_none() && !t.partitions().is_empty());
    if exists {
        return Ok(());
    }
    anyhow::ensure!(
        create,
        "the target topic `{target}` does not exist; nothing was sent to it. Create it, or pass --create-target \
         to have the replay create it ({} partitions, replication {})",
        cfg.kafka.topics.partitions,
        cfg.kafka.topics.replication_factor
    );
    let spec = crate::kafka::admin::TopicSpec {
        name: target.to_string(),
        partitions: cfg.kafka.topics.partitions,
        replication_factor: cfg.kafka.topics.replication_factor,
        configs: Vec::new(),
    };
    // On the replay's blocking thread, which may wait on the runtime.
    tokio::runtime::Handle::current()
        .block_on(crate::kafka::admin::ensure_topics(base, &[spec]))
        .with_context(|| format!("creating the target topic `{target}`"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audit_events_fit_their_shipped_contract() {
        let schema = apache_avro::Schema::parse_str(include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/schemas/sightline/replay_audit.avsc"
        )))
        .unwrap();
        let filter = Filter {
            since_ms: Some(1),
            error_classes: vec!["invalid_json".into()],
            header: Some(("h".into(), "v".into())),
            ..Default::default()
        };
        let summary = Summary {
            sent: 3,
            ..Default::default()
        };
        for (event, summary) in [("STARTED", None), ("COMPLETED", Some(&summary))] {
            let a = Audit {
                replay_id: "r",
                event,
                operator: "o",
                dead_letter_topic: "d",
                target: None,
                dry_run: false,
                rate_per_second: 100.0,
                force: false,
                filter: &filter,
                started_at: 1,
                ended_at: summary.map(|_| 2),
                summary,
                error: None,
                sightline_version: crate::VERSION,
            };
            let v = apache_avro::to_value(&a).unwrap();
            if let Err(e) = v.clone().resolve(&schema) {
                panic!("{event} does not fit replay_audit.avsc: {e}: {v:?}");
            }
        }
    }
}
