//! The changelog: every state write but the timers (which follow from the instances, and which
//! a restore rebuilds), as a record on a compacted topic, committed in the same Kafka
//! transaction as the outputs and input offsets it belongs to.
//!
//! - Topic `<group_id>.state-changelog`, compacted, one partition per input partition number:
//!   state is partition-aligned, so the changelog partition of a write is the input partition
//!   that owns it (drift knowledge is filed under the input partition that taught it).
//! - Record key: the column family's tag byte, then the RocksDB key; value: the RocksDB value,
//!   or a tombstone (no value) for a delete.
//! - Local RocksDB is written only after the transaction commits, in one atomic write together
//!   with the checkpoint `meta/changelog/<partition>`: the next changelog offset the local state
//!   includes. So local state is never ahead of the changelog; after a crash it may be behind,
//!   and restore reads only the missing tail (checkpoint to end, read_committed), never the
//!   whole log again.

use super::{Op, StateError, Store, CF_INSTANCES, CF_META, CF_SCHEMAS, CF_TIMERS};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

/// The changelog topic of a group.
pub fn topic(group_id: &str) -> String {
    format!("{group_id}.state-changelog")
}

fn tag(cf: &str) -> u8 {
    match cf {
        CF_SCHEMAS => b'S',
        CF_INSTANCES => b'I',
        CF_TIMERS => b'T',
        _ => b'M',
    }
}

fn cf_of(tag: u8) -> Option<&'static str> {
    Some(match tag {
        b'S' => CF_SCHEMAS,
        b'I' => CF_INSTANCES,
        b'T' => CF_TIMERS,
        b'M' => CF_META,
        _ => return None,
    })
}

/// The input partition that owns a key ([`super::keys::partition_of`]).
pub use super::keys::partition_of;

/// Whether a write goes to the changelog. Timers do not: they follow from the instances (a
/// restore rebuilds them with a [`Derive`]), and logging them was most of the changelog (the
/// benchmark's 11.2 records per order are 3.9 without their puts and tombstones).
pub fn logged(op: &Op) -> bool {
    let cf = match op {
        Op::Put(cf, ..) | Op::Delete(cf, _) => *cf,
    };
    cf != CF_TIMERS
}

/// What a restore derives from a restored instance (`key`, `value`): the writes of the state
/// that is not logged (its timers), written atomically with it.
pub type Derive = dyn Fn(&[u8], &[u8], &mut Vec<Op>) + Send + Sync;

/// A changelog record for a write: (partition, key, value or tombstone). The value is the
/// write's own (it is produced from there, not copied).
pub fn record(op: &Op) -> (i32, Vec<u8>, Option<&[u8]>) {
    let (cf, k, v) = match op {
        Op::Put(cf, k, v) => (*cf, k, Some(v.as_slice())),
        Op::Delete(cf, k) => (*cf, k, None),
    };
    let mut key = Vec::with_capacity(k.len() + 1);
    key.push(tag(cf));
    key.extend_from_slice(k);
    (partition_of(cf, k), key, v)
}

/// The write a changelog record stands for.
pub fn op(key: &[u8], value: Option<&[u8]>) -> Option<Op> {
    let (&t, k) = key.split_first()?;
    let cf = cf_of(t)?;
    Some(match value {
        Some(v) => Op::Put(cf, k.to_vec(), v.to_vec()),
        None => Op::Delete(cf, k.to_vec()),
    })
}

/// The write that records `next` as the next changelog offset local state includes.
pub fn checkpoint_op(partition: i32, next: i64) -> Op {
    Op::Put(
        CF_META,
        super::keys::checkpoint(partition),
        super::keys::checkpoint_value(next),
    )
}

/// The next changelog offset local state includes for `partition` (None: never restored).
pub fn checkpoint(store: &Store, partition: i32) -> Result<Option<i64>, StateError> {
    Ok(store
        .get(CF_META, &super::keys::checkpoint(partition))?
        .and_then(|v| super::keys::parse_checkpoint_value(&v)))
}

/// Partitions local state holds a checkpoint for.
pub fn checkpointed(store: &Store) -> Result<Vec<i32>, StateError> {
    Ok(store
        .scan_prefix(CF_META, super::keys::CHECKPOINT)?
        .into_iter()
        .filter_map(|(k, _)| super::keys::meta_partition(super::keys::CHECKPOINT, &k))
        .collect())
}

/// What a restore did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Restored {
    pub partitions: usize,
    pub records: u64,
    pub seconds_ms: u64,
}

/// Changelog records per restore chunk (one atomic write with its checkpoint).
const CHUNK_RECORDS: u64 = 100_000;

