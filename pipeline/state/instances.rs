//! How a workflow instance is stored (the `instances` column family and its changelog): a
//! version byte, then postcard, a compact binary serde format. Values written before it still
//! read: JSON objects (starting with `{`), version 1 (without dimension times) and version 2
//! (event ids kept whole, where version 3 keeps their digests).

use crate::detectors::workflow::machine::event_id_digest;
use crate::detectors::workflow::Instance;
use crate::outputs::{LineageEntry, Name};
use std::collections::{BTreeMap, BTreeSet};

/// Version 1: no dimension times (postcard has no optional trailing fields, so it has a shape
/// of its own).
const V1: u8 = 1;
/// Version 2: event ids kept whole.
const V2: u8 = 2;
/// The first byte of the current encoding: event ids kept as digests.
const V3: u8 = 3;

/// Versions 2 and JSON: the current shape, with event ids kept whole.
#[derive(serde::Deserialize)]
struct InstanceV2 {
    key: String,
    first_at: i64,
    started_at: Option<i64>,
    seen: BTreeMap<usize, i64>,
    fired: BTreeSet<usize>,
    orphan_fired: bool,
    closed: bool,
    event_ids: BTreeSet<String>,
    lineage: Vec<LineageEntry>,
    dimensions: BTreeMap<Name, String>,
    #[serde(default)]
    dimension_at: BTreeMap<Name, i64>,
}

fn digests(ids: BTreeSet<String>) -> BTreeSet<u64> {
    ids.iter().map(|id| event_id_digest(id)).collect()
}

impl From<InstanceV2> for Instance {
    fn from(v: InstanceV2) -> Instance {
        Instance {
            key: v.key,
            first_at: v.first_at,
            started_at: v.started_at,
            seen: v.seen,
            fired: v.fired,
            orphan_fired: v.orphan_fired,
            closed: v.closed,
            event_ids: digests(v.event_ids),
            lineage: v.lineage,
            dimensions: v.dimensions,
            dimension_at: v.dimension_at,
        }
    }
}

#[derive(serde::Deserialize)]
struct InstanceV1 {
    key: String,
    first_at: i64,
    started_at: Option<i64>,
    seen: BTreeMap<usize, i64>,
    fired: BTreeSet<usize>,
    orphan_fired: bool,
    closed: bool,
    event_ids: BTreeSet<String>,
    lineage: Vec<LineageEntry>,
    dimensions: BTreeMap<Name, String>,
}

impl From<InstanceV1> for Instance {
    fn from(v: InstanceV1) -> Instance {
        // Dimensions learnt before their times were kept count as known from the first event.
        let dimension_at = v.dimensions.keys().map(|&k| (k, v.first_at)).collect();
        Instance::from(InstanceV2 {
            key: v.key,
            first_at: v.first_at,
            started_at: v.started_at,
            seen: v.seen,
            fired: v.fired,
            orphan_fired: v.orphan_fired,
            closed: v.closed,
            event_ids: v.event_ids,
            lineage: v.lineage,
            dimensions: v.dimensions,
            dimension_at,
        })
    }
}

pub fn encode(inst: &Instance) -> Vec<u8> {
    // Straight into one buffer sized for the usual instance, behind the version byte: growing a
    // vector from empty and then copying it behind the version byte moved every byte twice or
    // more (memmove was the profile's top symbol).
    let mut out = Vec::with_capacity(
        64 + inst.key.len() + inst.lineage.len() * 96 + inst.event_ids.len() * 10,
    );
    out.push(V3);
    postcard::to_io(inst, out).expect("instances serialise into memory")
}

