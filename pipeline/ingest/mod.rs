//! From Kafka record to business event: [`decode`] turns bytes into a document (JSON, or
//! Confluent-framed Avro through the registry), [`map`] finds the event type, key, id, time and
//! dimensions in it, and [`event::Event`] is the one normalised event every detector sees.
//!
//! Failures come back as a [`Rejection`]: `Bad` records go to the dead-letter topic, `Transient`
//! ones (registry down) are retried in place and never dead-lettered.

pub mod decode;
pub mod event;
pub mod map;

pub use decode::{Decoded, Decoder};
pub use event::{Coordinates, Event};
pub use map::Mapper;

use crate::deadletter::ErrorClass;

/// Why a record did not become an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejection {
    /// The record itself is bad: dead-letter it.
    Bad { class: ErrorClass, message: String },
    /// Something outside the record failed (the registry): retry, keep the position.
    Transient { message: String },
}

impl Rejection {
    pub fn bad(class: ErrorClass, message: impl Into<String>) -> Self {
        Rejection::Bad {
            class,
            message: message.into(),
        }
    }
}

/// A raw input record, borrowed from whatever holds it (an rdkafka message, a test vector).
#[derive(Debug, Clone, Copy)]
pub struct RawRecord<'a> {
    pub topic: &'a str,
    pub partition: i32,
    pub offset: i64,
    pub timestamp_ms: Option<i64>,
    pub key: Option<&'a [u8]>,
    pub value: Option<&'a [u8]>,
    pub headers: &'a [(&'a str, Option<&'a [u8]>)],
}

/// Decoding, contract and mapping for one source.
pub struct SourceIngest {
    pub name: String,
    pub decoder: Decoder,
    pub mapper: Mapper,
    pub dead_letter_topic: String,
    pub contract: Option<crate::contracts::Contract>,
}
