//! From Kafka record to business event: [`decode`] turns bytes into a document (JSON, or
//! Confluent-framed Avro through the registry), [`map`] finds the event type, key, id, time and
//! dimensions in it, and [`event::Event`] is the one normalised event every detector sees.
//!
//! Failures come back as a [`Rejection`]: `Bad` records go to the dead-letter topic, `Transient`
//! ones (registry down) are retried in place and never dead-lettered.

pub mod avro_len;
pub mod avro_project;
pub mod bounds;
pub mod decode;
pub mod event;
pub mod map;
pub mod project;

pub use decode::{Decoded, Decoder, Read};
pub use event::{Coordinates, Event};
pub use map::Mapper;

use crate::deadletter::ErrorClass;

/// Why a record did not become an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejection {
    /// The record itself is bad: dead-letter it.
    Bad { class: ErrorClass, message: String },
    /// Something outside the record failed (the registry): retry, keep the position.
    /// `status`: what the registry answered, for counting retries (`timeout`, `connect`,
    /// `http_500`, `http_429`, ...).
    Transient { message: String, status: String },
}

impl Rejection {
    pub fn bad(class: ErrorClass, message: impl Into<String>) -> Self {
        Rejection::Bad {
            class,
            message: message.into(),
        }
    }
}

/// A raw input record, borrowed from whatever holds it (an rdkafka message, a test vector).
#[derive(Debug, Clone, Copy)]
pub struct RawRecord<'a> {
    pub topic: &'a str,
    pub partition: i32,
    pub offset: i64,
    pub timestamp_ms: Option<i64>,
    pub key: Option<&'a [u8]>,
    pub value: Option<&'a [u8]>,
    pub headers: &'a [(&'a str, Option<&'a [u8]>)],
}

/// A consumed message's headers, borrowed, in order.
pub fn borrowed_headers<'a>(
    msg: &'a rdkafka::message::BorrowedMessage<'a>,
) -> Vec<(&'a str, Option<&'a [u8]>)> {
    use rdkafka::message::{Headers, Message};
    msg.headers()
        .map(|h| h.iter().map(|h| (h.key, h.value)).collect())
        .unwrap_or_default()
}

impl<'a> RawRecord<'a> {
    /// The record a consumed message is, with its headers (from [`borrowed_headers`]).
    pub fn of(
        msg: &'a rdkafka::message::BorrowedMessage<'a>,
        headers: &'a [(&'a str, Option<&'a [u8]>)],
    ) -> RawRecord<'a> {
        use rdkafka::message::Message;
        RawRecord {
            topic: msg.topic(),
            partition: msg.partition(),
            offset: msg.offset(),
            timestamp_ms: msg.timestamp().to_millis(),
            key: msg.key(),
            value: msg.payload(),
            headers,
        }
    }
}

/// Decoding, contract and mapping for one source.
pub struct SourceIngest {
    pub name: String,
    pub decoder: Decoder,
    pub mapper: Mapper,
    /// The source's own dead-letter topic, or None: `<input topic><suffix>`.
    pub dead_letter_topic: Option<String>,
    pub dead_letter_suffix: String,
    pub contract: Option<crate::contracts::Contract>,
    /// Re-key this source's events into this internal topic instead of handing them to the
    /// workflows directly (`repartition: true`).
    pub repartition_topic: Option<String>,
}

impl SourceIngest {
    /// Reads the fields this source maps from a record; the whole document too when a JSON
    /// contract checks every field.
    pub async fn read(&self, rec: &RawRecord<'_>) -> Result<Read, Rejection> {
        let whole = self.contract.is_some() && matches!(self.decoder, Decoder::Json);
        self.decoder
            .read(rec.value, self.mapper.projection(), whole)
            .await
    }

    /// Where a bad record read from `topic` goes.
    pub fn dead_letter_topic(&self, topic: &str) -> String {
        self.dead_letter_topic
            .clone()
            .unwrap_or_else(|| format!("{topic}{}", self.dead_letter_suffix))
    }
}

#[cfg(test)]
mod fuzz {
    //! Decoders and mappers over arbitrary bytes: they may reject, never panic.
    use super::*;
    use crate::topology::SourceSpec;
    use proptest::prelude::*;

    fn mapper() -> Mapper {
        let spec: SourceSpec = serde_yaml::from_str(
            "name: s\ntopic: t\nformat: json\nevent_type: { field: type }\nkey: { field: order.id }\n\
             event_id: { field: id }\nevent_time: { field: at }\ndimensions: { carrier: carrier }\n",
        )
        .unwrap();
        Mapper::new(&spec)
    }

