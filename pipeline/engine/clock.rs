//! The stream clock, per input partition number: when may a deadline fire?
//!
//! Each input topic-partition has a clock: the newest event time seen on it, plus the wall time
//! that has passed since it arrived. Replaying history moves it as fast as the events do; when
//! traffic stops it keeps moving with the wall clock, so deadlines still fire on an idle
//! partition. It never goes back.
//!
//! Instances are owned by partition *number* (topics are co-partitioned by the correlation
//! key), and their events come from several topics. The watermark of partition `p` is the
//! *slowest* of the clocks of `p` across topics, minus the allowed lateness: a topic that is
//! read behind the others (a replay, a slow fetch) holds deadlines back instead of making its
//! on-time events look late. A topic-partition that has never delivered a record has no clock:
//! holds the others back while the broker says it has records to read (its first fetch may be
//! queued behind another partition's backlog, for as long as that backlog takes), for
//! `idle_ms` after it was assigned when that is not known, and not at all once the broker says
//! it has nothing to read. Wall-clock mode: the watermark is the wall clock.

use crate::config::TimeMode;
use std::collections::HashMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionClock {
    /// Projected event time at `wall_at`.
    pub base: i64,
    pub wall_at: i64,
}

/// What one input of a clock says about time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputState {
    /// It has a clock: the event time it last moved to.
    Clock(i64),
    /// It has nothing to read (or waited longer than the idle timeout): it holds nothing back.
    Idle,
    /// It has not delivered yet and may still: it holds its partition number back.
    Holding,
}

#[derive(Debug, Clone)]
pub struct StreamClock {
    pub mode: TimeMode,
    pub lateness_ms: i64,
    parts: HashMap<(String, i32), PartitionClock>,
    /// Assigned topic-partitions that have not delivered yet, with the wall time of assignment.
    waiting: HashMap<(String, i32), i64>,
    /// Waiting topic-partitions the broker says have records to read: they hold back until
    /// they deliver, however long that takes.
    backlogged: std::collections::HashSet<(String, i32)>,
    pub idle_ms: i64,
    /// The last non-empty assignment; None until the group has assigned anything.
    assignment: Option<Vec<(String, i32)>>,
    /// Inputs that delivered, then had nothing more to read (read to their end): once silent
    /// on the wall clock for `idle_ms`, they hold nothing back (Kafka Streams'
    /// `max.task.idle.ms`), so one silent topic does not freeze every deadline.
    drained: std::collections::HashSet<(String, i32)>,
    /// End of input (`run --until-end`): every watermark is at least this.
    finished_at: Option<i64>,
}

impl StreamClock {
    pub fn new(mode: TimeMode, lateness_ms: i64) -> Self {
        StreamClock {
            mode,
            lateness_ms,
            parts: HashMap::new(),
            waiting: HashMap::new(),
            idle_ms: 30_000,
            backlogged: Default::default(),
            assignment: None,
            drained: Default::default(),
            finished_at: None,
        }
    }

    /// The consumer's current assignment at wall time `wall_ms`: newly assigned topic-partitions
    /// without a clock start waiting; ones no longer assigned are forgotten. An empty
    /// assignment (not joined yet) changes nothing, so clocks restored at start survive until
    /// the group has answered.
    pub fn assigned(&mut self, assignment: &[(String, i32)], wall_ms: i64) {
        if assignment.is_empty() {
            return;
        }
        self.waiting.retain(|k, _| assignment.contains(k));
        let waiting = &self.waiting;
        self.backlogged.retain(|k| waiting.contains_key(k));
        for k in assignment {
            if !self.parts.contains_key(k) {
                self.waiting.entry(k.clone()).or_insert(wall_ms);
            }
        }
        self.parts.retain(|k, _| assignment.contains(k));
        let parts = &self.parts;
        self.drained.retain(|k| parts.contains_key(k));
        self.assignment = Some(assignment.to_vec());
    }

    /// Assigned topic-partitions that have not delivered a record yet.
    pub fn waiting(&self) -> Vec<(String, i32)> {
        let mut w: Vec<_> = self.waiting.keys().cloned().collect();
        w.sort();
        w
    }

    /// A waiting topic-partition has nothing to read (empty, or read to its end): it is idle
    /// and holds nothing back.
    pub fn idle(&mut self, topic: &str, partition: i32) {
        let k = (topic.to_string(), partition);
        self.waiting.remove(&k);
        self.backlogged.remove(&k);
    }

