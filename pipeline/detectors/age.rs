//! Event age thresholds: an age monitor matches a stream (a source, optionally one event type
//! and dimension values) and measures each matching event's age on arrival, either processing
//! age (arrival minus event time) or producer delay (broker append time minus event time).
//!
//! - An event older than the threshold in force fires an alert (`event_too_old`, dedupe id
//!   `age/<monitor>`); the next event within the threshold RESOLVES it. The threshold is
//!   `max_age`, or the first override whose business calendar holds the arrival's local date.
//! - Every `report_every` (wall clock), the monitor writes an SLA event (outcome EVENT_AGE) with
//!   the nearest-rank p50/p95/p99 and maximum of the ages seen in the interval, then starts a new
//!   interval. Ages are kept exactly up to a bound per interval, then reservoir-sampled.
//!
//! Pure: the engine passes events, their broker timestamps and the time.

use crate::detectors::workflow::calendar::Calendar;
use crate::ingest::Event;
use crate::outputs::alert::StreamAlert;
use crate::outputs::{AlertStatus, EventAgeReport, Output, SlaEvent, SlaOutcome};
use crate::topology::monitor::{AgeMeasure, AgeSpec};

/// Ages kept exactly per interval; beyond, a uniform reservoir of this size.
const RESERVOIR: usize = 50_000;

#[derive(Clone)]
struct Monitor {
    spec: AgeSpec,
    tz: chrono_tz::Tz,
    overrides: Vec<(Calendar, i64)>,
    firing: bool,
    window_start: i64,
    ages: Vec<i64>,
    seen: u64,
    over: u64,
    max: Option<i64>,
    rng: u64,
}

#[derive(Clone)]
pub struct EventAge {
    monitors: Vec<Monitor>,
    /// Ages measured since the last [`EventAge::drain_measured`]: (monitor, age ms). The
    /// runtime counts them; the detector writes no metrics.
    measured: Vec<(usize, i64)>,
}

