//! Where a dead letter came from, whoever dead-lettered it: Sightline's own headers, Kafka
//! Connect's (`errors.deadletterqueue.context.headers.enable`), Spring Kafka's
//! `DeadLetterPublishingRecoverer`, or a mapping from config for other conventions.

use std::collections::BTreeMap;

/// Header names of a convention.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Convention {
    pub name: &'static str,
    pub topic: String,
    pub partition: String,
    pub offset: String,
    pub error_class: String,
    /// How numbers are written: decimal text, or big-endian binary (Spring).
    pub binary_numbers: bool,
}

impl Convention {
    fn new(name: &'static str, t: &str, p: &str, o: &str, e: &str, binary: bool) -> Self {
        Convention {
            name,
            topic: t.into(),
            partition: p.into(),
            offset: o.into(),
            error_class: e.into(),
            binary_numbers: binary,
        }
    }

    pub fn sightline() -> Self {
        use crate::deadletter::headers as h;
        Self::new(
            "sightline",
            h::ORIGINAL_TOPIC,
            h::ORIGINAL_PARTITION,
            h::ORIGINAL_OFFSET,
            h::ERROR_CLASS,
            false,
        )
    }

    pub fn connect() -> Self {
        Self::new(
            "kafka-connect",
            "__connect.errors.topic",
            "__connect.errors.partition",
            "__connect.errors.offset",
            "__connect.errors.exception.class.name",
            false,
        )
    }

    pub fn spring() -> Self {
        Self::new(
            "spring-kafka",
            "kafka_dlt-original-topic",
            "kafka_dlt-original-partition",
            "kafka_dlt-original-offset",
            "kafka_dlt-exception-fqcn",
            true,
        )
    }

    /// Every convention understood: Sightline's, Connect's, Spring's, and the one in
    /// `replay.headers` when configured.
    pub fn all(cfg: &crate::config::Config) -> Vec<Convention> {
        let mut out = vec![Self::sightline(), Self::connect(), Self::spring()];
        let h = &cfg.replay.headers;
        if let Some(t) = h.get("topic") {
            let get = |k: &str| h.get(k).cloned().unwrap_or_default();
            out.push(Self::custom(
                t,
                &get("partition"),
                &get("offset"),
                &get("error_class"),
            ));
        }
        out
    }

    /// A convention from config (`replay.headers.*`); numbers as decimal text.
    pub fn custom(topic: &str, partition: &str, offset: &str, error_class: &str) -> Self {
        Self::new("custom", topic, partition, offset, error_class, false)
    }
}

/// The provenance of one dead letter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Provenance {
    /// The convention that recognised it.
    pub convention: &'static str,
    pub topic: String,
    pub partition: Option<i32>,
    pub offset: Option<i64>,
    pub error_class: Option<String>,
}

/// The replay count a record carries (0: never replayed).
pub const REPLAY_COUNT: &str = "sightline.replay.count";
pub const REPLAY_ID: &str = "sightline.replay.id";
pub const REPLAY_DLQ_TOPIC: &str = "sightline.replay.dlq.topic";
pub const REPLAY_DLQ_PARTITION: &str = "sightline.replay.dlq.partition";
pub const REPLAY_DLQ_OFFSET: &str = "sightline.replay.dlq.offset";

/// A consumed message's headers, owned.
pub fn owned_headers<M: rdkafka::message::Message>(m: &M) -> Vec<(String, Option<Vec<u8>>)> {
    use rdkafka::message::Headers;
    m.headers()
        .map(|h| {
            h.iter()
                .map(|h| (h.key.to_string(), h.value.map(<[u8]>::to_vec)))
                .collect()
        })
        .unwrap_or_default()
}

/// Headers as the last value per name (headers are appended, so the last one is the newest).
pub fn last_values(headers: &[(String, Option<Vec<u8>>)]) -> BTreeMap<&str, &[u8]> {
    let mut m = BTreeMap::new();
    for (k, v) in headers {
        if let Some(v) = v {
            m.insert(k.as_str(), v.as_slice());
        }
    }
    m
}

fn number(v: &[u8], binary: bool) -> Option<i64> {
    if binary {
        match v.len() {
            4 => Some(i32::from_be_bytes(v.try_into().ok()?) as i64),
            8 => Some(i64::from_be_bytes(v.try_into().ok()?)),
            _ => std::str::from_utf8(v).ok()?.trim().parse().ok(),
        }
    } else {
        std::str::from_utf8(v).ok()?.trim().parse().ok()
    }
}

/// The provenance by the first convention whose topic header is present.
pub fn detect(
    headers: &[(String, Option<Vec<u8>>)],
    conventions: &[Convention],
) -> Option<Provenance> {
    let h = last_values(headers);
    conventions.iter().find_map(|c| {
        let topic = std::str::from_utf8(h.get(c.topic.as_str())?)
            .ok()?
            .to_string();
        Some(Provenance {
            convention: c.name,
            topic,
            partition: h
                .get(c.partition.as_str())
                .and_then(|v| number(v, c.binary_numbers))
                .map(|p| p as i32),
            offset: h
                .get(c.offset.as_str())
                .and_then(|v| number(v, c.binary_numbers)),
            error_class: h
                .get(c.error_class.as_str())
                .and_then(|v| std::str::from_utf8(v).ok())
                .map(str::to_string),
        })
    })
}

/// How often this record was replayed before (its `sightline.replay.count`).
pub fn replay_count(headers: &[(String, Option<Vec<u8>>)]) -> u32 {
    last_values(headers)
        .get(REPLAY_COUNT)
        .and_then(|v| std::str::from_utf8(v).ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(pairs: &[(&str, &[u8])]) -> Vec<(String, Option<Vec<u8>>)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), Some(v.to_vec())))
            .collect()
    }

    #[test]
    fn sightline_connect_and_spring_headers_are_understood() {
        let all = [
            Convention::sightline(),
            Convention::connect(),
            Convention::spring(),
        ];
        let s = detect(
            &h(&[
                ("sightline.original.topic", b"shop.orders"),
                ("sightline.original.partition", b"3"),
                ("sightline.original.offset", b"42"),
                ("sightline.error.class", b"invalid_json"),
            ]),
            &all,
        )
        .unwrap();
        assert_eq!(
            (s.convention, s.topic.as_str(), s.partition, s.offset),
            ("sightline", "shop.orders", Some(3), Some(42))
        );
        let c = detect(
            &h(&[
                ("__connect.errors.topic", b"erp.orders"),
                ("__connect.errors.partition", b"1"),
                ("__connect.errors.offset", b"7"),
                (
                    "__connect.errors.exception.class.name",
                    b"org.apache.kafka.connect.errors.DataException",
                ),
            ]),
            &all,
        )
        .unwrap();
        assert_eq!(
            (c.convention, c.topic.as_str(), c.partition, c.offset),
            ("kafka-connect", "erp.orders", Some(1), Some(7))
        );
        let sp = detect(
            &h(&[
                ("kafka_dlt-original-topic", b"wms.picks"),
                ("kafka_dlt-original-partition", &2i32.to_be_bytes()),
                ("kafka_dlt-original-offset", &99i64.to_be_bytes()),
            ]),
            &all,
        )
        .unwrap();
        assert_eq!(
            (sp.convention, sp.topic.as_str(), sp.partition, sp.offset),
            ("spring-kafka", "wms.picks", Some(2), Some(99))
        );
        assert_eq!(detect(&h(&[("x", b"y")]), &all), None);
        assert_eq!(replay_count(&h(&[(REPLAY_COUNT, b"2")])), 2);
    }
}
