//! The embedded demo end to end, in-process: exact counts from the seeded generator, and the
//! HTTP endpoints answering while it runs.

mod common;

use sightline::demo::{self, generator, DemoOptions};
use std::collections::BTreeMap;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_reads_every_record_and_dead_letters_exactly_the_poison() {
    let opts = DemoOptions {
        orders: 300,
        seconds: 3,
        poison_every: 100,
        http: "127.0.0.1:0".parse().unwrap(),
        seed: 7,
    };
    // Only the counts and fault keys matter here; the demo places the orders in time itself.
    let generated = generator::generate(
        opts.seed,
        opts.orders,
        0,
        1_000_000_000_000,
        opts.poison_every,
    );
    let (plan, faults) = (generated.records, generated.faults);
    let (tx, rx) = tokio::sync::oneshot::channel();
    // The mock cluster is not Send: run the demo on this task, and look at HTTP beside it.
    let look = async {
        let addr = rx.await.expect("the demo serves HTTP");
        for path in ["/healthz", "/metrics"] {
            let resp = reqwest::get(format!("http://{addr}{path}"))
                .await
                .expect("answers");
            assert_eq!(resp.status().as_u16(), 200, "{path}");
        }
        let readyz = reqwest::get(format!("http://{addr}/readyz"))
            .await
            .expect("answers");
        assert!([200, 503].contains(&readyz.status().as_u16()));
        let metrics = reqwest::get(format!("http://{addr}/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(metrics.contains("sightline_build_info"), "{metrics}");
    };
    let (report, ()) = tokio::time::timeout(Duration::from_secs(60), async {
        tokio::join!(demo::run(opts, Some(tx)), look)
    })
    .await
    .expect("demo ends within 60 s");
    let report = report.expect("demo succeeds");
    let mut events = BTreeMap::new();
    let mut poison = BTreeMap::new();
    for r in &plan {
        match (r.event_type, r.poison) {
            (Some(t), _) => {
                *events
                    .entry((r.topic.to_string(), t.to_string()))
                    .or_insert(0u64) += 1
            }
            (_, Some(c)) => {
                *poison
                    .entry((r.topic.to_string(), c.to_string()))
                    .or_insert(0u64) += 1
            }
            _ => unreachable!(),
        }
    }
    assert_eq!(report.produced, plan.len());
    // The order traffic; the carrier feed (its own topic) is checked below, and Sightline's
    // internal topics (drift claims) are not traffic.
    let feed = demo::carrier_feed::TOPIC;
    let order_records: u64 = report
        .summary
        .consumed
        .iter()
        .filter(|(t, _)| sightline::demo::generator::TOPICS.contains(&t.as_str()))
        .map(|(_, n)| n)
        .sum();
    assert_eq!(order_records as usize, plan.len());
    let mut order_events = report.summary.events.clone();
    let scans = order_events
        .remove(&(feed.to_string(), "parcel_scanned".to_string()))
        .unwrap_or(0);
    assert_eq!(scans, report.summary.consumed[feed]);
    // The warehouse picks: 5 of 10 dead-lettered for their epoch-ms times, then replayed after
    // the fix, so all 10 are events.
    let picks = demo::warehouse_picks::TOPIC.to_string();
    assert_eq!(
        order_events.remove(&(picks.clone(), "item_picked".to_string())),
        Some(10)
    );
    assert_eq!(order_events, events);
    let mut dead_lettered = report.summary.dead_lettered.clone();
    assert_eq!(
        dead_lettered.remove(&(picks.clone(), "invalid_event_time".to_string())),
        Some(5)
    );
    assert_eq!(dead_lettered, poison);
    // A dry run first (sends nothing), then the replay: exactly the 5 dead letters.
    let replays: Vec<(&str, i64, i64, i64)> = report
        .summary
        .replays
        .iter()
        .map(|(what, s)| (what.as_str(), s.scanned, s.selected, s.sent))
        .collect();
    assert_eq!(replays, vec![("dry run", 5, 5, 0), ("replay", 5, 5, 5)]);
    assert_eq!(
        poison.values().sum::<u64>(),
        events.values().sum::<u64>() / 100
    );

    // The two mid-run schema changes: one drift event each, one alert for the incompatible one.
    let drift: Vec<(String, String, String)> = report
        .summary
        .drift_records
        .iter()
        .map(|d| {
            (
                d["drift_id"].as_str().unwrap().to_string(),
                d["verdict"].as_str().unwrap().to_string(),
                d["violations"].to_string(),
            )
        })
        .collect();
    let mut drift = drift;
    drift.sort();
    assert_eq!(
        drift,
        vec![
            (
                "json:finance.payments:currency:unknown_field".to_string(),
                "COMPATIBLE".to_string(),
                r#"[{"field":"currency","kind":"UNKNOWN_FIELD"}]"#.to_string()
            ),
            (
                "json:warehouse.shipments:carrier:wrong_type".to_string(),
                "INCOMPATIBLE".to_string(),
                r#"[{"field":"carrier","kind":"WRONG_TYPE"}]"#.to_string()
            ),
        ]
    );
    // Every workflow fault the generator injected, and nothing else, on the alerts topic.
    let mut want = common::expected_workflow_alerts(&faults);
    want.push((
        "schema/json:warehouse.shipments:carrier:wrong_type".into(),
        "FIRING".into(),
    ));
    // The carrier feed: DHL falls silent once and comes back; one stale UPS scan.
    for id in [
        "freshness/dhl-scans",
        "age/scan-age",
        "dead_letters/picks-dead-letters/warehouse.picks.dlq/dead_letter_depth",
    ] {
        want.push((id.into(), "FIRING".into()));
        want.push((id.into(), "RESOLVED".into()));
    }
    want.sort();
    let mut got: Vec<(String, String)> = report
        .summary
        .alert_records
        .iter()
        .map(|a| {
            (
                a["dedupe_id"].as_str().unwrap().to_string(),
                a["status"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    got.sort();
    assert_eq!(got, want);

    // SLA events: one per finished order, one STEP_LATE per late shipment, one EXPIRED per
    // unfinished instance.
    let n = |f: &str| faults.get(f).map_or(0, Vec::len) as u64;
    let orders = 300 - n("orphan");
    let sla: Vec<(&str, u64)> = report
        .summary
        .sla
        .iter()
        .filter(|((wf, _), _)| wf == "order-to-cash")
        .map(|((_, o), v)| (o.as_str(), *v))
        .collect();
    // The scan-age monitor reports every 2 s while the demo runs.
    assert!(report.summary.sla[&("scan-age".to_string(), "event_age".to_string())] >= 2);
    assert_eq!(
        sla,
        vec![
            ("cancelled", n("cancelled")),
            (
                "completed",
                orders
                    - n("cancelled")
                    - n("missing_payment")
                    - n("missing_invoice")
                    - n("missing_shipment")
            ),
            (
                "expired",
                n("missing_payment") + n("missing_invoice") + n("missing_shipment") + n("orphan")
            ),
            ("step_late", n("late_shipment") + n("late_invoice")),
        ]
    );

    // The track-and-trace consumer stalled while scans kept coming, then caught up.
    let statuses: Vec<&str> = report
        .summary
        .lag_records
        .iter()
        .filter(|l| l["group"] == demo::carrier_feed::WATCHED_GROUP)
        .map(|l| l["status"].as_str().unwrap())
        .collect();
    // Exactly: the lag may first read as growing (WARN, ERR), then STALL and/or STOP, then OK
    // once it catches up, and nothing else.
    let stalled = statuses
        .iter()
        .position(|s| *s == "STALL" || *s == "STOP")
        .unwrap_or_else(|| panic!("no STALL or STOP in {statuses:?}"));
    let (growing, rest) = statuses.split_at(stalled);
    assert!(
        growing.iter().all(|s| *s == "WARN" || *s == "ERR"),
        "{statuses:?}"
    );
    let (ok, stuck) = rest.split_last().unwrap();
    assert_eq!(*ok, "OK", "{statuses:?}");
    assert!(
        stuck.iter().all(|s| *s == "STALL" || *s == "STOP"),
        "{statuses:?}"
    );
}
