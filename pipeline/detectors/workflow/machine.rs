//! The per-instance state machine of a workflow.
//!
//! | input | what happens |
//! |---|---|
//! | the start step | the instance starts; deadlines of steps anchored on it are scheduled |
//! | a step on time | recorded; deadlines anchored on it are scheduled |
//! | a step after its deadline | **late step**: the missing-step alert FIRING (if not yet) then RESOLVED with how late, and an SLA `STEP_LATE` event |
//! | a step whose event time is before the step it comes after | **out of order**: a notice (alert kind `out_of_order`, INFO), whichever of the two arrives first |
//! | a step or event id seen before | **duplicate**: a notice; state and SLAs untouched |
//! | a non-start step with no start | the instance waits; if no start arrives within the grace: **orphan** alert |
//! | every required step, or a terminal step | **completed**: SLA event with per-step timings |
//! | a closing step (cancelled) | closed; open alerts RESOLVED; SLA `CANCELLED` |
//! | deadline timer, step absent | **missing step**: alert FIRING, dedupe id `workflow/key/step` |
//! | ttl timer | **expired**: unfinished instances reported (alert + SLA `EXPIRED`); state dropped |
//!
//! Timers are only requests: a timer whose reason has gone (the step arrived, the instance
//! closed) does nothing when it fires, so timers never need cancelling, and a step's alert can
//! fire at most once (`fired`). Every time in an output is an event time or a deadline, never
//! the wall clock, so a replay yields the same outputs.

use super::Workflow;
use crate::ingest::Event;
use crate::outputs::{
    Alert, AlertStatus, LineageEntry, Name, Output, Severity, SlaEvent, SlaOutcome, StepStatus,
    StepTiming,
};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// What Sightline remembers about one business instance (one correlation key in one workflow).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Instance {
    pub key: String,
    /// Event time of the first event seen (the ttl counts from here).
    pub first_at: i64,
    /// Event time of the start step.
    pub started_at: Option<i64>,
    /// Step index -> event time it arrived.
    pub seen: BTreeMap<usize, i64>,
    /// Steps whose missing-step alert has fired.
    pub fired: BTreeSet<usize>,
    pub orphan_fired: bool,
    pub closed: bool,
    /// Digests of the event ids seen ([`event_id_digest`]).
    pub event_ids: BTreeSet<u64>,
    /// The events seen, in event-time order (not read order).
    pub lineage: Vec<LineageEntry>,
    pub dimensions: BTreeMap<Name, String>,
    /// Dimension -> event time of the event its value came from: the earliest event that
    /// carried it (ties: the smaller value), so the value does not depend on read order, and an
    /// alert carries only dimensions known by its deadline.
    #[serde(default)]
    pub dimension_at: BTreeMap<Name, i64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum TimerKind {
    Deadline(usize),
    Orphan,
    Expire,
}

/// A request to be called back when the stream clock reaches `due_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Timer {
    pub due_ms: i64,
    pub kind: TimerKind,
}

/// The result of one input: the new state (None: forget the instance), outputs, timers.
#[derive(Debug, Clone, PartialEq)]
pub struct Transition {
    pub instance: Option<Instance>,
    pub outputs: Vec<Output>,
    pub timers: Vec<Timer>,
}

impl Transition {
    /// Whether this result of [`Workflow::on_timer`], on an instance that existed or not
    /// (`existed`), changed nothing. `on_timer` changes an instance only together with an output
    /// or a new timer, or by dropping it (the property tests check this), so the runner need
    /// not write back or log an instance whose timer found its reason gone.
    pub fn changes_nothing(&self, existed: bool) -> bool {
        self.outputs.is_empty() && self.timers.is_empty() && existed == self.instance.is_some()
    }
}

