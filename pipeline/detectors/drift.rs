//! Schema drift: is what arrives what we agreed?
//!
//! Avro: the first time a writer schema id is seen on a topic, it is compared with the contract
//! (schemas/) and with the writer schema seen before it. A first writer schema identical to the
//! contract is the agreement itself and says nothing; any other new schema gives exactly one
//! drift event with field-level diffs and a verdict from apache-avro's compatibility check
//! (contract as reader, or the previous writer schema when there is no contract). Incompatible
//! also fires an alert.
//!
//! JSON: each record is checked against the contract; a drift event fires when a (field, kind)
//! violation is seen on the topic for the first time, never per record.
//!
//! What is known survives restarts: each [`Knowledge`] goes to the `schemas` column family
//! (state/keys.rs encodes it), and [`DriftDetector::restore`] reads it back.

use crate::contracts::diff::{diff, FieldChange};
use crate::contracts::json::Violation;
use crate::contracts::{compatible, Contract};
use crate::outputs::drift::DriftFormat;
use crate::outputs::{Alert, AlertStatus, DriftVerdict, Output, SchemaDrift, Severity};
use apache_avro::Schema;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

/// One thing the detector knows, to be kept in state and given back to
/// [`DriftDetector::restore`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Knowledge {
    /// Writer schema `id` was seen on `topic`, first at `at_ms`.
    AvroSeen { topic: String, id: u32, at_ms: i64 },
    /// The writer schema last seen on `topic`.
    AvroLast { topic: String, id: u32 },
    /// A JSON contract violation seen on `topic`.
    JsonSeen { topic: String, violation: Violation },
}

#[derive(Debug, Default, Clone)]
struct TopicKnowledge {
    seen_ids: HashSet<u32>,
    last_id: Option<u32>,
    json_seen: BTreeSet<Violation>,
}

#[derive(Debug, Default)]
pub struct DriftDetector {
    topics: HashMap<String, TopicKnowledge>,
}

/// A writer schema seen on a record.
pub struct AvroSighting<'a> {
    pub source: &'a str,
    pub topic: &'a str,
    pub schema_id: u32,
    pub writer: &'a Schema,
    pub subject: Option<String>,
    pub version: Option<u32>,
    /// The schema that was last seen before this one, when there was one (the engine fetches it).
    pub previous: Option<&'a Schema>,
    pub contract: Option<&'a Contract>,
    pub now_ms: i64,
}

/// What one sighting produced.
#[derive(Debug, Default, PartialEq)]
pub struct DriftOutcome {
    pub outputs: Vec<Output>,
    pub remember: Vec<Knowledge>,
}

impl DriftDetector {
    /// Rebuilds the detector from what it knew.
    pub fn restore(known: &[Knowledge]) -> Self {
        let mut d = DriftDetector::default();
        for k in known {
            match k {
                Knowledge::AvroSeen { topic, id, .. } => {
                    d.topics
                        .entry(topic.clone())
                        .or_default()
                        .seen_ids
                        .insert(*id);
                }
                Knowledge::AvroLast { topic, id } => {
                    d.topics.entry(topic.clone()).or_default().last_id = Some(*id);
                }
                Knowledge::JsonSeen { topic, violation } => {
                    d.topics
                        .entry(topic.clone())
                        .or_default()
                        .json_seen
                        .insert(violation.clone());
                }
            }
        }
        d
    }

    /// Has this schema id been seen on this topic? (Cheap; the engine asks on every record.)
    pub fn knows(&self, topic: &str, schema_id: u32) -> bool {
        self.topics
            .get(topic)
            .is_some_and(|t| t.seen_ids.contains(&schema_id))
    }

    /// The schema id last seen on the topic.
    pub fn last_id(&self, topic: &str) -> Option<u32> {
        self.topics.get(topic).and_then(|t| t.last_id)
    }

