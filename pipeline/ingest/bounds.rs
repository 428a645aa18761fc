//! Event times a record may carry. One absurd time (i64::MAX, year 9999, year 0) once moved a
//! partition's clock for good (a clock never goes back, and it is restored after a restart), so
//! every open and later instance was reported missing and expired. An event time is checked
//! against the record's own Kafka timestamp (the wall clock when the record has none, or when
//! its timestamp is itself in the future): at most `max_skew_ms` after it, at most `max_age_ms`
//! before it. Outside that it is bad input (`event_time_out_of_range`), dead-lettered with both
//! times, and moves no clock.

/// The accepted window around a record's reference time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeBounds {
    pub max_skew_ms: i64,
    pub max_age_ms: i64,
}

fn iso(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_else(|| format!("{ms} ms since 1970 (not a date)"))
}

impl TimeBounds {
    /// Whether `event_ms` is acceptable for a record with Kafka timestamp `record_ms`, read at
    /// wall time `wall_ms`; the reason when it is not.
    pub fn check(&self, event_ms: i64, record_ms: Option<i64>, wall_ms: i64) -> Result<(), String> {
        let (reference, what) = match record_ms {
            Some(r) if r > 0 && r <= wall_ms.saturating_add(self.max_skew_ms) => {
                (r, "the record's Kafka timestamp")
            }
            _ => (wall_ms, "the wall clock"),
        };
        let latest = reference.saturating_add(self.max_skew_ms);
        let earliest = reference.saturating_sub(self.max_age_ms);
        if event_ms > latest {
            return Err(format!(
                "event time {} is {} ms after {what} {}, more than engine.max_event_time_skew_ms ({} ms) allows; \
                 fix the producer's clock or the source's event_time mapping (or raise the bound), then replay",
                iso(event_ms),
                event_ms.saturating_sub(reference),
                iso(reference),
                self.max_skew_ms
            ));
        }
        if event_ms < earliest {
            return Err(format!(
                "event time {} is {} ms before {what} {}, more than engine.max_event_age_ms ({} ms) allows; \
                 fix the source's event_time mapping (or raise the bound), then replay",
                iso(event_ms),
                reference.saturating_sub(event_ms),
                iso(reference),
                self.max_age_ms
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400_000;
    /// 2026-12-01T00:00:00Z.
    const NOW: i64 = 1_796_083_200_000;

    #[test]
    fn absurd_times_are_out_of_range_at_every_edge() {
        let b = TimeBounds {
            max_skew_ms: DAY,
            max_age_ms: 31 * DAY,
        };
        let year = |y: i32| {
            chrono::NaiveDate::from_ymd_opt(y, 1, 1)
                .unwrap()
                .and_hms_opt(0, 0, 0)
                .unwrap()
                .and_utc()
                .timestamp_millis()
        };
        for bad in [i64::MAX, i64::MIN, year(0), 0, -1, year(1969), year(9999)] {
            let e = b.check(bad, Some(NOW), NOW).unwrap_err();
            assert!(e.contains("engine.max_event_"), "{bad}: {e}");
        }
        assert!(b.check(NOW - 30 * DAY, Some(NOW), NOW).is_ok());
        assert!(b.check(NOW + DAY, Some(NOW), NOW).is_ok());
        assert!(b.check(NOW + DAY + 1, Some(NOW), NOW).is_err());
        // History: checked against its own (old) record time, not today.
        let old = NOW - 400 * DAY;
        assert!(b.check(old - DAY, Some(old), NOW).is_ok());
        // A record timestamp in the future is not a reference: the wall clock is.
        let e = b.check(year(9999), Some(year(9999)), NOW).unwrap_err();
        assert!(e.contains("the wall clock"), "{e}");
        let e = b.check(i64::MAX, None, NOW).unwrap_err();
        assert!(e.contains("not a date"), "{e}");
    }
}
