//! The one benchmark: Sightline on realistic order-to-cash traffic, against the real local broker
//! and registry (deploy/local/stack start), with every detector on.
//!
//! 1. N orders (`SIGHTLINE_BENCH_ORDERS`, default 250,000; about 4 events each) from the demo's
//!    seeded generator, with its business faults (missing, late, duplicate, out-of-order steps,
//!    orphans, cancellations; `SIGHTLINE_BENCH_FAULT_EVERY`, default every 10th order has one,
//!    0 for none)
//!    and poison records (`SIGHTLINE_BENCH_POISON_EVERY`, default 1 in 1,000), are published as
//!    Confluent-framed Avro through the registry to the four order-to-cash topics, 12 partitions
//!    each. Midway, payments gain a field and shipments change a field's type (schema drift).
//! 2. The raw-consume ceiling: a plain rdkafka consumer reads the same topics, doing nothing;
//!    then the decode floor: the same consumer also decodes and maps every record with
//!    Sightline's decoder and source mappings, and does nothing else.
//! 3. `sightline run` (release build, a child process) reads them with topologies/order-to-cash
//!    (Avro, contracts), freshness and age monitors, drift, lag and the dead-letter watch, in
//!    exactly-once transactions: events/s against the ceiling, CPU s per million events, peak
//!    RSS, state bytes on disk per million instances.
//! 4. Probe instances whose deadline is 2 s away are started, one every 5 ms, and never
//!    completed: the time from each deadline to its alert on the topic (wall-clock mode).
//! 5. Restore: the instance is killed, its state directory wiped, and it is started again.
//! 6. Transactions off: another group reads the same data at least once.
//!
//! ```text
//! cargo bench --bench workflow
//! SIGHTLINE_BENCH_ORDERS=1000000 cargo bench --bench workflow
//! ```
//!
//! `SIGHTLINE_BENCH_QUICK=1` stops after the ceiling, the exactly-once run and Kafka Streams (for
//! profiling). `SIGHTLINE_BENCH_KSTREAMS_THREADS` (default "1,2"; "0": none): the thread counts of
//! pipeline/benches/kafka-streams, the same detection in Kafka Streams, run on the same records.
//! `SIGHTLINE_BENCH_OVERRIDES="key=value,..."` passes librdkafka overrides to the runs, and
//! `SIGHTLINE_BENCH_INSTANCE_CACHE=N` sets their `state.instance_cache`, and
//! `SIGHTLINE_BENCH_ENGINE="key = value,..."` adds lines to their `[engine]` table. With
//! `SIGHTLINE_BENCH_RECOUNT=1` the alerts and timers are counted again 30 s after the counts
//! printed, to show whether every deadline had fired.

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Message};
use std::time::{Duration, Instant};

#[path = "kafka_streams.rs"]
mod kafka_streams;
#[path = "support.rs"]
mod support;
use sightline::demo::generator;
use support::cpu_seconds;

