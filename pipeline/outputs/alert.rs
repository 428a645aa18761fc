//! The alert record (schemas/sightline/alert.avsc).

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AlertStatus {
    Firing,
    Resolved,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Severity {
    Info,
    Warning,
    Critical,
}

impl From<crate::topology::workflow::StepSeverity> for Severity {
    fn from(s: crate::topology::workflow::StepSeverity) -> Self {
        use crate::topology::workflow::StepSeverity as S;
        match s {
            S::Info => Severity::Info,
            S::Warning => Severity::Warning,
            S::Critical => Severity::Critical,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LineageEntry {
    pub event_type: String,
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub event_time: i64,
    pub trace_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Alert {
    pub dedupe_id: String,
    pub kind: String,
    pub status: AlertStatus,
    pub severity: Severity,
    pub summary: String,
    pub workflow: Option<String>,
    pub step: Option<String>,
    pub key: Option<String>,
    pub source: Option<String>,
    pub deadline: Option<i64>,
    pub detected_at: i64,
    pub dimensions: BTreeMap<String, String>,
    pub attributes: BTreeMap<String, String>,
    pub lineage: Vec<LineageEntry>,
    pub sightline_version: String,
}
