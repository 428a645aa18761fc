//! Scale-out on the real broker: two instances in one consumer group share order-to-cash (four
//! co-partitioned topics, 6 partitions each; each instance holds whole partition numbers across
//! the four). One instance is killed with SIGKILL while both process, with committed state and
//! a backlog: both made certain by freezing and throttling it, never by a pause. The survivor takes over its
//! partitions, restores their state (instances and pending timers) from the changelog, fires
//! their deadlines, and the alert and SLA topics still hold exactly the expected records.

mod common;

use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_instances_partitions_and_deadlines_move_to_the_survivor_exactly_once() {
    common::require_kafka();
    let orders = 30_000;
    let run = common::OrderToCash::new(orders, 31).await;
    let orders_topic = run.topic(sightline::demo::generator::ORDERS);

    // Instance b: the same group, its own state dir, HTTP port and instance id.
    let text = std::fs::read_to_string(run.setup.config()).unwrap();
    let with_id = |id: &str| {
        text.replace(
            "commit_interval_ms = 100\n",
            &format!("commit_interval_ms = 100\ninstance_id = \"{id}\"\n"),
        )
    };
    std::fs::write(run.setup.config(), with_id("a")).unwrap();
    let port_b = common::free_port();
    let config_b = run.setup.dir.join("sightline-b.toml");
    std::fs::write(
        &config_b,
        with_id("b")
            .replace(
                &format!("127.0.0.1:{}", run.setup.port),
                &format!("127.0.0.1:{port_b}"),
            )
            .replace("dir = \"state\"", "dir = \"state-b\""),
    )
    .unwrap();
    let (log_a, log_b) = (run.setup.log(), run.setup.dir.join("sightline-b.log"));

    // The premises are made to hold by construction, not by timing:
    // 1. a runs alone until it has committed state (the changelog holds records), then is
    //    frozen (SIGSTOP): every partition has committed state and a known backlog.
    // 2. b joins while a runs throttled (a tenth of the time, by SIGSTOP/SIGCONT), so the two
    //    share the partitions while a cannot finish its share.
    // 3. When both hold partitions, a is frozen again, its backlog is read, and it is killed.
    let changelog = sightline::state::changelog::topic(&run.setup.group);
    let mut a = common::Sightline::spawn(&run.setup.config(), &log_a, run.setup.port);
    let a_pid = a.child.id();
    common::wait_for(
        "instance a to commit state to the changelog",
        Duration::from_secs(180),
        async || (common::committed_records(&changelog, 6) > 0).then_some(()),
    )
    .await;
    common::signal(a_pid, "STOP");
    let throttle =
        common::Throttle::start(a_pid, Duration::from_millis(50), Duration::from_millis(450));
    let b = common::Sightline::spawn(&config_b, &log_b, port_b);
    let consumed = format!("sightline_records_consumed_total{{topic=\"{orders_topic}\"}}");
    let held_a = common::wait_for(
        "both instances to hold partitions and b to read",
        Duration::from_secs(180),
        async || {
            let (held_a, held_b) = (
                common::held_partitions(&log_a, &orders_topic),
                common::held_partitions(&log_b, &orders_topic),
            );
            // a has committed state for one of its partitions since the split, so the
            // survivor has something of a's to restore.
            let committed_by_a = || {
                held_a.iter().any(|p| {
                    let end = common::end_offset(&changelog, *p);
                    end > 0 && common::committed_records_between(&changelog, *p, 0, end) > 0
                })
            };
            (!held_a.is_empty()
                && !held_b.is_empty()
                && held_a.len() + held_b.len() == 6
                && b.metric(&consumed).await > 0
                && committed_by_a())
            .then_some(held_a)
        },
    )
    .await;
    throttle.stop_frozen();
    // What a left unread, per partition number across the four topics, read while it is
    // frozen. A frozen instance can still have one transaction in flight at the coordinator, and
    // one transaction holds at most 5,000 records (the engine's batch), so a partition more than
    // that behind is certainly unfinished.
    let mut unread = std::collections::BTreeMap::<i32, i64>::new();
    for (_, p, left) in common::unread(&run.setup.group, &run.topics) {
        *unread.entry(p).or_default() += left;
    }
    a.child.kill().expect("SIGKILL");
    a.child.wait().unwrap();
    let killed_at = chrono::Utc::now().timestamp_millis();
    // a's changelog as it left it: the survivor writes there too once it takes over.
    let changelog_at_kill: std::collections::BTreeMap<i32, i64> = held_a
        .iter()
        .map(|p| (*p, common::end_offset(&changelog, *p)))
        .collect();
    let unfinished: std::collections::BTreeSet<i32> = unread
        .iter()
        .filter(|(p, left)| held_a.contains(p) && **left > 5_000)
        .map(|(p, _)| *p)
        .collect();
    println!(
        "scale-out: killed instance a holding partitions {held_a:?}; {} of them had over 5,000 unread records: {unfinished:?} (unread per partition: {unread:?})",
        unfinished.len()
    );
    assert!(
        !unfinished.is_empty(),
        "instance a had (nearly) finished its partitions before the kill; the test proves nothing"
    );

    common::wait_caught_up(&run.setup.group, &run.topics, Duration::from_secs(900)).await;
    let held_b = common::held_partitions(&log_b, &orders_topic);
    assert_eq!(
        held_b,
        (0..6).collect(),
        "the survivor holds every partition"
    );
    let alerts = run.assert_exact_outputs(orders, "scale-out");

    // Deadlines of the killed instance's partitions fired on the survivor: alerts about
    // instances on those partitions, written after the kill.
    let moved = alerts
        .iter()
        .filter(|r| r.timestamp_ms.is_some_and(|t| t > killed_at))
        .filter(|r| {
            let a: serde_json::Value = serde_json::from_slice(r.value.as_deref().unwrap()).unwrap();
            a["lineage"][0]["partition"]
                .as_i64()
                .is_some_and(|p| unfinished.contains(&(p as i32)))
        })
        .count();
    println!("scale-out: {moved} alerts about instance a's partitions came from the survivor after the kill");
    assert!(
        moved > 0,
        "no alert of a's partitions fired on the survivor"
    );
    // The survivor restored the moved partitions' state from the changelog: exactly the
    // committed records of the ranges it says it read, counted again from the topic.
    let restores: Vec<serde_json::Value> = std::fs::read_to_string(&log_b)
        .unwrap()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["message"] == "state restored from the changelog")
        .collect();
    let restored: u64 = restores.iter().filter_map(|v| v["records"].as_u64()).sum();
    let mut expected = 0;
    let mut covered = std::collections::BTreeSet::new();
    for v in &restores {
        for range in v["ranges"]
            .as_str()
            .unwrap_or_default()
            .split(',')
            .filter(|r| !r.is_empty())
        {
            let (p, span) = range.split_once(':').expect("p:from-to");
            let (from, to) = span.split_once('-').expect("from-to");
            let (p, from, to): (i32, i64, i64) = (
                p.parse().unwrap(),
                from.parse().unwrap(),
                to.parse().unwrap(),
            );
            covered.insert(p);
            expected += common::committed_records_between(&changelog, p, from, to);
        }
    }
    println!(
        "scale-out: the survivor restored {restored} changelog records of partitions {covered:?}; the topic holds {expected} committed records in those ranges"
    );
    // Every partition of a with committed state was restored. One that a had not yet
    // committed a transaction for has nothing in its changelog, and nothing to restore.
    for p in held_a.difference(&covered) {
        let end = changelog_at_kill[p];
        assert_eq!(
            common::committed_records_between(&changelog, *p, 0, end),
            0,
            "the survivor restored {covered:?}, not partition {p} of a ({held_a:?}), whose changelog held committed state at the kill"
        );
    }
    assert!(
        !covered.is_disjoint(&held_a),
        "the survivor restored none of a's partitions ({held_a:?}); the test proves nothing"
    );
    assert!(restored > 0, "the survivor restored nothing");
    assert_eq!(restored, expected, "restored records against the changelog");
    b.stop().await;
}
