//! Consumer lag against the real broker: a watched group that stops committing goes STALL or
//! STOP within the window, OK when it resumes, REWIND when reset to earliest; and time lag is
//! the exact age of the record at the committed offset.

mod common;

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};
use serde_json::Value;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const INTERVAL_MS: i64 = 300;
const WINDOW: i64 = 5;

/// A Sightline that watches consumer groups (`watch`: the `[lag]` keys that name them), polling
/// every 300 ms over a window of 5 samples. Its own source reads a topic nobody writes to.
async fn setup(watch: &str) -> common::Setup {
    let idle = common::unique("idle");
    common::create_topics(&[&idle], 1).await;
    let setup = common::Setup::new(
        &format!(
            "  - name: idle\n    topic: {idle}\n    format: json\n    event_type: {{ fixed: x }}\n    \
             key: {{ field: k }}\n    event_time: {{ field: at }}\n"
        ),
        None,
        &[],
    );
    setup.add_config(&format!(
        "[lag]\n{watch}\ninterval_ms = {INTERVAL_MS}\nwindow = {WINDOW}\n"
    ));
    setup
}

/// Commits `offset` for `group` on partition 0 of `topic`, as a consumer outside any live
/// group membership would (kafka-consumer-groups --reset-offsets does the same).
fn commit(group: &str, topic: &str, offset: i64) {
    let c: BaseConsumer = common::client()
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Offset(offset))
        .unwrap();
    c.commit(&tpl, CommitMode::Sync).unwrap();
}

fn high(topic: &str) -> i64 {
    let c: BaseConsumer = common::client().create().unwrap();
    c.fetch_watermarks(topic, 0, Duration::from_secs(5))
        .unwrap()
        .1
}

