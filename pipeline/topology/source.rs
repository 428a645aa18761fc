//! A source: one input topic and how to read business events from it.

use serde::Deserialize;

/// The partitioner names that place a record by its key (librdkafka's names; the `_random`
/// ones only differ for records without a key). Each one's hash is in
/// `detectors::partitioning`.
pub const KEY_PARTITIONERS: &[&str] = &[
    "murmur2",
    "murmur2_random",
    "consistent",
    "consistent_random",
    "fnv1a",
    "fnv1a_random",
];

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceSpec {
    /// Unique name; used in metrics and dead-letter headers.
    pub name: String,
    /// The input topic, or a regex over topic names when it starts with `^`
    /// (e.g. `^erp\\.orders\\..*`).
    pub topic: String,
    pub format: Format,
    /// Where the event type comes from.
    pub event_type: ValueFrom,
    /// Where the correlation key comes from (a field path such as `order.id`, or `kafka_key`).
    pub key: ValueFrom,
    /// Where the event id comes from (duplicate detection); optional.
    #[serde(default)]
    pub event_id: Option<ValueFrom>,
    /// Where the event time comes from.
    pub event_time: TimeSpec,
    /// Bounded labels: label name -> field path.
    #[serde(default)]
    pub dimensions: std::collections::BTreeMap<String, String>,
    /// The contract: an Avro record schema file, relative to `schemas.dir`.
    #[serde(default)]
    pub contract: Option<String>,
    /// Dead-letter topic; default `<topic><outputs.dead_letter_suffix>`.
    #[serde(default)]
    pub dead_letter_topic: Option<String>,
    /// The topic is not partitioned by the correlation key (keyed by something else, or with
    /// another partition count): Sightline reads it, then re-keys its events by the correlation
    /// key through the internal topic `<group_id>.repartition.<name>`, which is co-partitioned
    /// with the workflow's other topics, and the workflows read them from there.
    #[serde(default)]
    pub repartition: bool,
    /// How the topic's producers map a key to a partition, when it is not `kafka.partitioner`
    /// (producers in one estate differ): murmur2_random (the Java client's), consistent_random
    /// (librdkafka's), fnv1a_random, or their non-random forms. Sightline checks a sample of
    /// the records against it (`partitioning_mismatch`).
    #[serde(default)]
    pub partitioner: Option<String>,
    /// The event types this source carries, when known (a `fixed` event type needs none).
    /// `sightline check` reports a workflow step `on` an event type no source declares, once
    /// every source of the topologies declares its types.
    #[serde(default)]
    pub event_types: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    /// JSON objects.
    Json,
    /// Confluent-framed Avro (magic byte 0, 4-byte schema id), schemas from the registry.
    Avro,
}

/// Where a value comes from. Written as a one-key map: `{ field: order.id }`,
/// `{ header: ce_type }`, `{ fixed: order_confirmed }` or `{ kafka_key: true }`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "ValueFromRepr")]
pub enum ValueFrom {
    /// A field path in the payload, dot-separated: `order.id`.
    Field(String),
    /// A Kafka header (UTF-8).
    Header(String),
    /// A constant (one event type per topic).
    Fixed(String),
    /// The Kafka record key (UTF-8).
    KafkaKey,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ValueFromRepr {
    field: Option<String>,
    header: Option<String>,
    fixed: Option<String>,
    kafka_key: Option<bool>,
}

impl TryFrom<ValueFromRepr> for ValueFrom {
    type Error = String;

    fn try_from(r: ValueFromRepr) -> Result<Self, String> {
        let mut found = Vec::new();
        if let Some(f) = r.field {
            found.push(ValueFrom::Field(f));
        }
        if let Some(h) = r.header {
            found.push(ValueFrom::Header(h));
        }
        if let Some(v) = r.fixed {
            found.push(ValueFrom::Fixed(v));
        }
        if r.kafka_key == Some(true) {
            found.push(ValueFrom::KafkaKey);
        }
        match found.len() {
            1 => Ok(found.pop().expect("one")),
            0 => Err("say where the value comes from: one of `field`, `header`, `fixed` or `kafka_key: true`".into()),
            _ => Err("give only one of `field`, `header`, `fixed` or `kafka_key`".into()),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimeSpec {
    /// A field path; when absent, the Kafka record timestamp is the event time.
    #[serde(default)]
    pub field: Option<String>,
    #[serde(default)]
    pub format: TimeFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum TimeFormat {
    /// RFC 3339 strings, or integers as epoch milliseconds.
    #[default]
    Auto,
    Rfc3339,
    EpochMillis,
    EpochSeconds,
}

/// A validation problem; `anchor` is text to locate the line by.
pub struct Invalid {
    pub anchor: String,
    pub message: String,
}

impl SourceSpec {
    pub fn validate(&self) -> Vec<Invalid> {
        let mut out = Vec::new();
        let mut bad = |message: String| {
            out.push(Invalid {
                anchor: format!("name: {}", self.name),
                message,
            })
        };
        if self.name.trim().is_empty() {
            bad("a source needs a non-empty `name`".into());
        } else if let Some(p) = super::workflow::name_problem("source", &self.name) {
            bad(p);
        }
        if self.topic.trim().is_empty() {
            bad(format!("source `{}`: `topic` is empty", self.name));
        }
        if let Some(pattern) = self.topic_pattern() {
            if let Err(e) = regex::Regex::new(pattern) {
                bad(format!(
                    "source `{}`: topic pattern `{pattern}` is not a valid regex: {e}",
                    self.name
                ));
            }
        }
        if let ValueFrom::Fixed(_) = self.key {
            bad(format!(
                "source `{}`: `key` cannot be fixed; every instance needs its own correlation key",
                self.name
            ));
        }
        if let Some(p) = &self.partitioner {
            if !KEY_PARTITIONERS.contains(&p.as_str()) {
                bad(format!(
                    "source `{}`: partitioner `{p}` is not one that places keys; use murmur2_random, murmur2, consistent_random, consistent, fnv1a_random or fnv1a",
                    self.name
                ));
            }
        }
        for (label, path) in &self.dimensions {
            if path.trim().is_empty() {
                bad(format!(
                    "source `{}`: dimension `{label}` has an empty field path",
                    self.name
                ));
            }
        }
        out
    }

    /// The regex when `topic` is a pattern (starts with `^`, as librdkafka subscriptions do).
    pub fn topic_pattern(&self) -> Option<&str> {
        self.topic.starts_with('^').then_some(self.topic.as_str())
    }

    /// The dead-letter topic of a named (non-pattern) source.
    pub fn dead_letter_topic(&self, suffix: &str) -> String {
        self.dead_letter_topic
            .clone()
            .unwrap_or_else(|| format!("{}{}", self.topic, suffix))
    }
}
