//! Detectors: pure state machines, `(state, input, clock) -> (state', outputs)`. They know
//! nothing of Kafka, RocksDB or tokio; the engine feeds them and persists what they ask it to
//! remember.
//!
//! - [`drift`]: writer schemas that change, or JSON that breaks its contract.
//! - [`workflow`]: missing, late, out-of-order, duplicate and orphan steps; SLAs.
//! - [`freshness`]: streams that fall silent beyond their quiet period.
//! - [`lag`]: consumer-lag status per group over a sliding window (Burrow's rules).

pub mod age;
pub mod drift;
pub mod freshness;
pub mod lag;
pub mod workflow;
