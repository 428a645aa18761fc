//! The demo's dead-letter story: the warehouse picks feed, a mapping mistake, its fix, and a
//! replay of what was dead-lettered meanwhile.
//!
//! - The picks source is declared with `event_time` as RFC 3339 strings, but the warehouse's
//!   new scanner app sends epoch milliseconds: those picks are dead-lettered
//!   (`invalid_event_time`), and the dead-letter monitor fires (depth over 3).
//! - The fix is one line, `format: auto`; Sightline applies it by a reload (SIGHUP in
//!   production), with no restart.
//! - The operator replays the dead letters: a dry run first, which lists them, then the replay,
//!   which sends each back to `warehouse.picks`. Sightline reads them as events, the depth falls
//!   to 0, and the monitor resolves.

use anyhow::Context;
use rdkafka::producer::{FutureProducer, FutureRecord};
use std::time::Duration;

pub const TOPIC: &str = "warehouse.picks";
pub const DEAD_LETTERS: &str = "warehouse.picks.dlq";
/// Picks produced; every second one carries an epoch-millisecond time.
pub const PICKS: usize = 10;
pub const REPLAY_ID: &str = "demo-picks-fix";
/// Where the topology is said to live (the same name before and after the fix, so the reload
/// compares like with like).
pub const FILE: &str = "<demo>/warehouse-picks.yaml";

/// The picks topology, with `event_time` read as `time_format`.
pub fn topology(time_format: &str) -> String {
    format!(
        r#"name: warehouse-picks
sources:
  - name: warehouse-picks
    topic: {TOPIC}
    format: json
    event_type: {{ fixed: item_picked }}
    key: {{ field: pick_id }}
    event_time: {{ field: picked_at, format: {time_format} }}
monitors:
  dead_letters:
    - {{ name: picks-dead-letters, topic: {DEAD_LETTERS}, max_depth: 3, severity: warning }}
"#
    )
}

/// The topology as first deployed: RFC 3339 times only.
pub fn broken() -> String {
    topology("rfc3339")
}

/// The fix: RFC 3339 strings or epoch milliseconds.
pub fn fixed() -> String {
    topology("auto")
}

/// Produces the picks: odd ones from the old scanners (RFC 3339), even ones from the new
/// scanner app (epoch milliseconds).
pub async fn produce(producer: &FutureProducer) -> anyhow::Result<()> {
    let now = chrono::Utc::now();
    for i in 1..=PICKS {
        let at = now - chrono::Duration::seconds(30 - i as i64);
        let picked_at = if i % 2 == 1 {
            serde_json::Value::from(at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        } else {
            serde_json::Value::from(at.timestamp_millis())
        };
        let key = format!("PICK-{i:03}");
        let value = serde_json::json!({"pick_id": key, "sku": format!("SKU-{}", 100 + i), "picked_at": picked_at})
            .to_string();
        producer
            .send(
                FutureRecord::to(TOPIC).key(&key).payload(&value),
                Duration::from_secs(10),
            )
            .await
            .map_err(|(e, _)| anyhow::anyhow!("warehouse picks producer: {e}"))
            .context("producing the demo's warehouse picks")?;
    }
    Ok(())
}

/// The operator's replay: every dead letter of the picks topic, back to its original topic.
pub fn replay_options(dry_run: bool) -> crate::replay::Options {
    crate::replay::Options {
        id: REPLAY_ID.into(),
        from: DEAD_LETTERS.into(),
        to: None,
        dry_run,
        rate: 50.0,
        force: false,
        filter: crate::replay::Filter {
            original_topic: Some(TOPIC.into()),
            ..Default::default()
        },
        progress: false,
        skip: false,
        create_target: false,
    }
}
