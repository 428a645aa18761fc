//! Runs the workflow state machines over the state store: loads an instance, applies an event
//! or a due timer, and stages the new state, timers and outputs in a [`Batch`]. The engine
//! sends the batch's outputs and only then writes its state, so a crash repeats outputs rather
//! than losing them.
//!
//! State is partition-aligned: the input partition an event arrived on owns its instance. The
//! keys of instances, timers and clocks are built in state/keys.rs.

use super::clock::{PartitionClock, StreamClock};
use crate::detectors::workflow::{Instance, Timer, Workflow};
use crate::ingest::Event;
use crate::outputs::Output;
use crate::state::keys;
use crate::state::{Op, StateError, Store, CF_INSTANCES, CF_META, CF_TIMERS};
use std::collections::{BTreeMap, HashMap};

/// A map keyed by instance key (staged, cached and committing instances). foldhash, with a
/// random seed per process, not std's SipHash: SipHash was 3.6% of the engine's CPU, and
/// foldhash takes an insert and two lookups from 135.7 to 50.1 ns per operation on keys of
/// this shape (`cargo bench --bench hashers`; FxHash 69.9, and its fixed seed would let
/// crafted correlation keys collide).
type KeyMap<V> = HashMap<Vec<u8>, V, foldhash::fast::RandomState>;

/// Staged work of one record or one tick.
#[derive(Default)]
pub struct Batch {
    instances: KeyMap<Option<Instance>>,
    timer_puts: BTreeMap<Vec<u8>, ()>,
    timer_deletes: Vec<Vec<u8>>,
    /// Input -> partition -> its clock after the batch (by input first, so that an event of an
    /// input already in the batch allocates nothing).
    clocks: BTreeMap<String, BTreeMap<i32, PartitionClock>>,
    /// Other writes that belong to the batch (schema knowledge).
    pub extra_ops: Vec<Op>,
    pub outputs: Vec<Output>,
    /// Records dead-lettered in the batch, produced with its outputs.
    pub dead_letters: Vec<crate::deadletter::DeadLetter>,
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
        for (t, parts) in &self.clocks {
            for (p, c) in parts {
                ops.push(Op::Put(
                    CF_META,
                    keys::clock(t, *p),
                    keys::clock_value(c.base, c.wall_at),
                ));
            }
        }
        ops.extend(self.extra_ops.iter().cloned());
        ops
    }
}

/// Committed instances, decoded, so that the next event of a business instance (which
/// usually follows soon) skips the RocksDB read and the decode. Two generations of at most
/// half the capacity each: when the young one fills, the old one is dropped, an approximate
/// LRU with a hard bound (`state.instance_cache`).
#[derive(Default)]
struct InstanceCache {
    young: KeyMap<Instance>,
    old: KeyMap<Instance>,
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
                std::mem::replace(
                    &mut self.young,
                    KeyMap::with_capacity_and_hasher(self.half, Default::default()),
                ),
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
        self.young = KeyMap::default();
        self.old = KeyMap::default();
    }
}

/// Where [`load`] found an instance (`sightline_instance_loads_total{from}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Found {
    /// Staged in the batch being handled.
    Batch,
    /// In the batch whose transaction is committing.
    Committing,
    Cache,
    Store,
    /// Nowhere: the event starts an instance.
    New,
}

impl Found {
    /// Counts one load in `sightline_instance_loads_total`, under this source's label.
    fn count(self) {
        let [batch, committing, cache, store, new] = &*LOADS;
        match self {
            Found::Batch => batch,
            Found::Committing => committing,
            Found::Cache => cache,
            Found::Store => store,
            Found::New => new,
        }
        .inc();
    }
}

/// `sightline_instance_loads_total`'s handles, in the order [`Found::count`] takes them.
static LOADS: std::sync::LazyLock<[prometheus::IntCounter; 5]> = std::sync::LazyLock::new(|| {
    ["batch", "committing", "cache", "store", "new"].map(|from| {
        crate::observe::metrics::METRICS
            .instance_loads
            .with_label_values(&[from])
    })
});

