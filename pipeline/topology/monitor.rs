//! Stream monitors declared in topology files.
//!
//! ```yaml
//! monitors:
//!   freshness:
//!     - name: dhl-shipments
//!       source: shipments              # a source of this file or another
//!       event_type: shipment_dispatched  # optional: only this type counts
//!       dimension: { carrier: dhl }    # optional: only events with these values count
//!       quiet_period: 30m              # silence longer than this fires an alert
//!       timezone: Europe/Amsterdam
//!       active_days: [mon, tue, wed, thu, fri]   # optional: when the stream should be live
//!       active_hours: "08:00-20:00"              # optional, local time
//!       severity: warning
//!   age:
//!     - name: shipment-age
//!       source: shipments
//!       event_type: shipment_dispatched  # optional, as above
//!       dimension: { carrier: dhl }    # optional, as above
//!       measure: processing            # processing (arrival - event time) | producer (broker append - event time)
//!       max_age: 15m                   # an event older than this on arrival fires an alert
//!       timezone: Europe/Amsterdam
//!       calendars: { weekend: { days: [sat, sun] } }
//!       overrides:                     # first match wins, on the local date of arrival
//!         - { calendar: weekend, max_age: 2h }
//!       report_every: 1m               # an SLA event with p50/p95/p99 of the ages seen
//!       severity: warning
//! ```

use super::workflow::{CalendarSpec, Span, StepSeverity};
use serde::Deserialize;
use std::collections::BTreeMap;

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Monitors {
    #[serde(default)]
    pub freshness: Vec<FreshnessSpec>,
    #[serde(default)]
    pub age: Vec<AgeSpec>,
    #[serde(default)]
    pub dead_letters: Vec<DeadLetterSpec>,
}

/// Thresholds on dead-letter topics (watched ones: `[dead_letters]` in the config, and
/// Sightline's own). Any threshold crossed fires an alert; it resolves when back under.
///
/// ```yaml
/// monitors:
///   dead_letters:
///     - name: shop-dlq
///       topic: shop.orders.dlq        # a name, or a regex starting with ^
///       max_depth: 100                # records not yet replayed
///       max_age: 1h                   # age of the oldest record not yet replayed
///       max_per_minute: 50            # new dead letters per minute
///       severity: warning
/// ```
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeadLetterSpec {
    pub name: String,
    pub topic: String,
    #[serde(default)]
    pub max_depth: Option<u64>,
    #[serde(default)]
    pub max_age: Option<Span>,
    #[serde(default)]
    pub max_per_minute: Option<u64>,
    #[serde(default = "default_warning")]
    pub severity: StepSeverity,
}

fn default_warning() -> StepSeverity {
    StepSeverity::Warning
}

impl DeadLetterSpec {
    pub fn validate(&self) -> Vec<super::source::Invalid> {
        let mut out = Vec::new();
        let anchor = format!("name: {}", self.name);
        if self.max_depth.is_none() && self.max_age.is_none() && self.max_per_minute.is_none() {
            out.push(super::source::Invalid {
                anchor: anchor.clone(),
                message: format!(
                    "dead-letter monitor `{}`: give at least one of max_depth, max_age, max_per_minute",
                    self.name
                ),
            });
        }
        if self.topic.starts_with('^') {
            if let Err(e) = regex::Regex::new(&self.topic) {
                out.push(super::source::Invalid {
                    anchor,
                    message: format!(
                        "dead-letter monitor `{}`: topic pattern `{}` is not a valid regex: {e}",
                        self.name, self.topic
                    ),
                });
            }
        }
        out
    }

    /// Whether this monitor watches `topic`.
    pub fn matches(&self, topic: &str) -> bool {
        if self.topic.starts_with('^') {
            regex::Regex::new(&self.topic).is_ok_and(|r| r.is_match(topic))
        } else {
            self.topic == topic
        }
    }
}

/// Which age an age monitor measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AgeMeasure {
    /// Arrival at Sightline minus event time.
    #[default]
    Processing,
    /// Broker append time minus event time (the producer-side delay).
    Producer,
}

