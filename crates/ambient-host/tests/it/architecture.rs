//! The crate map's invariants (`docs/architecture.md`), checked on the workspace's real
//! dependency graph as `cargo metadata` reads it: which crate may depend on which,
//! directly or through another.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

/// Every workspace package and the packages it depends on to build (not its tests), by
/// name: the workspace's own and the registry's.
fn graph() -> BTreeMap<String, BTreeSet<String>> {
    // The cargo that built this test.
    let output = std::process::Command::new(env!("CARGO"))
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "cargo metadata: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let metadata: Value = serde_json::from_slice(&output.stdout).unwrap();
    metadata["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|package| {
            let depends = package["dependencies"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|d| d["kind"].is_null())
                .map(|d| d["name"].as_str().unwrap().to_owned())
                .collect();
            (package["name"].as_str().unwrap().to_owned(), depends)
        })
        .collect()
}

/// What `package` depends on, directly or through other workspace packages.
fn reaches(graph: &BTreeMap<String, BTreeSet<String>>, package: &str) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    let mut todo = vec![package.to_owned()];
    while let Some(next) = todo.pop() {
        for dependency in graph.get(&next).into_iter().flatten() {
            if seen.insert(dependency.clone()) {
                todo.push(dependency.clone());
            }
        }
    }
    seen
}

/// Fails, naming the path, where a package matching `who` reaches a package in `never`.
#[track_caller]
fn check(graph: &BTreeMap<String, BTreeSet<String>>, who: impl Fn(&str) -> bool, never: &[&str]) {
    let packages: Vec<&String> = graph.keys().filter(|name| who(name)).collect();
    assert!(!packages.is_empty(), "the rule names no package");
    for package in packages {
        let reached = reaches(graph, package);
        let broken: Vec<&&str> = never.iter().filter(|n| reached.contains(**n)).collect();
        assert!(
            broken.is_empty(),
            "{package} depends on {broken:?}, which the architecture forbids"
        );
    }
}

const FRONTS: &[&str] = &["ambient-websocket", "ambient-serve", "ambient-cli"];
const IO: &[&str] = &["tokio", "reqwest", "axum", "tokio-tungstenite", "hyper"];

#[test]
fn the_host_depends_on_no_transport_and_no_front() {
    let graph = graph();
    let mut never = vec![
        "ambient-transport",
        "ambient-status",
        "ambient-local-backend",
    ];
    never.extend(FRONTS);
    // OpenTelemetry's API is the host's; its SDK and exporters are the binaries' choice.
    never.extend([
        "ambient-agui",
        "reqwest",
        "axum",
        "tokio-tungstenite",
        "opentelemetry_sdk",
        "opentelemetry-otlp",
    ]);
    check(&graph, |name| name == "ambient-host", &never);
}

#[test]
fn adapters_depend_on_neither_front_nor_the_host() {
    let graph = graph();
    let mut never = vec![
        "ambient-host",
        "ambient-transport",
        "ambient-status",
        "ambient-local-backend",
        "ambient-agui",
    ];
    never.extend(FRONTS);
    check(&graph, |name| name.starts_with("ambient-adapter"), &never);
}

#[test]
fn the_fronts_are_siblings() {
    let graph = graph();
    check(
        &graph,
        |name| name == "ambient-websocket",
        &["ambient-serve", "ambient-agui", "axum"],
    );
    check(
        &graph,
        |name| name == "ambient-serve",
        &["ambient-websocket", "ambient-transport", "ambient-status"],
    );
}

#[test]
fn the_wire_types_and_the_ag_ui_vocabulary_do_no_io() {
    let graph = graph();
    check(&graph, |name| name == "ambient-protocol", IO);
    check(&graph, |name| name == "ambient-agui", IO);
    let adapter_trait = reaches(&graph, "ambient-adapter");
    let ours: Vec<&String> = adapter_trait
        .iter()
        .filter(|name| name.starts_with("ambient-"))
        .collect();
    assert_eq!(ours, ["ambient-protocol"], "the trait crate stays light");
}

#[test]
fn test_support_is_never_built_into_a_runner() {
    let graph = graph();
    check(
        &graph,
        |name| name != "ambient-test-support" && name != "mock-anthropic",
        &["ambient-test-support"],
    );
}
