//! The consumer-lag event record (schemas/sightline/lag_event.avsc).

use crate::detectors::lag::{LagStatus, TimeLagMethod};
use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PartitionLag {
    pub topic: String,
    pub partition: i32,
    pub committed_offset: i64,
    pub high_watermark: i64,
    pub lag_offsets: i64,
    pub time_lag_ms: Option<i64>,
    pub time_lag_method: TimeLagMethod,
    pub status: LagStatus,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LagEvent {
    pub event_id: String,
    pub group: String,
    pub status: LagStatus,
    pub previous_status: Option<LagStatus>,
    pub detected_at: i64,
    pub total_lag_offsets: i64,
    pub max_time_lag_ms: Option<i64>,
    pub window_samples: i32,
    pub partitions: Vec<PartitionLag>,
    pub sightline_version: String,
}
