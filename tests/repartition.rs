//! A source not keyed by the correlation key, on the real broker: payments arrive on a
//! one-partition topic keyed by payment id, orders on a four-partition topic keyed by order id.
//! The payments source says `repartition: true`, so Sightline re-keys its events by order id
//! through `<group>.repartition.payments` (four partitions, like the orders) and the workflow
//! sees each payment on its order's partition. Without that, every payment would be an orphan
//! and every order would miss its payment; with it, exactly the injected missing payments alert.

mod common;

use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payments_keyed_by_something_else_are_rekeyed_to_their_orders_partition() {
    common::require_kafka();
    let prefix = common::unique("rekey");
    let (orders_topic, payments_topic) = (format!("{prefix}.orders"), format!("{prefix}.payments"));
    common::create_topics(&[&orders_topic], 4).await;
    common::create_topics(&[&payments_topic], 1).await;
    let sources = format!(
        "  - name: orders\n    topic: {orders_topic}\n    format: json\n    event_type: {{ field: type }}\n    \
         key: {{ field: order_id }}\n    event_time: {{ field: at }}\n\
         \x20 - name: payments\n    topic: {payments_topic}\n    format: json\n    event_type: {{ field: type }}\n    \
         key: {{ field: order_id }}\n    event_time: {{ field: at }}\n    repartition: true\n\
         workflows:\n  - name: pay\n    steps:\n      - {{ name: ordered, on: order_confirmed, start: true }}\n      \
         - {{ name: paid, on: payment_captured, after: ordered, within: 15m }}\n"
    );
    let setup = common::Setup::new(&sources, None, &[]);

    // 400 orders over the last three hours; each paid two minutes later, except every tenth of
    // the first half (their deadlines are long past by the end of the traffic).
    let now = chrono::Utc::now().timestamp_millis();
    let producer: rdkafka::producer::FutureProducer = common::client()
        .set("partitioner", "murmur2_random")
        .create()
        .unwrap();
    let mut missing = Vec::new();
    for i in 0..400i64 {
        let at = now - 3 * 3_600_000 + i * 26_000;
        let order = format!("O-{i:04}");
        let v = serde_json::json!({"type": "order_confirmed", "order_id": order, "at": at});
        common::produce(&producer, &orders_topic, &order, v.to_string().as_bytes()).await;
        if i < 200 && i % 10 == 3 {
            missing.push(order);
            continue;
        }
        let v =
            serde_json::json!({"type": "payment_captured", "order_id": order, "at": at + 120_000});
        common::produce(
            &producer,
            &payments_topic,
            &format!("PAY-{i}"),
            v.to_string().as_bytes(),
        )
        .await;
    }

    let sl = setup.start().await;
    let repartition = format!("{}.repartition.payments", setup.group);
    common::wait_caught_up(
        &setup.group,
        &[
            orders_topic.clone(),
            payments_topic.clone(),
            repartition.clone(),
        ],
        Duration::from_secs(120),
    )
    .await;
    let mut want: Vec<(String, String)> = missing
        .iter()
        .map(|o| (format!("pay/{o}/paid"), "FIRING".to_string()))
        .collect();
    want.sort();
    let got = common::alert_ids(&common::read_topic(
        &format!("{}.alerts", setup.out),
        want.len(),
        Duration::from_secs(120),
    ));
    assert_eq!(got, want);
    // Every payment went through the repartition topic, spread over the orders' partitions;
    // beside them, the writer's watermark markers reached every partition.
    let records = common::read_topic(&repartition, 384, Duration::from_secs(60));
    let (marks, rekeyed): (Vec<_>, Vec<_>) = records.iter().partition(|r| {
        r.value
            .as_deref()
            .unwrap_or_default()
            .starts_with(b"{\"marks\":")
    });
    assert_eq!(rekeyed.len(), 380);
    let partitions: std::collections::BTreeSet<i32> = rekeyed.iter().map(|r| r.partition).collect();
    assert_eq!(partitions, (0..4).collect());
    let marked: std::collections::BTreeSet<i32> = marks.iter().map(|r| r.partition).collect();
    assert_eq!(
        marked,
        (0..4).collect(),
        "a marker on every repartition partition"
    );
    sl.stop().await;
}
