//! Sightline's partitioner hashes are librdkafka's: records produced through librdkafka (on its
//! in-process mock cluster) with each key-hashing partitioner land exactly where
//! `detectors::partitioning::Hash` says. Needs no broker.

use rdkafka::mocking::MockCluster;
use rdkafka::producer::{FutureProducer, FutureRecord};
use sightline::detectors::partitioning::Hash;
use std::time::Duration;

#[tokio::test]
async fn each_hash_puts_keys_where_librdkafka_does() {
    let mock = MockCluster::new(1).expect("mock cluster");
    for (partitioner, hash) in [
        ("murmur2_random", Hash::Murmur2),
        ("murmur2", Hash::Murmur2),
        ("consistent_random", Hash::Crc32),
        ("consistent", Hash::Crc32),
        ("fnv1a_random", Hash::Fnv1a),
        ("fnv1a", Hash::Fnv1a),
    ] {
        for partitions in [1, 5, 12] {
            let topic = format!("keys-{partitioner}-{partitions}");
            mock.create_topic(&topic, partitions, 1).expect("topic");
            let producer: FutureProducer = rdkafka::ClientConfig::new()
                .set("bootstrap.servers", mock.bootstrap_servers())
                .set("partitioner", partitioner)
                .create()
                .expect("producer");
            for i in 0..300 {
                let key = format!("O-{i:06}-{}", "x".repeat(i % 7));
                let p = producer
                    .send(
                        FutureRecord::to(&topic).key(&key).payload("{}"),
                        Duration::from_secs(10),
                    )
                    .await
                    .expect("delivered")
                    .partition;
                assert_eq!(
                    p,
                    hash.partition(key.as_bytes(), partitions),
                    "{partitioner}, {partitions} partitions, key {key}"
                );
            }
        }
    }
}
