//! A registry outage is not bad input: with the registry frozen for 30 s, records that need a
//! schema wait (their partition holds its position), /readyz says the registry is unreachable,
//! nothing is dead-lettered, and processing resumes when the registry answers again.
//!
//! Alone in its test binary: it freezes the shared registry (deploy/local/stack pause-registry).

mod common;

use apache_avro::types::Value as AvroValue;
use rdkafka::producer::{FutureProducer, FutureRecord};
use schema_registry_converter::async_impl::schema_registry::SrSettings;
use std::time::{Duration, Instant};

const V1: &str = r#"{"type":"record","name":"Pay","namespace":"o","fields":[{"name":"order_id","type":"string"},{"name":"at","type":"long"}]}"#;
const V2: &str = r#"{"type":"record","name":"Pay","namespace":"o","fields":[{"name":"order_id","type":"string"},{"name":"at","type":"long"},{"name":"note","type":["null","string"],"default":null}]}"#;

#[allow(deprecated)]
fn avro(schema: &str, id: u32, i: usize) -> Vec<u8> {
    let s = apache_avro::Schema::parse_str(schema).unwrap();
    let mut fields = vec![
        ("order_id".to_string(), AvroValue::String(format!("O-{i}"))),
        ("at".to_string(), AvroValue::Long(1_795_000_000_000)),
    ];
    if schema == V2 {
        fields.push((
            "note".into(),
            AvroValue::Union(0, Box::new(AvroValue::Null)),
        ));
    }
    let mut out = vec![0u8];
    out.extend_from_slice(&id.to_be_bytes());
    out.extend(apache_avro::to_avro_datum(&s, AvroValue::Record(fields)).unwrap());
    out
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

    let dir = std::env::temp_dir().join(common::unique("sightline-outage"));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("topology.yaml"),
        format!(
            "name: t\nsources:\n  - name: payments\n    topic: {topic}\n    format: avro\n    event_type: {{ fixed: payment_captured }}\n    \
             key: {{ field: order_id }}\n    event_time: {{ field: at }}\n"
        ),
    )
    .unwrap();
    let port = common::free_port();
    let out = common::unique("out");
    std::fs::write(
        dir.join("sightline.toml"),
        format!(
            "[kafka]\nbootstrap_servers = \"{}\"\ngroup_id = \"{}\"\ncommit_interval_ms = 200\n[kafka.topics]\npartitions = 1\nreplication_factor = 1\n\
             [registry]\nurl = \"{}\"\ntimeout_ms = 1000\n[http]\nbind = \"127.0.0.1:{port}\"\n[state]\ndir = \"state\"\n[outputs]\nalerts = \"{out}.alerts\"\n\
             sla = \"{out}.sla\"\ndrift = \"{out}.drift\"\nlag = \"{out}.lag\"\n[topologies]\npaths = [\"topology.yaml\"]\n",
            common::bootstrap(),
            common::unique("group"),
            common::registry_url(),
        ),
    )
    .unwrap();
    let sl = common::Sightline::start(
        &dir.join("sightline.toml"),
        &dir.join("sightline.log"),
        port,
    )
    .await;
    let producer: FutureProducer = common::client().create().unwrap();
    let events = format!(
        "sightline_events_consumed_total{{event_type=\"payment_captured\",topic=\"{topic}\"}}"
    );
    let dead = format!(
        "sightline_records_dead_lettered_total{{class=\"unknown_schema_id\",topic=\"{topic}\"}}"
    );

    for i in 0..50 {
        let v = avro(V1, id1, i);
        producer
            .send(
                FutureRecord::to(&topic).key("k").payload(&v),
                Duration::from_secs(10),
            )
            .await
            .unwrap();
    }
    common::wait_for("50 v1 records", Duration::from_secs(60), async || {
        (sl.metric(&events).await == 50).then_some(())
    })
    .await;

    // Freeze the registry; v2 records need a schema Sightline has not fetched yet.
    stack("pause-registry");
    let _thaw = Thaw;
    let frozen_at = Instant::now();
    for i in 50..100 {
        let v = avro(V2, id2, i);
        producer
            .send(
                FutureRecord::to(&topic).key("k").payload(&v),
                Duration::from_secs(10),
            )
            .await
            .unwrap();
    }
    let body = common::wait_for(
        "/readyz to report the registry down",
        Duration::from_secs(30),
        async || {
            common::http_get(&format!("{}/readyz", sl.http))
                .await
                .filter(|(c, _)| *c == 503)
                .map(|(_, b)| b)
        },
    )
    .await;
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&body).unwrap(),
        serde_json::json!({"ready": false, "assigned": true, "restored": true, "registry_reachable": false})
    );
    // The outage lasts 30 s; during it nothing moves and nothing is dead-lettered.
    tokio::time::sleep(Duration::from_secs(30).saturating_sub(frozen_at.elapsed())).await;
    assert_eq!(sl.metric(&events).await, 50);
    assert_eq!(sl.metric(&dead).await, 0);
    assert!(
        sl.metric("sightline_registry_errors_total{kind=\"unavailable\"}")
            .await
            > 0
    );

    stack("resume-registry");
    common::wait_for(
        "all 100 records after the outage",
        Duration::from_secs(90),
        async || (sl.metric(&events).await == 100).then_some(()),
    )
    .await;
    common::wait_for("/readyz ready again", Duration::from_secs(30), async || {
        common::http_get(&format!("{}/readyz", sl.http))
            .await
            .filter(|(c, _)| *c == 200)
    })
    .await;
    assert!(common::read_topic(&format!("{topic}.dlq"), 1, Duration::from_secs(3)).is_empty());
    sl.stop().await;
}