/// What an instance keeps of an event id to know it again: a 64-bit SipHash-1-3 digest (fixed
/// keys, so stored digests stay valid across versions and hosts), 8 bytes and no allocation
/// where the id itself was a heap string. Two ids of one instance share a digest with a
/// probability near n²/2⁶⁵: about 10⁻¹⁸ for a hundred ids.
pub fn event_id_digest(id: &str) -> u64 {
    use std::hash::Hasher;
    let mut h =
        siphasher::sip::SipHasher13::new_with_keys(0x5349_4748_544c_494e, 0x4556_454e_545f_4944);
    h.write(id.as_bytes());
    h.finish()
}

fn iso(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_else(|| ms.to_string())
}

fn human(ms: i64) -> String {
    let s = ms / 1000;
    match s {
        s if s >= 86_400 && s % 86_400 == 0 => format!("{}d", s / 86_400),
        s if s >= 3_600 => format!("{}h{:02}m", s / 3_600, (s % 3_600) / 60),
        s if s >= 60 => format!("{}m{:02}s", s / 60, s % 60),
        s => format!("{s}s"),
    }
}

impl Instance {
    fn new(key: &str, at: i64) -> Instance {
        Instance {
            key: key.to_string(),
            first_at: at,
            started_at: None,
            seen: BTreeMap::new(),
            fired: BTreeSet::new(),
            orphan_fired: false,
            closed: false,
            event_ids: BTreeSet::new(),
            lineage: Vec::new(),
            dimensions: BTreeMap::new(),
            dimension_at: BTreeMap::new(),
        }
    }

    /// The dimensions known by event time `at` (all of them when there is no such time).
    fn dimensions_by(&self, at: Option<i64>) -> BTreeMap<String, String> {
        let known =
            |k: &Name| at.is_none_or(|at| self.dimension_at.get(k).is_none_or(|&t| t <= at));
        self.dimensions
            .iter()
            .filter(|(k, _)| known(k))
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect()
    }
}

impl Workflow {
    /// The time the deadline of step `i` counts from, if that anchor has arrived.
    fn anchor_at(&self, inst: &Instance, i: usize) -> Option<i64> {
        match self.steps[i].after {
            Some(a) => inst.seen.get(&a).copied(),
            None => inst.started_at,
        }
    }

    fn anchor_name(&self, i: usize) -> &str {
        match self.steps[i].after {
            Some(a) => &self.steps[a].name,
            None => self
                .steps
                .iter()
                .find(|s| s.start)
                .map(|s| s.name.as_str())
                .unwrap_or("start"),
        }
    }

    /// The deadline of step `i` for this instance, when it has one, the instance has started
    /// (an orphan has no deadlines; its orphan alert speaks for it) and the anchor arrived.
    pub fn deadline(&self, inst: &Instance, i: usize) -> Option<i64> {
        inst.started_at?;
        let anchor = self.anchor_at(inst, i)?;
        Some(anchor.saturating_add(self.within(i, anchor, &inst.dimensions)?))
    }

    fn required(&self, i: usize) -> bool {
        let s = &self.steps[i];
        !s.optional && !s.closes
    }

    fn alert(
        &self,
        inst: &Instance,
        step: Option<usize>,
        kind: &str,
        status: AlertStatus,
        severity: Severity,
        summary: String,
        deadline: Option<i64>,
        detected_at: i64,
        attributes: BTreeMap<String, String>,
    ) -> Output {
        let step_name = step.map(|i| self.steps[i].name.clone());
        let dedupe_id = match (&step_name, kind) {
            (Some(s), "missing_step") => format!("{}/{}/{s}", self.name, inst.key),
            (Some(s), k) => format!("{}/{}/{s}/{k}", self.name, inst.key),
            (None, k) => format!("{}/{}/{k}", self.name, inst.key),
        };
        let mut attributes = attributes;
        if let Some(c) = step.and_then(|i| self.steps[i].criticality.clone()) {
            attributes.insert("criticality".into(), c);
        }
        Output::Alert(Alert {
            dedupe_id,
            kind: kind.to_string(),
            status,
            severity,
            summary,
            workflow: Some(self.name.clone()),
            step: step_name,
            key: Some(inst.key.clone()),
            source: None,
            deadline,
            detected_at,
            dimensions: inst.dimensions_by(deadline),
            attributes,
            lineage: inst.lineage.clone(),
            sightline_version: crate::VERSION.to_string(),
        })
    }

