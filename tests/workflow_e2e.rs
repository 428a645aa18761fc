//! Workflow tracking end to end on the real broker: 100,000 orders of order-to-cash traffic
//! (400k events) with injected faults (missing payments, missing shipments for one carrier,
//! late shipments, late and missing invoices, duplicates, out-of-order steps, orphans,
//! cancellations), read as a
//! catch-up replay, with Sightline stopped by SIGTERM partway through and started again. The alert topic must hold exactly the expected
//! alerts (dedupe id and status, as a multiset: a repeat is a failure), and there must be one
//! COMPLETED SLA event per completed order.

mod common;

use sightline::demo::generator;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_are_exactly_the_injected_faults_across_a_graceful_restart() {
    common::require_kafka();
    let orders: usize = std::env::var("SIGHTLINE_E2E_ORDERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    // All traffic is on the topics before Sightline starts (a catch-up replay: what is there is
    // read in event-time order per topic, so the result is deterministic); Sightline is stopped
    // with SIGTERM partway through and started again.
    let run = common::OrderToCash::new(orders, 11).await;
    let setup = &run.setup;
    let sl = setup.start().await;
    let orders_topic = run.topic(generator::ORDERS);
    let total_orders = run
        .plan
        .records
        .iter()
        .filter(|r| r.topic == generator::ORDERS)
        .count() as u64;
    let consumed = format!("sightline_records_consumed_total{{topic=\"{orders_topic}\"}}");
    common::wait_for(
        "40% of the orders to be processed",
        Duration::from_secs(300),
        async || (sl.metric(&consumed).await * 5 > total_orders * 2).then_some(()),
    )
    .await;
    sl.stop().await;
    let sl = setup.start().await;
    // Everything read and committed; then only due timers remain, which the read below waits for.
    common::wait_caught_up(&setup.group, &run.topics, Duration::from_secs(900)).await;
    let want = run.expected_alerts();
    let alerts = common::read_topic(
        &format!("{}.alerts", setup.out),
        want.len(),
        Duration::from_secs(600),
    );
    let got = common::alert_ids(&alerts);
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
    let completed = run.expected_sla(orders)[1].1;
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
