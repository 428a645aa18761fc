//! `sightline replay`: the command line of [`crate::replay`].

use crate::config::Config;
use crate::replay::{Filter, Options};
use anyhow::Context;
use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Args, Debug)]
pub struct ReplayArgs {
    /// The runtime config file (TOML): Kafka connection, ledger and audit topics.
    #[arg(long, short, env = "SIGHTLINE_CONFIG")]
    pub config: PathBuf,
    /// The dead-letter topic (or any topic) to replay from.
    #[arg(long)]
    pub from: String,
    /// The replay id. Re-running an id resumes it; records it sent are never sent again.
    /// Default: a new id, printed so the run can be resumed.
    #[arg(long)]
    pub id: Option<String>,
    /// Send everything here instead of each record's original topic.
    #[arg(long)]
    pub to: Option<String>,
    /// List what would be replayed and count it; send nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Records per second at most (0: no limit).
    #[arg(long, default_value_t = 100.0)]
    pub rate: f64,
    /// Replay records that already failed replay `replay.max_attempts` times.
    #[arg(long)]
    pub force: bool,
    /// Only dead letters written at or after this time (RFC 3339).
    #[arg(long)]
    pub since: Option<String>,
    /// Only dead letters written before this time (RFC 3339).
    #[arg(long)]
    pub until: Option<String>,
    /// Only dead-letter offsets at or after this one (every partition).
    #[arg(long)]
    pub from_offset: Option<i64>,
    /// Only dead-letter offsets before this one (every partition).
    #[arg(long)]
    pub until_offset: Option<i64>,
    /// Only this error class (repeatable): Sightline's class names, or the exception class of
    /// Kafka Connect and Spring Kafka.
    #[arg(long = "error-class")]
    pub error_class: Vec<String>,
    /// Only records that came from this topic.
    #[arg(long)]
    pub original_topic: Option<String>,
    /// Only records whose key matches this regex.
    #[arg(long)]
    pub key_pattern: Option<String>,
    /// Only records with this header value: NAME=VALUE.
    #[arg(long)]
    pub header: Option<String>,
    /// No progress bar.
    #[arg(long)]
    pub no_progress: bool,
    /// Mark the selected dead letters done without sending them (they leave the depth and no
    /// later run of this id sends them).
    #[arg(long)]
    pub skip: bool,
    /// Create a target topic that does not exist (otherwise the replay refuses it).
    #[arg(long)]
    pub create_target: bool,
}

/// An error class to filter on: one of Sightline's, or a Java exception class (Kafka Connect,
/// Spring Kafka), which has dots.
fn check_classes(classes: &[String]) -> anyhow::Result<()> {
    use crate::deadletter::ErrorClass;
    for c in classes {
        if ErrorClass::parse(c).is_none() && !c.contains('.') {
            anyhow::bail!(
                "--error-class `{c}` is not an error class. Sightline's are: {}; a Kafka Connect or Spring Kafka \
                 dead letter is filtered by its exception class (e.g. org.apache.kafka.connect.errors.DataException)",
                ErrorClass::ALL
                    .iter()
                    .map(|c| c.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
    }
    Ok(())
}

fn time(flag: &str, v: &Option<String>) -> anyhow::Result<Option<i64>> {
    v.as_ref()
        .map(|t| {
            chrono::DateTime::parse_from_rfc3339(t)
                .map(|d| d.timestamp_millis())
                .with_context(|| {
                    format!("{flag} `{t}`: not an RFC 3339 time (e.g. 2026-11-23T10:00:00Z)")
                })
        })
        .transpose()
}

pub async fn replay(a: ReplayArgs) -> anyhow::Result<ExitCode> {
    let cfg = Config::load(&a.config).map_err(|e| anyhow::anyhow!("{e}"))?;
    let header = match &a.header {
        Some(h) => {
            let (k, v) = h
                .split_once('=')
                .with_context(|| format!("--header `{h}`: write NAME=VALUE"))?;
            Some((k.to_string(), v.to_string()))
        }
        None => None,
    };
    anyhow::ensure!(a.rate >= 0.0, "--rate must be 0 (no limit) or more");
    check_classes(&a.error_class)?;
    let id =
        a.id.clone()
            .unwrap_or_else(|| format!("replay-{}", uuid::Uuid::new_v4().simple()));
    if a.id.is_none() {
        eprintln!("replay id: {id} (pass --id {id} to resume this replay)");
    }
    let opts = Options {
        id: id.clone(),
        from: a.from.clone(),
        to: a.to.clone(),
        dry_run: a.dry_run,
        rate: a.rate,
        force: a.force,
        progress: !a.no_progress,
        skip: a.skip,
        create_target: a.create_target,
        filter: Filter {
            since_ms: time("--since", &a.since)?,
            until_ms: time("--until", &a.until)?,
            from_offset: a.from_offset,
            until_offset: a.until_offset,
            error_classes: a.error_class.clone(),
            original_topic: a.original_topic.clone(),
            key_pattern: a.key_pattern.clone(),
            header,
        },
    };
    let s = crate::replay::run(&cfg, opts).await?;
    println!(
        "replay {id} from {}{}: {} read, {} selected, {} sent, {} skipped by request, {} filtered out (still pending), {} skipped (replayed {} times already), {} skipped (no original topic; use --to), {} records done by earlier runs of this id",
        a.from,
        if a.dry_run { " (dry run: nothing sent)" } else { "" },
        s.scanned,
        s.selected,
        s.sent,
        s.skipped_by_request,
        s.filtered_out,
        s.skipped_max_attempts,
        cfg.replay.max_attempts,
        s.skipped_no_target,
        s.done_before
    );
    Ok(ExitCode::SUCCESS)
}
