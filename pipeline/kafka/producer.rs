//! The producer for outputs and dead letters: idempotent, acks=all, lz4.

use rdkafka::error::KafkaResult;
use rdkafka::producer::FutureProducer;
use rdkafka::ClientConfig;

pub fn create_producer(base: &ClientConfig) -> KafkaResult<FutureProducer> {
    let mut c = base.clone();
    c.set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "5")
        .set("compression.type", "lz4")
        .set("message.timeout.ms", "30000");
    for (k, v) in base.config_map() {
        c.set(k, v);
    }
    c.create()
}
