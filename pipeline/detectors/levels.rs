//! Conditions measured at every poll, announced when their level changes. The side monitors
//! (a watched group's lag status, a dead-letter threshold) report the level of each of their
//! conditions at every poll, whatever it was before; this is where a level becomes news. The
//! engine keeps the last announced level of each condition in changelogged state, on the one
//! member that owns the side monitors' outputs, so a condition gives one output per change for
//! the whole group: not one per member, and none again after a restart or a move.
//!
//! A condition first seen at its quiet level (lag `OK`, an alert `RESOLVED`) is not news, but it
//! is remembered: the change that follows names it as the level before.

use crate::detectors::lag::LagStatus;
use crate::outputs::{AlertStatus, Output};
use std::collections::BTreeMap;

/// The condition an output reports, and its level; None for outputs that are not conditions.
pub fn condition(out: &Output) -> Option<(String, &'static str)> {
    match out {
        Output::Lag(e) => Some((format!("lag/{}", e.group), e.status.as_str())),
        Output::Alert(a) => Some((
            format!("alert/{}", a.dedupe_id),
            match a.status {
                AlertStatus::Firing => "FIRING",
                AlertStatus::Resolved => "RESOLVED",
            },
        )),
        _ => None,
    }
}

fn quiet(level: &str) -> bool {
    level == LagStatus::Ok.as_str() || level == "RESOLVED"
}

/// Whether a condition at `level` is news, given the level last announced.
pub fn is_news(last: Option<&str>, level: &str) -> bool {
    match last {
        None => !quiet(level),
        Some(l) => l != level,
    }
}

/// Whether the level must be remembered: it differs from the one kept.
pub fn remember(last: Option<&str>, level: &str) -> bool {
    last != Some(level)
}

/// The output as announced after `last`: a lag event names the status announced before it.
pub fn after(out: Output, last: Option<&str>) -> Output {
    match out {
        Output::Lag(mut e) => {
            e.previous_status = last.and_then(LagStatus::parse);
            Output::Lag(e)
        }
        other => other,
    }
}

/// Announced levels kept in memory: the same rule, for one process and for tests.
#[derive(Default)]
pub struct Levels(BTreeMap<String, &'static str>);

impl Levels {
    /// The outputs that are news; the others are dropped.
    pub fn announce(&mut self, outputs: Vec<Output>) -> Vec<Output> {
        let mut news = Vec::new();
        for out in outputs {
            let Some((id, level)) = condition(&out) else {
                news.push(out);
                continue;
            };
            let last = self.0.get(&id).copied();
            if is_news(last, level) {
                news.push(after(out, last));
            }
            if remember(last, level) {
                self.0.insert(id, level);
            }
        }
        news
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_level_is_news_when_it_changes_and_quiet_levels_are_not_news_at_first() {
        assert!(!is_news(None, "OK"));
        assert!(!is_news(None, "RESOLVED"));
        assert!(is_news(None, "STALL"));
        assert!(is_news(None, "FIRING"));
        assert!(!is_news(Some("STALL"), "STALL"));
        assert!(is_news(Some("STALL"), "OK"));
        assert!(is_news(Some("FIRING"), "RESOLVED"));
    }
}
