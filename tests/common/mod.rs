//! Shared helpers of the integration tests: the real broker and registry started by
//! `deploy/local/stack start`, unique names so tests run in parallel and re-run, and waiting on
//! conditions with deadlines (never sleeping and hoping).
#![allow(dead_code)]

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::ClientConfig;
use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

pub fn bootstrap() -> String {
    std::env::var("SIGHTLINE_TEST_BOOTSTRAP").unwrap_or_else(|_| "127.0.0.1:9092".into())
}

pub fn registry_url() -> String {
    std::env::var("SIGHTLINE_TEST_REGISTRY")
        .unwrap_or_else(|_| "http://127.0.0.1:8081/apis/ccompat/v7".into())
}

const HOW_TO_START: &str = "Start the local stack first: `deploy/local/stack start` \
(or run everything with `deploy/local/test`).";

/// Fails the test, loudly, when the broker does not answer metadata requests.
pub fn require_kafka() {
    let addr = bootstrap();
    let reachable = addr
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .is_some_and(|a| TcpStream::connect_timeout(&a, Duration::from_secs(2)).is_ok());
    assert!(
        reachable,
        "Kafka is not reachable at {addr}. {HOW_TO_START}"
    );
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &addr)
        .create()
        .expect("client");
    c.fetch_metadata(None, Duration::from_secs(10))
        .unwrap_or_else(|e| {
            panic!("Kafka at {addr} does not answer metadata requests: {e}. {HOW_TO_START}")
        });
}

/// Fails the test when the registry does not answer.
pub fn require_registry() {
    let url = format!("{}/subjects", registry_url());
    let ok = std::process::Command::new("curl")
        .args(["-fsS", "-o", "/dev/null", "--max-time", "5", &url])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "The schema registry is not reachable at {url}. {HOW_TO_START}"
    );
}

/// A name no other test (or earlier run) uses.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}

pub fn client() -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap());
    c
}

pub async fn create_topics(names: &[&str], partitions: i32) {
    let admin: AdminClient<DefaultClientContext> = client().create().expect("admin");
    let topics: Vec<NewTopic> = names
        .iter()
        .map(|n| NewTopic::new(n, partitions, TopicReplication::Fixed(1)))
        .collect();
    for r in admin
        .create_topics(topics.iter(), &AdminOptions::new())
        .await
        .expect("create topics")
    {
        r.expect("topic created");
    }
}

/// A record read back from a topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Read {
    /// The record's timestamp, epoch ms.
    pub timestamp_ms: Option<i64>,
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: Vec<(String, String)>,
}

