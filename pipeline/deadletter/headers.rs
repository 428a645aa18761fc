//! The dead-letter record: the original key and value, untouched, plus provenance headers.
//!
//! | header | value |
//! |---|---|
//! | `sightline.original.topic` | input topic |
//! | `sightline.original.partition` | input partition (decimal) |
//! | `sightline.original.offset` | input offset (decimal) |
//! | `sightline.original.timestamp` | input record timestamp, epoch ms (decimal; absent if none) |
//! | `sightline.error.class` | an [`ErrorClass`](super::ErrorClass) name |
//! | `sightline.error.message` | what failed, in words |
//! | `sightline.version` | the Sightline version that dead-lettered it |
//! | `sightline.failed.at` | when, epoch ms (decimal) |
//!
//! The original record's own headers are kept, before these.

use super::ErrorClass;
use rdkafka::message::{Header, Headers, OwnedHeaders};

pub const ORIGINAL_TOPIC: &str = "sightline.original.topic";
pub const ORIGINAL_PARTITION: &str = "sightline.original.partition";
pub const ORIGINAL_OFFSET: &str = "sightline.original.offset";
pub const ORIGINAL_TIMESTAMP: &str = "sightline.original.timestamp";
pub const ERROR_CLASS: &str = "sightline.error.class";
pub const ERROR_MESSAGE: &str = "sightline.error.message";
pub const VERSION: &str = "sightline.version";
pub const FAILED_AT: &str = "sightline.failed.at";

/// A record on its way to a dead-letter topic.
#[derive(Debug, Clone)]
pub struct DeadLetter {
    pub dead_letter_topic: String,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub original_headers: Vec<(String, Option<Vec<u8>>)>,
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub timestamp_ms: Option<i64>,
    pub class: ErrorClass,
    pub message: String,
    pub failed_at_ms: i64,
}

impl DeadLetter {
    pub fn headers(&self) -> OwnedHeaders {
        let mut h = OwnedHeaders::new_with_capacity(self.original_headers.len() + 8);
        for (k, v) in &self.original_headers {
            h = h.insert(Header {
                key: k,
                value: v.as_deref(),
            });
        }
        let partition = self.partition.to_string();
        let offset = self.offset.to_string();
        let ts = self.timestamp_ms.map(|t| t.to_string());
        let failed = self.failed_at_ms.to_string();
        let mut add = |k: &str, v: &str| {
            h = std::mem::replace(&mut h, OwnedHeaders::new()).insert(Header {
                key: k,
                value: Some(v.as_bytes()),
            });
        };
        add(ORIGINAL_TOPIC, &self.topic);
        add(ORIGINAL_PARTITION, &partition);
        add(ORIGINAL_OFFSET, &offset);
        if let Some(ts) = &ts {
            add(ORIGINAL_TIMESTAMP, ts);
        }
        add(ERROR_CLASS, self.class.as_str());
        add(ERROR_MESSAGE, &self.message);
        add(VERSION, crate::VERSION);
        add(FAILED_AT, &failed);
        h
    }
}

/// Reads one UTF-8 header value by name (last one wins, as headers are appended).
pub fn header_str<H: Headers>(headers: &H, name: &str) -> Option<String> {
    headers
        .iter()
        .filter(|h| h.key == name)
        .last()
        .and_then(|h| h.value)
        .map(|v| String::from_utf8_lossy(v).into_owned())
}