    fn class(r: Rejection) -> String {
        match r {
            Rejection::Bad { class, .. } => class.as_str().to_string(),
            Rejection::Transient { status, .. } => status,
        }
    }

    fn rec<'a>(value: &'a [u8]) -> RawRecord<'a> {
        RawRecord {
            topic: "t",
            partition: 0,
            offset: 0,
            timestamp_ms: None,
            key: None,
            value: Some(value),
            headers: &[],
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn json_decode_and_map_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            if let Ok(doc) = decode::decode_json(&bytes) {
                let _ = mapper().map(&doc, &rec(&bytes));
            }
            let _ = decode::schema_id(&bytes);
        }

        /// The projection and the document give the same event, or the same class of
        /// rejection, on any bytes the document reads as JSON.
        #[test]
        fn projection_and_document_map_alike_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let m = mapper();
            let r = rec(&bytes);
            let projected = match m.projection().json(&bytes) {
                Ok(Some(fields)) => Some(m.map_fields(&fields, &r)),
                _ => None,
            };
            if let Ok(doc) = decode::decode_json(&bytes) {
                let generic = m.map(&doc, &r);
                prop_assert_eq!(projected.map(|p| p.map_err(class)), Some(generic.map_err(class)));
            }
        }

        #[test]
        fn projection_and_document_map_alike_on_event_shapes(
            ty in proptest::option::of(prop_oneof!["[a-z_]{0,12}".prop_map(|s| serde_json::json!(s)), any::<i64>().prop_map(|n| serde_json::json!(n)), Just(serde_json::json!({"x": 1}))]),
            id in proptest::option::of(prop_oneof![any::<i64>().prop_map(|n| serde_json::json!(n)), "[A-Z0-9-]{0,10}".prop_map(|s| serde_json::json!(s)), Just(serde_json::json!([1]))]),
            at in proptest::option::of(prop_oneof![any::<i64>().prop_map(|n| serde_json::json!(n)), (-1e15f64..1e15).prop_map(|f| serde_json::json!(f)), Just(serde_json::json!("2026-11-23T10:00:00.123Z")), ".{0,40}".prop_map(|s| serde_json::json!(s))]),
            carrier in proptest::option::of(prop_oneof!["[a-z]{0,5}".prop_map(|s| serde_json::json!(s)), any::<bool>().prop_map(|b| serde_json::json!(b)), Just(serde_json::json!(null))]),
            noise in proptest::collection::vec(("[a-z]{1,6}", any::<i64>()), 0..4),
        ) {
            let mut doc = serde_json::json!({"type": ty, "order": {"id": id, "lines": [1, 2]}, "at": at, "carrier": carrier});
            for (k, v) in noise {
                doc.as_object_mut().unwrap().insert(format!("_{k}"), serde_json::json!(v));
            }
            let bytes = serde_json::to_vec(&doc).unwrap();
            let m = mapper();
            let r = rec(&bytes);
            let fields = m.projection().json(&bytes).unwrap().unwrap();
            // The document as parsed from the same bytes (serde_json reads floats back to the
            // nearest, not always the written, value: both paths read them alike).
            let parsed = decode::decode_json(&bytes).unwrap();
            prop_assert_eq!(m.map_fields(&fields, &r), m.map(&parsed, &r));
        }

        #[test]
        fn mapping_arbitrary_json_never_panics(
            ty in proptest::option::of("[a-z_]{0,12}"),
            id in proptest::option::of(any::<i64>()),
            at in proptest::option::of(prop_oneof![any::<i64>().prop_map(|n| serde_json::json!(n)), ".{0,40}".prop_map(|s| serde_json::json!(s))]),
        ) {
            let doc = serde_json::json!({"type": ty, "order": {"id": id}, "at": at, "carrier": ["x"]});
            let _ = mapper().map(&doc, &rec(b""));
        }

        #[test]
        fn avro_body_decoding_never_panics(body in proptest::collection::vec(any::<u8>(), 0..128)) {
            let schema = apache_avro::Schema::parse_str(
                r#"{"type":"record","name":"R","fields":[{"name":"a","type":"string"},{"name":"b","type":["null","long"]},
                   {"name":"c","type":{"type":"array","items":"double"}}]}"#,
            ).unwrap();
            #[allow(deprecated)]
            let _ = apache_avro::from_avro_datum(&schema, &mut body.as_slice(), None);
        }
    }
}
