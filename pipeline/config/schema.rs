//! The key table of the runtime config: every key, its type, whether it is required, its default
//! and what it means. Validation walks the document against this table and reports every
//! problem; environment overrides are typed by it; the README's config reference is this table.

use super::ConfigError;
use std::net::SocketAddr;
use std::path::Path;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ty {
    Str,
    Int {
        min: i64,
    },
    Bool,
    OneOf(&'static [&'static str]),
    /// A secret string (never printed).
    Secret,
    /// A file that must exist.
    File,
    /// A list of files or directories that must exist.
    Paths,
    /// A host:port socket address.
    Addr,
    /// A list of strings.
    Strs,
    /// A regular expression (empty: none).
    Regex,
    /// A table of string to string with free keys (librdkafka overrides).
    StrMap,
}

/// One configuration key.
pub struct Key {
    pub path: &'static str,
    pub ty: Ty,
    pub required: bool,
    pub default: &'static str,
    pub doc: &'static str,
}

const fn key(path: &'static str, ty: Ty, default: &'static str, doc: &'static str) -> Key {
    Key {
        path,
        ty,
        required: false,
        default,
        doc,
    }
}

/// Sections that may be absent, but when present must hold their required keys.
pub const SECTIONS: &[&str] = &[
    "kafka",
    "kafka.sasl",
    "kafka.tls",
    "kafka.topics",
    "registry",
    "state",
    "http",
    "outputs",
    "topologies",
    "schemas",
    "engine",
    "lag",
    "replay",
    "dead_letters",
];

