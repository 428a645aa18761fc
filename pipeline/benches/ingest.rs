//! Decode-and-map throughput, records/s, for JSON and for Confluent-framed Avro with schemas from
//! the real registry (deploy/local/stack start). Single-threaded, in-process: this is the cost of
//! ingest itself, without Kafka. Each format runs twice: by projection (the engine's path: only
//! the mapped fields are read) and through the whole document (the generic path). The records
//! carry two fields no mapping names (order lines and a note), as real events do.
//!
//!     cargo bench --bench ingest                 # 200k records each
//!     SIGHTLINE_BENCH_RECORDS=1000000 cargo bench --bench ingest

use apache_avro::types::Value as AvroValue;
use schema_registry_converter::async_impl::avro::AvroDecoder;
use schema_registry_converter::async_impl::schema_registry::SrSettings;
use sightline::ingest::{Decoder, Mapper, RawRecord};
use sightline::observe::health::Health;
use sightline::topology::{Format, SourceSpec};
use std::sync::Arc;
use std::time::Instant;

const SCHEMA: &str = r#"{"type":"record","name":"ShipmentDispatched","namespace":"bench","fields":[
  {"name":"type","type":"string"},{"name":"event_id","type":"string"},{"name":"order_id","type":"string"},
  {"name":"occurred_at","type":"long"},{"name":"carrier","type":"string"},{"name":"warehouse","type":"string"},
  {"name":"lines","type":{"type":"array","items":{"type":"record","name":"Line","fields":[
     {"name":"sku","type":"string"},{"name":"qty","type":"int"},{"name":"price","type":"double"}]}}},
  {"name":"note","type":["null","string"],"default":null}]}"#;

fn spec(format: &str) -> SourceSpec {
    serde_yaml::from_str(&format!(
        "name: s\ntopic: t\nformat: {format}\nevent_type: {{ field: type }}\nkey: {{ field: order_id }}\n\
         event_id: {{ field: event_id }}\nevent_time: {{ field: occurred_at }}\ndimensions: {{ carrier: carrier, warehouse: warehouse }}\n"
    ))
    .unwrap()
}

async fn one(by_projection: bool, decoder: &Decoder, mapper: &Mapper, rec: &RawRecord<'_>) -> bool {
    if by_projection {
        let d = decoder
            .read(rec.value, mapper.projection(), false)
            .await
            .expect("decodes");
        mapper.map_fields(&d.fields, rec).is_ok()
    } else {
        let d = decoder.decode(rec.value).await.expect("decodes");
        mapper.map(&d.doc, rec).is_ok()
    }
}

async fn run(
    name: &str,
    by_projection: bool,
    decoder: &Decoder,
    mapper: &Mapper,
    records: &[Vec<u8>],
) {
    // Warm up (the first Avro record fetches its schema from the registry).
    for r in records.iter().take(1000) {
        let rec = RawRecord {
            topic: "t",
            partition: 0,
            offset: 0,
            timestamp_ms: None,
            key: None,
            value: Some(r),
            headers: &[],
        };
        assert!(one(by_projection, decoder, mapper, &rec).await, "maps");
    }
    let start = Instant::now();
    let mut ok = 0usize;
    for (i, r) in records.iter().enumerate() {
        let rec = RawRecord {
            topic: "t",
            partition: 0,
            offset: i as i64,
            timestamp_ms: None,
            key: None,
            value: Some(r),
            headers: &[],
        };
        ok += one(by_projection, decoder, mapper, &rec).await as usize;
    }
    let secs = start.elapsed().as_secs_f64();
    assert_eq!(ok, records.len());
    println!(
        "{name:<32} {:>9} records  {:>8.3} s  {:>10.0} records/s  {:>6.2} µs/record",
        records.len(),
        secs,
        records.len() as f64 / secs,
        secs * 1e6 / records.len() as f64
    );
}

#[allow(deprecated)]
fn main() {
    let n: usize = std::env::var("SIGHTLINE_BENCH_RECORDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000);
    let registry = std::env::var("SIGHTLINE_TEST_REGISTRY")
        .unwrap_or_else(|_| "http://127.0.0.1:8081/apis/ccompat/v7".into());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        println!("ingest benchmark: decode + map, one thread, {n} records per format");
        let json: Vec<Vec<u8>> = (0..n)
            .map(|i| {
                format!(
                    r#"{{"type":"shipment_dispatched","event_id":"e-{i}","order_id":"O-{i:08}","occurred_at":"2026-11-23T10:00:00.{:03}Z","carrier":"dhl","warehouse":"ams1","lines":[{{"sku":"SKU-1","qty":2,"price":9.95}},{{"sku":"SKU-22","qty":1,"price":120.0}}],"note":"leave at the door"}}"#,
                    i % 1000
                )
                .into_bytes()
            })
            .collect();
        let json_mapper = Mapper::new(&spec("json"));
        run("json, by projection", true, &Decoder::Json, &json_mapper, &json).await;
        run("json, whole document", false, &Decoder::Json, &json_mapper, &json).await;

        let settings = SrSettings::new(registry.clone());
        let id = match sightline::registry::register_avro(&settings, "sightline-bench-ingest-value", SCHEMA).await {
            Ok(id) => id,
            Err(e) => {
                eprintln!("the Avro half needs the registry at {registry}: {e:#}. Start it: deploy/local/stack start");
                std::process::exit(1);
            }
        };
        let schema = apache_avro::Schema::parse_str(SCHEMA).unwrap();
        let avro: Vec<Vec<u8>> = (0..n)
            .map(|i| {
                let v = AvroValue::Record(vec![
                    ("type".into(), AvroValue::String("shipment_dispatched".into())),
                    ("event_id".into(), AvroValue::String(format!("e-{i}"))),
                    ("order_id".into(), AvroValue::String(format!("O-{i:08}"))),
                    ("occurred_at".into(), AvroValue::Long(1_795_000_000_000 + i as i64)),
                    ("carrier".into(), AvroValue::String("dhl".into())),
                    ("warehouse".into(), AvroValue::String("ams1".into())),
                    ("lines".into(), AvroValue::Array(vec![
                        AvroValue::Record(vec![("sku".into(), AvroValue::String("SKU-1".into())), ("qty".into(), AvroValue::Int(2)), ("price".into(), AvroValue::Double(9.95))]),
                        AvroValue::Record(vec![("sku".into(), AvroValue::String("SKU-22".into())), ("qty".into(), AvroValue::Int(1)), ("price".into(), AvroValue::Double(120.0))]),
                    ])),
                    ("note".into(), AvroValue::Union(1, Box::new(AvroValue::String("leave at the door".into())))),
                ]);
                let mut out = vec![0u8];
                out.extend_from_slice(&id.to_be_bytes());
                out.extend(apache_avro::to_avro_datum(&schema, v).unwrap());
                out
            })
            .collect();
        let decoder = Decoder::new(Format::Avro, Some((Arc::new(AvroDecoder::new(settings)), Health::new()))).unwrap();
        let avro_mapper = Mapper::new(&spec("avro"));
        run("avro (registry), by projection", true, &decoder, &avro_mapper, &avro).await;
        run("avro (registry), whole document", false, &decoder, &avro_mapper, &avro).await;
    });
}
