//! The side monitors are owned once per group. Three instances of one group watch a consumer
//! group that stops committing and a dead-letter topic over its threshold. Every instance
//! measures both, but the group's outputs say each change once: one lag event per status
//! change, and one FIRING alert. Then the member that emits them (the owner of the announce
//! topic's partition 0) is killed with SIGKILL: its successor restores the announced levels
//! with the partition's state, and says nothing again.

mod common;

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::producer::FutureProducer;
use rdkafka::{Offset, TopicPartitionList};
use serde_json::Value;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

const INTERVAL_MS: u64 = 300;
const WINDOW: u64 = 5;
const STOP: u64 = 5; // sightline_consumer_group_status of STOP

fn lag_events(topic: &str, group: &str) -> Vec<Value> {
    common::read_topic(topic, usize::MAX, Duration::from_millis(700))
        .iter()
        .map(|r| serde_json::from_slice::<Value>(r.value.as_deref().unwrap()).unwrap())
        .filter(|e| e["group"] == group)
        .collect()
}

fn dead_letter_alerts(topic: &str) -> Vec<(String, String)> {
    common::alert_ids(&common::read_topic(
        topic,
        usize::MAX,
        Duration::from_millis(700),
    ))
    .into_iter()
    .filter(|(id, _)| id.starts_with("dead_letters/"))
    .collect()
}

