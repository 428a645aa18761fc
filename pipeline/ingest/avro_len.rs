//! How many bytes an Avro datum takes, read by the writer schema's binary layout without
//! building any value. The decoder (schema_registry_converter) reads a datum and ignores what
//! follows it, so a body with trailing garbage once decoded as if it were whole; comparing this
//! length with the body's tells a corrupt record from a good one.

use apache_avro::schema::{InnerDecimalSchema, Name, Schema, UuidSchema};
use std::collections::HashMap;

/// Nesting deeper than this (a recursive schema over hostile data) is an error, not a stack
/// overflow.
pub(crate) const MAX_DEPTH: usize = 1_000;

/// Named types by name, for a schema's references.
pub(crate) type Names = HashMap<Name, Schema>;

/// The named types of `schema`, for its references.
pub(crate) fn names(schema: &Schema, out: &mut Names) {
    match schema {
        Schema::Record(r) if out.insert(r.name.clone(), schema.clone()).is_none() => {
            for f in &r.fields {
                names(&f.schema, out);
            }
        }
        Schema::Enum(e) => {
            out.insert(e.name.clone(), schema.clone());
        }
        Schema::Fixed(f) | Schema::Duration(f) => {
            out.insert(f.name.clone(), schema.clone());
        }
        Schema::Decimal(d) => {
            if let InnerDecimalSchema::Fixed(f) = &d.inner {
                out.insert(f.name.clone(), schema.clone());
            }
        }
        Schema::Uuid(UuidSchema::Fixed(f)) => {
            out.insert(f.name.clone(), schema.clone());
        }
        Schema::Array(a) => names(&a.items, out),
        Schema::Map(m) => names(&m.types, out),
        Schema::Union(u) => {
            for v in u.variants() {
                names(v, out);
            }
        }
        _ => {}
    }
}

pub(crate) struct Cursor<'a> {
    pub(crate) bytes: &'a [u8],
    pub(crate) at: usize,
}

impl Cursor<'_> {
    pub(crate) fn skip(&mut self, n: usize) -> Result<(), String> {
        if self.bytes.len() - self.at < n {
            return Err(format!("the body ends {n} bytes short at byte {}", self.at));
        }
        self.at += n;
        Ok(())
    }

    /// A zig-zag varint (int or long).
    pub(crate) fn long(&mut self) -> Result<i64, String> {
        let mut v: u64 = 0;
        for i in 0..10 {
            let b = *self
                .bytes
                .get(self.at)
                .ok_or_else(|| format!("the body ends inside a number at byte {}", self.at))?;
            self.at += 1;
            v |= ((b & 0x7f) as u64) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(((v >> 1) as i64) ^ -((v & 1) as i64));
            }
        }
        Err(format!("a number longer than 10 bytes at byte {}", self.at))
    }

    pub(crate) fn length(&mut self) -> Result<usize, String> {
        let n = self.long()?;
        usize::try_from(n).map_err(|_| format!("a negative length {n} at byte {}", self.at))
    }
}

pub(crate) fn skip(
    schema: &Schema,
    names: &Names,
    c: &mut Cursor<'_>,
    depth: usize,
) -> Result<(), String> {
    if depth > MAX_DEPTH {
        return Err(format!("nesting deeper than {MAX_DEPTH} levels"));
    }
    match schema {
        Schema::Null => Ok(()),
        Schema::Boolean => c.skip(1),
        Schema::Int
        | Schema::Long
        | Schema::Date
        | Schema::TimeMillis
        | Schema::TimeMicros
        | Schema::TimestampMillis
        | Schema::TimestampMicros
        | Schema::TimestampNanos
        | Schema::LocalTimestampMillis
        | Schema::LocalTimestampMicros
        | Schema::LocalTimestampNanos
        | Schema::Enum(_) => c.long().map(|_| ()),
        Schema::Float => c.skip(4),
        Schema::Double => c.skip(8),
        Schema::Bytes
        | Schema::String
        | Schema::BigDecimal
        | Schema::Uuid(UuidSchema::String | UuidSchema::Bytes) => {
            let n = c.length()?;
            c.skip(n)
        }
        Schema::Decimal(d) => match &d.inner {
            InnerDecimalSchema::Bytes => {
                let n = c.length()?;
                c.skip(n)
            }
            InnerDecimalSchema::Fixed(f) => c.skip(f.size),
        },
        Schema::Fixed(f) | Schema::Duration(f) | Schema::Uuid(UuidSchema::Fixed(f)) => {
            c.skip(f.size)
        }
        Schema::Array(a) => blocks(c, |c| skip(&a.items, names, c, depth + 1)),
        Schema::Map(m) => blocks(c, |c| {
            let n = c.length()?;
            c.skip(n)?;
            skip(&m.types, names, c, depth + 1)
        }),
        Schema::Union(u) => {
            let i = c.long()?;
            let v = usize::try_from(i)
                .ok()
                .and_then(|i| u.variants().get(i))
                .ok_or_else(|| format!("union branch {i} does not exist"))?;
            skip(v, names, c, depth + 1)
        }
        Schema::Record(r) => {
            for f in &r.fields {
                skip(&f.schema, names, c, depth + 1)?;
            }
            Ok(())
        }
        Schema::Ref { name } => {
            let s = names
                .get(name)
                .ok_or_else(|| format!("unknown named type {name}"))?;
            skip(s, names, c, depth + 1)
        }
    }
}