    /// A waiting topic-partition has records to read: it holds its partition number back until
    /// it delivers.
    pub fn backlogged(&mut self, topic: &str, partition: i32) {
        let k = (topic.to_string(), partition);
        if self.waiting.contains_key(&k) {
            self.backlogged.insert(k);
        }
    }

    /// Forgets every topic-partition's clock (before restoring them from the state store).
    pub fn forget(&mut self) {
        self.parts.clear();
        self.drained.clear();
    }

    /// Inputs with a clock that have delivered nothing for `after_ms` on the wall clock and are
    /// not known to be drained: whether they have anything left to read is worth asking.
    pub fn silent(&self, wall_ms: i64, after_ms: i64) -> Vec<(String, i32)> {
        let mut v: Vec<_> = self
            .parts
            .iter()
            .filter(|(k, c)| wall_ms - c.wall_at >= after_ms && !self.drained.contains(*k))
            .map(|(k, _)| k.clone())
            .collect();
        v.sort();
        v
    }

    /// Input `topic`/`partition` has nothing left to read: a waiting one is idle at once; one
    /// with a clock holds nothing back once silent for `idle_ms`, until it delivers again.
    pub fn drained(&mut self, topic: &str, partition: i32) {
        let k = (topic.to_string(), partition);
        if self.parts.contains_key(&k) {
            self.drained.insert(k);
        } else {
            self.idle(topic, partition);
        }
    }

    /// The input has ended (`run --until-end` read every input to the end offsets it saw at
    /// start): every watermark moves to the newest event time seen, minus the allowed
    /// lateness, so deadlines after the last record of the slowest input fire too. Returns
    /// that watermark (None: no event seen).
    pub fn finish(&mut self) -> Option<i64> {
        let newest = self.parts.values().map(|c| c.base).max()?;
        let at = newest.saturating_sub(self.lateness_ms);
        self.finished_at = Some(at);
        Some(at)
    }

    /// Inputs accepted by `reads` (topics, not upstream partitions of a repartition topic)
    /// whose clock runs more than `bound_ms` ahead of the slowest input accepted by `reads` of
    /// their partition number that still has records to read (not drained): reading them can
    /// wait while the others catch up. The slowest input is never among them, so pausing these
    /// never stops the clock. A drained input stops counting here at once, not after `idle_ms`
    /// as for the watermark: there is nothing of it left to catch up with, and pausing decides
    /// only what is read first, never when a deadline fires.
    pub fn ahead(
        &self,
        bound_ms: i64,
        wall_ms: i64,
        reads: &dyn Fn(&str) -> bool,
    ) -> Vec<(String, i32)> {
        if self.mode == TimeMode::Wall || bound_ms <= 0 {
            return Vec::new();
        }
        let project = |c: &PartitionClock| c.base.saturating_add((wall_ms - c.wall_at).max(0));
        let mut slowest: HashMap<i32, i64> = HashMap::new();
        for (k, c) in self.parts.iter().filter(|(k, _)| reads(&k.0)) {
            if !self.drained.contains(k) {
                let s = slowest.entry(k.1).or_insert(i64::MAX);
                *s = (*s).min(project(c));
            }
        }
        let mut out: Vec<(String, i32)> = self
            .parts
            .iter()
            .filter(|((t, p), c)| {
                reads(t)
                    && !t.contains('@')
                    && slowest
                        .get(p)
                        .is_some_and(|s| project(c) > s.saturating_add(bound_ms))
            })
            .map(|(k, _)| k.clone())
            .collect();
        out.sort();
        out
    }

    /// Every input with a clock.
    pub fn inputs(&self) -> impl Iterator<Item = &(String, i32)> {
        self.parts.keys()
    }

    /// The watermark `finish` moved every partition to.
    pub fn finished_at(&self) -> Option<i64> {
        self.finished_at
    }

    fn excluded(&self, k: &(String, i32), c: &PartitionClock, wall_ms: i64) -> bool {
        wall_ms - c.wall_at >= self.idle_ms && self.drained.contains(k)
    }

    /// Restores a topic-partition's clock (from the state store).
    pub fn restore(&mut self, topic: &str, partition: i32, c: PartitionClock) {
        self.parts.insert((topic.to_string(), partition), c);
    }

