//! What can be checked of the Dockerfiles without a Docker engine.

use std::path::Path;

/// The workspace root.
fn root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

/// Every binary the workspace builds: the package names under `bins/` (each builds the
/// binary of its own name).
fn workspace_binaries() -> Vec<String> {
    std::fs::read_dir(root().join("bins"))
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

#[test]
fn every_copy_source_exists_and_every_binary_is_built_by_the_workspace() {
    let binaries = workspace_binaries();
    for name in ["Dockerfile.langgraph", "Dockerfile.claude"] {
        let text = std::fs::read_to_string(root().join(name)).unwrap();
        let mut stages_run_as_non_root = false;
        for line in text.lines().map(str::trim) {
            if let Some(rest) = line.strip_prefix("COPY ") {
                if rest.starts_with("--from=") {
                    let source = rest.split_whitespace().nth(1).unwrap();
                    if let Some(binary) = source.strip_prefix("/src/target/release/") {
                        assert!(
                            binaries.iter().any(|b| b == binary),
                            "{name}: {binary} is not built by the workspace"
                        );
                    }
                } else {
                    let parts: Vec<&str> = rest.split_whitespace().collect();
                    for source in &parts[..parts.len() - 1] {
                        assert!(
                            root().join(source).exists(),
                            "{name}: COPY source {source} does not exist"
                        );
                    }
                }
            }
            if let Some(binary) = line.strip_prefix("RUN cargo build --release --locked -p ") {
                assert!(
                    binaries.iter().any(|b| b == binary),
                    "{name}: package {binary} is not in bins/"
                );
            }
            if let Some(user) = line.strip_prefix("USER ") {
                stages_run_as_non_root = user != "root" && user != "0";
            }
        }
        assert!(
            stages_run_as_non_root,
            "{name}: the final stage must run as a non-root user"
        );
        assert!(
            text.contains("FROM rust:1.95.0"),
            "{name}: the build stage must use the pinned toolchain"
        );
    }
}

#[test]
fn the_claude_image_pins_the_cli_version_the_tests_run() {
    let package = std::fs::read_to_string(root().join("package.json")).unwrap();
    let pinned = package
        .lines()
        .find_map(|line| {
            line.trim()
                .strip_prefix("\"@anthropic-ai/claude-code\": \"")
        })
        .and_then(|rest| rest.strip_suffix('"'))
        .expect("package.json pins @anthropic-ai/claude-code");
    let dockerfile = std::fs::read_to_string(root().join("Dockerfile.claude")).unwrap();
    assert!(
        dockerfile.contains(&format!("CLAUDE_CLI_VERSION={pinned}")),
        "Dockerfile.claude must check for the CLI version package.json pins ({pinned})"
    );
    assert!(
        dockerfile.contains("COPY package.json package-lock.json"),
        "Dockerfile.claude must install the CLI from the project's lock file"
    );
}

#[test]
fn the_langgraph_image_pins_the_packages_the_tests_run() {
    let driver = root().join("crates/ambient-adapter-langgraph/driver");
    let lock = std::fs::read_to_string(
        root().join("crates/ambient-adapter-langgraph/tests/server/requirements.lock.txt"),
    )
    .unwrap();
    let requirements = std::fs::read_to_string(driver.join("requirements.txt")).unwrap();
    let pins: Vec<&str> = requirements
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .collect();
    assert!(!pins.is_empty());
    for pin in pins {
        assert!(
            pin.contains("=="),
            "{pin}: the driver's requirements must pin exact versions"
        );
        assert!(
            lock.lines().any(|line| line.trim() == pin),
            "{pin} is not the version the tests install (tests/server/requirements.lock.txt)"
        );
    }
    let dockerfile = std::fs::read_to_string(root().join("Dockerfile.langgraph")).unwrap();
    for needed in [
        "crates/ambient-adapter-langgraph/driver/requirements.txt",
        "crates/ambient-adapter-langgraph/tests/server/requirements.lock.txt",
        "crates/ambient-adapter-langgraph/driver/ambient_langgraph_driver.py",
        "LANGGRAPH_DRIVER=",
        "LANGGRAPH_PYTHON=",
    ] {
        assert!(
            dockerfile.contains(needed),
            "Dockerfile.langgraph must use {needed}"
        );
    }
}
