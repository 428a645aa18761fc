//! `sightline check`: every problem in the config, the topologies and the contracts, at once,
//! each with its file and line (or key); then each workflow as a text graph, or Graphviz dot.
//!
//! Beyond what loading checks (syntax, keys, steps after missing steps, deadlines longer than
//! the ttl, unknown time zones and calendars), it checks across files: contract files exist and
//! parse, workflow steps wait for event types some source carries (once every source declares
//! its types), and, with a reachable registry, that each Avro contract can read the registry's
//! latest schema of its topic.
//!
//! `check` is a deploy gate, so its exit status separates what is wrong with Sightline's own
//! files from what Sightline exists to report. Config, topology and contract errors exit 1. A
//! contract that cannot read the registry's latest writer is drift that has already happened
//! (`run` reports it as a drift event): a warning, printed with the same detail, exit 0;
//! `--strict` makes warnings errors.
//!
//! `--sample` reads up to a few hundred records of every source that says it is keyed by the
//! correlation key, maps them as `run` does, and checks that each sits on the partition its
//! partitioner puts its key (detectors/partitioning.rs): a topic written with another
//! partitioner is an error, named with the partitioner that fits.

use crate::config::Config;
use crate::topology::{Topology, TopologyError, ValueFrom};
use std::collections::BTreeSet;
use std::path::Path;
use std::process::ExitCode;

/// Problems across files: contracts and event types.
fn cross_checks(cfg: &Config, ts: &[Topology]) -> Vec<TopologyError> {
    let mut out = Vec::new();
    let schemas = cfg.resolve(&cfg.schemas.dir);
    for t in ts {
        for s in &t.sources {
            if let Some(c) = &s.contract {
                if let Err(e) = crate::contracts::Contract::load(&schemas, c) {
                    out.push(t.problem(
                        &format!("contract: {c}"),
                        format!(
                            "source `{}`: {e} (schemas.dir is {})",
                            s.name,
                            schemas.display()
                        ),
                    ));
                }
            }
        }
    }
    // Event types: known only when every source says what it carries.
    let sources = ts.iter().flat_map(|t| &t.sources);
    let closed = sources
        .clone()
        .all(|s| matches!(s.event_type, ValueFrom::Fixed(_)) || !s.event_types.is_empty());
    if closed {
        let known: BTreeSet<&str> = sources
            .flat_map(|s| {
                let fixed = match &s.event_type {
                    ValueFrom::Fixed(v) => Some(v.as_str()),
                    _ => None,
                };
                fixed
                    .into_iter()
                    .chain(s.event_types.iter().map(String::as_str))
            })
            .collect();
        for t in ts {
            for w in &t.workflows {
                for step in &w.steps {
                    if !known.contains(step.on.as_str()) {
                        out.push(t.problem(
                            &format!("on: {}", step.on),
                            format!(
                                "workflow `{}`: step `{}` waits for event type `{}`, which no source carries (sources declare: {})",
                                w.name,
                                step.name,
                                step.on,
                                known.iter().copied().collect::<Vec<_>>().join(", ")
                            ),
                        ));
                    }
                }
            }
        }
    }
    out
}

/// Each Avro contract against the registry's latest schema of its topic (`<topic>-value`): what
/// disagrees is drift that has happened (warnings), not a mistake in the files.
async fn registry_checks(cfg: &Config, ts: &[Topology]) -> (Vec<TopologyError>, Option<String>) {
    let Some(reg) = &cfg.registry else {
        return (Vec::new(), None);
    };
    let schemas = cfg.resolve(&cfg.schemas.dir);
    let client = match reqwest::Client::builder()
        .timeout(std::time::Duration::from_millis(reg.timeout_ms.max(1000)))
        .build()
    {
        Ok(c) => c,
        Err(e) => return (Vec::new(), Some(format!("registry client: {e}"))),
    };
    let mut out = Vec::new();
    for t in ts {
        for s in t
            .sources
            .iter()
            .filter(|s| s.format == crate::topology::Format::Avro)
        {
            let (Some(c), None) = (&s.contract, s.topic_pattern()) else {
                continue;
            };
            let Ok(contract) = crate::contracts::Contract::load(&schemas, c) else {
                continue;
            };
            let url = format!(
                "{}/subjects/{}-value/versions/latest",
                reg.url.trim_end_matches('/'),
                s.topic
            );
            let mut req = client.get(&url);
            if let Some(user) = &reg.username {
                req = req.basic_auth(
                    user,
                    cfg.registry_password()
                        .ok()
                        .flatten()
                        .map(|p| p.expose().to_string()),
                );
            }
            let resp = match req.send().await {
                Ok(r) => r,
                Err(e) => {
                    return (
                        out,
                        Some(format!(
                            "registry {} not reachable ({e}); contracts were not compared with it",
                            reg.url
                        )),
                    )
                }
            };
            if resp.status() == reqwest::StatusCode::NOT_FOUND {
                continue; // nothing registered yet: nothing to disagree with
            }
            let Ok(body) = resp.json::<serde_json::Value>().await else {
                continue;
            };
            let Some(Ok(latest)) = body["schema"].as_str().map(apache_avro::Schema::parse_str)
            else {
                continue;
            };
            if let Err(why) = crate::contracts::compatible(&latest, &contract.schema) {
                out.push(t.problem(
                    &format!("contract: {c}"),
                    format!(
                        "source `{}`: contract `{c}` cannot read the registry's latest `{}-value` (version {}): {}",
                        s.name,
                        s.topic,
                        body["version"],
                        why.join("; ")
                    ),
                ));
            }
        }
    }
    (out, None)
}

