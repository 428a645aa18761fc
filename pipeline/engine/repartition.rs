//! Re-keying: a source whose topic is not partitioned by the correlation key
//! (`repartition: true`) is read, decoded and mapped like any other (dead letters, drift,
//! freshness and age happen there), and its events are then written to the internal topic
//! `<group_id>.repartition.<source>`, keyed by the correlation key, inside the same transaction
//! as the input offsets. That topic has the workflow topics' partition count and is partitioned
//! with `kafka.partitioner`, so an event lands on the partition number its instance lives on;
//! the workflows read it from there, like a keyed source.

use crate::ingest::{Coordinates, Event};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

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
}

/// The record value for `ev` (its key is `ev.key`).
pub fn encode(ev: &Event) -> Vec<u8> {
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
    })
    .expect("events serialise")
}

/// The event a repartition record carries. Only Sightline writes these topics, so a record
/// that does not decode means another writer: it is an error for the caller to report.
pub fn decode(value: &[u8]) -> Result<Event, String> {
    let r: Rekeyed = serde_json::from_slice(value).map_err(|e| e.to_string())?;
    Ok(Event {
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
    })
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
        assert_eq!(decode(&encode(&ev)).unwrap(), ev);
        assert!(decode(b"{}").is_err());
    }
}