    pub fn observe_avro(&mut self, s: &AvroSighting<'_>) -> DriftOutcome {
        let k = self.topics.entry(s.topic.to_string()).or_default();
        if k.seen_ids.contains(&s.schema_id) {
            return DriftOutcome::default();
        }
        let previous_id = k.last_id;
        k.seen_ids.insert(s.schema_id);
        k.last_id = Some(s.schema_id);
        let remember = vec![
            Knowledge::AvroSeen {
                topic: s.topic.to_string(),
                id: s.schema_id,
                at_ms: s.now_ms,
            },
            Knowledge::AvroLast {
                topic: s.topic.to_string(),
                id: s.schema_id,
            },
        ];
        let diff_vs_contract = s
            .contract
            .map(|c| diff(&c.schema, s.writer))
            .unwrap_or_default();
        let diff_vs_previous: Vec<FieldChange> =
            s.previous.map(|p| diff(p, s.writer)).unwrap_or_default();
        let reader = s.contract.map(|c| &c.schema).or(s.previous);
        let compatibility = match reader {
            Some(r) => compatible(s.writer, r),
            None => Ok(()),
        };
        // The agreement itself (or, with no contract, the first schema) is the baseline, not drift.
        let baseline = previous_id.is_none()
            && compatibility.is_ok()
            && (s.contract.is_none() || diff_vs_contract.is_empty());
        if baseline {
            return DriftOutcome {
                outputs: Vec::new(),
                remember,
            };
        }
        let verdict = if compatibility.is_ok() {
            DriftVerdict::Compatible
        } else {
            DriftVerdict::Incompatible
        };
        let drift_id = format!("avro:{}:{}", s.topic, s.schema_id);
        let mut outputs = vec![Output::Drift(SchemaDrift {
            drift_id: drift_id.clone(),
            source: s.source.to_string(),
            topic: s.topic.to_string(),
            format: DriftFormat::Avro,
            detected_at: s.now_ms,
            verdict,
            subject: s.subject.clone(),
            version: s.version.map(|v| v as i32),
            schema_id: Some(s.schema_id as i32),
            previous_schema_id: previous_id.map(|v| v as i32),
            contract: s.contract.map(|c| c.name.clone()),
            diff_vs_previous,
            diff_vs_contract: diff_vs_contract.clone(),
            compatibility_errors: compatibility.clone().err().unwrap_or_default(),
            violations: Vec::new(),
            sightline_version: crate::VERSION.to_string(),
        })];
        if let Err(errors) = compatibility {
            let against = s
                .contract
                .map(|c| format!("contract {}", c.name))
                .unwrap_or_else(|| {
                    format!(
                        "previous writer schema {}",
                        previous_id.map(|i| i.to_string()).unwrap_or_default()
                    )
                });
            outputs.push(Output::Alert(schema_alert(
                &drift_id,
                s.source,
                s.topic,
                s.now_ms,
                format!(
                    "{}: writer schema {} cannot be read with the {against}: {}",
                    s.topic,
                    s.schema_id,
                    errors.join("; ")
                ),
                BTreeMap::from([("schema_id".to_string(), s.schema_id.to_string())]),
            )));
        }
        DriftOutcome { outputs, remember }
    }

    /// A JSON record's violations against its contract.
    pub fn observe_json(
        &mut self,
        source: &str,
        topic: &str,
        contract: &Contract,
        violations: &[Violation],
        now_ms: i64,
    ) -> DriftOutcome {
        if violations.is_empty() {
            return DriftOutcome::default();
        }
        let k = self.topics.entry(topic.to_string()).or_default();
        let new: Vec<Violation> = violations
            .iter()
            .filter(|v| !k.json_seen.contains(*v))
            .cloned()
            .collect();
        if new.is_empty() {
            return DriftOutcome::default();
        }
        k.json_seen.extend(new.iter().cloned());
        let remember = new
            .iter()
            .map(|v| Knowledge::JsonSeen {
                topic: topic.to_string(),
                violation: v.clone(),
            })
            .collect();
        let incompatible = new.iter().any(|v| !v.kind.is_compatible());
        let verdict = if incompatible {
            DriftVerdict::Incompatible
        } else {
            DriftVerdict::Compatible
        };
        let drift_id = format!(
            "json:{topic}:{}",
            new.iter()
                .map(|v| format!("{}:{}", v.field, v.kind.as_str()))
                .collect::<Vec<_>>()
                .join(",")
        );
        let mut outputs = vec![Output::Drift(SchemaDrift {
            drift_id: drift_id.clone(),
            source: source.to_string(),
            topic: topic.to_string(),
            format: DriftFormat::Json,
            detected_at: now_ms,
            verdict,
            subject: None,
            version: None,
            schema_id: None,
            previous_schema_id: None,
            contract: Some(contract.name.clone()),
            diff_vs_previous: Vec::new(),
            diff_vs_contract: Vec::new(),
            compatibility_errors: Vec::new(),
            violations: new.clone(),
            sightline_version: crate::VERSION.to_string(),
        })];
        if incompatible {
            let what = new
                .iter()
                .filter(|v| !v.kind.is_compatible())
                .map(|v| format!("{} {}", v.field, v.kind.as_str()))
                .collect::<Vec<_>>()
                .join(", ");
            outputs.push(Output::Alert(schema_alert(
                &drift_id,
                source,
                topic,
                now_ms,
                format!("{topic}: records break contract {}: {what}", contract.name),
                BTreeMap::new(),
            )));
        }
        DriftOutcome { outputs, remember }
    }
}

