//! The WebSocket mode's settings.

use ambient_host::{Redactor, RunnerArgs};
use clap::Parser;

use crate::RunnerConfig;

#[derive(Debug, Parser)]
struct Cli {
    #[command(flatten)]
    runner: RunnerArgs,
}

/// Parses `args` (environment variables are given as flags of the same meaning) and
/// checks the outcome: the error text, or the status URL and the mode.
#[track_caller]
fn check(args: &[&str], expect: &str) {
    let parsed = Cli::try_parse_from(std::iter::once("runner").chain(args.iter().copied()));
    let got = match parsed {
        Err(error) => format!("usage: {}", error.kind()),
        Ok(cli) => match RunnerConfig::from_args(&cli.runner, Redactor::default()) {
            Err(error) => format!("error: {error}"),
            Ok(config) => format!(
                "status={} mode={:?}",
                config
                    .websocket
                    .endpoints
                    .status_url()
                    .map(|u| u.to_string())
                    .unwrap_or_default(),
                config.host.mode,
            ),
        },
    };
    assert_eq!(got, expect);
}

const WS: &str = "--websocket-url=ws://backend:8080/api/projects/p1/sessions/s1/ws";

#[test]
fn settings_are_validated_and_errors_name_the_variable() {
    check(
        &[WS],
        "error: SESSION_ID is not set: the runner must know which session it runs",
    );
    check(
        &["--session-id=s1"],
        "error: WEBSOCKET_URL is not set: the runner must know where the backend is",
    );
    check(
        &["--session-id=s1", "--websocket-url=http://backend/ws"],
        "error: WEBSOCKET_URL is invalid: expected a ws:// or wss:// URL",
    );
    check(
        &[
            "--session-id=s1",
            "--websocket-url=ws://backend:8080/session/ws",
        ],
        "error: WEBSOCKET_URL is invalid: the status URL cannot be derived from it (no /projects/…/sessions/… path); set BACKEND_API_URL",
    );
    check(
        &["--session-id=s1", WS],
        "status=http://backend:8080/api/projects/p1/agentic-sessions/s1/status mode=Batch",
    );
    check(
        &[
            "--session-id=s1",
            WS,
            "--backend-api-url=http://api.internal/api",
            "--project=team",
        ],
        "status=http://api.internal/api/projects/team/agentic-sessions/s1/status mode=Batch",
    );
    check(
        &["--session-id=s1", WS, "--backend-api-url=nope"],
        "error: BACKEND_API_URL is invalid: expected an http:// or https:// URL",
    );
    check(
        &["--session-id=s1", WS, "--interactive=YES"],
        "status=http://backend:8080/api/projects/p1/agentic-sessions/s1/status mode=Interactive",
    );
}
