//! The README's first command, as a user runs it: `sightline demo` exits 0, having read every
//! order-to-cash record it produced, and closes with its summary table.

#[test]
fn the_demo_command_reads_everything_and_exits_zero() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sightline"))
        .args(["demo", "--http", "127.0.0.1:0"])
        .output()
        .expect("sightline demo runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "sightline demo failed: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    let last = stdout.lines().last().unwrap_or_default();
    let produced = last
        .strip_prefix("demo: produced ")
        .and_then(|r| r.split(' ').next())
        .expect("the closing line");
    assert!(
        last.contains(&format!("; read {produced}; ")),
        "the demo did not read what it produced: {last}"
    );
    assert!(
        stdout.contains("Events consumed, by topic and type"),
        "{stdout}"
    );
}
