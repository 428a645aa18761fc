//! A deadline pending when an instance dies is fired by its successor even when there is
//! nothing left to read, on the real broker: Sightline reads an order to the end of its topic,
//! is killed (SIGKILL) before the payment deadline, loses its state directory, and starts again.
//! Its state, the deadline and the stream clock come back from the changelog in the rebalance
//! hook; no record follows (the input is committed to its end), and the deadline must still
//! fire, exactly once. (The chaos test once lost a tenth of its alerts this way: restored clocks
//! were loaded only when a record arrived, and timers fire only on partitions with a clock.)

mod common;

use serde_json::json;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restored_deadline_fires_with_nothing_left_to_read() {
    common::require_kafka();
    let orders = common::unique("orders");
    common::create_topics(&[&orders], 1).await;
    let setup = common::Setup::new(
        &format!(
            "  - {{ name: orders, topic: {orders}, format: json, event_type: {{ field: type }}, key: {{ field: id }}, event_time: {{ field: at }} }}\n\
             workflows:\n  - name: pay\n    ttl: 1d\n    steps:\n      - {{ name: ordered, on: ordered, start: true }}\n      - {{ name: paid, on: paid, after: ordered, within: 25s }}\n"
        ),
        None,
        &[],
    );
    setup.add_config("[engine]\nallowed_lateness_ms = 0\ntimer_tick_ms = 50\n");
    // Event time 5 s ago: the payment deadline is due 20 s from now on the stream clock, which
    // runs with the wall clock once the partition is read to its end.
    let at = chrono::Utc::now().timestamp_millis() - 5_000;
    let p: rdkafka::producer::FutureProducer = common::client().create().unwrap();
    let v = json!({"type": "ordered", "id": "O-1", "at": at}).to_string();
    assert_eq!(
        common::produce(&p, &orders, "O-1", v.as_bytes()).await,
        (0, 0)
    );

    let mut sl = setup.start().await;
    common::wait_caught_up(
        &setup.group,
        std::slice::from_ref(&orders),
        Duration::from_secs(60),
    )
    .await;
    sl.child.kill().expect("SIGKILL");
    sl.child.wait().unwrap();
    let killed = chrono::Utc::now().timestamp_millis();
    assert!(
        killed < at + 25_000,
        "the deadline was due before the kill; the test proves nothing"
    );
    std::fs::remove_dir_all(setup.dir.join("state")).unwrap();

    let sl = setup.start().await;
    let alerts = common::read_topic(
        &format!("{}.alerts", setup.out),
        1,
        Duration::from_secs(120),
    );
    let got: Vec<(String, String, String)> = alerts
        .iter()
        .map(|r| {
            let a: serde_json::Value = serde_json::from_slice(r.value.as_deref().unwrap()).unwrap();
            (
                a["kind"].as_str().unwrap().to_string(),
                a["key"].as_str().unwrap_or_default().to_string(),
                a["status"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![(
            "missing_step".to_string(),
            "O-1".to_string(),
            "FIRING".to_string()
        )],
        "the restored deadline fired exactly once"
    );
    assert!(
        alerts[0].timestamp_ms.is_some_and(|t| t > killed),
        "the alert came from the restarted instance"
    );
    sl.stop().await;
}
