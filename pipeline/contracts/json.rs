//! A JSON document against an Avro record contract: missing required fields, wrong types and
//! unknown fields, walked into nested records. A field is required when it has no default and
//! is not nullable.

use apache_avro::Schema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ViolationKind {
    MissingRequired,
    WrongType,
    UnknownField,
}

impl ViolationKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ViolationKind::MissingRequired => "missing_required",
            ViolationKind::WrongType => "wrong_type",
            ViolationKind::UnknownField => "unknown_field",
        }
    }

    /// Can a consumer holding the contract still read such records? Unknown fields: yes.
    pub fn is_compatible(self) -> bool {
        self == ViolationKind::UnknownField
    }
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Violation {
    pub field: String,
    pub kind: ViolationKind,
}

/// The violations of `doc` against `contract`, sorted.
pub fn check(doc: &Value, contract: &Schema) -> Vec<Violation> {
    let mut out = Vec::new();
    walk(doc, contract, "", &mut out);
    out.sort();
    out
}

fn nullable(s: &Schema) -> bool {
    match s {
        Schema::Null => true,
        Schema::Union(u) => u.variants().iter().any(|v| matches!(v, Schema::Null)),
        _ => false,
    }
}

fn matches_type(v: &Value, s: &Schema) -> bool {
    match (s, v) {
        (Schema::Null, Value::Null) => true,
        (Schema::Boolean, Value::Bool(_)) => true,
        (Schema::Int | Schema::Long, Value::Number(n)) => n.is_i64() || n.is_u64(),
        (Schema::Float | Schema::Double, Value::Number(_)) => true,
        (Schema::String | Schema::Bytes | Schema::Enum(_) | Schema::Uuid(_), Value::String(_)) => {
            true
        }
        (Schema::Array(_), Value::Array(_)) => true,
        (Schema::Map(_), Value::Object(_)) => true,
        (Schema::Record(_), Value::Object(_)) => true,
        (Schema::Union(u), v) => u.variants().iter().any(|s| matches_type(v, s)),
        (
            Schema::TimestampMillis
            | Schema::TimestampMicros
            | Schema::Date
            | Schema::TimeMillis
            | Schema::TimeMicros,
            Value::Number(_),
        ) => true,
        _ => false,
    }
}

fn walk(doc: &Value, schema: &Schema, prefix: &str, out: &mut Vec<Violation>) {
    let (Schema::Record(r), Value::Object(obj)) = (schema, doc) else {
        return;
    };
    let path = |name: &str| {
        if prefix.is_empty() {
            name.to_string()
        } else {
            format!("{prefix}.{name}")
        }
    };
    for f in &r.fields {
        match obj.get(&f.name) {
            None | Some(Value::Null) if f.default.is_none() && !nullable(&f.schema) => {
                out.push(Violation {
                    field: path(&f.name),
                    kind: ViolationKind::MissingRequired,
                })
            }
            None | Some(Value::Null) => {}
            Some(v) => {
                if !matches_type(v, &f.schema) {
                    out.push(Violation {
                        field: path(&f.name),
                        kind: ViolationKind::WrongType,
                    });
                } else if let Schema::Record(_) = &f.schema {
                    walk(v, &f.schema, &path(&f.name), out);
                }
            }
        }
    }
    for k in obj.keys() {
        if !r.fields.iter().any(|f| &f.name == k) {
            out.push(Violation {
                field: path(k),
                kind: ViolationKind::UnknownField,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn finds_missing_wrong_and_unknown_fields_in_nested_records() {
        let c = Schema::parse_str(
            r#"{"type":"record","name":"R","fields":[
                {"name":"id","type":"string"},
                {"name":"note","type":["null","string"],"default":null},
                {"name":"order","type":{"type":"record","name":"O","fields":[{"name":"qty","type":"int"}]}}]}"#,
        )
        .unwrap();
        assert!(check(&json!({"id": "a", "order": {"qty": 1}}), &c).is_empty());
        let v = check(
            &json!({"order": {"qty": "one", "extra": 1}, "colour": "red"}),
            &c,
        );
        let got: Vec<(&str, ViolationKind)> =
            v.iter().map(|v| (v.field.as_str(), v.kind)).collect();
        assert_eq!(
            got,
            vec![
                ("colour", ViolationKind::UnknownField),
                ("id", ViolationKind::MissingRequired),
                ("order.extra", ViolationKind::UnknownField),
                ("order.qty", ViolationKind::WrongType),
            ]
        );
    }
}
