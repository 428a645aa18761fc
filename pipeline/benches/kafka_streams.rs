//! Kafka Streams on the benchmark's records (included by workflow.rs with `#[path]`; not a
//! benchmark itself): pipeline/benches/kafka-streams, the same order-to-cash detection as a
//! Kafka Streams 4.1 application (exactly-once v2, RocksDB stores, a stream-time punctuator),
//! built with Maven and run on the same topics in the same run.

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{ClientConfig, Message, TopicPartitionList};
use std::collections::BTreeMap;
use std::io::BufRead;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// One run of the application.
pub struct Run {
    pub threads: usize,
    /// Records/s from its first record processed to its last.
    pub rate: f64,
    /// Process CPU seconds over the same span (every JVM thread).
    pub cpu: f64,
    /// Alerts on its topic, by (kind, status).
    pub alerts: BTreeMap<(String, String), u64>,
    /// Records it dead-lettered, by reason.
    pub dead_lettered: BTreeMap<String, u64>,
}

fn project() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("pipeline/benches/kafka-streams")
}

/// Builds the application (`mvn package`; Java 17 and Maven from the machine): its jar.
pub fn build() -> Result<PathBuf, String> {
    let out = std::process::Command::new("mvn")
        .args(["-q", "-B", "package", "-f"])
        .arg(project().join("pom.xml"))
        .output()
        .map_err(|e| {
            format!("running mvn: {e} (the Kafka Streams comparison needs Maven and Java 17)")
        })?;
    if !out.status.success() {
        return Err(format!(
            "mvn package failed in {}: {}{}",
            project().display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(project().join("target/order-to-cash-streams.jar"))
}

fn client() -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", "127.0.0.1:9092");
    c
}

/// Runs the application with `threads` stream threads over `inputs` until it has processed
/// `records` records and committed them all, then stops it and counts what it wrote.
pub async fn run(
    jar: &std::path::Path,
    registry: &str,
    id: &str,
    inputs: &[String],
    records: usize,
    threads: usize,
) -> Result<Run, String> {
    let app = format!("kstreams-{id}-{threads}");
    let alerts_topic = format!("{app}.alerts");
    let dlq_topic = format!("{app}.dlq");
    let admin: AdminClient<DefaultClientContext> = client().create().map_err(|e| e.to_string())?;
    let partitions = 12;
    // Its outputs carry event time, which can lie days ahead of the broker's clock.
    let after = i64::MAX.to_string();
    let topics = [&alerts_topic, &dlq_topic].map(|t| {
        NewTopic::new(t, partitions, TopicReplication::Fixed(1))
            .set("message.timestamp.after.max.ms", &after)
    });
    for r in admin
        .create_topics(topics.iter(), &AdminOptions::new())
        .await
        .map_err(|e| e.to_string())?
    {
        r.map_err(|(t, e)| format!("creating {t}: {e}"))?;
    }
    let mut child = std::process::Command::new("java")
        .args([
            "-Xms1g",
            "-Xmx4g",
            "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn",
            "-jar",
        ])
        .arg(jar)
        .args([
            "127.0.0.1:9092",
            registry,
            &app,
            &threads.to_string(),
            &records.to_string(),
            &alerts_topic,
            &dlq_topic,
        ])
        .args(inputs)
        .stdout(std::process::Stdio::piped())
        .stderr(std::fs::File::create(std::env::temp_dir().join(format!("{app}.log"))).unwrap())
        .spawn()
        .map_err(|e| format!("starting java: {e}"))?;
    let stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut done = None;
    for line in stdout.lines() {
        let line = line.map_err(|e| e.to_string())?;
        if line.starts_with("failed ") {
            break;
        }
        if let Some(rest) = line.strip_prefix("done ") {
            let field = |k: &str| -> f64 {
                rest.split_whitespace()
                    .find_map(|kv| kv.strip_prefix(k)?.strip_prefix('=')?.parse().ok())
                    .unwrap_or(f64::NAN)
            };
            done = Some((field("seconds"), field("cpu")));
            break;
        }
    }
    let Some((seconds, cpu)) = done else {
        let _ = child.kill();
        let status = child.wait().map(|s| s.to_string()).unwrap_or_default();
        return Err(format!(
            "the Kafka Streams application ended ({status}) before it processed {records} records; its log: {}",
            std::env::temp_dir().join(format!("{app}.log")).display()
        ));
    };
    // Its outputs count once their transactions have committed the input to its end.
    wait_committed(&app, inputs)?;
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
    let mut alerts = BTreeMap::new();
    for (v, _) in read_all(&alerts_topic)? {
        let v: serde_json::Value = serde_json::from_slice(&v).map_err(|e| e.to_string())?;
        let k = (
            v["kind"].as_str().unwrap_or("").to_string(),
            v["status"].as_str().unwrap_or("").to_string(),
        );
        *alerts.entry(k).or_insert(0) += 1;
    }
    let mut dead_lettered = BTreeMap::new();
    for (_, reason) in read_all(&dlq_topic)? {
        *dead_lettered.entry(reason.unwrap_or_default()).or_insert(0) += 1;
    }
    let _ = std::fs::remove_dir_all(std::env::temp_dir().join(&app));
    Ok(Run {
        threads,
        rate: records as f64 / seconds,
        cpu,
        alerts,
        dead_lettered,
    })
}

/// Waits until group `group` has committed every input partition to its end.
fn wait_committed(group: &str, inputs: &[String]) -> Result<(), String> {
    let c: BaseConsumer = client()
        .set("group.id", group)
        .create()
        .map_err(|e| e.to_string())?;
    let mut tpl = TopicPartitionList::new();
    let mut ends = BTreeMap::new();
    for t in inputs {
        let md = c
            .fetch_metadata(Some(t), Duration::from_secs(10))
            .map_err(|e| e.to_string())?;
        for p in md.topics()[0].partitions() {
            let (_, hi) = c
                .fetch_watermarks(t, p.id(), Duration::from_secs(10))
                .map_err(|e| e.to_string())?;
            tpl.add_partition(t, p.id());
            ends.insert((t.clone(), p.id()), hi);
        }
    }
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let committed = c
            .committed_offsets(tpl.clone(), Duration::from_secs(10))
            .map_err(|e| e.to_string())?;
        let behind = committed.elements().iter().any(|e| {
            e.offset().to_raw().unwrap_or(-1) < ends[&(e.topic().to_string(), e.partition())]
        });
        if !behind {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!(
                "{group} did not commit its input to the end within 300 s"
            ));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A record read back: its value and its `reason` header.
type ReadBack = (Vec<u8>, Option<String>);

/// Every committed record of `topic`.
fn read_all(topic: &str) -> Result<Vec<ReadBack>, String> {
    let c: BaseConsumer = client()
        .set("group.id", format!("count-{topic}"))
        .set("isolation.level", "read_committed")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .create()
        .map_err(|e| e.to_string())?;
    let md = c
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .map_err(|e| e.to_string())?;
    let mut tpl = TopicPartitionList::new();
    let mut left = BTreeMap::new();
    for p in md.topics()[0].partitions() {
        let (lo, hi) = c
            .fetch_watermarks(topic, p.id(), Duration::from_secs(10))
            .map_err(|e| e.to_string())?;
        if hi > lo {
            tpl.add_partition_offset(topic, p.id(), rdkafka::Offset::Offset(lo))
                .map_err(|e| e.to_string())?;
            left.insert(p.id(), hi);
        }
    }
    let mut out = Vec::new();
    if left.is_empty() {
        return Ok(out);
    }
    c.assign(&tpl).map_err(|e| e.to_string())?;
    // Read to each partition's end (its last stable offset, past the transaction markers).
    let deadline = Instant::now() + Duration::from_secs(300);
    while !left.is_empty() {
        match c.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                use rdkafka::message::Headers;
                let reason = m.headers().and_then(|h| {
                    h.iter()
                        .find(|h| h.key == "reason")
                        .and_then(|h| h.value)
                        .map(|v| String::from_utf8_lossy(v).into_owned())
                });
                out.push((m.payload().unwrap_or_default().to_vec(), reason));
            }
            Some(Err(rdkafka::error::KafkaError::PartitionEOF(p))) => {
                left.remove(&p);
            }
            Some(Err(e)) => return Err(format!("reading {topic}: {e}")),
            None => {}
        }
        if Instant::now() > deadline {
            return Err(format!(
                "reading {topic} did not reach its end within 300 s"
            ));
        }
    }
    Ok(out)
}
