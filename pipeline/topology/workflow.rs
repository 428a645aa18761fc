//! Workflow declarations: steps, the event type that marks each, and the deadlines between them.
//!
//! ```yaml
//! workflows:
//!   - name: order-to-cash
//!     timezone: Europe/Amsterdam      # calendars are evaluated in this zone
//!     ttl: 30d                        # an instance is dropped (and reported) after this
//!     orphan_grace: 1h                # a non-start event with no start by then is an orphan
//!     calendars:
//!       weekend: { days: [sat, sun] }
//!       peak: { dates: [2026-11-27, 2026-11-30] }
//!     steps:
//!       - { name: ordered, on: order_confirmed, start: true }
//!       - name: paid
//!         on: payment_captured
//!         after: ordered              # deadline anchor and dependency (default: workflow start)
//!         within: 15m
//!         severity: critical          # info | warning | critical
//!         sla: 10m                    # target reported as met/breached on completion
//!         overrides:                  # first match wins
//!           - { when: { carrier: dhl }, within: 48h }
//!           - { calendar: weekend, within: 2h }
//!       - { name: cancelled, on: order_cancelled, closes: true }   # an alternative end
//!       - { name: wrapped, on: gift_wrapped, optional: true }
//! ```

use serde::Deserialize;
use std::collections::BTreeMap;

/// A duration written as `90s`, `15m`, `24h`, `30d` (or combined: `1h30m`), at most
/// [`Span::MAX_DAYS`] days.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Span(pub i64);

/// Printable name characters (workflows, steps, sources, monitors): letters, digits, and
/// `_ - . : /`. A control character once made a workflow's name show as a prefix of itself and
/// its deadlines never fire.
pub fn name_problem(what: &str, name: &str) -> Option<String> {
    if name.is_empty() || name.len() > 200 {
        return Some(format!("{what} `{name}`: a name has 1 to 200 characters"));
    }
    let bad: Vec<String> = name
        .chars()
        .filter(|c| !(c.is_alphanumeric() || "_-.:/".contains(*c)))
        .map(|c| format!("{c:?}"))
        .collect();
    (!bad.is_empty()).then(|| {
        format!(
            "{what} `{}`: names may use letters, digits and `_ - . : /` only, not {}",
            name.escape_default(),
            bad.join(", ")
        )
    })
}

impl Span {
    pub fn ms(self) -> i64 {
        self.0
    }

    /// The longest duration a topology may write: ten years. Anything longer once overflowed the
    /// deadline arithmetic, so every instance alerted and expired on arrival.
    pub const MAX_DAYS: i64 = 3_650;

    pub fn parse(s: &str) -> Result<Span, String> {
        let mut total: i64 = 0;
        let mut num = String::new();
        let mut any = false;
        for c in s.trim().chars() {
            if c.is_ascii_digit() {
                num.push(c);
                continue;
            }
            let unit = match c {
                's' => 1_000,
                'm' => 60_000,
                'h' => 3_600_000,
                'd' => 86_400_000,
                _ => {
                    return Err(format!(
                        "`{s}` is not a duration: use s, m, h or d, e.g. 15m, 24h, 1h30m"
                    ))
                }
            };
            if num.is_empty() {
                return Err(format!(
                    "`{s}` is not a duration: a number must come before `{c}`"
                ));
            }
            // Digits that do not fit a number of milliseconds are far past the longest span.
            let n: i64 = num.parse().unwrap_or(i64::MAX);
            total = total.saturating_add(n.saturating_mul(unit));
            num.clear();
            any = true;
        }
        if !num.is_empty() || !any {
            return Err(format!(
                "`{s}` is not a duration: end with a unit (s, m, h, d), e.g. 15m"
            ));
        }
        if total > Self::MAX_DAYS * 86_400_000 {
            return Err(format!(
                "`{s}` is longer than the longest duration a topology may use, {}d (ten years)",
                Self::MAX_DAYS
            ));
        }
        Ok(Span(total))
    }
}