pub const KEYS: &[Key] = &[
    Key {
        path: "kafka.bootstrap_servers",
        ty: Ty::Str,
        required: true,
        default: "",
        doc: "Comma-separated host:port list of the Kafka brokers.",
    },
    key("kafka.group_id", Ty::Str, "sightline", "Consumer group of the pipeline; instances with the same group split the partitions."),
    key("kafka.client_id", Ty::Str, "sightline", "client.id sent to the brokers (shows in broker logs and quotas)."),
    key(
        "kafka.security_protocol",
        Ty::OneOf(&["plaintext", "ssl", "sasl_plaintext", "sasl_ssl"]),
        "plaintext",
        "How to talk to the brokers.",
    ),
    Key {
        path: "kafka.sasl.mechanism",
        ty: Ty::OneOf(&["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]),
        required: true,
        default: "",
        doc: "SASL mechanism (required when [kafka.sasl] is present).",
    },
    Key {
        path: "kafka.sasl.username",
        ty: Ty::Str,
        required: true,
        default: "",
        doc: "SASL user name.",
    },
    key("kafka.sasl.password", Ty::Secret, "", "SASL password. Prefer password_file or SIGHTLINE_KAFKA__SASL__PASSWORD."),
    key("kafka.sasl.password_file", Ty::File, "", "File holding the SASL password (trailing newline ignored)."),
    key("kafka.tls.ca_file", Ty::File, "", "PEM file of the CA that signed the brokers' certificates."),
    key("kafka.tls.cert_file", Ty::File, "", "PEM client certificate (mutual TLS)."),
    key("kafka.tls.key_file", Ty::File, "", "PEM client key (mutual TLS)."),
    key("kafka.tls.key_password", Ty::Secret, "", "Passphrase of the client key."),
    key("kafka.tls.verify_hostname", Ty::Bool, "true", "Check the broker certificate's host name."),
    key("kafka.overrides", Ty::StrMap, "", "librdkafka properties passed through as-is, applied last (e.g. \"fetch.min.bytes\" = \"1\")."),
    key("kafka.topics.partitions", Ty::Int { min: 1 }, "12", "Partitions of output topics Sightline creates when they are missing."),
    key("kafka.topics.replication_factor", Ty::Int { min: -1 }, "-1", "Replication factor of created topics; -1 takes the broker's default.replication.factor."),
    key("kafka.commit_interval_ms", Ty::Int { min: 1 }, "100", "exactly_once: how long a transaction collects records before it commits (latency against throughput); at_least_once: how often input offsets are committed."),
    key(
        "kafka.processing_guarantee",
        Ty::OneOf(&["exactly_once", "at_least_once"]),
        "exactly_once",
        "exactly_once: outputs, dead letters, state changelog and input offsets commit in one Kafka transaction. at_least_once: outputs are acknowledged before offsets are stored; a crash may repeat some.",
    ),
    key(
        "kafka.partitioner",
        Ty::OneOf(&["murmur2_random", "murmur2", "consistent_random", "consistent", "fnv1a_random", "fnv1a", "random"]),
        "murmur2_random",
        "How Sightline's producers map a key to a partition. Repartitioned sources are re-keyed with it, so it must be the partitioner of the producers of the keyed topics (murmur2_random: the Java client's default; consistent_random: librdkafka's).",
    ),
    key("kafka.transaction_timeout_ms", Ty::Int { min: 1000 }, "10000", "exactly_once: the broker aborts a transaction left open this long. A killed instance's open transaction holds read_committed readers (the instance taking over its partitions) until then."),
    key("kafka.instance_id", Ty::Str, "$HOSTNAME", "Stable name of this instance, unique in the group: its producer's transactional.id is <group_id>.<instance_id>. A StatefulSet pod name fits."),
    Key {
        path: "registry.url",
        ty: Ty::Str,
        required: true,
        default: "",
        doc: "Confluent-compatible schema registry base URL (Apicurio: .../apis/ccompat/v7).",
    },
    key("registry.username", Ty::Str, "", "Basic-auth user for the registry."),
    key("registry.password", Ty::Secret, "", "Basic-auth password. Prefer password_file or SIGHTLINE_REGISTRY__PASSWORD."),
    key("registry.password_file", Ty::File, "", "File holding the registry password."),
    key("registry.ca_file", Ty::File, "", "PEM CA for a registry served over TLS."),
    key("registry.timeout_ms", Ty::Int { min: 1 }, "5000", "Timeout of one registry call."),
    key("state.dir", Ty::Str, "state", "Directory of the RocksDB state (created when missing)."),
    key("state.block_cache_mb", Ty::Int { min: 8 }, "256", "RocksDB block cache, MiB, shared by all column families; memtables, index and filter blocks are charged to it, so it bounds the store's memory."),
    key("state.instance_cache", Ty::Int { min: 0 }, "50000", "Committed workflow instances kept decoded in memory, so that an instance's next event or timer skips the RocksDB read and the decode (about 1 KiB each); 0 turns the cache off."),
    key("state.write_buffer_mb", Ty::Int { min: 4 }, "64", "Memtables of all column families together, MiB (part of the block cache)."),
    key("http.bind", Ty::Addr, "127.0.0.1:9464", "Address of /metrics, /healthz, /readyz and the read API."),
    key("http.max_connections", Ty::Int { min: 1 }, "256", "Connections served at once; one more is closed at accept (and counted in sightline_http_connections_refused_total), so a flood cannot exhaust the process."),
    key("http.header_read_timeout_ms", Ty::Int { min: 1 }, "10000", "A client that has not sent a request's headers within this is disconnected (slow-header clients)."),
    key("http.idle_timeout_ms", Ty::Int { min: 1 }, "60000", "A connection with no bytes in either direction for this long is closed (idle keep-alive and silent clients)."),
    key("outputs.alerts", Ty::Str, "sightline.alerts", "Topic of alert events."),
    key("outputs.sla", Ty::Str, "sightline.sla", "Topic of SLA events."),
    key("outputs.drift", Ty::Str, "sightline.drift", "Topic of schema-drift events."),
    key("outputs.lag", Ty::Str, "sightline.lag", "Topic of consumer-lag status events."),
    key("outputs.dead_letter_suffix", Ty::Str, ".dlq", "A source's dead-letter topic is <topic><suffix> unless the topology names one."),
    key("topologies.paths", Ty::Paths, "[\"topologies\"]", "Topology files, or directories of *.yaml files."),
    key("schemas.dir", Ty::Str, "schemas", "Directory of the Avro contracts."),
    key(
        "engine.time",
        Ty::OneOf(&["event", "wall"]),
        "event",
        "Stream clock of deadlines: event time (watermark = newest event time + wall time since it arrived - allowed lateness, so deadlines fire when traffic stops) or the wall clock.",
    ),
    key("engine.allowed_lateness_ms", Ty::Int { min: 0 }, "60000", "Event time mode: how far behind the newest event a deadline waits for stragglers."),
    key("engine.timer_tick_ms", Ty::Int { min: 10 }, "200", "How often due timers are looked for."),
    key(
        "engine.idle_timeout_ms",
        Ty::Int { min: 0 },
        "30000",
        "Event time mode: how long an assigned input partition that has delivered nothing holds the stream clock of its partition number back before it counts as idle; and how long one that has delivered, then was read to its end, must be silent before it stops holding the clock back.",
    ),
    key(
        "engine.max_event_time_skew_ms",
        Ty::Int { min: 0 },
        "86400000",
        "An event time more than this after the record's Kafka timestamp (or the wall clock, when the record has none or it is in the future) is dead-lettered as event_time_out_of_range and moves no clock.",
    ),
    key(
        "engine.max_event_age_ms",
        Ty::Int { min: 0 },
        "0",
        "An event time more than this before the record's Kafka timestamp (or the wall clock) is dead-lettered as event_time_out_of_range and moves no clock; 0: the largest workflow ttl plus 30 days, a margin for re-sent history (60 days without workflows).",
    ),
    key(
        "engine.max_key_bytes",
        Ty::Int { min: 1 },
        "512",
        "A correlation key longer than this (in bytes) is dead-lettered as key_too_long: it would be copied into state, timers and every alert.",
    ),
    key(
        "engine.max_read_ahead_ms",
        Ty::Int { min: 0 },
        "900000",
        "Event time mode: an input partition whose clock runs this far ahead of the slowest input of its partition number is paused until the others catch up (time-aligned reading, as Kafka Streams' PartitionGroup does), so a backlog on one topic is read first instead of holding deadlines back for hours; 0 never pauses.",
    ),
    key("dead_letters.enabled", Ty::Bool, "true", "Watch dead-letter topics: depth not yet replayed, oldest age, rate, error classes (metrics), and the thresholds of `monitors.dead_letters` (alerts)."),
    key("dead_letters.topics", Ty::Strs, "[]", "Dead-letter topics of the estate to watch, by name (Sightline's own are always watched)."),
    key("dead_letters.topics_regex", Ty::Regex, "", "Also watch every topic whose name matches this regex (e.g. \"\\\\.dlq$|-dlt$\")."),
    key("dead_letters.interval_ms", Ty::Int { min: 100 }, "10000", "How often the watched dead-letter topics are measured."),
    key("replay.ledger_topic", Ty::Str, "sightline.replay-ledger", "Compacted topic where `sightline replay` records how far each replay id got, in the same transaction as the records it sends (re-running an id resumes, never repeats)."),
    key("replay.audit_topic", Ty::Str, "sightline.replay-audit", "Topic of replay audit events (schemas/sightline/replay_audit.avsc): who replayed what, with which filter, and the counts."),
    key("replay.max_attempts", Ty::Int { min: 1 }, "3", "A record replayed this many times already (its sightline.replay.count header) is skipped unless --force."),
    key("replay.operator", Ty::Str, "$SIGHTLINE_OPERATOR or $USER", "Who runs replays, for the audit trail (SIGHTLINE_OPERATOR in the environment wins)."),
    key("replay.headers", Ty::StrMap, "", "Header names of another dead-letter convention: `topic`, `partition`, `offset`, `error_class` (decimal numbers). Sightline, Kafka Connect and Spring Kafka headers are understood without this."),
    key("lag.enabled", Ty::Bool, "true", "Poll consumer lag: Sightline's own group (kafka.group_id) and the watched groups."),
    key("lag.groups", Ty::Strs, "[]", "Consumer groups to watch, by name (own group is always watched)."),
    key("lag.groups_regex", Ty::Regex, "", "Also watch every group whose name matches this regex (groups are listed on each poll)."),
    key("lag.topics", Ty::Strs, "[]", "Topics whose partitions are asked for by name when the broker returns none of a group's offsets for \"all partitions\" (librdkafka's mock cluster); Sightline's own source topics always are."),
    key("lag.interval_ms", Ty::Int { min: 100 }, "5000", "How often committed offsets and high watermarks are sampled."),
    key("lag.window", Ty::Int { min: 2 }, "10", "Samples per partition a group's status is evaluated over (the sliding window: interval_ms x window)."),
    key("lag.request_timeout_ms", Ty::Int { min: 10 }, "5000", "Timeout of one offsets request to the brokers."),
    key("lag.read_timeout_ms", Ty::Int { min: 10 }, "2000", "How long one poll waits to read the records at committed offsets (exact time lag) before interpolating."),
];

fn find(path: &str) -> Option<&'static Key> {
    KEYS.iter().find(|k| k.path == path)
}

/// Checks the whole document and returns every problem found.
pub fn validate(doc: &toml::Table, file: &str, base_dir: &Path) -> Vec<ConfigError> {
    let mut errors = Vec::new();
    let err = |errors: &mut Vec<ConfigError>, key: &str, reason: String| {
        errors.push(ConfigError {
            file: file.to_string(),
            key: key.to_string(),
            reason,
        })
    };
    walk(doc, "", &mut |path, value| match find(path) {
        Some(k) => {
            if let Err(reason) = check_type(k.ty, value, base_dir) {
                err(&mut errors, path, reason);
            }
        }
        None if SECTIONS.contains(&path) => {
            if !value.is_table() {
                err(
                    &mut errors,
                    path,
                    format!("expected a table ([{path}]), found {}", kind(value)),
                );
            }
        }
        None => {
            let hint = closest(path)
                .map(|c| format!(" Did you mean `{c}`?"))
                .unwrap_or_default();
            err(&mut errors, path, format!("unknown key.{hint}"));
        }
    });
    // Required keys, in the sections that are present (and `kafka`, which always is).
    for k in KEYS.iter().filter(|k| k.required) {
        let section = k.path.rsplit_once('.').map(|(s, _)| s).unwrap_or("");
        let present = section == "kafka" || lookup(doc, section).is_some();
        if present && lookup(doc, k.path).is_none() {
            err(
                &mut errors,
                k.path,
                format!("missing required key. {}", k.doc),
            );
        }
    }
    if let Some(sasl) = lookup(doc, "kafka.sasl") {
        let t = sasl.as_table();
        let has = |k: &str| t.is_some_and(|t| t.contains_key(k));
        if !has("password") && !has("password_file") {
            err(
                &mut errors,
                "kafka.sasl.password",
                "SASL needs a password: set password_file, password, or SIGHTLINE_KAFKA__SASL__PASSWORD.".into(),
            );
        }
    }
    errors
}

/// Calls `f` for every leaf (and every table that is not a section) with its dotted path.
fn walk(t: &toml::Table, prefix: &str, f: &mut dyn FnMut(&str, &toml::Value)) {
    for (k, v) in t {
        let path = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        match v {
            toml::Value::Table(inner) if SECTIONS.contains(&path.as_str()) => walk(inner, &path, f),
            _ => f(&path, v),
        }
    }
}

fn lookup<'a>(doc: &'a toml::Table, path: &str) -> Option<&'a toml::Value> {
    let mut parts = path.split('.');
    let mut cur = doc.get(parts.next()?)?;
    for p in parts {
        cur = cur.as_table()?.get(p)?;
    }
    Some(cur)
}

