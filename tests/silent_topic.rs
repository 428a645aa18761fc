//! Live, on the real broker: two workflows on co-partitioned topics, one of which falls silent.
//! The store's pickup feed delivered one record two hours old and then nothing (and the idle
//! timeout is long, so it keeps holding its own workflow's clock at that old time). Orders and
//! payments flow live. The payment deadlines of the order workflow, which never reads the
//! pickup feed, must fire on time all the same; the pickup workflow's own deadline fires on its
//! own clock.

mod common;

use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workflow_that_does_not_read_the_silent_topic_fires_on_time() {
    common::require_kafka();
    let prefix = common::unique("silent");
    let (orders, payments, pickups) = (
        format!("{prefix}.orders"),
        format!("{prefix}.payments"),
        format!("{prefix}.pickups"),
    );
    common::create_topics(&[&orders, &payments, &pickups], 2).await;
    let source = |name: &str, topic: &str| {
        format!(
            "  - name: {name}\n    topic: {topic}\n    format: json\n    event_type: {{ field: type }}\n    \
             event_types: [{}]\n    key: {{ field: id }}\n    event_time: {{ field: at }}\n",
            match name {
                "orders" => "order_confirmed",
                "payments" => "payment_captured",
                _ => "pickup_ready, pickup_collected",
            }
        )
    };
    let sources = format!(
        "{}{}{}workflows:\n  - name: pay\n    steps:\n      - {{ name: ordered, on: order_confirmed, start: true }}\n      \
         - {{ name: paid, on: payment_captured, after: ordered, within: 3s }}\n  \
         - name: pickup\n    steps:\n      - {{ name: ready, on: pickup_ready, start: true }}\n      \
         - {{ name: collected, on: pickup_collected, after: ready, within: 1s }}\n",
        source("orders", &orders),
        source("payments", &payments),
        source("pickups", &pickups),
    );
    let setup = common::Setup::new(&sources, None, &[]);
    // No lateness, and an idle timeout far longer than the test: the silent feed keeps
    // holding its own workflow's clock at its last, old, event.
    setup.add_config("[engine]\nallowed_lateness_ms = 0\nidle_timeout_ms = 600000\n");
    let producer: rdkafka::producer::FutureProducer = common::client()
        .set("partitioner", "murmur2_random")
        .create()
        .unwrap();
    let now = chrono::Utc::now().timestamp_millis();
    let v = serde_json::json!({"type": "pickup_ready", "id": "S-1", "at": now - 2 * 3_600_000});
    common::produce(&producer, &pickups, "S-1", v.to_string().as_bytes()).await;

    let sl = setup.start().await;
    // Live traffic, event time now: three orders, one of them paid.
    let started = Instant::now();
    let at = chrono::Utc::now().timestamp_millis();
    for id in ["O-1", "O-2", "O-3"] {
        let v = serde_json::json!({"type": "order_confirmed", "id": id, "at": at});
        common::produce(&producer, &orders, id, v.to_string().as_bytes()).await;
    }
    let v = serde_json::json!({"type": "payment_captured", "id": "O-1", "at": at + 500});
    common::produce(&producer, &payments, "O-1", v.to_string().as_bytes()).await;

    let want: Vec<(String, String)> = vec![
        ("pay/O-2/paid".into(), "FIRING".into()),
        ("pay/O-3/paid".into(), "FIRING".into()),
        ("pickup/S-1/collected".into(), "FIRING".into()),
    ];
    let topic = format!("{}.alerts", setup.out);
    let got = common::wait_for(
        "the three deadlines to fire",
        Duration::from_secs(60),
        async || {
            let got = common::alert_ids(&common::read_topic(&topic, 3, Duration::from_secs(2)));
            (got.len() >= 3).then_some(got)
        },
    )
    .await;
    let elapsed = started.elapsed();
    println!("silent topic: {got:?} within {elapsed:?} of the orders (deadline 3 s)");
    assert_eq!(got, want);
    // On time: the wall clock moves an idle input's clock, so the 3 s deadline fires within
    // seconds, not when the silent feed's two-hour-old clock catches up.
    assert!(elapsed < Duration::from_secs(30), "{elapsed:?}");
    sl.stop().await;
}

/// A re-keyed source with a partition that was never written (so never committed: librdkafka
/// reads its committed offset as -1001, which once counted as "behind" forever) must not hold
/// the deadlines of the keys it feeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rekeyed_source_with_an_empty_partition_fires_its_deadlines_on_time() {
    common::require_kafka();
    let prefix = common::unique("emptyp");
    let (orders, payments) = (format!("{prefix}.orders"), format!("{prefix}.payments"));
    common::create_topics(&[&orders], 2).await;
    common::create_topics(&[&payments], 3).await;
    let sources = format!(
        "  - name: orders\n    topic: {orders}\n    format: json\n    event_type: {{ field: type }}\n    \
         key: {{ field: id }}\n    event_time: {{ field: at }}\n\
         \x20 - name: payments\n    topic: {payments}\n    format: json\n    event_type: {{ field: type }}\n    \
         key: {{ field: id }}\n    event_time: {{ field: at }}\n    repartition: true\n\
         workflows:\n  - name: pay\n    steps:\n      - {{ name: ordered, on: order_confirmed, start: true }}\n      \
         - {{ name: paid, on: payment_captured, after: ordered, within: 3s }}\n"
    );
    let setup = common::Setup::new(&sources, None, &[]);
    setup.add_config("[engine]\nallowed_lateness_ms = 0\n");
    let producer: rdkafka::producer::FutureProducer = common::client()
        .set("partitioner", "murmur2_random")
        .create()
        .unwrap();
    let sl = setup.start().await;
    let started = Instant::now();
    let at = chrono::Utc::now().timestamp_millis();
    for id in ["O-1", "O-2", "O-3"] {
        let v = serde_json::json!({"type": "order_confirmed", "id": id, "at": at});
        common::produce(&producer, &orders, id, v.to_string().as_bytes()).await;
    }
    // One payment, on payments partition 0; partitions 1 and 2 stay empty.
    let v = serde_json::json!({"type": "payment_captured", "id": "O-1", "at": at + 500});
    producer
        .send(
            rdkafka::producer::FutureRecord::to(&payments)
                .key("PAY-1")
                .payload(&v.to_string())
                .partition(0),
            Duration::from_secs(10),
        )
        .await
        .unwrap();
    let want: Vec<(String, String)> = vec![
        ("pay/O-2/paid".into(), "FIRING".into()),
        ("pay/O-3/paid".into(), "FIRING".into()),
    ];
    let topic = format!("{}.alerts", setup.out);
    let got = common::wait_for(
        "both missing payments to fire",
        Duration::from_secs(60),
        async || {
            let got = common::alert_ids(&common::read_topic(&topic, 2, Duration::from_secs(2)));
            (got.len() >= 2).then_some(got)
        },
    )
    .await;
    println!(
        "empty re-keyed partition: {got:?} within {:?} (deadline 3 s)",
        started.elapsed()
    );
    assert_eq!(got, want);
    sl.stop().await;
}
