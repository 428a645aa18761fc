//! Co-location of co-partitioned topics on one instance.
//!
//! Workflow state lives with a partition *number*: partition p of every topic a workflow reads
//! (its keyed sources and its repartition topics) must be read by the same instance. Kafka's
//! cooperative-sticky assignor balances topic-partitions one by one and promises no such thing.
//! So the group balances only one topic of each co-partitioned set, the *anchor*; the others
//! *follow*: when the group assigns or revokes partition p of an anchor, the rebalance hook
//! assigns or revokes partition p of each follower with it. Followers are not subscribed, so the
//! assignor never hands them out on their own; their offsets are still the group's, committed in
//! the same transactions, so another instance that gets the anchor partition resumes them.

use rdkafka::TopicPartitionList;
use std::collections::BTreeMap;

#[derive(Debug, Clone, Default)]
pub struct PartitionGroups {
    /// anchor topic -> follower topics.
    followers: BTreeMap<String, Vec<String>>,
}

impl PartitionGroups {
    /// Groups from co-partitioned topic sets (e.g. one per workflow): overlapping sets merge,
    /// and each group's first topic in name order is its anchor.
    pub fn new(sets: &[Vec<String>]) -> Self {
        let mut groups: Vec<Vec<String>> = Vec::new();
        for set in sets {
            let mut merged: Vec<String> = set.clone();
            groups.retain(|g| {
                if g.iter().any(|t| set.contains(t)) {
                    merged.extend(g.iter().cloned());
                    false
                } else {
                    true
                }
            });
            merged.sort();
            merged.dedup();
            groups.push(merged);
        }
        let followers = groups
            .into_iter()
            .filter(|g| g.len() > 1)
            .map(|mut g| {
                let anchor = g.remove(0);
                (anchor, g)
            })
            .collect();
        PartitionGroups { followers }
    }

    /// Whether `topic` follows an anchor (and must not be subscribed).
    pub fn is_follower(&self, topic: &str) -> bool {
        self.followers
            .values()
            .any(|f| f.iter().any(|t| t == topic))
    }

    /// `tpl` with, for every anchor partition in it, the same partition of its followers.
    pub fn expand(&self, tpl: &TopicPartitionList) -> TopicPartitionList {
        let mut out = tpl.clone();
        for e in tpl.elements() {
            if let Some(followers) = self.followers.get(e.topic()) {
                for f in followers {
                    if out.find_partition(f, e.partition()).is_none() {
                        out.add_partition(f, e.partition());
                    }
                }
            }
        }
        out
    }

    pub fn is_empty(&self) -> bool {
        self.followers.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(tpl: &TopicPartitionList) -> Vec<String> {
        let mut v: Vec<String> = tpl
            .elements()
            .iter()
            .map(|e| format!("{}[{}]", e.topic(), e.partition()))
            .collect();
        v.sort();
        v
    }

    #[test]
    fn an_anchor_partition_brings_the_same_partition_of_its_followers() {
        let s = |v: &[&str]| v.iter().map(|t| t.to_string()).collect::<Vec<_>>();
        // Two workflows sharing `payments` form one group; `audit` is alone.
        let g = PartitionGroups::new(&[
            s(&["orders", "payments"]),
            s(&["payments", "shipments"]),
            s(&["audit"]),
        ]);
        assert!(g.is_follower("payments") && g.is_follower("shipments"));
        assert!(!g.is_follower("orders") && !g.is_follower("audit"));
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition("orders", 3);
        tpl.add_partition("audit", 1);
        assert_eq!(
            names(&g.expand(&tpl)),
            ["audit[1]", "orders[3]", "payments[3]", "shipments[3]"]
        );
    }
}
