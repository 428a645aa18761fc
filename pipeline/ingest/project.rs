//! Decode by projection: a source mapping names a handful of fields (type, key, id, time,
//! dimensions); only those are read from a record, straight from its bytes, into numbered slots.
//! No document tree is built for the rest of the record.
//!
//! A [`Projection`] is compiled once per mapping: the named paths as a trie, each leaf a slot.
//! [`Projection::json`] reads a JSON object with serde_json's parser, ignoring (but still
//! syntax-checking) every value off the trie; the Avro reader (`avro_project`) does the same by
//! the writer schema's binary layout. [`Projection::of_value`] fills the same slots from an
//! already-built document, which is the generic path and the oracle the projections are tested
//! against: both give the same [`Fields`] for the same record.

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::{Number, Value};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

/// A value read at a named path, as the mapping sees it.
#[derive(Debug, Clone, PartialEq)]
pub enum Scalar {
    Str(String),
    Num(Number),
    Bool(bool),
    /// Present but not a scalar (an object, an array, bytes): never a key or a type, and not a
    /// time.
    Other,
}

impl Scalar {
    fn of(v: &Value) -> Option<Scalar> {
        match v {
            Value::Null => None,
            Value::String(s) => Some(Scalar::Str(s.clone())),
            Value::Number(n) => Some(Scalar::Num(n.clone())),
            Value::Bool(b) => Some(Scalar::Bool(*b)),
            Value::Array(_) | Value::Object(_) => Some(Scalar::Other),
        }
    }

    /// The value as mapped text (a number in its JSON form); None for [`Scalar::Other`].
    pub fn text(&self) -> Option<String> {
        match self {
            Scalar::Str(s) => Some(s.clone()),
            Scalar::Num(n) => Some(n.to_string()),
            Scalar::Bool(b) => Some(b.to_string()),
            Scalar::Other => None,
        }
    }

    /// The value as it is shown in an error message (JSON, cut short).
    pub fn shown(&self) -> String {
        match self {
            Scalar::Str(s) => Value::String(s.clone()).to_string(),
            Scalar::Num(n) => n.to_string(),
            Scalar::Bool(b) => b.to_string(),
            Scalar::Other => "an object or array".into(),
        }
    }
}

/// The values read for one record, by slot. Null and absent are both None.
pub type Fields = Vec<Option<Scalar>>;

#[derive(Debug, Default)]
pub(crate) struct Node {
    pub(crate) slot: Option<usize>,
    pub(crate) children: Vec<(String, Node)>,
}

impl Node {
    pub(crate) fn child(&self, name: &str) -> Option<(usize, &Node)> {
        self.children
            .iter()
            .enumerate()
            .find(|(_, (n, _))| n == name)
            .map(|(i, (_, c))| (i, c))
    }

    /// Every slot at or under this node (a value read here replaces all of them).
    pub(crate) fn slots(&self, out: &mut Vec<usize>) {
        out.extend(self.slot);
        for (_, c) in &self.children {
            c.slots(out);
        }
    }

    fn clear(&self, fields: &mut Fields) {
        if let Some(s) = self.slot {
            fields[s] = None;
        }
        for (_, c) in &self.children {
            c.clear(fields);
        }
    }
}

/// The fields one mapping reads, compiled once.
#[derive(Debug)]
pub struct Projection {
    /// Unique per projection: Avro plans are cached per (projection, writer schema).
    pub(crate) id: u64,
    pub(crate) root: Node,
    paths: Vec<Vec<String>>,
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

impl Projection {
    pub fn new() -> Self {
        Projection {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            root: Node::default(),
            paths: Vec::new(),
        }
    }

