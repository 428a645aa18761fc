//! The producers: idempotent, acks=all, lz4; transactional for the pipeline under exactly-once.

use rdkafka::error::KafkaResult;
use rdkafka::producer::FutureProducer;
use rdkafka::ClientConfig;

/// Idempotent, acks=all, lz4, with the user's overrides in `base` applied last.
pub fn producer_config(base: &ClientConfig) -> ClientConfig {
    let mut c = base.clone();
    c.set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "5")
        .set("compression.type", "lz4")
        .set("message.timeout.ms", "30000");
    for (k, v) in base.config_map() {
        c.set(k, v);
    }
    c
}

pub fn create_producer(base: &ClientConfig) -> KafkaResult<FutureProducer> {
    producer_config(base).create()
}

/// The pipeline's transactional producer (exactly-once): one per instance, fenced by its
/// transactional.id and, for offsets, by the consumer group's generation (KIP-447).
pub fn create_transactional_producer(
    base: &ClientConfig,
    transactional_id: &str,
    transaction_timeout_ms: u64,
) -> KafkaResult<FutureProducer> {
    let mut c = base.clone();
    c.set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "5")
        .set("compression.type", "lz4")
        .set("transactional.id", transactional_id)
        .set("transaction.timeout.ms", transaction_timeout_ms.to_string())
        // A transaction that starts while the coordinator still completes the previous one is
        // told CONCURRENT_TRANSACTIONS and retried after the backoff; librdkafka's 100 ms
        // default would add that to every commit (the Java client uses 20 ms for this case).
        .set("retry.backoff.ms", "5")
        .set("retry.backoff.max.ms", "100")
        // A record must be delivered (or fail) within its transaction's lifetime.
        .set(
            "message.timeout.ms",
            transaction_timeout_ms.saturating_sub(500).to_string(),
        );
    for (k, v) in base.config_map() {
        c.set(k, v);
    }
    c.create()
}
