//! `sightline demo`: the whole pipeline on librdkafka's in-process mock cluster, fed by a
//! built-in order-to-cash generator. Nothing to install, nothing to start. It goes through the
//! same wiring as `sightline run` (engine::setup); only the cluster is in-process.

pub mod carrier_feed;
pub mod generator;
pub mod summary;
pub mod warehouse_picks;

use crate::config::Config;
use crate::engine;
use crate::observe::health::Health;
use crate::topology::Topology;
use anyhow::Context;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::ClientConfig;
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};
use summary::Summary;
use tokio::sync::watch;

/// The order-to-cash topology the demo runs (the same file as in topologies/).
pub const TOPOLOGY: &str = include_str!("../../topologies/order-to-cash.yaml");

/// The contracts it names (the same files as in schemas/), written to a temporary schemas dir.
const CONTRACTS: [(&str, &str); 4] = [
    (
        "order-to-cash/order_confirmed.avsc",
        include_str!("../../schemas/order-to-cash/order_confirmed.avsc"),
    ),
    (
        "order-to-cash/payment_captured.avsc",
        include_str!("../../schemas/order-to-cash/payment_captured.avsc"),
    ),
    (
        "order-to-cash/shipment_dispatched.avsc",
        include_str!("../../schemas/order-to-cash/shipment_dispatched.avsc"),
    ),
    (
        "order-to-cash/invoice_posted.avsc",
        include_str!("../../schemas/order-to-cash/invoice_posted.avsc"),
    ),
];

#[derive(Debug, Clone)]
pub struct DemoOptions {
    pub orders: usize,
    pub seconds: u64,
    pub poison_every: usize,
    pub http: SocketAddr,
    pub seed: u64,
}

impl Default for DemoOptions {
    fn default() -> Self {
        DemoOptions {
            orders: 2_000,
            seconds: 10,
            poison_every: 400,
            http: SocketAddr::from(([127, 0, 0, 1], 9464)),
            seed: 42,
        }
    }
}

/// What the demo saw, for its final table and for tests.
#[derive(Debug, Clone)]
pub struct DemoReport {
    pub produced: usize,
    pub summary: Summary,
    pub http: SocketAddr,
    pub elapsed: Duration,
}