/// The instance a stored value holds; None for a value no version of Sightline wrote.
pub fn decode(v: &[u8]) -> Option<Instance> {
    match v.first()? {
        &V3 => postcard::from_bytes(&v[1..]).ok(),
        &V2 => postcard::from_bytes::<InstanceV2>(&v[1..])
            .ok()
            .map(Instance::from),
        &V1 => postcard::from_bytes::<InstanceV1>(&v[1..])
            .ok()
            .map(Instance::from),
        b'{' => serde_json::from_slice::<InstanceV2>(v)
            .ok()
            .map(Instance::from),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outputs::LineageEntry;

    fn sample() -> Instance {
        Instance {
            key: "O-1".into(),
            first_at: -5,
            started_at: Some(1_700_000_000_000),
            seen: [(0, 1_700_000_000_000), (2, 1_700_000_060_000)].into(),
            fired: [1].into(),
            orphan_fired: false,
            closed: true,
            event_ids: [event_id_digest("e1"), event_id_digest("e2")].into(),
            lineage: vec![LineageEntry {
                event_type: "order_confirmed".into(),
                topic: "shop.orders".into(),
                partition: 3,
                offset: 42,
                event_time: 1_700_000_000_000,
                trace_id: Some("t".into()),
            }],
            dimensions: [(Name::new("region"), "eu".to_string())].into(),
            dimension_at: [(Name::new("region"), 1_700_000_000_000)].into(),
        }
    }

    #[test]
    fn round_trips_and_still_reads_every_earlier_version() {
        let inst = sample();
        let bytes = encode(&inst);
        assert_eq!(bytes[0], V3);
        assert_eq!(decode(&bytes), Some(inst.clone()));
        let ids: BTreeSet<String> = ["e1".to_string(), "e2".to_string()].into();
        // Version 2 and JSON: event ids kept whole; they read as their digests.
        #[derive(serde::Serialize)]
        struct V2Shape<'a> {
            key: &'a str,
            first_at: i64,
            started_at: Option<i64>,
            seen: &'a BTreeMap<usize, i64>,
            fired: &'a BTreeSet<usize>,
            orphan_fired: bool,
            closed: bool,
            event_ids: &'a BTreeSet<String>,
            lineage: &'a [LineageEntry],
            dimensions: &'a BTreeMap<Name, String>,
            dimension_at: &'a BTreeMap<Name, i64>,
        }
        let v2_shape = V2Shape {
            key: &inst.key,
            first_at: inst.first_at,
            started_at: inst.started_at,
            seen: &inst.seen,
            fired: &inst.fired,
            orphan_fired: inst.orphan_fired,
            closed: inst.closed,
            event_ids: &ids,
            lineage: &inst.lineage,
            dimensions: &inst.dimensions,
            dimension_at: &inst.dimension_at,
        };
        let mut v2 = vec![V2];
        v2.extend(postcard::to_allocvec(&v2_shape).unwrap());
        assert_eq!(decode(&v2), Some(inst.clone()));
        let json = serde_json::to_vec(&v2_shape).unwrap();
        assert_eq!(decode(&json), Some(inst.clone()));
        // Version 1 (no dimension times): its dimensions count as known from the first event.
        // Postcard is positional: version 1 is version 2 without its last field.
        let dimension_at = postcard::to_allocvec(&inst.dimension_at).unwrap();
        let v1: Vec<u8> = std::iter::once(V1)
            .chain(v2[1..v2.len() - dimension_at.len()].iter().copied())
            .collect();
        let old = decode(&v1).expect("version 1 still reads");
        assert_eq!(old.dimension_at, [(Name::new("region"), -5)].into());
        assert_eq!(old.lineage, inst.lineage);
        assert_eq!(old.event_ids, inst.event_ids);
        assert!(bytes.len() < json.len() / 2);
        assert_eq!(decode(b""), None);
        assert_eq!(decode(b"\x07junk"), None);
    }

    #[test]
    fn event_id_digests_are_fixed() {
        // Stored state holds these: a change of hash would make every stored id unknown.
        assert_eq!(event_id_digest("e1"), event_id_digest("e1"));
        assert_ne!(event_id_digest("e1"), event_id_digest("e2"));
        assert_eq!(
            event_id_digest("order-1/placed"),
            14_858_122_368_697_630_799
        );
    }
}
