//! The folders of pipeline/ form layers: no folder uses one that uses it back, directly or
//! through others. A cycle would mean two folders are really one, and that a newcomer cannot
//! read the data path from the folder names. This test reads every `crate::<folder>` path in
//! the code (comments aside) and fails with the cycle and where each of its uses is.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The folders `line` names as `crate::<folder>`, including `crate::{a, b::c}`.
fn used_folders(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = line;
    while let Some(at) = rest.find("crate::") {
        rest = &rest[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let end = group.find('}').unwrap_or(group.len());
            for item in group[..end].split(',') {
                let name: String = item
                    .trim()
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                out.push(name);
            }
        } else {
            out.push(
                rest.chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect(),
            );
        }
    }
    out
}

/// folder -> used folder -> the first place it is used (file:line).
fn uses(root: &Path) -> BTreeMap<String, BTreeMap<String, String>> {
    let mut folders: BTreeSet<String> = BTreeSet::new();
    for entry in std::fs::read_dir(root).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() && path.file_name().unwrap() != "benches" {
            folders.insert(path.file_name().unwrap().to_string_lossy().into_owned());
        }
    }
    let mut graph: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for folder in &folders {
        let mut files = Vec::new();
        rust_files(&root.join(folder), &mut files);
        files.sort();
        let edges = graph.entry(folder.clone()).or_default();
        for file in files {
            let text = std::fs::read_to_string(&file).unwrap();
            for (n, line) in text.lines().enumerate() {
                if line.trim_start().starts_with("//") {
                    continue;
                }
                for used in used_folders(line) {
                    if used != *folder && folders.contains(&used) {
                        edges.entry(used).or_insert_with(|| {
                            format!(
                                "{}:{}",
                                file.strip_prefix(root.parent().unwrap()).unwrap().display(),
                                n + 1
                            )
                        });
                    }
                }
            }
        }
    }
    graph
}

/// A cycle through `graph`, if there is one, as the folders along it.
fn cycle(graph: &BTreeMap<String, BTreeMap<String, String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeMap<String, String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|p| p == node) {
            let mut c = path[at..].to_vec();
            c.push(node.to_string());
            return Some(c);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_string());
        for next in graph.get(node).into_iter().flat_map(|e| e.keys()) {
            if let Some(c) = visit(next, graph, path, done) {
                return Some(c);
            }
        }
        path.pop();
        done.insert(node.to_string());
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|n| visit(n, graph, &mut Vec::new(), &mut done))
}

#[test]
fn no_folder_uses_one_that_uses_it_back() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("pipeline");
    let graph = uses(&root);
    if let Some(c) = cycle(&graph) {
        let steps: Vec<String> = c
            .windows(2)
            .map(|w| format!("  {} -> {} ({})", w[0], w[1], graph[&w[0]][&w[1]]))
            .collect();
        panic!(
            "pipeline/ folders use each other in a cycle:\n{}\nmove what both need into the lower folder, or pass it in",
            steps.join("\n")
        );
    }
}

#[test]
fn the_checker_sees_plain_grouped_and_nested_uses() {
    assert_eq!(used_folders("use crate::state::Store;"), vec!["state"]);
    assert_eq!(
        used_folders("use crate::{kafka::Tp, observe};"),
        vec!["kafka", "observe"]
    );
    assert_eq!(
        used_folders("let x = crate::a::f(crate::b::g());"),
        vec!["a", "b"]
    );
    let mut graph: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for (a, b) in [("x", "y"), ("y", "z"), ("z", "x")] {
        graph
            .entry(a.into())
            .or_default()
            .insert(b.into(), "f.rs:1".into());
    }
    assert_eq!(cycle(&graph).unwrap(), vec!["x", "y", "z", "x"]);
    graph.get_mut("z").unwrap().clear();
    assert_eq!(cycle(&graph), None);
}
