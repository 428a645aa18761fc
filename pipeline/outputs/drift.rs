//! The schema-drift record (schemas/sightline/schema_drift.avsc).

use crate::contracts::diff::FieldChange;
use crate::contracts::json::Violation;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum DriftFormat {
    Avro,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum DriftVerdict {
    Compatible,
    Incompatible,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SchemaDrift {
    pub drift_id: String,
    pub source: String,
    pub topic: String,
    pub format: DriftFormat,
    pub detected_at: i64,
    pub verdict: DriftVerdict,
    pub subject: Option<String>,
    pub version: Option<i32>,
    pub schema_id: Option<i32>,
    pub previous_schema_id: Option<i32>,
    pub contract: Option<String>,
    pub diff_vs_previous: Vec<FieldChange>,
    pub diff_vs_contract: Vec<FieldChange>,
    pub compatibility_errors: Vec<String>,
    pub violations: Vec<Violation>,
    pub sightline_version: String,
}
