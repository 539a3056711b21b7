//! Local mode: a local backend in-process, one session against it, and the conversation
//! printed as the UI would show it.

use std::io::Write;

use ambient_adapter::Adapter;
use ambient_host::{Redactor, RunnerArgs, RunnerExit};
use ambient_local_backend::{LocalBackend, SessionSeed, transcript};
use ambient_websocket::{RunnerConfig, run_session};
use anyhow::Context;
use serde_json::json;
use tokio::io::AsyncBufReadExt;
use tokio_util::sync::CancellationToken;

const PROJECT: &str = "local";
const SESSION: &str = "local-session";

pub(crate) async fn run<A: Adapter>(
    mut args: RunnerArgs,
    adapter: A,
    redactor: Redactor,
    identity: &crate::ServeIdentity,
    shutdown: CancellationToken,
) -> anyhow::Result<RunnerExit> {
    let token = format!("local-{:032x}", fastrand::u128(..));
    let backend = LocalBackend::builder()
        .token(token.clone())
        .session(SessionSeed::new(PROJECT, SESSION))
        .start(([127, 0, 0, 1], 0).into())
        .await
        .context("starting the local backend")?;
    args.session_id = Some(String::from(SESSION));
    args.websocket_url = Some(backend.ws_url(PROJECT, SESSION));
    args.backend_api_url = Some(backend.api_url());
    args.project = Some(String::from(PROJECT));
    args.bot_token = Some(token);
    args.bot_token_file = None;
    // A scratch workspace: preparing one creates folders, which do not belong in
    // whatever directory the command was typed in.
    let scratch = tempfile::tempdir().context("creating a scratch workspace")?;
    if args.workspace.is_none() {
        args.workspace = Some(scratch.path().to_owned());
    }
    let interactive = args.interactive.unwrap_or(false);
    // The local backend's token is the runner's bot token here: scrubbed like any.
    for secret in args.secret_values() {
        redactor
            .learn(&secret)
            .context("learning a secret of the local session")?;
    }
    let mut config =
        RunnerConfig::from_args(&args, redactor).context("configuring the local session")?;
    config.host.workspace_settings.git.env = crate::git_environment();
    crate::name_on_trace(&mut config.host, identity);
    let printer = tokio::spawn(print_conversation(backend.watch(SESSION)));
    let typing = interactive.then(|| tokio::spawn(post_typed_lines(backend.post_handle())));
    let report = run_session(config, adapter, shutdown).await;
    if let Some(typing) = typing {
        typing.abort();
    }
    let status = backend.status(PROJECT, SESSION).unwrap_or_default();
    backend.shutdown().await;
    let _printed = printer.await;
    let mut out = std::io::stdout().lock();
    writeln!(out, "\nstatus: {}", serde_json::to_string_pretty(&status)?)?;
    Ok(report.exit())
}

/// Prints every message of the session as the UI would render it.
async fn print_conversation(
    mut messages: tokio::sync::mpsc::UnboundedReceiver<ambient_protocol::SessionMessage>,
) {
    while let Some(message) = messages.recv().await {
        if let Some(line) = transcript::render(&message) {
            let mut out = std::io::stdout().lock();
            let _written = writeln!(out, "{line}");
        }
    }
}

/// Posts each line typed on the terminal as a user message, and ends the session at the
/// end of input.
async fn post_typed_lines(backend: ambient_local_backend::PostHandle) {
    // The backend delivers a message only to connections it has, so typing starts once
    // the runner is connected.
    if backend.wait_for_connections(SESSION, 1).await.is_err() {
        return;
    }
    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        if line.trim().is_empty() {
            continue;
        }
        if let Err(error) = backend
            .post(PROJECT, SESSION, json!({ "content": line }))
            .await
        {
            tracing::warn!(%error, "the message could not be posted");
        }
    }
    if let Err(error) = backend
        .post(PROJECT, SESSION, json!({ "type": "end_session" }))
        .await
    {
        tracing::warn!(%error, "the end of the session could not be posted");
    }
}
