//! The README's config reference and metrics list are generated from the code's own tables;
//! this test keeps them equal. `SIGHTLINE_BLESS=1 cargo test --test docs` rewrites them.

fn replace_between(text: &str, name: &str, body: &str) -> String {
    let start = format!("<!-- {name}:start -->\n");
    let end = format!("<!-- {name}:end -->");
    let a = text
        .find(&start)
        .unwrap_or_else(|| panic!("README has no {start}"))
        + start.len();
    let b = text
        .find(&end)
        .unwrap_or_else(|| panic!("README has no {end}"));
    format!("{}{}{}", &text[..a], body, &text[b..])
}

#[test]
fn readme_references_match_the_code() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md");
    let readme = std::fs::read_to_string(&path).unwrap();
    let want = replace_between(
        &readme,
        "config-reference",
        &sightline::config::schema::reference_markdown(),
    );
    let want = replace_between(
        &want,
        "metrics-reference",
        &sightline::observe::metrics::reference_markdown(),
    );
    if std::env::var("SIGHTLINE_BLESS").is_ok() {
        std::fs::write(&path, &want).unwrap();
        return;
    }
    assert!(
        readme == want,
        "README.md's generated sections are stale: run `SIGHTLINE_BLESS=1 cargo test --test docs`"
    );
}
