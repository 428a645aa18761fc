//! The SLA event record (schemas/sightline/sla_event.avsc).

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SlaOutcome {
    Completed,
    Cancelled,
    Expired,
    StepLate,
    EventAge,
}

impl SlaOutcome {
    /// The outcome as a metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            SlaOutcome::Completed => "completed",
            SlaOutcome::Cancelled => "cancelled",
            SlaOutcome::Expired => "expired",
            SlaOutcome::StepLate => "step_late",
            SlaOutcome::EventAge => "event_age",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum StepStatus {
    Met,
    Breached,
    Missing,
    NotDue,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepTiming {
    pub step: String,
    pub at: Option<i64>,
    pub duration_ms: Option<i64>,
    pub deadline: Option<i64>,
    pub target_ms: Option<i64>,
    pub status: StepStatus,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlaEvent {
    pub sla_id: String,
    pub workflow: String,
    pub key: String,
    pub outcome: SlaOutcome,
    pub started_at: Option<i64>,
    pub ended_at: Option<i64>,
    pub detected_at: i64,
    pub late_step: Option<String>,
    pub late_by_ms: Option<i64>,
    pub steps: Vec<StepTiming>,
    pub dimensions: BTreeMap<String, String>,
    /// EVENT_AGE: the age distribution of one monitor's reporting interval.
    #[serde(default)]
    pub event_age: Option<EventAgeReport>,
    pub sightline_version: String,
}

/// Rolling event-age percentiles of one age monitor over one reporting interval.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventAgeReport {
    pub monitor: String,
    pub source: String,
    pub event_type: Option<String>,
    pub measure: String,
    pub window_ms: i64,
    pub count: i64,
    pub over_threshold: i64,
    pub threshold_ms: i64,
    pub p50_ms: Option<i64>,
    pub p95_ms: Option<i64>,
    pub p99_ms: Option<i64>,
    pub max_ms: Option<i64>,
}
