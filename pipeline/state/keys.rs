//! Every state key, built and read here and nowhere else. Each key names the input partition
//! whose state it is (the changelog partition its record goes to, [`partition_of`]):
//!
//! | column family | key | value |
//! |---|---|---|
//! | `instances` | partition · workflow · 0 · correlation key | an instance (state/instances.rs) |
//! | `timers` | partition · due (sign-flipped, big-endian) · kind · step · workflow · 0 · key | empty |
//! | `schemas` | partition · `avro/` topic `/` schema id (BE u32) | when it was first seen (BE i64 ms) |
//! | `schemas` | partition · `avro-last/` topic | the schema id last seen (BE u32) |
//! | `schemas` | partition · `json/` topic `/` field `/` violation kind | `1` |
//! | `meta` | `clock/` · partition · topic | a stream clock |
//! | `meta` | `changelog/` · partition | the next changelog offset local state includes |
//! | `meta` | `announced/` · partition · id | an announcement made (empty), or a level |
//!
//! Partitions are 4 bytes, big-endian, so a partition's keys are one contiguous range.

use super::{CF_INSTANCES, CF_META, CF_SCHEMAS, CF_TIMERS};
use crate::contracts::json::{Violation, ViolationKind};
use crate::detectors::drift::Knowledge;
use crate::detectors::workflow::TimerKind;

/// Prefix of a stream clock key in `meta`.
pub const CLOCK: &[u8] = b"clock/";
/// Prefix of a changelog checkpoint key in `meta`.
pub const CHECKPOINT: &[u8] = b"changelog/";
/// Prefix of an announcement key in `meta`.
pub const ANNOUNCED: &[u8] = b"announced/";

fn partition(p: i32) -> [u8; 4] {
    (p as u32).to_be_bytes()
}

fn partition_at(key: &[u8], at: usize) -> Option<i32> {
    key.get(at..at + 4)
        .map(|b| u32::from_be_bytes(b.try_into().expect("4 bytes")) as i32)
}

/// The input partition that owns a key (0 for keys of no partition).
pub fn partition_of(cf: &str, key: &[u8]) -> i32 {
    match cf {
        CF_INSTANCES | CF_TIMERS | CF_SCHEMAS => partition_at(key, 0),
        CF_META => [CLOCK, CHECKPOINT, ANNOUNCED]
            .into_iter()
            .find(|p| key.starts_with(p))
            .and_then(|p| partition_at(key, p.len())),
        _ => None,
    }
    .unwrap_or(0)
}

/// The partition a `meta` key with `prefix` (a clock or a checkpoint) is about.
pub fn meta_partition(prefix: &[u8], key: &[u8]) -> Option<i32> {
    key.starts_with(prefix)
        .then(|| partition_at(key, prefix.len()))
        .flatten()
}

pub fn instance(p: i32, workflow: &str, key: &str) -> Vec<u8> {
    let mut k = partition(p).to_vec();
    k.extend_from_slice(workflow.as_bytes());
    k.push(0);
    k.extend_from_slice(key.as_bytes());
    k
}

/// (partition, workflow, correlation key) of an instance key.
pub fn parse_instance(k: &[u8]) -> Option<(i32, &str, &str)> {
    let (wf, key) = workflow_and_key(k.get(4..)?)?;
    Some((partition_at(k, 0)?, wf, key))
}

/// The `workflow · 0 · key` tail of an instance or timer key.
fn workflow_and_key(rest: &[u8]) -> Option<(&str, &str)> {
    let z = rest.iter().position(|&b| b == 0)?;
    let wf = std::str::from_utf8(&rest[..z]).ok()?;
    let key = std::str::from_utf8(&rest[z + 1..]).ok()?;
    Some((wf, key))
}

/// The prefix of a partition's instance or timer keys.
pub fn partition_prefix(p: i32) -> [u8; 4] {
    partition(p)
}

/// A timer due time, ordered as bytes (the sign bit flipped).
pub fn due(due: i64) -> [u8; 8] {
    ((due as u64) ^ (1 << 63)).to_be_bytes()
}

pub fn timer(p: i32, due_ms: i64, workflow: &str, key: &str, kind: TimerKind) -> Vec<u8> {
    let mut k = partition(p).to_vec();
    k.extend_from_slice(&due(due_ms));
    let (tag, step) = match kind {
        TimerKind::Deadline(i) => (b'D', i as u32),
        TimerKind::Orphan => (b'O', 0),
        TimerKind::Expire => (b'E', 0),
    };
    k.push(tag);
    k.extend_from_slice(&step.to_be_bytes());
    k.extend_from_slice(workflow.as_bytes());
    k.push(0);
    k.extend_from_slice(key.as_bytes());
    k
}

/// (partition, due, workflow, key, kind) of a timer key.
pub fn parse_timer(k: &[u8]) -> Option<(i32, i64, String, String, TimerKind)> {
    let p = partition_at(k, 0)?;
    let due = (u64::from_be_bytes(k.get(4..12)?.try_into().ok()?) ^ (1 << 63)) as i64;
    let step = u32::from_be_bytes(k.get(13..17)?.try_into().ok()?) as usize;
    let kind = match k.get(12)? {
        b'D' => TimerKind::Deadline(step),
        b'O' => TimerKind::Orphan,
        b'E' => TimerKind::Expire,
        _ => return None,
    };
    let (wf, key) = workflow_and_key(k.get(17..)?)?;
    Some((p, due, wf.to_string(), key.to_string(), kind))
}

