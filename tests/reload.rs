//! SIGHUP on the real broker: a changed source mapping applies to the records that follow,
//! with no restart; a change beyond mappings is refused, and the running mapping stays.

mod common;

use rdkafka::producer::FutureProducer;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_a_fixed_mapping_and_refuses_anything_more() {
    common::require_kafka();
    let picks = common::unique("picks");
    common::create_topics(&[&picks], 1).await;
    let source = |format: &str, topic: &str| {
        format!(
            "  - name: picks\n    topic: {topic}\n    format: json\n    event_type: {{ fixed: item_picked }}\n    \
             key: {{ field: id }}\n    event_time: {{ field: at, format: {format} }}\n"
        )
    };
    let setup = common::Setup::new(&source("rfc3339", &picks), None, &[]);
    let write_topology = |text: String| {
        std::fs::write(
            setup.dir.join("topology.yaml"),
            format!("name: test\nsources:\n{text}"),
        )
        .unwrap()
    };
    let p: FutureProducer = common::client().create().unwrap();
    let now = chrono::Utc::now().timestamp_millis();
    let epoch_ms = |id: &str| format!(r#"{{"id":"{id}","at":{now}}}"#);
    let sl = setup.start().await;
    let events =
        format!("sightline_events_consumed_total{{event_type=\"item_picked\",topic=\"{picks}\"}}");
    let dead = format!(
        "sightline_records_dead_lettered_total{{class=\"invalid_event_time\",topic=\"{picks}\"}}"
    );
    let hup = |sl: &common::Sightline| {
        assert!(std::process::Command::new("kill")
            .args(["-HUP", &sl.child.id().to_string()])
            .status()
            .unwrap()
            .success());
    };

    // RFC 3339 only: an epoch-ms time is dead-lettered.
    common::produce(&p, &picks, "a", epoch_ms("a").as_bytes()).await;
    sl.wait_metric(&dead, 1, Duration::from_secs(30)).await;

    // A change beyond mappings (another topic) is refused; the running mapping stays.
    write_topology(source("auto", "elsewhere"));
    hup(&sl);
    sl.wait_metric(
        "sightline_reloads_total{result=\"refused\"}",
        1,
        Duration::from_secs(30),
    )
    .await;
    common::produce(&p, &picks, "b", epoch_ms("b").as_bytes()).await;
    sl.wait_metric(&dead, 2, Duration::from_secs(30)).await;
    assert_eq!(sl.metric(&events).await, 0);

    // The fix, `format: auto`, applies to the next record.
    write_topology(source("auto", &picks));
    hup(&sl);
    sl.wait_metric(
        "sightline_reloads_total{result=\"ok\"}",
        1,
        Duration::from_secs(30),
    )
    .await;
    common::produce(&p, &picks, "c", epoch_ms("c").as_bytes()).await;
    sl.wait_metric(&events, 1, Duration::from_secs(30)).await;
    assert_eq!(sl.metric(&dead).await, 2);
    let log = std::fs::read_to_string(setup.log()).unwrap();
    assert!(
        log.contains("changes more than source mappings"),
        "the refusal says why: {log}"
    );
    sl.stop().await;
}