impl<'de> Deserialize<'de> for Span {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Span::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum StepSeverity {
    Info,
    #[default]
    Warning,
    Critical,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CalendarSpec {
    /// Days of the week: mon, tue, wed, thu, fri, sat, sun.
    #[serde(default)]
    pub days: Vec<String>,
    /// Dates (YYYY-MM-DD) in the workflow's time zone: holidays, peak days.
    #[serde(default)]
    pub dates: Vec<String>,
}

/// A day of the week, by its short or long English name (any case).
pub fn weekday(s: &str) -> Option<chrono::Weekday> {
    use chrono::Weekday;
    Some(match s.to_ascii_lowercase().as_str() {
        "mon" | "monday" => Weekday::Mon,
        "tue" | "tuesday" => Weekday::Tue,
        "wed" | "wednesday" => Weekday::Wed,
        "thu" | "thursday" => Weekday::Thu,
        "fri" | "friday" => Weekday::Fri,
        "sat" | "saturday" => Weekday::Sat,
        "sun" | "sunday" => Weekday::Sun,
        _ => return None,
    })
}

impl CalendarSpec {
    /// Problems with the days and dates, each as (anchor text, message).
    pub fn problems(&self, owner: &str, name: &str) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for d in &self.days {
            if weekday(d).is_none() {
                out.push((
                    format!("{name}:"),
                    format!("{owner}: calendar `{name}`: `{d}` is not a day (mon..sun)"),
                ));
            }
        }
        for d in &self.dates {
            if chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d").is_err() {
                out.push((
                    d.clone(),
                    format!("{owner}: calendar `{name}`: `{d}` is not a date (YYYY-MM-DD)"),
                ));
            }
        }
        out
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OverrideSpec {
    /// Dimension values that must all match.
    #[serde(default)]
    pub when: BTreeMap<String, String>,
    /// A calendar the anchor time must fall in.
    #[serde(default)]
    pub calendar: Option<String>,
    pub within: Span,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepSpec {
    pub name: String,
    /// The event type that marks this step.
    pub on: String,
    #[serde(default)]
    pub start: bool,
    /// The step this one depends on and whose time anchors its deadline (default: the start).
    #[serde(default)]
    pub after: Option<String>,
    /// Deadline after the anchor.
    #[serde(default)]
    pub within: Option<Span>,
    #[serde(default)]
    pub optional: bool,
    /// Reaching this step ends the workflow (completed) even if optional steps are missing.
    #[serde(default)]
    pub terminal: bool,
    /// Reaching this step closes the workflow as an alternative end (cancelled).
    #[serde(default)]
    pub closes: bool,
    #[serde(default)]
    pub severity: StepSeverity,
    /// "Business criticality" label carried on alerts (free text, e.g. revenue, compliance).
    #[serde(default)]
    pub criticality: Option<String>,
    /// SLA target from the anchor, reported met/breached on completion.
    #[serde(default)]
    pub sla: Option<Span>,
    #[serde(default)]
    pub overrides: Vec<OverrideSpec>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkflowSpec {
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default = "default_tz")]
    pub timezone: String,
    #[serde(default = "default_ttl")]
    pub ttl: Span,
    #[serde(default = "default_grace")]
    pub orphan_grace: Span,
    #[serde(default)]
    pub calendars: BTreeMap<String, CalendarSpec>,
    pub steps: Vec<StepSpec>,
}

fn default_tz() -> String {
    "UTC".into()
}
fn default_ttl() -> Span {
    Span(30 * 86_400_000)
}
fn default_grace() -> Span {
    Span(3_600_000)
}

impl WorkflowSpec {
    /// Every problem, each with a text to find its line by.
    pub fn validate(&self) -> Vec<super::source::Invalid> {
        let mut out = Vec::new();
        let wf = &self.name;
        let mut bad = |anchor: &str, message: String| {
            out.push(super::source::Invalid {
                anchor: anchor.to_string(),
                message,
            })
        };
        if let Some(p) = name_problem("workflow", wf) {
            bad(&format!("name: {wf}"), p);
        }
        if self.timezone.parse::<chrono_tz::Tz>().is_err() {
            bad(&format!("timezone: {}", self.timezone), format!("workflow `{wf}`: unknown time zone `{}` (use an IANA name such as Europe/Amsterdam)", self.timezone));
        }
        if !self.steps.iter().any(|s| s.start) {
            bad(
                &format!("name: {wf}"),
                format!("workflow `{wf}`: no step has `start: true`"),
            );
        }
        let mut names = std::collections::HashSet::new();
        // Step name -> index, so that every check below is linear in the steps (a chain of
        // 10,000 steps once took `check` past two minutes).
        let index: std::collections::HashMap<&str, usize> = self
            .steps
            .iter()
            .enumerate()
            .map(|(i, s)| (s.name.as_str(), i))
            .collect();
        for s in &self.steps {
            let at = format!("name: {}", s.name);
            if let Some(p) = name_problem(&format!("workflow `{wf}`: step"), &s.name) {
                bad(&at, p);
            }
            if !names.insert(s.name.as_str()) {
                bad(
                    &at,
                    format!("workflow `{wf}`: step `{}` is declared twice", s.name),
                );
            }
            if let Some(a) = &s.after {
                if !index.contains_key(a.as_str()) {
                    bad(
                        &format!("after: {a}"),
                        format!(
                            "workflow `{wf}`: step `{}` comes after `{a}`, which is not a step",
                            s.name
                        ),
                    );
                } else if a == &s.name {
                    bad(
                        &at,
                        format!(
                            "workflow `{wf}`: step `{}` cannot come after itself",
                            s.name
                        ),
                    );
                }
            }
            for (what, span) in [("within", s.within), ("sla", s.sla)] {
                if let Some(span) = span {
                    if span.ms() <= 0 {
                        bad(
                            &at,
                            format!(
                                "workflow `{wf}`: step `{}`: `{what}` must be longer than zero",
                                s.name
                            ),
                        );
                    } else if span.ms() > self.ttl.ms() {
                        bad(&at, format!("workflow `{wf}`: step `{}`: `{what}` is longer than the instance ttl; it could never fire", s.name));
                    }
                }
            }
            if s.start && (s.after.is_some() || s.within.is_some()) {
                bad(
                    &at,
                    format!(
                        "workflow `{wf}`: start step `{}` cannot have `after` or `within`",
                        s.name
                    ),
                );
            }
            for o in &s.overrides {
                if let Some(c) = &o.calendar {
                    if !self.calendars.contains_key(c) {
                        bad(&format!("calendar: {c}"), format!("workflow `{wf}`: step `{}` uses calendar `{c}`, which is not declared", s.name));
                    }
                }
                if s.within.is_none() {
                    bad(
                        &at,
                        format!(
                            "workflow `{wf}`: step `{}` has overrides but no `within`",
                            s.name
                        ),
                    );
                }
            }
        }
        let mut types = std::collections::HashMap::new();
        for s in &self.steps {
            if let Some(prev) = types.insert(s.on.as_str(), s.name.as_str()) {
                bad(
                    &format!("on: {}", s.on),
                    format!(
                        "workflow `{wf}`: event type `{}` marks both `{prev}` and `{}`",
                        s.on, s.name
                    ),
                );
            }
        }
        // Dependency cycles: each step's `after` is one edge, so a walk that meets a step on its
        // own path has found a cycle; every step is walked once (linear).
        let after: Vec<Option<usize>> = self
            .steps
            .iter()
            .map(|s| s.after.as_deref().and_then(|a| index.get(a).copied()))
            .collect();
        // 0: not seen, 1: on the current walk, 2: done.
        let mut state = vec![0u8; self.steps.len()];
        let mut in_cycle = vec![false; self.steps.len()];
        for start in 0..self.steps.len() {
            let mut path = Vec::new();
            let mut cur = Some(start);
            while let Some(i) = cur {
                match state[i] {
                    0 => {
                        state[i] = 1;
                        path.push(i);
                        cur = after[i];
                    }
                    1 => {
                        let from = path.iter().position(|&p| p == i).expect("on the path");
                        for &p in &path[from..] {
                            in_cycle[p] = true;
                        }
                        break;
                    }
                    _ => break,
                }
            }
            for p in path {
                state[p] = 2;
            }
        }
        for (s, _) in self.steps.iter().zip(&in_cycle).filter(|(_, c)| **c) {
            bad(
                &format!("name: {}", s.name),
                format!(
                    "workflow `{wf}`: step `{}` depends on itself through `after`",
                    s.name
                ),
            );
        }
        for (name, c) in &self.calendars {
            for (anchor, message) in c.problems(&format!("workflow `{wf}`"), name) {
                bad(&anchor, message);
            }
        }
        out
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    #[test]
    fn spans_parse_and_bad_ones_say_why() {
        assert_eq!(Span::parse("15m"), Ok(Span(900_000)));
        assert_eq!(Span::parse("1h30m"), Ok(Span(5_400_000)));
        assert_eq!(Span::parse("2d"), Ok(Span(172_800_000)));
        assert!(Span::parse("15").unwrap_err().contains("end with a unit"));
        assert!(Span::parse("15w").unwrap_err().contains("use s, m, h or d"));
        assert_eq!(Span::parse("3650d"), Ok(Span(3_650 * 86_400_000)));
        for huge in ["3651d", "106751991167d", "99999999999999999999d"] {
            let e = Span::parse(huge).unwrap_err();
            assert!(e.contains("longest duration"), "{huge}: {e}");
        }
    }

    /// A workflow of `n` steps, each after the one before.
    pub fn chained_steps(n: usize) -> String {
        let mut yaml =
            String::from("name: long\nttl: 3650d\nsteps:\n  - { name: s0, on: e0, start: true }\n");
        for i in 1..n {
            yaml.push_str(&format!(
                "  - {{ name: s{i}, on: e{i}, after: s{}, within: 1m }}\n",
                i - 1
            ));
        }
        yaml
    }

    #[test]
    fn ten_thousand_chained_steps_validate_in_linear_time() {
        let yaml = chained_steps(10_000);
        let spec: WorkflowSpec = serde_yaml::from_str(&yaml).unwrap();
        let started = std::time::Instant::now();
        assert!(spec.validate().is_empty());
        let took = started.elapsed();
        // Linear: milliseconds. The quadratic and cubic checks this replaces took seconds to
        // minutes at this size.
        assert!(took < std::time::Duration::from_secs(1), "{took:?}");
        // A cycle is still found, and only its steps are named.
        let cyclic = yaml.replace("{ name: s0, on: e0, start: true }", "{ name: s0, on: e0, start: true }\n  - { name: a, on: x1, after: b }\n  - { name: b, on: x2, after: a }");
        let spec: WorkflowSpec = serde_yaml::from_str(&cyclic).unwrap();
        let cycles: Vec<String> = spec
            .validate()
            .into_iter()
            .map(|p| p.message)
            .filter(|m| m.contains("depends on itself"))
            .collect();
        assert_eq!(cycles.len(), 2, "{cycles:?}");
    }

    #[test]
    fn names_are_printable() {
        assert_eq!(name_problem("workflow", "order-to-cash"), None);
        assert_eq!(name_problem("step", "paid.v2:eu/1"), None);
        let e = name_problem("workflow", "w\0x").unwrap();
        assert!(e.contains("'\\0'") && e.contains("w\\u{0}x"), "{e}");
        assert!(name_problem("step", "").is_some());
        assert!(name_problem("step", "a b").is_some());
    }
}