/// Array and map blocks: a count, then that many items (a negative count is followed by the
/// block's size in bytes), until a count of 0.
pub(crate) fn blocks(
    c: &mut Cursor<'_>,
    mut item: impl FnMut(&mut Cursor<'_>) -> Result<(), String>,
) -> Result<(), String> {
    loop {
        let n = c.long()?;
        if n == 0 {
            return Ok(());
        }
        if n < 0 {
            let size = c.length()?;
            c.skip(size)?;
            continue;
        }
        for _ in 0..n {
            item(c)?;
        }
    }
}

/// The length in bytes of the datum at the start of `bytes` written with `schema`.
pub fn datum_len(schema: &Schema, bytes: &[u8]) -> Result<usize, String> {
    let mut named = HashMap::new();
    names(schema, &mut named);
    let mut c = Cursor { bytes, at: 0 };
    skip(schema, &named, &mut c, 0)?;
    Ok(c.at)
}

#[cfg(test)]
mod tests {
    use super::*;
    use apache_avro::types::Value;

    const SCHEMA: &str = r#"{
      "type": "record", "name": "Order", "namespace": "shop",
      "fields": [
        {"name": "id", "type": "string"},
        {"name": "amount", "type": "double"},
        {"name": "qty", "type": "int"},
        {"name": "at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
        {"name": "paid", "type": "boolean"},
        {"name": "coupon", "type": ["null", "string"], "default": null},
        {"name": "tags", "type": {"type": "array", "items": "string"}},
        {"name": "attrs", "type": {"type": "map", "values": "long"}},
        {"name": "region", "type": {"type": "enum", "name": "Region", "symbols": ["EU", "US"]}},
        {"name": "digest", "type": {"type": "fixed", "name": "Digest", "size": 4}},
        {"name": "again", "type": "Region"},
        {"name": "next", "type": ["null", "Order"], "default": null}
      ]
    }"#;

    #[allow(deprecated)] // to_avro_datum: the plainest way to write one Avro body
    fn body(schema: &Schema, depth: usize) -> Vec<u8> {
        fn order(depth: usize) -> Value {
            Value::Record(vec![
                ("id".into(), Value::String("O-1".into())),
                ("amount".into(), Value::Double(12.5)),
                ("qty".into(), Value::Int(-3)),
                ("at".into(), Value::TimestampMillis(1_795_000_000_000)),
                ("paid".into(), Value::Boolean(true)),
                (
                    "coupon".into(),
                    Value::Union(1, Box::new(Value::String("X".into()))),
                ),
                (
                    "tags".into(),
                    Value::Array(vec![Value::String("a".into()), Value::String("bc".into())]),
                ),
                (
                    "attrs".into(),
                    Value::Map([("k".to_string(), Value::Long(-70_000))].into()),
                ),
                ("region".into(), Value::Enum(1, "US".into())),
                ("digest".into(), Value::Fixed(4, vec![1, 2, 3, 4])),
                ("again".into(), Value::Enum(0, "EU".into())),
                (
                    "next".into(),
                    if depth == 0 {
                        Value::Union(0, Box::new(Value::Null))
                    } else {
                        Value::Union(1, Box::new(order(depth - 1)))
                    },
                ),
            ])
        }
        apache_avro::to_avro_datum(schema, order(depth)).unwrap()
    }

    #[test]
    fn the_length_is_the_datum_and_trailing_bytes_are_seen() {
        let schema = Schema::parse_str(SCHEMA).unwrap();
        for depth in [0, 1, 5] {
            let b = body(&schema, depth);
            assert_eq!(datum_len(&schema, &b), Ok(b.len()), "depth {depth}");
            let mut longer = b.clone();
            longer.extend_from_slice(b"garbage");
            assert_eq!(datum_len(&schema, &longer), Ok(b.len()));
            assert!(datum_len(&schema, &b[..b.len() - 1]).is_err());
        }
        assert!(datum_len(&Schema::Long, &[0xff; 11]).is_err());
    }
}
