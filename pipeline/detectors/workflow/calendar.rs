//! Business calendars: is an instant, seen in the workflow's time zone, on one of the
//! calendar's weekdays or dates? Evaluated on local dates, so a DST change moves nothing.

pub use crate::topology::workflow::weekday;
use crate::topology::workflow::CalendarSpec;
use chrono::{Datelike, NaiveDate, TimeZone, Weekday};
use chrono_tz::Tz;

#[derive(Debug, Clone, Default)]
pub struct Calendar {
    pub days: Vec<Weekday>,
    pub dates: Vec<NaiveDate>,
}

impl Calendar {
    /// The calendar `spec` declares, with unparseable days and dates left out (validation
    /// reports them).
    pub fn of(spec: &CalendarSpec) -> Calendar {
        Calendar {
            days: spec.days.iter().filter_map(|d| weekday(d)).collect(),
            dates: spec
                .dates
                .iter()
                .filter_map(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
                .collect(),
        }
    }

    /// Does epoch-ms `t`, in zone `tz`, fall on this calendar?
    pub fn contains(&self, tz: Tz, t_ms: i64) -> bool {
        let Some(local) = tz.timestamp_millis_opt(t_ms).single() else {
            return false;
        };
        let date = local.date_naive();
        self.days.contains(&date.weekday()) || self.dates.contains(&date)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(s: &str) -> i64 {
        chrono::DateTime::parse_from_rfc3339(s)
            .unwrap()
            .timestamp_millis()
    }

    #[test]
    fn local_dates_decide_across_dst_changes() {
        let tz: Tz = "Europe/Amsterdam".parse().unwrap();
        let weekend = Calendar {
            days: vec![Weekday::Sat, Weekday::Sun],
            dates: vec![],
        };
        // Friday 23:30 UTC in winter is Saturday 00:30 in Amsterdam (UTC+1).
        assert!(weekend.contains(tz, ms("2026-01-09T23:30:00Z")));
        assert!(!weekend.contains(Tz::UTC, ms("2026-01-09T23:30:00Z")));
        // Sunday 29 March 2026: clocks go forward at 01:00 UTC. 22:30 UTC is Monday 00:30 local
        // (UTC+2 by then), not Sunday.
        assert!(weekend.contains(tz, ms("2026-03-29T21:30:00Z")));
        assert!(!weekend.contains(tz, ms("2026-03-29T22:30:00Z")));
        // Sunday 25 October 2026: clocks go back. 22:30 UTC is 23:30 local (UTC+1): still Sunday.
        assert!(weekend.contains(tz, ms("2026-10-25T22:30:00Z")));
        let holiday = Calendar {
            days: vec![],
            dates: vec![NaiveDate::from_ymd_opt(2026, 12, 25).unwrap()],
        };
        assert!(holiday.contains(tz, ms("2026-12-24T23:30:00Z")));
        assert!(!holiday.contains(Tz::UTC, ms("2026-12-24T23:30:00Z")));
    }
}