fn kind(v: &toml::Value) -> &'static str {
    match v {
        toml::Value::String(_) => "a string",
        toml::Value::Integer(_) => "an integer",
        toml::Value::Float(_) => "a float",
        toml::Value::Boolean(_) => "a boolean",
        toml::Value::Datetime(_) => "a date-time",
        toml::Value::Array(_) => "an array",
        toml::Value::Table(_) => "a table",
    }
}

fn check_type(ty: Ty, v: &toml::Value, base_dir: &Path) -> Result<(), String> {
    let want = |what: &str| Err(format!("expected {what}, found {}", kind(v)));
    match ty {
        Ty::Str | Ty::Secret => v.as_str().map(|_| ()).map_or_else(|| want("a string"), Ok),
        Ty::Int { min } => match v.as_integer() {
            Some(i) if i >= min => Ok(()),
            Some(i) => Err(format!("must be at least {min}, found {i}")),
            None => want("an integer"),
        },
        Ty::Bool => v
            .as_bool()
            .map(|_| ())
            .map_or_else(|| want("true or false"), Ok),
        Ty::OneOf(options) => match v.as_str() {
            Some(s) if options.contains(&s) => Ok(()),
            Some(s) => Err(format!("`{s}` is not one of {}", options.join(", "))),
            None => want(&format!("one of {}", options.join(", "))),
        },
        Ty::File => match v.as_str() {
            Some(s) => exists(s, base_dir, false),
            None => want("a file path (string)"),
        },
        Ty::Paths => match v.as_array() {
            Some(items) => {
                let mut problems = Vec::new();
                for item in items {
                    match item.as_str() {
                        Some(s) => {
                            if let Err(e) = exists(s, base_dir, true) {
                                problems.push(e);
                            }
                        }
                        None => {
                            problems.push(format!("expected path strings, found {}", kind(item)))
                        }
                    }
                }
                if problems.is_empty() {
                    Ok(())
                } else {
                    Err(problems.join("; "))
                }
            }
            None => want("an array of paths"),
        },
        Ty::Addr => match v.as_str() {
            Some(s) => s
                .parse::<SocketAddr>()
                .map(|_| ())
                .map_err(|_| format!("`{s}` is not a host:port address such as 127.0.0.1:9464")),
            None => want("a host:port string"),
        },
        Ty::Strs => match v.as_array() {
            Some(items) if items.iter().all(|i| i.is_str()) => Ok(()),
            _ => want("an array of strings"),
        },
        Ty::Regex => match v.as_str() {
            Some(r) => regex::Regex::new(r)
                .map(|_| ())
                .map_err(|e| format!("not a valid regular expression: {e}")),
            None => want("a regular expression (string)"),
        },
        Ty::StrMap => match v.as_table() {
            Some(t) => {
                let bad: Vec<_> = t
                    .iter()
                    .filter(|(_, v)| !v.is_str())
                    .map(|(k, _)| k.as_str())
                    .collect();
                if bad.is_empty() {
                    Ok(())
                } else {
                    Err(format!(
                        "values must be strings (librdkafka properties); not: {}",
                        bad.join(", ")
                    ))
                }
            }
            None => want("a table of strings"),
        },
    }
}

