//! Runs the workflow state machines over the state store: loads an instance, applies an event
//! or a due timer, and stages the new state, timers and outputs in a [`Batch`]. The engine
//! sends the batch's outputs and only then writes its state, so a crash repeats outputs rather
//! than losing them.
//!
//! State is partition-aligned: the input partition an event arrived on owns its instance.
//!
//! | column family | key |
//! |---|---|
//! | `instances` | partition (u32 BE) · workflow · 0x00 · key → instance (state/instances.rs) |
//! | `timers` | partition (u32 BE) · due (i64, sign-flipped BE) · kind (tag + step u32) · workflow · 0x00 · key → empty |
//! | `meta` | `clock/` · partition (u32 BE) · topic → base, wall_at (i64 BE each) |

use super::clock::{PartitionClock, StreamClock};
use crate::detectors::workflow::{Instance, Timer, TimerKind, Workflow};
use crate::ingest::Event;
use crate::outputs::Output;
use crate::state::{Op, StateError, Store, CF_INSTANCES, CF_META, CF_TIMERS};
use std::collections::{BTreeMap, HashMap};

/// Staged work of one record or one tick.
#[derive(Default)]
pub struct Batch {
    instances: HashMap<Vec<u8>, Option<Instance>>,
    timer_puts: BTreeMap<Vec<u8>, ()>,
    timer_deletes: Vec<Vec<u8>>,
    clocks: BTreeMap<(String, i32), PartitionClock>,
    /// Other writes that belong to the batch (schema knowledge).
    pub extra_ops: Vec<Op>,
    pub outputs: Vec<Output>,
}

impl Batch {
    pub fn is_empty(&self) -> bool {
        self.instances.is_empty()
            && self.timer_puts.is_empty()
            && self.timer_deletes.is_empty()
            && self.clocks.is_empty()
            && self.extra_ops.is_empty()
    }

    /// The writes, for the store.
    pub fn ops(&self) -> Vec<Op> {
        let mut ops = Vec::new();
        for (k, v) in &self.instances {
            match v {
                Some(inst) => ops.push(Op::Put(
                    CF_INSTANCES,
                    k.clone(),
                    crate::state::instances::encode(inst),
                )),
                None => ops.push(Op::Delete(CF_INSTANCES, k.clone())),
            }
        }
        for k in &self.timer_deletes {
            ops.push(Op::Delete(CF_TIMERS, k.clone()));
        }
        for k in self.timer_puts.keys() {
            ops.push(Op::Put(CF_TIMERS, k.clone(), Vec::new()));
        }
        for ((t, p), c) in &self.clocks {
            let mut v = c.base.to_be_bytes().to_vec();
            v.extend_from_slice(&c.wall_at.to_be_bytes());
            ops.push(Op::Put(CF_META, clock_key(t, *p), v));
        }
        ops.extend(self.extra_ops.iter().cloned());
        ops
    }
}

fn clock_key(topic: &str, p: i32) -> Vec<u8> {
    let mut k = b"clock/".to_vec();
    k.extend_from_slice(&(p as u32).to_be_bytes());
    k.extend_from_slice(topic.as_bytes());
    k
}

fn instance_key(p: i32, wf: &str, key: &str) -> Vec<u8> {
    let mut k = (p as u32).to_be_bytes().to_vec();
    k.extend_from_slice(wf.as_bytes());
    k.push(0);
    k.extend_from_slice(key.as_bytes());
    k
}

fn due_bytes(due: i64) -> [u8; 8] {
    ((due as u64) ^ (1 << 63)).to_be_bytes()
}

fn timer_key(p: i32, due: i64, wf: &str, key: &str, kind: TimerKind) -> Vec<u8> {
    let mut k = (p as u32).to_be_bytes().to_vec();
    k.extend_from_slice(&due_bytes(due));
    let (tag, step) = match kind {
        TimerKind::Deadline(i) => (b'D', i as u32),
        TimerKind::Orphan => (b'O', 0),
        TimerKind::Expire => (b'E', 0),
    };
    k.push(tag);
    k.extend_from_slice(&step.to_be_bytes());
    k.extend_from_slice(wf.as_bytes());
    k.push(0);
    k.extend_from_slice(key.as_bytes());
    k
}

