//! `sightline replay` against the real broker: filters select exactly the right dead letters,
//! a dry run sends nothing, re-running an id sends nothing more, the rate limit holds, a replay
//! killed mid-way finishes with no duplicates and no gaps when re-run, and Kafka Connect and
//! Spring Kafka dead letters go back to their original topics.

mod common;

use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use std::collections::BTreeSet;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

const CLASSES: [&str; 3] = ["invalid_json", "missing_key", "invalid_event_time"];

struct Replay {
    setup: common::Setup,
    audit: String,
}

impl Replay {
    fn new() -> Replay {
        let setup = common::Setup::new("", None, &[]);
        let audit = common::unique("audit");
        setup.add_config(&format!(
            "[replay]\nledger_topic = \"{}\"\naudit_topic = \"{audit}\"\n",
            common::unique("ledger")
        ));
        Replay { setup, audit }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_sightline"));
        c.args(["replay", "--no-progress", "--config"])
            .arg(self.setup.config())
            .args(args)
            .env("SIGHTLINE_OPERATOR", "test-operator");
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        let config = self.setup.config().display().to_string();
        common::sightline_ok(
            &[&["replay", "--no-progress", "--config", &config][..], args].concat(),
            &[("SIGHTLINE_OPERATOR", "test-operator")],
        )
    }
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

async fn produce_with(
    p: &FutureProducer,
    topic: &str,
    key: &str,
    value: &str,
    headers: &[(&str, &[u8])],
) {
    let mut h = OwnedHeaders::new();
    for (k, v) in headers {
        h = h.insert(Header {
            key: k,
            value: Some(*v),
        });
    }
    p.send(
        FutureRecord::to(topic).key(key).payload(value).headers(h),
        Duration::from_secs(10),
    )
    .await
    .expect("produced");
}

/// Writes `n` Sightline dead letters to `dlq`: record i came from `a` when i is even (else `b`),
/// with error class CLASSES[i % 3], key `k-i`, value `v-i`.
async fn sightline_dead_letters(dlq: &str, a: &str, b: &str, n: usize) {
    let p: FutureProducer = common::client().set("linger.ms", "20").create().unwrap();
    let mut pending = Vec::new();
    for i in 0..n {
        let (topic, class) = (if i % 2 == 0 { a } else { b }, CLASSES[i % 3]);
        let (off, key, value) = (i.to_string(), format!("k-{i}"), format!("v-{i}"));
        let h = OwnedHeaders::new()
            .insert(Header {
                key: "sightline.original.topic",
                value: Some(topic),
            })
            .insert(Header {
                key: "sightline.original.partition",
                value: Some("0"),
            })
            .insert(Header {
                key: "sightline.original.offset",
                value: Some(off.as_str()),
            })
            .insert(Header {
                key: "sightline.error.class",
                value: Some(class),
            });
        pending.push(
            p.send_result(FutureRecord::to(dlq).key(&key).payload(&value).headers(h))
                .map_err(|(e, _)| e)
                .unwrap(),
        );
        if pending.len() >= 10_000 {
            for f in pending.drain(..) {
                f.await.unwrap().unwrap();
            }
        }
    }
    for f in pending {
        f.await.unwrap().unwrap();
    }
}

fn values(records: &[common::Read]) -> Vec<String> {
    let mut v: Vec<String> = records
        .iter()
        .map(|r| String::from_utf8(r.value.clone().unwrap()).unwrap())
        .collect();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_filtered_replay_sends_exactly_the_selection_once_at_the_set_rate() {
    common::require_kafka();
    let r = Replay::new();
    let (dlq, a, b, c) = (
        common::unique("dlq"),
        common::unique("orig-a"),
        common::unique("orig-b"),
        common::unique("elsewhere"),
    );
    common::create_topics(&[&dlq], 3).await;
    common::create_topics(&[&a, &b, &c], 1).await;
    sightline_dead_letters(&dlq, &a, &b, 50_000).await;
    // From `a` with class invalid_json: i % 2 == 0 and i % 3 == 0.
    let mut want: Vec<String> = (0..50_000)
        .filter(|i| i % 6 == 0)
        .map(|i| format!("v-{i}"))
        .collect();
    want.sort();
    let filter = [
        "--error-class",
        "invalid_json",
        "--original-topic",
        a.as_str(),
    ];

    // A dry run lists the selection and sends nothing.
    let dry = r.run(
        &[
            &["--from", &dlq, "--id", "fix-1", "--dry-run", "--rate", "0"][..],
            &filter[..],
        ]
        .concat(),
    );
    let listed = stdout(&dry)
        .lines()
        .filter(|l| l.starts_with("would replay"))
        .count();
    assert_eq!(listed, want.len(), "dry run lists the selection");
    assert!(
        stdout(&dry).contains(&format!("{} selected, 0 sent", want.len())),
        "{}",
        stdout(&dry)
    );

    // The replay sends exactly the selection, to the original topic, with replay headers.
    let out = r.run(
        &[
            &["--from", &dlq, "--id", "fix-1", "--rate", "0"][..],
            &filter[..],
        ]
        .concat(),
    );
    println!("{}", stdout(&out).trim());
    assert!(stdout(&out).contains(&format!("{} sent", want.len())));
    let got = common::read_topic(&a, want.len(), Duration::from_secs(60));
    assert_eq!(
        values(&got),
        want,
        "exactly the selected records reach their original topic"
    );
    assert_eq!(got[0].header("sightline.replay.id"), Some("fix-1"));
    assert_eq!(got[0].header("sightline.replay.count"), Some("1"));
    assert_eq!(
        got[0].header("sightline.replay.dlq.topic"),
        Some(dlq.as_str())
    );
    assert!(
        common::read_topic(&b, 1, Duration::from_secs(3)).is_empty(),
        "nothing went to b"
    );

    // The same id again: nothing more is sent.
    let again = r.run(
        &[
            &["--from", &dlq, "--id", "fix-1", "--rate", "0"][..],
            &filter[..],
        ]
        .concat(),
    );
    assert!(stdout(&again).contains("0 sent, "), "{}", stdout(&again));
    // Only what it sent is done: the records its filter did not select stay pending.
    assert!(
        stdout(&again).contains(&format!("{} records done by earlier runs", want.len())),
        "{}",
        stdout(&again)
    );
    assert!(
        stdout(&again).contains(&format!(
            "{} filtered out (still pending)",
            50_000 - want.len()
        )),
        "{}",
        stdout(&again)
    );
    assert_eq!(
        values(&common::read_topic(
            &a,
            want.len() + 1,
            Duration::from_secs(5)
        )),
        want
    );

    // The rate limit: 600 records at 200/s, timed by the replayed records' own timestamps.
    r.run(&[
        "--from",
        &dlq,
        "--id",
        "rate-1",
        "--to",
        &c,
        "--rate",
        "200",
        "--until-offset",
        "200",
    ]);
    let timed = common::read_topic(&c, 600, Duration::from_secs(60));
    assert_eq!(
        timed.len(),
        600,
        "the first 200 offsets of each of 3 partitions"
    );
    let ts: Vec<i64> = timed.iter().map(|r| r.timestamp_ms.unwrap()).collect();
    let span = (ts.iter().max().unwrap() - ts.iter().min().unwrap()) as f64 / 1000.0;
    let rate = (timed.len() - 1) as f64 / span;
    println!("replay: rate limit 200/s, measured {rate:.1}/s over {span:.2} s");
    assert!(
        (180.0..=220.0).contains(&rate),
        "rate {rate:.1}/s is not within 10% of 200/s"
    );

    // Every run left an audit event, with the operator and the counts.
    let audit = common::read_topic(&r.audit, 8, Duration::from_secs(10));
    let events: Vec<serde_json::Value> = audit
        .iter()
        .map(|a| serde_json::from_slice(a.value.as_deref().unwrap()).unwrap())
        .collect();
    let kinds: Vec<&str> = events
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "STARTED",
            "DRY_RUN",
            "STARTED",
            "COMPLETED",
            "STARTED",
            "COMPLETED",
            "STARTED",
            "COMPLETED"
        ]
    );
    assert!(events.iter().all(|e| e["operator"] == "test-operator"));
    assert_eq!(events[3]["summary"]["sent"], want.len() as u64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_killed_mid_way_finishes_without_duplicates_or_gaps() {
    common::require_kafka();
    let r = Replay::new();
    let (dlq, a, b) = (
        common::unique("dlq"),
        common::unique("orig-a"),
        common::unique("orig-b"),
    );
    common::create_topics(&[&dlq], 3).await;
    common::create_topics(&[&a, &b], 1).await;
    sightline_dead_letters(&dlq, &a, &b, 20_000).await;
    let args = [
        "--from",
        dlq.as_str(),
        "--id",
        "crash-1",
        "--original-topic",
        a.as_str(),
    ];
    let mut child = r
        .command(&[&args[..], &["--rate", "2000"]].concat())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    common::wait_for(
        "the replay to send some",
        Duration::from_secs(60),
        async || (!common::read_topic(&a, 1, Duration::from_millis(500)).is_empty()).then_some(()),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    child.kill().expect("SIGKILL");
    child.wait().unwrap();
    let before = common::read_topic(&a, 10_000, Duration::from_secs(5)).len();
    println!("replay: killed after {before} of 10000 records were committed");
    assert!(before < 10_000, "the replay finished before it was killed");

    let out = r.run(&[&args[..], &["--rate", "0"]].concat());
    println!("{}", stdout(&out).trim());
    let got = values(&common::read_topic(&a, 10_000, Duration::from_secs(60)));
    let unique: BTreeSet<&String> = got.iter().collect();
    let mut want: Vec<String> = (0..20_000)
        .filter(|i| i % 2 == 0)
        .map(|i| format!("v-{i}"))
        .collect();
    want.sort();
    assert_eq!(unique.len(), got.len(), "no duplicates");
    assert_eq!(got, want, "no gaps");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_and_spring_dead_letters_go_back_to_their_original_topics() {
    common::require_kafka();
    let r = Replay::new();
    let (dlq, from_connect, from_spring) = (
        common::unique("dlq"),
        common::unique("erp-orders"),
        common::unique("wms-picks"),
    );
    common::create_topics(&[&dlq, &from_connect, &from_spring], 1).await;
    let p: FutureProducer = common::client().create().unwrap();
    for i in 0..5 {
        let off = i.to_string();
        produce_with(
            &p,
            &dlq,
            &format!("c-{i}"),
            &format!("connect-{i}"),
            &[
                ("__connect.errors.topic", from_connect.as_bytes()),
                ("__connect.errors.partition", b"0"),
                ("__connect.errors.offset", off.as_bytes()),
                (
                    "__connect.errors.exception.class.name",
                    b"org.apache.kafka.connect.errors.DataException",
                ),
            ],
        )
        .await;
        produce_with(
            &p,
            &dlq,
            &format!("s-{i}"),
            &format!("spring-{i}"),
            &[
                ("kafka_dlt-original-topic", from_spring.as_bytes()),
                ("kafka_dlt-original-partition", &0i32.to_be_bytes()),
                ("kafka_dlt-original-offset", &(i as i64).to_be_bytes()),
                (
                    "kafka_dlt-exception-fqcn",
                    b"org.springframework.kafka.listener.ListenerExecutionFailedException",
                ),
            ],
        )
        .await;
    }
    // A record with no provenance at all cannot go anywhere without --to.
    produce_with(&p, &dlq, "x", "orphan", &[]).await;
    let out = r.run(&["--from", &dlq, "--id", "estate-1", "--rate", "0"]);
    assert!(stdout(&out).contains("10 sent"), "{}", stdout(&out));
    assert!(
        stdout(&out).contains("1 skipped (no original topic"),
        "{}",
        stdout(&out)
    );
    assert_eq!(
        values(&common::read_topic(
            &from_connect,
            5,
            Duration::from_secs(30)
        )),
        (0..5).map(|i| format!("connect-{i}")).collect::<Vec<_>>()
    );
    assert_eq!(
        values(&common::read_topic(
            &from_spring,
            5,
            Duration::from_secs(30)
        )),
        (0..5).map(|i| format!("spring-{i}")).collect::<Vec<_>>()
    );
}
