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
    pub event_type: super::Name,
    pub topic: super::Name,
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

/// What a stream monitor (freshness, age) says about its stream.
pub struct StreamAlert<'a> {
    /// `freshness`, `age`: the dedupe id is `<family>/<monitor>`.
    pub family: &'a str,
    pub kind: &'a str,
    pub monitor: &'a str,
    pub source: &'a str,
    pub dimension: &'a BTreeMap<String, String>,
    pub severity: Severity,
    pub status: AlertStatus,
    pub detected_at: i64,
    /// The summary after "stream `<monitor>` (<source>): ".
    pub what: String,
    /// Details; `monitor` is added.
    pub attributes: Vec<(&'static str, String)>,
}

impl StreamAlert<'_> {
    pub fn into_alert(self) -> Alert {
        let mut attributes: BTreeMap<String, String> = self
            .attributes
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        attributes.insert("monitor".into(), self.monitor.to_string());
        Alert {
            dedupe_id: format!("{}/{}", self.family, self.monitor),
            kind: self.kind.to_string(),
            status: self.status,
            severity: self.severity,
            summary: format!("stream `{}` ({}): {}", self.monitor, self.source, self.what),
            workflow: None,
            step: None,
            key: None,
            source: Some(self.source.to_string()),
            deadline: None,
            detected_at: self.detected_at,
            dimensions: self.dimension.clone(),
            attributes,
            lineage: Vec::new(),
            sightline_version: crate::VERSION.to_string(),
        }
    }
}
