//! The workflow engine against the real local broker (deploy/local/stack start):
//!
//! 1. N orders (`SIGHTLINE_BENCH_ORDERS`, default 1,000,000) are published, each opening a
//!    workflow instance; the raw-consume ceiling (a plain consumer reading them, doing nothing)
//!    is measured, then `sightline run` (release build, a child process) reads them into RocksDB:
//!    events/s against the ceiling, peak RSS and state on disk, per million open instances.
//! 2. With those instances open, probe instances whose deadline is 2 s away are started, one
//!    every 5 ms, and never completed: the time from each deadline to its alert's timestamp on
//!    the alert topic (wall-clock mode), p50 and p99.
//! 3. Restore: the instance is killed, its state directory wiped, and it is started again; the
//!    time to restore every open instance from the changelog.
//! 4. Transactions off: a second group reads the same orders with
//!    `processing_guarantee = at_least_once`, at the same (default) commit interval.
//!
//!     cargo bench --bench workflow
//!     SIGHTLINE_BENCH_ORDERS=200000 cargo bench --bench workflow

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Message};
use std::time::{Duration, Instant};

#[path = "support.rs"]
mod support;
use support::cpu_seconds;

const PARTITIONS: i32 = 12;

fn client() -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set(
        "bootstrap.servers",
        std::env::var("SIGHTLINE_TEST_BOOTSTRAP").unwrap_or_else(|_| "127.0.0.1:9092".into()),
    );
    c
}

