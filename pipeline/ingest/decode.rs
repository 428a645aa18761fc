//! Bytes to document. Both formats end as a `serde_json::Value`, so one mapper serves both.

use super::Rejection;
use crate::deadletter::ErrorClass;
use crate::observe::health::Health;
use crate::topology::Format;
use schema_registry_converter::async_impl::avro::AvroDecoder;
use std::sync::Arc;

pub enum Decoder {
    Json,
    Avro {
        decoder: Arc<AvroDecoder>,
        health: Arc<Health>,
    },
}

impl Decoder {
    pub fn new(
        format: Format,
        registry: Option<(Arc<AvroDecoder>, Arc<Health>)>,
    ) -> Result<Self, String> {
        match (format, registry) {
            (Format::Json, _) => Ok(Decoder::Json),
            (Format::Avro, Some((decoder, health))) => Ok(Decoder::Avro { decoder, health }),
            (Format::Avro, None) => Err("an avro source needs [registry] in the config".into()),
        }
    }

    pub async fn decode(&self, value: Option<&[u8]>) -> Result<serde_json::Value, Rejection> {
        let bytes = match value {
            Some(b) if !b.is_empty() => b,
            _ => {
                return Err(Rejection::bad(
                    ErrorClass::EmptyPayload,
                    "the record has no value",
                ))
            }
        };
        match self {
            Decoder::Json => decode_json(bytes),
            Decoder::Avro { decoder, health } => decode_avro(decoder, health, bytes).await,
        }
    }
}

pub fn decode_json(bytes: &[u8]) -> Result<serde_json::Value, Rejection> {
    match serde_json::from_slice::<serde_json::Value>(bytes) {
        Ok(v @ serde_json::Value::Object(_)) => Ok(v),
        Ok(_) => Err(Rejection::bad(
            ErrorClass::InvalidJson,
            "the value is JSON but not an object",
        )),
        Err(e) => Err(Rejection::bad(
            ErrorClass::InvalidJson,
            format!("the value is not JSON: {e}"),
        )),
    }
}

/// Reads the Confluent framing: magic byte 0, then a big-endian 4-byte schema id.
pub fn schema_id(bytes: &[u8]) -> Result<u32, Rejection> {
    if bytes.len() < 5 || bytes[0] != 0 {
        return Err(Rejection::bad(
            ErrorClass::BadMagicByte,
            format!(
                "not Confluent-framed Avro: expected magic byte 0 and a 4-byte schema id, found {} byte(s) starting {:#04x}",
                bytes.len(),
                bytes[0]
            ),
        ));
    }
    Ok(u32::from_be_bytes([bytes[1], bytes[2], bytes[3], bytes[4]]))
}

async fn decode_avro(
    decoder: &AvroDecoder,
    health: &Health,
    bytes: &[u8],
) -> Result<serde_json::Value, Rejection> {
    let id = schema_id(bytes)?;
    // The schema first, so that "registry down" and "no such schema" are told apart from a
    // corrupt body. The decoder caches schemas; this costs nothing after the first record.
    match decoder.get_schema(id).await {
        Ok(_) => health.set_registry_ok(true),
        Err(e) if e.retriable => {
            health.set_registry_ok(false);
            return Err(Rejection::Transient {
                message: format!(
                    "schema registry call for schema id {id} failed: {}",
                    e.error
                ),
            });
        }
        Err(e) => {
            health.set_registry_ok(true);
            return Err(Rejection::bad(
                ErrorClass::UnknownSchemaId,
                format!("schema id {id} is not known to the registry: {}", e.error),
            ));
        }
    }
    let decoded = decoder.decode(Some(bytes)).await.map_err(|e| {
        Rejection::bad(
            ErrorClass::AvroDecodeFailed,
            format!(
                "the Avro body does not decode with writer schema {id}: {}",
                e.error
            ),
        )
    })?;
    serde_json::Value::try_from(decoded.value).map_err(|e| {
        Rejection::bad(
            ErrorClass::AvroDecodeFailed,
            format!("the Avro value has no JSON form: {e}"),
        )
    })
}