impl AgeMeasure {
    pub fn as_str(self) -> &'static str {
        match self {
            AgeMeasure::Processing => "processing",
            AgeMeasure::Producer => "producer",
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgeOverride {
    pub calendar: String,
    pub max_age: Span,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgeSpec {
    pub name: String,
    pub source: String,
    #[serde(default)]
    pub event_type: Option<String>,
    #[serde(default)]
    pub dimension: BTreeMap<String, String>,
    #[serde(default)]
    pub measure: AgeMeasure,
    pub max_age: Span,
    #[serde(default = "utc")]
    pub timezone: String,
    #[serde(default)]
    pub calendars: BTreeMap<String, CalendarSpec>,
    #[serde(default)]
    pub overrides: Vec<AgeOverride>,
    #[serde(default = "one_minute")]
    pub report_every: Span,
    #[serde(default)]
    pub severity: StepSeverity,
}

fn one_minute() -> Span {
    Span(60_000)
}

impl AgeSpec {
    pub fn validate(&self) -> Vec<super::source::Invalid> {
        let mut out = Vec::new();
        let name = &self.name;
        let mut bad =
            |anchor: String, m: String| out.push(super::source::Invalid { anchor, message: m });
        if self.timezone.parse::<chrono_tz::Tz>().is_err() {
            bad(
                format!("name: {name}"),
                format!(
                    "age monitor `{name}`: unknown time zone `{}`",
                    self.timezone
                ),
            );
        }
        if self.max_age.ms() <= 0 || self.report_every.ms() <= 0 {
            bad(
                format!("name: {name}"),
                format!("age monitor `{name}`: max_age and report_every must be longer than zero"),
            );
        }
        for (c, spec) in &self.calendars {
            for (anchor, m) in spec.problems(&format!("age monitor `{name}`"), c) {
                bad(anchor, m);
            }
        }
        for o in &self.overrides {
            if !self.calendars.contains_key(&o.calendar) {
                bad(
                    format!("calendar: {}", o.calendar),
                    format!("age monitor `{name}`: override uses calendar `{}`, which is not declared under calendars", o.calendar),
                );
            }
        }
        out
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FreshnessSpec {
    pub name: String,
    pub source: String,
    #[serde(default)]
    pub event_type: Option<String>,
    #[serde(default)]
    pub dimension: BTreeMap<String, String>,
    pub quiet_period: Span,
    #[serde(default = "utc")]
    pub timezone: String,
    #[serde(default)]
    pub active_days: Vec<String>,
    #[serde(default)]
    pub active_hours: Option<String>,
    #[serde(default)]
    pub severity: StepSeverity,
}

fn utc() -> String {
    "UTC".into()
}

impl FreshnessSpec {
    pub fn validate(&self) -> Vec<super::source::Invalid> {
        let mut out = Vec::new();
        let mut bad = |m: String| {
            out.push(super::source::Invalid {
                anchor: format!("name: {}", self.name),
                message: m,
            })
        };
        if self.timezone.parse::<chrono_tz::Tz>().is_err() {
            bad(format!(
                "monitor `{}`: unknown time zone `{}`",
                self.name, self.timezone
            ));
        }
        if self.quiet_period.ms() <= 0 {
            bad(format!(
                "monitor `{}`: quiet_period must be longer than zero",
                self.name
            ));
        }
        for d in &self.active_days {
            if super::workflow::weekday(d).is_none() {
                bad(format!(
                    "monitor `{}`: `{d}` is not a day (mon..sun)",
                    self.name
                ));
            }
        }
        if let Some(h) = &self.active_hours {
            if parse_hours(h).is_none() {
                bad(format!(
                    "monitor `{}`: active_hours `{h}` is not HH:MM-HH:MM",
                    self.name
                ));
            }
        }
        out
    }
}

/// "08:00-20:00" -> minutes of the day (from, to).
pub fn parse_hours(s: &str) -> Option<(u32, u32)> {
    let (a, b) = s.split_once('-')?;
    let m = |x: &str| -> Option<u32> {
        let (h, mi) = x.trim().split_once(':')?;
        let (h, mi): (u32, u32) = (h.parse().ok()?, mi.parse().ok()?);
        (h <= 24 && mi < 60).then_some(h * 60 + mi)
    };
    Some((m(a)?, m(b)?))
}
