//! Creates the topics Sightline writes to when they are missing. Existing topics are left as
//! they are (their partition count and settings are the operator's).

use anyhow::Context;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::ClientConfig;
use std::time::Duration;

/// A topic to create when missing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicSpec {
    pub name: String,
    pub partitions: i32,
    pub replication_factor: i32,
    /// Topic configs, e.g. `cleanup.policy=compact` for changelogs.
    pub configs: Vec<(String, String)>,
}

/// Creates every missing topic; returns the names that were created.
pub async fn ensure_topics(
    base: &ClientConfig,
    topics: &[TopicSpec],
) -> anyhow::Result<Vec<String>> {
    if topics.is_empty() {
        return Ok(Vec::new());
    }
    let admin: AdminClient<DefaultClientContext> =
        base.create().context("creating the Kafka admin client")?;
    // Only what is missing is created (the mock cluster and locked-down clusters refuse
    // CreateTopics; asking for topics that exist is then no error).
    let existing: std::collections::HashSet<String> = {
        let names: Vec<String> = topics.iter().map(|t| t.name.clone()).collect();
        let base = base.clone();
        tokio::task::spawn_blocking(move || {
            let Ok(c) = base.create::<rdkafka::consumer::BaseConsumer>() else {
                return Default::default();
            };
            names
                .into_iter()
                .filter(|n| {
                    use rdkafka::consumer::Consumer;
                    c.fetch_metadata(Some(n), Duration::from_secs(10))
                        .ok()
                        .and_then(|md| {
                            md.topics()
                                .first()
                                .map(|t| t.error().is_none() && !t.partitions().is_empty())
                        })
                        .unwrap_or(false)
                })
                .collect()
        })
        .await
        .unwrap_or_default()
    };
    let topics: Vec<&TopicSpec> = topics
        .iter()
        .filter(|t| !existing.contains(&t.name))
        .collect();
    if topics.is_empty() {
        return Ok(Vec::new());
    }
    let new: Vec<NewTopic<'_>> = topics
        .iter()
        .map(|t| {
            let mut nt = NewTopic::new(
                &t.name,
                t.partitions,
                TopicReplication::Fixed(t.replication_factor),
            );
            for (k, v) in &t.configs {
                nt = nt.set(k, v);
            }
            nt
        })
        .collect();
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let results = admin
        .create_topics(new.iter(), &opts)
        .await
        .context("creating output topics (is the broker reachable?)")?;
    let mut created = Vec::new();
    for r in results {
        match r {
            Ok(name) => {
                tracing::info!(topic = %name, "created topic");
                created.push(name);
            }
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((name, code)) => anyhow::bail!(
                "could not create topic `{name}`: {code}. Create it by hand, or grant Sightline CREATE on it."
            ),
        }
    }
    Ok(created)
}
