//! Output encoding. With a registry, each output topic's contract is registered under
//! `<topic>-value` at start and records are Confluent-framed Avro; without one (the demo), they
//! are JSON objects of the same shape.

use super::Output;
use crate::config::OutputsConfig;
use anyhow::Context;
use apache_avro::Schema;
use schema_registry_converter::async_impl::schema_registry::SrSettings;

pub const ALERT_SCHEMA: &str = include_str!("../../schemas/sightline/alert.avsc");
pub const DRIFT_SCHEMA: &str = include_str!("../../schemas/sightline/schema_drift.avsc");
pub const SLA_SCHEMA: &str = include_str!("../../schemas/sightline/sla_event.avsc");
pub const LAG_SCHEMA: &str = include_str!("../../schemas/sightline/lag_event.avsc");

/// A shipped output contract, parsed and its named types resolved once per process (resolving
/// walks the whole schema and builds a map; it was done for every alert and SLA event). The
/// schema lives as long as the process, as the names borrow it.
struct Contract {
    text: &'static str,
    schema: &'static Schema,
    names: apache_avro::schema::NamesRef<'static>,
}

impl Contract {
    fn parse(text: &'static str) -> Contract {
        let schema: &'static Schema = Box::leak(Box::new(
            Schema::parse_str(text).expect("shipped schemas parse (tested)"),
        ));
        let names = apache_avro::schema::ResolvedSchema::try_from(schema)
            .expect("shipped schemas' names resolve (tested)")
            .get_names()
            .clone();
        Contract {
            text,
            schema,
            names,
        }
    }
}

static ALERT: std::sync::LazyLock<Contract> =
    std::sync::LazyLock::new(|| Contract::parse(ALERT_SCHEMA));
static DRIFT: std::sync::LazyLock<Contract> =
    std::sync::LazyLock::new(|| Contract::parse(DRIFT_SCHEMA));
static SLA: std::sync::LazyLock<Contract> =
    std::sync::LazyLock::new(|| Contract::parse(SLA_SCHEMA));
static LAG: std::sync::LazyLock<Contract> =
    std::sync::LazyLock::new(|| Contract::parse(LAG_SCHEMA));

enum Encoding {
    Json,
    Avro {
        contract: &'static Contract,
        id: u32,
    },
}

struct Target {
    topic: String,
    encoding: Encoding,
}

pub struct Encoders {
    alerts: Target,
    drift: Target,
    sla: Target,
    lag: Target,
}

async fn target(
    topic: &str,
    contract: &'static Contract,
    registry: Option<&SrSettings>,
) -> anyhow::Result<Target> {
    let encoding = match registry {
        None => Encoding::Json,
        Some(settings) => {
            let id =
                crate::registry::register_avro(settings, &format!("{topic}-value"), contract.text)
                    .await
                    .with_context(|| format!("registering the output contract of `{topic}`"))?;
            Encoding::Avro { contract, id }
        }
    };
    Ok(Target {
        topic: topic.to_string(),
        encoding,
    })
}

impl Encoders {
    /// Registers the output contracts when a registry is configured; JSON without one.
    pub async fn new(
        outputs: &OutputsConfig,
        registry: Option<&SrSettings>,
    ) -> anyhow::Result<Self> {
        Ok(Encoders {
            alerts: target(&outputs.alerts, &ALERT, registry).await?,
            drift: target(&outputs.drift, &DRIFT, registry).await?,
            sla: target(&outputs.sla, &SLA, registry).await?,
            lag: target(&outputs.lag, &LAG, registry).await?,
        })
    }

    /// (topic, key, value) for an output. A re-keyed event is already bytes: borrowed, not
    /// copied (it is on the hot path of a repartitioned source).
    pub fn encode<'a>(
        &self,
        out: &'a Output,
    ) -> anyhow::Result<(String, String, std::borrow::Cow<'a, [u8]>)> {
        let (target, value) = match out {
            Output::Alert(a) => (&self.alerts, serialize(&self.alerts, a)?),
            Output::Drift(d) => (&self.drift, serialize(&self.drift, d)?),
            Output::Sla(x) => (&self.sla, serialize(&self.sla, x)?),
            Output::Lag(x) => (&self.lag, serialize(&self.lag, x)?),
            Output::Rekeyed {
                topic, key, value, ..
            } => return Ok((topic.clone(), key.clone(), value.as_slice().into())),
        };
        Ok((target.topic.clone(), out.key(), value.into()))
    }
}

