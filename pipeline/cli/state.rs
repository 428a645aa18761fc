//! `sightline state`: what the state store holds, read-only, from a running instance (its HTTP
//! API) or from a stopped instance's state directory.

use crate::config::Config;
use anyhow::Context;
use clap::{Args, Subcommand};
use serde_json::Value;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Args, Debug)]
pub struct StateArgs {
    /// A running instance's HTTP address (http.bind), e.g. http://127.0.0.1:9464.
    #[arg(long, conflicts_with = "state_dir")]
    pub url: Option<String>,
    /// A stopped instance's state directory (state.dir).
    #[arg(long)]
    pub state_dir: Option<PathBuf>,
    /// With --state-dir: the config, so steps are shown by name.
    #[arg(long, short)]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub what: What,
}

#[derive(Subcommand, Debug)]
pub enum What {
    /// One instance: its steps, alerts and full lineage.
    Instance {
        #[arg(long)]
        workflow: String,
        #[arg(long)]
        key: String,
    },
    /// Open instances by workflow and latest step, and the oldest ones.
    Open {
        #[arg(long)]
        workflow: Option<String>,
        #[arg(long, default_value_t = 20)]
        top: usize,
    },
    /// Timers due within the next hour (or --within-ms), overdue ones included.
    Timers {
        #[arg(long, default_value_t = 3_600_000)]
        within_ms: i64,
    },
}

fn workflows(
    config: &Option<PathBuf>,
) -> anyhow::Result<Vec<crate::detectors::workflow::Workflow>> {
    let Some(path) = config else {
        return Ok(Vec::new());
    };
    let cfg = Config::load(path).map_err(|e| anyhow::anyhow!("{e}"))?;
    crate::detectors::workflow::compile_all(&crate::topology::load_configured(&cfg)?)
}

pub async fn state(a: StateArgs) -> anyhow::Result<ExitCode> {
    let value: Value = match (&a.url, &a.state_dir) {
        (Some(url), _) => {
            let path = match &a.what {
                What::Instance { workflow, key } => format!("/api/workflows/{workflow}/instances/{key}"),
                What::Open { workflow, top } => format!(
                    "/api/instances?top={top}{}",
                    workflow.as_ref().map(|w| format!("&workflow={w}")).unwrap_or_default()
                ),
                What::Timers { within_ms } => format!("/api/timers?within_ms={within_ms}"),
            };
            let url = format!("{}{path}", url.trim_end_matches('/'));
            let resp = reqwest::get(&url)
                .await
                .with_context(|| format!("asking {url} (is Sightline running there? --url is its http.bind)"))?;
            let status = resp.status();
            let body: Value = resp.json().await.with_context(|| format!("reading the answer of {url}"))?;
            if !status.is_success() {
                anyhow::bail!("{url}: {status}: {}", body["error"].as_str().unwrap_or("no details"));
            }
            body
        }
        (None, Some(dir)) => {
            let wfs = workflows(&a.config)?;
            let store = crate::state::Store::open_read_only(dir)?;
            let now = chrono::Utc::now().timestamp_millis();
            match &a.what {
                What::Instance { workflow, key } => crate::state::query::instance(&store, &wfs, workflow, key)?
                    .with_context(|| format!("no instance of workflow `{workflow}` with key `{key}` in {}", dir.display()))?,
                What::Open { workflow, top } => {
                    crate::state::query::open_instances(&store, &wfs, workflow.as_deref(), *top, now)?
                }
                What::Timers { within_ms } => {
                    crate::state::query::timers_due(&store, &wfs, i64::MIN + 1, now + within_ms)?
                }
            }
        }
        (None, None) => anyhow::bail!(
            "say where the state is: --url http://<host:port> of a running instance, or --state-dir <dir> of a stopped one"
        ),
    };
    println!("{}", serde_json::to_string_pretty(&value)?);
    Ok(ExitCode::SUCCESS)
}
