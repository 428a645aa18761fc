//! Freshness: a stream (a source, optionally one event type and dimension values) that produces
//! nothing for longer than its quiet period, while its calendar says it should be live, fires
//! an alert (`stream_silent`, dedupe id `freshness/<monitor>`), RESOLVED when events return.
//! Silence is measured on the wall clock: it is about what arrives now, not about event time.
//! Pure: the engine passes events and the time.

use crate::detectors::workflow::calendar::weekday;
use crate::ingest::Event;
use crate::outputs::alert::StreamAlert;
use crate::outputs::{AlertStatus, Output};
use crate::topology::monitor::{parse_hours, FreshnessSpec};
use chrono::{Datelike, TimeZone, Timelike};

#[derive(Clone)]
struct Monitor {
    spec: FreshnessSpec,
    tz: chrono_tz::Tz,
    days: Vec<chrono::Weekday>,
    hours: Option<(u32, u32)>,
    last_seen_ms: i64,
    firing: bool,
}

#[derive(Clone)]
pub struct Freshness {
    monitors: Vec<Monitor>,
    /// Silence counts only once Sightline holds partitions to read from.
    armed: bool,
}

impl Freshness {
    /// Monitors start as if their stream had just been seen at `now_ms`; call [`Self::arm`]
    /// when input partitions are first assigned.
    pub fn new(specs: &[FreshnessSpec], now_ms: i64) -> Self {
        Freshness {
            armed: false,
            monitors: specs
                .iter()
                .map(|s| Monitor {
                    tz: s.timezone.parse().unwrap_or(chrono_tz::Tz::UTC),
                    days: s.active_days.iter().filter_map(|d| weekday(d)).collect(),
                    hours: s.active_hours.as_deref().and_then(parse_hours),
                    spec: s.clone(),
                    last_seen_ms: now_ms,
                    firing: false,
                })
                .collect(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.monitors.is_empty()
    }

    /// Input partitions were assigned at `now_ms`: silence is measured from here (the time
    /// Sightline spent starting and joining its group is not the stream's silence).
    pub fn arm(&mut self, now_ms: i64) {
        if std::mem::replace(&mut self.armed, true) {
            return;
        }
        for m in &mut self.monitors {
            m.last_seen_ms = m.last_seen_ms.max(now_ms);
        }
    }

    /// An event arrived at `now_ms`: monitors it belongs to are fresh again.
    pub fn on_event(&mut self, ev: &Event, now_ms: i64, out: &mut Vec<Output>) {
        for m in &mut self.monitors {
            let s = &m.spec;
            if !super::in_stream(ev, &s.source, s.event_type.as_deref(), &s.dimension) {
                continue;
            }
            if m.firing {
                m.firing = false;
                let silent = now_ms - m.last_seen_ms;
                out.push(alert(
                    m,
                    AlertStatus::Resolved,
                    now_ms,
                    format!("events are back after {}s of silence", silent / 1000),
                    silent,
                ));
            }
            m.last_seen_ms = now_ms;
        }
    }

    /// The wall clock moved to `now_ms`: monitors silent too long (and live) fire.
    pub fn tick(&mut self, now_ms: i64, out: &mut Vec<Output>) {
        if !self.armed {
            return;
        }
        for m in &mut self.monitors {
            if m.firing || now_ms - m.last_seen_ms <= m.spec.quiet_period.ms() || !active(m, now_ms)
            {
                continue;
            }
            m.firing = true;
            let silent = now_ms - m.last_seen_ms;
            out.push(alert(
                m,
                AlertStatus::Firing,
                now_ms,
                format!(
                    "nothing for {}s (quiet period {}s)",
                    silent / 1000,
                    m.spec.quiet_period.ms() / 1000
                ),
                silent,
            ));
        }
    }
}

fn active(m: &Monitor, now_ms: i64) -> bool {
    let Some(local) = m.tz.timestamp_millis_opt(now_ms).single() else {
        return true;
    };
    let day_ok = m.days.is_empty() || m.days.contains(&local.weekday());
    let minute = local.hour() * 60 + local.minute();
    let hour_ok = m
        .hours
        .is_none_or(|(from, to)| minute >= from && minute < to);
    day_ok && hour_ok
}

fn alert(m: &Monitor, status: AlertStatus, now_ms: i64, what: String, silent_ms: i64) -> Output {
    let s = &m.spec;
    Output::Alert(
        StreamAlert {
            family: "freshness",
            kind: "stream_silent",
            monitor: &s.name,
            source: &s.source,
            dimension: &s.dimension,
            severity: s.severity.into(),
            status,
            detected_at: now_ms,
            what,
            attributes: vec![("silent_ms", silent_ms.to_string())],
        }
        .into_alert(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(yaml: &str) -> FreshnessSpec {
        serde_yaml::from_str(yaml).unwrap()
    }

    fn ev(source: &str, carrier: &str) -> Event {
        crate::detectors::test_shipment(source, carrier, 0, None)
    }

    fn statuses(out: &[Output]) -> Vec<(String, AlertStatus)> {
        out.iter()
            .map(|o| match o {
                Output::Alert(a) => (a.dedupe_id.clone(), a.status),
                _ => unreachable!(),
            })
            .collect()
    }

    #[test]
    fn silence_fires_once_and_returning_events_resolve_it() {
        let mut f = Freshness::new(
            &[spec(
                "{ name: dhl, source: shipments, dimension: { carrier: dhl }, quiet_period: 10s }",
            )],
            0,
        );
        let mut out = Vec::new();
        // Not armed (no partitions yet): silence does not count.
        f.tick(60_000, &mut out);
        assert!(out.is_empty());
        f.arm(0);
        f.tick(10_000, &mut out);
        assert!(
            out.is_empty(),
            "exactly the quiet period is not yet silence"
        );
        f.on_event(&ev("shipments", "ups"), 9_000, &mut out); // another carrier does not count
        f.tick(10_001, &mut out);
        f.tick(60_000, &mut out);
        f.on_event(&ev("shipments", "dhl"), 61_000, &mut out);
        f.on_event(&ev("shipments", "dhl"), 62_000, &mut out);
        assert_eq!(
            statuses(&out),
            vec![
                ("freshness/dhl".into(), AlertStatus::Firing),
                ("freshness/dhl".into(), AlertStatus::Resolved)
            ]
        );
    }

    #[test]
    fn outside_its_active_hours_a_quiet_stream_is_not_silent() {
        // 2026-11-23 is a Monday; 22:00 UTC is 23:00 in Amsterdam.
        let monday_23h = chrono::DateTime::parse_from_rfc3339("2026-11-23T22:00:00Z")
            .unwrap()
            .timestamp_millis();
        let s = spec("{ name: m, source: s, quiet_period: 1m, timezone: Europe/Amsterdam, active_days: [mon, tue, wed, thu, fri], active_hours: \"08:00-20:00\" }");
        let mut f = Freshness::new(&[s], monday_23h - 3_600_000);
        f.arm(monday_23h - 3_600_000);
        let mut out = Vec::new();
        f.tick(monday_23h, &mut out);
        assert!(out.is_empty());
        // Tuesday 09:00 local: live, and silent for hours.
        f.tick(monday_23h + 10 * 3_600_000, &mut out);
        assert_eq!(
            statuses(&out),
            vec![("freshness/m".into(), AlertStatus::Firing)]
        );
    }
}
