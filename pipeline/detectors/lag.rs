//! Consumer-lag status, evaluated over a sliding window without fixed thresholds, in the
//! manner of Burrow's evaluator. Pure: the lag poller (a later stage of the engine) feeds it
//! samples of (wall time, committed offset, high watermark) per partition.
//!
//! Per partition, over the window of samples, the first rule that holds decides:
//!
//! | status | rule |
//! |---|---|
//! | `REWIND` | the committed offset went backwards (a reset, a replay) |
//! | `OK` | the lag was zero at some sample (the consumer caught up) |
//! | `STOP` | the last commit is older than the whole window is long (the consumer stopped committing) while there is lag |
//! | `STALL` | the committed offset did not move across the window while there is lag (committing, not progressing) |
//! | `ERR` | the lag grew at every sample and at least doubled across the window (falling further behind faster than it consumes) |
//! | `WARN` | the lag grew at every sample |
//! | `OK` | otherwise (offsets move, lag not consistently growing) |
//!
//! A group's status is its worst partition's, in the order OK < REWIND < WARN < ERR < STALL <
//! STOP. Fewer samples than the window holds: OK (not enough evidence).

use std::collections::{BTreeMap, VecDeque};

/// The lag contract's types (outputs/lag.rs), which this detector computes.
pub use crate::outputs::lag::{LagStatus, TimeLagMethod};

/// One observation of a partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    /// When the sample was taken (wall ms).
    pub at_ms: i64,
    /// The group's committed offset.
    pub committed: i64,
    /// The partition's high watermark.
    pub high: i64,
    /// When the committed offset last changed (wall ms), as far as the poller knows.
    pub committed_at_ms: i64,
}

impl Sample {
    pub fn lag(&self) -> i64 {
        (self.high - self.committed).max(0)
    }
}

/// The status of one partition from its window of samples, oldest first, evaluated at `now_ms`.
pub fn partition_status(window: &[Sample], size: usize, now_ms: i64) -> LagStatus {
    if window.windows(2).any(|w| w[1].committed < w[0].committed) {
        return LagStatus::Rewind;
    }
    if window.len() < size.max(2) {
        return LagStatus::Ok;
    }
    if window.iter().any(|s| s.lag() == 0) {
        return LagStatus::Ok;
    }
    let (first, last) = (window[0], window[window.len() - 1]);
    let span = last.at_ms - first.at_ms;
    if now_ms - last.committed_at_ms > span {
        return LagStatus::Stop;
    }
    if first.committed == last.committed {
        return LagStatus::Stall;
    }
    let growing = window.windows(2).all(|w| w[1].lag() > w[0].lag());
    if growing && last.lag() >= 2 * first.lag() {
        return LagStatus::Err;
    }
    if growing {
        return LagStatus::Warn;
    }
    LagStatus::Ok
}

/// Sliding windows per partition of one group.
#[derive(Debug, Default, Clone)]
pub struct GroupWindows {
    pub size: usize,
    partitions: BTreeMap<(String, i32), VecDeque<Sample>>,
}

impl GroupWindows {
    pub fn new(size: usize) -> Self {
        GroupWindows {
            size,
            partitions: BTreeMap::new(),
        }
    }

    /// Adds a sample (the commit time carried over when the offset did not change).
    pub fn observe(&mut self, topic: &str, partition: i32, at_ms: i64, committed: i64, high: i64) {
        let w = self
            .partitions
            .entry((topic.to_string(), partition))
            .or_default();
        let committed_at_ms = match w.back() {
            Some(prev) if prev.committed == committed => prev.committed_at_ms,
            _ => at_ms,
        };
        w.push_back(Sample {
            at_ms,
            committed,
            high,
            committed_at_ms,
        });
        while w.len() > self.size {
            w.pop_front();
        }
    }

    /// Per-partition statuses and the group's (its worst).
    pub fn status(&self, now_ms: i64) -> (LagStatus, BTreeMap<(String, i32), LagStatus>) {
        let per: BTreeMap<(String, i32), LagStatus> = self
            .partitions
            .iter()
            .map(|(k, w)| {
                let samples: Vec<Sample> = w.iter().copied().collect();
                (k.clone(), partition_status(&samples, self.size, now_ms))
            })
            .collect();
        let group = per.values().copied().max().unwrap_or(LagStatus::Ok);
        (group, per)
    }
}

