//! Ingest on the real broker and registry: 10k records with 1% garbage of every kind, and a
//! producer moving from v1 (the contract) to v2 (compatible) to v3 (incompatible) mid-stream.
//! Every good record is processed, every bad one is dead-lettered with its class and original
//! coordinates, exactly two drift events and one alert come out, and a restart repeats nothing.

mod common;

use apache_avro::types::Value as AvroValue;
use rdkafka::producer::{FutureProducer, FutureRecord};
use schema_registry_converter::async_impl::avro::AvroDecoder;
use schema_registry_converter::async_impl::schema_registry::SrSettings;
use std::collections::BTreeMap;
use std::time::Duration;

const V1: &str = r#"{"type":"record","name":"OrderConfirmed","namespace":"t","fields":[
  {"name":"order_id","type":"string"},{"name":"occurred_at","type":"long"},{"name":"amount","type":"double"}]}"#;
const V2: &str = r#"{"type":"record","name":"OrderConfirmed","namespace":"t","fields":[
  {"name":"order_id","type":"string"},{"name":"occurred_at","type":"long"},{"name":"amount","type":"double"},
  {"name":"coupon","type":["null","string"],"default":null}]}"#;
const V3: &str = r#"{"type":"record","name":"OrderConfirmed","namespace":"t","fields":[
  {"name":"order_id","type":"string"},{"name":"occurred_at","type":"long"},{"name":"amount","type":"string"}]}"#;

