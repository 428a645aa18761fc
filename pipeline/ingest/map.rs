//! Fields to event: finds the type, key, id, time and dimensions a source declares. Field paths
//! are compiled once into slots of a [`Projection`]; the decoders read only those.

use super::project::{Fields, Projection, Scalar};
use super::{Coordinates, Event, RawRecord, Rejection};
use crate::deadletter::ErrorClass;
use crate::topology::{SourceSpec, TimeFormat, ValueFrom};
use serde_json::Value;
use std::sync::Arc;

pub struct Mapper {
    source: Arc<str>,
    topic: Arc<str>,
    event_type: Part,
    key: Part,
    event_id: Option<Part>,
    event_time: Option<(usize, String)>,
    time_format: TimeFormat,
    dimensions: Vec<(Arc<str>, usize)>,
    projection: Projection,
}

/// Where one part of the event comes from, field paths compiled to projection slots.
enum Part {
    Field(usize),
    Header(String),
    Fixed(String),
    KafkaKey,
}

fn header<'a>(rec: &RawRecord<'a>, name: &str) -> Option<&'a [u8]> {
    rec.headers
        .iter()
        .rev()
        .find(|(k, _)| *k == name)
        .and_then(|(_, v)| *v)
}

impl Mapper {
    pub fn new(spec: &SourceSpec) -> Self {
        let mut projection = Projection::new();
        let mut part = |from: &ValueFrom| match from {
            ValueFrom::Field(p) => Part::Field(projection.slot(p)),
            ValueFrom::Header(h) => Part::Header(h.clone()),
            ValueFrom::Fixed(v) => Part::Fixed(v.clone()),
            ValueFrom::KafkaKey => Part::KafkaKey,
        };
        let event_type = part(&spec.event_type);
        let key = part(&spec.key);
        let event_id = spec.event_id.as_ref().map(&mut part);
        let event_time = spec
            .event_time
            .field
            .as_ref()
            .map(|f| (projection.slot(f), f.clone()));
        let dimensions = spec
            .dimensions
            .iter()
            .map(|(k, v)| (Arc::from(k.as_str()), projection.slot(v)))
            .collect();
        Mapper {
            source: Arc::from(spec.name.as_str()),
            topic: Arc::from(spec.topic.as_str()),
            event_type,
            key,
            event_id,
            event_time,
            time_format: spec.event_time.format,
            dimensions,
            projection,
        }
    }

    /// The fields this mapping reads from a record.
    pub fn projection(&self) -> &Projection {
        &self.projection
    }

    fn find(part: &Part, fields: &Fields, rec: &RawRecord<'_>) -> Option<String> {
        match part {
            Part::Field(slot) => fields[*slot].as_ref().and_then(Scalar::text),
            Part::Header(h) => header(rec, h).map(|v| String::from_utf8_lossy(v).into_owned()),
            Part::Fixed(v) => Some(v.clone()),
            Part::KafkaKey => rec.key.map(|k| String::from_utf8_lossy(k).into_owned()),
        }
        .filter(|s| !s.is_empty())
    }

    fn describe(&self, part: &Part) -> String {
        match part {
            Part::Field(slot) => format!("field `{}`", self.projection.path(*slot)),
            Part::Header(h) => format!("header `{h}`"),
            Part::Fixed(_) => "a fixed value".into(),
            Part::KafkaKey => "the Kafka key".into(),
        }
    }

    /// Maps a decoded document (the generic path).
    pub fn map(&self, doc: &Value, rec: &RawRecord<'_>) -> Result<Event, Rejection> {
        self.map_fields(&self.projection.of_value(doc), rec)
    }

    /// Maps the fields read by this mapping's projection.
    pub fn map_fields(&self, fields: &Fields, rec: &RawRecord<'_>) -> Result<Event, Rejection> {
        let event_type = Self::find(&self.event_type, fields, rec).ok_or_else(|| {
            Rejection::bad(
                ErrorClass::MissingEventType,
                format!("no event type at {}", self.describe(&self.event_type)),
            )
        })?;
        let key = Self::find(&self.key, fields, rec).ok_or_else(|| {
            Rejection::bad(
                ErrorClass::MissingKey,
                format!("no correlation key at {}", self.describe(&self.key)),
            )
        })?;
        let event_id = self
            .event_id
            .as_ref()
            .and_then(|f| Self::find(f, fields, rec));
        let event_time_ms = self.event_time(fields, rec)?;
        let dimensions = self
            .dimensions
            .iter()
            .filter_map(|(label, slot)| {
                fields[*slot]
                    .as_ref()
                    .and_then(Scalar::text)
                    .map(|v| (label.clone(), v))
            })
            .collect();
        let traceparent =
            header(rec, "traceparent").map(|v| String::from_utf8_lossy(v).into_owned());
        Ok(Event {
            source: self.source.clone(),
            event_type,
            key,
            event_id,
            event_time_ms,
            coordinates: Coordinates {
                topic: if *self.topic == *rec.topic {
                    self.topic.clone()
                } else {
                    Arc::from(rec.topic)
                },
                partition: rec.partition,
                offset: rec.offset,
                timestamp_ms: rec.timestamp_ms,
            },
            dimensions,
            traceparent,
        })
    }

