//! How Sightline reports on itself: Prometheus metrics, tracing logs and the health it serves.
//!
//! Every observable occurrence is one typed event in [`events`] that logs and counts in one
//! place, so call sites stay one line (`RecordDeadLettered { .. }.emit()`), and a metric name is
//! written down exactly once, in [`metrics`].

pub mod events;
pub mod health;
pub mod logging;
pub mod metrics;
