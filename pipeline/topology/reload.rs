//! What a reload (SIGHUP) may change: the source mappings only — how records are decoded and
//! mapped to events. Anything else (sources added or removed, topics, workflows, monitors)
//! changes state layout or partitioning, and needs a restart.

use super::Topology;
use serde_yaml::Value;
use std::collections::BTreeMap;

/// Keys of a source that a reload may change.
pub const MAPPING_KEYS: [&str; 8] = [
    "format",
    "event_type",
    "key",
    "event_id",
    "event_time",
    "dimensions",
    "contract",
    "event_types",
];

/// The topology without what a reload may change (and without its description).
fn fixed_part(t: &Topology) -> Value {
    let mut v: Value = serde_yaml::from_str(&t.text).unwrap_or(Value::Null);
    if let Value::Mapping(m) = &mut v {
        m.remove("description");
        if let Some(Value::Sequence(sources)) = m.get_mut("sources") {
            for s in sources {
                if let Value::Mapping(s) = s {
                    for k in MAPPING_KEYS {
                        s.remove(k);
                    }
                }
            }
        }
    }
    v
}

/// Ok when `new` differs from `old` in source mappings only; else what differs, one line per
/// file, for the operator.
pub fn mapping_change(old: &[Topology], new: &[Topology]) -> Result<(), Vec<String>> {
    let by_file = |ts: &[Topology]| -> BTreeMap<String, Value> {
        ts.iter()
            .map(|t| (t.file.display().to_string(), fixed_part(t)))
            .collect()
    };
    let (a, b) = (by_file(old), by_file(new));
    let mut problems = Vec::new();
    for f in a.keys().filter(|f| !b.contains_key(*f)) {
        problems.push(format!("{f}: removed"));
    }
    for (f, v) in &b {
        match a.get(f) {
            None => problems.push(format!("{f}: added")),
            Some(before) if before != v => problems.push(format!(
                "{f}: changes more than source mappings ({}); restart to apply",
                MAPPING_KEYS.join(", ")
            )),
            Some(_) => {}
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn topo(text: &str) -> Topology {
        Topology::parse(text, Path::new("t.yaml")).unwrap_or_else(|_| panic!("parses"))
    }

    const BASE: &str = "name: t\nsources:\n  - name: s\n    topic: a\n    format: json\n    \
        event_type: { fixed: x }\n    key: { field: id }\n    event_time: { field: at, format: rfc3339 }\n";

    #[test]
    fn a_mapping_change_reloads_and_anything_else_needs_a_restart() {
        let old = [topo(BASE)];
        let fixed = [topo(&BASE.replace("format: rfc3339", "format: auto"))];
        assert_eq!(mapping_change(&old, &fixed), Ok(()));
        let moved = [topo(&BASE.replace("topic: a", "topic: b"))];
        assert_eq!(
            mapping_change(&old, &moved),
            Err(vec![
                "t.yaml: changes more than source mappings (format, event_type, key, event_id, event_time, dimensions, contract, event_types); restart to apply".to_string()
            ])
        );
    }
}
