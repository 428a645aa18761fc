//! A transaction fails, and so does its abort, leaving the transactional producer in
//! librdkafka's fatal state (what a broker restart mid-commit can do: INVALID_TXN_STATE). The
//! engine must not read on with that producer, which can never begin another transaction: it is
//! rebuilt in-process with new clients and goes on committing.
//!
//! The failures are injected, so this runs on librdkafka's in-process mock cluster (the real
//! broker cannot be told to fail one request). `sightline run` is a child process connected to
//! it over loopback. The first deadline alert's produce fails with a non-retriable error, and
//! the abort's EndTxn with INVALID_TXN_STATE.

mod common;

use rdkafka::mocking::MockCluster;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
use std::time::Duration;

/// A mock cluster with every topic `sightline run` needs, a config for it (a `pay` workflow
/// on the wall clock: `ordered`, then `paid` within 2 s), and one started instance `O-1`
/// whose first transaction has committed: (mock, setup, running Sightline, commits so far).
async fn started_on_a_mock(
    lag: bool,
) -> (
    MockCluster<'static, rdkafka::producer::DefaultProducerContext>,
    common::Setup,
    common::Sightline,
    u64,
) {
    let mock = MockCluster::new(1).expect("the in-process mock cluster starts");
    let topic = common::unique("orders");
    let setup = common::Setup::new(
        &format!(
            "  - {{ name: orders, topic: {topic}, format: json, event_type: {{ field: type }}, key: {{ field: id }}, event_time: {{ field: at }} }}\n\
             workflows:\n  - name: pay\n    ttl: 1d\n    steps:\n      - {{ name: ordered, on: ordered, start: true }}\n      - {{ name: paid, on: paid, after: ordered, within: 2s }}\n"
        ),
        None,
        &[],
    );
    // Point the config at the mock, on the wall clock; the dead-letter watch off (it reads
    // topics the mock would need to hold too), the lag poller as asked.
    let text = std::fs::read_to_string(setup.config())
        .unwrap()
        .replace(&common::bootstrap(), &mock.bootstrap_servers());
    std::fs::write(setup.config(), text).unwrap();
    setup.add_config(
        &format!("[engine]\ntime = \"wall\"\ntimer_tick_ms = 50\n[lag]\nenabled = {lag}\ntopics = [\"{topic}\"]\ninterval_ms = 250\n[dead_letters]\nenabled = false\n"),
    );
    // The mock has no CreateTopics: every topic `run` needs is made through its own API.
    let cfg = sightline::config::Config::load(&setup.config()).expect("the test config is valid");
    let topologies = sightline::topology::load_configured(&cfg).expect("the test topology loads");
    let mut topics: Vec<(String, i32)> = sightline::engine::setup::output_topics(&cfg, &topologies)
        .into_iter()
        .map(|t| (t.name, t.partitions))
        .collect();
    topics.push((topic.clone(), 1));
    topics.push((sightline::engine::announce::topic(&cfg.kafka.group_id), 1));
    topics.push((sightline::engine::setup::changelog_spec(&cfg, 1).name, 1));
    for (t, n) in &topics {
        mock.create_topic(t, *n, 1).expect("a mock topic");
    }

    let sl = setup.start().await;
    let at = chrono::Utc::now().timestamp_millis();
    let producer: FutureProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", mock.bootstrap_servers())
        .create()
        .unwrap();
    producer
        .send(
            FutureRecord::to(&topic)
                .key("O-1")
                .payload(&format!(r#"{{"type":"ordered","id":"O-1","at":{at}}}"#)),
            Duration::from_secs(10),
        )
        .await
        .expect("the start event is produced");
    common::wait_for(
        "the start event to be read and committed",
        Duration::from_secs(30),
        async || (sl.metric(COMMITTED).await > 0).then_some(()),
    )
    .await;
    let before = sl.metric(COMMITTED).await;
    (mock, setup, sl, before)
}

const COMMITTED: &str = "sightline_transactions_total{result=\"committed\"}";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_producer_left_fatal_by_a_failed_abort_is_replaced_and_commits_go_on() {
    let (mock, setup, mut sl, before) = started_on_a_mock(false).await;
    let restarts = "sightline_engine_restarts_total";
    // The next produce (the deadline's alert, 2 s after the start) fails for good, and so does
    // the abort that follows: the producer is left fatal.
    mock.request_errors(
        RDKafkaApiKey::Produce,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE],
    );
    mock.request_errors(
        RDKafkaApiKey::EndTxn,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_INVALID_TXN_STATE],
    );
    common::wait_for(
        "the engine to be rebuilt and to commit again",
        Duration::from_secs(60),
        async || {
            assert!(
                sl.child.try_wait().unwrap().is_none(),
                "Sightline exited instead of replacing its producer"
            );
            (sl.metric(restarts).await == 1 && sl.metric(COMMITTED).await > before).then_some(())
        },
    )
    .await;
    let log = std::fs::read_to_string(setup.log()).unwrap();
    assert!(
        log.contains("the transactional producer failed fatally"),
        "the rewind did not refuse the fatal producer"
    );
    println!(
        "fatal-producer: {} engine restart, {} transactions committed after it",
        sl.metric(restarts).await,
        sl.metric(COMMITTED).await - before
    );
    sl.stop().await;
}

/// A fenced producer (another instance took the transactional.id) is the end of this instance:
/// it exits non-zero and says why, within seconds, and does not hang on its side tasks (the lag
/// poller runs here; it ends by itself only on shutdown).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fenced_producer_stops_the_process_with_its_reason_and_nothing_hangs() {
    let (mock, setup, mut sl, _) = started_on_a_mock(true).await;
    mock.request_errors(
        RDKafkaApiKey::EndTxn,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_PRODUCER_FENCED],
    );
    let status = common::wait_for(
        "Sightline to exit after being fenced",
        Duration::from_secs(30),
        async || sl.child.try_wait().unwrap(),
    )
    .await;
    assert!(
        !status.success(),
        "a fenced instance exits non-zero: {status}"
    );
    let log = std::fs::read_to_string(setup.log()).unwrap();
    assert!(
        log.contains("Kafka transaction failed fatally"),
        "the exit does not say why"
    );
    println!("fenced: exited with {status}");
}
