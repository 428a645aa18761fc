//! Dead-letter depth counts records, not offsets: 14 dead letters written in 14 transactions
//! (as Sightline writes its own) take 28 offsets with their commit markers, and the depth is 14.
//! A full replay brings it to 0.

mod common;

use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fourteen_transactional_dead_letters_are_a_depth_of_fourteen_then_zero() {
    common::require_kafka();
    let (input, dlq, orig) = (
        common::unique("in"),
        common::unique("txn-dlq"),
        common::unique("orig"),
    );
    common::create_topics(&[&input, &dlq, &orig], 1).await;
    let sources = format!(
        "  - name: input\n    topic: {input}\n    format: json\n    event_type: {{ field: type }}\n    \
         key: {{ field: id }}\n    event_time: {{ field: at }}\n"
    );
    let setup = common::Setup::new(&sources, None, &[]);
    setup.add_config(&format!(
        "[replay]\nledger_topic = \"{}\"\naudit_topic = \"{}\"\n[dead_letters]\ntopics = [\"{dlq}\"]\ninterval_ms = 500\n",
        common::unique("ledger"),
        common::unique("audit")
    ));
    let p: ThreadedProducer<DefaultProducerContext> = common::client()
        .set("transactional.id", common::unique("dlq-writer"))
        .create()
        .unwrap();
    p.init_transactions(Duration::from_secs(30)).unwrap();
    for i in 0..14 {
        p.begin_transaction().unwrap();
        let h = OwnedHeaders::new()
            .insert(Header {
                key: "sightline.original.topic",
                value: Some(orig.as_str()),
            })
            .insert(Header {
                key: "sightline.error.class",
                value: Some("invalid_json"),
            });
        let key = format!("k{i}");
        p.send(BaseRecord::to(&dlq).key(&key).payload("x").headers(h))
            .map_err(|(e, _)| e)
            .unwrap();
        p.commit_transaction(Duration::from_secs(30)).unwrap();
    }
    let (_, high) = {
        use rdkafka::consumer::{BaseConsumer, Consumer};
        let c: BaseConsumer = common::client().create().unwrap();
        c.fetch_watermarks(&dlq, 0, Duration::from_secs(5)).unwrap()
    };
    assert_eq!(high, 28, "14 records and 14 commit markers");

    let sl = setup.start().await;
    let depth = format!("sightline_dead_letter_depth{{topic=\"{dlq}\"}}");
    sl.wait_metric(&depth, 14, Duration::from_secs(60)).await;
    let config = setup.config().display().to_string();
    common::sightline_ok(
        &[
            "replay",
            "--no-progress",
            "--config",
            &config,
            "--from",
            &dlq,
            "--id",
            "all",
            "--rate",
            "0",
        ],
        &[],
    );
    sl.wait_metric(&depth, 0, Duration::from_secs(60)).await;
    sl.stop().await;
}

