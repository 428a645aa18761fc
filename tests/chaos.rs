//! Exactly once under SIGKILL, on the real broker: 52,000 orders of order-to-cash traffic
//! (over 200,000 events, with every injected fault kind) are read as a catch-up replay while
//! Sightline is killed with SIGKILL 10 times and restarted each time: eight kills at random
//! moments while it processes, and two after wiping its state directory, while it restores its
//! state from the changelog. The alert and SLA topics, read with read_committed, must then hold
//! exactly the expected records: 0 lost, 0 duplicated.
//!
//! The kill moments come from a seed printed at the start (`SIGHTLINE_CHAOS_SEED` replays one).

mod common;

use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_ten_times_loses_nothing_and_repeats_nothing() {
    common::require_kafka();
    let orders: usize = std::env::var("SIGHTLINE_CHAOS_ORDERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(52_000);
    let seed: u64 = std::env::var("SIGHTLINE_CHAOS_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| chrono::Utc::now().timestamp_millis() as u64);
    println!("chaos: {orders} orders, seed {seed}");
    let run = common::OrderToCash::new(orders, 23).await;
    let events = run.plan.records.len();
    println!("chaos: {events} records produced");

    let mut rng = seed | 1;
    let mut next = move |lo: u64, hi: u64| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        lo + rng % (hi - lo)
    };
    let orders_topic = run.topic(sightline::demo::generator::ORDERS);
    let consumed = format!("sightline_records_consumed_total{{topic=\"{orders_topic}\"}}");
    let mut kills = 0;
    let mut sl = run.setup.start().await;
    while kills < 10 {
        if kills % 5 == 4 {
            // Lose the disk: wipe the state directory, start, and kill while the state is being
            // restored from the changelog.
            sl.child.kill().expect("SIGKILL");
            sl.child.wait().unwrap();
            std::fs::remove_dir_all(run.setup.dir.join("state")).unwrap();
            sl = common::Sightline::spawn(&run.setup.config(), &run.setup.log(), run.setup.port);
            common::wait_for("a restore to start", Duration::from_secs(120), async || {
                (common::http_get(&format!("{}/metrics", sl.http))
                    .await
                    .is_some()
                    && sl.metric("sightline_state_restoring").await == 1)
                    .then_some(())
            })
            .await;
            tokio::time::sleep(Duration::from_millis(next(0, 300))).await;
            let restored = sl.metric("sightline_state_restored_records_total").await;
            sl.child.kill().expect("SIGKILL");
            sl.child.wait().unwrap();
            kills += 1;
            println!("chaos: SIGKILL {kills} during a restore from an empty state dir ({restored} records applied so far)");
            sl = run.setup.start().await;
            continue;
        }
        // Otherwise kill while it processes, at a random point after reading resumed (or, once
        // everything is read, while it fires the remaining timers).
        let started = std::time::Instant::now();
        common::wait_for("reading to resume", Duration::from_secs(120), async || {
            (sl.metric(&consumed).await > 0 || common::caught_up(&run.setup.group, &run.topics))
                .then_some(())
        })
        .await;
        println!(
            "chaos: reading resumed {:.1} s after ready",
            started.elapsed().as_secs_f64()
        );
        tokio::time::sleep(Duration::from_millis(next(100, 2_500))).await;
        let read = sl.metric(&consumed).await;
        sl.child.kill().expect("SIGKILL");
        sl.child.wait().unwrap();
        kills += 1;
        println!("chaos: SIGKILL {kills} (this run had read {read} orders records)");
        sl = run.setup.start().await;
    }
    common::wait_caught_up(&run.setup.group, &run.topics, Duration::from_secs(900)).await;

    run.assert_exact_outputs(orders, &format!("chaos, after {kills} SIGKILLs"));
    sl.stop().await;
}
