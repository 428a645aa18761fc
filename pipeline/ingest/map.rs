//! Document to event: finds the type, key, id, time and dimensions a source declares.

use super::{Coordinates, Event, RawRecord, Rejection};
use crate::deadletter::ErrorClass;
use crate::topology::{SourceSpec, TimeFormat, TimeSpec, ValueFrom};
use serde_json::Value;
use std::sync::Arc;

pub struct Mapper {
    source: Arc<str>,
    topic: Arc<str>,
    event_type: ValueFrom,
    key: ValueFrom,
    event_id: Option<ValueFrom>,
    event_time: TimeSpec,
    dimensions: Vec<(Arc<str>, Vec<String>)>,
}

fn path(p: &str) -> Vec<String> {
    p.split('.').map(str::to_string).collect()
}

fn lookup<'v>(doc: &'v Value, path: &[String]) -> Option<&'v Value> {
    let mut cur = doc;
    for part in path {
        cur = cur.as_object()?.get(part)?;
    }
    match cur {
        Value::Null => None,
        v => Some(v),
    }
}

fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
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
        Mapper {
            source: Arc::from(spec.name.as_str()),
            topic: Arc::from(spec.topic.as_str()),
            event_type: spec.event_type.clone(),
            key: spec.key.clone(),
            event_id: spec.event_id.clone(),
            event_time: spec.event_time.clone(),
            dimensions: spec
                .dimensions
                .iter()
                .map(|(k, v)| (Arc::from(k.as_str()), path(v)))
                .collect(),
        }
    }

    fn find(&self, from: &ValueFrom, doc: &Value, rec: &RawRecord<'_>) -> Option<String> {
        match from {
            ValueFrom::Field(p) => lookup(doc, &path(p)).and_then(scalar),
            ValueFrom::Header(h) => header(rec, h).map(|v| String::from_utf8_lossy(v).into_owned()),
            ValueFrom::Fixed(v) => Some(v.clone()),
            ValueFrom::KafkaKey => rec.key.map(|k| String::from_utf8_lossy(k).into_owned()),
        }
        .filter(|s| !s.is_empty())
    }

    pub fn map(&self, doc: &Value, rec: &RawRecord<'_>) -> Result<Event, Rejection> {
        let event_type = self.find(&self.event_type, doc, rec).ok_or_else(|| {
            Rejection::bad(
                ErrorClass::MissingEventType,
                format!("no event type at {}", describe(&self.event_type)),
            )
        })?;
        let key = self.find(&self.key, doc, rec).ok_or_else(|| {
            Rejection::bad(
                ErrorClass::MissingKey,
                format!("no correlation key at {}", describe(&self.key)),
            )
        })?;
        let event_id = self.event_id.as_ref().and_then(|f| self.find(f, doc, rec));
        let event_time_ms = self.event_time(doc, rec)?;
        let dimensions = self
            .dimensions
            .iter()
            .filter_map(|(label, p)| lookup(doc, p).and_then(scalar).map(|v| (label.clone(), v)))
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

    fn event_time(&self, doc: &Value, rec: &RawRecord<'_>) -> Result<i64, Rejection> {
        let Some(field) = &self.event_time.field else {
            return rec.timestamp_ms.ok_or_else(|| {
                Rejection::bad(
                    ErrorClass::MissingEventTime,
                    "the record has no Kafka timestamp",
                )
            });
        };
        let v = lookup(doc, &path(field)).ok_or_else(|| {
            Rejection::bad(
                ErrorClass::MissingEventTime,
                format!("no event time at field `{field}`"),
            )
        })?;
        parse_time(v, self.event_time.format).ok_or_else(|| {
            Rejection::bad(
                ErrorClass::InvalidEventTime,
                format!(
                    "event time at field `{field}` is not {}: {}",
                    match self.event_time.format {
                        TimeFormat::Auto => "an RFC 3339 string or epoch milliseconds",
                        TimeFormat::Rfc3339 => "an RFC 3339 string",
                        TimeFormat::EpochMillis => "epoch milliseconds",
                        TimeFormat::EpochSeconds => "epoch seconds",
                    },
                    truncate(&v.to_string(), 64)
                ),
            )
        })
    }
}

fn describe(from: &ValueFrom) -> String {
    match from {
        ValueFrom::Field(p) => format!("field `{p}`"),
        ValueFrom::Header(h) => format!("header `{h}`"),
        ValueFrom::Fixed(_) => "a fixed value".into(),
        ValueFrom::KafkaKey => "the Kafka key".into(),
    }
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        format!("{}…", s.chars().take(n).collect::<String>())
    }
}

/// Parses an event time to epoch ms.
pub fn parse_time(v: &Value, format: TimeFormat) -> Option<i64> {
    let rfc3339 = |s: &str| {
        chrono::DateTime::parse_from_rfc3339(s)
            .ok()
            .map(|t| t.timestamp_millis())
    };
    match (format, v) {
        (TimeFormat::Auto | TimeFormat::Rfc3339, Value::String(s)) => rfc3339(s),
        (TimeFormat::Auto | TimeFormat::EpochMillis, Value::Number(n)) => n.as_i64(),
        (TimeFormat::EpochSeconds, Value::Number(n)) => {
            n.as_i64().and_then(|s| s.checked_mul(1000))
        }
        (TimeFormat::EpochMillis, Value::String(s)) => s.parse().ok(),
        (TimeFormat::EpochSeconds, Value::String(s)) => {
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
