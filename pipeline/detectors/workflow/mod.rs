//! Where a missing workflow step is detected.
//!
//! [`Workflow`] is a compiled workflow declaration; [`machine`] is the per-instance state
//! machine, `(instance, event | timer) -> (instance', outputs, timers)`, pure: no Kafka, no
//! RocksDB, no clock of its own. Time comes in as event times and as timers fired by the
//! engine's stream clock, so the same input gives the same output on every replay.

pub mod calendar;
pub mod machine;

pub use machine::{Instance, Timer, TimerKind, Transition};

use crate::topology::workflow::{StepSeverity, WorkflowSpec};
use crate::topology::Topology;
use calendar::Calendar;
use chrono_tz::Tz;
use std::collections::{BTreeMap, HashMap};

#[derive(Debug, Clone)]
pub struct Override {
    pub when: BTreeMap<String, String>,
    pub calendar: Option<String>,
    pub within_ms: i64,
}

#[derive(Debug, Clone)]
pub struct Step {
    pub name: String,
    pub on: String,
    pub start: bool,
    /// Index of the anchor step (`after`); None: anchored on the start.
    pub after: Option<usize>,
    pub within_ms: Option<i64>,
    pub optional: bool,
    pub terminal: bool,
    pub closes: bool,
    pub severity: StepSeverity,
    pub criticality: Option<String>,
    pub sla_ms: Option<i64>,
    pub overrides: Vec<Override>,
}

#[derive(Debug, Clone)]
pub struct Workflow {
    pub name: String,
    pub tz: Tz,
    pub ttl_ms: i64,
    pub orphan_grace_ms: i64,
    pub steps: Vec<Step>,
    pub calendars: HashMap<String, Calendar>,
    by_type: HashMap<String, usize>,
}

impl Workflow {
    /// Compiles a validated spec (see `WorkflowSpec::validate`).
    pub fn compile(spec: &WorkflowSpec) -> Result<Workflow, String> {
        let problems = spec.validate();
        if let Some(p) = problems.first() {
            return Err(p.message.clone());
        }
        let positions: std::collections::HashMap<&str, usize> = spec
            .steps
            .iter()
            .enumerate()
            .map(|(i, s)| (s.name.as_str(), i))
            .collect();
        let index = |n: &str| positions.get(n).copied();
        let steps: Vec<Step> = spec
            .steps
            .iter()
            .map(|s| Step {
                name: s.name.clone(),
                on: s.on.clone(),
                start: s.start,
                after: s.after.as_deref().and_then(index),
                within_ms: s.within.map(|w| w.ms()),
                optional: s.optional,
                terminal: s.terminal,
                closes: s.closes,
                severity: s.severity,
                criticality: s.criticality.clone(),
                sla_ms: s.sla.map(|w| w.ms()),
                overrides: s
                    .overrides
                    .iter()
                    .map(|o| Override {
                        when: o.when.clone(),
                        calendar: o.calendar.clone(),
                        within_ms: o.within.ms(),
                    })
                    .collect(),
            })
            .collect();
        let calendars = spec
            .calendars
            .iter()
            .map(|(name, c)| (name.clone(), calendar::Calendar::of(c)))
            .collect();
        let by_type = steps
            .iter()
            .enumerate()
            .map(|(i, s)| (s.on.clone(), i))
            .collect();
        Ok(Workflow {
            name: spec.name.clone(),
            tz: spec
                .timezone
                .parse()
                .map_err(|_| format!("unknown time zone {}", spec.timezone))?,
            ttl_ms: spec.ttl.ms(),
            orphan_grace_ms: spec.orphan_grace.ms(),
            steps,
            calendars,
            by_type,
        })
    }

    /// The step an event type marks, if any.
    pub fn step_for(&self, event_type: &str) -> Option<usize> {
        self.by_type.get(event_type).copied()
    }

    /// The event types this workflow cares about.
    pub fn event_types(&self) -> impl Iterator<Item = &str> {
        self.by_type.keys().map(String::as_str)
    }

    /// The deadline window of step `i` for an anchor at `anchor_ms` with these dimensions:
    /// the first matching override, else the step's own `within`.
    pub fn within(
        &self,
        i: usize,
        anchor_ms: i64,
        dims: &BTreeMap<crate::outputs::Name, String>,
    ) -> Option<i64> {
        let step = &self.steps[i];
        let base = step.within_ms?;
        for o in &step.overrides {
            let dims_match = o.when.iter().all(|(k, v)| dims.get(k.as_str()) == Some(v));
            let cal_match = o.calendar.as_ref().is_none_or(|c| {
                self.calendars
                    .get(c)
                    .is_some_and(|c| c.contains(self.tz, anchor_ms))
            });
            if dims_match && cal_match {
                return Some(o.within_ms);
            }
        }
        Some(base)
    }
}

#[cfg(test)]
mod tests;

/// Compiles every workflow of `topologies`; an error names the file and the workflow.
pub fn compile_all(topologies: &[Topology]) -> anyhow::Result<Vec<Workflow>> {
    let mut out = Vec::new();
    for t in topologies {
        for w in &t.workflows {
            out.push(Workflow::compile(w).map_err(|e| {
                anyhow::anyhow!("{}: workflow `{}`: {e}", t.file.display(), w.name)
            })?);
        }
    }
    Ok(out)
}
