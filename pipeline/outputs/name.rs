//! Interned names: event types, topics and dimension names, which every workflow instance
//! repeats in its lineage and dimensions. Held as one shared `&'static str` each, an instance's
//! copy of a name costs no allocation when it is decoded, cloned or dropped: those were most
//! of the allocations behind an instance (about twenty heap strings per order).
//!
//! The set is bounded by the configuration and the estate, not by the data: event types are
//! those the workflows' steps name, topics those the sources read, dimension names those the
//! source mappings declare. A name is never freed.
//!
//! A name serialises as the string it is, so stored state reads the same either way.

use std::collections::HashSet;
use std::sync::{LazyLock, RwLock};

#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Name(&'static str);

static NAMES: LazyLock<RwLock<HashSet<&'static str>>> = LazyLock::new(Default::default);

impl Name {
    /// The interned `s`.
    pub fn new(s: &str) -> Name {
        if let Some(&n) = NAMES.read().expect("names lock").get(s) {
            return Name(n);
        }
        let mut names = NAMES.write().expect("names lock");
        if let Some(&n) = names.get(s) {
            return Name(n);
        }
        let n: &'static str = Box::leak(s.to_owned().into_boxed_str());
        names.insert(n);
        Name(n)
    }

    pub fn as_str(&self) -> &'static str {
        self.0
    }
}

impl std::ops::Deref for Name {
    type Target = str;
    fn deref(&self) -> &str {
        self.0
    }
}

impl std::borrow::Borrow<str> for Name {
    fn borrow(&self) -> &str {
        self.0
    }
}

impl AsRef<str> for Name {
    fn as_ref(&self) -> &str {
        self.0
    }
}

impl std::fmt::Debug for Name {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self.0, f)
    }
}

impl std::fmt::Display for Name {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

impl From<&str> for Name {
    fn from(s: &str) -> Name {
        Name::new(s)
    }
}

impl From<String> for Name {
    fn from(s: String) -> Name {
        Name::new(&s)
    }
}

impl From<&String> for Name {
    fn from(s: &String) -> Name {
        Name::new(s)
    }
}

impl PartialEq<str> for Name {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<&str> for Name {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

impl PartialEq<String> for Name {
    fn eq(&self, other: &String) -> bool {
        self.0 == other.as_str()
    }
}

impl serde::Serialize for Name {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.0)
    }
}

impl<'de> serde::Deserialize<'de> for Name {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Name, D::Error> {
        struct Visit;
        impl serde::de::Visitor<'_> for Visit {
            type Value = Name;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a name")
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Name, E> {
                Ok(Name::new(s))
            }
        }
        d.deserialize_str(Visit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_is_interned_once_and_reads_back_as_its_string() {
        let a = Name::new("order_placed");
        let b = Name::from(String::from("order_placed"));
        assert!(std::ptr::eq(a.as_str(), b.as_str()));
        assert_eq!(a, "order_placed");
        let bytes = postcard::to_allocvec(&a).unwrap();
        assert_eq!(bytes, postcard::to_allocvec("order_placed").unwrap());
        let back: Name = postcard::from_bytes(&bytes).unwrap();
        assert!(std::ptr::eq(back.as_str(), a.as_str()));
        let json: Name = serde_json::from_str("\"order_placed\"").unwrap();
        assert_eq!(json, a);
        let mut map = std::collections::BTreeMap::new();
        map.insert(Name::new("carrier"), 1);
        assert_eq!(map.get("carrier"), Some(&1));
    }

    #[test]
    fn names_order_as_their_strings_do() {
        let mut names: Vec<Name> = ["b", "a", "c", "ab"].map(Name::new).to_vec();
        names.sort();
        let strings: Vec<&str> = names.iter().map(|n| n.as_str()).collect();
        assert_eq!(strings, vec!["a", "ab", "b", "c"]);
    }
}