/// Runs the demo; `on_http` is told where the HTTP server listens once it does.
pub async fn run(
    opts: DemoOptions,
    on_http: Option<tokio::sync::oneshot::Sender<SocketAddr>>,
) -> anyhow::Result<DemoReport> {
    let started = Instant::now();
    crate::observe::metrics::init();
    let mock = MockCluster::new(1).context("starting the in-process mock Kafka cluster")?;
    let bootstrap = mock.bootstrap_servers();
    println!("demo: in-process Kafka cluster at {bootstrap}");

    let work = std::env::temp_dir().join(format!("sightline-demo-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    for (name, text) in CONTRACTS {
        let path = work.join("schemas").join(name);
        std::fs::create_dir_all(path.parent().expect("has a parent"))?;
        std::fs::write(&path, text)?;
    }
    let cfg_text = format!(
        "[kafka]\nbootstrap_servers = \"{bootstrap}\"\ngroup_id = \"sightline-demo\"\ncommit_interval_ms = 200\n\
         [kafka.topics]\npartitions = 3\nreplication_factor = 1\n[state]\ndir = \"{}\"\n[http]\nbind = \"{}\"\n\
         [topologies]\npaths = []\n[schemas]\ndir = \"{}\"\n\
         [lag]\ngroups = [\"{}\"]\ntopics = [\"{}\"]\ninterval_ms = 250\nwindow = 4\n\
         [dead_letters]\ninterval_ms = 500\n",
        work.join("state").display(),
        opts.http,
        work.join("schemas").display(),
        carrier_feed::WATCHED_GROUP,
        carrier_feed::TOPIC,
    );
    let cfg = Config::from_str_with_env(&cfg_text, "<demo>", Path::new("."), &[])
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let parse = |text: &str, path: &str| {
        Topology::parse(text, Path::new(path)).map_err(|e| {
            let lines: Vec<String> = e.iter().map(|e| e.to_string()).collect();
            anyhow::anyhow!("{}", lines.join("\n"))
        })
    };
    let topology = parse(TOPOLOGY, "topologies/order-to-cash.yaml")?;
    let feed_topology = parse(carrier_feed::TOPOLOGY, "<demo>/carrier-feed.yaml")?;
    let picks_topology = parse(&warehouse_picks::broken(), warehouse_picks::FILE)?;
    let topologies = vec![topology, feed_topology, picks_topology];

    // The mock cluster has no CreateTopics: make inputs and outputs through its own API.
    for t in generator::TOPICS
        .iter()
        .chain([&carrier_feed::TOPIC, &warehouse_picks::TOPIC])
    {
        mock.create_topic(t, 3, 1)
            .context("creating a demo topic")?;
    }
    mock.create_topic(&engine::announce::topic(&cfg.kafka.group_id), 3, 1)
        .context("creating the demo's announce topic")?;
    let changelog = engine::setup::changelog_spec(&cfg, 3);
    mock.create_topic(&changelog.name, changelog.partitions, 1)
        .context("creating the demo's state changelog")?;
    for t in engine::setup::output_topics(&cfg, &topologies) {
        mock.create_topic(&t.name, t.partitions, 1)
            .context("creating a demo topic")?;
    }
    for t in [&cfg.replay.ledger_topic, &cfg.replay.audit_topic] {
        mock.create_topic(t, 1, 1)
            .context("creating the demo's replay topics")?;
    }

    let health = Health::new();
    let (bound, http_task) = match crate::serve::http::serve(cfg.http.bind, health.clone()).await {
        Ok(x) => x,
        Err(e) => {
            // A busy default port must not stop the demo: take any free one.
            println!("demo: {} is busy ({e}); using a free port", cfg.http.bind);
            crate::serve::http::serve(SocketAddr::from(([127, 0, 0, 1], 0)), health.clone()).await?
        }
    };
    println!("demo: metrics at http://{bound}/metrics, health at /healthz and /readyz");
    if let Some(tx) = on_http {
        let _ = tx.send(bound);
    }

    // The reload channel: the picks fix arrives on it, as SIGHUP's re-read files do in `run`.
    let (reload_tx, reload_rx) = watch::channel(std::sync::Arc::new(topologies.clone()));
    let engine = engine::setup::build(
        &cfg,
        &topologies,
        health.clone(),
        engine::setup::BuildOptions {
            create_topics: false,
            sink: None,
            reload: Some(reload_rx),
            until_end: None,
        },
    )
    .await?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let engine_task = tokio::spawn(engine.run(stop_rx));

    // Produce the generated traffic, spread over `seconds`.
    let now = chrono::Utc::now().timestamp_millis();
    let plan = generator::generate(
        opts.seed,
        opts.orders,
        now - 20 * 86_400_000,
        now,
        opts.poison_every,
    );
    let records = plan.records;
    // The shop's producers are Java clients (murmur2), as the topologies expect (Sightline checks).
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("linger.ms", "5")
        .set("partitioner", "murmur2_random")
        .create()
        .context("creating the demo producer")?;
    let produced = records.len();
    let orders = async {
        let ticks = (opts.seconds * 5).max(1) as usize;
        let per_tick = produced.div_ceil(ticks);
        let mut next_report = Instant::now() + Duration::from_secs(2);
        for chunk in records.chunks(per_tick) {
            let tick = Instant::now();
            let sends: Vec<_> = chunk
                .iter()
                .map(|r| {
                    let mut rec = FutureRecord::<str, [u8]>::to(r.topic).payload(&r.value);
                    if let Some(k) = &r.key {
                        rec = rec.key(k.as_str());
                    }
                    producer.send(rec, Duration::from_secs(10))
                })
                .collect();
            for s in futures::future::join_all(sends).await {
                s.map_err(|(e, _)| anyhow::anyhow!("demo producer: {e}"))?;
            }
            if Instant::now() >= next_report {
                println!(
                    "{}",
                    Summary::read().progress_line(produced, started.elapsed())
                );
                next_report += Duration::from_secs(2);
            }
            tokio::time::sleep(Duration::from_millis(200).saturating_sub(tick.elapsed())).await;
        }
        anyhow::Ok(())
    };
    let (feed_stop, feed_stopped) = watch::channel(false);
    // The feed's timeline starts once Sightline reads (its silence and stall are measured
    // against a running consumer, not against start-up).
    let assigned_by = Instant::now() + Duration::from_secs(30);
    while !health.readiness().assigned && Instant::now() < assigned_by {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let feed_started = Instant::now();
    let feed = tokio::spawn(carrier_feed::run(bootstrap.clone(), feed_stopped));
    warehouse_picks::produce(&producer).await?;
    orders.await?;
    // The feed's timeline (a silence, a stalled consumer) plays out in full.
    tokio::time::sleep(carrier_feed::TIMELINE.saturating_sub(feed_started.elapsed())).await;
    let mut next_report = Instant::now() + Duration::from_secs(2);
    producer.flush(Duration::from_secs(10))?;

    // Wait until every produced record was read (good or dead-lettered), with a deadline.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let s = Summary::read();
        let read = s.order_records_consumed() as usize;
        if read >= produced || Instant::now() >= deadline {
            break;
        }
        if Instant::now() >= next_report {
            println!("{}", s.progress_line(produced, started.elapsed()));
            next_report += Duration::from_secs(2);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Then until the stream clock has fired every due timer: nothing new for a second.
    let settled = |s: &Summary| (s.timers_fired, s.outputs_total());
    let mut last = settled(&Summary::read());
    let mut quiet_since = Instant::now();
    while Instant::now() < deadline + Duration::from_secs(15)
        && quiet_since.elapsed() < Duration::from_secs(1)
    {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = settled(&Summary::read());
        if now != last {
            last = now;
            quiet_since = Instant::now();
        }
    }
    let replays = fix_and_replay(&cfg, &topologies, &reload_tx, started).await?;
    let _ = feed_stop.send(true);
    feed.await.context("carrier feed task")??;
    let _ = stop_tx.send(true);
    if let engine::Ended::Restart(why) = engine_task.await.context("engine task")?? {
        anyhow::bail!("the demo's engine stopped: {why}");
    }
    http_task.abort();
    let mut summary = Summary::read();
    summary.replays = replays;
    // What a data engineer subscribed to the outputs sees.
    let drift_count = summary.drift_events.values().sum::<u64>() as usize;
    let alert_count = summary.alerts.values().sum::<u64>() as usize;
    summary.drift_records = read_outputs(&bootstrap, &cfg.outputs.drift, drift_count)?;
    summary.alert_records = read_outputs(&bootstrap, &cfg.outputs.alerts, alert_count)?;
    let lag_count = summary.lag_changes.values().sum::<u64>() as usize;
    summary.lag_records = read_outputs(&bootstrap, &cfg.outputs.lag, lag_count)?;
    drop(producer);
    drop(mock);
    let _ = std::fs::remove_dir_all(&work);
    Ok(DemoReport {
        produced,
        summary,
        http: bound,
        elapsed: started.elapsed(),
    })
}

/// The dead-letter story's second half (see [`warehouse_picks`]): wait for the dead-letter
/// alert, reload the fixed mapping, replay (a dry run first), and wait until the replayed
/// picks are read and the alert resolves. Returns the dry run's and the replay's summaries.
async fn fix_and_replay(
    cfg: &Config,
    topologies: &[Topology],
    reload: &watch::Sender<std::sync::Arc<Vec<Topology>>>,
    started: Instant,
) -> anyhow::Result<Vec<(String, crate::replay::Summary)>> {
    let picks_events = |s: &Summary| {
        s.events
            .iter()
            .filter(|((t, _), _)| t == warehouse_picks::TOPIC)
            .map(|(_, n)| n)
            .sum::<u64>()
    };
    let dlq_alerts = |s: &Summary, status: &str| {
        s.alerts
            .get(&("dead_letter_depth".to_string(), status.to_string()))
            .copied()
            .unwrap_or(0)
    };
    wait_for("the dead-letter alert on warehouse.picks.dlq", 20, |s| {
        dlq_alerts(s, "firing") >= 1
    })
    .await?;
    let s = Summary::read();
    println!(
        "demo: {:>5.1}s  {} of {} warehouse picks were dead-lettered (invalid_event_time: the new scanner app sends epoch milliseconds, the source expects RFC 3339); the dead-letter monitor fired",
        started.elapsed().as_secs_f64(),
        s.dead_lettered
            .iter()
            .filter(|((t, _), _)| t == warehouse_picks::TOPIC)
            .map(|(_, n)| n)
            .sum::<u64>(),
        warehouse_picks::PICKS
    );
    // The fix: `event_time.format: auto`, applied by a reload of the source mappings.
    let parse = |text: &str| {
        Topology::parse(text, Path::new(warehouse_picks::FILE))
            .map_err(|_| anyhow::anyhow!("the fixed picks topology does not parse"))
    };
    let fixed: Vec<Topology> = topologies
        .iter()
        .map(|t| {
            if t.file == Path::new(warehouse_picks::FILE) {
                parse(&warehouse_picks::fixed())
            } else {
                Ok(t.clone())
            }
        })
        .collect::<anyhow::Result<_>>()?;
    crate::topology::reload::mapping_change(topologies, &fixed)
        .map_err(|p| anyhow::anyhow!("the picks fix is not a mapping change: {}", p.join("; ")))?;
    reload
        .send(std::sync::Arc::new(fixed))
        .map_err(|_| anyhow::anyhow!("the engine stopped before the fix"))?;
    println!(
        "demo: {:>5.1}s  fix: the picks source reads event_time as RFC 3339 or epoch ms (format: auto); mappings reloaded",
        started.elapsed().as_secs_f64()
    );
    let mut out = Vec::new();
    for dry_run in [true, false] {
        let what = if dry_run { "dry run" } else { "replay" };
        println!(
            "demo: {:>5.1}s  sightline replay --from {} --original-topic {} --id {}{}",
            started.elapsed().as_secs_f64(),
            warehouse_picks::DEAD_LETTERS,
            warehouse_picks::TOPIC,
            warehouse_picks::REPLAY_ID,
            if dry_run { " --dry-run" } else { "" }
        );
        let s = crate::replay::run(cfg, warehouse_picks::replay_options(dry_run))
            .await
            .with_context(|| format!("the demo's {what}"))?;
        out.push((what.to_string(), s));
    }
    wait_for(
        "the replayed picks to be read and the dead-letter alert to resolve",
        20,
        |s| picks_events(s) >= warehouse_picks::PICKS as u64 && dlq_alerts(s, "resolved") >= 1,
    )
    .await?;
    println!(
        "demo: {:>5.1}s  all {} picks read; the dead-letter depth is 0 and the monitor resolved",
        started.elapsed().as_secs_f64(),
        warehouse_picks::PICKS
    );
    Ok(out)
}

/// Waits until the metrics say `done`, `secs` at most.
async fn wait_for(what: &str, secs: u64, done: impl Fn(&Summary) -> bool) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !done(&Summary::read()) {
        if Instant::now() >= deadline {
            anyhow::bail!("the demo waited {secs} s for {what}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

/// Reads `n` JSON records from an output topic of the mock cluster (10 s at most).
fn read_outputs(bootstrap: &str, topic: &str, n: usize) -> anyhow::Result<Vec<serde_json::Value>> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::Message;
    if n == 0 {
        return Ok(Vec::new());
    }
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", format!("demo-reader-{topic}"))
        .set("auto.offset.reset", "earliest")
        .create()?;
    c.subscribe(&[topic])?;
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while out.len() < n && Instant::now() < deadline {
        if let Some(Ok(m)) = c.poll(Duration::from_millis(100)) {
            if let Some(v) = m.payload().and_then(|p| serde_json::from_slice(p).ok()) {
                out.push(v);
            }
        }
    }
    Ok(out)
}