fn exists(p: &str, base_dir: &Path, dir_ok: bool) -> Result<(), String> {
    let path = Path::new(p);
    let full = if path.is_absolute() {
        path.to_path_buf()
    } else {
        base_dir.join(path)
    };
    match std::fs::metadata(&full) {
        Ok(m) if m.is_dir() && dir_ok => Ok(()),
        // Read, not only stat'ed: an unreadable secrets or CA file must fail here, at start
        // and in `check`, not at the first connection.
        Ok(m) if m.is_file() => std::fs::File::open(&full).map(|_| ()).map_err(|e| {
            format!(
                "file `{}` cannot be read: {e} (check its permissions for the user Sightline runs as)",
                full.display()
            )
        }),
        Ok(_) => Err(format!("`{}` is not a file", full.display())),
        Err(_) => Err(format!(
            "file `{}` does not exist (relative paths are resolved against the config file's directory)",
            full.display()
        )),
    }
}

/// The closest known key, for "did you mean" hints.
fn closest(path: &str) -> Option<&'static str> {
    let leaf = path.rsplit('.').next().unwrap_or(path);
    KEYS.iter()
        .map(|k| k.path)
        .filter(|k| {
            let kl = k.rsplit('.').next().unwrap_or(k);
            kl == leaf || strsim_close(kl, leaf)
        })
        .min_by_key(|k| k.len())
}

