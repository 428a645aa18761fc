//! Delivering outputs at least once (under exactly-once they go in the commit's transaction
//! instead), and reporting each delivered one. All of a batch's outputs are enqueued at once
//! (the producer batches them), then every acknowledgement is awaited; what failed is sent again, one by one, with backoff,
//! until the broker acknowledges it. Only then may the input offsets behind them be stored.

use crate::observe::events::{AlertEmitted, DriftDetected, KafkaClientError, OutputProduced};
use crate::outputs::{AlertStatus, DriftVerdict, Encoders, Output};
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
    let mut encoded = Vec::with_capacity(outputs.len());
    for out in outputs {
        match encoders.encode(out) {
            Ok(x) => encoded.push((out, x)),
            // An output that does not fit its own contract is a bug in Sightline: say so loudly.
            Err(e) => {
                tracing::error!(error = %format!("{e:#}"), "an output could not be encoded; it is dropped")
            }
        }
    }
    let pending: Vec<_> = encoded
        .iter()
        .map(|(out, (topic, key, value))| {
            let mut record = FutureRecord::to(topic).key(key).payload(value.as_ref());
            if let Some(p) = out.partition() {
                record = record.partition(p);
            }
            producer.send_result(record).ok()
        })
        .collect();
    for ((out, (topic, key, value)), delivery) in encoded.iter().zip(pending) {
        let delivered = match delivery {
            Some(d) => matches!(d.await, Ok(Ok(_))),
            None => false,
        };
        if !delivered && !send_one(producer, topic, key, value, shutdown).await {
            return false;
        }
        report(out, topic);
    }
    true
}

async fn send_one(
    producer: &FutureProducer,
    topic: &str,
    key: &str,
    value: &[u8],
    shutdown: &mut watch::Receiver<bool>,
) -> bool {
    let mut backoff = Duration::from_millis(100);
    loop {
        let record = FutureRecord::to(topic).key(key).payload(value);
        match producer.send(record, Duration::from_secs(5)).await {
            Ok(_) => return true,
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
}

/// Counts and logs a delivered output.
pub fn report(out: &Output, topic: &str) {
    OutputProduced { topic }.emit();
    crate::serve::read::READ.record(out);
    match out {
        Output::Alert(a) => AlertEmitted {
            dedupe_id: &a.dedupe_id,
            kind: &a.kind,
            status: match a.status {
                AlertStatus::Firing => "firing",
                AlertStatus::Resolved => "resolved",
            },
            summary: &a.summary,
        }
        .emit(),
        Output::Drift(d) => DriftDetected {
            topic: &d.topic,
            drift_id: &d.drift_id,
            verdict: match d.verdict {
                DriftVerdict::Compatible => "compatible",
                DriftVerdict::Incompatible => "incompatible",
            },
        }
        .emit(),
        Output::Sla(s) => crate::observe::events::SlaEmitted {
            workflow: &s.workflow,
            outcome: s.outcome.as_str(),
        }
        .emit(),
        Output::Rekeyed { .. } => {}
        Output::Lag(l) => crate::observe::events::LagStatusChanged {
            group: &l.group,
            status: l.status.as_str(),
            previous: l.previous_status.map(|p| p.as_str()),
            total_lag: l.total_lag_offsets,
        }
        .emit(),
    }
}