/// `state.block_cache_mb` for the runs (`SIGHTLINE_BENCH_BLOCK_CACHE_MB`, default 256).
fn block_cache_mb() -> u64 {
    std::env::var("SIGHTLINE_BENCH_BLOCK_CACHE_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256)
}

/// `state.instance_cache` for the runs (`SIGHTLINE_BENCH_INSTANCE_CACHE`, default: the
/// configuration's default).
fn instance_cache() -> String {
    std::env::var("SIGHTLINE_BENCH_INSTANCE_CACHE")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .map(|n| format!("instance_cache = {n}\n"))
        .unwrap_or_default()
}

/// librdkafka overrides for the runs, `SIGHTLINE_BENCH_OVERRIDES="key=value,key=value"`, as
/// the `[kafka.overrides]` table of the config.
fn overrides() -> String {
    let Ok(v) = std::env::var("SIGHTLINE_BENCH_OVERRIDES") else {
        return String::new();
    };
    let mut t = String::from("[kafka.overrides]\n");
    for kv in v.split(',').filter(|kv| !kv.is_empty()) {
        let (k, v) = kv
            .split_once('=')
            .expect("SIGHTLINE_BENCH_OVERRIDES: key=value,...");
        t.push_str(&format!("\"{k}\" = \"{v}\"\n"));
    }
    t
}

fn registry_url() -> String {
    std::env::var("SIGHTLINE_TEST_REGISTRY")
        .unwrap_or_else(|_| "http://127.0.0.1:8081/apis/ccompat/v7".into())
}

/// Avro writer schemas per topic, registered in the registry, and the encoding of the
/// generator's JSON records with them (Confluent framing: magic 0, schema id, body).
mod avro {
    use apache_avro::Schema;
    use std::collections::HashMap;

    pub struct Writers {
        /// (topic, variant) -> (schema id, schema)
        by: HashMap<(&'static str, &'static str), (u32, Schema)>,
    }

    fn contract(name: &str) -> serde_json::Value {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("schemas/order-to-cash")
            .join(name);
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    }

    /// A JSON value as an Avro value, for `resolve` against the writer schema (integers as
    /// longs: serde's u64 would become a fixed).
    fn json_to_avro(v: serde_json::Value) -> apache_avro::types::Value {
        use apache_avro::types::Value as A;
        match v {
            serde_json::Value::Null => A::Null,
            serde_json::Value::Bool(b) => A::Boolean(b),
            serde_json::Value::Number(n) => match n.as_i64() {
                Some(i) => A::Long(i),
                None => A::Double(n.as_f64().unwrap_or_default()),
            },
            serde_json::Value::String(s) => A::String(s),
            serde_json::Value::Array(a) => A::Array(a.into_iter().map(json_to_avro).collect()),
            serde_json::Value::Object(o) => {
                A::Map(o.into_iter().map(|(k, v)| (k, json_to_avro(v))).collect())
            }
        }
    }

    impl Writers {
        pub async fn register(registry: &str, prefix: &str) -> Writers {
            use super::generator::{INVOICES, ORDERS, PAYMENTS, SHIPMENTS};
            let mut payments_v2 = contract("payment_captured.avsc");
            payments_v2["fields"].as_array_mut().unwrap().push(
                serde_json::json!({"name": "currency", "type": ["null", "string"], "default": null}),
            );
            let mut shipments_v2 = contract("shipment_dispatched.avsc");
            for f in shipments_v2["fields"].as_array_mut().unwrap() {
                if f["name"] == "carrier" {
                    f["type"] = serde_json::json!("int");
                }
            }
            let variants = [
                (ORDERS, "v1", contract("order_confirmed.avsc")),
                (PAYMENTS, "v1", contract("payment_captured.avsc")),
                (PAYMENTS, "v2", payments_v2),
                (SHIPMENTS, "v1", contract("shipment_dispatched.avsc")),
                (SHIPMENTS, "v2", shipments_v2),
                (INVOICES, "v1", contract("invoice_posted.avsc")),
            ];
            let http = reqwest::Client::new();
            let mut by = HashMap::new();
            for (topic, variant, schema) in variants {
                let text = schema.to_string();
                let resp: serde_json::Value = http
                    .post(format!(
                        "{registry}/subjects/{prefix}.{topic}-value/versions"
                    ))
                    .header("content-type", "application/vnd.schemaregistry.v1+json")
                    .json(&serde_json::json!({ "schema": text }))
                    .send()
                    .await
                    .unwrap_or_else(|e| panic!("the benchmark needs the local registry: {e}"))
                    .json()
                    .await
                    .unwrap();
                let id = resp["id"]
                    .as_u64()
                    .unwrap_or_else(|| panic!("registry: {resp}")) as u32;
                by.insert((topic, variant), (id, Schema::parse_str(&text).unwrap()));
            }
            Writers { by }
        }

        /// The generator's JSON record as Avro with the writer schema its shape calls for.
        #[allow(deprecated)]
        pub fn encode(&self, topic: &'static str, json: &[u8]) -> Vec<u8> {
            let v: serde_json::Value = serde_json::from_slice(json).unwrap();
            let variant = if v.get("currency").is_some() || v["carrier"].is_number() {
                "v2"
            } else {
                "v1"
            };
            let (id, schema) = &self.by[&(topic, variant)];
            let value = json_to_avro(v)
                .resolve(schema)
                .unwrap_or_else(|e| panic!("{topic}: {e}"));
            let mut out = vec![0u8];
            out.extend_from_slice(&id.to_be_bytes());
            out.extend(apache_avro::to_avro_datum(schema, value).unwrap());
            out
        }
    }
}

const PARTITIONS: i32 = 12;

fn client() -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set(
        "bootstrap.servers",
        std::env::var("SIGHTLINE_TEST_BOOTSTRAP").unwrap_or_else(|_| "127.0.0.1:9092".into()),
    );
    c
}

fn scrape(port: u16) -> String {
    std::process::Command::new("curl")
        .args(["-s", &format!("http://127.0.0.1:{port}/metrics")])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

/// The sum of a family's samples whose labels contain `label_part`.
fn metric_sum(port: u16, family: &str, label_part: &str) -> u64 {
    scrape(port)
        .lines()
        .filter(|l| l.starts_with(&format!("{family}{{")) && l.contains(label_part))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

fn metric(port: u16, sample: &str) -> u64 {
    scrape(port)
        .lines()
        .find_map(|l| {
            l.strip_prefix(sample)
                .and_then(|v| v.trim().parse::<f64>().ok())
        })
        .map(|v| v as u64)
        .unwrap_or(0)
}

fn proc_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix(field)
                .map(|v| v.trim().trim_end_matches(" kB").trim().parse().unwrap_or(0))
        })
        .unwrap_or(0)
}

fn dir_bytes(p: &std::path::Path) -> u64 {
    let mut total = 0;
    if let Ok(rd) = std::fs::read_dir(p) {
        for e in rd.flatten() {
            let m = e.metadata().unwrap();
            total += if m.is_dir() {
                dir_bytes(&e.path())
            } else {
                m.len()
            };
        }
    }
    total
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * q).round() as usize]
}