fn strsim_close(a: &str, b: &str) -> bool {
    // Same letters in a different case or with one typo: cheap edit distance <= 1.
    let (a, b) = (a.to_ascii_lowercase(), b.to_ascii_lowercase());
    if a == b {
        return true;
    }
    let (x, y): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    if x.len().abs_diff(y.len()) > 1 {
        return false;
    }
    let mut prev: Vec<usize> = (0..=y.len()).collect();
    for i in 1..=x.len() {
        let mut cur = vec![i; y.len() + 1];
        for j in 1..=y.len() {
            let cost = usize::from(x[i - 1] != y[j - 1]);
            cur[j] = (prev[j] + 1).min(cur[j - 1] + 1).min(prev[j - 1] + cost);
        }
        prev = cur;
    }
    prev[y.len()] <= 1
}

/// The environment variable that overrides `path`: `kafka.sasl.password` is
/// `SIGHTLINE_KAFKA__SASL__PASSWORD`.
pub fn env_name(path: &str) -> String {
    format!("SIGHTLINE_{}", path.replace('.', "__").to_ascii_uppercase())
}

/// Applies `SIGHTLINE_<SECTION>__<KEY>` variables to the document, typed by the key table.
/// `SIGHTLINE_KAFKA__OVERRIDES__FETCH_MIN_BYTES=1` sets the librdkafka property
/// `fetch.min.bytes`. Returns the problems (unknown variable, unparseable value).
pub fn apply_env(doc: &mut toml::Table, env: &[(String, String)]) -> Vec<ConfigError> {
    let mut errors = Vec::new();
    let mut vars: Vec<&(String, String)> = env
        .iter()
        .filter(|(k, _)| k.starts_with("SIGHTLINE_") && k.contains("__"))
        .collect();
    vars.sort();
    for (name, raw) in vars {
        let rest = &name["SIGHTLINE_".len()..];
        let parts: Vec<String> = rest.split("__").map(|p| p.to_ascii_lowercase()).collect();
        let mut fail = |reason: String| {
            errors.push(ConfigError {
                file: format!("environment variable {name}"),
                key: parts.join("."),
                reason,
            })
        };
        // A free-keyed map: the rest of the name is the map key, `_` standing for `.`.
        if parts.len() == 3 && format!("{}.{}", parts[0], parts[1]) == "kafka.overrides" {
            let table = section(doc, &["kafka", "overrides"]);
            table.insert(parts[2].replace('_', "."), toml::Value::String(raw.clone()));
            continue;
        }
        let path = parts.join(".");
        let Some(k) = find(&path) else {
            fail("no such configuration key; see the config reference in README.md".into());
            continue;
        };
        let value = match k.ty {
            Ty::Int { .. } => match raw.trim().parse::<i64>() {
                Ok(i) => toml::Value::Integer(i),
                Err(_) => {
                    fail(format!(
                        "expected an integer, found `{}`",
                        redact(k.ty, raw)
                    ));
                    continue;
                }
            },
            Ty::Bool => match raw.trim() {
                "true" | "1" => toml::Value::Boolean(true),
                "false" | "0" => toml::Value::Boolean(false),
                _ => {
                    fail(format!(
                        "expected true or false, found `{}`",
                        redact(k.ty, raw)
                    ));
                    continue;
                }
            },
            Ty::Paths | Ty::Strs => toml::Value::Array(
                raw.split(',')
                    .filter(|s| !s.trim().is_empty())
                    .map(|s| toml::Value::String(s.trim().to_string()))
                    .collect(),
            ),
            Ty::StrMap => {
                fail(
                    "set map entries one by one, e.g. SIGHTLINE_KAFKA__OVERRIDES__FETCH_MIN_BYTES"
                        .into(),
                );
                continue;
            }
            _ => toml::Value::String(raw.clone()),
        };
        let (sect, leaf) = path.rsplit_once('.').expect("keys are in sections");
        let sect_parts: Vec<&str> = sect.split('.').collect();
        section(doc, &sect_parts).insert(leaf.to_string(), value);
    }
    errors
}

