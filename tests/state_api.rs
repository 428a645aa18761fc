//! The read-only view of a running instance, on the real broker: `sightline state --url` returns
//! the exact lineage of a known key, lists it among the open instances and its pending deadline
//! among the timers; the JSON API lists the workflows.

mod common;

use serde_json::json;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_returns_the_exact_lineage_of_a_known_key_from_a_running_instance() {
    common::require_kafka();
    let prefix = common::unique("state");
    let (orders, payments) = (format!("{prefix}.orders"), format!("{prefix}.payments"));
    common::create_topics(&[&orders, &payments], 1).await;
    let sources = format!(
        "  - name: orders\n    topic: {orders}\n    format: json\n    event_type: {{ field: type }}\n    \
         key: {{ field: order_id }}\n    event_time: {{ field: at }}\n\
         \x20 - name: payments\n    topic: {payments}\n    format: json\n    event_type: {{ field: type }}\n    \
         key: {{ field: order_id }}\n    event_time: {{ field: at }}\n\
         workflows:\n  - name: o2c\n    steps:\n      - {{ name: ordered, on: order_confirmed, start: true }}\n      \
         - {{ name: paid, on: payment_captured, after: ordered, within: 15m }}\n      \
         - {{ name: shipped, on: shipment_dispatched, after: paid, within: 30d }}\n"
    );
    let setup = common::Setup::new(&sources, None, &[]);
    let now = chrono::Utc::now().timestamp_millis();
    let p: rdkafka::producer::FutureProducer = common::client().create().unwrap();
    let (t0, t1) = (now - 60_000, now - 30_000);
    let o = json!({"type": "order_confirmed", "order_id": "O-42", "at": t0}).to_string();
    let y = json!({"type": "payment_captured", "order_id": "O-42", "at": t1}).to_string();
    assert_eq!(
        common::produce(&p, &orders, "O-42", o.as_bytes()).await,
        (0, 0)
    );
    assert_eq!(
        common::produce(&p, &payments, "O-42", y.as_bytes()).await,
        (0, 0)
    );

    let sl = setup.start().await;
    common::wait_caught_up(
        &setup.group,
        &[orders.clone(), payments.clone()],
        Duration::from_secs(60),
    )
    .await;
    let state = |args: &[&str]| {
        let out = common::sightline_ok(&[&["state", "--url", &sl.http][..], args].concat(), &[]);
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };

    let inst = state(&["instance", "--workflow", "o2c", "--key", "O-42"]);
    assert_eq!(
        inst["lineage"],
        json!([
            {"event_type": "order_confirmed", "topic": orders, "partition": 0, "offset": 0, "event_time": t0, "trace_id": null},
            {"event_type": "payment_captured", "topic": payments, "partition": 0, "offset": 0, "event_time": t1, "trace_id": null},
        ])
    );
    assert_eq!(inst["steps_seen"], json!({"ordered": t0, "paid": t1}));
    assert_eq!(inst["closed"], json!(false));

    let open = state(&["open", "--workflow", "o2c"]);
    assert_eq!(
        open["by_step"],
        json!([{"workflow": "o2c", "step": "paid", "open": 1}])
    );
    assert_eq!(open["oldest"][0]["key"], json!("O-42"));

    // The payment deadline is spent (payment arrived), whichever topic was read first; the
    // shipment deadline (30 days after payment) is not due within the hour; within 31 days it
    // is, named by its step.
    let soon = state(&["timers"]);
    assert!(
        !soon
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["kind"] == "deadline"),
        "{soon}"
    );
    let month = state(&["timers", "--within-ms", &(31i64 * 86_400_000).to_string()]);
    assert!(month
        .as_array()
        .unwrap()
        .iter()
        .any(|t| t["kind"] == "deadline"
            && t["key"] == "O-42"
            && t["step"] == "shipped"
            && t["due"] == t1 + 30 * 86_400_000));

    let (code, body) = common::http_get(&format!("{}/api/workflows", sl.http))
        .await
        .unwrap();
    assert_eq!(code, 200);
    let wfs: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(wfs[0]["name"], "o2c");
    assert_eq!(wfs[0]["steps"][1]["after"], "ordered");
    let (code, _) = common::http_get(&format!("{}/api/workflows/o2c/instances/nope", sl.http))
        .await
        .unwrap();
    assert_eq!(code, 404);
    sl.stop().await;
}
