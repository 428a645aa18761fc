//! Detectors: pure state machines, `(state, input, clock) -> (state', outputs)`. They know
//! nothing of Kafka, RocksDB or tokio; the engine feeds them and persists what they ask it to
//! remember.
//!
//! - [`drift`]: writer schemas that change, or JSON that breaks its contract.
//! - [`workflow`]: missing, late, out-of-order, duplicate and orphan steps; SLAs.
//! - [`freshness`]: streams that fall silent beyond their quiet period.
//! - [`age`]: events too old on arrival; periodic age percentiles.
//! - [`lag`]: consumer-lag status per group over a sliding window (Burrow's rules).
//! - [`levels`]: side-monitor conditions measured at every poll, announced when they change.
//! - [`partitioning`]: a source said to be keyed by the correlation key whose records sit
//!   where another partitioner put them.

pub mod age;
pub mod deadletter;
pub mod drift;
pub mod freshness;
pub mod lag;
pub mod levels;
pub mod partitioning;
pub mod workflow;

use crate::ingest::Event;
use std::collections::BTreeMap;

/// Does `ev` belong to the stream a monitor watches: its source, optionally one event type, and
/// the given dimension values?
pub fn in_stream(
    ev: &Event,
    source: &str,
    event_type: Option<&str>,
    dimension: &BTreeMap<String, String>,
) -> bool {
    *ev.source == *source
        && event_type.is_none_or(|t| t == ev.event_type)
        && dimension
            .iter()
            .all(|(k, v)| ev.dimensions.iter().any(|(dk, dv)| **dk == **k && dv == v))
}

/// A shipment event for detector tests: `source`, carrier `carrier`, the given event time and
/// broker timestamp.
#[cfg(test)]
pub(crate) fn test_shipment(
    source: &str,
    carrier: &str,
    event_time_ms: i64,
    timestamp_ms: Option<i64>,
) -> Event {
    use std::sync::Arc;
    Event {
        source: Arc::from(source),
        event_type: "shipment_dispatched".into(),
        key: "o1".into(),
        event_id: None,
        event_time_ms,
        coordinates: crate::ingest::Coordinates {
            topic: Arc::from(source),
            partition: 0,
            offset: 0,
            timestamp_ms,
        },
        dimensions: vec![(Arc::from("carrier"), carrier.to_string())],
        traceparent: None,
    }
}