/// (partition, due, workflow, key, kind) of a timer key.
fn parse_timer(k: &[u8]) -> Option<(i32, i64, String, String, TimerKind)> {
    let p = u32::from_be_bytes(k.get(0..4)?.try_into().ok()?) as i32;
    let due = (u64::from_be_bytes(k.get(4..12)?.try_into().ok()?) ^ (1 << 63)) as i64;
    let step = u32::from_be_bytes(k.get(13..17)?.try_into().ok()?) as usize;
    let kind = match k.get(12)? {
        b'D' => TimerKind::Deadline(step),
        b'O' => TimerKind::Orphan,
        b'E' => TimerKind::Expire,
        _ => return None,
    };
    let rest = &k[17..];
    let z = rest.iter().position(|&b| b == 0)?;
    let wf = String::from_utf8(rest[..z].to_vec()).ok()?;
    let key = String::from_utf8(rest[z + 1..].to_vec()).ok()?;
    Some((p, due, wf, key, kind))
}

/// Committed instances, decoded, so that the next event of a business instance (which
/// usually follows soon) skips the RocksDB read and the decode. Two generations of at most
/// half the capacity each: when the young one fills, the old one is dropped, an approximate
/// LRU with a hard bound (`state.instance_cache`).
#[derive(Default)]
struct InstanceCache {
    young: HashMap<Vec<u8>, Instance>,
    old: HashMap<Vec<u8>, Instance>,
    half: usize,
    /// The consumer's rebalance count the cached instances belong to.
    rebalances: u64,
}

impl InstanceCache {
    fn take(&mut self, k: &[u8]) -> Option<Instance> {
        self.young.remove(k).or_else(|| self.old.remove(k))
    }

    fn put(&mut self, k: Vec<u8>, inst: Instance) {
        if self.half == 0 {
            return;
        }
        if self.young.len() >= self.half {
            let dropped = std::mem::replace(
                &mut self.old,
                std::mem::replace(&mut self.young, HashMap::with_capacity(self.half)),
            );
            // Freeing half the cache's instances at once was 3.7% of the profile, on the engine
            // thread; another thread frees them (the engine runs on one core of two).
            if !dropped.is_empty() {
                // Where no thread can be had, spawn drops the closure: the map is freed here.
                let _ = std::thread::Builder::new()
                    .name("instance-cache-free".into())
                    .spawn(move || drop(dropped));
            }
        }
        self.old.remove(&k);
        self.young.insert(k, inst);
    }

    fn forget(&mut self, k: &[u8]) {
        self.young.remove(k);
        self.old.remove(k);
    }

    fn clear(&mut self) {
        self.young = HashMap::new();
        self.old = HashMap::new();
    }
}

/// The instance under `k`: staged in this batch, else committed (the cache, then the store).
/// What it returns is staged again by [`stage`], so a cached instance is taken out of the cache
/// rather than copied; the commit puts it back.
fn load(
    cache: &mut InstanceCache,
    store: &Store,
    batch: &Batch,
    k: &[u8],
) -> Result<Option<Instance>, StateError> {
    if let Some(v) = batch.instances.get(k) {
        return Ok(v.clone());
    }
    if let Some(inst) = cache.take(k) {
        return Ok(Some(inst));
    }
    Ok(store
        .get(CF_INSTANCES, k)?
        .and_then(|v| crate::state::instances::decode(&v)))
}

/// Stages a transition of instance `key` of workflow `wf` on partition `p` in `batch`.
fn stage(
    fired_to: &mut HashMap<i32, i64>,
    batch: &mut Batch,
    p: i32,
    wf: &str,
    key: &str,
    t: crate::detectors::workflow::Transition,
) {
    batch.instances.insert(instance_key(p, wf, key), t.instance);
    for Timer { due_ms, kind } in t.timers {
        // A timer due where the scans have passed already must be found by the next one.
        if let Some(done) = fired_to.get_mut(&p) {
            if *done >= due_ms {
                *done = due_ms.saturating_sub(1);
            }
        }
        batch
            .timer_puts
            .insert(timer_key(p, due_ms, wf, key, kind), ());
    }
    batch.outputs.extend(t.outputs);
}

