//! The demo's live lines and final table, read from the same metrics `/metrics` serves.

use crate::observe::metrics::{counter_values, METRICS};
use std::collections::BTreeMap;
use std::fmt::Write;
use std::time::Duration;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    /// (topic, event type) -> events.
    pub events: BTreeMap<(String, String), u64>,
    /// (topic, class) -> dead-lettered records.
    pub dead_lettered: BTreeMap<(String, String), u64>,
    /// topic -> records read.
    pub consumed: BTreeMap<String, u64>,
    /// (topic, verdict) -> drift events.
    pub drift_events: BTreeMap<(String, String), u64>,
    /// (kind, status) -> alerts.
    pub alerts: BTreeMap<(String, String), u64>,
    /// (workflow, outcome) -> SLA events.
    pub sla: BTreeMap<(String, String), u64>,
    pub timers_fired: u64,
    /// topic -> outputs written.
    pub outputs: BTreeMap<String, u64>,
    /// The drift records as read back from the drift topic.
    pub drift_records: Vec<serde_json::Value>,
    /// The alert records as read back from the alerts topic.
    pub alert_records: Vec<serde_json::Value>,
    /// status -> consumer-group lag status changes.
    pub lag_changes: BTreeMap<String, u64>,
    /// The lag events as read back from the lag topic.
    pub lag_records: Vec<serde_json::Value>,
    /// The demo's replays (dry run, replay) and what each did.
    pub replays: Vec<(String, crate::replay::Summary)>,
}

fn label<'a>(labels: &'a [(String, String)], name: &str) -> &'a str {
    labels
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .unwrap_or("")
}

impl Summary {
    pub fn read() -> Summary {
        let mut s = Summary::default();
        for (l, v) in counter_values(&METRICS.events_consumed) {
            s.events.insert(
                (label(&l, "topic").into(), label(&l, "event_type").into()),
                v,
            );
        }
        for (l, v) in counter_values(&METRICS.records_dead_lettered) {
            s.dead_lettered
                .insert((label(&l, "topic").into(), label(&l, "class").into()), v);
        }
        for (l, v) in counter_values(&METRICS.records_consumed) {
            s.consumed.insert(label(&l, "topic").into(), v);
        }
        for (l, v) in counter_values(&METRICS.drift_events) {
            s.drift_events
                .insert((label(&l, "topic").into(), label(&l, "verdict").into()), v);
        }
        for (l, v) in counter_values(&METRICS.sla_events) {
            s.sla.insert(
                (label(&l, "workflow").into(), label(&l, "outcome").into()),
                v,
            );
        }
        for (l, v) in counter_values(&METRICS.outputs_produced) {
            s.outputs.insert(label(&l, "topic").into(), v);
        }
        s.timers_fired = counter_values(&METRICS.timers_fired)
            .iter()
            .map(|(_, v)| v)
            .sum();
        for (l, v) in counter_values(&METRICS.lag_status_changes) {
            s.lag_changes.insert(label(&l, "status").into(), v);
        }
        for (l, v) in counter_values(&METRICS.alerts_emitted) {
            s.alerts
                .insert((label(&l, "kind").into(), label(&l, "status").into()), v);
        }
        s
    }

    pub fn records_consumed(&self) -> u64 {
        self.consumed.values().sum()
    }

    /// Records read from the order-to-cash traffic's topics (not the carrier feed, the
    /// pick-list story or Sightline's internal topics).
    pub fn order_records_consumed(&self) -> u64 {
        self.consumed
            .iter()
            .filter(|(t, _)| super::generator::TOPICS.contains(&t.as_str()))
            .map(|(_, n)| n)
            .sum()
    }

    pub fn outputs_total(&self) -> u64 {
        self.outputs.values().sum()
    }

    pub fn events_total(&self) -> u64 {
        self.events.values().sum()
    }

    pub fn dead_lettered_total(&self) -> u64 {
        self.dead_lettered.values().sum()
    }

    pub fn progress_line(&self, produced: usize, elapsed: Duration) -> String {
        format!(
            "demo: {:>5.1}s  read {:>6}/{} records  events {:>6}  dead-lettered {:>3}",
            elapsed.as_secs_f64(),
            self.order_records_consumed(),
            produced,
            self.events_total(),
            self.dead_lettered_total()
        )
    }

