//! Avro by projection: a plan, compiled once per (mapping, writer schema), that walks a datum by
//! the writer schema's binary layout, reads the values at the mapping's paths into their slots
//! and skips every other field without building it. The walk covers the whole datum, so it also
//! measures it: bytes after the datum are found in the same pass.
//!
//! Values read here are what the generic decoder (apache-avro `Value`, then its JSON form) would
//! give at the same path: ints and longs and the time types as numbers, floats through
//! `Number::from_f64`, enums as their symbol, bytes, fixed, records, arrays and maps as
//! [`Scalar::Other`]. A path that meets a type whose JSON form needs more than the bytes (a UUID,
//! rendered hyphenated) makes the schema unplannable, and the generic path serves it.

use super::avro_len::{blocks, names, skip, Cursor, Names, MAX_DEPTH};
use super::project::{Fields, Node, Projection, Scalar};
use apache_avro::schema::Schema;
use serde_json::Number;

enum Read {
    /// Not named: skipped by layout.
    Skip(Schema),
    /// A scalar at a named path.
    Leaf(usize, Schema),
    /// A named path holding a value with no scalar form: marked, skipped.
    Other(usize, Schema),
    /// A record on the way to named paths: one step per writer field, in order.
    Record(Option<usize>, Vec<Read>),
    Union(Vec<Read>),
    /// A map on the way to named paths: entries whose key is named are read, the slots under
    /// them first cleared (the last of duplicate keys wins).
    Map {
        slot: Option<usize>,
        values: Schema,
        named: Vec<(String, Read, Vec<usize>)>,
    },
}

/// The compiled reader of one writer schema for one projection.
pub struct Plan {
    read: Read,
    names: Names,
    slots: usize,
}

/// Why a datum did not read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unreadable(pub String);

impl Plan {
    /// None: a named path meets a type only the generic decoder renders.
    pub fn compile(schema: &Schema, projection: &Projection) -> Option<Plan> {
        let mut named = Names::new();
        names(schema, &mut named);
        let read = compile(schema, &projection.root, &named, 0)?;
        Some(Plan {
            read,
            names: named,
            slots: projection.len(),
        })
    }

    /// Reads `body` (the datum, without framing). Ok: the fields and the datum's length.
    pub fn read(&self, body: &[u8]) -> Result<(Fields, usize), Unreadable> {
        let mut fields: Fields = vec![None; self.slots];
        let mut c = Cursor { bytes: body, at: 0 };
        self.walk(&self.read, &mut c, &mut fields, 0)
            .map_err(Unreadable)?;
        Ok((fields, c.at))
    }

    fn walk(
        &self,
        read: &Read,
        c: &mut Cursor<'_>,
        out: &mut Fields,
        depth: usize,
    ) -> Result<(), String> {
        if depth > MAX_DEPTH {
            return Err(format!("nesting deeper than {MAX_DEPTH} levels"));
        }
        match read {
            Read::Skip(s) => skip(s, &self.names, c, depth),
            Read::Other(slot, s) => {
                out[*slot] = Some(Scalar::Other);
                skip(s, &self.names, c, depth)
            }
            Read::Leaf(slot, s) => {
                out[*slot] = leaf(s, c)?;
                Ok(())
            }
            Read::Record(slot, fields) => {
                if let Some(slot) = slot {
                    out[*slot] = Some(Scalar::Other);
                }
                for f in fields {
                    self.walk(f, c, out, depth + 1)?;
                }
                Ok(())
            }
            Read::Union(branches) => {
                let i = c.long()?;
                let b = usize::try_from(i)
                    .ok()
                    .and_then(|i| branches.get(i))
                    .ok_or_else(|| format!("union branch {i} does not exist"))?;
                self.walk(b, c, out, depth + 1)
            }
            Read::Map {
                slot,
                values,
                named,
            } => {
                if let Some(slot) = slot {
                    out[*slot] = Some(Scalar::Other);
                }
                blocks(c, |c| {
                    let n = c.length()?;
                    let start = c.at;
                    c.skip(n)?;
                    let key = &c.bytes[start..start + n];
                    match named.iter().find(|(k, _, _)| k.as_bytes() == key) {
                        Some((_, read, slots)) => {
                            for s in slots {
                                out[*s] = None;
                            }
                            self.walk(read, c, out, depth + 1)
                        }
                        None => skip(values, &self.names, c, depth + 1),
                    }
                })
            }
        }
    }
}

