//! One absurd event time must not wreck a partition. 10,000 good records (orders and their
//! payments, some missing) with three poison times among them: i64::MAX, year 9999 and year 0,
//! and one order with a 100 KB correlation key. Read to the end (`run --until-end`), the alert
//! and SLA topics hold exactly what the 10,000 good records alone give; the three are
//! dead-lettered as `event_time_out_of_range`, the long key as `key_too_long`.

mod common;

use std::time::{Duration, Instant};

const YEAR_0_MS: i64 = -62_167_219_200_000;

struct Run {
    setup: common::Setup,
    topics: Vec<String>,
}

async fn run(with_poison: bool) -> Run {
    common::require_kafka();
    let prefix = common::unique("ptime");
    let (orders, payments) = (format!("{prefix}.orders"), format!("{prefix}.payments"));
    common::create_topics(&[&orders, &payments], 2).await;
    let sources = format!(
        "  - name: orders\n    topic: {orders}\n    format: json\n    event_type: {{ field: type }}\n    \
         key: {{ field: id }}\n    event_id: {{ field: event_id }}\n    event_time: {{ field: at }}\n\
         \x20 - name: payments\n    topic: {payments}\n    format: json\n    event_type: {{ field: type }}\n    \
         key: {{ field: id }}\n    event_id: {{ field: event_id }}\n    event_time: {{ field: at }}\n\
         workflows:\n  - name: pay\n    ttl: 2d\n    steps:\n      - {{ name: ordered, on: order_confirmed, start: true }}\n      \
         - {{ name: paid, on: payment_captured, after: ordered, within: 15m }}\n"
    );
    let setup = common::Setup::new(&sources, None, &[]);
    let producer: rdkafka::producer::FutureProducer = common::client()
        .set("partitioner", "murmur2_random")
        .set("linger.ms", "10")
        .create()
        .unwrap();
    // Fixed times (not now): both runs must be given the same records.
    let start = 1_795_000_000_000i64;
    let mut pending = Vec::new();
    let mut send = |topic: &str, key: String, v: serde_json::Value| {
        let value = v.to_string();
        pending.push(
            producer
                .send_result(
                    rdkafka::producer::FutureRecord::to(topic)
                        .key(&key)
                        .payload(&value)
                        .timestamp(start + 6 * 3_600_000),
                )
                .map_err(|(e, _)| e)
                .unwrap(),
        );
    };
    for i in 0..5_000i64 {
        let id = format!("O-{i:05}");
        let at = start + i * 3_000;
        send(
            &orders,
            id.clone(),
            serde_json::json!({"type": "order_confirmed", "id": id, "event_id": format!("{id}-o"), "at": at}),
        );
        if i % 10 != 7 {
            send(
                &payments,
                id.clone(),
                serde_json::json!({"type": "payment_captured", "id": id, "event_id": format!("{id}-p"), "at": at + 60_000}),
            );
        }
        if with_poison && i % 1_600 == 800 {
            let n = i / 1_600;
            let at = match n {
                0 => serde_json::json!(i64::MAX),
                1 => serde_json::json!("9999-01-01T00:00:00Z"),
                _ => serde_json::json!(YEAR_0_MS),
            };
            let id = format!("P-{n}");
            send(
                &orders,
                id.clone(),
                serde_json::json!({"type": "order_confirmed", "id": id, "event_id": format!("{id}-o"), "at": at}),
            );
        }
        if with_poison && i == 2_500 {
            let id = "K".repeat(100_000);
            send(
                &orders,
                "long".into(),
                serde_json::json!({"type": "order_confirmed", "id": id, "event_id": "long-o", "at": start + i * 3_000}),
            );
        }
    }
    for p in pending {
        p.await.unwrap().unwrap();
    }
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_sightline"))
        .args(["--log-format", "json", "run", "--until-end", "--config"])
        .arg(setup.config())
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(setup.log()).unwrap())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "{status}; log {}", setup.log().display());
            break;
        }
        assert!(Instant::now() < deadline, "run --until-end did not end");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Run {
        setup,
        topics: vec![orders, payments],
    }
}

fn outputs(r: &Run) -> (Vec<(String, String)>, Vec<String>) {
    let alerts = common::alert_ids(&common::read_topic(
        &format!("{}.alerts", r.setup.out),
        470,
        Duration::from_secs(30),
    ));
    let mut sla: Vec<String> = common::read_topic(
        &format!("{}.sla", r.setup.out),
        4_500,
        Duration::from_secs(30),
    )
    .iter()
    .map(|r| {
        let s: serde_json::Value = serde_json::from_slice(r.value.as_deref().unwrap()).unwrap();
        format!("{} {}", s["sla_id"].as_str().unwrap(), s["outcome"])
    })
    .collect();
    sla.sort();
    (alerts, sla)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_absurd_event_times_change_nothing_and_are_dead_lettered() {
    let (clean, poisoned) = (run(false).await, run(true).await);
    let (want_alerts, want_sla) = outputs(&clean);
    // 500 payments are missing; the 470 whose 15-minute deadline is at or before the newest
    // event time (the last payment, 60 s of lateness after its order) fire. The ttl (2 days) is
    // not reached by the end of the input.
    assert_eq!(want_alerts.len(), 470);
    assert_eq!(want_sla.len(), 4_500, "one COMPLETED per paid order");
    let (got_alerts, got_sla) = outputs(&poisoned);
    assert_eq!(
        got_alerts, want_alerts,
        "alerts with the poison times among the records"
    );
    assert_eq!(
        got_sla, want_sla,
        "SLA events with the poison times among the records"
    );
    let dead = common::read_topic(
        &format!("{}.dlq", poisoned.topics[0]),
        4,
        Duration::from_secs(30),
    );
    let classes: Vec<(&str, &str)> = dead
        .iter()
        .map(|r| {
            (
                r.header("sightline.error.class").unwrap_or_default(),
                r.header("sightline.error.message").unwrap_or_default(),
            )
        })
        .collect();
    println!("poison times: {classes:?}");
    assert_eq!(dead.len(), 4);
    let (times, keys): (Vec<_>, Vec<_>) = classes
        .iter()
        .partition(|(class, _)| *class == "event_time_out_of_range");
    assert_eq!(times.len(), 3, "{classes:?}");
    for (_, message) in &times {
        assert!(
            message.contains("event time") && message.contains("Kafka timestamp"),
            "{message}"
        );
    }
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0].0, "key_too_long");
    assert!(
        keys[0]
            .1
            .contains("100000 bytes, more than engine.max_key_bytes (512)"),
        "{}",
        keys[0].1
    );
}