    fn severity(&self, i: usize) -> Severity {
        self.steps[i].severity.into()
    }

    fn sla(
        &self,
        inst: &Instance,
        outcome: SlaOutcome,
        ended_at: Option<i64>,
        detected_at: i64,
        late: Option<(usize, i64)>,
    ) -> Output {
        let steps = self
            .steps
            .iter()
            .enumerate()
            .filter(|(i, s)| !s.closes || inst.seen.contains_key(i))
            .map(|(i, s)| {
                let at = inst.seen.get(&i).copied();
                let anchor = self.anchor_at(inst, i);
                let deadline = self.deadline(inst, i);
                let duration_ms = match (at, anchor) {
                    (Some(at), Some(a)) if !s.start => Some(at - a),
                    _ => None,
                };
                let target_ms = s
                    .sla_ms
                    .or_else(|| anchor.and_then(|a| self.within(i, a, &inst.dimensions)));
                let status = match (at, duration_ms, target_ms) {
                    (Some(_), Some(d), Some(t)) if d <= t => StepStatus::Met,
                    (Some(_), Some(_), Some(_)) => StepStatus::Breached,
                    (Some(_), _, _) => StepStatus::Met,
                    (None, _, _) if self.required(i) && anchor.is_some() => StepStatus::Missing,
                    (None, _, _) => StepStatus::NotDue,
                };
                StepTiming {
                    step: s.name.clone(),
                    at,
                    duration_ms,
                    deadline,
                    target_ms: s.sla_ms,
                    status,
                }
            })
            .collect();
        let outcome_name = match outcome {
            SlaOutcome::Completed => "completed",
            SlaOutcome::Cancelled => "cancelled",
            SlaOutcome::Expired => "expired",
            SlaOutcome::StepLate => "late",
            SlaOutcome::EventAge => "event_age",
        };
        let sla_id = match late {
            Some((i, _)) => format!(
                "{}/{}/{outcome_name}/{}",
                self.name, inst.key, self.steps[i].name
            ),
            None => format!("{}/{}/{outcome_name}", self.name, inst.key),
        };
        Output::Sla(SlaEvent {
            sla_id,
            workflow: self.name.clone(),
            key: inst.key.clone(),
            outcome,
            started_at: inst.started_at,
            ended_at,
            detected_at,
            late_step: late.map(|(i, _)| self.steps[i].name.clone()),
            late_by_ms: late.map(|(_, by)| by),
            steps,
            dimensions: inst.dimensions_by(None),
            event_age: None,
            sightline_version: crate::VERSION.to_string(),
        })
    }

    /// The instance ended another way at `at`: steps whose deadline had passed by then get their
    /// alert (if the stream clock had not fired it yet, so the outcome does not depend on it),
    /// and every open missing-step alert is RESOLVED.
    fn resolve_open(&self, inst: &mut Instance, reason: &str, at: i64, out: &mut Vec<Output>) {
        for j in 0..self.steps.len() {
            if self.required(j) && !inst.seen.contains_key(&j) && !inst.fired.contains(&j) {
                if let Some(due) = self.deadline(inst, j).filter(|&d| d < at) {
                    out.push(self.missing(inst, j, due));
                    inst.fired.insert(j);
                }
            }
        }
        for &i in &inst.fired {
            if inst.seen.contains_key(&i) {
                continue;
            }
            out.push(self.resolve_missing(
                inst,
                i,
                at,
                format!(
                    "step `{}` no longer awaited: instance {reason}",
                    self.steps[i].name
                ),
                ("reason", reason.to_string()),
            ));
        }
    }

    /// Timers for the deadlines of steps anchored on step `anchor` (or on the start).
    fn schedule_from(&self, inst: &Instance, anchor: usize, timers: &mut Vec<Timer>) {
        let is_start = self.steps[anchor].start;
        for (j, s) in self.steps.iter().enumerate() {
            let anchored = match s.after {
                Some(a) => a == anchor,
                None => is_start && !s.start,
            };
            if anchored && !inst.seen.contains_key(&j) && !s.optional {
                if let Some(due) = self.deadline(inst, j) {
                    timers.push(Timer {
                        due_ms: due,
                        kind: TimerKind::Deadline(j),
                    });
                }
            }
        }
    }