/// When the record at `offset` was written, interpolated from `(wall ms, high watermark)`
/// samples (oldest first): it was written between the last sample whose high watermark had not
/// reached past it and the next one, at the point a steady rate between the two would put it.
/// `None` when the history does not reach back to it.
pub fn interpolate_written_at(history: &[(i64, i64)], offset: i64) -> Option<i64> {
    let i = history.iter().position(|&(_, high)| high > offset)?;
    if i == 0 {
        return None;
    }
    let (t0, h0) = history[i - 1];
    let (t1, h1) = history[i];
    let frac = (offset + 1 - h0) as f64 / (h1 - h0) as f64;
    Some(t0 + ((t1 - t0) as f64 * frac).round() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A window of `n` samples one second apart; committed and high given per step.
    fn feed(g: &mut GroupWindows, steps: &[(i64, i64)]) -> i64 {
        let mut t = 0;
        for (i, (c, h)) in steps.iter().enumerate() {
            t = i as i64 * 1_000;
            g.observe("t", 0, t, *c, *h);
        }
        t
    }

    #[test]
    fn burrow_rules_decide_in_order() {
        let status = |steps: &[(i64, i64)], now_after: i64| {
            let mut g = GroupWindows::new(5);
            let t = feed(&mut g, steps);
            g.status(t + now_after).0
        };
        // Caught up once: OK, even with lag now.
        assert_eq!(
            status(&[(10, 10), (10, 20), (15, 30), (20, 40), (25, 50)], 0),
            LagStatus::Ok
        );
        // Moving, lag steady: OK.
        assert_eq!(
            status(&[(0, 10), (10, 20), (20, 30), (30, 40), (40, 50)], 0),
            LagStatus::Ok
        );
        // Moving, lag growing slowly: WARN; growing to double: ERR.
        assert_eq!(
            status(&[(0, 10), (10, 21), (20, 32), (30, 43), (40, 54)], 0),
            LagStatus::Warn
        );
        assert_eq!(
            status(&[(0, 10), (5, 20), (10, 30), (15, 40), (20, 50)], 0),
            LagStatus::Err
        );
        // Committing the same offset with lag: STALL.
        assert_eq!(
            status(&[(5, 10), (5, 20), (5, 30), (5, 40), (5, 50)], 0),
            LagStatus::Stall
        );
        // ... and once the last commit is older than the window is long: STOP.
        assert_eq!(
            status(&[(5, 10), (5, 20), (5, 30), (5, 40), (5, 50)], 1),
            LagStatus::Stop
        );
        // Offsets went backwards: REWIND (even with too few samples).
        assert_eq!(status(&[(100, 200), (0, 200)], 0), LagStatus::Rewind);
        // Too few samples: OK.
        assert_eq!(status(&[(0, 100), (0, 200)], 0), LagStatus::Ok);
    }

    #[test]
    fn the_group_takes_its_worst_partition_and_the_window_slides() {
        let mut g = GroupWindows::new(3);
        for i in 0..3 {
            g.observe("a", 0, i * 1_000, 10 * i, 10 * i); // caught up
            g.observe("a", 1, i * 1_000, 5, 10 + 10 * i); // stalled
        }
        let (group, per) = g.status(2_000);
        assert_eq!(group, LagStatus::Stall);
        assert_eq!(per[&("a".to_string(), 0)], LagStatus::Ok);
        // Partition 1 resumes and catches up: the window forgets the stall.
        for i in 3..6 {
            g.observe("a", 0, i * 1_000, 10 * i, 10 * i);
            g.observe("a", 1, i * 1_000, 10 * i + 10, 10 * i + 10);
        }
        assert_eq!(g.status(5_000).0, LagStatus::Ok);
    }

    #[test]
    fn interpolation_places_a_record_between_the_samples_that_bracket_it() {
        // 100 records written steadily between t=10s and t=20s (offsets 100..199).
        let h = [(0, 100), (10_000, 100), (20_000, 200), (30_000, 200)];
        assert_eq!(interpolate_written_at(&h, 149), Some(15_000));
        assert_eq!(interpolate_written_at(&h, 199), Some(20_000));
        // Written before the history began, or not written yet: unknown.
        assert_eq!(interpolate_written_at(&h, 50), None);
        assert_eq!(interpolate_written_at(&h, 200), None);
    }
}
