//! Dead-letter topics as a monitored signal: depth (records not yet replayed), the age of the
//! oldest of them, and the rate of new ones, against the thresholds of the topology's
//! `monitors.dead_letters`. Each measurement gives every configured check's alert at its level
//! now: FIRING over the threshold, RESOLVED under it; [`crate::detectors::levels`] makes the
//! changes news (fires when a threshold is crossed, resolves when the measure is back under it).
//! Pure: the poller (engine/deadletters.rs) passes measurements.

use crate::outputs::alert::StreamAlert;
use crate::outputs::{AlertStatus, Output};
use crate::topology::monitor::DeadLetterSpec;
use std::collections::BTreeMap;

/// One dead-letter topic, measured.
#[derive(Debug, Clone, PartialEq)]
pub struct TopicStats {
    pub topic: String,
    /// Records not yet gone through by a replay.
    pub depth: u64,
    /// Record timestamp of the oldest of them, epoch ms.
    pub oldest_ms: Option<i64>,
    /// New dead letters per minute since the previous measurement.
    pub per_minute: f64,
}

pub struct DeadLetterWatch {
    monitors: Vec<DeadLetterSpec>,
}

impl DeadLetterWatch {
    pub fn new(monitors: Vec<DeadLetterSpec>) -> Self {
        DeadLetterWatch { monitors }
    }

    pub fn is_empty(&self) -> bool {
        self.monitors.is_empty()
    }

    /// Every check's alert at its level now.
    pub fn observe(&mut self, stats: &[TopicStats], now_ms: i64) -> Vec<Output> {
        let mut out = Vec::new();
        for m in &self.monitors {
            for s in stats.iter().filter(|s| m.matches(&s.topic)) {
                let age_ms = s.oldest_ms.map(|t| now_ms - t);
                let checks: [(&'static str, Option<bool>, String); 3] = [
                    (
                        "dead_letter_depth",
                        m.max_depth.map(|max| s.depth > max),
                        format!(
                            "{} dead letters not replayed (max {})",
                            s.depth,
                            m.max_depth.unwrap_or(0)
                        ),
                    ),
                    (
                        "dead_letter_age",
                        m.max_age
                            .map(|max| age_ms.is_some_and(|a| s.depth > 0 && a > max.ms())),
                        format!(
                            "the oldest dead letter not replayed is {} s old (max {} s)",
                            age_ms.unwrap_or(0) / 1000,
                            m.max_age.map_or(0, |a| a.ms() / 1000)
                        ),
                    ),
                    (
                        "dead_letter_rate",
                        m.max_per_minute.map(|max| s.per_minute > max as f64),
                        format!(
                            "{:.0} dead letters per minute (max {})",
                            s.per_minute,
                            m.max_per_minute.unwrap_or(0)
                        ),
                    ),
                ];
                for (kind, over, what) in checks {
                    let Some(over) = over else { continue };
                    let monitor = format!("{}/{}/{kind}", m.name, s.topic);
                    out.push(Output::Alert(
                        StreamAlert {
                            family: "dead_letters",
                            kind,
                            monitor: &monitor,
                            source: &s.topic,
                            dimension: &BTreeMap::new(),
                            severity: m.severity.into(),
                            status: if over {
                                AlertStatus::Firing
                            } else {
                                AlertStatus::Resolved
                            },
                            detected_at: now_ms,
                            what: if over {
                                what
                            } else {
                                format!("back under the threshold: {what}")
                            },
                            attributes: vec![
                                ("depth", s.depth.to_string()),
                                ("per_minute", format!("{:.1}", s.per_minute)),
                                ("oldest_age_ms", age_ms.unwrap_or(0).to_string()),
                            ],
                        }
                        .into_alert(),
                    ));
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn depth_over_the_threshold_fires_once_and_resolves_when_replayed() {
        let spec: DeadLetterSpec = serde_yaml::from_str(
            "{ name: shop, topic: '^shop\\..*\\.dlq$', max_depth: 10, max_age: 1h }",
        )
        .unwrap();
        let mut w = DeadLetterWatch::new(vec![spec]);
        let mut levels = crate::detectors::levels::Levels::default();
        let stats = |depth, oldest| {
            vec![TopicStats {
                topic: "shop.orders.dlq".into(),
                depth,
                oldest_ms: oldest,
                per_minute: 0.0,
            }]
        };
        let mut ids = |o: Vec<Output>| -> Vec<(String, AlertStatus)> {
            levels
                .announce(o)
                .into_iter()
                .map(|o| match o {
                    Output::Alert(a) => (a.dedupe_id, a.status),
                    _ => unreachable!(),
                })
                .collect()
        };
        let now = 10_000_000;
        assert_eq!(ids(w.observe(&stats(5, Some(now - 1000)), now)), vec![]);
        assert_eq!(
            ids(w.observe(&stats(50, Some(now - 7_200_000)), now)),
            vec![
                (
                    "dead_letters/shop/shop.orders.dlq/dead_letter_depth".into(),
                    AlertStatus::Firing
                ),
                (
                    "dead_letters/shop/shop.orders.dlq/dead_letter_age".into(),
                    AlertStatus::Firing
                ),
            ]
        );
        assert_eq!(
            ids(w.observe(&stats(50, Some(now - 7_200_000)), now)),
            vec![]
        );
        assert_eq!(
            ids(w.observe(&stats(0, None), now)),
            vec![
                (
                    "dead_letters/shop/shop.orders.dlq/dead_letter_depth".into(),
                    AlertStatus::Resolved
                ),
                (
                    "dead_letters/shop/shop.orders.dlq/dead_letter_age".into(),
                    AlertStatus::Resolved
                ),
            ]
        );
    }
}
