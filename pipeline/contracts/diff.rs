//! Field-level difference between two Avro record schemas: added, removed, type changed,
//! default changed. Nested records are walked (`order.id`); a nullable union `["null", T]` is
//! compared as such, so making a field optional shows as a type change.

use apache_avro::Schema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ChangeKind {
    Added,
    Removed,
    TypeChanged,
    DefaultChanged,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct FieldChange {
    pub path: String,
    pub change: ChangeKind,
    pub before: Option<String>,
    pub after: Option<String>,
}

/// A field's type as text: the canonical form of its schema (named types by name).
fn type_text(s: &Schema) -> String {
    match s {
        Schema::Record(r) => r.name.fullname(None),
        Schema::Enum(e) => e.name.fullname(None),
        Schema::Fixed(f) => f.name.fullname(None),
        Schema::Union(u) => format!(
            "[{}]",
            u.variants()
                .iter()
                .map(type_text)
                .collect::<Vec<_>>()
                .join(",")
        ),
        Schema::Array(a) => format!("array<{}>", type_text(&a.items)),
        Schema::Map(m) => format!("map<{}>", type_text(&m.types)),
        other => other.canonical_form().trim_matches('"').to_string(),
    }
}

fn fields(s: &Schema) -> BTreeMap<&str, (&Schema, Option<&serde_json::Value>)> {
    match s {
        Schema::Record(r) => r
            .fields
            .iter()
            .map(|f| (f.name.as_str(), (&f.schema, f.default.as_ref())))
            .collect(),
        _ => BTreeMap::new(),
    }
}

/// Changes from `before` to `after`, sorted by path.
pub fn diff(before: &Schema, after: &Schema) -> Vec<FieldChange> {
    let mut out = Vec::new();
    walk(before, after, "", &mut out);
    out.sort();
    out
}

fn walk(before: &Schema, after: &Schema, prefix: &str, out: &mut Vec<FieldChange>) {
    let (b, a) = (fields(before), fields(after));
    let path = |name: &str| {
        if prefix.is_empty() {
            name.to_string()
        } else {
            format!("{prefix}.{name}")
        }
    };
    for (name, (bs, bd)) in &b {
        match a.get(name) {
            None => out.push(FieldChange {
                path: path(name),
                change: ChangeKind::Removed,
                before: Some(type_text(bs)),
                after: None,
            }),
            Some((as_, ad)) => {
                if let (Schema::Record(_), Schema::Record(_)) = (bs, as_) {
                    walk(bs, as_, &path(name), out);
                } else if type_text(bs) != type_text(as_) {
                    out.push(FieldChange {
                        path: path(name),
                        change: ChangeKind::TypeChanged,
                        before: Some(type_text(bs)),
                        after: Some(type_text(as_)),
                    });
                }
                if bd != ad {
                    out.push(FieldChange {
                        path: path(name),
                        change: ChangeKind::DefaultChanged,
                        before: bd.map(|v| v.to_string()),
                        after: ad.map(|v| v.to_string()),
                    });
                }
            }
        }
    }
    for (name, (as_, _)) in &a {
        if !b.contains_key(name) {
            out.push(FieldChange {
                path: path(name),
                change: ChangeKind::Added,
                before: None,
                after: Some(type_text(as_)),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::contracts::test_record as s;

    #[test]
    fn reports_each_kind_of_change_with_paths() {
        let v1 = s(
            r#"{"name":"id","type":"string"},{"name":"qty","type":"int","default":1},
            {"name":"gone","type":"string"},
            {"name":"order","type":{"type":"record","name":"O","fields":[{"name":"region","type":"string"}]}}"#,
        );
        let v2 = s(
            r#"{"name":"id","type":"long"},{"name":"qty","type":"int","default":2},
            {"name":"note","type":["null","string"],"default":null},
            {"name":"order","type":{"type":"record","name":"O","fields":[{"name":"region","type":["null","string"]}]}}"#,
        );
        let d = diff(&v1, &v2);
        let got: Vec<(&str, ChangeKind, Option<&str>, Option<&str>)> = d
            .iter()
            .map(|c| {
                (
                    c.path.as_str(),
                    c.change,
                    c.before.as_deref(),
                    c.after.as_deref(),
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                ("gone", ChangeKind::Removed, Some("string"), None),
                ("id", ChangeKind::TypeChanged, Some("string"), Some("long")),
                ("note", ChangeKind::Added, None, Some("[null,string]")),
                (
                    "order.region",
                    ChangeKind::TypeChanged,
                    Some("string"),
                    Some("[null,string]")
                ),
                ("qty", ChangeKind::DefaultChanged, Some("1"), Some("2")),
            ]
        );
        assert!(diff(&v1, &v1).is_empty());
    }
}
