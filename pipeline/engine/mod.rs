//! The engine: the loop that moves records from the consumer through ingest to the detectors and
//! outputs, dead-letters what cannot be read, and commits input offsets.
//!
//! Ordering: records of one partition are handled one after another, and a record's offset is
//! stored only once it is fully handled (processed, or its dead letter acknowledged). A transient
//! failure (registry down) holds the partition's position and retries with backoff; it never
//! dead-letters and never skips.

pub mod setup;

use crate::deadletter::{self, DeadLetter};
use crate::ingest::{Event, RawRecord, Rejection, SourceIngest};
use crate::kafka::PipelineConsumer;
use crate::observe::events::{
    EventMapped, OffsetsCommitted, RecordConsumed, RegistryRecovered, RegistryUnavailable,
};
use crate::observe::health::Health;
use crate::observe::metrics::METRICS;
use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::message::{BorrowedMessage, Headers, Message};
use rdkafka::producer::FutureProducer;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// Receives every event the engine maps (the detectors, in later stages; tests and the demo).
pub trait EventSink: Send {
    fn on_event(&mut self, event: &Event);
}

/// No detectors: events are counted and dropped.
pub struct Discard;

impl EventSink for Discard {
    fn on_event(&mut self, _event: &Event) {}
}

pub struct Engine {
    pub consumer: Arc<PipelineConsumer>,
    pub producer: FutureProducer,
    /// Ingest per input topic.
    pub sources: HashMap<String, SourceIngest>,
    pub health: Arc<Health>,
    pub commit_interval: Duration,
    pub sink: Box<dyn EventSink>,
}

enum Outcome {
    Done,
    Shutdown,
}

impl Engine {
    /// Runs until `shutdown` turns true, then commits what was handled and returns.
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) -> anyhow::Result<()> {
        let mut commit_tick = tokio::time::interval(self.commit_interval);
        commit_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let consumer = self.consumer.clone();
        loop {
            tokio::select! {
                biased;
                _ = shutdown.changed() => break,
                _ = commit_tick.tick() => self.commit(CommitMode::Async),
                msg = consumer.recv() => match msg {
                    Ok(msg) => {
                        let started = Instant::now();
                        match self.handle(&msg, &mut shutdown).await {
                            Outcome::Done => {
                                if let Err(e) = consumer.store_offset_from_message(&msg) {
                                    crate::observe::events::KafkaClientError { kind: "offset_store", error: &e.to_string() }.emit();
                                }
                            }
                            Outcome::Shutdown => break,
                        }
                        METRICS.record_handling.with_label_values(&[msg.topic()]).observe(started.elapsed().as_secs_f64());
                    }
                    Err(e) => crate::observe::events::KafkaClientError { kind: "consume", error: &e.to_string() }.emit(),
                },
            }
        }
        self.commit(CommitMode::Sync);
        tracing::info!("engine stopped; handled offsets committed");
        Ok(())
    }

    fn commit(&self, mode: CommitMode) {
        match self.consumer.commit_consumer_state(mode) {
            Ok(()) => {
                if matches!(mode, CommitMode::Sync) {
                    OffsetsCommitted { result: Ok(0) }.emit()
                }
            }
            Err(e) if e.to_string().contains("No offset stored") => {}
            Err(e) => OffsetsCommitted {
                result: Err(&e.to_string()),
            }
            .emit(),
        }
    }

    async fn handle(
        &mut self,
        msg: &BorrowedMessage<'_>,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Outcome {
        let topic = msg.topic();
        RecordConsumed { topic }.emit();
        let Some(source) = self.sources.get(topic) else {
            tracing::warn!(
                topic,
                partition = msg.partition(),
                offset = msg.offset(),
                "record from a topic no source declares; skipped"
            );
            return Outcome::Done;
        };
        let headers: Vec<(&str, Option<&[u8]>)> = msg
            .headers()
            .map(|h| h.iter().map(|h| (h.key, h.value)).collect())
            .unwrap_or_default();
        let rec = RawRecord {
            topic,
            partition: msg.partition(),
            offset: msg.offset(),
            timestamp_ms: msg.timestamp().to_millis(),
            key: msg.key(),
            value: msg.payload(),
            headers: &headers,
        };
        let mut backoff = Duration::from_millis(200);
        let mut outage = false;
        loop {
            match source.ingest(&rec).await {
                Ok(event) => {
                    if outage {
                        RegistryRecovered.emit();
                    }
                    EventMapped {
                        topic,
                        event_type: &event.event_type,
                    }
                    .emit();
                    self.sink.on_event(&event);
                    return Outcome::Done;
                }
                Err(Rejection::Bad { class, message }) => {
                    let dl = DeadLetter {
                        dead_letter_topic: source.dead_letter_topic.clone(),
                        key: rec.key.map(<[u8]>::to_vec),
                        value: rec.value.map(<[u8]>::to_vec),
                        original_headers: headers
                            .iter()
                            .map(|(k, v)| (k.to_string(), v.map(<[u8]>::to_vec)))
                            .collect(),
                        topic: topic.to_string(),
                        partition: rec.partition,
                        offset: rec.offset,
                        timestamp_ms: rec.timestamp_ms,
                        class,
                        message,
                        failed_at_ms: chrono::Utc::now().timestamp_millis(),
                    };
                    return if deadletter::send::send(&self.producer, &dl, shutdown).await {
                        Outcome::Done
                    } else {
                        Outcome::Shutdown
                    };
                }
                Err(Rejection::Transient { message }) => {
                    outage = true;
                    RegistryUnavailable {
                        topic,
                        partition: rec.partition,
                        offset: rec.offset,
                        error: &message,
                        retry_in_ms: backoff.as_millis() as u64,
                    }
                    .emit();
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = shutdown.changed() => return Outcome::Shutdown,
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(10));
                }
            }
        }
    }
}
