//! `sightline check` as a deploy gate, on the real registry: drift that has already happened
//! (the registry's latest writer of a topic is one the contract cannot read) is what `run`
//! reports, not a mistake in Sightline's files. `check` prints it as a warning and exits 0;
//! `check --strict` exits 1. A real file error still exits 1.

mod common;

use std::process::Command;

fn check(config: &std::path::Path, strict: bool) -> (i32, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sightline"));
    cmd.arg("check");
    if strict {
        cmd.arg("--strict");
    }
    let out = cmd
        .arg("--config")
        .arg(config)
        .output()
        .expect("sightline runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// A writer that drops `amount` (the contract needs it, with no default) and adds a field.
const DRIFTED: &str = r#"{
  "type": "record", "name": "PaymentCaptured", "namespace": "com.example.finance",
  "fields": [
    {"name": "type", "type": "string"},
    {"name": "event_id", "type": "string"},
    {"name": "order_id", "type": "string"},
    {"name": "occurred_at", "type": "string"},
    {"name": "method", "type": "string"},
    {"name": "amount_minor", "type": "long"}
  ]
}"#;

#[tokio::test]
async fn drift_on_the_registry_is_a_warning_and_an_error_only_under_strict() {
    common::require_registry();
    let topic = common::unique("gate.payments");
    let subject = format!("{topic}-value");
    let settings = schema_registry_converter::async_impl::schema_registry::SrSettings::new(
        common::registry_url(),
    );
    let version_id = sightline::registry::register_avro(&settings, &subject, DRIFTED)
        .await
        .expect("schema registered");

    let dir = std::env::temp_dir().join(common::unique("sightline-gate"));
    std::fs::create_dir_all(&dir).unwrap();
    let topology = dir.join("payments.yaml");
    std::fs::write(
        &topology,
        format!(
            "name: payments\n\
             sources:\n\
             \x20 - name: payments\n\
             \x20   topic: {topic}\n\
             \x20   format: avro\n\
             \x20   contract: order-to-cash/payment_captured.avsc\n\
             \x20   event_type: {{ field: type }}\n\
             \x20   key: {{ field: order_id }}\n\
             \x20   event_time: {{ field: occurred_at }}\n"
        ),
    )
    .unwrap();
    let config = dir.join("sightline.toml");
    let write_config = |topologies: &str| {
        std::fs::write(
            &config,
            format!(
                "[kafka]\nbootstrap_servers = \"{}\"\n[registry]\nurl = \"{}\"\n[topologies]\npaths = [{topologies}]\n[schemas]\ndir = \"{}/schemas\"\n",
                common::bootstrap(),
                common::registry_url(),
                env!("CARGO_MANIFEST_DIR")
            ),
        )
        .unwrap()
    };
    write_config("\"payments.yaml\"");

    let want = format!(
        "{}:6: source `payments`: contract `order-to-cash/payment_captured.avsc` cannot read the registry's latest `{subject}` (version 1)",
        topology.display()
    );
    let (code, out) = check(&config, false);
    println!("check (schema id {version_id}):\n{out}");
    assert_eq!(code, 0, "drift alone must not fail the gate:\n{out}");
    let warning = out
        .lines()
        .find(|l| l.starts_with("warning: "))
        .unwrap_or_else(|| panic!("no warning in:\n{out}"));
    assert!(
        warning.starts_with(&format!("warning: {want}")),
        "{warning}"
    );
    assert!(
        warning.contains("amount"),
        "the detail names the field: {warning}"
    );
    assert!(out.contains("ok: "), "{out}");

    let (code, out) = check(&config, true);
    assert_eq!(code, 1, "--strict makes drift an error:\n{out}");
    assert_eq!(out.lines().next(), Some("1 problem(s):"), "{out}");
    assert!(out.contains(&format!("  - {want}")), "{out}");
    assert!(out.contains("(an error under --strict)"), "{out}");

    // A mistake in the files is an error with or without --strict.
    write_config("\"payments.yaml\", \"missing.yaml\"");
    let (code, out) = check(&config, false);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("missing.yaml"), "{out}");
}
