//! `sightline check`: every problem in the config, the topologies and the contracts, at once,
//! each with its file and line (or key); then each workflow as a text graph, or Graphviz dot.
//!
//! Beyond what loading checks (syntax, keys, steps after missing steps, deadlines longer than
//! the ttl, unknown time zones and calendars), it checks across files: contract files exist and
//! parse, workflow steps wait for event types some source carries (once every source declares
//! its types), and, with a reachable registry, that each Avro contract can read the registry's
//! latest schema of its topic.

use crate::config::Config;
use crate::topology::{Topology, TopologyError, ValueFrom};
use std::collections::BTreeSet;
use std::path::Path;
use std::process::ExitCode;

/// Problems across files: contracts and event types.
fn cross_checks(cfg: &Config, ts: &[Topology]) -> Vec<TopologyError> {
    let mut out = Vec::new();
    let schemas = cfg.resolve(&cfg.schemas.dir);
    for t in ts {
        for s in &t.sources {
            if let Some(c) = &s.contract {
                if let Err(e) = crate::contracts::Contract::load(&schemas, c) {
                    out.push(t.problem(
                        &format!("contract: {c}"),
                        format!(
                            "source `{}`: {e} (schemas.dir is {})",
                            s.name,
                            schemas.display()
                        ),
                    ));
                }
            }
        }
    }
    // Event types: known only when every source says what it carries.
    let sources = ts.iter().flat_map(|t| &t.sources);
    let closed = sources
        .clone()
        .all(|s| matches!(s.event_type, ValueFrom::Fixed(_)) || !s.event_types.is_empty());
    if closed {
        let known: BTreeSet<&str> = sources
            .flat_map(|s| {
                let fixed = match &s.event_type {
                    ValueFrom::Fixed(v) => Some(v.as_str()),
                    _ => None,
                };
                fixed
                    .into_iter()
                    .chain(s.event_types.iter().map(String::as_str))
            })
            .collect();
        for t in ts {
            for w in &t.workflows {
                for step in &w.steps {
                    if !known.contains(step.on.as_str()) {
                        out.push(t.problem(
                            &format!("on: {}", step.on),
                            format!(
                                "workflow `{}`: step `{}` waits for event type `{}`, which no source carries (sources declare: {})",
                                w.name,
                                step.name,
                                step.on,
                                known.iter().copied().collect::<Vec<_>>().join(", ")
                            ),
                        ));
                    }
                }
            }
        }
    }
    out
}

/// Each Avro contract against the registry's latest schema of its topic (`<topic>-value`).
async fn registry_checks(cfg: &Config, ts: &[Topology]) -> (Vec<TopologyError>, Option<String>) {
    let Some(reg) = &cfg.registry else {
        return (Vec::new(), None);
    };
    let schemas = cfg.resolve(&cfg.schemas.dir);
    let client = match reqwest::Client::builder()
        .timeout(std::time::Duration::from_millis(reg.timeout_ms.max(1000)))
        .build()
    {
        Ok(c) => c,
        Err(e) => return (Vec::new(), Some(format!("registry client: {e}"))),
    };
    let mut out = Vec::new();
    for t in ts {
        for s in t
            .sources
            .iter()
            .filter(|s| s.format == crate::topology::Format::Avro)
        {
            let (Some(c), None) = (&s.contract, s.topic_pattern()) else {
                continue;
            };
            let Ok(contract) = crate::contracts::Contract::load(&schemas, c) else {
                continue;
            };
            let url = format!(
                "{}/subjects/{}-value/versions/latest",
                reg.url.trim_end_matches('/'),
                s.topic
            );
            let mut req = client.get(&url);
            if let Some(user) = &reg.username {
                req = req.basic_auth(
                    user,
                    cfg.registry_password()
                        .ok()
                        .flatten()
                        .map(|p| p.expose().to_string()),
                );
            }
            let resp = match req.send().await {
                Ok(r) => r,
                Err(e) => {
                    return (
                        out,
                        Some(format!(
                            "registry {} not reachable ({e}); contracts were not compared with it",
                            reg.url
                        )),
                    )
                }
            };
            if resp.status() == reqwest::StatusCode::NOT_FOUND {
                continue; // nothing registered yet: nothing to disagree with
            }
            let Ok(body) = resp.json::<serde_json::Value>().await else {
                continue;
            };
            let Some(Ok(latest)) = body["schema"].as_str().map(apache_avro::Schema::parse_str)
            else {
                continue;
            };
            if let Err(why) = crate::contracts::compatible(&latest, &contract.schema) {
                out.push(t.problem(
                    &format!("contract: {c}"),
                    format!(
                        "source `{}`: contract `{c}` cannot read the registry's latest `{}-value` (version {}): {}",
                        s.name,
                        s.topic,
                        body["version"],
                        why.join("; ")
                    ),
                ));
            }
        }
    }
    (out, None)
}