    /// The timers an instance waits on, from its state alone: its expiry, its orphan grace while
    /// it has not started, and the deadline of every awaited step whose anchor has arrived.
    /// Firing these gives the outputs the timers its transitions asked for would have given
    /// (the property tests check it), so timers need no changelog: a restore rebuilds them.
    pub fn timers(&self, inst: &Instance) -> Vec<Timer> {
        let mut timers = vec![Timer {
            due_ms: self.due(inst, TimerKind::Expire),
            kind: TimerKind::Expire,
        }];
        if inst.closed {
            return timers;
        }
        if inst.started_at.is_none() && !inst.orphan_fired {
            timers.push(Timer {
                due_ms: self.due(inst, TimerKind::Orphan),
                kind: TimerKind::Orphan,
            });
        }
        for (j, s) in self.steps.iter().enumerate() {
            if s.start || s.optional || inst.seen.contains_key(&j) || inst.fired.contains(&j) {
                continue;
            }
            if let Some(due) = self.deadline(inst, j) {
                timers.push(Timer {
                    due_ms: due,
                    kind: TimerKind::Deadline(j),
                });
            }
        }
        timers
    }

    /// An event of this workflow (its type marks a step) for the instance of its key.
    pub fn on_event(&self, instance: Option<Instance>, ev: &Event) -> Transition {
        let Some(i) = self.step_for(&ev.event_type) else {
            return Transition {
                instance,
                outputs: Vec::new(),
                timers: Vec::new(),
            };
        };
        let t = ev.event_time_ms;
        let mut outputs = Vec::new();
        let mut timers = Vec::new();
        let created = instance.is_none();
        let mut inst = instance.unwrap_or_else(|| Instance::new(&ev.key, t));
        let step = &self.steps[i];

        let dup_id = ev
            .event_id
            .as_ref()
            .is_some_and(|id| inst.event_ids.contains(&event_id_digest(id)));
        if dup_id || inst.seen.contains_key(&i) {
            let what = if dup_id {
                "event id seen before"
            } else {
                "step already recorded"
            };
            outputs.push(self.alert(
                &inst,
                Some(i),
                "duplicate",
                AlertStatus::Resolved,
                Severity::Info,
                format!(
                    "{} {}: duplicate `{}` ({what}); not counted again",
                    self.name, inst.key, step.name
                ),
                None,
                t,
                BTreeMap::from([
                    (
                        "event_id".to_string(),
                        ev.event_id.clone().unwrap_or_default(),
                    ),
                    (
                        "offset".to_string(),
                        format!(
                            "{}[{}]@{}",
                            ev.coordinates.topic, ev.coordinates.partition, ev.coordinates.offset
                        ),
                    ),
                ]),
            ));
            return Transition {
                instance: Some(inst),
                outputs,
                timers,
            };
        }
        if inst.closed {
            // After the end: remembered for duplicate detection only.
            return Transition {
                instance: Some(inst),
                outputs,
                timers,
            };
        }
        if created {
            timers.push(Timer {
                due_ms: t.saturating_add(self.ttl_ms),
                kind: TimerKind::Expire,
            });
            if !step.start {
                timers.push(Timer {
                    due_ms: t.saturating_add(self.orphan_grace_ms),
                    kind: TimerKind::Orphan,
                });
            }
        }
        if !created && t < inst.first_at {
            // The ttl (and an orphan's grace) count from the earliest event time of the
            // instance, whichever event was read first.
            inst.first_at = t;
            timers.push(Timer {
                due_ms: t.saturating_add(self.ttl_ms),
                kind: TimerKind::Expire,
            });
            if inst.started_at.is_none() && !step.start {
                timers.push(Timer {
                    due_ms: t.saturating_add(self.orphan_grace_ms),
                    kind: TimerKind::Orphan,
                });
            }
        }
        inst.seen.insert(i, t);
        if let Some(id) = &ev.event_id {
            inst.event_ids.insert(event_id_digest(id));
        }
        for (k, v) in &ev.dimensions {
            let keep = match (inst.dimension_at.get(&**k), inst.dimensions.get(&**k)) {
                (Some(&at), Some(old)) => at < t || (at == t && old <= v),
                _ => false,
            };
            if !keep {
                let k = Name::new(k);
                inst.dimensions.insert(k, v.clone());
                inst.dimension_at.insert(k, t);
            }
        }
        let entry = LineageEntry {
            event_type: Name::new(&ev.event_type),
            topic: Name::new(&ev.coordinates.topic),
            partition: ev.coordinates.partition,
            offset: ev.coordinates.offset,
            event_time: t,
            trace_id: ev
                .traceparent
                .as_ref()
                .and_then(|tp| tp.split('-').nth(1).map(str::to_string)),
        };
        fn place(e: &LineageEntry) -> (i64, &str, i32, i64) {
            (e.event_time, e.topic.as_str(), e.partition, e.offset)
        }
        let at = inst.lineage.partition_point(|e| place(e) <= place(&entry));
        inst.lineage.insert(at, entry);

        let starts_now = step.start && inst.started_at.is_none();
        if starts_now {
            inst.started_at = Some(t);
            if inst.orphan_fired {
                outputs.push(self.resolve_orphan(
                    &inst,
                    t,
                    format!("the start step `{}` arrived after all", step.name),
                    BTreeMap::new(),
                ));
            }
        }
        // Out of order is judged on event times, so it does not depend on which topic the
        // consumer happened to read first: a step that happened before the step it comes after.
        let mut disordered: Vec<(usize, usize)> = Vec::new();
        if let Some(a) = step.after {
            if inst.seen.get(&a).is_some_and(|&ta| t < ta) {
                disordered.push((i, a));
            }
        }
        for (j, s) in self.steps.iter().enumerate() {
            if s.after == Some(i) && inst.seen.get(&j).is_some_and(|&tj| tj < t) {
                disordered.push((j, i));
            }
        }
        for (j, a) in disordered {
            outputs.push(self.alert(
                &inst,
                Some(j),
                "out_of_order",
                AlertStatus::Resolved,
                Severity::Info,
                format!(
                    "{} {}: `{}` happened before `{}`",
                    self.name, inst.key, self.steps[j].name, self.steps[a].name
                ),
                None,
                t,
                BTreeMap::from([("expected_after".to_string(), self.steps[a].name.clone())]),
            ));
        }
        // On time or late? For this step, and for steps that arrived before this, their anchor.
        self.check_late(&mut inst, i, &mut outputs);
        let dependents: Vec<usize> = inst
            .seen
            .keys()
            .copied()
            .filter(|&j| j != i && (starts_now || self.anchored_on(j, i)))
            .collect();
        for j in dependents {
            self.check_late(&mut inst, j, &mut outputs);
        }
        if inst.started_at.is_some() {
            if step.start {
                self.schedule_from(&inst, i, &mut timers);
                // Steps anchored on steps that arrived before the start are now due too.
                let earlier: Vec<usize> = inst.seen.keys().copied().filter(|&k| k != i).collect();
                for k in earlier {
                    self.schedule_from(&inst, k, &mut timers);
                }
            } else {
                self.schedule_from(&inst, i, &mut timers);
            }
        }

        if step.closes {
            inst.closed = true;
            self.resolve_open(&mut inst, "cancelled", t, &mut outputs);
            outputs.push(self.sla(&inst, SlaOutcome::Cancelled, Some(t), t, None));
        } else if let Some(done) = self.completed_at(&inst) {
            inst.closed = true;
            self.resolve_open(&mut inst, "completed", done, &mut outputs);
            outputs.push(self.sla(&inst, SlaOutcome::Completed, Some(done), done, None));
        }
        Transition {
            instance: Some(inst),
            outputs,
            timers,
        }
    }

