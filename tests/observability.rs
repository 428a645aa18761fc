//! The deploy artifacts' queries match what Sightline exports: every metric the Prometheus rules
//! (deploy/prometheus/rules.yml) and the Grafana dashboard (deploy/grafana/sightline.json) use
//! is in the metrics catalogue, and is exported with samples by a running Sightline (the demo,
//! in-process: it exercises every detector, a replay and a reload). promtool checks the rules'
//! syntax and alerts in deploy/local/test.

use sightline::demo::{self, DemoOptions};
use std::collections::BTreeSet;

fn root() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Sightline metric families named in PromQL expressions (histogram series map to their family).
fn families(exprs: &[String], catalogue: &[&str]) -> BTreeSet<String> {
    let re = regex::Regex::new(r"sightline_[a-z0-9_]+").unwrap();
    let mut out = BTreeSet::new();
    for e in exprs {
        for m in re.find_iter(e) {
            let name = m.as_str();
            let family = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| name.strip_suffix(s).filter(|f| catalogue.contains(f)))
                .unwrap_or(name);
            out.insert(family.to_string());
        }
    }
    out
}

fn rule_exprs() -> Vec<String> {
    let text = std::fs::read_to_string(root().join("deploy/prometheus/rules.yml")).unwrap();
    let v: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
    let mut out = Vec::new();
    for g in v["groups"].as_sequence().unwrap() {
        for r in g["rules"].as_sequence().unwrap() {
            out.push(r["expr"].as_str().unwrap().to_string());
        }
    }
    out
}

fn dashboard_exprs() -> Vec<String> {
    let text = std::fs::read_to_string(root().join("deploy/grafana/sightline.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let mut out = Vec::new();
    for p in v["panels"].as_array().unwrap() {
        for t in p["targets"].as_array().unwrap() {
            out.push(t["expr"].as_str().unwrap().to_string());
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_metric_the_rules_and_dashboard_use_is_exported_by_a_running_sightline() {
    let catalogue = sightline::observe::metrics::catalogue();
    let rules = families(&rule_exprs(), &catalogue);
    let dashboard = families(&dashboard_exprs(), &catalogue);
    assert!(rules.len() >= 8, "{rules:?}");
    assert!(dashboard.len() >= 20, "{dashboard:?}");
    let used: BTreeSet<String> = rules.union(&dashboard).cloned().collect();
    let unknown: Vec<&String> = used
        .iter()
        .filter(|m| !catalogue.contains(&m.as_str()))
        .collect();
    assert!(unknown.is_empty(), "not Sightline metrics: {unknown:?}");

    let opts = DemoOptions {
        orders: 200,
        seconds: 2,
        poison_every: 100,
        http: "127.0.0.1:0".parse().unwrap(),
        seed: 3,
    };
    demo::run(opts, None).await.expect("the demo runs");
    let exported = sightline::observe::metrics::render();
    let missing: Vec<&String> = used
        .iter()
        .filter(|m| {
            !exported
                .lines()
                .any(|l| !l.starts_with('#') && l.starts_with(m.as_str()))
        })
        .collect();
    assert!(
        missing.is_empty(),
        "used by rules or dashboard but without samples after the demo: {missing:?}"
    );
    // Every panel has a title and every target a legend, so the dashboard reads without hovering.
    let text = std::fs::read_to_string(root().join("deploy/grafana/sightline.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    for p in v["panels"].as_array().unwrap() {
        assert!(!p["title"].as_str().unwrap().is_empty());
        for t in p["targets"].as_array().unwrap() {
            assert!(!t["legendFormat"].as_str().unwrap().is_empty(), "{p}");
        }
    }
}
