//! Bytes to fields. [`Decoder::read`] reads only what a mapping names ([`super::project`]); the
//! generic [`Decoder::decode`] builds the whole document (a `serde_json::Value`, for JSON and for
//! Avro alike), for the JSON contract check, for UUIDs on a named path, and as the oracle the
//! projections are tested against.

use super::avro_project::Plan;
use super::project::{Fields, Projection};
use super::Rejection;
use crate::deadletter::ErrorClass;
use crate::observe::health::Health;
use crate::topology::Format;
use dashmap::DashMap;
use schema_registry_converter::async_impl::avro::AvroDecoder;
use schema_registry_converter::avro_common::AvroSchema;
use std::sync::Arc;

/// A record read by projection: the fields its mapping names, for Avro the writer schema, and
/// the whole document only when it was asked for.
pub struct Read {
    pub fields: Fields,
    pub writer: Option<Arc<AvroSchema>>,
    pub doc: Option<serde_json::Value>,
}

/// Writer schemas and their compiled plans by (projection, writer schema id); no plan: the
/// generic decoder serves that schema. A schema id's schema never changes, so neither does its
/// plan: after the first record, a record costs one map lookup before its bytes are read.
type Plans = DashMap<(u64, u32), (Arc<AvroSchema>, Option<Arc<Plan>>)>;

/// A decoded record: the document, and for Avro the writer schema it was written with.
pub struct Decoded {
    pub doc: serde_json::Value,
    pub writer: Option<Arc<AvroSchema>>,
}

pub enum Decoder {
    Json,
    Avro {
        decoder: Arc<AvroDecoder>,
        health: Arc<Health>,
        /// Asks the registry itself what a failed schema lookup means (None: the decoder's
        /// own retriable flag decides).
        lookup: Option<Arc<crate::registry::Lookup>>,
        plans: Arc<Plans>,
    },
}

impl Decoder {
    pub fn new(
        format: Format,
        registry: Option<(Arc<AvroDecoder>, Arc<Health>)>,
    ) -> Result<Self, String> {
        match (format, registry) {
            (Format::Json, _) => Ok(Decoder::Json),
            (Format::Avro, Some((decoder, health))) => Ok(Decoder::Avro {
                decoder,
                health,
                lookup: None,
                plans: Arc::default(),
            }),
            (Format::Avro, None) => Err("an avro source needs [registry] in the config".into()),
        }
    }

    /// Failed schema lookups are classified by asking the registry through `lookup`.
    pub fn with_lookup(self, lookup: Option<Arc<crate::registry::Lookup>>) -> Self {
        match self {
            Decoder::Avro {
                decoder,
                health,
                plans,
                ..
            } => Decoder::Avro {
                decoder,
                health,
                lookup,
                plans,
            },
            json => json,
        }
    }

    /// The whole document (the generic path).
    pub async fn decode(&self, value: Option<&[u8]>) -> Result<Decoded, Rejection> {
        let bytes = present(value)?;
        match self {
            Decoder::Json => decode_json(bytes).map(|doc| Decoded { doc, writer: None }),
            Decoder::Avro {
                decoder,
                health,
                lookup,
                ..
            } => {
                let writer = writer_schema(decoder, health, lookup.as_deref(), bytes).await?;
                decode_avro(decoder, writer, bytes).await
            }
        }
    }

    /// The fields `projection` names, read from the bytes; with `whole`, the document too.
    pub async fn read(
        &self,
        value: Option<&[u8]>,
        projection: &Projection,
        whole: bool,
    ) -> Result<Read, Rejection> {
        let bytes = present(value)?;
        match self {
            Decoder::Json if whole => decode_json(bytes).map(|doc| Read {
                fields: projection.of_value(&doc),
                writer: None,
                doc: Some(doc),
            }),
            Decoder::Json => match projection.json(bytes) {
                Ok(Some(fields)) => Ok(Read {
                    fields,
                    writer: None,
                    doc: None,
                }),
                Ok(None) => Err(not_an_object()),
                Err(e) => Err(not_json(e)),
            },
            Decoder::Avro {
                decoder,
                health,
                lookup,
                plans,
            } => {
                let id = schema_id(bytes)?;
                let known = plans.get(&(projection.id, id)).map(|e| e.clone());
                let (writer, plan) = match known {
                    Some(known) => known,
                    None => {
                        let writer =
                            writer_schema(decoder, health, lookup.as_deref(), bytes).await?;
                        let plan = Plan::compile(&writer.parsed, projection).map(Arc::new);
                        plans.insert((projection.id, id), (writer.clone(), plan.clone()));
                        (writer, plan)
                    }
                };
                let Some(plan) = plan else {
                    let d = decode_avro(decoder, writer, bytes).await?;
                    return Ok(Read {
                        fields: projection.of_value(&d.doc),
                        writer: d.writer,
                        doc: whole.then_some(d.doc),
                    });
                };
                let body = &bytes[5..];
                let (fields, n) = plan.read(body).map_err(|e| {
                    Rejection::bad(
                        ErrorClass::AvroDecodeFailed,
                        format!(
                            "the Avro body does not decode with writer schema {}: {}",
                            writer.id, e.0
                        ),
                    )
                })?;
                if n < body.len() {
                    return Err(trailing(writer.id, body.len(), n));
                }
                let doc = if whole {
                    Some(decode_avro(decoder, writer.clone(), bytes).await?.doc)
                } else {
                    None
                };
                Ok(Read {
                    fields,
                    writer: Some(writer),
                    doc,
                })
            }
        }
    }