    /// An event with time `event_ms` arrived on `topic`/`partition` at wall time `wall_ms`.
    pub fn observe(
        &mut self,
        topic: &str,
        partition: i32,
        event_ms: i64,
        wall_ms: i64,
    ) -> PartitionClock {
        let key = (topic.to_string(), partition);
        if self.waiting.remove(&key).is_some() {
            self.backlogged.remove(&key);
        }
        self.drained.remove(&key);
        let c = self.parts.entry(key).or_insert(PartitionClock {
            base: event_ms,
            wall_at: wall_ms,
        });
        let projected = c.base + (wall_ms - c.wall_at).max(0);
        *c = PartitionClock {
            base: projected.max(event_ms),
            wall_at: wall_ms.max(c.wall_at),
        };
        *c
    }

    /// What input `topic`/`partition` says at wall time `wall_ms` (the clock of a source
    /// partition, as a repartition marker carries it): a clock is its last event-driven value
    /// (`base`), which its reader projects on with the wall clock as this clock does.
    pub fn input_state(&self, topic: &str, partition: i32, wall_ms: i64) -> InputState {
        let k = (topic.to_string(), partition);
        if let Some(c) = self.parts.get(&k) {
            if self.excluded(&k, c, wall_ms) {
                return InputState::Idle;
            }
            return InputState::Clock(c.base);
        }
        match self.waiting.get(&k) {
            Some(at) if wall_ms - at < self.idle_ms || self.backlogged.contains(&k) => {
                InputState::Holding
            }
            _ => InputState::Idle,
        }
    }

    /// The watermark of `partition` at wall time `wall_ms` over every input (None: nothing
    /// seen yet).
    pub fn watermark(&self, partition: i32, wall_ms: i64) -> Option<i64> {
        self.watermark_of(partition, wall_ms, &|_| true)
    }

    /// The watermark of `partition` at wall time `wall_ms` over the inputs `reads` accepts (a
    /// workflow's own topics): the slowest of their clocks, minus the allowed lateness. None
    /// while one of them holds (has not delivered and may still) or none has a clock. Inputs
    /// drained and silent for `idle_ms` are left out, unless all are.
    pub fn watermark_of(
        &self,
        partition: i32,
        wall_ms: i64,
        reads: &dyn Fn(&str) -> bool,
    ) -> Option<i64> {
        let live = self.live_watermark(partition, wall_ms, reads);
        match (self.mode, self.finished_at) {
            (TimeMode::Event, Some(f)) => Some(live.map_or(f, |l| l.max(f))),
            _ => live,
        }
    }

    fn live_watermark(
        &self,
        partition: i32,
        wall_ms: i64,
        reads: &dyn Fn(&str) -> bool,
    ) -> Option<i64> {
        match self.mode {
            TimeMode::Wall => Some(wall_ms),
            TimeMode::Event
                if self.waiting.iter().any(|(k, at)| {
                    k.1 == partition
                        && reads(&k.0)
                        && (wall_ms - at < self.idle_ms || self.backlogged.contains(k))
                }) =>
            {
                None
            }
            TimeMode::Event => {
                let project =
                    |c: &PartitionClock| c.base.saturating_add((wall_ms - c.wall_at).max(0));
                let mine = || {
                    self.parts
                        .iter()
                        .filter(move |((t, p), _)| *p == partition && reads(t))
                };
                let active = mine()
                    .filter(|(k, c)| !self.excluded(k, c, wall_ms))
                    .map(|(_, c)| project(c))
                    .min();
                active
                    .or_else(|| mine().map(|(_, c)| project(c)).min())
                    .map(|t| t.saturating_sub(self.lateness_ms))
            }
        }
    }

