//! The consumer-lag event record (schemas/sightline/lag_event.avsc).

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

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum LagStatus {
    Ok,
    Rewind,
    Warn,
    Err,
    Stall,
    Stop,
}

impl LagStatus {
    pub fn parse(s: &str) -> Option<LagStatus> {
        [
            LagStatus::Ok,
            LagStatus::Rewind,
            LagStatus::Warn,
            LagStatus::Err,
            LagStatus::Stall,
            LagStatus::Stop,
        ]
        .into_iter()
        .find(|l| l.as_str() == s)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            LagStatus::Ok => "OK",
            LagStatus::Rewind => "REWIND",
            LagStatus::Warn => "WARN",
            LagStatus::Err => "ERR",
            LagStatus::Stall => "STALL",
            LagStatus::Stop => "STOP",
        }
    }
}

/// How a partition's time lag was measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TimeLagMethod {
    /// The timestamp of the record at the committed offset, read from the partition (or zero
    /// lag: nothing is unconsumed).
    Exact,
    /// That record could not be read (deleted by retention, not readable, timed out): when it
    /// was written is interpolated from sampled high watermarks.
    Interpolated,
    /// Neither: the record is older than the sampled history.
    Unknown,
}

impl TimeLagMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            TimeLagMethod::Exact => "EXACT",
            TimeLagMethod::Interpolated => "INTERPOLATED",
            TimeLagMethod::Unknown => "UNKNOWN",
        }
    }
}
