//! Corrupt state recovers itself: an instance stopped with its state on disk gets bytes flipped
//! in every SST file of its state dir. Started again, it moves the dir aside (kept, named in
//! the log), rebuilds its state from the changelog, and the alert and SLA topics hold exactly
//! the expected records: nothing lost, nothing twice.

mod common;

use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flipped_bytes_in_the_state_files_are_rebuilt_from_the_changelog() {
    common::require_kafka();
    let orders = 3_000;
    let run = common::OrderToCash::new(orders, 41).await;
    let setup = &run.setup;
    // Half the input, then a clean stop (the memtables are flushed to SST files).
    let sl = setup.start().await;
    let orders_topic = run.topic(sightline::demo::generator::ORDERS);
    let consumed = format!("sightline_records_consumed_total{{topic=\"{orders_topic}\"}}");
    common::wait_for(
        "a third of the orders to be read",
        Duration::from_secs(120),
        async || (sl.metric(&consumed).await * 3 > orders as u64).then_some(()),
    )
    .await;
    sl.stop().await;

    let state = setup.dir.join("state");
    let mut flipped = 0;
    for entry in std::fs::read_dir(&state).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "sst") {
            let mut bytes = std::fs::read(&path).unwrap();
            let (mid, len) = (bytes.len() / 3, bytes.len());
            for b in &mut bytes[mid..(mid + 64).min(len)] {
                *b ^= 0x5a;
            }
            std::fs::write(&path, bytes).unwrap();
            flipped += 1;
        }
    }
    assert!(
        flipped > 0,
        "the stopped instance left SST files in {}",
        state.display()
    );

    let sl = setup.start().await;
    sl.wait_metric(
        "sightline_state_recoveries_total",
        1,
        Duration::from_secs(120),
    )
    .await;
    common::wait_caught_up(&setup.group, &run.topics, Duration::from_secs(300)).await;
    run.assert_exact_outputs(orders, "corrupt state");
    let log = std::fs::read_to_string(setup.log()).unwrap();
    let moved = log
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| {
            v["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("state store corrupt"))
        })
        .expect("a log line says what happened");
    let aside = moved["moved_to"].as_str().unwrap();
    println!("corrupt state: {flipped} SST files flipped; moved aside to {aside}");
    assert!(
        std::path::Path::new(aside).is_dir(),
        "the old state dir is kept"
    );
    sl.stop().await;
}
