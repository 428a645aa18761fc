//! The producers: idempotent, acks=all, lz4; transactional for the pipeline under exactly-once.

use super::client::with_defaults;
use rdkafka::error::KafkaResult;
use rdkafka::producer::FutureProducer;
use rdkafka::ClientConfig;

/// Idempotent, acks=all, lz4, unless the user's overrides in `base` say otherwise.
pub fn producer_config(base: &ClientConfig) -> ClientConfig {
    with_defaults(
        base,
        &[
            ("enable.idempotence", "true"),
            ("acks", "all"),
            ("linger.ms", "5"),
            ("compression.type", "lz4"),
            ("message.timeout.ms", "30000"),
        ],
    )
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
    let timeout = transaction_timeout_ms.to_string();
    // A record must be delivered (or fail) within its transaction's lifetime.
    let message_timeout = transaction_timeout_ms.saturating_sub(500).to_string();
    let mut c = with_defaults(
        base,
        &[
            ("enable.idempotence", "true"),
            ("acks", "all"),
            ("linger.ms", "5"),
            ("compression.type", "lz4"),
            ("transaction.timeout.ms", &timeout),
            // A transaction that starts while the coordinator still completes the previous one
            // is told CONCURRENT_TRANSACTIONS and retried after the backoff; librdkafka's 100 ms
            // default would add that to every commit (the Java client uses 20 ms for this case).
            ("retry.backoff.ms", "5"),
            ("retry.backoff.max.ms", "100"),
            ("message.timeout.ms", &message_timeout),
        ],
    );
    c.set("transactional.id", transactional_id);
    c.create()
}