    /// The slot of a dot-separated path, added if new.
    pub fn slot(&mut self, path: &str) -> usize {
        let parts: Vec<String> = path.split('.').map(str::to_string).collect();
        if let Some(i) = self.paths.iter().position(|p| *p == parts) {
            return i;
        }
        let slot = self.paths.len();
        let mut node = &mut self.root;
        for part in &parts {
            let i = match node.children.iter().position(|(n, _)| n == part) {
                Some(i) => i,
                None => {
                    node.children.push((part.clone(), Node::default()));
                    node.children.len() - 1
                }
            };
            node = &mut node.children[i].1;
        }
        node.slot = Some(slot);
        self.paths.push(parts);
        slot
    }

    /// The dot-separated path of a slot.
    pub fn path(&self, slot: usize) -> String {
        self.paths[slot].join(".")
    }

    pub fn len(&self) -> usize {
        self.paths.len()
    }

    pub fn is_empty(&self) -> bool {
        self.paths.is_empty()
    }

    /// The slots filled from a document (the generic path).
    pub fn of_value(&self, doc: &Value) -> Fields {
        self.paths
            .iter()
            .map(|path| {
                let mut cur = doc;
                for part in path {
                    cur = cur.as_object()?.get(part)?;
                }
                Scalar::of(cur)
            })
            .collect()
    }

    /// Reads the named fields of a JSON object. Err: the bytes are not JSON (the parser's
    /// message), or Ok(None): JSON, but not an object.
    pub fn json(&self, bytes: &[u8]) -> Result<Option<Fields>, serde_json::Error> {
        let mut fields: Fields = vec![None; self.paths.len()];
        let mut de = serde_json::Deserializer::from_slice(bytes);
        let object = Seed {
            node: &self.root,
            fields: &mut fields,
            root: true,
        }
        .deserialize(&mut de)?;
        de.end()?;
        Ok(object.then_some(fields))
    }
}

impl Default for Projection {
    fn default() -> Self {
        Self::new()
    }
}

/// Reads one JSON value at `node`; returns whether it was an object.
struct Seed<'p, 'f> {
    node: &'p Node,
    fields: &'f mut Fields,
    root: bool,
}

impl<'de> DeserializeSeed<'de> for Seed<'_, '_> {
    type Value = bool;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
        // A value read at a node replaces whatever an earlier duplicate key left there: the
        // document keeps the last of duplicate keys, and so does this.
        if !self.root {
            self.node.clear(self.fields);
        }
        d.deserialize_any(self)
    }
}

impl Seed<'_, '_> {
    fn set(&mut self, s: Scalar) -> bool {
        if let Some(slot) = self.node.slot {
            self.fields[slot] = Some(s);
        }
        false
    }
}

impl<'de> Visitor<'de> for Seed<'_, '_> {
    type Value = bool;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(mut self, v: bool) -> Result<bool, E> {
        Ok(self.set(Scalar::Bool(v)))
    }
    fn visit_i64<E>(mut self, v: i64) -> Result<bool, E> {
        Ok(self.set(Scalar::Num(v.into())))
    }
    fn visit_u64<E>(mut self, v: u64) -> Result<bool, E> {
        Ok(self.set(Scalar::Num(v.into())))
    }
    fn visit_f64<E>(mut self, v: f64) -> Result<bool, E> {
        // As the document does: a float with no JSON form is null.
        Ok(match Number::from_f64(v) {
            Some(n) => self.set(Scalar::Num(n)),
            None => false,
        })
    }
    fn visit_str<E>(mut self, v: &str) -> Result<bool, E> {
        Ok(self.set(Scalar::Str(v.to_string())))
    }
    fn visit_string<E>(mut self, v: String) -> Result<bool, E> {
        Ok(self.set(Scalar::Str(v)))
    }
    fn visit_unit<E>(self) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_none<E>(self) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_seq<A: SeqAccess<'de>>(mut self, mut seq: A) -> Result<bool, A::Error> {
        self.set(Scalar::Other);
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(false)
    }
    fn visit_map<A: MapAccess<'de>>(mut self, mut map: A) -> Result<bool, A::Error> {
        if !self.root {
            self.set(Scalar::Other);
        }
        while let Some(child) = map.next_key_seed(Key(self.node))? {
            match child {
                Some(i) => {
                    map.next_value_seed(Seed {
                        node: &self.node.children[i].1,
                        fields: self.fields,
                        root: false,
                    })?;
                }
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(true)
    }
}

