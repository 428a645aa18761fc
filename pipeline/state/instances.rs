//! How a workflow instance is stored (the `instances` column family and its changelog): a
//! version byte, then postcard, a compact binary serde format. Values written before it
//! (JSON objects, starting with `{`, and version 1, without dimension times) still read.

use crate::detectors::workflow::Instance;
use crate::outputs::{LineageEntry, Name};
use std::collections::{BTreeMap, BTreeSet};

/// Version 1: no dimension times (postcard has no optional trailing fields, so it has a shape
/// of its own).
const V1: u8 = 1;
/// The first byte of the current encoding.
const V2: u8 = 2;

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
        Instance {
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
        }
    }
}

pub fn encode(inst: &Instance) -> Vec<u8> {
    // Straight into one buffer sized for the usual instance, behind the version byte: growing a
    // vector from empty and then copying it behind the version byte moved every byte twice or
    // more (memmove was the profile's top symbol).
    let mut out = Vec::with_capacity(
        64 + inst.key.len() + inst.lineage.len() * 96 + inst.event_ids.len() * 24,
    );
    out.push(V2);
    postcard::to_io(inst, out).expect("instances serialise into memory")
}

/// The instance a stored value holds; None for a value no version of Sightline wrote.
pub fn decode(v: &[u8]) -> Option<Instance> {
    match v.first()? {
        &V2 => postcard::from_bytes(&v[1..]).ok(),
        &V1 => postcard::from_bytes::<InstanceV1>(&v[1..])
            .ok()
            .map(Instance::from),
        b'{' => serde_json::from_slice(v).ok(),
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
            event_ids: ["e1".to_string(), "e2".to_string()].into(),
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
    fn round_trips_and_still_reads_json() {
        let inst = sample();
        let bytes = encode(&inst);
        assert_eq!(bytes[0], V2);
        assert_eq!(decode(&bytes), Some(inst.clone()));
        // Version 1 (no dimension times): its dimensions count as known from the first event.
        #[derive(serde::Serialize)]
        struct V1Shape<'a> {
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
        }
        let mut v1 = vec![V1];
        v1.extend(
            postcard::to_allocvec(&V1Shape {
                key: &inst.key,
                first_at: inst.first_at,
                started_at: inst.started_at,
                seen: &inst.seen,
                fired: &inst.fired,
                orphan_fired: inst.orphan_fired,
                closed: inst.closed,
                event_ids: &inst.event_ids,
                lineage: &inst.lineage,
                dimensions: &inst.dimensions,
            })
            .unwrap(),
        );
        let old = decode(&v1).expect("version 1 still reads");
        assert_eq!(old.dimension_at, [(Name::new("region"), -5)].into());
        assert_eq!(old.lineage, inst.lineage);
        assert!(bytes.len() < serde_json::to_vec(&inst).unwrap().len() / 2);
        assert_eq!(decode(&serde_json::to_vec(&inst).unwrap()), Some(inst));
        assert_eq!(decode(b""), None);
        assert_eq!(decode(b"\x07junk"), None);
    }
}
