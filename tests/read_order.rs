//! No premature alert, whatever the read order, on the real broker and registry.
//!
//! An estate as a new user has it: four topics keyed differently. Orders are keyed by order id
//! (the correlation key); payments by payment id, shipments by shipment id and invoices by
//! invoice number, all three re-keyed by Sightline (`repartition: true`). Orders, payments and
//! shipments are JSON, invoices Confluent Avro through the registry. 50,000 orders of the demo
//! generator's traffic with every fault it injects (missing, late, duplicate, out-of-order,
//! orphan, cancelled, expired, poison, drift), produced in four orders: topic after topic,
//! interleaved in event-time order, topic after topic reversed, and one partition at a time.
//! Each is read by `sightline run --until-end` and must give exactly the expected alerts and SLA
//! events, with no missing-step alert that fired before its step was read (a FIRING later
//! RESOLVED with `late_by_ms = 0`). One more run is SIGKILLed three times on the way and must
//! give the same: nothing lost, nothing twice.

mod common;

use sightline::demo::generator::{self, GenRecord};
use sightline::detectors::partitioning::Hash;
use std::time::{Duration, Instant};

const PARTITIONS: i32 = 6;
const ORDERS: usize = 50_000;
const SEED: u64 = 15;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ProduceOrder {
    TopicAfterTopic,
    Interleaved,
    Reversed,
    PartitionAtATime,
}

struct Estate {
    setup: common::Setup,
    plan: generator::Plan,
    prefix: String,
    topics: Vec<String>,
}

impl Estate {
    fn topic(&self, t: &str) -> String {
        format!("{}.{t}", self.prefix)
    }