/// Brings local state up to the end of the changelog for `partitions`: reads from each one's
/// checkpoint (or the start) to the last committed record, applying the writes in order, and
/// moves the checkpoint. Partitions already at the end cost one offsets request.
///
/// Records are applied in chunks: within one, only the last write of each key is kept (an
/// instance is logged once per batch that changed it), and each restored instance's timers are
/// derived (`derive`) and written with it, in the chunk's atomic write with the checkpoint.
pub fn restore(
    store: &Store,
    base: &ClientConfig,
    changelog: &str,
    partitions: &[i32],
    timeout: Duration,
    derive: &Derive,
) -> anyhow::Result<Restored> {
    let started = Instant::now();
    if partitions.is_empty() {
        return Ok(Restored::default());
    }
    let mut c = crate::kafka::client::reader_config(base, &format!("{changelog}.restore"));
    c.set("enable.partition.eof", "true")
        .set("isolation.level", "read_committed")
        .set("auto.offset.reset", "earliest");
    let consumer: BaseConsumer<crate::kafka::client::EofIsNormal> =
        c.create_with_context(crate::kafka::client::EofIsNormal)?;
    let mut tpl = TopicPartitionList::new();
    let mut todo: BTreeMap<i32, i64> = BTreeMap::new();
    for &p in partitions {
        let from = checkpoint(store, p)?.unwrap_or(0);
        let (low, high) = consumer
            .fetch_watermarks(changelog, p, timeout)
            .map_err(|e| anyhow::anyhow!("changelog {changelog}[{p}]: {e}"))?;
        let from = from.max(low);
        if from >= high {
            continue;
        }
        tpl.add_partition_offset(changelog, p, Offset::Offset(from))?;
        todo.insert(p, from);
    }
    let mut restored = Restored {
        partitions: todo.len(),
        ..Default::default()
    };
    if todo.is_empty() {
        return Ok(restored);
    }
    crate::observe::events::RestoreStarted {
        partitions: todo.len(),
    }
    .emit();
    consumer.assign(&tpl)?;
    // The chunk being restored: changelog key -> its last value (None: a tombstone).
    let mut chunk: HashMap<Vec<u8>, Option<Vec<u8>>> = HashMap::new();
    let mut chunk_records = 0u64;
    let from_offsets = todo.clone();
    let mut next: BTreeMap<i32, i64> = todo.clone();
    let mut last_progress = Instant::now();
    let flush = |chunk: &mut HashMap<Vec<u8>, Option<Vec<u8>>>,
                 records: &mut u64,
                 next: &BTreeMap<i32, i64>|
     -> Result<(), StateError> {
        let mut ops = Vec::with_capacity(chunk.len() * 2 + next.len());
        for (k, v) in chunk.drain() {
            if let Some(op) = op(&k, v.as_deref()) {
                if let Op::Put(CF_INSTANCES, key, value) = &op {
                    derive(key, value, &mut ops);
                }
                ops.push(op);
            }
        }
        for (&p, &n) in next {
            ops.push(checkpoint_op(p, n));
        }
        store.write(&ops)?;
        crate::observe::metrics::METRICS
            .restored_records
            .inc_by(std::mem::take(records));
        Ok(())
    };
    while !todo.is_empty() {
        match consumer.poll(Duration::from_millis(500)) {
            Some(Ok(m)) => {
                last_progress = Instant::now();
                if let Some(k) = m.key() {
                    chunk.insert(k.to_vec(), m.payload().map(<[u8]>::to_vec));
                }
                next.insert(m.partition(), m.offset() + 1);
                restored.records += 1;
                chunk_records += 1;
                if chunk_records >= CHUNK_RECORDS {
                    flush(&mut chunk, &mut chunk_records, &next)?;
                    crate::observe::events::RestoreProgress {
                        records: restored.records,
                    }
                    .emit();
                }
            }
            Some(Err(KafkaError::PartitionEOF(p))) => {
                // The end of what is committed: the position is the next offset to restore.
                if let Ok(pos) = consumer.position() {
                    if let Some(o) =
                        pos.find_partition(changelog, p)
                            .and_then(|e| match e.offset() {
                                // Only a real offset is a position (Invalid: none yet).
                                Offset::Offset(o) => Some(o),
                                _ => None,
                            })
                    {
                        let n = next.entry(p).or_insert(o);
                        *n = (*n).max(o);
                    }
                }
                todo.remove(&p);
            }
            Some(Err(e)) => anyhow::bail!("reading changelog {changelog}: {e}"),
            None => {
                if last_progress.elapsed() > timeout {
                    anyhow::bail!(
                        "restoring changelog {changelog}: no progress for {timeout:?} (partitions left: {:?})",
                        todo.keys().collect::<Vec<_>>()
                    );
                }
            }
        }
    }
    flush(&mut chunk, &mut chunk_records, &next)?;
    restored.seconds_ms = started.elapsed().as_millis() as u64;
    let ranges: Vec<String> = next
        .iter()
        .filter_map(|(p, to)| {
            let from = from_offsets.get(p)?;
            Some(format!("{p}:{from}-{to}"))
        })
        .collect();
    crate::observe::events::RestoreFinished {
        partitions: restored.partitions,
        records: restored.records,
        millis: restored.seconds_ms,
        ranges: &ranges.join(","),
    }
    .emit();
    Ok(restored)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_land_in_the_owning_partition() {
        let inst = crate::state::keys::instance(7, "order-to-cash", "O-1");
        let put = Op::Put(CF_INSTANCES, inst.clone(), b"{}".to_vec());
        let (p, k, v) = record(&put);
        assert_eq!(p, 7);
        assert_eq!(op(&k, v), Some(put));
        let clock = crate::state::keys::clock("shop.orders", 3);
        let del = Op::Delete(CF_META, clock);
        let (p, k, v) = record(&del);
        assert_eq!((p, v), (3, None));
        assert_eq!(op(&k, None), Some(del));
        let (k, v) = crate::state::keys::knowledge(
            5,
            &crate::detectors::drift::Knowledge::AvroLast {
                topic: "t".into(),
                id: 1,
            },
        );
        assert_eq!(record(&Op::Put(CF_SCHEMAS, k, v)).0, 5);
    }
}
