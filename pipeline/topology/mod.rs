//! Topology files (topologies/*.yaml): what to read and how to see business events in it.
//!
//! A topology declares *sources*: a topic, its format, and where each part of the normalised
//! event comes from (event type, correlation key, event id, event time, dimensions). Workflows
//! and monitors are declared in the same files by later parts of the engine.

pub mod monitor;
pub mod reload;
pub mod source;
pub mod workflow;

pub use source::{Format, SourceSpec, TimeFormat, TimeSpec, ValueFrom};

use serde::Deserialize;
use std::fmt;
use std::path::{Path, PathBuf};

/// One topology file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Topology {
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub sources: Vec<SourceSpec>,
    #[serde(default)]
    pub workflows: Vec<workflow::WorkflowSpec>,
    #[serde(default)]
    pub monitors: monitor::Monitors,
    #[serde(skip)]
    pub file: PathBuf,
    /// The file's text, to point problems found later at their line.
    #[serde(skip)]
    pub text: String,
}

/// A problem in a topology file, with the line when it is known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopologyError {
    pub file: String,
    pub line: Option<usize>,
    pub reason: String,
}

impl fmt::Display for TopologyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(l) => write!(f, "{}:{}: {}", self.file, l, self.reason),
            None => write!(f, "{}: {}", self.file, self.reason),
        }
    }
}

impl Topology {
    pub fn parse(text: &str, file: &Path) -> Result<Topology, Vec<TopologyError>> {
        match Self::parse_lenient(text, file) {
            (Some(t), errors) if errors.is_empty() => Ok(t),
            (_, errors) => Err(errors),
        }
    }

    /// A problem at the first line holding `anchor`.
    pub fn problem(&self, anchor: &str, reason: String) -> TopologyError {
        TopologyError {
            file: self.file.display().to_string(),
            line: line_of(&self.text, anchor),
            reason,
        }
    }

    /// The topology when it parses (even if it does not validate), and every problem.
    pub fn parse_lenient(text: &str, file: &Path) -> (Option<Topology>, Vec<TopologyError>) {
        let name = file.display().to_string();
        let mut t: Topology = match serde_yaml::from_str(text) {
            Ok(t) => t,
            Err(e) => {
                return (
                    None,
                    vec![TopologyError {
                        file: name.clone(),
                        line: e.location().map(|l| l.line()),
                        reason: e.to_string(),
                    }],
                )
            }
        };
        t.file = file.to_path_buf();
        t.text = text.to_string();
        let errors: Vec<TopologyError> = t
            .sources
            .iter()
            .flat_map(|s| s.validate())
            .chain(t.workflows.iter().flat_map(|w| w.validate()))
            .chain(t.monitors.freshness.iter().flat_map(|m| m.validate()))
            .chain(t.monitors.age.iter().flat_map(|m| m.validate()))
            .chain(t.monitors.dead_letters.iter().flat_map(|m| m.validate()))
            .map(|reason| TopologyError {
                file: name.clone(),
                line: line_of(text, &reason.anchor),
                reason: reason.message,
            })
            .collect();
        (Some(t), errors)
    }
}

/// The first line on which `anchor` appears (validation errors point at the offending name).
fn line_of(text: &str, anchor: &str) -> Option<usize> {
    if anchor.is_empty() {
        return None;
    }
    text.lines().position(|l| l.contains(anchor)).map(|i| i + 1)
}

/// The topology files a config names (`topologies.paths`), resolved against its directory.
pub fn configured_paths(cfg: &crate::config::Config) -> Vec<PathBuf> {
    cfg.topologies
        .paths
        .iter()
        .map(|p| cfg.resolve(p))
        .collect()
}

/// The topologies a config names; every problem in them as one error.
pub fn load_configured(cfg: &crate::config::Config) -> anyhow::Result<Vec<Topology>> {
    load_all(&configured_paths(cfg)).map_err(|errors| {
        anyhow::anyhow!(
            "{} topology error(s):\n{}",
            errors.len(),
            errors
                .iter()
                .map(|e| format!("  - {e}"))
                .collect::<Vec<_>>()
                .join("\n")
        )
    })
}

/// Expands files and directories (their `*.yaml` / `*.yml`, sorted) and loads every topology.
/// All problems in all files are returned together.
pub fn load_all(paths: &[PathBuf]) -> Result<Vec<Topology>, Vec<TopologyError>> {
    match load_all_lenient(paths) {
        (ts, errors) if errors.is_empty() => Ok(ts),
        (_, errors) => Err(errors),
    }
}

/// Every topology that parses (valid or not), and every problem in all files.
pub fn load_all_lenient(paths: &[PathBuf]) -> (Vec<Topology>, Vec<TopologyError>) {
    let mut files = Vec::new();
    let mut errors = Vec::new();
    for p in paths {
        if p.is_dir() {
            match std::fs::read_dir(p) {
                Ok(rd) => {
                    let mut found: Vec<PathBuf> = rd
                        .filter_map(|e| e.ok().map(|e| e.path()))
                        .filter(|f| {
                            matches!(f.extension().and_then(|e| e.to_str()), Some("yaml" | "yml"))
                        })
                        .collect();
                    found.sort();
                    files.extend(found);
                }
                Err(e) => errors.push(TopologyError {
                    file: p.display().to_string(),
                    line: None,
                    reason: format!("cannot list the directory: {e}"),
                }),
            }
        } else {
            files.push(p.clone());
        }
    }
    let mut out = Vec::new();
    for f in files {
        match std::fs::read_to_string(&f) {
            Ok(text) => {
                let (t, e) = Topology::parse_lenient(&text, &f);
                out.extend(t);
                errors.extend(e);
            }
            Err(e) => errors.push(TopologyError {
                file: f.display().to_string(),
                line: None,
                reason: format!("cannot read the topology file: {e}"),
            }),
        }
    }
    // Source names are how metrics and DLQ headers refer to a source: they must be unique.
    let mut seen = std::collections::HashMap::new();
    for t in &out {
        for s in &t.sources {
            if let Some(prev) = seen.insert(s.name.clone(), t.file.display().to_string()) {
                errors.push(TopologyError {
                    file: t.file.display().to_string(),
                    line: None,
                    reason: format!(
                        "source `{}` is also declared in {prev}; source names must be unique",
                        s.name
                    ),
                });
            }
        }
    }
    (out, errors)
}
