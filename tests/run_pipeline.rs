//! `sightline run` as a process against the real broker: it serves /healthz, /readyz and
//! /metrics, counts good events, dead-letters bad records with their provenance (bytes
//! untouched), and stops cleanly on SIGTERM.

mod common;

use rdkafka::producer::FutureProducer;
use std::time::Duration;

#[tokio::test]
async fn run_serves_health_counts_events_and_dead_letters_bad_records() {
    common::require_kafka();
    let src = common::unique("orders");
    let regional = format!("{}.eu", common::unique("regional"));
    let pattern = format!("^{}\\..*", regional.trim_end_matches(".eu"));
    common::create_topics(&[&src, &regional], 2).await;
    let setup = common::Setup::new(
        &format!(
            "  - name: orders\n    topic: {src}\n    format: json\n    event_type: {{ field: type }}\n    \
             key: {{ field: order_id }}\n    event_time: {{ field: at }}\n  \
             - name: regional\n    topic: '{pattern}'\n    format: json\n    event_type: {{ field: type }}\n    \
             key: {{ field: order_id }}\n    event_time: {{ field: at }}\n"
        ),
        None,
        &[],
    );
    let sl = common::Sightline::spawn(&setup.config(), &setup.log(), setup.port);
    let base = sl.http.clone();

    let (status, body) = common::wait_for("/healthz", Duration::from_secs(30), async || {
        common::http_get(&format!("{base}/healthz")).await
    })
    .await;
    assert_eq!((status, body.as_str()), (200, "ok\n"));
    let body = common::wait_for(
        "/readyz to say ready",
        Duration::from_secs(60),
        async || {
            common::http_get(&format!("{base}/readyz"))
                .await
                .filter(|(s, _)| *s == 200)
                .map(|(_, b)| b)
        },
    )
    .await;
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&body).unwrap(),
        serde_json::json!({"ready": true, "assigned": true, "restored": true, "registry_reachable": true})
    );

    let producer: FutureProducer = common::client().create().unwrap();
    let good = |i: usize| {
        format!(r#"{{"type":"order_confirmed","order_id":"O-{i}","at":"2026-11-23T10:00:00Z"}}"#)
    };
    let bad: [(&str, &[u8], &str); 2] = [
        ("k-bad-1", b"\xff\x00 not json", "invalid_json"),
        (
            "k-bad-2",
            br#"{"type":"order_confirmed","at":"2026-11-23T10:00:00Z"}"#,
            "missing_key",
        ),
    ];
    for i in 0..3 {
        common::produce(&producer, &src, "k", good(i).as_bytes()).await;
    }
    let mut bad_offsets = Vec::new();
    for (key, value, _) in &bad {
        bad_offsets.push(common::produce(&producer, &src, key, value).await);
    }

    // A topic matched by a pattern source: its events count, and its dead-letter topic is
    // created when first needed.
    for v in [good(9).into_bytes(), b"nope".to_vec()] {
        common::produce(&producer, &regional, "r", &v).await;
    }
    // Exactly one, and nothing re-dead-lettered from the dead-letter topic the pattern matches.
    let regional_dlq = common::read_topic(&format!("{regional}.dlq"), 1, Duration::from_secs(60));
    assert_eq!(regional_dlq.len(), 1);
    assert_eq!(regional_dlq[0].value.as_deref(), Some(&b"nope"[..]));
    assert_eq!(
        regional_dlq[0].header("sightline.original.topic"),
        Some(regional.as_str())
    );

    let dlq = common::read_topic(&format!("{src}.dlq"), 2, Duration::from_secs(60));
    assert_eq!(
        dlq.len(),
        2,
        "exactly the two bad records are dead-lettered: {dlq:?}"
    );
    for (i, ((key, value, class), (p, o))) in bad.iter().zip(&bad_offsets).enumerate() {
        let r = dlq
            .iter()
            .find(|r| r.key.as_deref() == Some(key.as_bytes()))
            .expect("dead letter present");
        assert_eq!(
            r.value.as_deref(),
            Some(*value),
            "value bytes untouched ({i})"
        );
        assert_eq!(r.header("sightline.original.topic"), Some(src.as_str()));
        assert_eq!(
            r.header("sightline.original.partition"),
            Some(p.to_string().as_str())
        );
        assert_eq!(
            r.header("sightline.original.offset"),
            Some(o.to_string().as_str())
        );
        assert_eq!(r.header("sightline.error.class"), Some(*class));
        assert_eq!(r.header("sightline.version"), Some(sightline::VERSION));
        assert!(r
            .header("sightline.original.timestamp")
            .is_some_and(|t| t.parse::<i64>().is_ok()));
        assert!(r
            .header("sightline.failed.at")
            .is_some_and(|t| t.parse::<i64>().is_ok()));
        assert!(r
            .header("sightline.error.message")
            .is_some_and(|m| !m.is_empty()));
    }

    let want = format!(
        "sightline_events_consumed_total{{event_type=\"order_confirmed\",topic=\"{src}\"}} 3"
    );
    let metrics = common::wait_for(
        "3 events in /metrics",
        Duration::from_secs(30),
        async || {
            common::http_get(&format!("{base}/metrics"))
                .await
                .map(|(_, b)| b)
                .filter(|b| b.contains(&want))
        },
    )
    .await;
    assert!(metrics.contains(&format!(
        "sightline_records_dead_lettered_total{{class=\"invalid_json\",topic=\"{src}\"}} 1"
    )));
    assert!(metrics.contains(&format!(
        "sightline_records_dead_lettered_total{{class=\"missing_key\",topic=\"{src}\"}} 1"
    )));
    assert!(metrics.contains(&format!(
        "sightline_events_consumed_total{{event_type=\"order_confirmed\",topic=\"{regional}\"}} 1"
    )));
    assert!(
        !metrics.contains(&format!("topic=\"{regional}.dlq\"")),
        "the dead-letter topic is not read as a source:\n{metrics}"
    );
    assert!(metrics.contains(&format!(
        "sightline_build_info{{version=\"{}\"}} 1",
        sightline::VERSION
    )));

    // SIGTERM: commit and exit 0, promptly.
    sl.stop().await;
    let logs = std::fs::read_to_string(setup.log()).unwrap();
    assert!(
        logs.lines()
            .all(|l| serde_json::from_str::<serde_json::Value>(l).is_ok()),
        "--log-format json logs JSON lines:\n{logs}"
    );
    assert!(
        logs.contains("\"offset\":") && logs.contains("record dead-lettered"),
        "dead-letter logs carry coordinates:\n{logs}"
    );
}