fn compile(schema: &Schema, node: &Node, named: &Names, depth: usize) -> Option<Read> {
    if depth > MAX_DEPTH {
        return None;
    }
    if let Schema::Ref { name } = schema {
        return compile(named.get(name)?, node, named, depth + 1);
    }
    if let Schema::Union(u) = schema {
        return u
            .variants()
            .iter()
            .map(|v| compile(v, node, named, depth + 1))
            .collect::<Option<Vec<_>>>()
            .map(Read::Union);
    }
    if let Schema::Uuid(_) = schema {
        // Rendered as a hyphenated string by the generic decoder; nothing lies under it.
        return match node.slot {
            Some(_) => None,
            None => Some(Read::Skip(schema.clone())),
        };
    }
    if !node.children.is_empty() {
        match schema {
            Schema::Record(r) => {
                let fields = r
                    .fields
                    .iter()
                    .map(|f| match node.child(&f.name) {
                        Some((_, child)) => compile(&f.schema, child, named, depth + 1),
                        None => Some(Read::Skip(f.schema.clone())),
                    })
                    .collect::<Option<Vec<_>>>()?;
                return Some(Read::Record(node.slot, fields));
            }
            Schema::Map(m) => {
                let named_entries = node
                    .children
                    .iter()
                    .map(|(k, child)| {
                        let mut slots = Vec::new();
                        child.slots(&mut slots);
                        compile(&m.types, child, named, depth + 1).map(|r| (k.clone(), r, slots))
                    })
                    .collect::<Option<Vec<_>>>()?;
                return Some(Read::Map {
                    slot: node.slot,
                    values: (*m.types).clone(),
                    named: named_entries,
                });
            }
            // A path through anything else finds nothing under it.
            _ => {}
        }
    }
    let Some(slot) = node.slot else {
        return Some(Read::Skip(schema.clone()));
    };
    Some(match schema {
        Schema::Null
        | Schema::Boolean
        | Schema::Int
        | Schema::Long
        | Schema::Float
        | Schema::Double
        | Schema::String
        | Schema::Enum(_)
        | Schema::Date
        | Schema::TimeMillis
        | Schema::TimeMicros
        | Schema::TimestampMillis
        | Schema::TimestampMicros
        | Schema::TimestampNanos
        | Schema::LocalTimestampMillis
        | Schema::LocalTimestampMicros
        | Schema::LocalTimestampNanos => Read::Leaf(slot, schema.clone()),
        other => Read::Other(slot, other.clone()),
    })
}

fn leaf(schema: &Schema, c: &mut Cursor<'_>) -> Result<Option<Scalar>, String> {
    let float = |f: f64| {
        Number::from_f64(f)
            .map(|n| Some(Scalar::Num(n)))
            .ok_or_else(|| format!("the float {f} has no JSON form"))
    };
    match schema {
        Schema::Null => Ok(None),
        Schema::Boolean => {
            let b = *c
                .bytes
                .get(c.at)
                .ok_or_else(|| format!("the body ends inside a boolean at byte {}", c.at))?;
            c.at += 1;
            match b {
                0 => Ok(Some(Scalar::Bool(false))),
                1 => Ok(Some(Scalar::Bool(true))),
                b => Err(format!("{b:#04x} is not a boolean, at byte {}", c.at - 1)),
            }
        }
        Schema::Int | Schema::Date | Schema::TimeMillis => {
            let n = c.long()?;
            i32::try_from(n).map_err(|_| format!("{n} does not fit an int, at byte {}", c.at))?;
            Ok(Some(Scalar::Num(n.into())))
        }
        Schema::Float => {
            let at = c.at;
            c.skip(4)?;
            let b: [u8; 4] = c.bytes[at..at + 4].try_into().expect("4 bytes");
            float(f32::from_le_bytes(b) as f64)
        }
        Schema::Double => {
            let at = c.at;
            c.skip(8)?;
            let b: [u8; 8] = c.bytes[at..at + 8].try_into().expect("8 bytes");
            float(f64::from_le_bytes(b))
        }
        Schema::String => {
            let n = c.length()?;
            let at = c.at;
            c.skip(n)?;
            std::str::from_utf8(&c.bytes[at..at + n])
                .map(|s| Some(Scalar::Str(s.to_string())))
                .map_err(|e| format!("a string that is not UTF-8 at byte {at}: {e}"))
        }
        Schema::Enum(e) => {
            let i = c.long()?;
            usize::try_from(i)
                .ok()
                .and_then(|i| e.symbols.get(i))
                .map(|s| Some(Scalar::Str(s.clone())))
                .ok_or_else(|| format!("enum {} has no symbol {i}", e.name))
        }
        // Long and the 64-bit time types.
        _ => Ok(Some(Scalar::Num(c.long()?.into()))),
    }
}