/// Waits until the lag topic holds an event for `group` whose status satisfies `want`;
/// returns every event for the group read so far.
async fn wait_status(
    topic: &str,
    group: &str,
    what: &str,
    want: impl Fn(&str) -> bool,
) -> Vec<Value> {
    common::wait_for(what, Duration::from_secs(60), async || {
        let events: Vec<Value> = common::read_topic(topic, usize::MAX, Duration::from_millis(700))
            .iter()
            .map(|r| serde_json::from_slice::<Value>(r.value.as_deref().unwrap()).unwrap())
            .filter(|e| e["group"] == group)
            .collect();
        events
            .iter()
            .any(|e| want(e["status"].as_str().unwrap()))
            .then_some(events)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watched_group_that_stops_committing_goes_stall_or_stop_then_ok_then_rewind() {
    common::require_kafka();
    let topic = common::unique("billing-in");
    common::create_topics(&[&topic], 1).await;
    let group = common::unique("billing-service");
    let setup = setup(&format!("groups = [\"{group}\"]")).await;
    let lag_topic = format!("{}.lag", setup.out);

    // Producers never stop once the group has shown it keeps up. (While it shows that, the
    // topic is quiet: a group committing the high watermark of a busy topic keeps up only as
    // long as its committer gets CPU, which a loaded CI machine does not promise.)
    let producing = Arc::new(AtomicBool::new(true));
    let flowing = Arc::new(AtomicBool::new(false));
    let producer: FutureProducer = common::client().create().unwrap();
    let feed = {
        let (producing, flowing, producer, topic) = (
            producing.clone(),
            flowing.clone(),
            producer.clone(),
            topic.clone(),
        );
        tokio::spawn(async move {
            while producing.load(Ordering::Relaxed) {
                if flowing.load(Ordering::Relaxed) {
                    common::produce(&producer, &topic, "k", b"{}").await;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };
    common::produce(&producer, &topic, "k", b"{}").await;
    // The consumer keeps up (commits the high watermark every 100 ms) while Sightline starts.
    commit(&group, &topic, high(&topic));
    let sl = setup.start().await;
    let keep_up = |until: Instant| {
        let (group, topic) = (group.clone(), topic.clone());
        async move {
            // One client for each job, kept: a new client per commit costs a connection and a
            // coordinator lookup, which under load is long enough to fall behind for real.
            let committer: BaseConsumer = common::client()
                .set("group.id", &group)
                .set("enable.auto.commit", "false")
                .create()
                .unwrap();
            let watermarks: BaseConsumer = common::client().create().unwrap();
            while Instant::now() < until {
                let high = watermarks
                    .fetch_watermarks(&topic, 0, Duration::from_secs(5))
                    .unwrap()
                    .1;
                let mut tpl = TopicPartitionList::new();
                tpl.add_partition_offset(&topic, 0, Offset::Offset(high))
                    .unwrap();
                committer.commit(&tpl, CommitMode::Sync).unwrap();
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    keep_up(Instant::now() + Duration::from_millis((INTERVAL_MS * WINDOW * 2) as u64)).await;
    assert!(
        common::read_topic(&lag_topic, usize::MAX, Duration::from_millis(500))
            .iter()
            .all(|r| !String::from_utf8_lossy(r.value.as_deref().unwrap()).contains(&group)),
        "a group that keeps up is OK, and OK at start is not an event"
    );

    // It stops committing; producers continue.
    flowing.store(true, Ordering::Relaxed);
    let stopped_at = chrono::Utc::now().timestamp_millis();
    let events = wait_status(&lag_topic, &group, "STALL or STOP", |s| {
        s == "STALL" || s == "STOP"
    })
    .await;
    // On the way, the growing lag may first read as WARN or ERR; then STALL or STOP.
    let statuses: Vec<&str> = events
        .iter()
        .map(|e| e["status"].as_str().unwrap())
        .collect();
    let k = statuses
        .iter()
        .position(|s| *s == "STALL" || *s == "STOP")
        .unwrap();
    assert!(
        statuses[..k].iter().all(|s| *s == "WARN" || *s == "ERR"),
        "{statuses:?}"
    );
    assert_eq!(events[0]["previous_status"], "OK");
    let first = &events[k];
    let took = first["detected_at"].as_i64().unwrap() - stopped_at;
    assert!(
        took <= 2 * INTERVAL_MS * WINDOW + 1_000,
        "STALL/STOP took {took} ms; the window is {} ms",
        INTERVAL_MS * WINDOW
    );
    let p = &first["partitions"][0];
    assert!(p["lag_offsets"].as_i64().unwrap() > 0);
    assert_eq!(
        p["lag_offsets"].as_i64().unwrap(),
        p["high_watermark"].as_i64().unwrap() - p["committed_offset"].as_i64().unwrap()
    );
    assert_eq!(p["time_lag_method"], "EXACT");

    // It resumes: OK.
    let n_before = events.len();
    keep_up(Instant::now() + Duration::from_millis(200)).await;
    let (g, t) = (group.clone(), topic.clone());
    let resume = tokio::spawn(async move {
        let until = Instant::now() + Duration::from_secs(60);
        while Instant::now() < until {
            commit(&g, &t, high(&t));
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    let events = wait_status(&lag_topic, &group, "OK after resuming", |s| s == "OK").await;
    resume.abort();
    let statuses: Vec<&str> = events
        .iter()
        .map(|e| e["status"].as_str().unwrap())
        .collect();
    // The first OK after the stall, with only STALL or STOP between (later events, on a slow
    // machine, may already follow it).
    let at = n_before
        + statuses[n_before..]
            .iter()
            .position(|s| *s == "OK")
            .expect("an OK after resuming");
    assert!(
        statuses[n_before..at]
            .iter()
            .all(|s| *s == "STALL" || *s == "STOP"),
        "{statuses:?}"
    );
    let ok = &events[at];
    assert_eq!(ok["partitions"][0]["time_lag_method"], "EXACT");

    // Reset to earliest: REWIND.
    let _ = resume.await;
    commit(&group, &topic, 0);
    let events = wait_status(&lag_topic, &group, "REWIND", |s| s == "REWIND").await;
    let rewind = events
        .iter()
        .rev()
        .find(|e| e["status"] == "REWIND")
        .unwrap();
    assert_eq!(rewind["previous_status"], "OK");
    assert_eq!(rewind["partitions"][0]["committed_offset"], 0);

    // Metrics: the watched group and Sightline's own group are both exported.
    let (_, body) = common::http_get(&format!("{}/metrics", sl.http))
        .await
        .unwrap();
    assert!(body.contains(&format!(
        "sightline_consumer_group_status{{group=\"{group}\"}}"
    )));
    assert!(body.contains(&format!(
        "sightline_consumer_group_lag_offsets{{group=\"{}\"}}",
        setup.group
    )));

    producing.store(false, Ordering::Relaxed);
    feed.await.unwrap();
    sl.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn time_lag_is_the_age_of_the_record_at_the_committed_offset() {
    common::require_kafka();
    let topic = common::unique("ledger");
    common::create_topics(&[&topic], 1).await;
    // Ten records written with known timestamps: 600 s ago, 590 s ago, ...
    let now = chrono::Utc::now().timestamp_millis();
    let ts: Vec<i64> = (0..10).map(|i| now - 600_000 + i * 10_000).collect();
    let producer: FutureProducer = common::client().create().unwrap();
    for t in &ts {
        producer
            .send(
                FutureRecord::to(&topic)
                    .key("k")
                    .payload("{}")
                    .timestamp(*t),
                Duration::from_secs(10),
            )
            .await
            .unwrap();
    }
    // The group has consumed three records: the oldest unconsumed one is offset 3.
    let group = common::unique("ledger-writer");
    commit(&group, &topic, 3);
    // Watched by pattern: found by listing the cluster's groups.
    let setup = setup(&format!("groups_regex = \"^{group}$\"")).await;
    let sl = setup.start().await;
    // Nothing moves, so the group goes STOP; its event carries the measured time lag.
    let events = wait_status(&format!("{}.lag", setup.out), &group, "STOP", |s| {
        s == "STOP"
    })
    .await;
    let stop = events.last().unwrap();
    let p = &stop["partitions"][0];
    assert_eq!(p["committed_offset"], 3);
    assert_eq!(p["high_watermark"], 10);
    assert_eq!(p["lag_offsets"], 7);
    assert_eq!(p["time_lag_method"], "EXACT");
    let measured = p["time_lag_ms"].as_i64().unwrap();
    let want = stop["detected_at"].as_i64().unwrap() - ts[3];
    assert!(
        (measured - want).abs() <= 1_000,
        "time lag {measured} ms, expected {want} ms (± 1 s)"
    );
    assert_eq!(stop["max_time_lag_ms"].as_i64().unwrap(), measured);
    // The gauge says the same, in seconds.
    let (_, body) = common::http_get(&format!("{}/metrics", sl.http))
        .await
        .unwrap();
    let gauge: f64 = body
        .lines()
        .find(|l| l.starts_with("sightline_consumer_lag_seconds{") && l.contains(&group))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .expect("the time-lag gauge of the watched partition");
    let at_scrape = chrono::Utc::now().timestamp_millis() - ts[3];
    assert!(
        gauge * 1000.0 <= at_scrape as f64 + 1.0 && gauge * 1000.0 >= want as f64 - 1_000.0,
        "gauge {gauge} s; the record is {at_scrape} ms old"
    );
    sl.stop().await;
}