pub struct WorkflowRunner {
    cache: InstanceCache,
    /// Per partition: every timer due at or before this has fired (in committed state, or in
    /// the batch being committed; a failed commit rewinds, which clears this).
    fired_to: HashMap<i32, i64>,
    workflows: Vec<Workflow>,
    by_type: HashMap<String, Vec<usize>>,
    by_name: HashMap<String, usize>,
    pub clock: StreamClock,
}

impl WorkflowRunner {
    /// Keeps up to `cache_entries` committed instances in memory (0: none).
    pub fn with_cache(mut self, cache_entries: usize) -> Self {
        self.cache.half = cache_entries / 2;
        self
    }

    pub fn new(workflows: Vec<Workflow>, clock: StreamClock) -> Self {
        let mut by_type: HashMap<String, Vec<usize>> = HashMap::new();
        for (i, w) in workflows.iter().enumerate() {
            for t in w.event_types() {
                by_type.entry(t.to_string()).or_default().push(i);
            }
        }
        let by_name = workflows
            .iter()
            .enumerate()
            .map(|(i, w)| (w.name.clone(), i))
            .collect();
        WorkflowRunner {
            cache: InstanceCache::default(),
            fired_to: HashMap::new(),
            workflows,
            by_type,
            by_name,
            clock,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.workflows.is_empty()
    }

    /// Restores the partition clocks from the store.
    pub fn restore_clocks(&mut self, store: &Store) -> Result<(), StateError> {
        for (k, v) in store.scan_prefix(CF_META, b"clock/")? {
            if let (Some(p), Ok(v)) = (k.get(6..10), <[u8; 16]>::try_from(v.as_slice())) {
                let p = u32::from_be_bytes(p.try_into().expect("4 bytes")) as i32;
                let topic = String::from_utf8_lossy(&k[10..]).into_owned();
                let base = i64::from_be_bytes(v[..8].try_into().expect("8"));
                let wall_at = i64::from_be_bytes(v[8..].try_into().expect("8"));
                self.clock
                    .restore(&topic, p, PartitionClock { base, wall_at });
            }
        }
        Ok(())
    }

    /// A batch is committed and its state written: its instances are the committed ones now.
    pub fn committed(&mut self, batch: Batch) {
        for (k, v) in batch.instances {
            match v {
                Some(inst) => self.cache.put(k, inst),
                None => self.cache.forget(&k),
            }
        }
    }

    /// Drops cached instances when the assignment moved (`rebalances` changed) or the engine
    /// rewound: the store is the truth again.
    pub fn sync_cache(&mut self, rebalances: u64) {
        if self.cache.rebalances != rebalances {
            self.clear_cache();
            self.cache.rebalances = rebalances;
        }
    }

    /// Forgets what is kept in memory about committed state: cached instances, and how far
    /// each partition's timers are known fired.
    pub fn clear_cache(&mut self) {
        self.cache.clear();
        self.fired_to.clear();
    }

    /// An event read from partition `p` of `topic` (its source topic, or the repartition topic
    /// it was re-keyed through), arriving at wall time `wall_ms`.
    pub fn on_event(
        &mut self,
        store: &Store,
        batch: &mut Batch,
        topic: &str,
        p: i32,
        ev: &Event,
        wall_ms: i64,
    ) -> Result<(), StateError> {
        let c = self.clock.observe(topic, p, ev.event_time_ms, wall_ms);
        batch.clocks.insert((topic.to_string(), p), c);
        let Some(wfs) = self.by_type.get(&ev.event_type) else {
            return Ok(());
        };
        for &i in wfs {
            let wf = &self.workflows[i];
            let k = instance_key(p, &wf.name, &ev.key);
            let inst = load(&mut self.cache, store, batch, &k)?;
            let t = wf.on_event(inst, ev);
            stage(&mut self.fired_to, batch, p, &wf.name, &ev.key, t);
        }
        Ok(())
    }

    /// Assigned topic-partitions that have not delivered a record yet.
    pub fn waiting(&self) -> Vec<(String, i32)> {
        self.clock.waiting()
    }

    /// A waiting topic-partition has nothing to read.
    pub fn idle(&mut self, topic: &str, partition: i32) {
        self.clock.idle(topic, partition);
    }

    /// A waiting topic-partition has records to read.
    pub fn backlogged(&mut self, topic: &str, partition: i32) {
        self.clock.backlogged(topic, partition);
    }

    /// Tells the clock what the consumer is assigned now.
    pub fn assigned(&mut self, assignment: &[(String, i32)], wall_ms: i64) {
        self.clock.assigned(assignment, wall_ms);
    }

    /// Fires every timer due on its partition's stream clock at wall time `wall_ms`, at most
    /// `limit` of them (the rest wait for the next tick).
    pub fn tick(
        &mut self,
        store: &Store,
        batch: &mut Batch,
        wall_ms: i64,
        limit: usize,
    ) -> Result<usize, StateError> {
        let mut fired = 0;
        for p in self.clock.partitions() {
            let Some(wm) = self.clock.watermark(p, wall_ms) else {
                continue;
            };
            // Start after what is known fired: fired timers are deleted, and a scan from the
            // partition's start would step over every one of their tombstones, each tick.
            let mut from = (p as u32).to_be_bytes().to_vec();
            if let Some(&done) = self.fired_to.get(&p) {
                from.extend_from_slice(&due_bytes(done.saturating_add(1)));
            }
            let mut to = (p as u32).to_be_bytes().to_vec();
            to.extend_from_slice(&due_bytes(wm.saturating_add(1)));
            let room = limit.saturating_sub(fired);
            let due_now = store.range(CF_TIMERS, &from, &to, room)?;
            if due_now.len() < room {
                self.fired_to.insert(p, wm);
            }
            for (k, _) in due_now {
                let Some((_, due, wf_name, key, kind)) = parse_timer(&k) else {
                    batch.timer_deletes.push(k);
                    continue;
                };
                batch.timer_deletes.push(k);
                fired += 1;
                let Some(&i) = self.by_name.get(&wf_name) else {
                    continue;
                };
                let wf = &self.workflows[i];
                let ik = instance_key(p, &wf.name, &key);
                let staged = batch.instances.contains_key(&ik);
                let inst = load(&mut self.cache, store, batch, &ik)?;
                let existed = inst.is_some();
                let t = wf.on_timer(inst, Timer { due_ms: due, kind }, wm);
                // Most timers find their reason gone (the step arrived, the instance ended):
                // nothing changes, and nothing is written or logged for the instance.
                if t.changes_nothing(existed) && !staged {
                    if let Some(inst) = t.instance {
                        self.cache.put(ik, inst);
                    }
                    continue;
                }
                stage(&mut self.fired_to, batch, p, &wf.name, &key, t);
            }
            if fired >= limit {
                break;
            }
        }
        Ok(fired)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inst(key: &str) -> Instance {
        Instance {
            key: key.into(),
            first_at: 0,
            started_at: None,
            seen: Default::default(),
            fired: Default::default(),
            orphan_fired: false,
            closed: false,
            event_ids: Default::default(),
            lineage: Vec::new(),
            dimensions: Default::default(),
        }
    }

    #[test]
    fn the_instance_cache_holds_at_most_its_capacity_and_hands_each_instance_out_once() {
        let mut c = InstanceCache {
            half: 2,
            ..Default::default()
        };
        for k in ["a", "b", "c", "d", "e"] {
            c.put(k.as_bytes().to_vec(), inst(k));
        }
        // c's put made {a, b} the old generation; e's put made {c, d} the old one and dropped
        // {a, b}: e is young, c and d old.
        assert_eq!(c.young.len() + c.old.len(), 3);
        assert_eq!(c.take(b"a"), None);
        assert_eq!(c.take(b"c").map(|i| i.key), Some("c".to_string()));
        assert_eq!(c.take(b"c"), None, "taken, not copied");
        c.forget(b"e");
        assert_eq!(c.take(b"e"), None);
        c.clear();
        assert_eq!(c.take(b"d"), None);
        let mut off = InstanceCache::default();
        off.put(b"a".to_vec(), inst("a"));
        assert_eq!(off.take(b"a"), None, "capacity 0 keeps nothing");
    }

    #[test]
    fn timer_keys_sort_by_partition_then_due_and_round_trip() {
        let a = timer_key(1, -5, "wf", "k\u{0}x", TimerKind::Deadline(3));
        let b = timer_key(1, 7, "wf", "a", TimerKind::Orphan);
        let c = timer_key(2, -100, "wf", "a", TimerKind::Expire);
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
