//! The broker restarts mid-run (the local stack's Kafka is stopped and started again while
//! Sightline processes a catch-up of order-to-cash traffic). Sightline must ride it out in the
//! same process: the transaction in flight is aborted or completes, reading resumes from the last
//! commit, and the alert and SLA topics end up with exactly the expected records.
//!
//! This test stops the shared broker, so it lives alone in its own test binary (cargo runs test
//! binaries one after another).

mod common;

use std::time::Duration;

fn stack(cmd: &str) {
    let status =
        std::process::Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/local/stack"))
            .arg(cmd)
            .status()
            .expect("deploy/local/stack runs");
    assert!(status.success(), "deploy/local/stack {cmd} failed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sightline_rides_out_a_broker_restart_without_loss() {
    common::require_kafka();
    let orders = 20_000;
    let run = common::OrderToCash::new(orders, 37).await;
    let orders_topic = run.topic(sightline::demo::generator::ORDERS);
    let consumed = format!("sightline_records_consumed_total{{topic=\"{orders_topic}\"}}");
    let mut sl = run.setup.start().await;
    common::wait_for("reading to start", Duration::from_secs(120), async || {
        (sl.metric(&consumed).await > 0).then_some(())
    })
    .await;
    // The broker goes down as soon as reading has started (a pause here once let a fast engine
    // read nearly everything first): more than one batch (5,000 records) must be left.
    let before = sl.metric(&consumed).await;
    let left: i64 = common::unread(&run.setup.group, &run.topics)
        .iter()
        .map(|(_, _, n)| n)
        .sum();
    assert!(
        left > 5_000,
        "only {left} records were left to read before the restart; the test proves nothing"
    );

    let down = std::time::Instant::now();
    stack("stop-kafka");
    stack("start-kafka");
    println!(
        "broker-restart: broker down for {:.1} s after Sightline had read {before} orders records ({left} records of the input not yet committed)",
        down.elapsed().as_secs_f64()
    );

    common::wait_caught_up(&run.setup.group, &run.topics, Duration::from_secs(900)).await;
    assert!(
        sl.child.try_wait().unwrap().is_none(),
        "Sightline exited instead of recovering"
    );
    println!(
        "broker-restart: {} transactions aborted, {} engine restarts",
        sl.metric("sightline_transactions_total{result=\"aborted\"}")
            .await,
        sl.metric("sightline_engine_restarts_total").await
    );
    run.assert_exact_outputs(orders, "broker-restart");
    sl.stop().await;
}