    /// Partition numbers whose timers may fire: assigned ones with a clock (none before the
    /// first assignment: until then this instance does not know what it owns).
    pub fn partitions(&self) -> Vec<i32> {
        let Some(assignment) = &self.assignment else {
            return Vec::new();
        };
        let mut p: Vec<i32> = self
            .parts
            .keys()
            .filter(|k| assignment.contains(k))
            .map(|(_, p)| *p)
            .collect();
        p.sort_unstable();
        p.dedup();
        p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follows_events_then_the_wall_clock_and_never_goes_back() {
        let mut c = StreamClock::new(TimeMode::Event, 1_000);
        assert_eq!(c.watermark(0, 0), None);
        c.observe("a", 0, 10_000, 500);
        assert_eq!(c.watermark(0, 500), Some(9_000));
        // Idle: the wall clock moves it.
        assert_eq!(c.watermark(0, 5_500), Some(14_000));
        // A straggler does not move it back.
        c.observe("a", 0, 2_000, 6_000);
        assert_eq!(c.watermark(0, 6_000), Some(14_500));
        // Replayed history ahead of the projection moves it forward at once.
        c.observe("a", 0, 100_000, 6_001);
        assert_eq!(c.watermark(0, 6_001), Some(99_000));
        assert_eq!(c.watermark(1, 6_001), None);
        // A second topic read behind holds partition 0 back; partition 1 is its own.
        c.observe("b", 0, 50_000, 6_001);
        c.observe("b", 1, 70_000, 6_001);
        assert_eq!(c.watermark(0, 6_001), Some(49_000));
        assert_eq!(c.watermark(1, 6_001), Some(69_000));
        assert_eq!(
            c.partitions(),
            Vec::<i32>::new(),
            "nothing fires before an assignment"
        );
        c.assigned(&[("a".into(), 0), ("b".into(), 0), ("b".into(), 1)], 6_001);
        assert_eq!(c.partitions(), vec![0, 1]);
        assert_eq!(
            StreamClock::new(TimeMode::Wall, 1_000).watermark(3, 42),
            Some(42)
        );
    }

    #[test]
    fn a_partition_with_records_to_read_holds_back_until_it_delivers() {
        let mut c = StreamClock::new(TimeMode::Event, 0);
        c.idle_ms = 1_000;
        c.assigned(&[("a".into(), 0), ("b".into(), 0)], 0);
        c.observe("a", 0, 50_000, 10);
        // The broker says b has a backlog (its first fetch is queued behind a's): it holds the
        // partition back long past idle_ms.
        c.backlogged("b", 0);
        assert_eq!(c.watermark(0, 60_000), None);
        c.observe("b", 0, 40_000, 60_000);
        assert_eq!(c.watermark(0, 60_000), Some(40_000));
    }

    #[test]
    fn an_assigned_partition_that_has_not_delivered_holds_back_until_idle() {
        let mut c = StreamClock::new(TimeMode::Event, 0);
        c.idle_ms = 1_000;
        c.assigned(&[("a".into(), 0), ("b".into(), 0)], 0);
        c.observe("a", 0, 50_000, 10);
        assert_eq!(c.watermark(0, 500), None, "b has not delivered yet");
        c.observe("b", 0, 40_000, 600);
        assert_eq!(c.watermark(0, 600), Some(40_000));
        // Assigned later and silent: waits idle_ms, then holds nothing back.
        c.assigned(&[("a".into(), 0), ("b".into(), 0), ("c".into(), 0)], 700);
        assert_eq!(c.watermark(0, 1_000), None);
        assert_eq!(c.watermark(0, 1_700), Some(41_100));
        // Known to have nothing to read: idle at once.
        c.assigned(
            &[
                ("a".into(), 0),
                ("b".into(), 0),
                ("c".into(), 0),
                ("d".into(), 0),
            ],
            1_800,
        );
        assert_eq!(c.watermark(0, 1_800), None);
        assert_eq!(
            c.waiting(),
            vec![("c".to_string(), 0), ("d".to_string(), 0)]
        );
        c.idle("d", 0);
        assert_eq!(c.watermark(0, 1_800), Some(41_200));
        // An empty assignment (rejoining) changes nothing; a smaller one forgets the rest.
        c.assigned(&[], 1_900);
        assert_eq!(c.partitions(), vec![0]);
        c.assigned(&[("a".into(), 0)], 2_000);
        assert_eq!(c.partitions(), vec![0]);
    }

    #[test]
    fn a_repartition_partition_follows_the_slowest_upstream_partition_and_holds_for_unheard_ones() {
        let mut c = StreamClock::new(TimeMode::Event, 0);
        c.idle_ms = 1_000;
        let up = |sp: i32| crate::engine::repartition::upstream_input("g.repartition.pay", sp);
        c.assigned(&[(up(0), 0), (up(1), 0), (up(2), 0)], 0);
        // Upstream 0 is read far ahead; 1 and 2 have not been heard from: the clock holds.
        c.observe(&up(0), 0, 900_000, 10);
        assert_eq!(c.watermark(0, 10), None);
        c.observe(&up(1), 0, 100_000, 20);
        assert_eq!(c.watermark(0, 20), None, "upstream 2 still holds");
        // Upstream 2 says it has nothing to read: the slowest of the others rules.
        c.drained(&up(2), 0);
        assert_eq!(c.watermark(0, 20), Some(100_000));
        c.observe(&up(1), 0, 500_000, 30);
        assert_eq!(c.watermark(0, 30), Some(500_000));
    }

    #[test]
    fn a_drained_silent_input_stops_holding_and_a_workflow_reads_only_its_own_inputs() {
        let mut c = StreamClock::new(TimeMode::Event, 0);
        c.idle_ms = 1_000;
        c.assigned(&[("orders".into(), 0), ("store".into(), 0)], 0);
        c.observe("orders", 0, 1_000_000, 0);
        c.observe("store", 0, 10_000, 0);
        assert_eq!(
            c.watermark(0, 0),
            Some(10_000),
            "the silent store feed holds everything"
        );
        assert_eq!(
            c.watermark_of(0, 0, &|t| t == "orders"),
            Some(1_000_000),
            "a workflow that does not read the store feed is not held by it"
        );
        // Silent for the idle time but with records to read: still holds.
        assert_eq!(c.silent(999, c.idle_ms), Vec::<(String, i32)>::new());
        assert_eq!(
            c.silent(1_000, c.idle_ms),
            vec![("orders".to_string(), 0), ("store".to_string(), 0)]
        );
        assert_eq!(c.watermark(0, 1_000), Some(11_000));
        // Read to its end: it stops holding.
        c.drained("store", 0);
        assert_eq!(c.watermark(0, 1_000), Some(1_001_000));
        assert_eq!(c.input_state("store", 0, 1_000), InputState::Idle);
        // It delivers again: it counts again.
        c.observe("store", 0, 20_000, 1_100);
        assert_eq!(c.watermark(0, 1_100), Some(20_000));
        // Every input drained: the slowest projection, as before.
        c.drained("store", 0);
        c.drained("orders", 0);
        assert_eq!(c.watermark(0, 2_100), Some(21_000));
    }

    #[test]
    fn at_the_end_of_input_every_watermark_moves_to_the_newest_event_time_seen() {
        let mut c = StreamClock::new(TimeMode::Event, 500);
        c.assigned(&[("a".into(), 0), ("b".into(), 1), ("c".into(), 1)], 0);
        c.observe("a", 0, 10_000, 0);
        c.observe("b", 1, 90_000, 0);
        assert_eq!(c.watermark(1, 0), None, "c holds partition 1");
        assert_eq!(c.finish(), Some(89_500));
        assert_eq!(c.watermark(0, 0), Some(89_500));
        assert_eq!(c.watermark(1, 0), Some(89_500));
        assert_eq!(c.finished_at(), Some(89_500));
    }

    #[test]
    fn inputs_far_ahead_of_the_slowest_one_wait_and_the_slowest_never_does() {
        let mut c = StreamClock::new(TimeMode::Event, 0);
        c.assigned(
            &[
                ("orders".into(), 0),
                ("payments".into(), 0),
                ("picks".into(), 0),
            ],
            0,
        );
        c.observe("orders", 0, 10 * 3_600_000, 0);
        c.observe("payments", 0, 3_600_000, 0);
        c.observe("picks", 0, 50 * 3_600_000, 0);
        let workflow = |t: &str| t != "picks";
        assert_eq!(
            c.ahead(900_000, 0, &workflow),
            vec![("orders".to_string(), 0)],
            "orders run 9 h ahead of payments; picks are no input of the workflow"
        );
        assert_eq!(
            c.ahead(10 * 3_600_000, 0, &workflow),
            Vec::<(String, i32)>::new()
        );
        assert_eq!(
            c.ahead(0, 0, &workflow),
            Vec::<(String, i32)>::new(),
            "0: never"
        );
        // Payments read to their end: nothing of them is left to catch up with, so orders
        // read on at once (the watermark still waits `idle_ms` for them).
        c.drained("payments", 0);
        assert_eq!(c.ahead(900_000, 1, &workflow), Vec::<(String, i32)>::new());
        assert_eq!(c.watermark_of(0, 1, &workflow), Some(3_600_001));
    }
}