fn avro(schema: &str, id: u32, version: u8, i: usize) -> Vec<u8> {
    let mut fields = vec![
        ("order_id", AvroValue::String(format!("O-{i}"))),
        ("occurred_at", AvroValue::Long(1_795_000_000_000 + i as i64)),
    ];
    match version {
        1 => fields.push(("amount", AvroValue::Double(10.5))),
        2 => {
            fields.push(("amount", AvroValue::Double(10.5)));
            fields.push(("coupon", AvroValue::Union(0, Box::new(AvroValue::Null))));
        }
        _ => fields.push(("amount", AvroValue::String("10.50".into()))),
    }
    common::confluent_avro(schema, id, fields)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_is_dead_lettered_and_schema_changes_give_exactly_two_drift_events() {
    common::require_kafka();
    common::require_registry();
    let avro_topic = common::unique("orders-avro");
    let json_topic = common::unique("orders-json");
    common::create_topics(&[&avro_topic, &json_topic], 3).await;
    let settings = SrSettings::new(common::registry_url());
    let subject = format!("{avro_topic}-value");
    let id1 = sightline::registry::register_avro(&settings, &subject, V1)
        .await
        .unwrap();
    let id2 = sightline::registry::register_avro(&settings, &subject, V2)
        .await
        .unwrap();
    let id3 = sightline::registry::register_avro(&settings, &subject, V3)
        .await
        .unwrap();
    assert!(id1 != id2 && id2 != id3);

    let setup = common::Setup::new(
        &format!(
            "  - name: avro-orders\n    topic: {avro_topic}\n    format: avro\n    contract: order.avsc\n    \
             event_type: {{ fixed: order_confirmed }}\n    key: {{ field: order_id }}\n    event_time: {{ field: occurred_at }}\n  \
             - name: json-orders\n    topic: {json_topic}\n    format: json\n    event_type: {{ fixed: order_confirmed }}\n    \
             key: {{ field: order_id }}\n    event_time: {{ field: occurred_at }}\n"
        ),
        Some(5000),
        &[("order.avsc", V1)],
    );
    let out = setup.out.clone();
    let sl = setup.start().await;

    // 10k records: 9,900 good (v1, then v2, then v3 on the Avro topic; JSON beside), 100 bad.
    let producer: FutureProducer = common::client().set("linger.ms", "5").create().unwrap();
    let mut expected_bad: BTreeMap<(String, i32, i64), String> = BTreeMap::new();
    let mut good = BTreeMap::<String, u64>::new();
    let mut sends = Vec::new();
    for i in 0..10_000usize {
        let (topic, value, class): (&str, Vec<u8>, Option<&str>) = if i % 100 == 50 {
            match (i / 100) % 6 {
                0 => (
                    &avro_topic,
                    (0..32).map(|b| (b * 37 + i) as u8 | 0x80).collect(),
                    Some("bad_magic_byte"),
                ),
                1 => (
                    &avro_topic,
                    [&[1u8, 0, 0, 0, 1][..], &avro(V1, id1, 1, i)[5..]].concat(),
                    Some("bad_magic_byte"),
                ),
                2 => (
                    &avro_topic,
                    avro(V1, 999_999, 1, i),
                    Some("unknown_schema_id"),
                ),
                3 => {
                    let full = avro(V1, id1, 1, i);
                    (
                        &avro_topic,
                        full[..full.len() - 9].to_vec(),
                        Some("avro_decode_failed"),
                    )
                }
                4 => (
                    &json_topic,
                    br#"{"occurred_at": 1795000000000}"#.to_vec(),
                    Some("missing_key"),
                ),
                _ => (
                    &json_topic,
                    br#"{"order_id": "O-1", "occurred_at": "soon"}"#.to_vec(),
                    Some("invalid_event_time"),
                ),
            }
        } else if i % 2 == 0 {
            (
                &json_topic,
                format!(r#"{{"order_id":"O-{i}","occurred_at":1795000000000}}"#).into_bytes(),
                None,
            )
        } else {
            let (schema, id, v) = if i < 3_300 {
                (V1, id1, 1)
            } else if i < 6_600 {
                (V2, id2, 2)
            } else {
                (V3, id3, 3)
            };
            (&avro_topic, avro(schema, id, v, i), None)
        };
        let topic = topic.to_string();
        let key = format!("k{i}");
        let fut = producer
            .send_result(FutureRecord::to(&topic).key(&key).payload(&value))
            .unwrap();
        sends.push((topic, class.map(str::to_string), fut));
        if sends.len() >= 500 || i == 9_999 {
            for (topic, class, fut) in sends.drain(..) {
                let d = fut.await.unwrap().unwrap();
                match class {
                    Some(c) => {
                        expected_bad.insert((topic, d.partition, d.offset), c);
                    }
                    None => *good.entry(topic).or_default() += 1,
                }
            }
        }
    }
    assert_eq!(expected_bad.len(), 100);
    assert_eq!(good.values().sum::<u64>(), 9_900);

    // Every good record processed.
    for (topic, n) in &good {
        let sample = format!(
            "sightline_events_consumed_total{{event_type=\"order_confirmed\",topic=\"{topic}\"}}"
        );
        sl.wait_metric(&sample, *n, Duration::from_secs(120)).await;
    }
    // Every bad one dead-lettered, with its class and original coordinates.
    let mut got_bad = BTreeMap::new();
    for topic in [&avro_topic, &json_topic] {
        let n = expected_bad.keys().filter(|(t, _, _)| t == topic).count();
        for r in common::read_topic(&format!("{topic}.dlq"), n, Duration::from_secs(60)) {
            got_bad.insert(
                (
                    r.header("sightline.original.topic").unwrap().to_string(),
                    r.header("sightline.original.partition")
                        .unwrap()
                        .parse::<i32>()
                        .unwrap(),
                    r.header("sightline.original.offset")
                        .unwrap()
                        .parse::<i64>()
                        .unwrap(),
                ),
                r.header("sightline.error.class").unwrap().to_string(),
            );
        }
    }
    assert_eq!(got_bad, expected_bad);

    // Exactly two drift events (v2 compatible, v3 incompatible) and one alert.
    let decoder = AvroDecoder::new(SrSettings::new(common::registry_url()));
    let decode = async |bytes: &[u8]| {
        serde_json::Value::try_from(decoder.decode(Some(bytes)).await.unwrap().value).unwrap()
    };
    let drift = common::read_topic(&format!("{out}.drift"), 2, Duration::from_secs(30));
    let mut drift_docs = Vec::new();
    for r in &drift {
        drift_docs.push(decode(r.value.as_deref().unwrap()).await);
    }
    let summary: Vec<(String, String, Option<i64>, String)> = drift_docs
        .iter()
        .map(|d| {
            (
                d["drift_id"].as_str().unwrap().to_string(),
                d["verdict"].as_str().unwrap().to_string(),
                d["previous_schema_id"].as_i64(),
                d["diff_vs_previous"].to_string(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            (format!("avro:{avro_topic}:{id2}"), "COMPATIBLE".into(), Some(id1 as i64),
             r#"[{"after":"[null,string]","before":null,"change":"ADDED","path":"coupon"}]"#.into()),
            (format!("avro:{avro_topic}:{id3}"), "INCOMPATIBLE".into(), Some(id2 as i64),
             r#"[{"after":"string","before":"double","change":"TYPE_CHANGED","path":"amount"},{"after":null,"before":"[null,string]","change":"REMOVED","path":"coupon"}]"#.into()),
        ]
    );
    assert_eq!(
        drift_docs[1]["diff_vs_contract"].to_string(),
        r#"[{"after":"string","before":"double","change":"TYPE_CHANGED","path":"amount"}]"#
    );
    assert!(!drift_docs[1]["compatibility_errors"]
        .as_array()
        .unwrap()
        .is_empty());
    let alerts = common::read_topic(&format!("{out}.alerts"), 1, Duration::from_secs(30));
    assert_eq!(alerts.len(), 1);
    let alert = decode(alerts[0].value.as_deref().unwrap()).await;
    assert_eq!(
        alert["dedupe_id"],
        format!("schema/avro:{avro_topic}:{id3}")
    );
    assert_eq!(alert["status"], "FIRING");

    // Restart: known schemas are not announced again.
    sl.stop().await;
    let sl = setup.start().await;
    for (i, (schema, id, v)) in [(V1, id1, 1), (V2, id2, 2), (V3, id3, 3)]
        .into_iter()
        .enumerate()
    {
        common::produce(
            &producer,
            &avro_topic,
            "again",
            &avro(schema, id, v, 20_000 + i),
        )
        .await;
    }
    let sample = format!(
        "sightline_events_consumed_total{{event_type=\"order_confirmed\",topic=\"{avro_topic}\"}}"
    );
    sl.wait_metric(&sample, 3, Duration::from_secs(60)).await;
    assert_eq!(
        common::read_topic(&format!("{out}.drift"), 3, Duration::from_secs(5)).len(),
        2
    );
    assert_eq!(
        common::read_topic(&format!("{out}.alerts"), 2, Duration::from_secs(3)).len(),
        1
    );
    sl.stop().await;
}
