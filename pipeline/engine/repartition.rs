//! Re-keying: a source whose topic is not partitioned by the correlation key
//! (`repartition: true`) is read, decoded and mapped like any other (dead letters, drift,
//! freshness and age happen there), and its events are then written to the internal topic
//! `<group_id>.repartition.<source>`, keyed by the correlation key, inside the same transaction
//! as the input offsets. That topic has the workflow topics' partition count and is partitioned
//! with `kafka.partitioner`, so an event lands on the partition number its instance lives on;
//! the workflows read it from there, like a keyed source.
//!
//! **Time across the shuffle.** A repartition partition is fed by every partition of its source
//! topic, read at different speeds (and, scaled out, by different instances). Its clock is
//! therefore not the newest event time seen on it (one fast source partition would move the
//! clock of every instance on it past events still unread on the others) but the minimum over
//! its upstream source partitions, as Flink takes the minimum watermark over a shuffle's input
//! channels. Each upstream partition is an input of its own to the stream clock, named
//! [`upstream_input`] (`<repartition topic>@<source partition>`). Its clock travels with the
//! data: every re-keyed record carries its source partition's clock as the writer saw it after
//! the event, and the writer sends a [`Marks`] record to every repartition partition, about once
//! a second and in the same transaction as its offsets, so that an upstream partition with no
//! events for a repartition partition (or none at all) still moves it, or says it has nothing to
//! read. An upstream partition not heard from yet holds the clock like any other unread input.

use crate::ingest::{Coordinates, Event};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// A repartition topic's feed: the source topic re-keyed into it, and both partition counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Feed {
    pub source_topic: String,
    pub source_partitions: i32,
    /// The repartition topic's own (the workflows' partition count).
    pub partitions: i32,
}

/// The internal topic a re-keyed source's events go through.
pub fn topic(group_id: &str, source: &str) -> String {
    format!("{group_id}.repartition.{source}")
}

/// An event on a repartition topic: the mapped event with its original coordinates.
#[derive(Serialize, Deserialize)]
struct Rekeyed {
    source: String,
    event_type: String,
    key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    event_id: Option<String>,
    event_time_ms: i64,
    topic: String,
    partition: i32,
    offset: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    timestamp_ms: Option<i64>,
    #[serde(default)]
    dimensions: Vec<(String, String)>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    traceparent: Option<String>,
    /// The source partition's clock after this event, as the writer saw it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    upstream_clock: Option<i64>,
}

/// The input of the stream clock that stands for source partition `source_partition` as seen
/// through repartition topic `topic` (`@` is not a legal character of a topic name).
pub fn upstream_input(topic: &str, source_partition: i32) -> String {
    format!("{topic}@{source_partition}")
}

/// The clock of one upstream source partition, as a marker carries it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mark {
    pub partition: i32,
    /// The partition's clock; None: it has nothing to read (empty, or read to its end before
    /// it delivered anything), so it holds nothing back.
    pub clock: Option<i64>,
}

/// A watermark marker: the writer's clocks of the source partitions it owns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Marks {
    pub marks: Vec<Mark>,
}

const MARKS_PREFIX: &[u8] = b"{\"marks\":";

/// The record value of a marker.
pub fn encode_marks(marks: &Marks) -> Vec<u8> {
    let v = serde_json::to_vec(marks).expect("marks serialise");
    debug_assert!(v.starts_with(MARKS_PREFIX));
    v
}

/// What a repartition record carries.
#[derive(Debug, PartialEq)]
pub enum Record {
    /// A re-keyed event, with its source partition's clock (None from writers before clocks
    /// travelled: the event's own time stands in).
    Event(Event, Option<i64>),
    Marks(Marks),
}

/// The record value for `ev` (its key is `ev.key`), carrying its source partition's clock.
pub fn encode(ev: &Event, upstream_clock: i64) -> Vec<u8> {
    serde_json::to_vec(&Rekeyed {
        source: ev.source.to_string(),
        event_type: ev.event_type.clone(),
        key: ev.key.clone(),
        event_id: ev.event_id.clone(),
        event_time_ms: ev.event_time_ms,
        topic: ev.coordinates.topic.to_string(),
        partition: ev.coordinates.partition,
        offset: ev.coordinates.offset,
        timestamp_ms: ev.coordinates.timestamp_ms,
        dimensions: ev
            .dimensions
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect(),
        traceparent: ev.traceparent.clone(),
        upstream_clock: Some(upstream_clock),
    })
    .expect("events serialise")
}

/// What a repartition record carries. Only Sightline writes these topics, so a record that
/// does not decode means another writer: it is an error for the caller to report.
pub fn decode(value: &[u8]) -> Result<Record, String> {
    if value.starts_with(MARKS_PREFIX) {
        return serde_json::from_slice(value)
            .map(Record::Marks)
            .map_err(|e| e.to_string());
    }
    let r: Rekeyed = serde_json::from_slice(value).map_err(|e| e.to_string())?;
    let upstream = r.upstream_clock;
    let ev = Event {
        source: Arc::from(r.source),
        event_type: r.event_type,
        key: r.key,
        event_id: r.event_id,
        event_time_ms: r.event_time_ms,
        coordinates: Coordinates {
            topic: Arc::from(r.topic),
            partition: r.partition,
            offset: r.offset,
            timestamp_ms: r.timestamp_ms,
        },
        dimensions: r
            .dimensions
            .into_iter()
            .map(|(k, v)| (Arc::from(k), v))
            .collect(),
        traceparent: r.traceparent,
    };
    Ok(Record::Event(ev, upstream))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_round_trips_with_its_original_coordinates() {
        let ev = Event {
            source: Arc::from("returns"),
            event_type: "return_received".into(),
            key: "o-1".into(),
            event_id: Some("e-9".into()),
            event_time_ms: 1_700_000_000_000,
            coordinates: Coordinates {
                topic: Arc::from("wms.returns"),
                partition: 2,
                offset: 41,
                timestamp_ms: Some(1_700_000_000_500),
            },
            dimensions: vec![(Arc::from("site"), "ams".into())],
            traceparent: None,
        };
        assert_eq!(
            decode(&encode(&ev, 1_700_000_000_100)).unwrap(),
            Record::Event(ev, Some(1_700_000_000_100))
        );
        assert!(decode(b"{}").is_err());
        let marks = Marks {
            marks: vec![
                Mark {
                    partition: 0,
                    clock: Some(5),
                },
                Mark {
                    partition: 3,
                    clock: None,
                },
            ],
        };
        assert_eq!(decode(&encode_marks(&marks)).unwrap(), Record::Marks(marks));
        assert_eq!(
            upstream_input("g.repartition.payments", 7),
            "g.repartition.payments@7"
        );
    }
}