impl Read {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Reads `topic` from the beginning (read_committed) until `n` records arrived or `timeout`
/// passed; then keeps reading briefly to catch extras. Returns what was read.
pub fn read_topic(topic: &str, n: usize, timeout: Duration) -> Vec<Read> {
    let c: BaseConsumer = client()
        .set("group.id", unique("reader"))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed")
        .create()
        .expect("reader");
    c.subscribe(&[topic]).expect("subscribe");
    let mut out = Vec::new();
    let deadline = Instant::now() + timeout;
    let mut settle: Option<Instant> = None;
    while Instant::now() < deadline {
        if out.len() >= n {
            let s = *settle.get_or_insert_with(|| Instant::now() + Duration::from_millis(1500));
            if Instant::now() >= s {
                break;
            }
        }
        if let Some(Ok(m)) = c.poll(Duration::from_millis(200)) {
            out.push(Read {
                timestamp_ms: m.timestamp().to_millis(),
                partition: m.partition(),
                offset: m.offset(),
                key: m.key().map(<[u8]>::to_vec),
                value: m.payload().map(<[u8]>::to_vec),
                headers: m
                    .headers()
                    .map(|h| {
                        h.iter()
                            .map(|h| {
                                (
                                    h.key.to_string(),
                                    String::from_utf8_lossy(h.value.unwrap_or_default())
                                        .into_owned(),
                                )
                            })
                            .collect()
                    })
                    .unwrap_or_default(),
            });
        }
    }
    out
}

/// Runs a `sightline` command line to its end and asserts it succeeded (stderr in the message).
pub fn sightline_ok(args: &[&str], envs: &[(&str, &str)]) -> std::process::Output {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sightline"))
        .args(args)
        .envs(envs.iter().copied())
        .output()
        .expect("sightline runs");
    assert!(
        out.status.success(),
        "sightline {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Polls `f` until it returns Some or the deadline passes.
pub async fn wait_for<T>(
    what: &str,
    timeout: Duration,
    mut f: impl AsyncFnMut() -> Option<T>,
) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// GET `url`; (status, body).
pub async fn http_get(url: &str) -> Option<(u16, String)> {
    let resp = reqwest::get(url).await.ok()?;
    let status = resp.status().as_u16();
    Some((status, resp.text().await.ok()?))
}

/// A `sightline run` child process, killed when dropped.
pub struct Sightline {
    pub child: std::process::Child,
    pub http: String,
    /// Where its JSON log goes: the tail is printed when a test fails with it running.
    pub log: std::path::PathBuf,
}

impl Sightline {
    /// Spawns `sightline run --config <config>` with JSON logs appended to `log`.
    pub fn spawn(config: &std::path::Path, log: &std::path::Path, http_port: u16) -> Sightline {
        let log_path = log.to_path_buf();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .unwrap();
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_sightline"))
            .args(["--log-format", "json", "run", "--config"])
            .arg(config)
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .spawn()
            .expect("sightline starts");
        Sightline {
            child,
            http: format!("http://127.0.0.1:{http_port}"),
            log: log_path,
        }
    }

    /// Spawns, and waits until /readyz says ready.
    pub async fn start(
        config: &std::path::Path,
        log: &std::path::Path,
        http_port: u16,
    ) -> Sightline {
        let s = Sightline::spawn(config, log, http_port);
        let url = format!("{}/readyz", s.http);
        wait_for(
            "/readyz to say ready",
            Duration::from_secs(60),
            async || http_get(&url).await.filter(|(code, _)| *code == 200),
        )
        .await;
        s
    }

    /// SIGTERM, then wait for a clean exit.
    pub async fn stop(mut self) {
        let pid = self.child.id().to_string();
        assert!(std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success());
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(status.success(), "exit status after SIGTERM: {status}");
                return;
            }
            assert!(
                Instant::now() < deadline,
                "sightline did not exit within 30 s of SIGTERM"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The value of one sample in /metrics (0 when absent).
    pub async fn metric(&self, sample: &str) -> u64 {
        let (_, body) = http_get(&format!("{}/metrics", self.http))
            .await
            .expect("/metrics answers");
        body.lines()
            .find_map(|l| {
                l.strip_prefix(sample)
                    .and_then(|v| v.trim().parse::<f64>().ok())
            })
            .map(|v| v as u64)
            .unwrap_or(0)
    }
}

impl Drop for Sightline {
    fn drop(&mut self) {
        if std::thread::panicking() {
            // A failed test's temp dir goes with it: keep the evidence in the test's output.
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            let lines: Vec<&str> = log.lines().collect();
            let from = lines.len().saturating_sub(LOG_TAIL);
            eprintln!(
                "--- last {} lines of {} (pid {}) ---",
                lines.len() - from,
                self.log.display(),
                self.child.id()
            );
            for l in &lines[from..] {
                eprintln!("{l}");
            }
            eprintln!("--- end of log ---");
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Log lines a failing test prints from each Sightline it ran.
const LOG_TAIL: usize = 150;

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A test's own Sightline setup: a temp dir with `topology.yaml` (the given source entries) and
/// `sightline.toml` pointing at the local stack, with a unique group, unique output topics and a
/// free HTTP port.
pub struct Setup {
    pub dir: std::path::PathBuf,
    pub port: u16,
    /// Prefix of the output topics: `<out>.alerts`, `<out>.drift`, ...
    pub out: String,
    /// Sightline's consumer group.
    pub group: String,
}

impl Setup {
    /// `sources` is YAML list items (each starting `  - name: ...`). `registry_timeout_ms`:
    /// Some to configure the registry. `contracts`: (file name, Avro schema) in `schemas/`.
    pub fn new(
        sources: &str,
        registry_timeout_ms: Option<u64>,
        contracts: &[(&str, &str)],
    ) -> Setup {
        let dir = std::env::temp_dir().join(unique("sightline-test"));
        std::fs::create_dir_all(dir.join("schemas")).unwrap();
        for (name, schema) in contracts {
            std::fs::write(dir.join("schemas").join(name), schema).unwrap();
        }
        std::fs::write(
            dir.join("topology.yaml"),
            format!("name: test\nsources:\n{sources}"),
        )
        .unwrap();
        let port = free_port();
        let out = unique("out");
        let group = unique("group");
        let registry = registry_timeout_ms
            .map(|t| {
                format!(
                    "[registry]\nurl = \"{}\"\ntimeout_ms = {t}\n",
                    registry_url()
                )
            })
            .unwrap_or_default();
        std::fs::write(
            dir.join("sightline.toml"),
            format!(
                "[kafka]\nbootstrap_servers = \"{}\"\ngroup_id = \"{}\"\ncommit_interval_ms = 100\n\
                 [kafka.topics]\npartitions = 1\nreplication_factor = 1\n{registry}\
                 [http]\nbind = \"127.0.0.1:{port}\"\n[state]\ndir = \"state\"\n\
                 [outputs]\nalerts = \"{out}.alerts\"\nsla = \"{out}.sla\"\ndrift = \"{out}.drift\"\nlag = \"{out}.lag\"\n\
                 [topologies]\npaths = [\"topology.yaml\"]\n[schemas]\ndir = \"schemas\"\n",
                bootstrap(),
                group,
            ),
        )
        .unwrap();
        Setup {
            dir,
            port,
            out,
            group,
        }
    }

    pub fn config(&self) -> std::path::PathBuf {
        self.dir.join("sightline.toml")
    }

    /// Appends TOML (whole sections) to the config.
    pub fn add_config(&self, toml: &str) {
        let mut text = std::fs::read_to_string(self.config()).unwrap();
        text.push_str(toml);
        std::fs::write(self.config(), text).unwrap();
    }

    pub fn log(&self) -> std::path::PathBuf {
        self.dir.join("sightline.log")
    }

    /// Starts `sightline run` on this setup and waits until it is ready.
    pub async fn start(&self) -> Sightline {
        Sightline::start(&self.config(), &self.log(), self.port).await
    }
}

/// Produces one record and waits for the broker's acknowledgement: (partition, offset).
pub async fn produce(
    producer: &rdkafka::producer::FutureProducer,
    topic: &str,
    key: &str,
    value: &[u8],
) -> (i32, i64) {
    let d = producer
        .send(
            rdkafka::producer::FutureRecord::to(topic)
                .key(key)
                .payload(value),
            Duration::from_secs(10),
        )
        .await
        .expect("produced");
    (d.partition, d.offset)
}

/// A Confluent-framed Avro record: magic byte 0, the schema id, the Avro body.
#[allow(deprecated)] // to_avro_datum: the plainest way to write one Avro body
pub fn confluent_avro(
    schema: &str,
    id: u32,
    fields: Vec<(&str, apache_avro::types::Value)>,
) -> Vec<u8> {
    let schema = apache_avro::Schema::parse_str(schema).expect("test schema parses");
    let record = apache_avro::types::Value::Record(
        fields
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
    );
    let mut out = vec![0u8];
    out.extend_from_slice(&id.to_be_bytes());
    out.extend(apache_avro::to_avro_datum(&schema, record).expect("record fits its schema"));
    out
}

impl Sightline {
    /// Waits until a metric sample reaches exactly `n`.
    pub async fn wait_metric(&self, sample: &str, n: u64, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let last = self.metric(sample).await;
            if last == n {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "timed out after {timeout:?} waiting for {sample} == {n} (last {last})"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// The alerts (dedupe id, status) the order-to-cash workflow must emit for the faults the demo
/// generator injected, derived from what each fault means, not from the engine.
pub fn expected_workflow_alerts(
    faults: &sightline::demo::generator::Faults,
) -> Vec<(String, String)> {
    let wf = "order-to-cash";
    let mut want = Vec::new();
    let mut add = |id: String, status: &str| want.push((id, status.to_string()));
    for (fault, keys) in faults {
        for k in keys {
            match *fault {
                // Unpaid (and so never shipped or invoiced): the payment and invoice alerts fire
                // (shipping counts from the payment, so it is never due), and at the ttl the
                // instance expires, resolving them.
                "missing_payment" => {
                    add(format!("{wf}/{k}/paid"), "FIRING");
                    add(format!("{wf}/{k}/paid"), "RESOLVED");
                    add(format!("{wf}/{k}/invoiced"), "FIRING");
                    add(format!("{wf}/{k}/invoiced"), "RESOLVED");
                    add(format!("{wf}/{k}/expired"), "RESOLVED");
                }
                "missing_invoice" => {
                    add(format!("{wf}/{k}/invoiced"), "FIRING");
                    add(format!("{wf}/{k}/invoiced"), "RESOLVED");
                    add(format!("{wf}/{k}/expired"), "RESOLVED");
                }
                // One carrier's shipments never come: the alert fires; the instance never
                // completes, and at the ttl it expires.
                "missing_shipment" => {
                    add(format!("{wf}/{k}/shipped"), "FIRING");
                    add(format!("{wf}/{k}/shipped"), "RESOLVED");
                    add(format!("{wf}/{k}/expired"), "RESOLVED");
                }
                "late_invoice" => {
                    add(format!("{wf}/{k}/invoiced"), "FIRING");
                    add(format!("{wf}/{k}/invoiced"), "RESOLVED");
                }
                "late_shipment" => {
                    add(format!("{wf}/{k}/shipped"), "FIRING");
                    add(format!("{wf}/{k}/shipped"), "RESOLVED");
                }
                "duplicate_payment" => add(format!("{wf}/{k}/paid/duplicate"), "RESOLVED"),
                "shipped_before_paid" => add(format!("{wf}/{k}/shipped/out_of_order"), "RESOLVED"),
                "orphan" => {
                    add(format!("{wf}/{k}/orphan"), "FIRING");
                    add(format!("{wf}/{k}/orphan"), "RESOLVED");
                    add(format!("{wf}/{k}/expired"), "RESOLVED");
                }
                // Cancelled 20 minutes in: the payment alert (15m) fired; the cancellation resolves it.
                "cancelled" => {
                    add(format!("{wf}/{k}/paid"), "FIRING");
                    add(format!("{wf}/{k}/paid"), "RESOLVED");
                }
                other => panic!("a fault the tests do not know: {other}"),
            }
        }
    }
    want
}

/// The high watermark of `topic`[`p`].
pub fn end_offset(topic: &str, p: i32) -> i64 {
    let c: BaseConsumer = client().create().expect("client");
    c.fetch_watermarks(topic, p, Duration::from_secs(10))
        .expect("watermarks")
        .1
}

/// Whether consumer group `group` has committed every partition of `topics` up to its end.
pub fn caught_up(group: &str, topics: &[String]) -> bool {
    use rdkafka::consumer::Consumer;
    let c: BaseConsumer = client().set("group.id", group).create().expect("client");
    let mut tpl = rdkafka::TopicPartitionList::new();
    let mut ends = Vec::new();
    for t in topics {
        let Ok(md) = c.fetch_metadata(Some(t), Duration::from_secs(5)) else {
            return false;
        };
        for p in md.topics()[0].partitions() {
            let Ok((_, high)) = c.fetch_watermarks(t, p.id(), Duration::from_secs(5)) else {
                return false;
            };
            tpl.add_partition(t, p.id());
            ends.push((t.clone(), p.id(), high));
        }
    }
    let Ok(committed) = c.committed_offsets(tpl, Duration::from_secs(5)) else {
        return false;
    };
    ends.iter().all(|(t, p, high)| {
        *high == 0
            || committed
                .find_partition(t, *p)
                .and_then(|e| e.offset().to_raw())
                .is_some_and(|o| o >= *high)
    })
}

/// The partitions of `topics` that consumer group `group` has not committed to their end.
pub fn behind(group: &str, topics: &[String]) -> Vec<(String, i32)> {
    unread(group, topics)
        .into_iter()
        .map(|(t, p, _)| (t, p))
        .collect()
}

/// The partitions of `topics` that consumer group `group` has not committed to their end, with
/// how many records it has left to read in each.
pub fn unread(group: &str, topics: &[String]) -> Vec<(String, i32, i64)> {
    use rdkafka::consumer::Consumer;
    let c: BaseConsumer = client().set("group.id", group).create().expect("client");
    let mut tpl = rdkafka::TopicPartitionList::new();
    let mut ends = Vec::new();
    for t in topics {
        let md = c
            .fetch_metadata(Some(t), Duration::from_secs(5))
            .expect("metadata");
        for p in md.topics()[0].partitions() {
            let (_, high) = c
                .fetch_watermarks(t, p.id(), Duration::from_secs(5))
                .expect("watermarks");
            tpl.add_partition(t, p.id());
            ends.push((t.clone(), p.id(), high));
        }
    }
    let committed = c
        .committed_offsets(tpl, Duration::from_secs(10))
        .expect("committed offsets");
    ends.into_iter()
        .filter_map(|(t, p, high)| {
            let at = committed
                .find_partition(&t, p)
                .and_then(|e| e.offset().to_raw())
                .unwrap_or(0)
                .max(0);
            (high > 0 && at < high).then(|| (t, p, high - at))
        })
        .collect()
}

/// Waits until consumer group `group` has committed every partition of `topics` up to its end.
pub async fn wait_caught_up(group: &str, topics: &[String], timeout: Duration) {
    wait_for(
        &format!("group {group} to commit to the end of its topics"),
        timeout,
        async || caught_up(group, topics).then_some(()),
    )
    .await;
}

/// An order-to-cash run on a test's own topics: the shipped topology and contracts pointed at
/// `<prefix>.<topic>` topics (6 partitions each), and the generator's traffic for `orders`
/// orders (seeded) produced on them before Sightline starts (a catch-up replay).
pub struct OrderToCash {
    pub setup: Setup,
    pub plan: sightline::demo::generator::Plan,
    pub prefix: String,
    /// The input topics.
    pub topics: Vec<String>,
}

impl OrderToCash {
    pub fn topic(&self, t: &str) -> String {
        format!("{}.{t}", self.prefix)
    }

    pub async fn new(orders: usize, seed: u64) -> OrderToCash {
        use sightline::demo::generator;
        let prefix = unique("o2c");
        let topic = |t: &str| format!("{prefix}.{t}");
        let topics: Vec<String> = generator::TOPICS.iter().map(|t| topic(t)).collect();
        create_topics(&topics.iter().map(String::as_str).collect::<Vec<_>>(), 6).await;
        let mut topology = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/topologies/order-to-cash.yaml"
        ))
        .unwrap();
        for t in generator::TOPICS {
            topology =
                topology.replace(&format!("topic: {t}\n"), &format!("topic: {}\n", topic(t)));
        }
        let sources =
            topology[topology.find("sources:\n").unwrap() + "sources:\n".len()..].to_string();
        let setup = Setup::new(&sources, None, &[]);
        // Point schemas.dir at the repository's contracts.
        let cfg = std::fs::read_to_string(setup.config()).unwrap().replace(
            "[schemas]\ndir = \"schemas\"",
            &format!(
                "[schemas]\ndir = \"{}/schemas\"",
                env!("CARGO_MANIFEST_DIR")
            ),
        );
        std::fs::write(setup.config(), cfg).unwrap();

        let now = chrono::Utc::now().timestamp_millis();
        let plan = generator::generate(seed, orders, now - 20 * 86_400_000, now, 0);
        produce_all(plan.records.iter().map(|r| Outgoing {
            topic: topic(r.topic),
            key: r.key.clone(),
            value: r.value.clone(),
            partition: None,
        }))
        .await;
        OrderToCash {
            setup,
            plan,
            prefix,
            topics,
        }
    }

    /// The alerts (dedupe id, status) the run must produce, sorted.
    pub fn expected_alerts(&self) -> Vec<(String, String)> {
        use sightline::demo::generator;
        let mut want = expected_workflow_alerts(&self.plan.faults);
        want.push((
            format!(
                "schema/json:{}:carrier:wrong_type",
                self.topic(generator::SHIPMENTS)
            ),
            "FIRING".into(),
        ));
        want.sort();
        want
    }

    /// The SLA events (outcome, count) the run must produce.
    pub fn expected_sla(&self, orders: usize) -> Vec<(String, usize)> {
        expected_sla(&self.plan.faults, orders)
    }
}

/// The SLA events (outcome, count) `orders` orders of the generator's traffic with these faults
/// must produce.
pub fn expected_sla(
    faults: &sightline::demo::generator::Faults,
    orders: usize,
) -> Vec<(String, usize)> {
    let n = |f: &str| faults.get(f).map_or(0, Vec::len);
    let started = orders - n("orphan");
    vec![
        ("CANCELLED".into(), n("cancelled")),
        (
            "COMPLETED".into(),
            started
                - n("cancelled")
                - n("missing_payment")
                - n("missing_invoice")
                - n("missing_shipment"),
        ),
        (
            "EXPIRED".into(),
            n("missing_payment") + n("missing_invoice") + n("missing_shipment") + n("orphan"),
        ),
        ("STEP_LATE".into(), n("late_shipment") + n("late_invoice")),
    ]
}

impl OrderToCash {
    /// Reads the alert and SLA topics (read_committed) and asserts they hold exactly the
    /// expected records, printing both counts (lost, duplicated). Returns the alerts read.
    pub fn assert_exact_outputs(&self, orders: usize, label: &str) -> Vec<Read> {
        let want = self.expected_alerts();
        let alerts = read_topic(
            &format!("{}.alerts", self.setup.out),
            want.len(),
            Duration::from_secs(600),
        );
        let got = alert_ids(&alerts);
        let lost = want.iter().filter(|w| !got.contains(w)).count();
        let mut dup = got.clone();
        dup.dedup();
        let duplicated = got.len() - dup.len();
        let extra: Vec<_> = got.iter().filter(|g| !want.contains(g)).take(10).collect();
        println!(
            "{label}: alerts: {} expected, {} on the topic: {lost} lost, {duplicated} duplicated",
            want.len(),
            got.len()
        );
        assert!(
            got == want,
            "{label}: {lost} lost, {duplicated} duplicated; unexpected {extra:?}"
        );

        let want_sla = self.expected_sla(orders);
        let total: usize = want_sla.iter().map(|(_, n)| n).sum();
        let sla = read_topic(
            &format!("{}.sla", self.setup.out),
            total,
            Duration::from_secs(300),
        );
        assert_sla_outcomes(&sla, want_sla, label);
        alerts
    }
}

/// Asserts that the SLA records `sla` (JSON) are each once and, by outcome, exactly `want`.
pub fn assert_sla_outcomes(sla: &[Read], want_sla: Vec<(String, usize)>, label: &str) {
    let total: usize = want_sla.iter().map(|(_, n)| n).sum();
    let mut ids: Vec<String> = Vec::new();
    let mut by_outcome = std::collections::BTreeMap::<String, usize>::new();
    for r in sla {
        let s: serde_json::Value = serde_json::from_slice(r.value.as_deref().unwrap()).unwrap();
        *by_outcome
            .entry(s["outcome"].as_str().unwrap().to_string())
            .or_default() += 1;
        ids.push(s["sla_id"].as_str().unwrap().to_string());
    }
    ids.sort();
    let n = ids.len();
    ids.dedup();
    println!(
        "{label}: SLA events: {total} expected, {n} on the topic: {} lost, {} duplicated",
        total.saturating_sub(ids.len()),
        n - ids.len()
    );
    assert_eq!(n, ids.len(), "{label}: duplicated SLA events");
    assert_eq!(
        by_outcome.into_iter().collect::<Vec<_>>(),
        want_sla,
        "{label}"
    );
}

/// Partition numbers of `topic` a Sightline log says the instance holds at its end (assigns
/// minus revokes, in order).
pub fn held_partitions(log: &std::path::Path, topic: &str) -> std::collections::BTreeSet<i32> {
    let mut held = std::collections::BTreeSet::new();
    for line in std::fs::read_to_string(log).unwrap_or_default().lines() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        if v["message"] != "consumer group rebalance" {
            continue;
        }
        let parts = v["partitions"].as_str().unwrap_or_default();
        for tp in parts.split(',') {
            let Some(p) = tp
                .strip_prefix(topic)
                .and_then(|r| r.strip_prefix('['))
                .and_then(|r| r.strip_suffix(']'))
                .and_then(|r| r.parse::<i32>().ok())
            else {
                continue;
            };
            match v["kind"].as_str() {
                Some("assign") => held.insert(p),
                Some("revoke") => held.remove(&p),
                _ => false,
            };
        }
    }
    held
}

/// (dedupe id, status) of the records on an alert topic, sorted.
pub fn alert_ids(records: &[Read]) -> Vec<(String, String)> {
    let mut got: Vec<(String, String)> = records
        .iter()
        .map(|r| {
            let a: serde_json::Value = serde_json::from_slice(r.value.as_deref().unwrap()).unwrap();
            (
                a["dedupe_id"].as_str().unwrap().to_string(),
                a["status"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    got.sort();
    got
}

/// Sends `signal` (a name: STOP, CONT, KILL, ...) to process `pid`.
pub fn signal(pid: u32, signal: &str) {
    let ok = std::process::Command::new("kill")
        .args([&format!("-{signal}"), &pid.to_string()])
        .status()
        .expect("kill runs")
        .success();
    assert!(ok, "kill -{signal} {pid} failed");
}

/// Slows a process down by construction: it runs `on`, then is stopped (SIGSTOP) for `off`, over
/// and over, on a thread of its own, until `stop_frozen` leaves it stopped. The process's own
/// clients still heartbeat in the `on` windows.
pub struct Throttle {
    done: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Throttle {
    pub fn start(pid: u32, on: Duration, off: Duration) -> Throttle {
        use std::sync::atomic::Ordering;
        let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = done.clone();
        let thread = std::thread::spawn(move || {
            while !flag.load(Ordering::SeqCst) {
                signal(pid, "CONT");
                std::thread::sleep(on);
                signal(pid, "STOP");
                std::thread::sleep(off);
            }
        });
        Throttle {
            done,
            thread: Some(thread),
        }
    }

    /// Ends the throttling with the process stopped.
    pub fn stop_frozen(mut self) {
        self.done.store(true, std::sync::atomic::Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            t.join().expect("throttle thread");
        }
    }
}

fn committed_reader(topic: &str, assign: &[(i32, i64)]) -> Option<BaseConsumer> {
    let c: BaseConsumer = client()
        .set("group.id", unique("count"))
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .set("isolation.level", "read_committed")
        .create()
        .expect("reader");
    let md = c.fetch_metadata(Some(topic), Duration::from_secs(5)).ok()?;
    if md
        .topics()
        .first()
        .is_none_or(|t| t.partitions().is_empty())
    {
        return None;
    }
    let mut tpl = rdkafka::TopicPartitionList::new();
    for &(p, from) in assign {
        tpl.add_partition_offset(topic, p, rdkafka::Offset::Offset(from))
            .unwrap();
    }
    c.assign(&tpl).ok()?;
    Some(c)
}

/// How many committed records partitions `0..partitions` of `topic` hold now (read_committed, to
/// the last stable offset); 0 while the topic does not exist.
pub fn committed_records(topic: &str, partitions: i32) -> u64 {
    let assign: Vec<(i32, i64)> = (0..partitions).map(|p| (p, 0)).collect();
    let Some(c) = committed_reader(topic, &assign) else {
        return 0;
    };
    let mut open: std::collections::BTreeSet<i32> = (0..partitions).collect();
    let mut n = 0;
    let deadline = Instant::now() + Duration::from_secs(30);
    while !open.is_empty() && Instant::now() < deadline {
        match c.poll(Duration::from_millis(200)) {
            Some(Ok(_)) => n += 1,
            Some(Err(rdkafka::error::KafkaError::PartitionEOF(p))) => {
                open.remove(&p);
            }
            _ => {}
        }
    }
    n
}

/// How many committed records partition `p` of `topic` holds at offsets `from..to`.
pub fn committed_records_between(topic: &str, p: i32, from: i64, to: i64) -> u64 {
    let c = committed_reader(topic, &[(p, from)]).expect("topic exists");
    let mut n = 0;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        assert!(
            Instant::now() < deadline,
            "reading {topic}[{p}] {from}..{to}: timed out"
        );
        match c.poll(Duration::from_millis(200)) {
            Some(Ok(m)) if m.offset() < to => n += 1,
            Some(Ok(_)) => return n,
            Some(Err(rdkafka::error::KafkaError::PartitionEOF(_))) => {
                let at = c
                    .position()
                    .ok()
                    .and_then(|tpl| tpl.find_partition(topic, p)?.offset().to_raw())
                    .unwrap_or(0);
                if at >= to {
                    return n;
                }
            }
            _ => {}
        }
    }
}

/// Forwards one HTTP request to `upstream` (path and query kept) and answers with its response:
/// the body of the tests' registry proxies.
pub async fn forward_http(
    upstream: &str,
    method: axum::http::Method,
    uri: &axum::http::Uri,
    headers: &axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let url = format!(
        "{upstream}{}",
        uri.path_and_query().map_or("", |q| q.as_str())
    );
    let mut req = reqwest::Client::new()
        .request(method, url)
        .body(body.to_vec());
    if let Some(ct) = headers.get("content-type") {
        req = req.header("content-type", ct.as_bytes());
    }
    let resp = req.send().await.expect("the registry answers");
    let status = axum::http::StatusCode::from_u16(resp.status().as_u16()).unwrap();
    let ct = resp
        .headers()
        .get("content-type")
        .map(|v| v.as_bytes().to_vec())
        .unwrap_or_default();
    let body = resp.bytes().await.unwrap_or_default();
    (status, [("content-type", ct)], body).into_response()
}

/// One record for [`produce_all`].
pub struct Outgoing {
    pub topic: String,
    pub key: Option<String>,
    pub value: Vec<u8>,
    /// Where it goes; None: the partitioner decides.
    pub partition: Option<i32>,
}

/// Produces every record, in order, with the Java client's partitioner (murmur2, as Sightline
/// is configured to expect; it checks), and waits for every acknowledgement.
pub async fn produce_all(records: impl IntoIterator<Item = Outgoing>) {
    let producer: rdkafka::producer::FutureProducer = client()
        .set("linger.ms", "20")
        .set("batch.num.messages", "10000")
        .set("partitioner", "murmur2_random")
        .create()
        .unwrap();
    let mut pending = Vec::new();
    for r in records {
        let mut rec = rdkafka::producer::FutureRecord::<str, [u8]>::to(&r.topic).payload(&r.value);
        if let Some(k) = &r.key {
            rec = rec.key(k.as_str());
        }
        if let Some(p) = r.partition {
            rec = rec.partition(p);
        }
        pending.push(producer.send_result(rec).map_err(|(e, _)| e).unwrap());
        if pending.len() >= 20_000 {
            for p in pending.drain(..) {
                p.await.unwrap().unwrap();
            }
        }
    }
    for p in pending {
        p.await.unwrap().unwrap();
    }
}

/// Produces `n` dead letters to `dlq` (keys `k0`.., payload `x`, error class `invalid_json`, and
/// the original topic when given), each acknowledged.
pub async fn produce_dead_letters(dlq: &str, n: usize, original_topic: Option<&str>) {
    use rdkafka::message::{Header, OwnedHeaders};
    let p: rdkafka::producer::FutureProducer = client().create().unwrap();
    for i in 0..n {
        let mut h = OwnedHeaders::new();
        if let Some(t) = original_topic {
            h = h.insert(Header {
                key: "sightline.original.topic",
                value: Some(t),
            });
        }
        let h = h.insert(Header {
            key: "sightline.error.class",
            value: Some("invalid_json"),
        });
        p.send(
            rdkafka::producer::FutureRecord::to(dlq)
                .key(&format!("k{i}"))
                .payload("x")
                .headers(h),
            Duration::from_secs(10),
        )
        .await
        .unwrap();
    }
}
