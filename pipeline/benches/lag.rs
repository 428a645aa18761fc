//! CPU cost of lag polling against the real local broker (deploy/local/stack start):
//! 50 consumer groups × 100 partitions, polled at the default interval (5 s) by the same
//! poller `sightline run` uses (committed offsets, high watermarks, exact time-lag reads,
//! status evaluation, metrics).
//!
//! Setup: one 100-partition topic with 200 records per partition; 50 groups, each committed on
//! every partition (group g at offset 2g, so all lag). During the measurement 10 of the groups
//! keep consuming (each advances one record per partition per second), so every poll has new
//! offsets to read exactly; the other 40 stand still (their reads are cached). The advancing
//! groups are played by a child process, so the CPU measured is the poller's alone.
//!
//!     cargo bench --bench lag
//!     SIGHTLINE_BENCH_LAG_SECONDS=120 cargo bench --bench lag

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use sightline::config::LagConfig;
use sightline::engine::lag::LagPoller;
use std::time::{Duration, Instant};

#[path = "support.rs"]
mod support;

const GROUPS: usize = 50;
const PARTITIONS: i32 = 100;
const RECORDS_PER_PARTITION: i64 = 200;
const MOVING: usize = 10;

fn client() -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set(
        "bootstrap.servers",
        std::env::var("SIGHTLINE_TEST_BOOTSTRAP").unwrap_or_else(|_| "127.0.0.1:9092".into()),
    );
    c
}

fn cpu_seconds_self() -> f64 {
    support::cpu_seconds(std::process::id())
}

fn commit_all(c: &BaseConsumer, topic: &str, offset: i64) {
    let mut tpl = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        tpl.add_partition_offset(topic, p, Offset::Offset(offset))
            .unwrap();
    }
    c.commit(&tpl, CommitMode::Sync).expect("commit");
}

fn group(run: &str, g: usize) -> String {
    format!("{run}-g{g:02}")
}

/// The child: the 10 moving groups advance one record per partition per second.
fn advance(topic: &str, run: &str) {
    let clients: Vec<BaseConsumer> = (0..MOVING)
        .map(|g| {
            client()
                .set("group.id", group(run, g))
                .set("enable.auto.commit", "false")
                .create()
                .unwrap()
        })
        .collect();
    let start = Instant::now();
    loop {
        let step = start.elapsed().as_secs() as i64;
        for (g, c) in clients.iter().enumerate() {
            commit_all(c, topic, (2 * g as i64 + step).min(RECORDS_PER_PARTITION));
        }
        std::thread::sleep(Duration::from_secs(1).saturating_sub(Duration::from_millis(
            (start.elapsed().as_millis() % 1000) as u64,
        )));
    }
}

#[tokio::main]
async fn main() {
    if let (Ok(topic), Ok(run)) = (
        std::env::var("SIGHTLINE_BENCH_LAG_TOPIC"),
        std::env::var("SIGHTLINE_BENCH_LAG_RUN"),
    ) {
        advance(&topic, &run);
        return;
    }
    let seconds: u64 = std::env::var("SIGHTLINE_BENCH_LAG_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(60);
    let run = format!("bench-lag-{}", uuid::Uuid::new_v4().simple());
    let topic = format!("{run}-topic");
    let admin: AdminClient<DefaultClientContext> = client().create().unwrap();
    for r in admin
        .create_topics(
            &[NewTopic::new(
                &topic,
                PARTITIONS,
                TopicReplication::Fixed(1),
            )],
            &AdminOptions::new(),
        )
        .await
        .expect("create topic (is the local stack running? deploy/local/stack start)")
    {
        r.expect("topic created");
    }
    let producer: FutureProducer = client().set("linger.ms", "20").create().unwrap();
    let now = chrono::Utc::now().timestamp_millis();
    let mut sends = Vec::new();
    for p in 0..PARTITIONS {
        for i in 0..RECORDS_PER_PARTITION {
            sends.push(
                producer.send(
                    FutureRecord::to(&topic)
                        .partition(p)
                        .key("k")
                        .payload("{}")
                        .timestamp(now - 3_600_000 + i * 1_000),
                    Duration::from_secs(30),
                ),
            );
        }
    }
    for s in futures::future::join_all(sends).await {
        s.expect("produced");
    }
    producer.flush(Duration::from_secs(10)).unwrap();
    for g in 0..GROUPS {
        let c: BaseConsumer = client()
            .set("group.id", group(&run, g))
            .set("enable.auto.commit", "false")
            .create()
            .unwrap();
        commit_all(&c, &topic, 2 * g as i64);
    }
    println!(
        "lag bench: {GROUPS} groups × {PARTITIONS} partitions ({} group-partitions), {MOVING} groups consuming, poll interval 5 s (the default), {seconds} s",
        GROUPS * PARTITIONS as usize
    );

    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .env("SIGHTLINE_BENCH_LAG_TOPIC", &topic)
        .env("SIGHTLINE_BENCH_LAG_RUN", &run)
        .spawn()
        .expect("advancing groups");

    sightline::observe::metrics::init();
    let cfg = LagConfig {
        groups: (0..GROUPS).map(|g| group(&run, g)).collect(),
        ..LagConfig::default()
    };
    let interval = Duration::from_millis(cfg.interval_ms);
    let mut poller = LagPoller::new(&client(), &format!("{run}-sightline"), &cfg, &[]).unwrap();
    // The first poll reads every distinct committed offset once: setup, reported apart.
    let t0 = Instant::now();
    let c0 = cpu_seconds_self();
    poller.poll_once(chrono::Utc::now().timestamp_millis());
    println!(
        "  first poll (cold: {} exact reads): {:.2} s wall, {:.2} CPU-s",
        GROUPS * PARTITIONS as usize,
        t0.elapsed().as_secs_f64(),
        cpu_seconds_self() - c0
    );
    let start = Instant::now();
    let cpu_start = cpu_seconds_self();
    let mut polls = Vec::new();
    let mut next = Instant::now();
    while start.elapsed() < Duration::from_secs(seconds) {
        next += interval;
        tokio::time::sleep_until(next.into()).await;
        let t = Instant::now();
        let events = poller.poll_once(chrono::Utc::now().timestamp_millis());
        polls.push((t.elapsed().as_secs_f64(), events.len()));
    }
    let wall = start.elapsed().as_secs_f64();
    let cpu = cpu_seconds_self() - cpu_start;
    let _ = child.kill();
    let _ = child.wait();
    let mut d: Vec<f64> = polls.iter().map(|p| p.0).collect();
    d.sort_by(|a, b| a.partial_cmp(b).unwrap());
    println!(
        "  polls: {}; poll duration p50 {:.3} s, max {:.3} s",
        d.len(),
        d[d.len() / 2],
        d[d.len() - 1]
    );
    println!(
        "  CPU: {cpu:.2} s over {wall:.1} s = {:.2}% of one core (target < 5%)",
        100.0 * cpu / wall
    );
    let exact = sightline::observe::metrics::METRICS
        .lag_time_measurements
        .with_label_values(&["exact"])
        .get();
    let other: u64 = ["interpolated", "unknown"]
        .iter()
        .map(|m| {
            sightline::observe::metrics::METRICS
                .lag_time_measurements
                .with_label_values(&[m])
                .get()
        })
        .sum();
    println!("  time-lag measurements: {exact} exact, {other} interpolated or unknown");
}