fn redact(ty: Ty, raw: &str) -> String {
    if ty == Ty::Secret {
        "***".into()
    } else {
        raw.to_string()
    }
}

fn section<'a>(doc: &'a mut toml::Table, parts: &[&str]) -> &'a mut toml::Table {
    let mut cur = doc;
    for p in parts {
        let entry = cur
            .entry(p.to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        if !entry.is_table() {
            *entry = toml::Value::Table(toml::Table::new());
        }
        cur = entry.as_table_mut().expect("just made a table");
    }
    cur
}

/// The config reference as a Markdown table (README.md embeds it; a test keeps them equal).
pub fn reference_markdown() -> String {
    let mut out = String::from(
        "| key | type | default | environment variable | meaning |\n|---|---|---|---|---|\n",
    );
    for k in KEYS {
        let ty = match k.ty {
            Ty::Str => "string".to_string(),
            Ty::Int { min } => format!("integer ≥ {min}"),
            Ty::Bool => "bool".into(),
            Ty::OneOf(o) => o.join(" \\| "),
            Ty::Secret => "secret".into(),
            Ty::File => "file path".into(),
            Ty::Paths => "list of paths".into(),
            Ty::Addr => "host:port".into(),
            Ty::Strs => "list of strings".into(),
            Ty::Regex => "regex".into(),
            Ty::StrMap => "table of strings".into(),
        };
        let default = if k.required {
            "required".to_string()
        } else if k.default.is_empty() {
            "—".to_string()
        } else {
            format!("`{}`", k.default)
        };
        let env = if k.ty == Ty::StrMap {
            format!("`{}__<NAME>`", env_name(k.path))
        } else {
            format!("`{}`", env_name(k.path))
        };
        out.push_str(&format!(
            "| `{}` | {} | {} | {} | {} |\n",
            k.path, ty, default, env, k.doc
        ));
    }
    out
}
