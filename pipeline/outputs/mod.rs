//! What Sightline writes: alerts and SLA, drift and lag events. Each type here mirrors its Avro
//! contract in schemas/sightline/ field by field; [`encode`] turns it into bytes, as
//! Confluent-framed Avro (schema registered on start) or, without a registry, as JSON of the
//! same shape.

pub mod alert;
pub mod drift;
pub mod encode;
pub mod lag;
pub mod name;
pub mod sla;

pub use alert::{Alert, AlertStatus, LineageEntry, Severity};
pub use drift::{DriftVerdict, SchemaDrift};
pub use encode::Encoders;
pub use lag::{LagEvent, PartitionLag};
pub use name::Name;
pub use sla::{EventAgeReport, SlaEvent, SlaOutcome, StepStatus, StepTiming};

/// One record for an output topic.
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    Alert(Alert),
    Drift(SchemaDrift),
    Sla(SlaEvent),
    Lag(LagEvent),
    /// An event re-keyed by its correlation key, for a repartition topic (engine/repartition.rs).
    Rekeyed {
        topic: String,
        key: String,
        value: Vec<u8>,
        /// Where it must land when that is not the key's partition (a watermark marker goes to
        /// every partition of its repartition topic).
        partition: Option<i32>,
    },
}

impl Output {
    /// The partition an output must land on, where the partitioner does not choose it.
    pub fn partition(&self) -> Option<i32> {
        match self {
            Output::Rekeyed { partition, .. } => *partition,
            _ => None,
        }
    }

    /// The record key: the correlation key, or the stream the output is about.
    pub fn key(&self) -> String {
        match self {
            Output::Alert(a) => a
                .key
                .clone()
                .or_else(|| a.source.clone())
                .unwrap_or_else(|| a.dedupe_id.clone()),
            Output::Drift(d) => d.topic.clone(),
            Output::Sla(s) => s.key.clone(),
            Output::Lag(l) => l.group.clone(),
            Output::Rekeyed { key, .. } => key.clone(),
        }
    }
}
