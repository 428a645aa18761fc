//! The normalised business event: what every detector sees, whatever the source format.

use std::sync::Arc;

/// Where a record sits in Kafka.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Coordinates {
    pub topic: Arc<str>,
    pub partition: i32,
    pub offset: i64,
    /// The record timestamp (broker append time or producer create time), epoch ms.
    pub timestamp_ms: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// The source (topology) name this event came through.
    pub source: Arc<str>,
    pub event_type: String,
    /// The correlation key (an order id, a purchase-order number).
    pub key: String,
    pub event_id: Option<String>,
    /// When the business event happened, epoch ms.
    pub event_time_ms: i64,
    pub coordinates: Coordinates,
    /// Bounded labels (carrier, warehouse, region), in declaration order.
    pub dimensions: Vec<(Arc<str>, String)>,
    /// W3C `traceparent` header, carried on into outputs.
    pub traceparent: Option<String>,
}