/// The instance under `k`: staged in this batch, else committed (the cache, then the store),
/// and where it was found. What it returns is staged again by [`stage`], so a cached instance
/// is taken out of the cache rather than copied; the commit puts it back.
fn load(
    cache: &mut InstanceCache,
    committing: &KeyMap<Option<Instance>>,
    store: &Store,
    batch: &Batch,
    k: &[u8],
) -> Result<(Option<Instance>, Found), StateError> {
    if let Some(v) = batch.instances.get(k) {
        return Ok((v.clone(), Found::Batch));
    }
    // Written by the batch whose transaction is committing: the store does not have it yet.
    // Cloned, not taken: a load that stages nothing must find it again.
    if let Some(v) = committing.get(k) {
        return Ok((v.clone(), Found::Committing));
    }
    if let Some(inst) = cache.take(k) {
        return Ok((Some(inst), Found::Cache));
    }
    let stored = store
        .get(CF_INSTANCES, k)?
        .and_then(|v| crate::state::instances::decode(&v));
    let found = if stored.is_some() {
        Found::Store
    } else {
        Found::New
    };
    Ok((stored, found))
}

/// Stages a transition of instance `key` of workflow `wf` on partition `p` (its state key
/// `k`) in `batch`.
fn stage(
    fired_to: &mut HashMap<i32, i64>,
    batch: &mut Batch,
    (p, k): (i32, Vec<u8>),
    wf: &str,
    key: &str,
    t: crate::detectors::workflow::Transition,
) {
    debug_assert_eq!(k, keys::instance(p, wf, key));
    batch.instances.insert(k, t.instance);
    for Timer { due_ms, kind } in t.timers {
        // A timer due where the scans have passed already must be found by the next one.
        if let Some(done) = fired_to.get_mut(&p) {
            if *done >= due_ms {
                *done = due_ms.saturating_sub(1);
            }
        }
        batch
            .timer_puts
            .insert(keys::timer(p, due_ms, wf, key, kind), ());
    }
    batch.outputs.extend(t.outputs);
}

/// Rebuilds a restored instance's timers, which the changelog does not hold
/// ([`Workflow::timers`]). An instance of a workflow no longer configured gets none.
pub fn restored_timers(workflows: &[Workflow]) -> std::sync::Arc<crate::state::changelog::Derive> {
    let by_name: HashMap<String, Workflow> = workflows
        .iter()
        .map(|w| (w.name.clone(), w.clone()))
        .collect();
    std::sync::Arc::new(move |key: &[u8], value: &[u8], ops: &mut Vec<Op>| {
        let Some((p, wf, k)) = keys::parse_instance(key) else {
            return;
        };
        let (Some(w), Some(inst)) = (by_name.get(wf), crate::state::instances::decode(value))
        else {
            return;
        };
        for t in w.timers(&inst) {
            ops.push(Op::Put(
                CF_TIMERS,
                keys::timer(p, t.due_ms, wf, k, t.kind),
                Vec::new(),
            ));
        }
    })
}

/// The clock inputs that can carry a workflow's events: its watermark is theirs alone, so a
/// silent topic it never reads holds none of its deadlines.
#[derive(Debug, Clone, Default)]
pub struct WorkflowInputs {
    /// Topics (keyed sources' topics, repartition topics).
    pub topics: std::collections::HashSet<String>,
    /// Pattern sources' topic regexes.
    pub patterns: Vec<regex::Regex>,
}

impl WorkflowInputs {
    /// Whether clock input `input` (a topic, or `<repartition topic>@<source partition>`)
    /// can carry the workflow's events.
    pub fn reads(&self, input: &str) -> bool {
        let topic = input.rsplit_once('@').map_or(input, |(t, _)| t);
        self.topics.contains(topic) || self.patterns.iter().any(|r| r.is_match(topic))
    }
}

