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