/// What `check` found.
pub struct Findings {
    /// Errors, one line each (empty when all is valid).
    pub problems: Vec<String>,
    /// Drift that has already happened on the registry, one line each.
    pub warnings: Vec<String>,
    /// A one-line summary.
    pub summary: String,
    pub notes: Vec<String>,
    /// The topologies that parsed.
    pub topologies: Vec<Topology>,
}

/// Everything `check` finds in `config` and what it names.
pub async fn problems(config: &Path) -> Findings {
    let mut out = Vec::new();
    let cfg = match Config::load(config) {
        Ok(c) => c,
        Err(errors) => {
            out.extend(errors.0.iter().map(|e| e.to_string()));
            return Findings {
                problems: out,
                warnings: Vec::new(),
                summary: String::new(),
                notes: Vec::new(),
                topologies: Vec::new(),
            };
        }
    };
    let (ts, errors) = crate::topology::load_all_lenient(&crate::topology::configured_paths(&cfg));
    let mut found: Vec<TopologyError> = errors;
    found.extend(cross_checks(&cfg, &ts));
    let (mut drift, note) = registry_checks(&cfg, &ts).await;
    found.sort_by(|a, b| (&a.file, a.line).cmp(&(&b.file, b.line)));
    drift.sort_by(|a, b| (&a.file, a.line).cmp(&(&b.file, b.line)));
    out.extend(found.iter().map(|e| e.to_string()));
    let sources: usize = ts.iter().map(|t| t.sources.len()).sum();
    if sources == 0 && out.is_empty() {
        out.push(format!(
            "{}: key `topologies.paths`: the topologies declare no sources; there is nothing to read",
            config.display()
        ));
    }
    let workflows: usize = ts.iter().map(|t| t.workflows.len()).sum();
    let summary = format!(
        "{} topolog{}, {sources} source(s), {workflows} workflow(s)",
        ts.len(),
        if ts.len() == 1 { "y" } else { "ies" }
    );
    Findings {
        problems: out,
        warnings: drift.iter().map(|e| e.to_string()).collect(),
        summary,
        notes: note.into_iter().collect(),
        topologies: ts,
    }
}