pub struct WorkflowRunner {
    cache: InstanceCache,
    /// The instances of the batch whose transaction is committing (pipelined commits): the
    /// next batch reads them from here until they are written to the store.
    committing: KeyMap<Option<Instance>>,
    /// Per partition: every timer due at or before this has fired (in committed state, or in
    /// the batch being committed; a failed commit rewinds, which clears this).
    fired_to: HashMap<i32, i64>,
    workflows: Vec<Workflow>,
    by_type: HashMap<String, Vec<usize>>,
    by_name: HashMap<String, usize>,
    /// Per workflow, the inputs its watermark is taken over (None: every input).
    inputs: Vec<Option<WorkflowInputs>>,
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
            committing: KeyMap::default(),
            fired_to: HashMap::new(),
            inputs: vec![None; workflows.len()],
            workflows,
            by_type,
            by_name,
            clock,
        }
    }

    /// Each workflow's watermark is taken over its own inputs (by workflow name; a workflow
    /// not named takes every input).
    pub fn with_inputs(mut self, mut inputs: HashMap<String, WorkflowInputs>) -> Self {
        for (i, w) in self.workflows.iter().enumerate() {
            self.inputs[i] = inputs.remove(&w.name);
        }
        self
    }

    /// The watermark of workflow `i` on partition `p` at wall time `wall_ms`.
    fn watermark(&self, i: usize, p: i32, wall_ms: i64) -> Option<i64> {
        match &self.inputs[i] {
            Some(inputs) => self
                .clock
                .watermark_of(p, wall_ms, &|input| inputs.reads(input)),
            None => self.clock.watermark(p, wall_ms),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.workflows.is_empty()
    }

    /// Restores the partition clocks from the store.
    pub fn restore_clocks(&mut self, store: &Store) -> Result<(), StateError> {
        for (k, v) in store.scan_prefix(CF_META, keys::CLOCK)? {
            if let (Some((p, topic)), Some((base, wall_at))) =
                (keys::parse_clock(&k), keys::parse_clock_value(&v))
            {
                self.clock
                    .restore(&topic, p, PartitionClock { base, wall_at });
            }
        }
        Ok(())
    }

    /// A batch is committed and its state written: its instances are the committed ones now.
    pub fn committed(&mut self, batch: Batch) {
        self.committing(batch);
        self.written();
    }

    /// A batch's transaction is committing (its state is not in the store yet): the batches
    /// handled meanwhile read its instances from memory.
    pub fn committing(&mut self, batch: Batch) {
        debug_assert!(self.committing.is_empty(), "one batch commits at a time");
        self.committing = batch.instances;
    }

    /// The committing batch is committed and its state written: its instances are the
    /// committed ones now.
    pub fn written(&mut self) {
        for (k, v) in std::mem::take(&mut self.committing) {
            match v {
                Some(inst) => self.cache.put(k, inst),
                None => self.cache.forget(&k),
            }
        }
    }

    /// Drops cached instances when the assignment moved (`rebalances` changed) or the engine
    /// rewound: the store is the truth again.
    /// Whether the assignment moved (`rebalances` changed) since the cache was last synced.
    pub fn cache_stale(&self, rebalances: u64) -> bool {
        self.cache.rebalances != rebalances
    }

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
        self.committing.clear();
        self.fired_to.clear();
    }

    /// An event read on partition number `p`, arriving at wall time `wall_ms`; it moves clock
    /// input `input` (its source topic, or the upstream partition it was re-keyed from) to
    /// `clock_ms`.
    #[allow(clippy::too_many_arguments)]
    pub fn on_event(
        &mut self,
        store: &Store,
        batch: &mut Batch,
        input: &str,
        clock_ms: i64,
        p: i32,
        ev: &Event,
        wall_ms: i64,
    ) -> Result<(), StateError> {
        self.observe_input(batch, input, p, Some(clock_ms), wall_ms);
        let Some(wfs) = self.by_type.get(&ev.event_type) else {
            return Ok(());
        };
        for &i in wfs {
            let wf = &self.workflows[i];
            let k = keys::instance(p, &wf.name, &ev.key);
            let (inst, found) = load(&mut self.cache, &self.committing, store, batch, &k)?;
            found.count();
            let t = wf.on_event(inst, ev);
            stage(&mut self.fired_to, batch, (p, k), &wf.name, &ev.key, t);
        }
        Ok(())
    }

    /// Clock input `input` of partition `p` says its clock is `clock_ms` (None: it has nothing
    /// to read), at wall time `wall_ms`. A clock is staged in the batch, so it is restored
    /// after a restart or a move.
    pub fn observe_input(
        &mut self,
        batch: &mut Batch,
        input: &str,
        p: i32,
        clock_ms: Option<i64>,
        wall_ms: i64,
    ) {
        match clock_ms {
            Some(t) => {
                let c = self.clock.observe(input, p, t, wall_ms);
                match batch.clocks.get_mut(input) {
                    Some(parts) => {
                        parts.insert(p, c);
                    }
                    None => {
                        batch
                            .clocks
                            .insert(input.to_string(), BTreeMap::from([(p, c)]));
                    }
                }
            }
            None => self.clock.drained(input, p),
        }
    }

    /// Inputs with a clock silent for the idle timeout (clock.rs).
    pub fn silent(&self, wall_ms: i64, after_ms: i64) -> Vec<(String, i32)> {
        self.clock.silent(wall_ms, after_ms)
    }

    /// An input has nothing left to read.
    pub fn drained(&mut self, topic: &str, partition: i32) {
        self.clock.drained(topic, partition);
    }

    /// Inputs that may wait (time-aligned reading): ahead by more than `bound_ms` of the
    /// slowest input of their partition in every workflow that reads them. An input no
    /// workflow reads is never paused, nor the slowest input of any workflow.
    pub fn ahead(&self, bound_ms: i64, wall_ms: i64) -> Vec<(String, i32)> {
        let mut verdict: HashMap<(String, i32), bool> = HashMap::new();
        for i in 0..self.workflows.len() {
            let reads = |t: &str| self.inputs[i].as_ref().is_none_or(|x| x.reads(t));
            let ahead: std::collections::HashSet<(String, i32)> = self
                .clock
                .ahead(bound_ms, wall_ms, &reads)
                .into_iter()
                .collect();
            for k in self.clock.inputs().filter(|k| reads(&k.0)) {
                *verdict.entry(k.clone()).or_insert(true) &= ahead.contains(k);
            }
        }
        let mut out: Vec<_> = verdict
            .into_iter()
            .filter(|(_, ahead)| *ahead)
            .map(|(k, _)| k)
            .collect();
        out.sort();
        out
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

    /// Fires every timer due on its workflow's stream clock at wall time `wall_ms`, at most
    /// `limit` of them (the rest wait for the next tick). Timers of a partition are scanned in
    /// due order up to the newest of its workflows' watermarks; a timer beyond its own
    /// workflow's watermark stays for a later tick.
    pub fn tick(
        &mut self,
        store: &Store,
        batch: &mut Batch,
        wall_ms: i64,
        limit: usize,
    ) -> Result<usize, StateError> {
        let mut fired = 0;
        for p in self.clock.partitions() {
            let wms: Vec<Option<i64>> = (0..self.workflows.len())
                .map(|i| self.watermark(i, p, wall_ms))
                .collect();
            let Some(newest) = wms.iter().flatten().copied().max() else {
                continue;
            };
            // Every timer at or before the oldest watermark fires in this scan (None: some
            // workflow holds, so nothing is known fired for all).
            let oldest = wms.iter().copied().min().flatten();
            // Start after what is known fired: fired timers are deleted, and a scan from the
            // partition's start would step over every one of their tombstones, each tick.
            let prefix = keys::partition_prefix(p).to_vec();
            let mut from = prefix.clone();
            // Taken out while this partition's timers fire (so staging does not lower it
            // meanwhile), and put back below, lowered for what was staged behind it.
            let start_done = self.fired_to.remove(&p);
            if let Some(done) = start_done {
                from.extend_from_slice(&keys::due(done.saturating_add(1)));
            }
            let mut to = keys::partition_prefix(p).to_vec();
            to.extend_from_slice(&keys::due(newest.saturating_add(1)));
            let mut exhausted = false;
            while fired < limit {
                let room = limit - fired;
                let due_now = store.range(CF_TIMERS, &from, &to, room)?;
                exhausted = due_now.len() < room;
                let Some((last, _)) = due_now.last() else {
                    break;
                };
                // The next scan starts right after the last key seen.
                from = last.clone();
                from.push(0);
                for (k, _) in due_now {
                    let Some((_, due, wf_name, key, kind)) = keys::parse_timer(&k) else {
                        batch.timer_deletes.push(k);
                        continue;
                    };
                    let Some(&i) = self.by_name.get(&wf_name) else {
                        batch.timer_deletes.push(k);
                        continue;
                    };
                    let Some(wm) = wms[i].filter(|&wm| due <= wm) else {
                        continue;
                    };
                    batch.timer_deletes.push(k);
                    fired += 1;
                    let wf = &self.workflows[i];
                    let ik = keys::instance(p, &wf.name, &key);
                    let staged = batch.instances.contains_key(&ik);
                    let (inst, found) = load(&mut self.cache, &self.committing, store, batch, &ik)?;
                    found.count();
                    let existed = inst.is_some();
                    let t = wf.on_timer(inst, Timer { due_ms: due, kind }, wm);
                    // Most timers find their reason gone (the step arrived, the instance
                    // ended): nothing changes, and nothing is written or logged for it.
                    if t.changes_nothing(existed) && !staged {
                        if let Some(inst) = t.instance {
                            self.cache.put(ik, inst);
                        }
                        continue;
                    }
                    stage(&mut self.fired_to, batch, (p, ik), &wf.name, &key, t);
                }
                if exhausted {
                    break;
                }
            }
            let done = if exhausted { oldest } else { start_done };
            if let Some(done) = done {
                // A timer staged at or before `done` must be found by the next scan.
                let staged_first = batch
                    .timer_puts
                    .range(prefix.clone()..)
                    .next()
                    .filter(|(k, _)| k.starts_with(&prefix))
                    .and_then(|(k, _)| keys::parse_timer(k))
                    .map(|(_, due, ..)| due);
                let done = staged_first.map_or(done, |d| done.min(d.saturating_sub(1)));
                self.fired_to.insert(p, done);
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
            dimension_at: Default::default(),
        }
    }

    /// Pipelined commits: while a batch commits, the store does not have its instances yet, so
    /// the batch handled meanwhile must read them (and their deletions) from memory; once
    /// written they are the cached ones; a rewind drops them.
    #[test]
    fn a_committing_batchs_instances_are_read_before_the_store_has_them() {
        let dir = std::env::temp_dir().join(format!(
            "sightline-committing-{}-{}",
            std::process::id(),
            chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default()
        ));
        let store = Store::open_with(&dir, 8, 8, false).unwrap();
        let mut stored = inst("gone");
        stored.first_at = 1;
        store
            .write(&[Op::Put(
                CF_INSTANCES,
                b"gone".to_vec(),
                crate::state::instances::encode(&stored),
            )])
            .unwrap();
        let mut w = WorkflowRunner::new(
            Vec::new(),
            StreamClock::new(crate::config::TimeMode::Event, 0),
        )
        .with_cache(100);
        let mut batch = Batch::default();
        batch.instances.insert(b"new".to_vec(), Some(inst("new")));
        batch.instances.insert(b"gone".to_vec(), None);
        w.committing(batch);
        let found = |w: &mut WorkflowRunner, k: &[u8]| {
            load(&mut w.cache, &w.committing, &store, &Batch::default(), k).unwrap()
        };
        let read = |w: &mut WorkflowRunner, k: &[u8]| found(w, k).0;
        assert_eq!(read(&mut w, b"new").map(|i| i.key), Some("new".into()));
        assert_eq!(
            read(&mut w, b"new").map(|i| i.key),
            Some("new".into()),
            "a read that stages nothing finds it again"
        );
        assert_eq!(read(&mut w, b"gone"), None, "deleted, though still stored");
        assert_eq!(found(&mut w, b"gone").1, Found::Committing);
        w.written();
        assert_eq!(found(&mut w, b"new").1, Found::Cache);
        assert_eq!(found(&mut w, b"gone"), (Some(stored.clone()), Found::Store));
        assert_eq!(found(&mut w, b"never"), (None, Found::New));
        let mut staged = Batch::default();
        staged.instances.insert(b"new".to_vec(), Some(inst("new")));
        assert_eq!(
            load(&mut w.cache, &w.committing, &store, &staged, b"new").unwrap(),
            (Some(inst("new")), Found::Batch)
        );
        // A rewind while a batch commits: its instances are gone from memory.
        let mut batch = Batch::default();
        batch
            .instances
            .insert(b"other".to_vec(), Some(inst("other")));
        w.committing(batch);
        w.clear_cache();
        assert_eq!(read(&mut w, b"other"), None);
        assert_eq!(read(&mut w, b"gone").map(|i| i.first_at), Some(1));
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
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
}