/// Each lag event is a change: its status differs from the one before it, and names it as
/// its previous status (the first names the status measured before it); the last is STOP.
fn assert_changes_once(events: &[Value], label: &str) {
    let statuses: Vec<&str> = events
        .iter()
        .map(|e| e["status"].as_str().unwrap())
        .collect();
    let mut before: Option<&str> = None;
    for (i, e) in events.iter().enumerate() {
        let status = e["status"].as_str().unwrap();
        let previous = e["previous_status"].as_str();
        assert_ne!(Some(status), previous, "{label}: {statuses:?}");
        if i > 0 {
            assert_ne!(
                Some(status),
                before,
                "{label}: a status announced twice in a row: {statuses:?}"
            );
            assert_eq!(previous, before, "{label}: {statuses:?}");
        }
        before = Some(status);
    }
    assert_eq!(before, Some("STOP"), "{label}: {statuses:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_members_announce_each_change_once_and_a_successor_does_not_repeat_it() {
    common::require_kafka();
    let (orders, watched_topic, dlq) = (
        common::unique("orders"),
        common::unique("billing-in"),
        common::unique("side-dlq"),
    );
    common::create_topics(&[&orders], 3).await;
    common::create_topics(&[&watched_topic, &dlq], 1).await;
    let watched = common::unique("billing-service");
    let sources = format!(
        "  - name: orders\n    topic: {orders}\n    format: json\n    event_type: {{ field: type }}\n    \
         key: {{ field: id }}\n    event_time: {{ field: at }}\n\
         workflows:\n  - name: o\n    ttl: 2d\n    steps:\n      - {{ name: ordered, on: order_confirmed, start: true }}\n      \
         - {{ name: paid, on: payment_captured, after: ordered, within: 15m }}\n\
         monitors:\n  dead_letters:\n    - {{ name: estate, topic: {dlq}, max_depth: 3 }}\n"
    );
    let setup = common::Setup::new(&sources, None, &[]);
    setup.add_config(&format!(
        "[lag]\ngroups = [\"{watched}\"]\ninterval_ms = {INTERVAL_MS}\nwindow = {WINDOW}\n\
         [replay]\nledger_topic = \"{}\"\naudit_topic = \"{}\"\n\
         [dead_letters]\ntopics = [\"{dlq}\"]\ninterval_ms = {INTERVAL_MS}\n",
        common::unique("ledger"),
        common::unique("audit")
    ));
    let (lag_topic, alerts_topic) = (
        format!("{}.lag", setup.out),
        format!("{}.alerts", setup.out),
    );

    // Five dead letters: over the threshold of 3.
    common::produce_dead_letters(&dlq, 5, None).await;
    let producer: FutureProducer = common::client().create().unwrap();
    // The watched group commits once and never again, while its topic keeps growing: STALL,
    // then STOP once its last commit is older than the window.
    common::produce(&producer, &watched_topic, "k", b"{}").await;
    let c: BaseConsumer = common::client()
        .set("group.id", &watched)
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(&watched_topic, 0, Offset::Offset(1))
        .unwrap();
    c.commit(&tpl, CommitMode::Sync).unwrap();
    let producing = Arc::new(AtomicBool::new(true));
    let feed = {
        let (producing, producer, topic) =
            (producing.clone(), producer.clone(), watched_topic.clone());
        tokio::spawn(async move {
            while producing.load(Ordering::Relaxed) {
                common::produce(&producer, &topic, "k", b"{}").await;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };

    // Three members: the same group, each its own state dir, HTTP port and instance id.
    let text = std::fs::read_to_string(setup.config()).unwrap();
    let mut members = Vec::new();
    for name in ["a", "b", "c"] {
        let port = common::free_port();
        let config = setup.dir.join(format!("sightline-{name}.toml"));
        std::fs::write(
            &config,
            text.replace(
                "commit_interval_ms = 100\n",
                &format!("commit_interval_ms = 100\ninstance_id = \"{name}\"\n"),
            )
            .replace(
                &format!("127.0.0.1:{}", setup.port),
                &format!("127.0.0.1:{port}"),
            )
            .replace("dir = \"state\"", &format!("dir = \"state-{name}\"")),
        )
        .unwrap();
        let log = setup.dir.join(format!("sightline-{name}.log"));
        members.push(Some(common::Sightline::spawn(&config, &log, port)));
    }
    let status = format!("sightline_consumer_group_status{{group=\"{watched}\"}}");
    let polls = "sightline_lag_poll_duration_seconds_count";
    let owner = "sightline_side_monitors_owner";

    // Every member measures STOP, and the group has settled: one member owns the side
    // monitors (each has polled since: a member emits, or drops, what each poll finds).
    let live = |members: &Vec<Option<common::Sightline>>| -> Vec<usize> {
        (0..members.len())
            .filter(|i| members[*i].is_some())
            .collect()
    };
    let settled = async |members: &Vec<Option<common::Sightline>>, what: &str| -> usize {
        let mut since: Vec<u64> = Vec::new();
        for i in live(members) {
            since.push(members[i].as_ref().unwrap().metric(polls).await);
        }
        let owner_index = common::wait_for(what, Duration::from_secs(120), async || {
            let mut owners = Vec::new();
            for (k, i) in live(members).into_iter().enumerate() {
                let m = members[i].as_ref().unwrap();
                if m.metric(&status).await != STOP || m.metric(polls).await < since[k] + 4 {
                    return None;
                }
                if m.metric(owner).await == 1 {
                    owners.push(i);
                }
            }
            (owners.len() == 1).then(|| owners[0])
        })
        .await;
        // What the owner emitted before it said so is committed once it has polled (and
        // committed its ticks) a few times more.
        let m = members[owner_index].as_ref().unwrap();
        let n = m.metric(polls).await;
        common::wait_for(
            "the owner to poll 4 times more",
            Duration::from_secs(60),
            async || (m.metric(polls).await >= n + 4 && m.metric(owner).await == 1).then_some(()),
        )
        .await;
        owner_index
    };
    common::wait_for(
        "a STOP event for the watched group",
        Duration::from_secs(120),
        async || {
            lag_events(&lag_topic, &watched)
                .iter()
                .any(|e| e["status"] == "STOP")
                .then_some(())
        },
    )
    .await;
    let first_owner = settled(&members, "every member measuring STOP, one owner").await;
    let before = lag_events(&lag_topic, &watched);
    assert_changes_once(&before, "three members");
    let fired = dead_letter_alerts(&alerts_topic);
    let id = format!("dead_letters/estate/{dlq}/dead_letter_depth");
    assert_eq!(
        fired,
        vec![(id.clone(), "FIRING".to_string())],
        "three members"
    );

    // The owner is killed; a survivor takes partition 0 and its announced levels.
    drop(members[first_owner].take());
    let successor = settled(
        &members,
        "a successor owning the side monitors, every survivor at STOP",
    )
    .await;
    assert_ne!(successor, first_owner);
    assert_eq!(
        lag_events(&lag_topic, &watched),
        before,
        "the successor announces no lag status again"
    );
    assert_eq!(
        dead_letter_alerts(&alerts_topic),
        vec![(id, "FIRING".to_string())],
        "the successor fires no second alert"
    );

    producing.store(false, Ordering::Relaxed);
    feed.await.unwrap();
    for m in members.into_iter().flatten() {
        m.stop().await;
    }
}
