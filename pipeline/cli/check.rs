//! `sightline check`: every problem in the config and the topologies, at once.

use crate::config::Config;
use std::path::Path;
use std::process::ExitCode;

/// The problems found, one line each (empty when all is valid), and a one-line summary.
pub fn problems(config: &Path) -> (Vec<String>, String) {
    let mut out = Vec::new();
    let cfg = match Config::load(config) {
        Ok(c) => Some(c),
        Err(errors) => {
            out.extend(errors.0.iter().map(|e| e.to_string()));
            None
        }
    };
    let Some(cfg) = cfg else {
        return (out, String::new());
    };
    let paths: Vec<_> = cfg
        .topologies
        .paths
        .iter()
        .map(|p| cfg.resolve(p))
        .collect();
    match crate::topology::load_all(&paths) {
        Ok(ts) => {
            let sources: usize = ts.iter().map(|t| t.sources.len()).sum();
            if sources == 0 {
                out.push(format!(
                    "{}: key `topologies.paths`: the topologies declare no sources; there is nothing to read",
                    config.display()
                ));
            }
            (
                out,
                format!(
                    "{} topolog{}, {sources} source(s)",
                    ts.len(),
                    if ts.len() == 1 { "y" } else { "ies" }
                ),
            )
        }
        Err(errors) => {
            out.extend(errors.iter().map(|e| e.to_string()));
            (out, String::new())
        }
    }
}

pub fn check(config: &Path) -> anyhow::Result<ExitCode> {
    let (problems, summary) = problems(config);
    if problems.is_empty() {
        println!("ok: {} is valid; {summary}", config.display());
        Ok(ExitCode::SUCCESS)
    } else {
        println!("{} problem(s):", problems.len());
        for p in &problems {
            println!("  - {p}");
        }
        Ok(ExitCode::FAILURE)
    }
}