pub fn clock(topic: &str, p: i32) -> Vec<u8> {
    let mut k = CLOCK.to_vec();
    k.extend_from_slice(&partition(p));
    k.extend_from_slice(topic.as_bytes());
    k
}

/// (partition, topic) of a clock key.
pub fn parse_clock(k: &[u8]) -> Option<(i32, String)> {
    let p = meta_partition(CLOCK, k)?;
    let topic = String::from_utf8(k.get(CLOCK.len() + 4..)?.to_vec()).ok()?;
    Some((p, topic))
}

/// The value stored under a clock key: its projected event time and the wall time it was
/// projected at.
pub fn clock_value(base: i64, wall_at: i64) -> Vec<u8> {
    let mut v = Vec::with_capacity(16);
    v.extend_from_slice(&base.to_be_bytes());
    v.extend_from_slice(&wall_at.to_be_bytes());
    v
}

/// (base, wall_at) of a clock value.
pub fn parse_clock_value(v: &[u8]) -> Option<(i64, i64)> {
    let v = <[u8; 16]>::try_from(v).ok()?;
    let base = i64::from_be_bytes(v[..8].try_into().expect("8 bytes"));
    let wall_at = i64::from_be_bytes(v[8..].try_into().expect("8 bytes"));
    Some((base, wall_at))
}

pub fn checkpoint(p: i32) -> Vec<u8> {
    let mut k = CHECKPOINT.to_vec();
    k.extend_from_slice(&partition(p));
    k
}

/// The value of a checkpoint key: the next changelog offset local state includes.
pub fn checkpoint_value(next: i64) -> Vec<u8> {
    next.to_be_bytes().to_vec()
}

/// The offset a checkpoint value holds.
pub fn parse_checkpoint_value(v: &[u8]) -> Option<i64> {
    <[u8; 8]>::try_from(v).ok().map(i64::from_be_bytes)
}

/// The `schemas` key and value of drift knowledge learnt from input partition `p`.
pub fn knowledge(p: i32, known: &Knowledge) -> (Vec<u8>, Vec<u8>) {
    let mut k = partition(p).to_vec();
    let v = match known {
        Knowledge::AvroSeen { topic, id, at_ms } => {
            k.extend_from_slice(format!("avro/{topic}/").as_bytes());
            k.extend_from_slice(&id.to_be_bytes());
            at_ms.to_be_bytes().to_vec()
        }
        Knowledge::AvroLast { topic, id } => {
            k.extend_from_slice(format!("avro-last/{topic}").as_bytes());
            id.to_be_bytes().to_vec()
        }
        Knowledge::JsonSeen { topic, violation } => {
            k.extend_from_slice(
                format!(
                    "json/{topic}/{}/{}",
                    violation.field,
                    violation.kind.as_str()
                )
                .as_bytes(),
            );
            b"1".to_vec()
        }
    };
    (k, v)
}

/// The drift knowledge a `schemas` key and value hold (None: not one this version writes).
pub fn parse_knowledge(k: &[u8], v: &[u8]) -> Option<Knowledge> {
    let rest = k.get(4..)?;
    if let Some(rest) = rest.strip_prefix(b"avro/") {
        let (topic, id) = rest.split_at_checked(rest.len().checked_sub(4)?)?;
        let topic = std::str::from_utf8(topic.strip_suffix(b"/")?).ok()?;
        let at_ms = <[u8; 8]>::try_from(v).map_or(0, i64::from_be_bytes);
        return Some(Knowledge::AvroSeen {
            topic: topic.to_string(),
            id: u32::from_be_bytes(id.try_into().ok()?),
            at_ms,
        });
    }
    if let Some(topic) = rest.strip_prefix(b"avro-last/") {
        return Some(Knowledge::AvroLast {
            topic: std::str::from_utf8(topic).ok()?.to_string(),
            id: u32::from_be_bytes(<[u8; 4]>::try_from(v).ok()?),
        });
    }
    let text = std::str::from_utf8(rest.strip_prefix(b"json/")?).ok()?;
    let mut parts = text.rsplitn(3, '/');
    let (kind, field, topic) = (parts.next()?, parts.next()?, parts.next()?);
    let kind = [
        ViolationKind::MissingRequired,
        ViolationKind::WrongType,
        ViolationKind::UnknownField,
    ]
    .into_iter()
    .find(|k| k.as_str() == kind)?;
    Some(Knowledge::JsonSeen {
        topic: topic.to_string(),
        violation: Violation {
            field: field.to_string(),
            kind,
        },
    })
}

/// The key that records output `out` as announced by the owner of announce partition `p`:
/// an alert by its dedupe id and status, a drift event by its id.
pub fn announced_output(p: i32, out: &crate::outputs::Output) -> Vec<u8> {
    use crate::outputs::Output;
    let id = match out {
        Output::Alert(a) => format!("alert/{}/{:?}", a.dedupe_id, a.status),
        Output::Drift(d) => format!("drift/{}", d.drift_id),
        other => format!("other/{}", other.key()),
    };
    announced(p, &id)
}