    /// The final table.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "\nEvents consumed, by topic and type");
        let _ = writeln!(
            out,
            "  {:<24} {:<22} {:>8}",
            "topic", "event type", "events"
        );
        for ((topic, ty), n) in &self.events {
            let _ = writeln!(out, "  {topic:<24} {ty:<22} {n:>8}");
        }
        let _ = writeln!(
            out,
            "  {:<24} {:<22} {:>8}",
            "total",
            "",
            self.events_total()
        );
        let _ = writeln!(out, "\nRecords dead-lettered, by topic and error class");
        if self.dead_lettered.is_empty() {
            let _ = writeln!(out, "  (none)");
        } else {
            let _ = writeln!(out, "  {:<24} {:<22} {:>8}", "topic", "class", "records");
            for ((topic, class), n) in &self.dead_lettered {
                let _ = writeln!(out, "  {topic:<24} {class:<22} {n:>8}");
            }
            let _ = writeln!(
                out,
                "  {:<24} {:<22} {:>8}",
                "total",
                "",
                self.dead_lettered_total()
            );
        }
        let _ = writeln!(out, "\nSchema drift (as read back from the drift topic)");
        if self.drift_records.is_empty() {
            let _ = writeln!(out, "  (none)");
        }
        let s = |v: &serde_json::Value| v.as_str().unwrap_or("-").to_string();
        for d in &self.drift_records {
            let _ = writeln!(
                out,
                "  {:<12} {:<22} {}",
                s(&d["verdict"]),
                s(&d["topic"]),
                s(&d["drift_id"])
            );
            for v in d["violations"].as_array().into_iter().flatten() {
                let _ = writeln!(out, "      field {:<16} {}", s(&v["field"]), s(&v["kind"]));
            }
            for c in d["diff_vs_previous"].as_array().into_iter().flatten() {
                let _ = writeln!(
                    out,
                    "      field {:<16} {} ({} -> {})",
                    s(&c["path"]),
                    s(&c["change"]),
                    s(&c["before"]),
                    s(&c["after"])
                );
            }
        }
        let _ = writeln!(
            out,
            "\nSLA events, by workflow (or age monitor) and outcome"
        );
        if self.sla.is_empty() {
            let _ = writeln!(out, "  (none)");
        }
        for ((wf, outcome), n) in &self.sla {
            let _ = writeln!(out, "  {wf:<24} {outcome:<22} {n:>8}");
        }
        let _ = writeln!(
            out,
            "\nAlerts, by kind and status (as read back from the alerts topic)"
        );
        let mut by_kind: BTreeMap<(String, String), (u64, String)> = BTreeMap::new();
        for a in &self.alert_records {
            let e = by_kind
                .entry((s(&a["kind"]), s(&a["status"])))
                .or_insert((0, s(&a["summary"])));
            e.0 += 1;
        }
        if by_kind.is_empty() {
            let _ = writeln!(out, "  (none)");
        }
        for ((kind, status), (n, example)) in &by_kind {
            let _ = writeln!(out, "  {kind:<20} {status:<9} {n:>6}   e.g. {example}");
        }
        let _ = writeln!(out, "\nDead-letter replays (warehouse.picks.dlq)");
        if self.replays.is_empty() {
            let _ = writeln!(out, "  (none)");
        } else {
            let _ = writeln!(
                out,
                "  {:<10} {:>6} {:>9} {:>6} {:>13}",
                "run", "read", "selected", "sent", "filtered out"
            );
        }
        for (what, r) in &self.replays {
            let _ = writeln!(
                out,
                "  {what:<10} {:>6} {:>9} {:>6} {:>13}",
                r.scanned, r.selected, r.sent, r.filtered_out
            );
        }
        let _ = writeln!(
            out,
            "\nConsumer-group lag status changes (as read back from the lag topic)"
        );
        if self.lag_records.is_empty() {
            let _ = writeln!(out, "  (none)");
        }
        for l in &self.lag_records {
            let _ = writeln!(
                out,
                "  {:<18} {:>6} -> {:<6}  lag {:>6} records, oldest unconsumed {:>6} ms old",
                s(&l["group"]),
                s(&l["previous_status"]),
                s(&l["status"]),
                l["total_lag_offsets"],
                l["max_time_lag_ms"]
            );
        }
        out
    }
}
