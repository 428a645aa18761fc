//! The stable error classes of dead-lettered records. The strings are a contract (header
//! `sightline.error.class`, metric label `class`): add new ones, never rename.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ErrorClass {
    /// No value bytes (a tombstone or empty record) where an event was expected.
    EmptyPayload,
    /// A JSON source received bytes that are not a JSON object.
    InvalidJson,
    /// An Avro source received bytes without the Confluent framing (magic byte 0 + schema id).
    BadMagicByte,
    /// The schema id in the framing is not known to the registry.
    UnknownSchemaId,
    /// The Avro body does not decode with its writer schema (truncated, corrupt).
    AvroDecodeFailed,
    /// The event type could not be found.
    MissingEventType,
    /// The correlation key could not be found.
    MissingKey,
    /// The event time could not be found.
    MissingEventTime,
    /// The event time is there but cannot be parsed.
    InvalidEventTime,
    /// The event time is further from the record's own time than the engine's bounds allow
    /// (`engine.max_event_time_skew_ms`, `engine.max_event_age_ms`).
    EventTimeOutOfRange,
    /// The correlation key is longer than `engine.max_key_bytes`.
    KeyTooLong,
}

impl ErrorClass {
    pub const ALL: [ErrorClass; 11] = [
        ErrorClass::EmptyPayload,
        ErrorClass::InvalidJson,
        ErrorClass::BadMagicByte,
        ErrorClass::UnknownSchemaId,
        ErrorClass::AvroDecodeFailed,
        ErrorClass::MissingEventType,
        ErrorClass::MissingKey,
        ErrorClass::MissingEventTime,
        ErrorClass::InvalidEventTime,
        ErrorClass::EventTimeOutOfRange,
        ErrorClass::KeyTooLong,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorClass::EmptyPayload => "empty_payload",
            ErrorClass::InvalidJson => "invalid_json",
            ErrorClass::BadMagicByte => "bad_magic_byte",
            ErrorClass::UnknownSchemaId => "unknown_schema_id",
            ErrorClass::AvroDecodeFailed => "avro_decode_failed",
            ErrorClass::MissingEventType => "missing_event_type",
            ErrorClass::MissingKey => "missing_key",
            ErrorClass::MissingEventTime => "missing_event_time",
            ErrorClass::InvalidEventTime => "invalid_event_time",
            ErrorClass::EventTimeOutOfRange => "event_time_out_of_range",
            ErrorClass::KeyTooLong => "key_too_long",
        }
    }

    pub fn parse(s: &str) -> Option<ErrorClass> {
        Self::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

impl fmt::Display for ErrorClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_round_trip_through_their_names() {
        for c in ErrorClass::ALL {
            assert_eq!(ErrorClass::parse(c.as_str()), Some(c));
        }
    }
}
