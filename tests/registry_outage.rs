//! A registry outage is not bad input: with the registry frozen for 30 s, records that need a
//! schema wait (their partition holds its position), /readyz says the registry is unreachable,
//! nothing is dead-lettered, and processing resumes when the registry answers again.
//!
//! Alone in its test binary: it freezes the shared registry (deploy/local/stack pause-registry).

mod common;

use apache_avro::types::Value as AvroValue;
use rdkafka::producer::FutureProducer;
use schema_registry_converter::async_impl::schema_registry::SrSettings;
use std::time::{Duration, Instant};

const V1: &str = r#"{"type":"record","name":"Pay","namespace":"o","fields":[{"name":"order_id","type":"string"},{"name":"at","type":"long"}]}"#;
const V2: &str = r#"{"type":"record","name":"Pay","namespace":"o","fields":[{"name":"order_id","type":"string"},{"name":"at","type":"long"},{"name":"note","type":["null","string"],"default":null}]}"#;

fn payment(schema: &str, id: u32, i: usize) -> Vec<u8> {
    let mut fields = vec![
        ("order_id", AvroValue::String(format!("O-{i}"))),
        ("at", AvroValue::Long(1_795_000_000_000)),
    ];
    if schema == V2 {
        fields.push(("note", AvroValue::Union(0, Box::new(AvroValue::Null))));
    }
    common::confluent_avro(schema, id, fields)
}

fn stack(cmd: &str) {
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/local/stack");
    assert!(
        std::process::Command::new(script)
            .arg(cmd)
            .status()
            .unwrap()
            .success(),
        "stack {cmd}"
    );
}

/// Thaws the registry even when an assertion fails, so later tests find it answering.
struct Thaw;
impl Drop for Thaw {
    fn drop(&mut self) {
        stack("resume-registry");
    }
}

async fn readyz(sl: &common::Sightline, code: u16) -> serde_json::Value {
    let url = format!("{}/readyz", sl.http);
    let body = common::wait_for(
        &format!("/readyz to answer {code}"),
        Duration::from_secs(30),
        async || {
            common::http_get(&url)
                .await
                .filter(|(c, _)| *c == code)
                .map(|(_, b)| b)
        },
    )
    .await;
    serde_json::from_str(&body).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_registry_holds_records_and_dead_letters_none() {
    common::require_kafka();
    common::require_registry();
    let topic = common::unique("payments");
    common::create_topics(&[&topic], 1).await;
    let settings = SrSettings::new(common::registry_url());
    let id1 = sightline::registry::register_avro(&settings, &format!("{topic}-value"), V1)
        .await
        .unwrap();
    let id2 = sightline::registry::register_avro(&settings, &format!("{topic}-value"), V2)
        .await
        .unwrap();

    let setup = common::Setup::new(
        &format!(
            "  - name: payments\n    topic: {topic}\n    format: avro\n    event_type: {{ fixed: payment_captured }}\n    \
             key: {{ field: order_id }}\n    event_time: {{ field: at }}\n"
        ),
        Some(1000),
        &[],
    );
    let sl = setup.start().await;
    let producer: FutureProducer = common::client().create().unwrap();
    let events = format!(
        "sightline_events_consumed_total{{event_type=\"payment_captured\",topic=\"{topic}\"}}"
    );
    let dead = format!(
        "sightline_records_dead_lettered_total{{class=\"unknown_schema_id\",topic=\"{topic}\"}}"
    );

    for i in 0..50 {
        common::produce(&producer, &topic, "k", &payment(V1, id1, i)).await;
    }
    sl.wait_metric(&events, 50, Duration::from_secs(60)).await;

    // Freeze the registry; v2 records need a schema Sightline has not fetched yet.
    stack("pause-registry");
    let _thaw = Thaw;
    let frozen_at = Instant::now();
    for i in 50..100 {
        common::produce(&producer, &topic, "k", &payment(V2, id2, i)).await;
    }
    assert_eq!(
        readyz(&sl, 503).await,
        serde_json::json!({"ready": false, "assigned": true, "restored": true, "registry_reachable": false})
    );
    // The outage lasts 30 s (the length is the point of the test, not a wait for a result);
    // during it nothing moves and nothing is dead-lettered.
    tokio::time::sleep(Duration::from_secs(30).saturating_sub(frozen_at.elapsed())).await;
    assert_eq!(sl.metric(&events).await, 50);
    assert_eq!(sl.metric(&dead).await, 0);
    assert!(
        sl.metric("sightline_registry_errors_total{kind=\"unavailable\"}")
            .await
            > 0
    );

    stack("resume-registry");
    sl.wait_metric(&events, 100, Duration::from_secs(90)).await;
    assert_eq!(readyz(&sl, 200).await["ready"], true);
    assert!(common::read_topic(&format!("{topic}.dlq"), 1, Duration::from_secs(3)).is_empty());
    sl.stop().await;
}
