//! Event age on a stream with known timestamps, on the real broker: processing time minus event
//! time, and broker append time (a LogAppendTime topic) minus event time, land in the expected
//! histogram buckets.

mod common;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::producer::FutureProducer;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_age_buckets_match_known_timestamps() {
    common::require_kafka();
    let topic = common::unique("ages");
    let admin: AdminClient<DefaultClientContext> = common::client().create().unwrap();
    let nt = NewTopic::new(&topic, 1, TopicReplication::Fixed(1))
        .set("message.timestamp.type", "LogAppendTime");
    for r in admin
        .create_topics([&nt], &AdminOptions::new())
        .await
        .unwrap()
    {
        r.unwrap();
    }
    let setup = common::Setup::new(
        &format!(
            "  - name: ages\n    topic: {topic}\n    format: json\n    event_type: {{ fixed: tick }}\n    \
             key: {{ field: k }}\n    event_time: {{ field: at }}\n"
        ),
        None,
        &[],
    );
    let sl = setup.start().await;
    let producer: FutureProducer = common::client().create().unwrap();
    let now = chrono::Utc::now().timestamp_millis();
    // Ten events 20 minutes old, five events 10 seconds old.
    for (i, age_ms) in std::iter::repeat_n(1_200_000, 10)
        .chain(std::iter::repeat_n(10_000, 5))
        .enumerate()
    {
        let v = format!(r#"{{"k":"k{i}","at":{}}}"#, now - age_ms);
        common::produce(&producer, &topic, "k", v.as_bytes()).await;
    }
    let count = |measure: &str| {
        format!("sightline_event_age_seconds_count{{event_type=\"tick\",measure=\"{measure}\",source=\"ages\"}}")
    };
    sl.wait_metric(&count("processing"), 15, Duration::from_secs(60))
        .await;
    for measure in ["processing", "producer"] {
        let bucket = |le: &str| {
            format!("sightline_event_age_seconds_bucket{{event_type=\"tick\",measure=\"{measure}\",source=\"ages\",le=\"{le}\"}}")
        };
        let mut got = Vec::new();
        for le in ["5", "15", "900", "1800", "+Inf"] {
            got.push((le, sl.metric(&bucket(le)).await));
        }
        assert_eq!(
            got,
            vec![("5", 0), ("15", 5), ("900", 5), ("1800", 15), ("+Inf", 15)],
            "{measure}"
        );
    }
    sl.stop().await;
}
