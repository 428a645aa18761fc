//! `sightline check` reports every problem at once, each with file and key, and exits 1.
//! Needs no broker.

use std::process::Command;

fn check(config: &std::path::Path, envs: &[(&str, &str)]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_sightline"))
        .args(["check", "--config"])
        .arg(config)
        .envs(envs.iter().copied())
        .output()
        .expect("sightline runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn three_mistakes_are_all_reported_with_file_and_key() {
    let dir = std::env::temp_dir().join(format!("sightline-check-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("bad.toml");
    std::fs::write(
        &file,
        "[kafka]\nbootstrap_servers = \"127.0.0.1:9092\"\ngrup_id = \"x\"\n\
         [kafka.topics]\npartitions = \"twelve\"\n[kafka.tls]\nca_file = \"missing-ca.pem\"\n",
    )
    .unwrap();
    let (code, out) = check(&file, &[]);
    let f = file.display().to_string();
    let expected = format!(
        "3 problem(s):\n  \
         - {f}: key `kafka.grup_id`: unknown key. Did you mean `kafka.group_id`?\n  \
         - {f}: key `kafka.tls.ca_file`: file `{}` does not exist (relative paths are resolved against the config file's directory)\n  \
         - {f}: key `kafka.topics.partitions`: expected an integer, found a string\n",
        dir.join("missing-ca.pem").display()
    );
    assert_eq!((code, out), (1, expected));
}

#[test]
fn the_example_config_is_valid_and_env_overrides_are_typed_and_never_echo_secrets() {
    let example =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/local/sightline.toml");
    let (code, out) = check(&example, &[]);
    assert_eq!(code, 0, "{out}");
    assert!(out.starts_with("ok: "), "{out}");

    let (code, out) = check(
        &example,
        &[
            ("SIGHTLINE_KAFKA__TOPICS__PARTITIONS", "many"),
            ("SIGHTLINE_KAFKA__NO_SUCH_KEY", "1"),
            ("SIGHTLINE_REGISTRY__PASSWORD", "s3cr3t-value"),
        ],
    );
    assert_eq!(code, 1);
    assert!(out.contains("environment variable SIGHTLINE_KAFKA__TOPICS__PARTITIONS: key `kafka.topics.partitions`: expected an integer, found `many`"), "{out}");
    assert!(out.contains("environment variable SIGHTLINE_KAFKA__NO_SUCH_KEY: key `kafka.no_such_key`: no such configuration key"), "{out}");
    assert!(!out.contains("s3cr3t-value"), "{out}");
}

#[test]
fn five_topology_mistakes_are_all_reported_with_file_and_line() {
    let dir = std::env::temp_dir().join(format!("sightline-check5-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("schemas")).unwrap();
    let topology = dir.join("flows.yaml");
    // Line numbers matter: each mistake is on a known line.
    std::fs::write(
        &topology,
        "name: flows\n\
         sources:\n\
         \x20 - name: orders\n\
         \x20   topic: shop.orders\n\
         \x20   format: json\n\
         \x20   contract: shop/missing.avsc\n\
         \x20   event_type: { field: type }\n\
         \x20   event_types: [order_confirmed, payment_captured]\n\
         \x20   key: { field: order_id }\n\
         \x20   event_time: { field: at }\n\
         workflows:\n\
         \x20 - name: o2c\n\
         \x20   timezone: Mars/Olympus\n\
         \x20   ttl: 14d\n\
         \x20   steps:\n\
         \x20     - { name: ordered, on: order_confirmed, start: true }\n\
         \x20     - { name: paid, on: payment_captured, after: ordered, within: 30d }\n\
         \x20     - { name: shipped, on: parcel_shipped, after: packed, within: 1d }\n",
    )
    .unwrap();
    let config = dir.join("sightline.toml");
    std::fs::write(
        &config,
        "[kafka]\nbootstrap_servers = \"127.0.0.1:9092\"\n[topologies]\npaths = [\"flows.yaml\"]\n[schemas]\ndir = \"schemas\"\n",
    )
    .unwrap();
    let (code, out) = check(&config, &[]);
    let t = topology.display().to_string();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(code, 1, "{out}");
    assert_eq!(lines[0], "5 problem(s):", "{out}");
    let expect = [
        (6, "source `orders`: cannot read contract"),
        (13, "workflow `o2c`: unknown time zone `Mars/Olympus`"),
        (17, "workflow `o2c`: step `paid`: `within` is longer than the instance ttl"),
        (18, "workflow `o2c`: step `shipped` comes after `packed`, which is not a step"),
        (18, "workflow `o2c`: step `shipped` waits for event type `parcel_shipped`, which no source carries"),
    ];
    for (line, what) in expect {
        let want = format!("  - {t}:{line}: {what}");
        assert!(
            lines.iter().any(|l| l.starts_with(&want)),
            "missing `{want}` in:\n{out}"
        );
    }
}

#[test]
fn check_prints_each_workflow_as_a_graph_or_as_dot() {
    let example =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/local/sightline.toml");
    let (code, out) = check(&example, &[]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains(
        "workflow order-to-cash\n  ordered (on order_confirmed, start)\n    paid (on payment_captured, within 15m)\n      shipped (on shipment_dispatched, within 1d)\n"
    ), "{out}");
    let out = Command::new(env!("CARGO_BIN_EXE_sightline"))
        .args(["check", "--dot", "--config"])
        .arg(&example)
        .output()
        .unwrap();
    let dot = String::from_utf8_lossy(&out.stdout);
    assert!(dot.contains("digraph \"order-to-cash\" {"), "{dot}");
    assert!(
        dot.contains("  \"paid\" -> \"shipped\" [label=\"within 1d\"];"),
        "{dot}"
    );
}

#[test]
fn a_workflow_of_ten_thousand_chained_steps_is_checked_and_drawn() {
    let dir = std::env::temp_dir().join(format!("sightline-check10k-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("schemas")).unwrap();
    let mut yaml = String::from(
        "name: long\nsources:\n  - name: s\n    topic: t\n    format: json\n    event_type: { field: type }\n    \
         key: { field: id }\n    event_time: { field: at }\nworkflows:\n  - name: long\n    ttl: 3650d\n    steps:\n      \
         - { name: s0, on: e0, start: true }\n",
    );
    for i in 1..10_000 {
        yaml.push_str(&format!(
            "      - {{ name: s{i}, on: e{i}, after: s{}, within: 1m }}\n",
            i - 1
        ));
    }
    std::fs::write(dir.join("long.yaml"), yaml).unwrap();
    let config = dir.join("sightline.toml");
    std::fs::write(
        &config,
        "[kafka]\nbootstrap_servers = \"127.0.0.1:9092\"\n[topologies]\npaths = [\"long.yaml\"]\n[schemas]\ndir = \"schemas\"\n",
    )
    .unwrap();
    let (code, out) = check(&config, &[]);
    assert_eq!(code, 0, "{}", &out[..out.len().min(2000)]);
    let last = out.lines().last().unwrap();
    assert_eq!(
        last,
        format!(
            "{}[level 10000] s9999 (on e9999, within 1m)",
            "  ".repeat(33)
        )
    );
}