#[tokio::main]
async fn main() {
    let n: usize = std::env::var("SIGHTLINE_BENCH_ORDERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(250_000);
    let env = |k: &str, d: usize| {
        std::env::var(k)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(d)
    };
    let fault_every = env("SIGHTLINE_BENCH_FAULT_EVERY", 10);
    let poison_every = env("SIGHTLINE_BENCH_POISON_EVERY", 1_000);
    let id = uuid::Uuid::new_v4().simple().to_string();
    let prefix = format!("bench-{id}");
    let topic = |t: &str| format!("{prefix}.{t}");
    let inputs: Vec<String> = generator::TOPICS.iter().map(|t| topic(t)).collect();
    let probes = format!("bench-{id}.probes");
    let out = format!("bench-{id}.out");
    let admin: AdminClient<DefaultClientContext> = client().create().unwrap();
    let mut topics: Vec<NewTopic> = inputs
        .iter()
        .map(|t| NewTopic::new(t, PARTITIONS, TopicReplication::Fixed(1)))
        .collect();
    topics.push(NewTopic::new(
        &probes,
        PARTITIONS,
        TopicReplication::Fixed(1),
    ));
    if let Err(e) = admin
        .create_topics(topics.iter(), &AdminOptions::new())
        .await
    {
        eprintln!("the benchmark needs the local broker: {e}. Start it: deploy/local/stack start");
        std::process::exit(1);
    }

    // The traffic: the demo generator's orders, as Avro. Open-only mode (the memory target):
    // only the start event of each order, so every instance stays open.
    let now = chrono::Utc::now().timestamp_millis();
    let open_only = std::env::var("SIGHTLINE_BENCH_OPEN_ONLY").is_ok_and(|v| v == "1");
    let writers = avro::Writers::register(&registry_url(), &prefix).await;
    type Rec = (&'static str, Option<String>, Vec<u8>);
    let (records, poison, source): (usize, usize, Box<dyn Iterator<Item = Rec>>) = if open_only {
        let w = &writers;
        (
            n,
            0,
            Box::new((0..n).map(move |i| {
                let id = format!("O-{i:08}");
                let v = serde_json::json!({"type": "order_confirmed", "event_id": format!("{id}-c"),
                    "occurred_at": chrono::DateTime::from_timestamp_millis(now - 3_600_000 + (i % 3_600_000) as i64).unwrap().to_rfc3339(),
                    "order": {"id": id, "region": "eu", "channel": "web", "amount": 10.0, "carrier": "dhl"}});
                (generator::ORDERS, Some(id), w.encode(generator::ORDERS, &serde_json::to_vec(&v).unwrap()))
            })),
        )
    } else {
        // One order a second of event time, the last 30 around now (the generator's layout).
        let plan = generator::generate_with(
            42,
            n,
            now - n as i64 * 1_000,
            now,
            poison_every,
            Some(fault_every),
        );
        let poison = plan.records.iter().filter(|r| r.poison.is_some()).count();
        let w = &writers;
        (
            plan.records.len(),
            poison,
            Box::new(plan.records.into_iter().map(move |r| {
                let value = match r.poison {
                    // Poison stays as the generator made it: not Avro, so it is dead-lettered.
                    Some(_) => r.value,
                    None => w.encode(r.topic, &r.value),
                };
                (r.topic, r.key, value)
            })),
        )
    };
    println!(
        "benchmark: {n} orders{}, {records} records ({poison} poison) on 4 topics x {PARTITIONS} partitions, Avro via the registry; broker and registry on 127.0.0.1",
        if open_only { " (open-only: start events)" } else { "" }
    );
    let producer: FutureProducer = client()
        .set("linger.ms", "20")
        .set("batch.num.messages", "10000")
        .set("compression.type", "lz4")
        .set("partitioner", "murmur2_random")
        .create()
        .unwrap();
    let t = Instant::now();
    let mut pending = Vec::new();
    for (t, key, value) in source {
        let t = topic(t);
        let mut rec = FutureRecord::<str, [u8]>::to(&t).payload(&value);
        if let Some(k) = &key {
            rec = rec.key(k.as_str());
        }
        pending.push(producer.send_result(rec).map_err(|(e, _)| e).unwrap());
        if pending.len() >= 50_000 {
            for p in pending.drain(..) {
                p.await.unwrap().unwrap();
            }
        }
    }
    for p in pending.drain(..) {
        p.await.unwrap().unwrap();
    }
    println!(
        "published {records} records in {:.1} s",
        t.elapsed().as_secs_f64()
    );

    // The ceiling: a plain consumer reading them all, doing nothing with them.
    let input_refs: Vec<&str> = inputs.iter().map(String::as_str).collect();
    let c = reader(&format!("ceiling-{id}"), &input_refs);
    let mut read = 0usize;
    let mut started: Option<Instant> = None;
    while read < records {
        if let Some(Ok(m)) = c.poll(Duration::from_millis(100)) {
            started.get_or_insert_with(Instant::now);
            read += m.payload().map_or(0, |_| 1);
        }
    }
    let ceiling = records as f64 / started.unwrap().elapsed().as_secs_f64();
    drop(c);
    let floor = decode_floor(&id, &prefix, &input_refs, records).await;

    // Sightline on the same data, exactly once (the default).
    let dir = std::env::temp_dir().join(format!("sightline-bench-{id}"));
    let group = format!("bench-{id}");
    let start_exactly_once = || start(&dir, &group, "exactly_once", &prefix, None, &out);
    let (mut child, port) = start_exactly_once();
    let pid = child.id();
    let (rate, cpu) = measure(port, pid, &prefix, records);
    // The alerts are counted once they have all fired: an input read to its end holds the
    // watermark back until it has been silent for the engine's idle time (30 s), and the
    // deadlines behind it fire then. So: that long after the last record, then until the count
    // stays put for 3 s. This also lets RocksDB settle its memtables before measuring, and the
    // last drift claims come back through the announce topic.
    let settle_from = Instant::now();
    std::thread::sleep(Duration::from_secs(35));
    let mut last = (
        metric_sum(port, "sightline_alerts_emitted_total", ""),
        Instant::now(),
    );
    while last.1.elapsed() < Duration::from_secs(3)
        && settle_from.elapsed() < Duration::from_secs(180)
    {
        std::thread::sleep(Duration::from_millis(500));
        let now = metric_sum(port, "sightline_alerts_emitted_total", "");
        if now != last.0 {
            last = (now, Instant::now());
        }
    }
    let dead = metric_sum(port, "sightline_records_dead_lettered_total", &prefix);
    let alerts = metric_sum(port, "sightline_alerts_emitted_total", "");
    let drift = metric_sum(port, "sightline_schema_drift_events_total", &prefix);
    let rss_peak = proc_kib(pid, "VmHWM:");
    let rss_now = proc_kib(pid, "VmRSS:");
    let disk = dir_bytes(&dir.join("state"));
    let per_m = 1_000_000.0 / records as f64;
    let per_m_instances = 1_000_000.0 / n as f64;
    let sightline_alerts = alerts_by_kind(port);
    let loads: Vec<String> = ["batch", "committing", "cache", "store", "new"]
        .iter()
        .map(|from| {
            let n = metric(
                port,
                &format!("sightline_instance_loads_total{{from=\"{from}\"}}"),
            );
            format!("{from} {n}")
        })
        .collect();
    println!("instance loads: {}", loads.join(", "));
    let kinds: Vec<String> = sightline_alerts
        .iter()
        .map(|((kind, status), n)| format!("{kind} {status} {n}"))
        .collect();
    println!("alerts: {}", kinds.join(", "));
    println!(
        "at the end: {} timers fired, {} partitions paused",
        metric_sum(port, "sightline_timers_fired_total", ""),
        metric(port, "sightline_paused_partitions")
    );
    // Whether every deadline had fired when the alerts were counted: the same counts again,
    // 30 s later.
    if std::env::var("SIGHTLINE_BENCH_RECOUNT").is_ok_and(|v| v == "1") {
        std::thread::sleep(Duration::from_secs(30));
        println!(
            "30 s later: {} alerts, {} timers fired",
            metric_sum(port, "sightline_alerts_emitted_total", ""),
            metric_sum(port, "sightline_timers_fired_total", "")
        );
    }
    let mut dead_by_class = std::collections::BTreeMap::new();
    for ((topic, class), n) in by_labels(
        port,
        "sightline_records_dead_lettered_total",
        ["topic", "class"],
    ) {
        if topic.starts_with(&prefix) {
            *dead_by_class.entry(class).or_insert(0u64) += n;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    let ks = if open_only {
        Vec::new()
    } else {
        kafka_streams_runs(&id, &inputs, records).await
    };
    compare(
        rate,
        cpu * per_m,
        &dead_by_class,
        &sightline_alerts,
        &ks,
        ceiling,
        per_m,
    );
    if std::env::var("SIGHTLINE_BENCH_QUICK").is_ok_and(|v| v == "1") {
        // The profiling loop: the ceiling, the exactly-once run and Kafka Streams only.
        println!(
            "quick: ceiling {ceiling:.0} records/s; decode floor {floor:.0} records/s ({:.0}%); exactly once {rate:.0} records/s ({:.0}%), {:.1} CPU s per million; {dead} dead-lettered, {alerts} alerts, {drift} drift events; peak RSS {:.0} MiB",
            100.0 * floor / ceiling,
            100.0 * rate / ceiling,
            cpu * per_m,
            rss_peak as f64 / 1024.0
        );
        let _ = std::fs::remove_dir_all(&dir);
        return;
    }
    if open_only {
        println!();
        println!("| measure | value |");
        println!("|---|---|");
        println!("| raw-consume ceiling (same topics, same run) | {ceiling:.0} records/s |");
        println!("| decode floor (the same consumer, also decoding and mapping) | {floor:.0} records/s ({:.0}% of the ceiling) |", 100.0 * floor / ceiling);
        println!("| Sightline, exactly once: {n} open instances into RocksDB | {rate:.0} records/s ({:.1}% of the ceiling), {:.1} CPU s per million |", 100.0 * rate / ceiling, cpu * per_m);
        println!(
            "| peak RSS with {n} open instances (state.block_cache_mb {}) | {:.0} MiB ({:.0} MiB at the end) |",
            block_cache_mb(),
            rss_peak as f64 / 1024.0,
            rss_now as f64 / 1024.0
        );
        println!(
            "| state on disk per million open instances | {:.0} MiB |",
            disk as f64 * per_m_instances / 1_048_576.0
        );
        let _ = std::fs::remove_dir_all(&dir);
        return;
    }
    // Deadline to alert, wall-clock mode: an instance on the probe workflow alone (the
    // order-to-cash history runs on event time; on the wall clock its old deadlines would all
    // be due at once).
    let dir_probe = std::env::temp_dir().join(format!("sightline-bench-{id}-probe"));
    let (mut probe_child, probe_port) = start(
        &dir_probe,
        &format!("bench-{id}-probe"),
        "exactly_once",
        &prefix,
        Some(&probes),
        &out,
    );
    let ready_by = Instant::now() + Duration::from_secs(120);
    while metric(probe_port, "sightline_ready") != 1 {
        assert!(
            Instant::now() < ready_by,
            "the probe instance did not get ready"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let lat = probe_latencies(&probes, &out, &id).await;
    let _ = probe_child.kill();
    let _ = probe_child.wait();
    let _ = std::fs::remove_dir_all(&dir_probe);

    // Restore: lose the disk, start again, time the restore of every open instance.
    std::fs::remove_dir_all(dir.join("state")).unwrap();
    let t = Instant::now();
    let (mut child, port) = start_exactly_once();
    while metric(port, "sightline_state_restoring") != 0
        || metric(port, "sightline_state_restored_records_total") == 0
    {
        std::thread::sleep(Duration::from_millis(50));
        assert!(
            t.elapsed() < Duration::from_secs(1800),
            "restore did not finish"
        );
    }
    let restore_wall = t.elapsed().as_secs_f64();
    let restored = metric(port, "sightline_state_restored_records_total");
    let restore_ms = std::fs::read_to_string(dir.join("sightline.log"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["message"] == "state restored from the changelog")
        .filter_map(|v| v["millis"].as_u64())
        .sum::<u64>();
    let _ = child.kill();
    let _ = child.wait();

    // Transactions off: another group, the same orders, at-least-once.
    let dir_alo = std::env::temp_dir().join(format!("sightline-bench-{id}-alo"));
    let (mut child, port) = start(
        &dir_alo,
        &format!("bench-{id}-alo"),
        "at_least_once",
        &prefix,
        None,
        &format!("{out}-alo"),
    );
    let (rate_alo, cpu_alo) = measure(port, child.id(), &prefix, records);
    let _ = child.kill();
    let _ = child.wait();

    println!();
    println!("| measure | value |");
    println!("|---|---|");
    println!("| raw-consume ceiling (same topics, same run) | {ceiling:.0} records/s |");
    println!("| the same consumer, also decoding and mapping every record (Sightline's decoder and mappers, nothing else) | {floor:.0} records/s ({:.0}% of the ceiling) |", 100.0 * floor / ceiling);
    println!("| Sightline, exactly once, every detector on: {records} records ({n} orders; {dead} dead-lettered, {alerts} alerts, {drift} drift events) | {rate:.0} records/s ({:.0}% of the ceiling) |", 100.0 * rate / ceiling);
    println!("| Sightline, at least once (transactions off), same records | {rate_alo:.0} records/s ({:.0}% of the ceiling) |", 100.0 * rate_alo / ceiling);
    println!(
        "| CPU per million events, transactions on / off | {:.1} s / {:.1} s |",
        cpu * per_m,
        cpu_alo * per_m
    );
    println!(
        "| peak RSS with {n} instances | {:.0} MiB ({:.0} MiB now) |",
        rss_peak as f64 / 1024.0,
        rss_now as f64 / 1024.0
    );
    println!(
        "| state on disk per million instances | {:.0} MiB |",
        disk as f64 * per_m_instances / 1_048_576.0
    );
    println!(
        "| changelog restore into an empty state dir, {n} instances | {:.1} s ({restored} changelog records; {:.1} s from process start to ready) |",
        restore_ms as f64 / 1000.0,
        restore_wall
    );
    if lat.is_empty() {
        println!("| deadline to alert | no probe alert arrived |");
    } else {
        println!(
            "| deadline to alert on the topic, wall-clock mode, {} probes | p50 {:.3} s, p99 {:.3} s, max {:.3} s |",
            lat.len(),
            percentile(&lat, 0.5),
            percentile(&lat, 0.99),
            lat[lat.len() - 1]
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(&dir_alo);
}

/// Sightline's alerts by (kind, status), from its metrics.
fn alerts_by_kind(port: u16) -> std::collections::BTreeMap<(String, String), u64> {
    by_labels(port, "sightline_alerts_emitted_total", ["kind", "status"])
}

/// The samples of a metric family summed by the values of two of its labels.
fn by_labels(
    port: u16,
    family: &str,
    labels: [&str; 2],
) -> std::collections::BTreeMap<(String, String), u64> {
    let mut by = std::collections::BTreeMap::new();
    for l in scrape(port).lines() {
        let Some(rest) = l.strip_prefix(&format!("{family}{{")) else {
            continue;
        };
        let label = |k: &str| {
            rest.split_once(&format!("{k}=\""))
                .and_then(|(_, r)| r.split_once('"'))
                .map(|(v, _)| v.to_string())
                .unwrap_or_default()
        };
        let n = l.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok());
        *by.entry((label(labels[0]), label(labels[1]))).or_insert(0) += n.unwrap_or(0.0) as u64;
    }
    by
}

/// The Kafka Streams application on the same records, at each thread count of
/// `SIGHTLINE_BENCH_KSTREAMS_THREADS` (default "1,2"; "0" skips it).
async fn kafka_streams_runs(
    id: &str,
    inputs: &[String],
    records: usize,
) -> Vec<kafka_streams::Run> {
    let threads = std::env::var("SIGHTLINE_BENCH_KSTREAMS_THREADS").unwrap_or("1,2".into());
    if threads == "0" {
        return Vec::new();
    }
    let jar = kafka_streams::build().unwrap_or_else(|e| panic!("{e}"));
    let mut runs = Vec::new();
    for t in threads.split(',') {
        let t = t
            .trim()
            .parse()
            .expect("SIGHTLINE_BENCH_KSTREAMS_THREADS: 1,2,...");
        let run = kafka_streams::run(&jar, &registry_url(), id, inputs, records, t)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        println!(
            "kafka streams, {t} thread(s): {:.0} records/s, {:.1} CPU s per million",
            run.rate,
            run.cpu * 1_000_000.0 / records as f64
        );
        runs.push(run);
    }
    runs
}

/// Sightline next to Kafka Streams: throughput, CPU and alert counts of the same run.
fn compare(
    rate: f64,
    cpu_per_m: f64,
    dead_by_class: &std::collections::BTreeMap<String, u64>,
    sightline: &std::collections::BTreeMap<(String, String), u64>,
    ks: &[kafka_streams::Run],
    ceiling: f64,
    per_m: f64,
) {
    let Some(best) = ks.iter().max_by(|a, b| a.rate.total_cmp(&b.rate)) else {
        return;
    };
    println!();
    println!("| same records, same run | records/s | % of the ceiling | CPU s per million |");
    println!("|---|---|---|---|");
    println!("| raw-consume ceiling | {ceiling:.0} | 100% | |");
    println!(
        "| Sightline, exactly once | {rate:.0} | {:.1}% | {cpu_per_m:.1} |",
        100.0 * rate / ceiling
    );
    for r in ks {
        println!(
            "| Kafka Streams 4.1, exactly once v2, {} thread(s) | {:.0} | {:.1}% | {:.1} |",
            r.threads,
            r.rate,
            100.0 * r.rate / ceiling,
            r.cpu * per_m
        );
    }
    println!(
        "| Sightline / Kafka Streams at its best ({} thread(s)) | {:.2}x | | |",
        best.threads,
        rate / best.rate
    );
    println!();
    println!("| alerts (kind, status) | Sightline | Kafka Streams |");
    println!("|---|---|---|");
    let mut keys: std::collections::BTreeSet<&(String, String)> = sightline.keys().collect();
    keys.extend(best.alerts.keys());
    for k in keys {
        println!(
            "| {} {} | {} | {} |",
            k.0,
            k.1,
            sightline.get(k).copied().unwrap_or(0),
            best.alerts.get(k).copied().unwrap_or(0)
        );
    }
    println!(
        "| records dead-lettered | {} | {} |",
        dead_by_class.values().sum::<u64>(),
        best.dead_lettered.values().sum::<u64>()
    );
    let mut classes: std::collections::BTreeSet<&String> = dead_by_class.keys().collect();
    classes.extend(best.dead_lettered.keys());
    for class in classes {
        println!(
            "| dead-lettered as {class} | {} | {} |",
            dead_by_class.get(class).copied().unwrap_or(0),
            best.dead_lettered.get(class).copied().unwrap_or(0)
        );
    }
}

/// topologies/order-to-cash.yaml on the benchmark's topics, as Avro.
fn o2c_topology(prefix: &str) -> String {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut o2c = std::fs::read_to_string(root.join("topologies/order-to-cash.yaml"))
        .unwrap()
        .replace("format: json", "format: avro");
    for t in generator::TOPICS {
        o2c = o2c.replace(&format!("topic: {t}\n"), &format!("topic: {prefix}.{t}\n"));
    }
    o2c
}

/// A plain consumer of `inputs` from their start, as group `group`: the ceiling's and the decode
/// floor's (the same settings, so that the two compare).
fn reader(group: &str, inputs: &[&str]) -> BaseConsumer {
    let c: BaseConsumer = client()
        .set("group.id", group)
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    c.subscribe(inputs).unwrap();
    c
}

/// The decode floor: the ceiling's consumer, reading the same records, and also decoding each
/// one with Sightline's Avro decoder (registry schemas cached after the first) and mapping it
/// with its source's mapping into an event; nothing else: no state, no detection, no output,
/// no transaction. Whatever detects anything does at least this per record. Records/s.
async fn decode_floor(id: &str, prefix: &str, inputs: &[&str], records: usize) -> f64 {
    use schema_registry_converter::async_impl::{avro::AvroDecoder, schema_registry::SrSettings};
    use sightline::ingest::{Decoder, Mapper, RawRecord};
    let topology = sightline::topology::Topology::parse(
        &o2c_topology(prefix),
        std::path::Path::new("order-to-cash.yaml"),
    )
    .unwrap();
    let mappers: std::collections::HashMap<String, Mapper> = topology
        .sources
        .iter()
        .map(|s| (s.topic.clone(), Mapper::new(s)))
        .collect();
    let decoder = Decoder::new(
        sightline::topology::Format::Avro,
        Some((
            std::sync::Arc::new(AvroDecoder::new(SrSettings::new(registry_url()))),
            sightline::observe::health::Health::new(),
        )),
    )
    .unwrap();
    let c = reader(&format!("decode-floor-{id}"), inputs);
    let (mut read, mut mapped) = (0usize, 0usize);
    let mut started: Option<Instant> = None;
    while read < records {
        if let Some(Ok(m)) = c.poll(Duration::from_millis(100)) {
            started.get_or_insert_with(Instant::now);
            read += 1;
            let rec = RawRecord::of(&m, &[]);
            let mapper = &mappers[rec.topic];
            if let Ok(d) = decoder.read(rec.value, mapper.projection(), false).await {
                mapped += mapper.map_fields(&d.fields, &rec).is_ok() as usize;
            }
        }
    }
    let rate = records as f64 / started.unwrap().elapsed().as_secs_f64();
    println!("decode floor: {mapped} of {read} records decoded and mapped");

    // Untimed: on every record, the projection gives the event (or the class of rejection)
    // that decoding the whole document gives.
    let class = |r: sightline::ingest::Rejection| match r {
        sightline::ingest::Rejection::Bad { class, .. } => class.as_str().to_string(),
        sightline::ingest::Rejection::Transient { status, .. } => status,
    };
    let c = reader(&format!("decode-check-{id}"), inputs);
    let (mut checked, mut same) = (0usize, 0usize);
    while checked < records {
        if let Some(Ok(m)) = c.poll(Duration::from_millis(100)) {
            checked += 1;
            let rec = RawRecord::of(&m, &[]);
            let mapper = &mappers[rec.topic];
            let projected = match decoder.read(rec.value, mapper.projection(), false).await {
                Ok(d) => mapper.map_fields(&d.fields, &rec).map_err(class),
                Err(e) => Err(class(e)),
            };
            let whole = match decoder.decode(rec.value).await {
                Ok(d) => mapper.map(&d.doc, &rec).map_err(class),
                Err(e) => Err(class(e)),
            };
            assert_eq!(
                projected, whole,
                "{}/{}@{}: the projection and the document disagree",
                rec.topic, rec.partition, rec.offset
            );
            same += 1;
        }
    }
    println!(
        "decode check: the projection gives the document's event on {same} of {checked} records"
    );
    rate
}

/// Writes a config for `group` in `dir` and starts `sightline run` on it: (child, HTTP port).
/// Without `probes`: topologies/order-to-cash.yaml on the benchmark's topics, as Avro, with a
/// freshness and an age monitor, on event time. With `probes`: the probe workflow alone, on the
/// wall clock.
fn start(
    dir: &std::path::Path,
    group: &str,
    guarantee: &str,
    prefix: &str,
    probes: Option<&str>,
    out: &str,
) -> (std::process::Child, u16) {
    std::fs::create_dir_all(dir).unwrap();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut o2c = o2c_topology(prefix);
    o2c.push_str(
        "\nmonitors:\n  freshness:\n    - { name: payments-flow, source: payments, quiet_period: 10m }\n  \
         age:\n    - { name: shipment-age, source: shipments, max_age: 2h, report_every: 10s }\n",
    );
    std::fs::write(dir.join("order-to-cash.yaml"), o2c).unwrap();
    let (paths, time) = match probes {
        Some(probes) => {
            std::fs::write(
                dir.join("probes.yaml"),
                format!(
                    "name: bench\nsources:\n  - {{ name: probes, topic: {probes}, format: json, event_type: {{ field: type }}, key: {{ field: key }}, event_time: {{ field: at }} }}\n\
                     workflows:\n  - name: probe\n    ttl: 1d\n    steps:\n      - {{ name: started, on: probe_started, start: true }}\n      - {{ name: done, on: probe_done, after: started, within: 2s }}\n"
                ),
            )
            .unwrap();
            ("probes.yaml", "wall")
        }
        None => ("order-to-cash.yaml", "event"),
    };
    // The probe instance writes JSON outputs (no registry), which the probe reader parses.
    let registry = match probes {
        Some(_) => String::new(),
        None => format!("[registry]\nurl = \"{}\"\n", registry_url()),
    };
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    std::fs::write(
        dir.join("sightline.toml"),
        format!(
            "[kafka]\nbootstrap_servers = \"127.0.0.1:9092\"\ngroup_id = \"{group}\"\nprocessing_guarantee = \"{guarantee}\"\n{}[kafka.topics]\npartitions = {PARTITIONS}\nreplication_factor = 1\n\
             [http]\nbind = \"127.0.0.1:{port}\"\n[state]\ndir = \"state\"\nblock_cache_mb = {}\n{}[outputs]\nalerts = \"{out}.alerts\"\nsla = \"{out}.sla\"\ndrift = \"{out}.drift\"\nlag = \"{out}.lag\"\n\
             [topologies]\npaths = [\"{paths}\"]\n[schemas]\ndir = \"{}\"\n\
             {registry}[engine]\ntime = \"{time}\"\ntimer_tick_ms = 50\n{}",
            overrides(),
            block_cache_mb(),
            instance_cache(),
            root.join("schemas").display(),
            std::env::var("SIGHTLINE_BENCH_ENGINE").unwrap_or_default().replace(',', "\n"),
        ),
    )
    .unwrap();
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("sightline.log"))
        .unwrap();
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_sightline"))
        .args(["--log-format", "json", "run", "--config"])
        .arg(dir.join("sightline.toml"))
        .stderr(log)
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    (child, port)
}

/// Waits until the records read from the benchmark's topics reach `n`: (records/s from the
/// first record read, CPU seconds).
fn measure(port: u16, pid: u32, prefix: &str, n: usize) -> (f64, f64) {
    let mut first: Option<(Instant, f64)> = None;
    let deadline = Instant::now() + Duration::from_secs(3600);
    loop {
        let done = metric_sum(port, "sightline_records_consumed_total", prefix) as usize;
        if done > 0 && first.is_none() {
            first = Some((Instant::now(), cpu_seconds(pid)));
        }
        if done >= n || Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let (t0, cpu0) = first.expect("sightline processed something");
    let secs = t0.elapsed().as_secs_f64();
    (n as f64 / secs, cpu_seconds(pid) - cpu0)
}

/// Probes: deadlines 2 s after their start, on the wall clock; alerts timed on arrival.
async fn probe_latencies(probes: &str, out: &str, id: &str) -> Vec<f64> {
    let alerts: BaseConsumer = client()
        .set("group.id", format!("alerts-{id}"))
        .set("auto.offset.reset", "latest")
        .create()
        .unwrap();
    alerts.subscribe(&[&format!("{out}.alerts")]).unwrap();
    while alerts.assignment().map(|a| a.count()).unwrap_or(0) == 0 {
        alerts.poll(Duration::from_millis(100));
    }
    let probes_n = 2_000;
    let probe_producer: FutureProducer = client().set("linger.ms", "0").create().unwrap();
    let mut sent = Vec::with_capacity(probes_n);
    for i in 0..probes_n {
        let at = chrono::Utc::now().timestamp_millis();
        let v = format!(r#"{{"type":"probe_started","key":"P-{i}","at":{at}}}"#);
        sent.push(
            probe_producer
                .send_result(FutureRecord::to(probes).key(&format!("P-{i}")).payload(&v))
                .map_err(|(e, _)| e)
                .unwrap(),
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    for s in sent {
        s.await.unwrap().unwrap();
    }
    let mut lat = Vec::with_capacity(probes_n);
    let until = Instant::now() + Duration::from_secs(60);
    while lat.len() < probes_n && Instant::now() < until {
        if let Some(Ok(m)) = alerts.poll(Duration::from_millis(100)) {
            // When the alert was appended to the topic (the producer's create time).
            let arrived = m.timestamp().to_millis().unwrap_or_default();
            let a: serde_json::Value =
                serde_json::from_slice(m.payload().unwrap_or_default()).unwrap_or_default();
            if a["workflow"] == "probe" && a["status"] == "FIRING" {
                lat.push((arrived - a["deadline"].as_i64().unwrap()) as f64 / 1000.0);
            }
        }
    }
    lat.sort_by(|a, b| a.partial_cmp(b).unwrap());
    lat
}
