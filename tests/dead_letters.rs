//! Dead-letter monitoring on the real broker: a watched dead-letter topic's depth, error
//! classes and a depth alert; a replay brings the depth to zero, resolves the alert, and shows
//! in the replay metrics.

mod common;

use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watched_dead_letter_topic_alerts_on_depth_and_a_replay_resolves_it() {
    common::require_kafka();
    let (input, dlq, orig) = (
        common::unique("in"),
        common::unique("estate-dlq"),
        common::unique("orig"),
    );
    common::create_topics(&[&input, &dlq, &orig], 1).await;
    let sources = format!(
        "  - name: input\n    topic: {input}\n    format: json\n    event_type: {{ field: type }}\n    \
         key: {{ field: id }}\n    event_time: {{ field: at }}\n\
         monitors:\n  dead_letters:\n    - {{ name: estate, topic: {dlq}, max_depth: 10 }}\n"
    );
    let setup = common::Setup::new(&sources, None, &[]);
    setup.add_config(&format!(
        "[replay]\nledger_topic = \"{}\"\naudit_topic = \"{}\"\n[dead_letters]\ntopics = [\"{dlq}\"]\ninterval_ms = 500\n",
        common::unique("ledger"),
        common::unique("audit")
    ));
    let p: FutureProducer = common::client().create().unwrap();
    for i in 0..30 {
        let class = if i < 20 {
            "invalid_json"
        } else {
            "missing_key"
        };
        let h = OwnedHeaders::new()
            .insert(Header {
                key: "sightline.original.topic",
                value: Some(orig.as_str()),
            })
            .insert(Header {
                key: "sightline.error.class",
                value: Some(class),
            });
        p.send(
            FutureRecord::to(&dlq).key("k").payload("x").headers(h),
            Duration::from_secs(10),
        )
        .await
        .unwrap();
    }

    let sl = setup.start().await;
    let depth = format!("sightline_dead_letter_depth{{topic=\"{dlq}\"}}");
    sl.wait_metric(&depth, 30, Duration::from_secs(60)).await;
    for (class, n) in [("invalid_json", 20), ("missing_key", 10)] {
        sl.wait_metric(
            &format!(
                "sightline_dead_letter_error_classes_total{{class=\"{class}\",topic=\"{dlq}\"}}"
            ),
            n,
            Duration::from_secs(30),
        )
        .await;
    }
    let id = format!("dead_letters/estate/{dlq}/dead_letter_depth");
    let firing = common::read_topic(&format!("{}.alerts", setup.out), 1, Duration::from_secs(60));
    assert_eq!(
        common::alert_ids(&firing),
        vec![(id.clone(), "FIRING".to_string())]
    );

    let config = setup.config().display().to_string();
    common::sightline_ok(
        &[
            "replay",
            "--no-progress",
            "--config",
            &config,
            "--from",
            &dlq,
            "--id",
            "fix-1",
            "--rate",
            "0",
        ],
        &[],
    );
    sl.wait_metric(&depth, 0, Duration::from_secs(60)).await;
    sl.wait_metric(
        "sightline_replays_total{result=\"completed\"}",
        1,
        Duration::from_secs(30),
    )
    .await;
    sl.wait_metric(
        "sightline_replayed_records_total",
        30,
        Duration::from_secs(30),
    )
    .await;
    let both = common::read_topic(&format!("{}.alerts", setup.out), 2, Duration::from_secs(60));
    assert_eq!(
        common::alert_ids(&both),
        vec![
            (id.clone(), "FIRING".to_string()),
            (id, "RESOLVED".to_string())
        ]
    );
    sl.stop().await;
}
