//! Read-only questions about the state store, for operators: one instance with its lineage,
//! the oldest open instances by workflow and step, timers due soon. The running instance's
//! HTTP API and `sightline state` on a stopped instance's directory both answer with these.

use super::keys;
use super::{StateError, Store, CF_INSTANCES, CF_META, CF_TIMERS};
use crate::detectors::workflow::{TimerKind, Workflow};
use serde::Serialize;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};

/// A workflow's definition, as the API shows it.
pub fn describe(w: &Workflow) -> Value {
    json!({
        "name": w.name,
        "timezone": w.tz.name(),
        "ttl_ms": w.ttl_ms,
        "orphan_grace_ms": w.orphan_grace_ms,
        "steps": w.steps.iter().map(|s| json!({
            "name": s.name,
            "on": s.on,
            "start": s.start,
            "after": s.after.map(|i| w.steps[i].name.clone()),
            "within_ms": s.within_ms,
            "optional": s.optional,
            "closes": s.closes,
        })).collect::<Vec<_>>(),
    })
}

/// Input partitions the store holds state for (from its checkpoints and clocks).
fn partitions(store: &Store) -> Result<BTreeSet<i32>, StateError> {
    let mut out = BTreeSet::new();
    for prefix in [keys::CHECKPOINT, keys::CLOCK] {
        for (k, _) in store.scan_prefix(CF_META, prefix)? {
            out.extend(keys::meta_partition(prefix, &k));
        }
    }
    Ok(out)
}

fn step_name(w: Option<&Workflow>, i: usize) -> String {
    w.and_then(|w| w.steps.get(i))
        .map_or_else(|| format!("#{i}"), |s| s.name.clone())
}

/// One instance, with the partition that owns it, its steps by name and its lineage.
pub fn instance(
    store: &Store,
    workflows: &[Workflow],
    workflow: &str,
    key: &str,
) -> Result<Option<Value>, StateError> {
    let w = workflows.iter().find(|w| w.name == workflow);
    for p in partitions(store)? {
        if let Some(v) = store.get(CF_INSTANCES, &keys::instance(p, workflow, key))? {
            let Some(mut inst) = crate::state::instances::decode(&v) else {
                continue;
            };
            // In business order (arrival order across topics is the consumer's, not the business's).
            inst.lineage.sort_by(|a, b| {
                (a.event_time, &a.topic, a.offset).cmp(&(b.event_time, &b.topic, b.offset))
            });
            let steps: BTreeMap<String, i64> = inst
                .seen
                .iter()
                .map(|(i, t)| (step_name(w, *i), *t))
                .collect();
            return Ok(Some(json!({
                "workflow": workflow,
                "key": inst.key,
                "partition": p,
                "first_at": inst.first_at,
                "started_at": inst.started_at,
                "closed": inst.closed,
                "steps_seen": steps,
                "alerted_steps": inst.fired.iter().map(|i| step_name(w, *i)).collect::<Vec<_>>(),
                "dimensions": inst.dimensions,
                "lineage": inst.lineage,
            })));
        }
    }
    Ok(None)
}

/// An open instance, as listed.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct OpenInstance {
    pub workflow: String,
    pub key: String,
    pub partition: i32,
    /// The latest step seen (by event time).
    pub step: String,
    pub first_at: i64,
    pub age_ms: i64,
}

/// Open instances: counts by workflow and latest step, and the `top` oldest.
pub fn open_instances(
    store: &Store,
    workflows: &[Workflow],
    workflow: Option<&str>,
    top: usize,
    now_ms: i64,
) -> Result<Value, StateError> {
    let mut counts: BTreeMap<(String, String), u64> = BTreeMap::new();
    let mut oldest: Vec<OpenInstance> = Vec::new();
    for (k, v) in store.scan_prefix(CF_INSTANCES, b"")? {
        let Some((p, wf, _)) = keys::parse_instance(&k) else {
            continue;
        };
        let wf = wf.to_string();
        if workflow.is_some_and(|w| w != wf) {
            continue;
        }
        let Some(inst) = crate::state::instances::decode(&v) else {
            continue;
        };
        if inst.closed {
            continue;
        }
        let w = workflows.iter().find(|w| w.name == wf);
        let step = inst
            .seen
            .iter()
            .max_by_key(|(_, t)| **t)
            .map_or_else(|| "(none)".to_string(), |(i, _)| step_name(w, *i));
        *counts.entry((wf.clone(), step.clone())).or_default() += 1;
        oldest.push(OpenInstance {
            workflow: wf,
            key: inst.key,
            partition: p,
            step,
            first_at: inst.first_at,
            age_ms: now_ms - inst.first_at,
        });
        if oldest.len() > top.saturating_mul(4).max(1024) {
            oldest.sort_by_key(|o| o.first_at);
            oldest.truncate(top);
        }
    }
    oldest.sort_by_key(|o| (o.first_at, o.key.clone()));
    oldest.truncate(top);
    Ok(json!({
        "by_step": counts.into_iter().map(|((w, s), n)| json!({"workflow": w, "step": s, "open": n})).collect::<Vec<_>>(),
        "oldest": oldest,
    }))
}

/// Timers due in `[from_ms, to_ms)` on their partitions' stream clocks that still matter.
///
/// Timers are not deleted when their step arrives (the machine ignores a spent timer when it
/// fires), so a deadline whose step has arrived, or an orphan check of an instance that has
/// started, is spent and not listed; neither is anything of a closed instance but its expiry.
pub fn timers_due(
    store: &Store,
    workflows: &[Workflow],
    from_ms: i64,
    to_ms: i64,
) -> Result<Value, StateError> {
    let mut out = Vec::new();
    for p in partitions(store)? {
        let mut from = keys::partition_prefix(p).to_vec();
        from.extend_from_slice(&keys::due(from_ms));
        let mut to = keys::partition_prefix(p).to_vec();
        to.extend_from_slice(&keys::due(to_ms));
        for (k, _) in store.range(CF_TIMERS, &from, &to, 10_000)? {
            let Some((_, at, wf, key, timer)) = keys::parse_timer(&k) else {
                continue;
            };
            let (kind, step) = match timer {
                TimerKind::Deadline(step) => ("deadline", step),
                TimerKind::Orphan => ("orphan", 0),
                TimerKind::Expire => ("expire", 0),
            };
            let inst = store
                .get(CF_INSTANCES, &keys::instance(p, &wf, &key))?
                .and_then(|v| crate::state::instances::decode(&v));
            let spent = inst.as_ref().is_some_and(|i| match kind {
                "deadline" => i.closed || i.seen.contains_key(&step),
                "orphan" => i.closed || i.started_at.is_some(),
                _ => false,
            });
            if spent {
                continue;
            }
            let w = workflows.iter().find(|w| w.name == wf);
            out.push(json!({
                "partition": p,
                "due": at,
                "kind": kind,
                "step": (kind == "deadline").then(|| step_name(w, step)),
                "workflow": wf,
                "key": key,
            }));
        }
    }
    out.sort_by_key(|t| t["due"].as_i64());
    Ok(Value::Array(out))
}
