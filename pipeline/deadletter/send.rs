//! Producing a dead letter. Delivery is awaited and retried until the broker acknowledges it:
//! the input offset behind it is stored only afterwards, so no record is ever committed without
//! being either processed or dead-lettered.

use super::DeadLetter;
use crate::observe::events::{KafkaClientError, RecordDeadLettered};
use rdkafka::producer::{FutureProducer, FutureRecord};
use std::time::Duration;
use tokio::sync::watch;

/// Sends `dl`; returns false only when shutdown was requested before the broker acknowledged.
pub async fn send(
    producer: &FutureProducer,
    dl: &DeadLetter,
    shutdown: &mut watch::Receiver<bool>,
) -> bool {
    let mut backoff = Duration::from_millis(100);
    loop {
        let mut record =
            FutureRecord::<[u8], [u8]>::to(&dl.dead_letter_topic).headers(dl.headers());
        if let Some(k) = &dl.key {
            record = record.key(k.as_slice());
        }
        if let Some(v) = &dl.value {
            record = record.payload(v.as_slice());
        }
        match producer.send(record, Duration::from_secs(5)).await {
            Ok(_) => {
                RecordDeadLettered {
                    topic: &dl.topic,
                    partition: dl.partition,
                    offset: dl.offset,
                    class: dl.class.as_str(),
                    reason: &dl.message,
                    dead_letter_topic: &dl.dead_letter_topic,
                }
                .emit();
                return true;
            }
            Err((e, _)) => {
                KafkaClientError {
                    kind: "dead_letter_delivery",
                    error: &format!(
                        "dead letter for {}[{}]@{} to {} not delivered: {e}; retrying",
                        dl.topic, dl.partition, dl.offset, dl.dead_letter_topic
                    ),
                }
                .emit();
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = shutdown.changed() => return false,
        }
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}
