//! Sightline: watches the business events flowing through Kafka and says, on Kafka topics and in
//! Prometheus, when a business process is going wrong.
//!
//! The folders follow the data path (see ARCHITECTURE.md beside this file):
//!
//! ```text
//! kafka (consumer) -> ingest (decode + map to one Event) --bad--> deadletter (DLQ topic)
//!                  -> engine (routes events, commits offsets) -> outputs
//! ```
//!
//! `config` and `topology` describe what to do, `observe` reports what happened (metrics, logs),
//! `serve` answers over HTTP, `demo` runs the whole thing on librdkafka's in-process mock cluster, and `replay`
//! sends dead letters back (`sightline replay`).

pub mod cli;
pub mod config;
pub mod contracts;
pub mod deadletter;
pub mod demo;
pub mod detectors;
pub mod engine;
pub mod ingest;
pub mod kafka;
pub mod observe;
pub mod outputs;
pub mod registry;
pub mod replay;
pub mod serve;
pub mod state;
pub mod topology;

/// The version stamped on dead-letter records and `sightline_build_info`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
