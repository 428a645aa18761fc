//! Sightline over the local stack's SASL_SSL listener (self-signed CA made by deploy/local/stack,
//! user `sightline`): every SASL mechanism works with the right password; a wrong password fails
//! at start with a clear error naming the listener and the mechanism, a non-zero exit, and no
//! secret in the output. The secrets configured here are listed for deploy/local/check-secrets,
//! which greps every log of the test run for them.

mod common;

use rdkafka::producer::FutureProducer;
use std::path::PathBuf;
use std::time::{Duration, Instant};

fn tls_dir() -> PathBuf {
    std::env::var("SIGHTLINE_STACK_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("deploy/local/.cache"))
        .join("tls")
}

fn sasl_bootstrap() -> String {
    std::env::var("SIGHTLINE_TEST_SASL_BOOTSTRAP").unwrap_or_else(|_| "127.0.0.1:9094".into())
}

/// Reads the stack's password for `sightline`, failing clearly when the stack has none.
fn password() -> String {
    let path = tls_dir().join("sightline.password");
    let p = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}. The SASL_SSL listener's material is made by deploy/local/stack start",
            path.display()
        )
    });
    note_secret("sightline-password", &p);
    p
}

/// Lists a secret this test configures, for deploy/local/check-secrets.
fn note_secret(name: &str, value: &str) {
    let dir = std::env::temp_dir().join("sightline-secrets-under-test");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(name), value).unwrap();
}

/// Moves a test setup's config onto the SASL_SSL listener with `mechanism`, the stack's CA and
/// the password in `password_file`.
fn secure(setup: &common::Setup, mechanism: &str, password_file: &std::path::Path) {
    let text = std::fs::read_to_string(setup.config()).unwrap();
    let plain = format!("bootstrap_servers = \"{}\"", common::bootstrap());
    assert!(text.contains(&plain));
    let text = text.replace(
        &plain,
        &format!(
            "bootstrap_servers = \"{}\"\nsecurity_protocol = \"sasl_ssl\"",
            sasl_bootstrap()
        ),
    );
    std::fs::write(setup.config(), text).unwrap();
    setup.add_config(&format!(
        "[kafka.sasl]\nmechanism = \"{mechanism}\"\nusername = \"sightline\"\npassword_file = \"{}\"\n\
         [kafka.tls]\nca_file = \"{}\"\n[replay]\nledger_topic = \"{}\"\naudit_topic = \"{}\"\n",
        password_file.display(),
        tls_dir().join("ca.crt").display(),
        common::unique("ledger"),
        common::unique("audit"),
    ));
}

fn source(topic: &str) -> String {
    format!(
        "  - name: in\n    topic: {topic}\n    format: json\n    event_type: {{ field: type }}\n    \
         key: {{ field: id }}\n    event_time: {{ field: at }}\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_mechanism_works_over_sasl_ssl_with_the_right_password() {
    common::require_kafka();
    password();
    let topic = common::unique("secure");
    common::create_topics(&[&topic], 1).await;
    let p: FutureProducer = common::client().create().unwrap();
    let now = chrono::Utc::now().timestamp_millis();
    for i in 0..3 {
        let v = format!(r#"{{"type":"order_confirmed","id":"O-{i}","at":{now}}}"#);
        common::produce(&p, &topic, &format!("O-{i}"), v.as_bytes()).await;
    }
    // Reading and writing over each mechanism: a replay dry run reads the topic through the
    // listener, and writes its audit events.
    for mechanism in ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] {
        let setup = common::Setup::new(&source(&topic), None, &[]);
        secure(&setup, mechanism, &tls_dir().join("sightline.password"));
        let out = common::sightline_ok(
            &[
                "replay",
                "--config",
                setup.config().to_str().unwrap(),
                "--from",
                &topic,
                "--to",
                "nowhere",
                "--dry-run",
                "--no-progress",
                "--id",
                &common::unique("secure-replay"),
            ],
            &[],
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            stdout.contains(": 3 read, 3 selected, 0 sent"),
            "{mechanism}: {stdout}"
        );
    }
    // The pipeline itself over SCRAM-SHA-512: it reads the three orders and commits.
    let setup = common::Setup::new(&source(&topic), None, &[]);
    secure(
        &setup,
        "SCRAM-SHA-512",
        &tls_dir().join("sightline.password"),
    );
    let sl = setup.start().await;
    sl.wait_metric(
        &format!(
            "sightline_events_consumed_total{{event_type=\"order_confirmed\",topic=\"{topic}\"}}"
        ),
        3,
        Duration::from_secs(60),
    )
    .await;
    common::wait_caught_up(
        &setup.group,
        std::slice::from_ref(&topic),
        Duration::from_secs(60),
    )
    .await;
    // Nor in what the HTTP server shows.
    for path in ["/metrics", "/readyz", "/api/workflows", "/api/lag"] {
        let (_, body) = common::http_get(&format!("{}{path}", sl.http))
            .await
            .unwrap();
        assert!(!body.contains(&password()), "{path} shows the password");
    }
    sl.stop().await;
}

#[test]
fn a_wrong_password_fails_at_start_naming_the_listener_and_the_mechanism() {
    common::require_kafka();
    let right = password();
    let wrong = format!("wrong-{}", common::unique("pw"));
    note_secret("wrong-password", &wrong);
    let setup = common::Setup::new(&source("never-read"), None, &[]);
    let file = setup.dir.join("kafka-password");
    std::fs::write(&file, &wrong).unwrap();
    secure(&setup, "SCRAM-SHA-512", &file);
    let started = Instant::now();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sightline"))
        .args(["run", "--config"])
        .arg(setup.config())
        .output()
        .expect("sightline runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.status.success(), "{text}");
    assert!(started.elapsed() < Duration::from_secs(60), "{text}");
    for must in [
        sasl_bootstrap().as_str(),
        "sasl_ssl",
        "SCRAM-SHA-512",
        "user `sightline`",
        "uthentication",
        "kafka.sasl.password_file",
    ] {
        assert!(text.contains(must), "`{must}` missing from: {text}");
    }
    assert!(!text.contains(&wrong), "the wrong password leaked: {text}");
    assert!(!text.contains(&right), "the password leaked: {text}");
}