/// Runs `sightline replay` with `args`; (success, stdout + stderr).
fn replay(config: &str, args: &[&str]) -> (bool, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sightline"))
        .args(["replay", "--no-progress", "--config", config])
        .args(args)
        .output()
        .expect("sightline runs");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// A replay that selects nothing changes nothing: depth, ledger and alert stay. A replay id
/// cannot be reused with another selection, a missing target is refused unless asked to create
/// it, and an unknown error class is an error naming the classes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_that_selects_nothing_leaves_depth_ledger_and_alert_as_they_were() {
    common::require_kafka();
    let (input, dlq, orig) = (
        common::unique("in"),
        common::unique("estate-dlq"),
        common::unique("orig"),
    );
    common::create_topics(&[&input, &dlq, &orig], 1).await;
    let sources = format!(
        "  - name: input\n    topic: {input}\n    format: json\n    event_type: {{ field: type }}\n    \
         key: {{ field: id }}\n    event_time: {{ field: at }}\n\
         monitors:\n  dead_letters:\n    - {{ name: estate, topic: {dlq}, max_depth: 10 }}\n"
    );
    let setup = common::Setup::new(&sources, None, &[]);
    let ledger = common::unique("ledger");
    setup.add_config(&format!(
        "[replay]\nledger_topic = \"{ledger}\"\naudit_topic = \"{}\"\n[dead_letters]\ntopics = [\"{dlq}\"]\ninterval_ms = 500\n",
        common::unique("audit")
    ));
    common::produce_dead_letters(&dlq, 14, Some(&orig)).await;
    let sl = setup.start().await;
    let depth = format!("sightline_dead_letter_depth{{topic=\"{dlq}\"}}");
    sl.wait_metric(&depth, 14, Duration::from_secs(60)).await;
    let id = format!("dead_letters/estate/{dlq}/dead_letter_depth");
    let alerts = format!("{}.alerts", setup.out);
    let firing = common::read_topic(&alerts, 1, Duration::from_secs(60));
    assert_eq!(
        common::alert_ids(&firing),
        vec![(id.clone(), "FIRING".to_string())]
    );

    let config = setup.config().display().to_string();
    let (ok, out) = replay(
        &config,
        &[
            "--from",
            &dlq,
            "--id",
            "none",
            "--rate",
            "0",
            "--original-topic",
            "no-such-topic",
        ],
    );
    assert!(ok, "{out}");
    assert!(out.contains("14 read, 0 selected, 0 sent"), "{out}");
    let ledger_records = common::read_topic(&ledger, 1, Duration::from_secs(5));
    assert!(
        ledger_records.iter().all(|r| r
            .value
            .as_deref()
            .is_some_and(|v| v.is_empty() || v.starts_with(b"{"))),
        "the ledger records no dead letter as done: {:?}",
        ledger_records
            .iter()
            .map(|r| String::from_utf8_lossy(r.value.as_deref().unwrap_or_default()).into_owned())
            .collect::<Vec<_>>()
    );
    // The watch reads the ledger on its interval; wait for it to have read what was written.
    common::wait_for(
        "the watch to read the ledger",
        Duration::from_secs(30),
        async || {
            (sl.metric("sightline_replays_total{result=\"completed\"}")
                .await
                >= 1)
                .then_some(())
        },
    )
    .await;
    assert_eq!(
        sl.metric(&depth).await,
        14,
        "a replay that selected nothing leaves the depth"
    );
    assert_eq!(
        common::alert_ids(&common::read_topic(&alerts, 1, Duration::from_secs(3))),
        vec![(id.clone(), "FIRING".to_string())],
        "and the alert"
    );

    // The same id with another selection: refused.
    let (ok, out) = replay(&config, &["--from", &dlq, "--id", "none", "--rate", "0"]);
    assert!(
        !ok && out.contains("was first run with another selection"),
        "{out}"
    );
    // A target that does not exist: refused, unless asked to create it.
    let missing = common::unique("missing-target");
    let (ok, out) = replay(
        &config,
        &[
            "--from", &dlq, "--id", "t1", "--to", &missing, "--rate", "0",
        ],
    );
    assert!(
        !ok && out.contains(&format!("the target topic `{missing}` does not exist")),
        "{out}"
    );
    // An unknown error class: an error naming the classes.
    let (ok, out) = replay(
        &config,
        &["--from", &dlq, "--id", "t2", "--error-class", "invalid_jsn"],
    );
    assert!(
        !ok && out.contains("is not an error class") && out.contains("invalid_json, "),
        "{out}"
    );
    // Created on request, and then the depth falls to 0 and the alert resolves.
    let (ok, out) = replay(
        &config,
        &[
            "--from",
            &dlq,
            "--id",
            "t3",
            "--to",
            &missing,
            "--create-target",
            "--rate",
            "0",
        ],
    );
    assert!(ok && out.contains("14 sent"), "{out}");
    sl.wait_metric(&depth, 0, Duration::from_secs(60)).await;
    let both = common::read_topic(&alerts, 2, Duration::from_secs(60));
    assert_eq!(
        common::alert_ids(&both),
        vec![
            (id.clone(), "FIRING".to_string()),
            (id, "RESOLVED".to_string())
        ]
    );
    sl.stop().await;
}
