//! Workflow tracking end to end on the real broker: 100,000 orders of order-to-cash traffic
//! (400k events) with injected faults (missing payments, missing shipments for one carrier,
//! late shipments, late and missing invoices, duplicates, out-of-order steps, orphans,
//! cancellations), read as a
//! catch-up replay, with Sightline stopped by SIGTERM partway through and started again. The alert topic must hold exactly the expected
//! alerts (dedupe id and status, as a multiset: a repeat is a failure), and there must be one
//! COMPLETED SLA event per completed order.

mod common;

use rdkafka::producer::{FutureProducer, FutureRecord};
use sightline::demo::generator;
use std::collections::BTreeMap;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_are_exactly_the_injected_faults_across_a_graceful_restart() {
    common::require_kafka();
    let orders: usize = std::env::var("SIGHTLINE_E2E_ORDERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let prefix = common::unique("o2c");
    let topic = |t: &str| format!("{prefix}.{t}");
    let topics: Vec<String> = generator::TOPICS.iter().map(|t| topic(t)).collect();
    common::create_topics(&topics.iter().map(String::as_str).collect::<Vec<_>>(), 6).await;

    // The shipped order-to-cash topology and contracts, on this test's own topics.
    let mut topology = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/topologies/order-to-cash.yaml"
    ))
    .unwrap();
    for t in generator::TOPICS {
        topology = topology.replace(&format!("topic: {t}\n"), &format!("topic: {}\n", topic(t)));
    }
    let sources = topology[topology.find("sources:\n").unwrap() + "sources:\n".len()..].to_string();
    let setup = common::Setup::new(&sources, None, &[]);
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
    let plan = generator::generate(11, orders, now - 20 * 86_400_000, now, 0);
    let mut produced = BTreeMap::<String, u64>::new();
    let producer: FutureProducer = common::client()
        .set("linger.ms", "20")
        .set("batch.num.messages", "10000")
        .create()
        .unwrap();
    let send_all = async |records: &[generator::GenRecord],
                          produced: &mut BTreeMap<String, u64>| {
        let mut pending = Vec::new();
        for r in records {
            let t = topic(r.topic);
            let mut rec = FutureRecord::<str, [u8]>::to(&t).payload(&r.value);
            if let Some(k) = &r.key {
                rec = rec.key(k.as_str());
            }
            pending.push(producer.send_result(rec).map_err(|(e, _)| e).unwrap());
            *produced.entry(t).or_default() += 1;
            if pending.len() >= 20_000 {
                for p in pending.drain(..) {
                    p.await.unwrap().unwrap();
                }
            }
        }
        for p in pending {
            p.await.unwrap().unwrap();
        }
    };

    // All traffic is on the topics before Sightline starts (a catch-up replay: what is there is
    // read in event-time order per topic, so the result is deterministic); Sightline is stopped
    // with SIGTERM partway through and started again.
    send_all(&plan.records, &mut produced).await;
    let sl = setup.start().await;
    let orders_topic = topic(generator::ORDERS);
    let consumed = format!("sightline_records_consumed_total{{topic=\"{orders_topic}\"}}");
    common::wait_for(
        "40% of the orders to be processed",
        Duration::from_secs(300),
        async || (sl.metric(&consumed).await * 5 > produced[&orders_topic] * 2).then_some(()),
    )
    .await;
    sl.stop().await;
    let sl = setup.start().await;
    // Everything read and committed; then only due timers remain, which the read below waits for.
    common::wait_caught_up(&setup.group, &topics, Duration::from_secs(900)).await;
    let mut want = common::expected_workflow_alerts(&plan.faults);
    want.push((
        format!(
            "schema/json:{}:carrier:wrong_type",
            topic(generator::SHIPMENTS)
        ),
        "FIRING".into(),
    ));
    want.sort();
    let alerts = common::read_topic(
        &format!("{}.alerts", setup.out),
        want.len(),
        Duration::from_secs(600),
    );
    let mut got: Vec<(String, String)> = alerts
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
    let extra: Vec<_> = got.iter().filter(|g| !want.contains(g)).take(10).collect();
    let missing: Vec<_> = want.iter().filter(|w| !got.contains(w)).take(10).collect();
    assert!(
        got == want,
        "{} alerts, {} expected; extra {extra:?}; missing {missing:?}",
        got.len(),
        want.len()
    );
    println!(
        "alerts: {} expected, {} on the topic, 0 lost, 0 repeated",
        want.len(),
        got.len()
    );

    // One COMPLETED SLA event per completed order, each once.
    let n = |f: &str| plan.faults.get(f).map_or(0, Vec::len);
    let completed = orders
        - n("orphan")
        - n("cancelled")
        - n("missing_payment")
        - n("missing_invoice")
        - n("missing_shipment");
    let sla = common::read_topic(
        &format!("{}.sla", setup.out),
        completed + 1,
        Duration::from_secs(120),
    );
    let mut completed_ids: Vec<String> = sla
        .iter()
        .filter_map(|r| {
            let s: serde_json::Value = serde_json::from_slice(r.value.as_deref().unwrap()).unwrap();
            (s["outcome"] == "COMPLETED").then(|| s["key"].as_str().unwrap().to_string())
        })
        .collect();
    completed_ids.sort();
    let before = completed_ids.len();
    completed_ids.dedup();
    assert_eq!((before, completed_ids.len()), (completed, completed));
    sl.stop().await;
}