fn metric(port: u16, sample: &str) -> u64 {
    let out = std::process::Command::new("curl")
        .args(["-s", &format!("http://127.0.0.1:{port}/metrics")])
        .output();
    let body = out
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    body.lines()
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
        .unwrap_or(1_000_000);
    let id = uuid::Uuid::new_v4().simple().to_string();
    let orders = format!("bench-{id}.orders");
    let probes = format!("bench-{id}.probes");
    let out = format!("bench-{id}.out");
    let admin: AdminClient<DefaultClientContext> = client().create().unwrap();
    let topics = [
        NewTopic::new(&orders, PARTITIONS, TopicReplication::Fixed(1)),
        NewTopic::new(&probes, PARTITIONS, TopicReplication::Fixed(1)),
    ];
    if let Err(e) = admin
        .create_topics(topics.iter(), &AdminOptions::new())
        .await
    {
        eprintln!("the benchmark needs the local broker: {e}. Start it: deploy/local/stack start");
        std::process::exit(1);
    }
    println!(
        "workflow benchmark: {n} open instances, {PARTITIONS} partitions, broker on 127.0.0.1"
    );

    // Publish the orders.
    let producer: FutureProducer = client()
        .set("linger.ms", "20")
        .set("batch.num.messages", "10000")
        .set("compression.type", "lz4")
        .create()
        .unwrap();
    let now = chrono::Utc::now().timestamp_millis();
    let t = Instant::now();
    let mut pending = Vec::new();
    for i in 0..n {
        let key = format!("O-{i:08}");
        let v = format!(
            r#"{{"type":"order_confirmed","id":"e{i}","order_id":"{key}","at":{},"carrier":"dhl"}}"#,
            now - 3_600_000 + (i as i64 % 3_600_000)
        );
        pending.push(
            producer
                .send_result(FutureRecord::to(&orders).key(&key).payload(&v))
                .map_err(|(e, _)| e)
                .unwrap(),
        );
        if pending.len() >= 50_000 {
            for p in pending.drain(..) {
                p.await.unwrap().unwrap();
            }
        }
    }
    for p in pending.drain(..) {
        p.await.unwrap().unwrap();
    }
    println!("published {n} orders in {:.1} s", t.elapsed().as_secs_f64());

    // The ceiling: a plain consumer reading them all, doing nothing with them.
    let c: BaseConsumer = client()
        .set("group.id", format!("ceiling-{id}"))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    c.subscribe(&[&orders]).unwrap();
    let mut read = 0usize;
    let mut started: Option<Instant> = None;
    while read < n {
        if let Some(Ok(m)) = c.poll(Duration::from_millis(100)) {
            started.get_or_insert_with(Instant::now);
            read += m.payload().map_or(0, |_| 1);
        }
    }
    let ceiling = n as f64 / started.unwrap().elapsed().as_secs_f64();
    drop(c);

    // Sightline on the same data, exactly once (the default).
    let dir = std::env::temp_dir().join(format!("sightline-bench-{id}"));
    let group = format!("bench-{id}");
    let start_exactly_once = || start(&dir, &group, "exactly_once", &orders, &probes, &out);
    let (mut child, port) = start_exactly_once();
    let pid = child.id();
    let events = format!(
        "sightline_events_consumed_total{{event_type=\"order_confirmed\",topic=\"{orders}\"}}"
    );
    let (rate, cpu) = measure(port, pid, &events, n);
    std::thread::sleep(Duration::from_secs(2)); // let RocksDB settle its memtables before measuring
    let rss_peak = proc_kib(pid, "VmHWM:");
    let rss_now = proc_kib(pid, "VmRSS:");
    let disk = dir_bytes(&dir.join("state"));
    let per_m = 1_000_000.0 / n as f64;
    let lat = probe_latencies(&probes, &out, &id).await;

    // Restore: lose the disk, start again, time the restore of every open instance.
    let _ = child.kill();
    let _ = child.wait();
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
        &orders,
        &probes,
        &format!("{out}-alo"),
    );
    let (rate_alo, cpu_alo) = measure(port, child.id(), &events, n);
    let _ = child.kill();
    let _ = child.wait();

    println!();
    println!("| measure | value |");
    println!("|---|---|");
    println!("| raw-consume ceiling (same topic, same run) | {ceiling:.0} events/s |");
    println!("| Sightline, exactly once (transactions on), {n} orders into RocksDB | {rate:.0} events/s ({:.0}% of the ceiling) |", 100.0 * rate / ceiling);
    println!("| Sightline, at least once (transactions off), same orders | {rate_alo:.0} events/s ({:.0}% of the ceiling) |", 100.0 * rate_alo / ceiling);
    println!(
        "| CPU per million events, transactions on / off | {:.1} s / {:.1} s |",
        cpu * per_m,
        cpu_alo * per_m
    );
    println!(
        "| peak RSS with {n} open instances | {:.0} MiB ({:.0} MiB now) |",
        rss_peak as f64 / 1024.0,
        rss_now as f64 / 1024.0
    );
    println!(
        "| state on disk per million open instances | {:.0} MiB |",
        disk as f64 * per_m / 1_048_576.0
    );
    println!(
        "| changelog restore into an empty state dir, {n} open instances | {:.1} s ({restored} changelog records; {:.1} s from process start to ready) |",
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

/// Writes a config for `group` in `dir` and starts `sightline run` on it: (child, HTTP port).
fn start(
    dir: &std::path::Path,
    group: &str,
    guarantee: &str,
    orders: &str,
    probes: &str,
    out: &str,
) -> (std::process::Child, u16) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(
        dir.join("topology.yaml"),
        format!(
            "name: bench\nsources:\n  - {{ name: orders, topic: {orders}, format: json, event_type: {{ field: type }}, key: {{ field: order_id }}, event_id: {{ field: id }}, event_time: {{ field: at }}, dimensions: {{ carrier: carrier }} }}\n\
             \x20 - {{ name: probes, topic: {probes}, format: json, event_type: {{ field: type }}, key: {{ field: key }}, event_time: {{ field: at }} }}\n\
             workflows:\n  - name: orders\n    ttl: 30d\n    steps:\n      - {{ name: ordered, on: order_confirmed, start: true }}\n      - {{ name: paid, on: payment_captured, after: ordered, within: 7d }}\n      - {{ name: shipped, on: shipment_dispatched, after: paid, within: 7d }}\n\
             \x20 - name: probe\n    ttl: 1d\n    steps:\n      - {{ name: started, on: probe_started, start: true }}\n      - {{ name: done, on: probe_done, after: started, within: 2s }}\n"
        ),
    )
    .unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    std::fs::write(
        dir.join("sightline.toml"),
        format!(
            "[kafka]\nbootstrap_servers = \"127.0.0.1:9092\"\ngroup_id = \"{group}\"\nprocessing_guarantee = \"{guarantee}\"\n[kafka.topics]\npartitions = {PARTITIONS}\nreplication_factor = 1\n\
             [http]\nbind = \"127.0.0.1:{port}\"\n[state]\ndir = \"state\"\n[outputs]\nalerts = \"{out}.alerts\"\nsla = \"{out}.sla\"\ndrift = \"{out}.drift\"\nlag = \"{out}.lag\"\n\
             [topologies]\npaths = [\"topology.yaml\"]\n[engine]\ntime = \"wall\"\ntimer_tick_ms = 50\n"
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

/// Waits until `events` reaches `n`: (events/s from the first processed event, CPU seconds).
fn measure(port: u16, pid: u32, events: &str, n: usize) -> (f64, f64) {
    let mut first: Option<(Instant, f64)> = None;
    let deadline = Instant::now() + Duration::from_secs(1800);
    loop {
        let done = metric(port, events) as usize;
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
                .send_result(FutureRecord::to(&probes).key(&format!("P-{i}")).payload(&v))
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
