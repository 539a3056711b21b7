//! The platform's contract (`ambient_test_support::platform::drive_contract`) run against
//! the platform's own Python runner, with the Claude CLI its SDK bundles against the mock
//! Anthropic API: the check that the contract test encodes the platform's behaviour and
//! not our reading of it.
//!
//! The platform's runner is never part of this project, so this target is not in the
//! default test run: `./scripts/platform-runner-contract <checkout of ambient-code/platform>`
//! installs that checkout's runner into a throwaway virtual environment outside the project
//! and runs this target with `PLATFORM_RUNNER_DIR` and `PLATFORM_RUNNER_VENV` naming
//! the runner's source folder and that environment.
#![allow(clippy::unwrap_used, reason = "a failed step is a failed test")]

use std::path::PathBuf;

use ambient_test_support::{
    anthropic::{MockAnthropic, contract_prompts},
    platform::{
        Backend, BackendCalls, check_background_task, check_file_api, check_model_switch,
        check_repository_routes, drive_contract, free_port, operator_command,
    },
};
use serde_json::Value;

/// The platform's runner as its image starts it: `uvicorn main:app` in its source folder
/// (`PLATFORM_RUNNER_DIR`), with the virtual environment's uvicorn (`PLATFORM_RUNNER_VENV`).
fn platform_runner() -> (PathBuf, PathBuf) {
    let named = |variable: &str| {
        std::env::var_os(variable)
            .map(PathBuf::from)
            .filter(|path| path.exists())
            .unwrap_or_else(|| {
                panic!(
                    "{variable} is not set or does not exist: run \
                     ./scripts/platform-runner-contract <checkout of ambient-code/platform>"
                )
            })
    };
    (
        named("PLATFORM_RUNNER_DIR"),
        named("PLATFORM_RUNNER_VENV").join("bin/uvicorn"),
    )
}

#[tokio::test]
async fn the_platforms_own_runner_passes_the_contract_test() {
    let (source, uvicorn) = platform_runner();
    let mock = MockAnthropic::start().await;
    let workspace = tempfile::tempdir().unwrap();
    let home = tempfile::tempdir().unwrap();
    let mut backend = Backend::start(1).await;
    let prompts = contract_prompts();
    let mut command = operator_command(
        &uvicorn,
        workspace.path(),
        free_port(),
        &backend,
        Some(&prompts.initial),
    );
    let port = command
        .as_std()
        .get_envs()
        .find(|(name, _)| *name == "AGUI_PORT")
        .and_then(|(_, port)| port)
        .unwrap()
        .to_owned();
    command
        .args(["main:app", "--host", "127.0.0.1", "--port"])
        .arg(port)
        .current_dir(&source)
        .env("RUNNER_TYPE", "claude-agent-sdk")
        .env("LLM_MODEL", "claude-sonnet-4-5")
        .envs(mock.cli_environment(home.path()));
    let (served, _) = drive_contract(command, workspace.path(), &mut backend, &prompts).await;
    let calls = BackendCalls::new(&served.url);
    let capabilities: Value = calls.get_json("/capabilities").await;
    assert_eq!(capabilities["framework"], "claude-agent-sdk");
    check_model_switch(&calls, &mock).await;
    check_background_task(&calls).await;
    check_file_api(&calls, workspace.path()).await;
    let origins = tempfile::tempdir().unwrap();
    check_repository_routes(&calls, workspace.path(), origins.path()).await;
    served.stop().await;
}