/// The problems found, one line each (empty when all is valid), a one-line summary, notes, and
/// the topologies that parsed.
pub async fn problems(config: &Path) -> (Vec<String>, String, Vec<String>, Vec<Topology>) {
    let mut out = Vec::new();
    let cfg = match Config::load(config) {
        Ok(c) => c,
        Err(errors) => {
            out.extend(errors.0.iter().map(|e| e.to_string()));
            return (out, String::new(), Vec::new(), Vec::new());
        }
    };
    let (ts, errors) = crate::topology::load_all_lenient(&crate::topology::configured_paths(&cfg));
    let mut found: Vec<TopologyError> = errors;
    found.extend(cross_checks(&cfg, &ts));
    let (reg, note) = registry_checks(&cfg, &ts).await;
    found.extend(reg);
    found.sort_by(|a, b| (&a.file, a.line).cmp(&(&b.file, b.line)));
    out.extend(found.iter().map(|e| e.to_string()));
    let sources: usize = ts.iter().map(|t| t.sources.len()).sum();
    if sources == 0 && out.is_empty() {
        out.push(format!(
            "{}: key `topologies.paths`: the topologies declare no sources; there is nothing to read",
            config.display()
        ));
    }
    let workflows: usize = ts.iter().map(|t| t.workflows.len()).sum();
    let summary = format!(
        "{} topolog{}, {sources} source(s), {workflows} workflow(s)",
        ts.len(),
        if ts.len() == 1 { "y" } else { "ies" }
    );
    (out, summary, note.into_iter().collect(), ts)
}

/// `90000` -> `1m30s`: the way topologies write durations.
fn span(ms: i64) -> String {
    let mut left = ms / 1000;
    let mut out = String::new();
    for (unit, secs) in [("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1)] {
        if left >= secs {
            out.push_str(&format!("{}{unit}", left / secs));
            left %= secs;
        }
    }
    if out.is_empty() {
        format!("{ms}ms")
    } else {
        out
    }
}

/// A workflow as a text tree: each step under the step it comes after.
pub fn text_graph(w: &crate::topology::workflow::WorkflowSpec) -> String {
    let mut out = format!("workflow {}\n", w.name);
    fn walk(
        w: &crate::topology::workflow::WorkflowSpec,
        parent: Option<&str>,
        depth: usize,
        out: &mut String,
    ) {
        for s in w.steps.iter().filter(|s| {
            if parent.is_none() {
                s.start
            } else {
                !s.start
                    && s.after
                        .as_deref()
                        .or_else(|| w.steps.iter().find(|x| x.start).map(|x| x.name.as_str()))
                        == parent
            }
        }) {
            let mut notes = vec![format!("on {}", s.on)];
            if let Some(within) = s.within {
                notes.push(format!("within {}", span(within.ms())));
            }
            if s.start {
                notes.push("start".into());
            }
            if s.optional {
                notes.push("optional".into());
            }
            if s.closes {
                notes.push("closes".into());
            }
            out.push_str(&format!(
                "{}{} ({})\n",
                "  ".repeat(depth + 1),
                s.name,
                notes.join(", ")
            ));
            if !s.start || parent.is_none() {
                walk(w, Some(&s.name), depth + 1, out);
            }
        }
    }
    walk(w, None, 0, &mut out);
    out
}

/// A workflow as Graphviz dot: an edge from each step to the steps that follow it.
pub fn dot_graph(w: &crate::topology::workflow::WorkflowSpec) -> String {
    let start = w.steps.iter().find(|s| s.start).map(|s| s.name.clone());
    let mut out = format!("digraph \"{}\" {{\n  rankdir=LR;\n", w.name);
    for s in &w.steps {
        let shape = if s.start {
            "doublecircle"
        } else if s.optional {
            "ellipse, style=dashed"
        } else {
            "box"
        };
        out.push_str(&format!(
            "  \"{}\" [shape={shape}, label=\"{}\\non {}\"];\n",
            s.name, s.name, s.on
        ));
    }
    for s in w.steps.iter().filter(|s| !s.start) {
        if let Some(from) = s.after.clone().or_else(|| start.clone()) {
            let label = s
                .within
                .map(|d| format!(" [label=\"within {}\"]", span(d.ms())))
                .unwrap_or_default();
            out.push_str(&format!("  \"{from}\" -> \"{}\"{label};\n", s.name));
        }
    }
    out.push_str("}\n");
    out
}

pub async fn check(config: &Path, dot: bool) -> anyhow::Result<ExitCode> {
    let (problems, summary, notes, ts) = problems(config).await;
    for n in &notes {
        println!("note: {n}");
    }
    if !problems.is_empty() {
        println!("{} problem(s):", problems.len());
        for p in &problems {
            println!("  - {p}");
        }
        return Ok(ExitCode::FAILURE);
    }
    println!("ok: {} is valid; {summary}", config.display());
    for t in &ts {
        for w in &t.workflows {
            println!();
            print!("{}", if dot { dot_graph(w) } else { text_graph(w) });
        }
    }
    Ok(ExitCode::SUCCESS)
}