/// An announcement made by the owner of announce partition `p`.
fn announced(p: i32, id: &str) -> Vec<u8> {
    let mut k = ANNOUNCED.to_vec();
    k.extend_from_slice(&partition(p));
    k.extend_from_slice(id.as_bytes());
    k
}

/// The level last announced for a side monitor's condition, kept by the owner of announce
/// partition `p`.
pub fn level(p: i32, condition: &str) -> Vec<u8> {
    announced(p, &format!("level/{condition}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_names_its_partition() {
        for p in [0, 7, 4095] {
            assert_eq!(partition_of(CF_INSTANCES, &instance(p, "o2c", "k")), p);
            let t = timer(p, -5, "o2c", "k", TimerKind::Deadline(2));
            assert_eq!(partition_of(CF_TIMERS, &t), p);
            assert_eq!(
                parse_timer(&t),
                Some((p, -5, "o2c".into(), "k".into(), TimerKind::Deadline(2)))
            );
            let last = Knowledge::AvroLast {
                topic: "t".into(),
                id: 1,
            };
            assert_eq!(partition_of(CF_SCHEMAS, &knowledge(p, &last).0), p);
            assert_eq!(partition_of(CF_META, &clock("orders", p)), p);
            assert_eq!(parse_clock(&clock("orders", p)), Some((p, "orders".into())));
            assert_eq!(partition_of(CF_META, &checkpoint(p)), p);
            assert_eq!(meta_partition(CHECKPOINT, &checkpoint(p)), Some(p));
            assert_eq!(partition_of(CF_META, &announced(p, "drift/x")), p);
            assert_eq!(partition_of(CF_META, &level(p, "lag/g")), p);
        }
        assert!(due(-1) < due(0) && due(0) < due(1));
    }

    #[test]
    fn drift_knowledge_round_trips_in_the_layout_earlier_versions_wrote() {
        let known = [
            Knowledge::AvroSeen {
                topic: "shop.orders".into(),
                id: 7,
                at_ms: 1_764_000_000_000,
            },
            Knowledge::AvroLast {
                topic: "shop.orders".into(),
                id: 7,
            },
            Knowledge::JsonSeen {
                topic: "a/b".into(),
                violation: Violation {
                    field: "amount".into(),
                    kind: ViolationKind::WrongType,
                },
            },
        ];
        for k in &known {
            let (key, value) = knowledge(3, k);
            assert_eq!(partition_of(CF_SCHEMAS, &key), 3);
            assert_eq!(parse_knowledge(&key, &value).as_ref(), Some(k));
        }
        // The bytes state written before this codec moved here holds.
        let mut old = 3u32.to_be_bytes().to_vec();
        old.extend_from_slice(b"avro/shop.orders/\x00\x00\x00\x07");
        assert_eq!(knowledge(3, &known[0]).0, old);
        assert_eq!(
            knowledge(3, &known[2]),
            (
                [&3u32.to_be_bytes()[..], b"json/a/b/amount/wrong_type"].concat(),
                b"1".to_vec()
            )
        );
        assert_eq!(parse_knowledge(&3u32.to_be_bytes(), b""), None);
        assert_eq!(
            parse_knowledge(&[&3u32.to_be_bytes()[..], b"json/t/f/bogus"].concat(), b"1"),
            None
        );
    }

    #[test]
    fn checkpoint_values_round_trip() {
        assert_eq!(parse_checkpoint_value(&checkpoint_value(42)), Some(42));
        assert_eq!(checkpoint_value(1), vec![0, 0, 0, 0, 0, 0, 0, 1]);
        assert_eq!(parse_checkpoint_value(&[1, 2]), None);
    }

    #[test]
    fn clock_values_round_trip_and_other_lengths_are_refused() {
        let v = clock_value(-1_700_000_000_000, 1_764_000_000_123);
        assert_eq!(v.len(), 16);
        assert_eq!(
            parse_clock_value(&v),
            Some((-1_700_000_000_000, 1_764_000_000_123))
        );
        assert_eq!(parse_clock_value(&v[..15]), None);
        // The layout restored state depends on: base then wall time, big-endian.
        assert_eq!(&clock_value(1, 2)[7..9], &[1, 0]);
    }

    #[test]
    fn timer_keys_sort_by_partition_then_due_and_round_trip() {
        let a = timer(1, -5, "wf", "k\u{0}x", TimerKind::Deadline(3));
        let b = timer(1, 7, "wf", "a", TimerKind::Orphan);
        let c = timer(2, -100, "wf", "a", TimerKind::Expire);
        assert!(a < b && b < c);
        assert_eq!(
            parse_timer(&b),
            Some((1, 7, "wf".into(), "a".into(), TimerKind::Orphan))
        );
        assert_eq!(
            parse_timer(&a),
            Some((1, -5, "wf".into(), "k\u{0}x".into(), TimerKind::Deadline(3)))
        );
    }
}
