//! The demo's operations story, beside the order traffic: a carrier scan feed and a downstream
//! consumer of it, on a fixed timeline from the feed's start; the feed runs until the demo ends.
//!
//! - UPS scans every 100 ms throughout; one scan at 1 s arrives 20 minutes old (the age monitor
//!   fires, and resolves on the next fresh scan).
//! - DHL scans until 1.5 s, is silent until 5.5 s, then scans again (the freshness monitor, quiet
//!   period 2 s, fires once and resolves once).
//! - The `track-and-trace` consumer group keeps up with the feed until 1.5 s, stops committing
//!   until 5.5 s while scans keep arriving, then catches up (the lag monitor sees STALL or STOP,
//!   then OK).

use anyhow::Context;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use std::time::{Duration, Instant};

pub const TOPIC: &str = "carrier.scans";
pub const WATCHED_GROUP: &str = "track-and-trace";
const SILENT: (u64, u64) = (1_500, 5_500);
const STALE_SCAN_AT: u64 = 1_000;

/// The feed's topology: the source, the silence monitor and the age monitor.
pub const TOPOLOGY: &str = r#"name: carrier-feed
sources:
  - name: carrier-scans
    topic: carrier.scans
    format: json
    event_type: { fixed: parcel_scanned }
    key: { field: parcel }
    event_time: { field: scanned_at }
    dimensions: { carrier: carrier }
monitors:
  freshness:
    - { name: dhl-scans, source: carrier-scans, dimension: { carrier: dhl }, quiet_period: 2s, severity: warning }
  age:
    - { name: scan-age, source: carrier-scans, max_age: 15m, report_every: 2s, severity: warning }
"#;

/// How long the timeline takes (the feed goes on, steady, after it).
pub const TIMELINE: Duration = Duration::from_millis(7_000);

/// Runs the timeline, and the feed until `stop`: produces the scans and plays the watched
/// consumer. Returns the number of scans produced.
pub async fn run(
    bootstrap: String,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<usize> {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .create()
        .context("creating the carrier feed producer")?;
    let watcher: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("group.id", WATCHED_GROUP)
        .set("enable.auto.commit", "false")
        .create()
        .context("creating the track-and-trace consumer")?;
    let start = Instant::now();
    let mut n = 0u64;
    let mut stale_sent = false;
    while !*stop.borrow() {
        let t = start.elapsed().as_millis() as u64;
        let now = chrono::Utc::now().timestamp_millis();
        // The first round at or after STALE_SCAN_AT sends the stale scan, however late that
        // round runs on a busy machine: it is sent exactly once.
        let stale = !stale_sent && t >= STALE_SCAN_AT;
        stale_sent |= stale;
        let mut scans = vec![("ups", if stale { now - 20 * 60_000 } else { now - 200 })];
        if !(SILENT.0..SILENT.1).contains(&t) {
            scans.push(("dhl", now - 300));
        }
        for (carrier, at) in scans {
            n += 1;
            let value = format!(r#"{{"parcel":"P{n}","carrier":"{carrier}","scanned_at":{at}}}"#);
            let key = format!("P{n}");
            producer
                .send(
                    FutureRecord::to(TOPIC).key(&key).payload(&value),
                    Duration::from_secs(5),
                )
                .await
                .map_err(|(e, _)| anyhow::anyhow!("carrier feed: {e}"))?;
        }
        // track-and-trace keeps up, except while it is stalled.
        if !(SILENT.0..SILENT.1).contains(&t) {
            let mut tpl = TopicPartitionList::new();
            for p in 0..3 {
                if let Ok((_, high)) = watcher.fetch_watermarks(TOPIC, p, Duration::from_secs(2)) {
                    let _ = tpl.add_partition_offset(TOPIC, p, Offset::Offset(high));
                }
            }
            if tpl.count() > 0 {
                let _ = watcher.commit(&tpl, CommitMode::Sync);
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(100)) => {}
            _ = stop.changed() => {}
        }
    }
    Ok(n as usize)
}
