//! Which source a record belongs to: by exact topic name, else by the first topic pattern that
//! matches. The subscription is the names plus the patterns (librdkafka treats `^...` as regex).

use crate::ingest::SourceIngest;
use regex::Regex;
use std::collections::HashMap;

#[derive(Default)]
pub struct Sources {
    exact: HashMap<String, SourceIngest>,
    patterns: Vec<(Regex, SourceIngest)>,
    /// Topics a pattern never claims: Sightline's own outputs, and anything ending in the
    /// dead-letter suffix (else a broad pattern would read its own dead letters back).
    own_topics: std::collections::HashSet<String>,
    dead_letter_suffix: String,
}

impl Sources {
    /// Adds a source for `topic` (a name, or a `^` regex). Errors on a topic declared twice.
    pub fn insert(&mut self, topic: &str, ingest: SourceIngest) -> Result<(), String> {
        if topic.starts_with('^') {
            let re = Regex::new(topic).map_err(|e| format!("topic pattern `{topic}`: {e}"))?;
            if self.patterns.iter().any(|(r, _)| r.as_str() == topic) {
                return Err(format!(
                    "topic pattern `{topic}` is declared by more than one source"
                ));
            }
            self.patterns.push((re, ingest));
        } else if self.exact.insert(topic.to_string(), ingest).is_some() {
            return Err(format!(
                "topic `{topic}` is declared by more than one source"
            ));
        }
        Ok(())
    }

    /// Topics that patterns must not claim.
    pub fn exclude(
        &mut self,
        own_topics: impl IntoIterator<Item = String>,
        dead_letter_suffix: &str,
    ) {
        self.own_topics.extend(own_topics);
        self.dead_letter_suffix = dead_letter_suffix.to_string();
    }

    pub fn get(&self, topic: &str) -> Option<&SourceIngest> {
        if let Some(s) = self.exact.get(topic) {
            return Some(s);
        }
        let own = self.own_topics.contains(topic)
            || (!self.dead_letter_suffix.is_empty() && topic.ends_with(&self.dead_letter_suffix));
        if own {
            return None;
        }
        self.patterns
            .iter()
            .find(|(r, _)| r.is_match(topic))
            .map(|(_, s)| s)
    }

    pub fn is_empty(&self) -> bool {
        self.exact.is_empty() && self.patterns.is_empty()
    }

    /// What to subscribe to, sorted.
    pub fn subscription(&self) -> Vec<String> {
        let mut t: Vec<String> = self
            .exact
            .keys()
            .cloned()
            .chain(self.patterns.iter().map(|(r, _)| r.as_str().to_string()))
            .collect();
        t.sort();
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::{Decoder, Mapper};

    fn ingest(name: &str) -> SourceIngest {
        let spec: crate::topology::SourceSpec = serde_yaml::from_str(&format!(
            "name: {name}\ntopic: x\nformat: json\nevent_type: {{ field: t }}\nkey: {{ field: k }}\nevent_time: {{ field: at }}\n"
        ))
        .unwrap();
        SourceIngest {
            name: name.into(),
            decoder: Decoder::Json,
            mapper: Mapper::new(&spec),
            dead_letter_topic: None,
            dead_letter_suffix: ".dlq".into(),
            contract: None,
            repartition_topic: None,
        }
    }

    #[test]
    fn names_win_over_patterns_and_patterns_never_claim_sightlines_own_topics() {
        let mut s = Sources::default();
        s.insert("orders.eu", ingest("named")).unwrap();
        s.insert("^orders\\..*", ingest("pattern")).unwrap();
        s.exclude(["orders.alerts".to_string()], ".dlq");
        assert_eq!(s.get("orders.eu").map(|i| i.name.as_str()), Some("named"));
        assert_eq!(s.get("orders.us").map(|i| i.name.as_str()), Some("pattern"));
        assert!(s.get("orders.us.dlq").is_none());
        assert!(s.get("orders.alerts").is_none());
        assert!(s.get("payments").is_none());
        assert!(s.insert("orders.eu", ingest("again")).is_err());
        assert_eq!(
            s.subscription(),
            vec!["^orders\\..*".to_string(), "orders.eu".to_string()]
        );
    }
}
