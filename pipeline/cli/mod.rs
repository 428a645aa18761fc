//! The command line: `run`, `demo` and `check`. Errors at this edge are anyhow chains printed
//! as "error: what failed: why", with what to do where we know it.

pub mod check;
pub mod demo;
pub mod replay;
pub mod run;
pub mod state;

use crate::observe::logging::{self, LogFormat};
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser, Debug)]
#[command(
    name = "sightline",
    version,
    about = "Watches business events on Kafka and says when a business process goes wrong.",
    long_about = "Sightline consumes business events (orders, payments, shipments, invoices) from Kafka, \
tracks event age, consumer lag, schema drift and missing workflow steps, and reports on Kafka topics \
and in Prometheus.\n\nStart with `sightline demo`: it needs nothing installed."
)]
pub struct Cli {
    /// Log format: human (default) or json (one JSON object per line).
    #[arg(long, value_enum, default_value = "human", global = true)]
    pub log_format: LogFormat,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the pipeline against a Kafka cluster.
    #[command(
        after_help = "Example:\n  sightline run --config deploy/local/sightline.toml\n\n\
Every config key can be overridden from the environment, e.g.\n  SIGHTLINE_KAFKA__BOOTSTRAP_SERVERS=broker:9092 sightline run --config sightline.toml"
    )]
    Run {
        /// The runtime config file (TOML).
        #[arg(long, short, env = "SIGHTLINE_CONFIG")]
        config: PathBuf,
        /// For replays and backfills: read every input to the end offsets it has at start,
        /// then move the stream clock to the newest event time seen (minus the allowed
        /// lateness), fire every deadline due by then, commit, print a summary and exit 0.
        #[arg(long)]
        until_end: bool,
    },
    /// Run the whole pipeline on an in-process Kafka mock cluster with generated order-to-cash
    /// traffic, and print what it saw. Needs nothing installed.
    #[command(
        after_help = "Example:\n  sightline demo\n  sightline demo --orders 5000 --seconds 20 --http 127.0.0.1:0"
    )]
    Demo {
        /// Orders to generate (each is four events).
        #[arg(long, default_value_t = 2000)]
        orders: usize,
        /// Seconds over which the traffic is spread.
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// One poison record after every N good ones (0: none).
        #[arg(long, default_value_t = 400)]
        poison_every: usize,
        /// Seed of the traffic generator (the same seed gives the same traffic).
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// Address of /metrics, /healthz and /readyz during the demo.
        #[arg(long, default_value = "127.0.0.1:9464")]
        http: std::net::SocketAddr,
    },
    /// Send dead letters back to their original topics: filtered, rate-limited, idempotent per
    /// replay id, audited.
    #[command(after_help = "Examples:\n  \
sightline replay --config sightline.toml --from shop.orders.dlq --id fix-1234 --dry-run\n  \
sightline replay --config sightline.toml --from shop.orders.dlq --id fix-1234 --error-class invalid_event_time --rate 50\n\n\
Re-running the same --id resumes where it stopped and never sends a record twice.")]
    Replay(replay::ReplayArgs),
    /// Show what the state store holds (read-only): one instance's lineage, the oldest open
    /// instances, timers due soon; from a running instance or a stopped one's state directory.
    #[command(after_help = "Examples:\n  \
sightline state --url http://127.0.0.1:9464 instance --workflow order-to-cash --key O-1001\n  \
sightline state --url http://127.0.0.1:9464 open --top 10\n  \
sightline state --state-dir /var/lib/sightline --config sightline.toml timers")]
    State(state::StateArgs),
    /// Validate the config file and the topologies it names; report every problem at once.
    #[command(
        after_help = "Example:\n  sightline check --config deploy/local/sightline.toml\n\n\
Exit status 0 when the config, the topologies and the contracts are valid (warnings, such as \
drift that has already happened on the registry, are printed and do not fail), 1 when anything \
is not, or when there is a warning under --strict."
    )]
    Check {
        /// The runtime config file (TOML).
        #[arg(long, short, env = "SIGHTLINE_CONFIG")]
        config: PathBuf,
        /// Print the workflows as Graphviz dot instead of text.
        #[arg(long)]
        dot: bool,
        /// Treat warnings (drift already on the registry) as errors.
        #[arg(long)]
        strict: bool,
        /// Also read a few hundred records of every source keyed by the correlation key and
        /// check that each is on the partition its partitioner puts its key.
        #[arg(long)]
        sample: bool,
    },
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let default_level = match cli.command {
        Command::Demo { .. } => "error",
        _ => "info",
    };
    logging::init(cli.log_format, default_level);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Run { config, until_end } => run::run(&config, until_end).await,
            Command::Demo {
                orders,
                seconds,
                poison_every,
                seed,
                http,
            } => {
                demo::demo(crate::demo::DemoOptions {
                    orders,
                    seconds,
                    poison_every,
                    http,
                    seed,
                })
                .await
            }
            Command::Check {
                config,
                dot,
                strict,
                sample,
            } => check::check(&config, dot, strict, sample).await,
            Command::Replay(args) => replay::replay(args).await,
            Command::State(args) => state::state(args).await,
        }
    });
    // A Kafka call given up on as stuck may still hold a blocking thread: exit without it.
    runtime.shutdown_timeout(std::time::Duration::from_secs(5));
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