    async fn new(order: ProduceOrder) -> Estate {
        common::require_kafka();
        common::require_registry();
        let prefix = common::unique("order");
        let topic = |t: &str| format!("{prefix}.{t}");
        let topics: Vec<String> = generator::TOPICS.iter().map(|t| topic(t)).collect();
        common::create_topics(
            &topics.iter().map(String::as_str).collect::<Vec<_>>(),
            PARTITIONS,
        )
        .await;
        let mut topology = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/topologies/order-to-cash.yaml"
        ))
        .unwrap();
        topology = topology.replace(
            &format!("topic: {}\n", generator::ORDERS),
            &format!("topic: {}\n", topic(generator::ORDERS)),
        );
        for t in [generator::PAYMENTS, generator::SHIPMENTS] {
            topology = topology.replace(
                &format!("topic: {t}\n"),
                &format!("topic: {}\n    repartition: true\n", topic(t)),
            );
        }
        topology = topology.replace(
            &format!("topic: {}\n    format: json\n", generator::INVOICES),
            &format!(
                "topic: {}\n    format: avro\n    repartition: true\n",
                topic(generator::INVOICES)
            ),
        );
        assert_eq!(
            topology.matches("repartition: true").count(),
            3,
            "{topology}"
        );
        let sources =
            topology[topology.find("sources:\n").unwrap() + "sources:\n".len()..].to_string();
        let setup = common::Setup::new(&sources, Some(5_000), &[]);
        let cfg = std::fs::read_to_string(setup.config()).unwrap().replace(
            "[schemas]\ndir = \"schemas\"",
            &format!(
                "[schemas]\ndir = \"{}/schemas\"",
                env!("CARGO_MANIFEST_DIR")
            ),
        );
        std::fs::write(setup.config(), cfg).unwrap();

        let invoice_schema = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/schemas/order-to-cash/invoice_posted.avsc"
        ))
        .unwrap();
        let settings = schema_registry_converter::async_impl::schema_registry::SrSettings::new(
            common::registry_url(),
        );
        let invoice_id = sightline::registry::register_avro(
            &settings,
            &format!("{}-value", topic(generator::INVOICES)),
            &invoice_schema,
        )
        .await
        .expect("invoice schema registered");

        let now = chrono::Utc::now().timestamp_millis();
        let plan = generator::generate(SEED, ORDERS, now - 20 * 86_400_000, now, 500);
        let mut records: Vec<(usize, &GenRecord)> = plan.records.iter().enumerate().collect();
        let rank = |t: &str| generator::TOPICS.iter().position(|x| *x == t).unwrap();
        let partition = |i: usize, r: &GenRecord| match kafka_key(i, r) {
            Some(k) => Hash::Murmur2.partition(k.as_bytes(), PARTITIONS),
            None => (i % PARTITIONS as usize) as i32,
        };
        match order {
            ProduceOrder::Interleaved => {}
            ProduceOrder::TopicAfterTopic => records.sort_by_key(|(_, r)| rank(r.topic)),
            ProduceOrder::Reversed => {
                records.sort_by_key(|(_, r)| std::cmp::Reverse(rank(r.topic)))
            }
            ProduceOrder::PartitionAtATime => {
                records.sort_by_key(|(i, r)| (partition(*i, r), rank(r.topic)))
            }
        }
        common::produce_all(records.into_iter().map(|(i, r)| common::Outgoing {
            topic: topic(r.topic),
            key: kafka_key(i, r),
            value: if r.topic == generator::INVOICES {
                invoice_avro(&invoice_schema, invoice_id, &r.value)
            } else {
                r.value.clone()
            },
            partition: Some(partition(i, r)),
        }))
        .await;
        Estate {
            setup,
            plan,
            prefix,
            topics,
        }
    }

    /// `sightline run --until-end`, with JSON logs appended to the setup's log.
    fn spawn(&self) -> std::process::Child {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.setup.log())
            .unwrap();
        std::process::Command::new(env!("CARGO_BIN_EXE_sightline"))
            .args(["--log-format", "json", "run", "--until-end", "--config"])
            .arg(self.setup.config())
            .stdout(std::process::Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("sightline starts")
    }

    /// Runs `--until-end` to its exit; its summary line.
    async fn run_to_end(&self, child: std::process::Child) -> String {
        let deadline = Instant::now() + Duration::from_secs(900);
        let mut child = child;
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                let mut out = String::new();
                std::io::Read::read_to_string(child.stdout.as_mut().unwrap(), &mut out).unwrap();
                assert!(
                    status.success(),
                    "run --until-end exited with {status}; log: {}",
                    self.setup.log().display()
                );
                return out;
            }
            assert!(
                Instant::now() < deadline,
                "run --until-end did not finish within 900 s; log: {}",
                self.setup.log().display()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The alerts (dedupe id, status) the run must produce, sorted.
    fn expected_alerts(&self) -> Vec<(String, String)> {
        let mut want = common::expected_workflow_alerts(&self.plan.faults);
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

    /// Reads the outputs and asserts they are exactly the expected ones, with no alert that
    /// fired before its step was read.
    fn assert_exact(&self, label: &str) {
        let want = self.expected_alerts();
        let alerts = as_json(
            "alert.avsc",
            common::read_topic(
                &format!("{}.alerts", self.setup.out),
                want.len(),
                Duration::from_secs(120),
            ),
        );
        let got = common::alert_ids(&alerts);
        let premature: Vec<String> = alerts
            .iter()
            .filter_map(|r| {
                let a: serde_json::Value =
                    serde_json::from_slice(r.value.as_deref().unwrap()).unwrap();
                (a["kind"] == "missing_step"
                    && a["status"] == "RESOLVED"
                    && a["attributes"]["late_by_ms"] == "0")
                    .then(|| a["dedupe_id"].as_str().unwrap().to_string())
            })
            .collect();
        let extra: Vec<_> = got.iter().filter(|g| !want.contains(g)).take(10).collect();
        let missing: Vec<_> = want.iter().filter(|w| !got.contains(w)).take(10).collect();
        println!(
            "{label}: {} alerts expected, {} on the topic; {} fired before their step was read",
            want.len(),
            got.len(),
            premature.len()
        );
        assert!(
            premature.is_empty(),
            "{label}: {} missing-step alerts fired before their step was read, e.g. {:?}",
            premature.len(),
            &premature[..premature.len().min(10)]
        );
        assert!(
            got == want,
            "{label}: {} alerts, {} expected; extra {extra:?}; missing {missing:?}",
            got.len(),
            want.len()
        );
        let want_sla = common::expected_sla(&self.plan.faults, ORDERS);
        let total: usize = want_sla.iter().map(|(_, n)| n).sum();
        let sla = as_json(
            "sla_event.avsc",
            common::read_topic(
                &format!("{}.sla", self.setup.out),
                total,
                Duration::from_secs(120),
            ),
        );
        common::assert_sla_outcomes(&sla, want_sla, label);
    }
}

/// Output records (Confluent Avro, since a registry is configured) with their values as JSON.
#[allow(deprecated)] // from_avro_datum: the plainest way to read one Avro body
fn as_json(contract: &str, records: Vec<common::Read>) -> Vec<common::Read> {
    let text = std::fs::read_to_string(format!(
        "{}/schemas/sightline/{contract}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    let schema = apache_avro::Schema::parse_str(&text).unwrap();
    records
        .into_iter()
        .map(|mut r| {
            let bytes = r.value.take().expect("a value");
            assert_eq!(bytes[0], 0, "Confluent framing");
            let v = apache_avro::from_avro_datum(&schema, &mut &bytes[5..], None)
                .expect("an output in its contract");
            let json = serde_json::Value::try_from(v).expect("Avro to JSON");
            r.value = Some(serde_json::to_vec(&json).unwrap());
            r
        })
        .collect()
}

/// The Kafka key each system writes: the shop keys orders by order id; finance, the warehouse
/// and invoicing key by their own ids.
fn kafka_key(i: usize, r: &GenRecord) -> Option<String> {
    let own = |prefix: &str| r.key.as_ref().map(|_| format!("{prefix}-{i:07}"));
    match r.topic {
        generator::ORDERS => r.key.clone(),
        generator::PAYMENTS => own("PAY"),
        generator::SHIPMENTS => own("SHP"),
        _ => own("INV"),
    }
}

/// An invoice as Confluent Avro: the generator's JSON, in the contract's field order (a poison
/// invoice whose time is not a time keeps that; one without an amount gets 0).
fn invoice_avro(schema: &str, id: u32, json: &[u8]) -> Vec<u8> {
    use apache_avro::types::Value;
    let v: serde_json::Value = serde_json::from_slice(json).expect("invoices are JSON objects");
    let s = |k: &str| {
        Value::String(
            v[k].as_str()
                .map_or_else(|| v[k].to_string(), str::to_string),
        )
    };
    common::confluent_avro(
        schema,
        id,
        vec![
            ("type", s("type")),
            ("event_id", s("event_id")),
            ("order_id", s("order_id")),
            ("occurred_at", s("occurred_at")),
            ("amount", Value::Double(v["amount"].as_f64().unwrap_or(0.0))),
        ],
    )
}

async fn exact_whatever_the_order(order: ProduceOrder) {
    let estate = Estate::new(order).await;
    let summary = estate.run_to_end(estate.spawn()).await;
    println!("{order:?}: {}", summary.trim());
    assert!(summary.starts_with("until-end: read "), "{summary}");
    estate.assert_exact(&format!("{order:?}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topic_after_topic_gives_exactly_the_expected_outputs() {
    exact_whatever_the_order(ProduceOrder::TopicAfterTopic).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interleaved_gives_exactly_the_expected_outputs() {
    exact_whatever_the_order(ProduceOrder::Interleaved).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topic_after_topic_reversed_gives_exactly_the_expected_outputs() {
    exact_whatever_the_order(ProduceOrder::Reversed).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_partition_at_a_time_gives_exactly_the_expected_outputs() {
    exact_whatever_the_order(ProduceOrder::PartitionAtATime).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkills_on_the_way_change_nothing() {
    let estate = Estate::new(ProduceOrder::TopicAfterTopic).await;
    let left = || -> i64 {
        common::unread(&estate.setup.group, &estate.topics)
            .iter()
            .map(|(_, _, n)| n)
            .sum()
    };
    let total = left();
    // Killed when a quarter, half and three quarters of the input are committed: each time the
    // condition is met, never after a fixed pause.
    for share in [4, 2] {
        let mut child = estate.spawn();
        let left_at_most = total * (share - 1) / share;
        common::wait_for(
            "the input to be read that far",
            Duration::from_secs(600),
            async || (left() <= left_at_most).then_some(()),
        )
        .await;
        child.kill().expect("SIGKILL");
        child.wait().unwrap();
        println!("SIGKILLed with at most {left_at_most} of {total} records left");
    }
    let mut child = estate.spawn();
    common::wait_for(
        "three quarters of the input to be read",
        Duration::from_secs(600),
        async || (left() <= total / 4).then_some(()),
    )
    .await;
    child.kill().expect("SIGKILL");
    child.wait().unwrap();
    let summary = estate.run_to_end(estate.spawn()).await;
    println!("after three SIGKILLs: {}", summary.trim());
    estate.assert_exact("SIGKILLed");
}