/// Whether `schema` can be planned at all for `projection` (a UUID on a named path cannot).
pub fn plannable(schema: &Schema, projection: &Projection) -> bool {
    Plan::compile(schema, projection).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;
    use apache_avro::types::Value as AvroValue;
    use proptest::prelude::*;

    const SCHEMA: &str = r#"{
      "type": "record", "name": "Order", "namespace": "shop",
      "fields": [
        {"name": "type", "type": "string"},
        {"name": "amount", "type": "double"},
        {"name": "qty", "type": "int"},
        {"name": "at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
        {"name": "paid", "type": "boolean"},
        {"name": "coupon", "type": ["null", "string"], "default": null},
        {"name": "tags", "type": {"type": "array", "items": "string"}},
        {"name": "attrs", "type": {"type": "map", "values": "string"}},
        {"name": "region", "type": {"type": "enum", "name": "Region", "symbols": ["EU", "US"]}},
        {"name": "digest", "type": {"type": "fixed", "name": "Digest", "size": 4}},
        {"name": "ratio", "type": "float"},
        {"name": "customer", "type": {"type": "record", "name": "Customer", "fields": [
            {"name": "id", "type": "long"}, {"name": "name", "type": "string"},
            {"name": "tier", "type": ["null", "Region"], "default": null}]}},
        {"name": "next", "type": ["null", "Order"], "default": null}
      ]
    }"#;

    const PATHS: &[&str] = &[
        "type",
        "amount",
        "qty",
        "at",
        "paid",
        "coupon",
        "tags",
        "attrs.carrier",
        "region",
        "digest",
        "ratio",
        "customer.id",
        "customer.tier",
        "customer",
        "next.type",
        "next.customer.name",
        "missing.path",
        "type.under",
    ];

    fn projection() -> Projection {
        let mut p = Projection::new();
        for path in PATHS {
            p.slot(path);
        }
        p
    }

    #[allow(clippy::too_many_arguments)]
    fn order(
        ty: &str,
        amount: f64,
        qty: i32,
        coupon: Option<&str>,
        attrs: Vec<(String, String)>,
        ratio: f32,
        tier: Option<i32>,
        next: Option<AvroValue>,
    ) -> AvroValue {
        AvroValue::Record(vec![
            ("type".into(), AvroValue::String(ty.into())),
            ("amount".into(), AvroValue::Double(amount)),
            ("qty".into(), AvroValue::Int(qty)),
            ("at".into(), AvroValue::TimestampMillis(1_795_000_000_000)),
            ("paid".into(), AvroValue::Boolean(qty % 2 == 0)),
            (
                "coupon".into(),
                match coupon {
                    Some(c) => AvroValue::Union(1, Box::new(AvroValue::String(c.into()))),
                    None => AvroValue::Union(0, Box::new(AvroValue::Null)),
                },
            ),
            (
                "tags".into(),
                AvroValue::Array(vec![AvroValue::String("a".into())]),
            ),
            (
                "attrs".into(),
                AvroValue::Map(
                    attrs
                        .into_iter()
                        .map(|(k, v)| (k, AvroValue::String(v)))
                        .collect(),
                ),
            ),
            ("region".into(), AvroValue::Enum(1, "US".into())),
            ("digest".into(), AvroValue::Fixed(4, vec![1, 2, 3, 4])),
            ("ratio".into(), AvroValue::Float(ratio)),
            (
                "customer".into(),
                AvroValue::Record(vec![
                    ("id".into(), AvroValue::Long(-7)),
                    ("name".into(), AvroValue::String("Ada".into())),
                    (
                        "tier".into(),
                        match tier {
                            Some(i) => AvroValue::Union(
                                1,
                                Box::new(AvroValue::Enum(
                                    i as u32,
                                    ["EU", "US"][i as usize].into(),
                                )),
                            ),
                            None => AvroValue::Union(0, Box::new(AvroValue::Null)),
                        },
                    ),
                ]),
            ),
            (
                "next".into(),
                match next {
                    Some(n) => AvroValue::Union(1, Box::new(n)),
                    None => AvroValue::Union(0, Box::new(AvroValue::Null)),
                },
            ),
        ])
    }

    /// The generic path: apache-avro's value, its JSON form, the paths looked up.
    #[allow(deprecated)]
    fn generic(schema: &Schema, p: &Projection, body: &[u8]) -> Option<Fields> {
        let v = apache_avro::from_avro_datum(schema, &mut &body[..], None).ok()?;
        let doc = serde_json::Value::try_from(v).ok()?;
        Some(p.of_value(&doc))
    }

    #[allow(deprecated)]
    fn write(schema: &Schema, v: AvroValue) -> Vec<u8> {
        apache_avro::to_avro_datum(schema, v).unwrap()
    }

    #[test]
    fn reads_what_the_generic_decoder_reads() {
        let schema = Schema::parse_str(SCHEMA).unwrap();
        let p = projection();
        let plan = Plan::compile(&schema, &p).expect("plannable");
        let inner = order("inner", 1.0, 2, None, vec![], 0.5, None, None);
        let body = write(
            &schema,
            order(
                "order_confirmed",
                12.25,
                3,
                Some("X"),
                vec![("carrier".into(), "DHL".into()), ("z".into(), "q".into())],
                1.1,
                Some(1),
                Some(inner),
            ),
        );
        let (fields, len) = plan.read(&body).unwrap();
        assert_eq!(len, body.len());
        assert_eq!(Some(fields.clone()), generic(&schema, &p, &body));
        assert_eq!(fields[0], Some(Scalar::Str("order_confirmed".into())));
        assert_eq!(fields[7], Some(Scalar::Str("DHL".into())));
        assert_eq!(fields[8], Some(Scalar::Str("US".into())));
        assert_eq!(fields[9], Some(Scalar::Other));
        assert_eq!(fields[14], Some(Scalar::Str("inner".into())));
        assert_eq!(fields[15], Some(Scalar::Str("Ada".into())));
        assert_eq!(fields[16], None);
    }

    #[test]
    fn a_uuid_on_a_named_path_leaves_the_schema_to_the_generic_decoder() {
        let schema = Schema::parse_str(
            r#"{"type":"record","name":"R","fields":[{"name":"id","type":{"type":"string","logicalType":"uuid"}},
               {"name":"other","type":{"type":"string","logicalType":"uuid"}}]}"#,
        )
        .unwrap();
        let mut p = Projection::new();
        p.slot("other.x");
        assert!(plannable(&schema, &p), "a uuid off the paths is skipped");
        p.slot("id");
        assert!(!plannable(&schema, &p));
    }

    #[test]
    fn an_unnamed_field_is_never_read() {
        // Garbage of a valid length in a field no path names changes nothing: the generic
        // decoder rejects the invalid UTF-8, the projection skips over it.
        let schema = Schema::parse_str(SCHEMA).unwrap();
        let mut p = Projection::new();
        p.slot("type");
        p.slot("customer.id");
        let plan = Plan::compile(&schema, &p).unwrap();
        let body = write(
            &schema,
            order(
                "order_confirmed",
                1.0,
                1,
                Some("X"),
                vec![],
                0.0,
                None,
                None,
            ),
        );
        let (clean, _) = plan.read(&body).unwrap();
        let mut dirty = body.clone();
        // "coupon" is the union branch 1 string "X": replace its one byte with an invalid one.
        let at = dirty.iter().position(|b| *b == b'X').unwrap();
        dirty[at] = 0xff;
        assert!(
            generic(&schema, &p, &dirty).is_none(),
            "the generic decoder rejects it"
        );
        assert_eq!(plan.read(&dirty).unwrap(), (clean, body.len()));
    }

    #[test]
    fn truncated_and_trailing_bodies() {
        let schema = Schema::parse_str(SCHEMA).unwrap();
        let p = projection();
        let plan = Plan::compile(&schema, &p).unwrap();
        let body = write(&schema, order("t", 1.0, 1, None, vec![], 0.0, None, None));
        for cut in 0..body.len() {
            assert!(plan.read(&body[..cut]).is_err(), "cut at {cut}");
        }
        let mut longer = body.clone();
        longer.extend_from_slice(b"zz");
        assert_eq!(plan.read(&longer).unwrap().1, body.len());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1000))]

        #[test]
        fn projection_equals_the_generic_decoder(
            ty in "[a-z_]{0,10}",
            amount in any::<f64>(),
            qty in any::<i32>(),
            coupon in proptest::option::of("[A-Z]{0,4}"),
            attrs in proptest::collection::vec(("carrier|[a-c]{1,3}", "[a-z]{0,3}"), 0..4),
            ratio in any::<f32>(),
            tier in proptest::option::of(0..2i32),
            nested in any::<bool>(),
        ) {
            let schema = Schema::parse_str(SCHEMA).unwrap();
            let p = projection();
            let plan = Plan::compile(&schema, &p).unwrap();
            let attrs: Vec<(String, String)> = attrs;
            let next = nested.then(|| order("inner", 0.0, 0, None, vec![], 0.0, None, None));
            let body = write(&schema, order(&ty, amount, qty, coupon.as_deref(), attrs, ratio, tier, next));
            let projected = plan.read(&body).ok().map(|(f, _)| f);
            prop_assert_eq!(projected, generic(&schema, &p, &body));
        }

        #[test]
        fn arbitrary_bodies_never_panic_and_agree_when_both_read(body in proptest::collection::vec(any::<u8>(), 0..160)) {
            let schema = Schema::parse_str(SCHEMA).unwrap();
            let p = projection();
            let plan = Plan::compile(&schema, &p).unwrap();
            if let (Ok((fields, _)), Some(g)) = (plan.read(&body), generic(&schema, &p, &body)) {
                prop_assert_eq!(fields, g);
            }
        }
    }
}