fn serialize<T: serde::Serialize>(t: &Target, v: &T) -> anyhow::Result<Vec<u8>> {
    match &t.encoding {
        Encoding::Json => Ok(serde_json::to_vec(v)?),
        Encoding::Avro { contract, id } => {
            // Straight from serde against the schema (no intermediate Avro value to build,
            // resolve and walk again: that was a tenth of the pipeline's CPU).
            let mut out = Vec::with_capacity(256);
            out.push(0u8);
            out.extend_from_slice(&id.to_be_bytes());
            apache_avro::write_avro_datum_ref(contract.schema, &contract.names, v, &mut out)
                .context("output does not fit its Avro contract")?;
            Ok(out)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outputs::*;
    use std::collections::BTreeMap;

    /// The bytes through an Avro value (to_value, resolve, encode): what the direct serializer
    /// must produce.
    fn via_value<T: serde::Serialize>(t: &Target, v: &T) -> Vec<u8> {
        let Encoding::Avro { contract, id } = &t.encoding else {
            unreachable!()
        };
        let schema = contract.schema;
        let value = apache_avro::to_value(v).unwrap().resolve(schema).unwrap();
        let mut out = vec![0u8];
        out.extend_from_slice(&id.to_be_bytes());
        #[allow(deprecated)]
        out.extend(apache_avro::to_avro_datum(schema, value).unwrap());
        out
    }

    #[test]
    fn shipped_output_schemas_parse_and_fit_their_rust_types() {
        let alert = Alert {
            dedupe_id: "d".into(),
            kind: "schema_incompatible".into(),
            status: AlertStatus::Firing,
            severity: Severity::Critical,
            summary: "s".into(),
            workflow: None,
            step: Some("pay".into()),
            key: None,
            source: Some("orders".into()),
            deadline: Some(5),
            detected_at: 6,
            dimensions: BTreeMap::from([("carrier".into(), "dhl".into())]),
            attributes: BTreeMap::new(),
            lineage: vec![LineageEntry {
                event_type: "t".into(),
                topic: "x".into(),
                partition: 1,
                offset: 2,
                event_time: 3,
                trace_id: None,
            }],
            sightline_version: crate::VERSION.into(),
        };
        let schema = ALERT.schema;
        let t = Target {
            topic: "a".into(),
            encoding: Encoding::Avro {
                contract: &ALERT,
                id: 7,
            },
        };
        let bytes = serialize(&t, &alert).unwrap();
        assert_eq!(bytes, via_value(&t, &alert));
        assert_eq!(&bytes[..5], &[0, 0, 0, 0, 7]);
        #[allow(deprecated)]
        let back = apache_avro::from_avro_datum(schema, &mut &bytes[5..], None).unwrap();
        let json = serde_json::Value::try_from(back).unwrap();
        assert_eq!(json["status"], "FIRING");
        assert_eq!(json["step"], "pay");
        assert_eq!(json["lineage"][0]["offset"], 2);

        let drift = SchemaDrift {
            drift_id: "avro:t:1".into(),
            source: "s".into(),
            topic: "t".into(),
            format: crate::outputs::drift::DriftFormat::Avro,
            detected_at: 1,
            verdict: DriftVerdict::Incompatible,
            subject: None,
            version: Some(3),
            schema_id: Some(1),
            previous_schema_id: None,
            contract: None,
            diff_vs_previous: vec![crate::contracts::diff::FieldChange {
                path: "a".into(),
                change: crate::contracts::diff::ChangeKind::Added,
                before: None,
                after: Some("string".into()),
            }],
            diff_vs_contract: vec![],
            compatibility_errors: vec!["x".into()],
            violations: vec![crate::contracts::json::Violation {
                field: "f".into(),
                kind: crate::contracts::json::ViolationKind::WrongType,
            }],
            sightline_version: crate::VERSION.into(),
        };
        let t = Target {
            topic: "d".into(),
            encoding: Encoding::Avro {
                contract: &DRIFT,
                id: 8,
            },
        };
        assert_eq!(serialize(&t, &drift).unwrap(), via_value(&t, &drift));

        let lag = LagEvent {
            event_id: "g/1".into(),
            group: "g".into(),
            status: crate::outputs::lag::LagStatus::Stall,
            previous_status: Some(crate::outputs::lag::LagStatus::Ok),
            detected_at: 1,
            total_lag_offsets: 7,
            max_time_lag_ms: Some(9),
            window_samples: 10,
            partitions: vec![PartitionLag {
                topic: "t".into(),
                partition: 0,
                committed_offset: 3,
                high_watermark: 10,
                lag_offsets: 7,
                time_lag_ms: None,
                time_lag_method: crate::outputs::lag::TimeLagMethod::Unknown,
                status: crate::outputs::lag::LagStatus::Stall,
            }],
            sightline_version: crate::VERSION.into(),
        };
        let schema = LAG.schema;
        let t = Target {
            topic: "l".into(),
            encoding: Encoding::Avro {
                contract: &LAG,
                id: 9,
            },
        };
        let bytes = serialize(&t, &lag).unwrap();
        assert_eq!(bytes, via_value(&t, &lag));
        #[allow(deprecated)]
        let back = apache_avro::from_avro_datum(schema, &mut &bytes[5..], None).unwrap();
        let json = serde_json::Value::try_from(back).unwrap();
        assert_eq!(json["status"], "STALL");
        assert_eq!(json["previous_status"], "OK");
        assert_eq!(json["partitions"][0]["time_lag_method"], "UNKNOWN");

        let sla = SlaEvent {
            sla_id: "age/a/60000".into(),
            workflow: "a".into(),
            key: "shipments".into(),
            outcome: SlaOutcome::EventAge,
            started_at: Some(0),
            ended_at: Some(60_000),
            detected_at: 60_000,
            late_step: None,
            late_by_ms: None,
            steps: vec![],
            dimensions: BTreeMap::new(),
            event_age: Some(EventAgeReport {
                monitor: "a".into(),
                source: "shipments".into(),
                event_type: None,
                measure: "processing".into(),
                window_ms: 60_000,
                count: 2,
                over_threshold: 1,
                threshold_ms: 900_000,
                p50_ms: Some(1),
                p95_ms: Some(2),
                p99_ms: Some(2),
                max_ms: Some(2),
            }),
            sightline_version: crate::VERSION.into(),
        };
        let schema = SLA.schema;
        let t = Target {
            topic: "s".into(),
            encoding: Encoding::Avro {
                contract: &SLA,
                id: 10,
            },
        };
        let bytes = serialize(&t, &sla).unwrap();
        assert_eq!(bytes, via_value(&t, &sla));
        #[allow(deprecated)]
        let back = apache_avro::from_avro_datum(schema, &mut &bytes[5..], None).unwrap();
        let json = serde_json::Value::try_from(back).unwrap();
        assert_eq!(json["outcome"], "EVENT_AGE");
        assert_eq!(json["event_age"]["p95_ms"], 2);
    }
}