    /// When a started instance completed, in event time, from the steps known, whichever was
    /// read first: at its earliest terminal step, or when the last required step happened.
    /// None while it is not started or not complete.
    fn completed_at(&self, inst: &Instance) -> Option<i64> {
        inst.started_at?;
        let terminal = inst
            .seen
            .iter()
            .filter(|(j, _)| self.steps[**j].terminal)
            .map(|(_, &at)| at)
            .min();
        let all_required = (0..self.steps.len())
            .all(|j| !self.required(j) || inst.seen.contains_key(&j))
            .then(|| {
                (0..self.steps.len())
                    .filter(|&j| self.required(j))
                    .filter_map(|j| inst.seen.get(&j).copied())
                    .max()
            })
            .flatten();
        match (terminal, all_required) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Is step `j`'s deadline anchored on step `i`?
    fn anchored_on(&self, j: usize, i: usize) -> bool {
        match self.steps[j].after {
            Some(a) => a == i,
            None => self.steps[i].start && !self.steps[j].start,
        }
    }

    /// Step `i` has arrived and its anchor is known: was it late? A late step gets its
    /// missing-step alert FIRING (if the stream clock had not fired it yet) and RESOLVED with
    /// how late, and an SLA `STEP_LATE` event. Called once per step, when both it and its anchor
    /// are known, whichever came first, so the outcome does not depend on arrival order.
    fn check_late(&self, inst: &mut Instance, i: usize, outputs: &mut Vec<Output>) {
        let step = &self.steps[i];
        let (Some(t), Some(due)) = (inst.seen.get(&i).copied(), self.deadline(inst, i)) else {
            return;
        };
        if step.optional {
            return;
        }
        let late_by = t.saturating_sub(due);
        if late_by > 0 {
            if !inst.fired.contains(&i) {
                outputs.push(self.missing(inst, i, due));
                inst.fired.insert(i);
            }
            outputs.push(self.resolve_missing(
                inst,
                i,
                t,
                format!("step `{}` arrived {} late", step.name, human(late_by)),
                ("late_by_ms", late_by.to_string()),
            ));
            outputs.push(self.sla(inst, SlaOutcome::StepLate, Some(t), t, Some((i, late_by))));
        } else if inst.fired.contains(&i) {
            // On time in event time, but the alert fired before the event arrived (it came
            // later than the allowed lateness).
            outputs.push(self.resolve_missing(
                inst,
                i,
                t,
                format!(
                    "step `{}` arrived on time, but later than the stream clock allowed",
                    step.name
                ),
                ("late_by_ms", "0".to_string()),
            ));
        }
    }

    /// The RESOLVED side of an orphan alert.
    fn resolve_orphan(
        &self,
        inst: &Instance,
        at: i64,
        why: String,
        attributes: BTreeMap<String, String>,
    ) -> Output {
        self.alert(
            inst,
            None,
            "orphan",
            AlertStatus::Resolved,
            Severity::Warning,
            format!("{} {}: {why}", self.name, inst.key),
            None,
            at,
            attributes,
        )
    }

    /// The RESOLVED side of step `i`'s missing-step alert.
    fn resolve_missing(
        &self,
        inst: &Instance,
        i: usize,
        at: i64,
        why: String,
        attribute: (&str, String),
    ) -> Output {
        self.alert(
            inst,
            Some(i),
            "missing_step",
            AlertStatus::Resolved,
            self.severity(i),
            format!("{} {}: {why}", self.name, inst.key),
            self.deadline(inst, i),
            at,
            BTreeMap::from([(attribute.0.to_string(), attribute.1)]),
        )
    }

    fn missing(&self, inst: &Instance, i: usize, due: i64) -> Output {
        let s = &self.steps[i];
        self.alert(
            inst,
            Some(i),
            "missing_step",
            AlertStatus::Firing,
            self.severity(i),
            format!(
                "{} {}: step `{}` missing; it was due {} ({} after `{}`)",
                self.name,
                inst.key,
                s.name,
                iso(due),
                human(due.saturating_sub(self.anchor_at(inst, i).unwrap_or(due))),
                self.anchor_name(i)
            ),
            Some(due),
            due,
            BTreeMap::new(),
        )
    }

    /// When the orphan or expiry timer of an instance is due.
    fn due(&self, inst: &Instance, kind: TimerKind) -> i64 {
        match kind {
            TimerKind::Orphan => inst.first_at.saturating_add(self.orphan_grace_ms),
            _ => inst.first_at.saturating_add(self.ttl_ms),
        }
    }

    /// A timer came due on the stream clock (`now_ms` ≥ its due time).
    pub fn on_timer(&self, instance: Option<Instance>, timer: Timer, now_ms: i64) -> Transition {
        let mut outputs = Vec::new();
        let mut timers = Vec::new();
        let Some(mut inst) = instance else {
            return Transition {
                instance: None,
                outputs,
                timers,
            };
        };
        match timer.kind {
            TimerKind::Deadline(i) => {
                let s = &self.steps[i];
                if inst.closed
                    || s.optional
                    || inst.seen.contains_key(&i)
                    || inst.fired.contains(&i)
                {
                    return Transition {
                        instance: Some(inst),
                        outputs,
                        timers,
                    };
                }
                match self.deadline(&inst, i) {
                    // Dimensions learnt since may have moved the deadline later: wait for it.
                    Some(due) if due > now_ms => timers.push(Timer {
                        due_ms: due,
                        kind: timer.kind,
                    }),
                    Some(due) => {
                        let mut alert = self.missing(&inst, i, due);
                        if let Output::Alert(a) = &mut alert {
                            a.attributes.insert("stream_clock".to_string(), iso(now_ms));
                        }
                        outputs.push(alert);
                        inst.fired.insert(i);
                    }
                    None => {}
                }
            }
            // An orphan or expiry timer is the instance's only while it is due where the
            // instance's first event says: one left by an earlier instance of the same key
            // (expired, then the key seen again) must not end or flag this one.
            TimerKind::Orphan | TimerKind::Expire
                if timer.due_ms != self.due(&inst, timer.kind) => {}
            TimerKind::Orphan => {
                if inst.started_at.is_none() && !inst.closed && !inst.orphan_fired {
                    inst.orphan_fired = true;
                    let start = self
                        .steps
                        .iter()
                        .find(|s| s.start)
                        .map(|s| s.name.as_str())
                        .unwrap_or("start");
                    outputs.push(self.alert(
                        &inst,
                        None,
                        "orphan",
                        AlertStatus::Firing,
                        Severity::Warning,
                        format!(
                            "{} {}: events arrived but the start step `{start}` did not within {}",
                            self.name,
                            inst.key,
                            human(self.orphan_grace_ms)
                        ),
                        Some(timer.due_ms),
                        timer.due_ms,
                        BTreeMap::new(),
                    ));
                }
            }
            TimerKind::Expire => {
                if !inst.closed {
                    self.resolve_open(&mut inst, "expired", timer.due_ms, &mut outputs);
                    if inst.orphan_fired && inst.started_at.is_none() {
                        outputs.push(self.resolve_orphan(
                            &inst,
                            timer.due_ms,
                            "orphan dropped at its ttl".to_string(),
                            BTreeMap::from([("reason".to_string(), "expired".to_string())]),
                        ));
                    }
                    outputs.push(self.alert(
                        &inst,
                        None,
                        "expired",
                        AlertStatus::Resolved,
                        Severity::Warning,
                        format!(
                            "{} {}: unfinished after {}; no longer tracked",
                            self.name,
                            inst.key,
                            human(self.ttl_ms)
                        ),
                        Some(timer.due_ms),
                        timer.due_ms,
                        BTreeMap::new(),
                    ));
                    outputs.push(self.sla(&inst, SlaOutcome::Expired, None, timer.due_ms, None));
                }
                return Transition {
                    instance: None,
                    outputs,
                    timers,
                };
            }
        }
        Transition {
            instance: Some(inst),
            outputs,
            timers,
        }
    }
}