/// An object key, matched against a node's children without allocating.
struct Key<'p>(&'p Node);

impl<'de> DeserializeSeed<'de> for Key<'_> {
    type Value = Option<usize>;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Option<usize>, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for Key<'_> {
    type Value = Option<usize>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object key")
    }
    fn visit_str<E>(self, v: &str) -> Result<Option<usize>, E> {
        Ok(self.0.child(v).map(|(i, _)| i))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn projection() -> Projection {
        let mut p = Projection::new();
        for path in ["type", "order.id", "order", "at", "a.b.c", "n"] {
            p.slot(path);
        }
        p
    }

    fn generic(p: &Projection, bytes: &[u8]) -> Result<Option<Fields>, String> {
        match serde_json::from_slice::<Value>(bytes) {
            Ok(v @ Value::Object(_)) => Ok(Some(p.of_value(&v))),
            Ok(_) => Ok(None),
            Err(e) => Err(e.to_string()),
        }
    }

    #[test]
    fn reads_the_named_paths_as_the_document_does() {
        let p = projection();
        let docs = [
            json!({"type": "x", "order": {"id": 7, "other": [1, 2]}, "at": "2026-01-01T00:00:00Z"}),
            json!({"type": null, "order": {"id": {"deep": 1}}, "at": 1.5, "n": true}),
            json!({"type": ["a"], "order": "flat", "a": {"b": {"c": u64::MAX}}, "n": -3}),
            json!({"a": {"b": 3}, "order": {}, "zzz": {"type": "not me"}}),
        ];
        for d in docs {
            let bytes = serde_json::to_vec(&d).unwrap();
            assert_eq!(p.json(&bytes).unwrap(), generic(&p, &bytes).unwrap(), "{d}");
        }
        assert_eq!(p.json(b"[1]").unwrap(), None);
        assert!(p.json(b"{\"type\": ").is_err());
        assert!(p.json(b"{} trailing").is_err());
    }

    #[test]
    fn the_last_of_duplicate_keys_wins_as_in_the_document() {
        let p = projection();
        for text in [
            r#"{"order": {"id": 1}, "order": 5}"#,
            r#"{"order": 5, "order": {"id": 1}}"#,
            r#"{"type": "a", "type": null}"#,
            r#"{"type": "a", "type": "b", "at": {"x": 1}, "at": 3}"#,
        ] {
            assert_eq!(
                p.json(text.as_bytes()).unwrap(),
                generic(&p, text.as_bytes()).unwrap(),
                "{text}"
            );
        }
    }

    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(|n| json!(n)),
            any::<u64>().prop_map(|n| json!(n)),
            (-1e12f64..1e12).prop_map(|f| json!(f)),
            "[a-z\\\\\"é ]{0,8}".prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 32, 6, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                proptest::collection::vec(
                    (
                        prop_oneof![
                            Just("type".to_string()),
                            Just("order".to_string()),
                            Just("id".to_string()),
                            Just("at".to_string()),
                            "[a-c]{1,2}"
                        ],
                        inner
                    ),
                    0..6
                )
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(3000))]

        /// On any JSON text, the projection and the document agree: same fields, or both reject.
        #[test]
        fn projection_equals_the_document_on_any_json(v in json_value()) {
            let p = projection();
            let bytes = serde_json::to_vec(&v).unwrap();
            prop_assert_eq!(p.json(&bytes).unwrap(), generic(&p, &bytes).unwrap());
        }

        /// On arbitrary bytes: never a panic, and whenever the document reads an object, the
        /// projection reads the same fields.
        #[test]
        fn projection_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let p = projection();
            let projected = p.json(&bytes);
            if let Ok(Some(fields)) = generic(&p, &bytes) {
                prop_assert_eq!(projected.unwrap(), Some(fields));
            }
        }
    }
}