    /// A writer schema by id (cached by the decoder); None for JSON or when the registry fails.
    pub async fn schema(&self, id: u32) -> Option<Arc<AvroSchema>> {
        match self {
            Decoder::Json => None,
            Decoder::Avro { decoder, .. } => decoder.get_schema(id).await.ok(),
        }
    }
}

fn present(value: Option<&[u8]>) -> Result<&[u8], Rejection> {
    match value {
        Some(b) if !b.is_empty() => Ok(b),
        _ => Err(Rejection::bad(
            ErrorClass::EmptyPayload,
            "the record has no value",
        )),
    }
}

fn not_an_object() -> Rejection {
    Rejection::bad(
        ErrorClass::InvalidJson,
        "the value is JSON but not an object",
    )
}

fn not_json(e: serde_json::Error) -> Rejection {
    Rejection::bad(
        ErrorClass::InvalidJson,
        format!("the value is not JSON: {e}"),
    )
}

fn trailing(id: u32, body: usize, n: usize) -> Rejection {
    Rejection::bad(
        ErrorClass::AvroDecodeFailed,
        format!(
            "the Avro body has {} bytes after the datum of writer schema {id} ({n} bytes); the record is corrupt or two writes ran together",
            body - n
        ),
    )
}

pub fn decode_json(bytes: &[u8]) -> Result<serde_json::Value, Rejection> {
    match serde_json::from_slice::<serde_json::Value>(bytes) {
        Ok(v @ serde_json::Value::Object(_)) => Ok(v),
        Ok(_) => Err(not_an_object()),
        Err(e) => Err(not_json(e)),
    }
}

/// Reads the Confluent framing: magic byte 0, then a big-endian 4-byte schema id.
pub fn schema_id(bytes: &[u8]) -> Result<u32, Rejection> {
    if bytes.len() < 5 || bytes[0] != 0 {
        return Err(Rejection::bad(
            ErrorClass::BadMagicByte,
            format!(
                "not Confluent-framed Avro: expected magic byte 0 and a 4-byte schema id, found {} byte(s){}",
                bytes.len(),
                bytes.first().map(|b| format!(" starting {b:#04x}")).unwrap_or_default()
            ),
        ));
    }
    Ok(u32::from_be_bytes([bytes[1], bytes[2], bytes[3], bytes[4]]))
}

/// The record's writer schema, from the registry (cached by the decoder).
async fn writer_schema(
    decoder: &AvroDecoder,
    health: &Health,
    lookup: Option<&crate::registry::Lookup>,
    bytes: &[u8],
) -> Result<Arc<AvroSchema>, Rejection> {
    let id = schema_id(bytes)?;
    // The schema first, so that "registry down" and "no such schema" are told apart from a
    // corrupt body. The decoder caches schemas; this costs nothing after the first record.
    let writer = match decoder.get_schema(id).await {
        Ok(schema) => {
            health.set_registry_ok(true);
            schema
        }
        Err(e) if e.retriable => {
            health.set_registry_ok(false);
            return Err(Rejection::Transient {
                message: format!(
                    "schema registry call for schema id {id} failed: {}",
                    e.error
                ),
                status: "unavailable".into(),
            });
        }
        Err(e) => {
            // Not retriable to the decoder, which also says so of a 500, a 429, a 401 or a 403:
            // only the registry saying the id does not exist (or a schema that is not Avro)
            // makes the record bad. The decoder keeps such errors cached; they are cleared so
            // the next try asks again.
            use crate::registry::SchemaVerdict;
            let verdict = match lookup {
                Some(l) => l.classify(id).await,
                None => SchemaVerdict::Missing(e.error.clone()),
            };
            match verdict {
                SchemaVerdict::Missing(why) => {
                    health.set_registry_ok(true);
                    return Err(Rejection::bad(
                        ErrorClass::UnknownSchemaId,
                        format!("schema id {id} is not known to the registry: {why}"),
                    ));
                }
                SchemaVerdict::Unparsable(why) => {
                    health.set_registry_ok(true);
                    return Err(Rejection::bad(ErrorClass::UnknownSchemaId, why));
                }
                SchemaVerdict::Transient(status, why) => {
                    decoder.remove_errors_from_cache();
                    health.set_registry_ok(false);
                    return Err(Rejection::Transient {
                        message: format!("schema id {id}: {why} ({})", e.error),
                        status,
                    });
                }
            }
        }
    };
    Ok(writer)
}

/// The whole Avro document, by apache-avro's decoder.
async fn decode_avro(
    decoder: &AvroDecoder,
    writer: Arc<AvroSchema>,
    bytes: &[u8],
) -> Result<Decoded, Rejection> {
    let id = writer.id;
    let decoded = decoder.decode(Some(bytes)).await.map_err(|e| {
        Rejection::bad(
            ErrorClass::AvroDecodeFailed,
            format!(
                "the Avro body does not decode with writer schema {id}: {}",
                e.error
            ),
        )
    })?;
    // The decoder reads one datum and ignores what follows: a body with bytes after it is not a
    // whole record (a corrupt or concatenated write).
    let body = &bytes[5..];
    if let Ok(n) = super::avro_len::datum_len(&writer.parsed, body) {
        if n < body.len() {
            return Err(trailing(id, body.len(), n));
        }
    }
    let doc = serde_json::Value::try_from(decoded.value).map_err(|e| {
        Rejection::bad(
            ErrorClass::AvroDecodeFailed,
            format!("the Avro value has no JSON form: {e}"),
        )
    })?;
    Ok(Decoded {
        doc,
        writer: Some(writer),
    })
}