impl EventAge {
    /// Reporting intervals start at `now_ms`.
    pub fn new(specs: &[AgeSpec], now_ms: i64) -> Self {
        EventAge {
            monitors: specs
                .iter()
                .map(|s| Monitor {
                    tz: s.timezone.parse().unwrap_or(chrono_tz::Tz::UTC),
                    overrides: s
                        .overrides
                        .iter()
                        .filter_map(|o| {
                            s.calendars.get(&o.calendar).map(|c| {
                                (
                                    crate::detectors::workflow::calendar::Calendar::of(c),
                                    o.max_age.ms(),
                                )
                            })
                        })
                        .collect(),
                    spec: s.clone(),
                    firing: false,
                    window_start: now_ms,
                    ages: Vec::new(),
                    seen: 0,
                    over: 0,
                    max: None,
                    rng: 0x9E37_79B9_7F4A_7C15,
                })
                .collect(),
            measured: Vec::new(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.monitors.is_empty()
    }

    /// The ages measured since the last call, as (monitor name, measure, age ms).
    pub fn drain_measured(&mut self, mut f: impl FnMut(&str, &'static str, i64)) {
        for (i, age) in self.measured.drain(..) {
            let s = &self.monitors[i].spec;
            f(&s.name, s.measure.as_str(), age);
        }
    }

    /// An event arrived at `now_ms` (its broker timestamp is in its coordinates).
    pub fn on_event(&mut self, ev: &Event, now_ms: i64, out: &mut Vec<Output>) {
        for (i, m) in self.monitors.iter_mut().enumerate() {
            let s = &m.spec;
            if !super::in_stream(ev, &s.source, s.event_type.as_deref(), &s.dimension) {
                continue;
            }
            let age = match s.measure {
                AgeMeasure::Processing => now_ms - ev.event_time_ms,
                AgeMeasure::Producer => match ev.coordinates.timestamp_ms {
                    Some(t) => t - ev.event_time_ms,
                    None => continue,
                },
            }
            .max(0);
            self.measured.push((i, age));
            let threshold = m.threshold(now_ms);
            m.record(age, threshold);
            if age > threshold && !m.firing {
                m.firing = true;
                out.push(m.alert(AlertStatus::Firing, now_ms, age, threshold, ev));
            } else if age <= threshold && m.firing {
                m.firing = false;
                out.push(m.alert(AlertStatus::Resolved, now_ms, age, threshold, ev));
            }
        }
    }

    /// The wall clock moved to `now_ms`: monitors whose interval ended report it.
    pub fn tick(&mut self, now_ms: i64, out: &mut Vec<Output>) {
        for m in &mut self.monitors {
            let every = m.spec.report_every.ms();
            if now_ms - m.window_start < every {
                continue;
            }
            let end = m.window_start + every;
            out.push(m.report(end));
            // Intervals are contiguous; a long pause skips to the interval holding `now_ms`.
            m.window_start = end + (now_ms - end) / every * every;
        }
    }
}

impl Monitor {
    fn threshold(&self, at_ms: i64) -> i64 {
        self.overrides
            .iter()
            .find(|(c, _)| c.contains(self.tz, at_ms))
            .map(|(_, ms)| *ms)
            .unwrap_or(self.spec.max_age.ms())
    }

    fn record(&mut self, age: i64, threshold: i64) {
        self.seen += 1;
        if age > threshold {
            self.over += 1;
        }
        self.max = Some(self.max.map_or(age, |m| m.max(age)));
        if self.ages.len() < RESERVOIR {
            self.ages.push(age);
        } else {
            // xorshift64: reproducible, no dependency.
            self.rng ^= self.rng << 13;
            self.rng ^= self.rng >> 7;
            self.rng ^= self.rng << 17;
            let j = (self.rng % self.seen) as usize;
            if j < RESERVOIR {
                self.ages[j] = age;
            }
        }
    }

    fn report(&mut self, end: i64) -> Output {
        let s = &self.spec;
        let mut ages = std::mem::take(&mut self.ages);
        ages.sort_unstable();
        let rank = |p: f64| -> Option<i64> {
            if ages.is_empty() {
                return None;
            }
            let r = ((p * ages.len() as f64).ceil() as usize).clamp(1, ages.len());
            Some(ages[r - 1])
        };
        let report = EventAgeReport {
            monitor: s.name.clone(),
            source: s.source.clone(),
            event_type: s.event_type.clone(),
            measure: s.measure.as_str().to_string(),
            window_ms: s.report_every.ms(),
            count: self.seen as i64,
            over_threshold: self.over as i64,
            threshold_ms: self.threshold(end),
            p50_ms: rank(0.50),
            p95_ms: rank(0.95),
            p99_ms: rank(0.99),
            max_ms: self.max,
        };
        let start = self.window_start;
        self.seen = 0;
        self.over = 0;
        self.max = None;
        Output::Sla(SlaEvent {
            sla_id: format!("age/{}/{end}", s.name),
            workflow: s.name.clone(),
            key: s.source.clone(),
            outcome: SlaOutcome::EventAge,
            started_at: Some(start),
            ended_at: Some(end),
            detected_at: end,
            late_step: None,
            late_by_ms: None,
            steps: Vec::new(),
            dimensions: s.dimension.clone(),
            event_age: Some(report),
            sightline_version: crate::VERSION.to_string(),
        })
    }

    fn alert(
        &self,
        status: AlertStatus,
        now_ms: i64,
        age: i64,
        threshold: i64,
        ev: &Event,
    ) -> Output {
        let s = &self.spec;
        let what = match status {
            AlertStatus::Firing => format!(
                "a {} event arrived {}s old ({} age; threshold {}s)",
                ev.event_type,
                age / 1000,
                s.measure.as_str(),
                threshold / 1000
            ),
            AlertStatus::Resolved => format!(
                "events arrive within {}s again (last {}s)",
                threshold / 1000,
                age / 1000
            ),
        };
        Output::Alert(
            StreamAlert {
                family: "age",
                kind: "event_too_old",
                monitor: &s.name,
                source: &s.source,
                dimension: &s.dimension,
                severity: s.severity.into(),
                status,
                detected_at: now_ms,
                what,
                attributes: vec![
                    ("age_ms", age.to_string()),
                    ("threshold_ms", threshold.to_string()),
                    ("measure", s.measure.as_str().to_string()),
                    ("key", ev.key.clone()),
                ],
            }
            .into_alert(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(yaml: &str) -> AgeSpec {
        serde_yaml::from_str(yaml).unwrap()
    }

    fn event(carrier: &str, event_time_ms: i64) -> Event {
        event_at(carrier, event_time_ms, None)
    }

    fn event_at(carrier: &str, event_time_ms: i64, timestamp_ms: Option<i64>) -> Event {
        crate::detectors::test_shipment("shipments", carrier, event_time_ms, timestamp_ms)
    }

    fn statuses(out: &[Output]) -> Vec<(String, AlertStatus)> {
        out.iter()
            .filter_map(|o| match o {
                Output::Alert(a) => Some((a.attributes["age_ms"].clone(), a.status)),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn too_old_fires_once_resolves_on_a_fresh_event_and_weekends_have_their_own_threshold() {
        let mut m = EventAge::new(
            &[spec(
                "{ name: dhl-age, source: shipments, dimension: { carrier: dhl }, max_age: 15m, \
                 timezone: Europe/Amsterdam, calendars: { weekend: { days: [sat, sun] } }, \
                 overrides: [ { calendar: weekend, max_age: 2h } ] }",
            )],
            0,
        );
        let mut out = Vec::new();
        // Wednesday 2026-11-25 10:00 UTC.
        let wed = 1_795_600_800_000;
        m.on_event(&event("dhl", wed - 10 * 60_000), wed, &mut out); // 10 min: fine
        m.on_event(&event("ups", wed - 60 * 60_000), wed, &mut out); // not matched
        m.on_event(&event("dhl", wed - 20 * 60_000), wed, &mut out); // 20 min: fires
        m.on_event(&event("dhl", wed - 30 * 60_000), wed, &mut out); // still firing
        m.on_event(&event("dhl", wed - 60_000), wed, &mut out); // 1 min: resolves
        assert_eq!(
            statuses(&out),
            vec![
                ("1200000".to_string(), AlertStatus::Firing),
                ("60000".to_string(), AlertStatus::Resolved)
            ]
        );
        // Saturday 2026-11-28 10:00 UTC: 20 minutes is within the weekend threshold of 2 h.
        out.clear();
        let sat = wed + 3 * 86_400_000;
        m.on_event(&event("dhl", sat - 20 * 60_000), sat, &mut out);
        assert!(out.is_empty());
        m.on_event(&event("dhl", sat - 3 * 3_600_000), sat, &mut out);
        assert_eq!(
            statuses(&out),
            vec![("10800000".to_string(), AlertStatus::Firing)]
        );
    }

    #[test]
    fn producer_delay_uses_the_broker_timestamp() {
        let mut m = EventAge::new(
            &[spec(
                "{ name: p, source: shipments, measure: producer, max_age: 1m }",
            )],
            0,
        );
        let mut out = Vec::new();
        // Arrived an hour late at Sightline, but the producer wrote it 30 s after it happened.
        m.on_event(
            &event_at("dhl", 1_000_000, Some(1_030_000)),
            4_600_000,
            &mut out,
        );
        assert!(out.is_empty());
        m.on_event(
            &event_at("dhl", 1_000_000, Some(1_090_000)),
            4_600_000,
            &mut out,
        );
        assert_eq!(
            statuses(&out),
            vec![("90000".to_string(), AlertStatus::Firing)]
        );
    }

    #[test]
    fn each_interval_reports_nearest_rank_percentiles_of_its_ages() {
        let mut m = EventAge::new(
            &[spec(
                "{ name: a, source: shipments, max_age: 50s, report_every: 1m }",
            )],
            0,
        );
        let mut out = Vec::new();
        // Ages 1 s .. 100 s in the first minute.
        for i in 1..=100 {
            m.on_event(&event("x", 30_000 - i * 1_000), 30_000, &mut out);
        }
        out.clear();
        m.tick(59_999, &mut out);
        assert!(out.is_empty(), "the interval has not ended");
        m.tick(60_000, &mut out);
        // An empty interval reports too, with no percentiles.
        m.tick(120_000, &mut out);
        let reports: Vec<EventAgeReport> = out
            .iter()
            .map(|o| match o {
                Output::Sla(s) => {
                    assert_eq!(s.outcome, SlaOutcome::EventAge);
                    s.event_age.clone().unwrap()
                }
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(reports.len(), 2);
        let r = &reports[0];
        assert_eq!(
            (
                r.count,
                r.over_threshold,
                r.p50_ms,
                r.p95_ms,
                r.p99_ms,
                r.max_ms
            ),
            (
                100,
                50,
                Some(50_000),
                Some(95_000),
                Some(99_000),
                Some(100_000)
            )
        );
        assert_eq!((reports[1].count, reports[1].p50_ms), (0, None));
        match &out[0] {
            Output::Sla(s) => assert_eq!(
                (s.started_at, s.ended_at, s.sla_id.as_str()),
                (Some(0), Some(60_000), "age/a/60000")
            ),
            _ => unreachable!(),
        }
    }
}
