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

    /// The watermark of `partition` at wall time `wall_ms` (None: nothing seen yet).
    pub fn watermark(&self, partition: i32, wall_ms: i64) -> Option<i64> {
        match self.mode {
            TimeMode::Wall => Some(wall_ms),
            TimeMode::Event
                if self.waiting.iter().any(|(k, at)| {
                    k.1 == partition && (wall_ms - at < self.idle_ms || self.backlogged.contains(k))
                }) =>
            {
                None
            }
            TimeMode::Event => self
                .parts
                .iter()
                .filter(|((_, p), _)| *p == partition)
                .map(|(_, c)| c.base + (wall_ms - c.wall_at).max(0))
                .min()
                .map(|t| t - self.lateness_ms),
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
}
