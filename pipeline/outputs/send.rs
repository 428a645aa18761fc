//! Producing outputs. Each is awaited until the broker acknowledges it (retrying with backoff),
//! before the input offset behind it may be stored.

use super::{Encoders, Output};
use crate::observe::events::{AlertEmitted, DriftDetected, KafkaClientError, OutputProduced};
use rdkafka::producer::{FutureProducer, FutureRecord};
use std::time::Duration;
use tokio::sync::watch;

/// Sends every output; false only when shutdown came first.
pub async fn send_all(
    producer: &FutureProducer,
    encoders: &Encoders,
    outputs: &[Output],
    shutdown: &mut watch::Receiver<bool>,
) -> bool {
    for out in outputs {
        let (topic, key, value) = match encoders.encode(out) {
            Ok(x) => x,
            Err(e) => {
                // An output that does not fit its own contract is a bug in Sightline: say so loudly.
                tracing::error!(error = %format!("{e:#}"), "an output could not be encoded; it is dropped");
                continue;
            }
        };
        let mut backoff = Duration::from_millis(100);
        loop {
            let record = FutureRecord::to(&topic).key(&key).payload(&value);
            match producer.send(record, Duration::from_secs(5)).await {
                Ok(_) => break,
                Err((e, _)) => KafkaClientError {
                    kind: "output_delivery",
                    error: &format!("output to {topic} not delivered: {e}; retrying"),
                }
                .emit(),
            }
            tokio::select! {
                _ = tokio::time::sleep(backoff) => {}
                _ = shutdown.changed() => return false,
            }
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
        OutputProduced { topic: &topic }.emit();
        match out {
            Output::Alert(a) => AlertEmitted {
                dedupe_id: &a.dedupe_id,
                kind: &a.kind,
                status: match a.status {
                    super::AlertStatus::Firing => "firing",
                    super::AlertStatus::Resolved => "resolved",
                },
                summary: &a.summary,
            }
            .emit(),
            Output::Drift(d) => DriftDetected {
                topic: &d.topic,
                drift_id: &d.drift_id,
                verdict: match d.verdict {
                    super::DriftVerdict::Compatible => "compatible",
                    super::DriftVerdict::Incompatible => "incompatible",
                },
            }
            .emit(),
            Output::Sla(s) => crate::observe::events::SlaEmitted {
                workflow: &s.workflow,
                outcome: s.outcome,
            }
            .emit(),
        }
    }
    true
}
