//! Producing dead letters. A batch's dead letters are staged with its outputs and produced with
//! them, never one at a time in the middle of a batch: under exactly-once inside the batch's
//! transaction, under at-least-once enqueued together and acknowledged before the input offsets
//! behind them are stored. So no record is ever committed without being either processed or
//! dead-lettered, and a poison record costs no round trip of its own.

use super::DeadLetter;
use crate::observe::events::{KafkaClientError, RecordDeadLettered};
use rdkafka::producer::{FutureProducer, FutureRecord};
use std::time::Duration;
use tokio::sync::watch;

/// The record a dead letter is produced as: the original key and value bytes, with provenance
/// headers.
pub fn record(dl: &DeadLetter) -> FutureRecord<'_, [u8], [u8]> {
    let mut record = FutureRecord::<[u8], [u8]>::to(&dl.dead_letter_topic).headers(dl.headers());
    if let Some(k) = &dl.key {
        record = record.key(k.as_slice());
    }
    if let Some(v) = &dl.value {
        record = record.payload(v.as_slice());
    }
    record
}

/// Counts and logs a dead letter the broker holds (under exactly-once: committed).
pub fn report(dl: &DeadLetter) {
    RecordDeadLettered {
        topic: &dl.topic,
        partition: dl.partition,
        offset: dl.offset,
        class: dl.class.as_str(),
        reason: &dl.message,
        dead_letter_topic: &dl.dead_letter_topic,
    }
    .emit();
}

/// At-least-once: enqueues every dead letter at once, then awaits each acknowledgement; what
/// failed is sent again, one by one, with backoff, until the broker acknowledges it. False only
/// when shutdown was requested first.
pub async fn send_all(
    producer: &FutureProducer,
    dls: &[DeadLetter],
    shutdown: &mut watch::Receiver<bool>,
) -> bool {
    let pending: Vec<_> = dls
        .iter()
        .map(|dl| producer.send_result(record(dl)).ok())
        .collect();
    for (dl, delivery) in dls.iter().zip(pending) {
        let delivered = match delivery {
            Some(d) => matches!(d.await, Ok(Ok(_))),
            None => false,
        };
        if !delivered && !send(producer, dl, shutdown).await {
            return false;
        }
        report(dl);
    }
    true
}

/// Sends `dl` until the broker acknowledges it; false only when shutdown was requested first.
async fn send(
    producer: &FutureProducer,
    dl: &DeadLetter,
    shutdown: &mut watch::Receiver<bool>,
) -> bool {
    let mut backoff = Duration::from_millis(100);
    loop {
        match producer.send(record(dl), Duration::from_secs(5)).await {
            Ok(_) => return true,
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