fn schema_alert(
    drift_id: &str,
    source: &str,
    topic: &str,
    now_ms: i64,
    summary: String,
    mut attributes: BTreeMap<String, String>,
) -> Alert {
    attributes.insert("topic".into(), topic.to_string());
    Alert {
        dedupe_id: format!("schema/{drift_id}"),
        kind: "schema_incompatible".into(),
        status: AlertStatus::Firing,
        severity: Severity::Critical,
        summary,
        workflow: None,
        step: None,
        key: None,
        source: Some(source.to_string()),
        deadline: None,
        detected_at: now_ms,
        dimensions: BTreeMap::new(),
        attributes,
        lineage: Vec::new(),
        sightline_version: crate::VERSION.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contracts::json::ViolationKind;

    use crate::contracts::test_record as s;

    fn sighting<'a>(
        id: u32,
        writer: &'a Schema,
        previous: Option<&'a Schema>,
        contract: &'a Contract,
    ) -> AvroSighting<'a> {
        AvroSighting {
            source: "orders",
            topic: "t",
            schema_id: id,
            writer,
            subject: Some("t-value".into()),
            version: Some(id),
            previous,
            contract: Some(contract),
            now_ms: 1000 + id as i64,
        }
    }

    fn kinds(o: &DriftOutcome) -> Vec<(&'static str, String)> {
        o.outputs
            .iter()
            .map(|o| match o {
                Output::Drift(d) => ("drift", format!("{:?}", d.verdict)),
                Output::Alert(a) => ("alert", a.dedupe_id.clone()),
                Output::Sla(s) => ("sla", s.sla_id.clone()),
                Output::Lag(l) => ("lag", l.event_id.clone()),
                Output::Rekeyed { key, .. } => ("rekeyed", key.clone()),
            })
            .collect()
    }

    #[test]
    fn v1_is_the_agreement_v2_compatible_v3_incompatible_and_nothing_repeats() {
        let v1 = s(r#"{"name":"id","type":"string"}"#);
        let v2 = s(
            r#"{"name":"id","type":"string"},{"name":"note","type":["null","string"],"default":null}"#,
        );
        let v3 = s(r#"{"name":"id","type":"long"}"#);
        let contract = Contract {
            name: "r.avsc".into(),
            schema: v1.clone(),
        };
        let mut d = DriftDetector::default();
        let mut remembered = Vec::new();

        let o1 = d.observe_avro(&sighting(1, &v1, None, &contract));
        assert!(o1.outputs.is_empty());
        remembered.extend(o1.remember);

        let o2 = d.observe_avro(&sighting(2, &v2, Some(&v1), &contract));
        assert_eq!(kinds(&o2), vec![("drift", "Compatible".to_string())]);
        let Output::Drift(drift) = &o2.outputs[0] else {
            unreachable!()
        };
        assert_eq!(drift.previous_schema_id, Some(1));
        assert_eq!(drift.diff_vs_previous.len(), 1);
        assert_eq!(drift.diff_vs_previous[0].path, "note");
        remembered.extend(o2.remember);

        let o3 = d.observe_avro(&sighting(3, &v3, Some(&v2), &contract));
        assert_eq!(
            kinds(&o3),
            vec![
                ("drift", "Incompatible".to_string()),
                ("alert", "schema/avro:t:3".to_string())
            ]
        );
        remembered.extend(o3.remember);

        // Seen again: nothing. After a restore from what was remembered: still nothing.
        assert!(d
            .observe_avro(&sighting(2, &v2, Some(&v3), &contract))
            .outputs
            .is_empty());
        let mut restored = DriftDetector::restore(&remembered);
        assert_eq!(restored.last_id("t"), Some(3));
        for (id, w) in [(1, &v1), (2, &v2), (3, &v3)] {
            assert!(restored.knows("t", id));
            assert!(restored
                .observe_avro(&sighting(id, w, None, &contract))
                .outputs
                .is_empty());
        }
    }

    #[test]
    fn json_violations_fire_once_per_new_kind_and_survive_restore() {
        let contract = Contract {
            name: "r.avsc".into(),
            schema: s(r#"{"name":"id","type":"string"}"#),
        };
        let mut d = DriftDetector::default();
        let extra = vec![Violation {
            field: "note".into(),
            kind: ViolationKind::UnknownField,
        }];
        let o = d.observe_json("src", "t", &contract, &extra, 5);
        assert_eq!(kinds(&o), vec![("drift", "Compatible".to_string())]);
        assert!(d
            .observe_json("src", "t", &contract, &extra, 6)
            .outputs
            .is_empty());
        let wrong = vec![Violation {
            field: "id".into(),
            kind: ViolationKind::WrongType,
        }];
        let o2 = d.observe_json("src", "t", &contract, &wrong, 7);
        assert_eq!(
            kinds(&o2),
            vec![
                ("drift", "Incompatible".to_string()),
                ("alert", "schema/json:t:id:wrong_type".to_string())
            ]
        );
        let mut r = DriftDetector::restore(&[o.remember, o2.remember].concat());
        assert!(r
            .observe_json("src", "t", &contract, &[extra, wrong].concat(), 8)
            .outputs
            .is_empty());
    }
}
