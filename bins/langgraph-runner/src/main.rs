//! `langgraph-runner`: runs a session's LangGraph workflow on a LangGraph Server.
//!
//! In a pod it reads the environment the operator sets and connects to the backend. With
//! `--local` it runs the session against a local backend started in-process, on the
//! server `--langgraph-url` names, and prints the conversation as the UI would show it.

use std::process::ExitCode;

use ambient_adapter_langgraph::{LangGraphAdapter, LangGraphSettings};
use ambient_cli::CommonArgs;

/// Runs an Ambient Code Platform session's LangGraph workflow on a LangGraph Server.
#[derive(Debug, clap::Parser)]
#[command(name = "langgraph-runner", version, about)]
struct Cli {
    #[command(flatten)]
    common: CommonArgs,
    /// The LangGraph Server (a LangGraph Platform deployment, or any server speaking its
    /// API), e.g. `http://127.0.0.1:2024`.
    #[arg(long, env = "LANGGRAPH_URL")]
    langgraph_url: Option<String>,
    /// The assistant id or graph name to run.
    #[arg(long, env = "WORKFLOW_ID")]
    workflow_id: Option<String>,
    /// How to run it, as JSON: `url`, `config`, `context`, `metadata`, `stream_mode`,
    /// `stream_subgraphs`, `input`, `prompt_field`, `on_busy` (`queue` or `interrupt`).
    #[arg(long, env = "WORKFLOW_CONFIG")]
    workflow_config: Option<String>,
}

fn main() -> ExitCode {
    let cli: Cli = match ambient_cli::parse() {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    let adapter = LangGraphSettings::from_env_values(
        cli.langgraph_url.as_deref(),
        cli.workflow_id.as_deref(),
        cli.common.runner.secrets.langgraph_api_key.as_deref(),
        cli.workflow_config.as_deref(),
    )
    .map_err(|error| error.to_string())
    .and_then(|settings| LangGraphAdapter::new(settings).map_err(|error| error.to_string()));
    ambient_cli::execute(cli.common, adapter)
}