    fn event_time(&self, fields: &Fields, rec: &RawRecord<'_>) -> Result<i64, Rejection> {
        let Some((slot, field)) = &self.event_time else {
            return rec.timestamp_ms.ok_or_else(|| {
                Rejection::bad(
                    ErrorClass::MissingEventTime,
                    "the record has no Kafka timestamp",
                )
            });
        };
        let v = fields[*slot].as_ref().ok_or_else(|| {
            Rejection::bad(
                ErrorClass::MissingEventTime,
                format!("no event time at field `{field}`"),
            )
        })?;
        parse_time(v, self.time_format).ok_or_else(|| {
            Rejection::bad(
                ErrorClass::InvalidEventTime,
                format!(
                    "event time at field `{field}` is not {}: {}",
                    match self.time_format {
                        TimeFormat::Auto => "an RFC 3339 string or epoch milliseconds",
                        TimeFormat::Rfc3339 => "an RFC 3339 string",
                        TimeFormat::EpochMillis => "epoch milliseconds",
                        TimeFormat::EpochSeconds => "epoch seconds",
                    },
                    truncate(&v.shown(), 64)
                ),
            )
        })
    }
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        format!("{}…", s.chars().take(n).collect::<String>())
    }
}

/// Parses a read event time to epoch ms.
pub fn parse_time(v: &Scalar, format: TimeFormat) -> Option<i64> {
    let rfc3339 = |s: &str| {
        chrono::DateTime::parse_from_rfc3339(s)
            .ok()
            .map(|t| t.timestamp_millis())
    };
    match (format, v) {
        (TimeFormat::Auto | TimeFormat::Rfc3339, Scalar::Str(s)) => rfc3339(s),
        (TimeFormat::Auto | TimeFormat::EpochMillis, Scalar::Num(n)) => n.as_i64(),
        (TimeFormat::EpochSeconds, Scalar::Num(n)) => n.as_i64().and_then(|s| s.checked_mul(1000)),
        (TimeFormat::EpochMillis, Scalar::Str(s)) => s.parse().ok(),
        (TimeFormat::EpochSeconds, Scalar::Str(s)) => {
            s.parse::<i64>().ok().and_then(|s| s.checked_mul(1000))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topology::Format;
    use serde_json::json;

    fn spec() -> SourceSpec {
        serde_yaml::from_str(
            r#"
name: orders
topic: shop.orders
format: json
event_type: { field: type }
key: { field: order.id }
event_id: { field: event_id }
event_time: { field: occurred_at }
dimensions: { region: order.region, channel: channel }
"#,
        )
        .unwrap()
    }

    fn rec<'a>(headers: &'a [(&'a str, Option<&'a [u8]>)]) -> RawRecord<'a> {
        RawRecord {
            topic: "shop.orders",
            partition: 3,
            offset: 42,
            timestamp_ms: Some(1_700_000_000_500),
            key: Some(b"k"),
            value: None,
            headers,
        }
    }

    #[test]
    fn maps_every_part_of_an_event() {
        let s = spec();
        assert_eq!(s.format, Format::Json);
        let m = Mapper::new(&s);
        let doc = json!({"type": "order_confirmed", "event_id": "e-1",
            "occurred_at": "2026-11-23T10:00:00Z", "order": {"id": 4711, "region": "eu"}});
        let tp: &[u8] = b"00-abc-def-01";
        let headers = [("traceparent", Some(tp))];
        let e = m.map(&doc, &rec(&headers)).unwrap();
        assert_eq!(e.event_type, "order_confirmed");
        assert_eq!(e.key, "4711");
        assert_eq!(e.event_id.as_deref(), Some("e-1"));
        assert_eq!(e.event_time_ms, 1_795_428_000_000);
        assert_eq!(e.dimensions, vec![(Arc::from("region"), "eu".to_string())]);
        assert_eq!(e.traceparent.as_deref(), Some("00-abc-def-01"));
        assert_eq!(e.coordinates.partition, 3);
        assert_eq!(e.coordinates.offset, 42);
    }

    #[test]
    fn names_the_class_of_each_mapping_failure() {
        let m = Mapper::new(&spec());
        let class = |doc: Value| match m.map(&doc, &rec(&[])) {
            Err(Rejection::Bad { class, .. }) => class,
            other => panic!("expected a bad record, got {other:?}"),
        };
        assert_eq!(
            class(json!({"order": {"id": 1}, "occurred_at": 5})),
            ErrorClass::MissingEventType
        );
        assert_eq!(
            class(json!({"type": "x", "occurred_at": 5})),
            ErrorClass::MissingKey
        );
        assert_eq!(
            class(json!({"type": "x", "order": {"id": 1}})),
            ErrorClass::MissingEventTime
        );
        assert_eq!(
            class(json!({"type": "x", "order": {"id": 1}, "occurred_at": "yesterday"})),
            ErrorClass::InvalidEventTime
        );
    }
}
