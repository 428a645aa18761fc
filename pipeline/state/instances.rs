//! How a workflow instance is stored (the `instances` column family and its changelog): a
//! version byte, then postcard, a compact binary serde format. Values written before it
//! (JSON objects, starting with `{`) still read.

use crate::detectors::workflow::Instance;

/// The first byte of the current encoding.
const V1: u8 = 1;

pub fn encode(inst: &Instance) -> Vec<u8> {
    // Straight into one buffer sized for the usual instance, behind the version byte: growing a
    // vector from empty and then copying it behind the version byte moved every byte twice or
    // more (memmove was the profile's top symbol).
    let mut out = Vec::with_capacity(
        64 + inst.key.len() + inst.lineage.len() * 96 + inst.event_ids.len() * 24,
    );
    out.push(V1);
    postcard::to_io(inst, out).expect("instances serialise into memory")
}

/// The instance a stored value holds; None for a value no version of Sightline wrote.
pub fn decode(v: &[u8]) -> Option<Instance> {
    match v.first()? {
        &V1 => postcard::from_bytes(&v[1..]).ok(),
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
            dimensions: [("region".to_string(), "eu".to_string())].into(),
        }
    }

    #[test]
    fn round_trips_and_still_reads_json() {
        let inst = sample();
        let bytes = encode(&inst);
        assert_eq!(bytes[0], V1);
        assert_eq!(decode(&bytes), Some(inst.clone()));
        assert!(bytes.len() < serde_json::to_vec(&inst).unwrap().len() / 2);
        assert_eq!(decode(&serde_json::to_vec(&inst).unwrap()), Some(inst));
        assert_eq!(decode(b""), None);
        assert_eq!(decode(b"\x07junk"), None);
    }
}
