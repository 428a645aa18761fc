//! The ground floor, end to end on the real stack: an Avro schema registered in Apicurio through
//! its Confluent-compatible API, a Confluent-framed record produced to Kafka, consumed through
//! Sightline's consumer plumbing and decoded through schema_registry_converter.

mod common;

use apache_avro::types::Value as AvroValue;
use rdkafka::consumer::Consumer;
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use schema_registry_converter::async_impl::avro::AvroDecoder;
use schema_registry_converter::async_impl::schema_registry::SrSettings;
use sightline::ingest::Decoder;
use sightline::observe::health::Health;
use sightline::topology::Format;
use std::sync::Arc;
use std::time::Duration;

const SCHEMA: &str = r#"{
  "type": "record", "name": "OrderConfirmed", "namespace": "com.example.shop",
  "fields": [
    {"name": "order_id", "type": "string"},
    {"name": "amount_cents", "type": "long"},
    {"name": "region", "type": {"type": "enum", "name": "Region", "symbols": ["EU", "US", "APAC"]}},
    {"name": "express", "type": "boolean"},
    {"name": "coupon", "type": ["null", "string"], "default": null}
  ]
}"#;

#[tokio::test]
#[allow(deprecated)] // to_avro_datum: the plainest way to write one Avro body
async fn avro_record_round_trips_through_registry_kafka_and_sightline_consumer() {
    common::require_kafka();
    common::require_registry();
    let topic = common::unique("roundtrip");
    common::create_topics(&[&topic], 1).await;

    let settings = SrSettings::new(common::registry_url());
    let subject = format!("{topic}-value");
    let id = sightline::registry::register_avro(&settings, &subject, SCHEMA)
        .await
        .expect("schema registered");

    // Confluent framing: magic byte 0, big-endian schema id, then the Avro binary body.
    let schema = apache_avro::Schema::parse_str(SCHEMA).unwrap();
    let record = AvroValue::Record(vec![
        ("order_id".into(), AvroValue::String("O-4711".into())),
        ("amount_cents".into(), AvroValue::Long(129_900)),
        ("region".into(), AvroValue::Enum(0, "EU".into())),
        ("express".into(), AvroValue::Boolean(true)),
        (
            "coupon".into(),
            AvroValue::Union(1, Box::new(AvroValue::String("WINTER".into()))),
        ),
    ]);
    let mut payload = vec![0u8];
    payload.extend_from_slice(&id.to_be_bytes());
    payload.extend(apache_avro::to_avro_datum(&schema, record).unwrap());

    let producer: FutureProducer = common::client().create().unwrap();
    producer
        .send(
            FutureRecord::to(&topic).key("O-4711").payload(&payload),
            Duration::from_secs(10),
        )
        .await
        .expect("produced");

    let health = Health::new();
    let consumer = sightline::kafka::create_consumer(
        &common::client(),
        &common::unique("g"),
        health.clone(),
        None,
        Default::default(),
    )
    .unwrap();
    consumer.subscribe(&[&topic]).unwrap();
    let msg = tokio::time::timeout(Duration::from_secs(30), consumer.recv())
        .await
        .expect("a record within 30 s")
        .expect("no consumer error");
    assert_eq!(msg.key(), Some(&b"O-4711"[..]));
    assert!(
        health.readiness().assigned,
        "the rebalance hook marks the consumer assigned"
    );

    let decoder = Decoder::new(
        Format::Avro,
        Some((Arc::new(AvroDecoder::new(settings)), health.clone())),
    )
    .unwrap();
    let doc = decoder.decode(msg.payload()).await.expect("decoded").doc;
    assert_eq!(
        doc,
        serde_json::json!({
            "order_id": "O-4711",
            "amount_cents": 129900,
            "region": "EU",
            "express": true,
            "coupon": "WINTER"
        })
    );
    assert!(health.readiness().registry_reachable);
}