/// `90000` -> `1m30s`: the way topologies write durations.
fn span(ms: i64) -> String {
    let mut left = ms / 1000;
    let mut out = String::new();
    for (unit, secs) in [("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1)] {
        if left >= secs {
            out.push_str(&format!("{}{unit}", left / secs));
            left %= secs;
        }
    }
    if out.is_empty() {
        format!("{ms}ms")
    } else {
        out
    }
}

/// A workflow as a text tree: each step under the step it comes after.
pub fn text_graph(w: &crate::topology::workflow::WorkflowSpec) -> String {
    use crate::topology::workflow::StepSpec;
    let mut out = format!("workflow {}\n", w.name);
    // Children by parent name, built once, so the walk is linear in the steps.
    let start = w.steps.iter().find(|x| x.start).map(|x| x.name.as_str());
    let mut children: std::collections::HashMap<Option<&str>, Vec<&StepSpec>> = Default::default();
    for s in &w.steps {
        let parent = if s.start {
            None
        } else {
            s.after.as_deref().or(start)
        };
        children.entry(parent).or_default().push(s);
    }
    // An explicit stack: a chain of thousands of steps is as deep as it is long.
    let mut stack: Vec<(&StepSpec, usize)> = children
        .get(&None)
        .map(|v| v.iter().rev().map(|s| (*s, 0)).collect())
        .unwrap_or_default();
    let mut seen = std::collections::HashSet::new();
    while let Some((s, depth)) = stack.pop() {
        if !seen.insert(s.name.as_str()) {
            continue;
        }
        {
            let mut notes = vec![format!("on {}", s.on)];
            if let Some(within) = s.within {
                notes.push(format!("within {}", span(within.ms())));
            }
            if s.start {
                notes.push("start".into());
            }
            if s.optional {
                notes.push("optional".into());
            }
            if s.closes {
                notes.push("closes".into());
            }
            // Indented up to 32 levels; deeper ones say their level instead.
            let indent = if depth < 32 {
                "  ".repeat(depth + 1)
            } else {
                format!("{}[level {}] ", "  ".repeat(33), depth + 1)
            };
            out.push_str(&format!("{indent}{} ({})\n", s.name, notes.join(", ")));
            if let Some(next) = children.get(&Some(s.name.as_str())) {
                stack.extend(next.iter().rev().map(|c| (*c, depth + 1)));
            }
        }
    }
    out
}

/// A workflow as Graphviz dot: an edge from each step to the steps that follow it.
pub fn dot_graph(w: &crate::topology::workflow::WorkflowSpec) -> String {
    let start = w.steps.iter().find(|s| s.start).map(|s| s.name.clone());
    let mut out = format!("digraph \"{}\" {{\n  rankdir=LR;\n", w.name);
    for s in &w.steps {
        let shape = if s.start {
            "doublecircle"
        } else if s.optional {
            "ellipse, style=dashed"
        } else {
            "box"
        };
        out.push_str(&format!(
            "  \"{}\" [shape={shape}, label=\"{}\\non {}\"];\n",
            s.name, s.name, s.on
        ));
    }
    for s in w.steps.iter().filter(|s| !s.start) {
        if let Some(from) = s.after.clone().or_else(|| start.clone()) {
            let label = s
                .within
                .map(|d| format!(" [label=\"within {}\"]", span(d.ms())))
                .unwrap_or_default();
            out.push_str(&format!("  \"{from}\" -> \"{}\"{label};\n", s.name));
        }
    }
    out.push_str("}\n");
    out
}

/// Records read per source by `--sample`, at most.
const SAMPLE_RECORDS: usize = 500;

/// `--sample`: each keyed source's records against its partitioner; a problem per source that
/// is not partitioned as configured, and notes on what was sampled.
async fn sample_partitioning(config: &Path, ts: &[Topology]) -> (Vec<String>, Vec<String>) {
    use crate::detectors::partitioning::{Hash, Sample};
    let (mut problems, mut notes) = (Vec::new(), Vec::new());
    let Ok(cfg) = Config::load(config) else {
        return (problems, notes);
    };
    let health = crate::observe::health::Health::new();
    let registry = match crate::registry::settings(&cfg) {
        Ok(Some(s)) => Some(std::sync::Arc::new(
            schema_registry_converter::async_impl::avro::AvroDecoder::new(s),
        )),
        _ => None,
    };
    let sources = match crate::engine::setup::build_sources(&cfg, ts, &health, registry) {
        Ok(s) => s,
        Err(e) => {
            problems.push(format!("--sample: {e:#}"));
            return (problems, notes);
        }
    };
    let base = match crate::kafka::client::client_config(&cfg) {
        Ok(b) => b,
        Err(e) => {
            problems.push(format!("--sample: {e:#}"));
            return (problems, notes);
        }
    };
    for t in ts.iter().filter(|t| !t.workflows.is_empty()) {
        for s in t
            .sources
            .iter()
            .filter(|s| !s.repartition && s.topic_pattern().is_none())
        {
            let configured = s
                .partitioner
                .clone()
                .unwrap_or_else(|| cfg.kafka.partitioner.clone());
            let Some(hash) = Hash::of(&configured) else {
                continue;
            };
            let Some(ingest) = sources.get(&s.topic) else {
                continue;
            };
            let (b, topic) = (base.clone(), s.topic.clone());
            let read = tokio::task::spawn_blocking(move || read_sample(&b, &topic, SAMPLE_RECORDS))
                .await
                .unwrap_or_else(|e| Err(e.to_string()));
            let (records, partitions) = match read {
                Ok(r) => r,
                Err(e) => {
                    notes.push(format!("--sample: source `{}`: {e}", s.name));
                    continue;
                }
            };
            let mut sample = Sample::default();
            for r in &records {
                let headers: Vec<(&str, Option<&[u8]>)> =
                    r.4.iter()
                        .map(|(k, v)| (k.as_str(), v.as_deref()))
                        .collect();
                let rec = crate::ingest::RawRecord {
                    topic: &s.topic,
                    partition: r.0,
                    offset: r.1,
                    timestamp_ms: None,
                    key: r.2.as_deref(),
                    value: r.3.as_deref(),
                    headers: &headers,
                };
                let Ok(decoded) = ingest.read(&rec).await else {
                    continue;
                };
                if let Ok(ev) = ingest.mapper.map_fields(&decoded.fields, &rec) {
                    sample.add(hash, &ev.key, r.0, partitions);
                }
            }
            notes.push(format!(
                "--sample: source `{}` (topic `{}`): {} records mapped, {} not where `{configured}` puts their key",
                s.name, s.topic, sample.records, sample.mismatches
            ));
            if sample.mismatched() {
                problems.push(format!(
                    "{}: source `{}`: {}",
                    t.file.display(),
                    s.name,
                    sample.describe(&s.topic, &configured, partitions)
                ));
            }
        }
    }
    (problems, notes)
}

/// One sampled record: partition, offset, key, value, headers.
type Sampled = (
    i32,
    i64,
    Option<Vec<u8>>,
    Option<Vec<u8>>,
    Vec<(String, Option<Vec<u8>>)>,
);

/// Up to `n` records of `topic`, spread over its partitions, from their start, and the
/// partition count.
fn read_sample(
    base: &rdkafka::ClientConfig,
    topic: &str,
    n: usize,
) -> Result<(Vec<Sampled>, i32), String> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::message::Headers;
    use rdkafka::message::Message;
    let timeout = std::time::Duration::from_secs(10);
    let mut c = crate::kafka::client::reader_config(base, "sightline-check-sample");
    c.set("enable.partition.eof", "true");
    let consumer: BaseConsumer<crate::kafka::client::EofIsNormal> = c
        .create_with_context(crate::kafka::client::EofIsNormal)
        .map_err(|e| e.to_string())?;
    let md = consumer
        .fetch_metadata(Some(topic), timeout)
        .map_err(|e| format!("reading its partitions: {e}"))?;
    let parts: Vec<i32> = md
        .topics()
        .first()
        .map(|t| t.partitions().iter().map(|p| p.id()).collect())
        .unwrap_or_default();
    if parts.is_empty() {
        return Err("the topic does not exist or has no partitions; nothing to sample".into());
    }
    let per = n.div_ceil(parts.len()).max(1);
    let mut tpl = rdkafka::TopicPartitionList::new();
    for &p in &parts {
        tpl.add_partition_offset(topic, p, rdkafka::Offset::Beginning)
            .map_err(|e| e.to_string())?;
    }
    consumer.assign(&tpl).map_err(|e| e.to_string())?;
    let mut got: std::collections::HashMap<i32, usize> = Default::default();
    let mut open: std::collections::BTreeSet<i32> = parts.iter().copied().collect();
    let mut out = Vec::new();
    let deadline = std::time::Instant::now() + timeout;
    while !open.is_empty() && std::time::Instant::now() < deadline {
        match consumer.poll(std::time::Duration::from_millis(200)) {
            Some(Ok(m)) => {
                let k = got.entry(m.partition()).or_default();
                if *k < per {
                    *k += 1;
                    let headers = m
                        .headers()
                        .map(|h| {
                            h.iter()
                                .map(|h| (h.key.to_string(), h.value.map(<[u8]>::to_vec)))
                                .collect()
                        })
                        .unwrap_or_default();
                    out.push((
                        m.partition(),
                        m.offset(),
                        m.key().map(<[u8]>::to_vec),
                        m.payload().map(<[u8]>::to_vec),
                        headers,
                    ));
                }
                if *k >= per {
                    open.remove(&m.partition());
                }
            }
            Some(Err(rdkafka::error::KafkaError::PartitionEOF(p))) => {
                open.remove(&p);
            }
            _ => {}
        }
    }
    Ok((out, parts.len() as i32))
}

pub async fn check(
    config: &Path,
    dot: bool,
    strict: bool,
    sample: bool,
) -> anyhow::Result<ExitCode> {
    let Findings {
        mut problems,
        warnings,
        summary,
        mut notes,
        topologies: ts,
    } = problems(config).await;
    if sample && problems.is_empty() {
        let (p, n) = sample_partitioning(config, &ts).await;
        problems.extend(p);
        notes.extend(n);
    }
    for n in &notes {
        println!("note: {n}");
    }
    if strict {
        problems.extend(
            warnings
                .iter()
                .map(|w| format!("{w} (an error under --strict)")),
        );
    } else {
        for w in &warnings {
            println!("warning: {w} (drift that has already happened: `run` reports it; --strict makes this an error)");
        }
    }
    if !problems.is_empty() {
        println!("{} problem(s):", problems.len());
        for p in &problems {
            println!("  - {p}");
        }
        return Ok(ExitCode::FAILURE);
    }
    println!("ok: {} is valid; {summary}", config.display());
    for t in &ts {
        for w in &t.workflows {
            println!();
            print!("{}", if dot { dot_graph(w) } else { text_graph(w) });
        }
    }
    Ok(ExitCode::SUCCESS)
}
