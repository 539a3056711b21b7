//! `langgraph-runner`: runs a session's LangGraph workflow, on a LangGraph Server when a URL
//! is given, else in the pod with the Python driver.
//!
//! In a pod it reads the environment the operator sets and connects to the backend. With
//! `--local` it runs the session against a local backend started in-process and prints
//! the conversation as the UI would show it. With `AGUI_LISTEN`
//! (`--serve`) it serves the session as AG-UI over HTTP instead (`ambient-serve`).

use std::process::ExitCode;

use std::{ffi::OsString, path::PathBuf};

use ambient_adapter_langgraph::{
    DriverSettings, LangGraphAdapter, LangGraphSettings, OutputLimits, RunAs,
};
use ambient_cli::CommonArgs;

/// Runs an Ambient Code Platform session's LangGraph workflow, on a LangGraph Server or in
/// the pod.
#[derive(Debug, clap::Parser)]
#[command(name = "langgraph-runner", version, about)]
struct Cli {
    #[command(flatten)]
    common: CommonArgs,
    /// The LangGraph Server (a LangGraph Platform deployment, or any server speaking its
    /// API), e.g. `http://127.0.0.1:2024`; without one the workflow runs in the pod.
    #[arg(long, env = "LANGGRAPH_URL")]
    langgraph_url: Option<String>,
    /// The graph to run: a name in the workspace's `langgraph.json`, `module:attribute` or
    /// `file.py:attribute` (in the pod), or a server's assistant id or graph name.
    #[arg(long, env = "WORKFLOW_ID")]
    workflow_id: Option<String>,
    /// How to run it, as JSON: `url`, `config`, `context`, `metadata`, `stream_mode`,
    /// `stream_subgraphs`, `input`, `prompt_field`, `on_busy` (`queue` or `interrupt`).
    #[arg(long, env = "WORKFLOW_CONFIG")]
    workflow_config: Option<String>,
    /// Seconds a call to the LangGraph server may wait for its answer (connecting: 10).
    #[arg(long, env = "LANGGRAPH_TIMEOUT", default_value_t = 60)]
    langgraph_timeout: u64,
    /// In the pod: the Python that has LangGraph installed.
    #[arg(long, env = "LANGGRAPH_PYTHON", default_value = "python3")]
    langgraph_python: PathBuf,
    /// In the pod: an installed copy of the driver script [default: the one built in].
    #[arg(long, env = "LANGGRAPH_DRIVER")]
    langgraph_driver: Option<PathBuf>,
    /// In the pod: seconds loading the graph may take.
    #[arg(long, env = "LANGGRAPH_DRIVER_START_TIMEOUT", default_value_t = 120)]
    langgraph_driver_start_timeout: u64,
    /// In the pod: more variables the graph's process may see, comma-separated (a model
    /// provider's key, say). It sees only the system's and its SDKs' otherwise.
    #[arg(long, env = "LANGGRAPH_PASS_ENV")]
    langgraph_pass_env: Option<String>,
}

/// Variables the graph's process gets besides the system's and those
/// `LANGGRAPH_PASS_ENV` names: what LangGraph and the usual model SDKs read. Never the
/// runner's own credentials.
const DRIVER_PREFIXES: [&str; 5] = [
    "LANGCHAIN_",
    "LANGSMITH_",
    "OPENAI_",
    "ANTHROPIC_",
    "AZURE_OPENAI_",
];
const DRIVER_NAMES: [&str; 2] = ["PYTHONPATH", "VIRTUAL_ENV"];

fn driver_environment(pass: Option<&str>) -> Vec<(OsString, OsString)> {
    let mut names: Vec<&str> = DRIVER_NAMES.to_vec();
    names.extend(
        pass.into_iter()
            .flat_map(|list| list.split(',').map(str::trim)),
    );
    ambient_cli::child_environment(&names, &DRIVER_PREFIXES)
}

fn main() -> ExitCode {
    let cli: Cli = match ambient_cli::parse() {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    let adapter = cli
        .common
        .runner
        .agent
        .clone()
        .into_settings()
        .map_err(|error| error.to_string())
        .and_then(|agent| {
            LangGraphSettings::from_env_values(
                cli.langgraph_url.as_deref(),
                cli.workflow_id.as_deref(),
                cli.common.runner.secrets.langgraph_api_key.as_deref(),
                cli.workflow_config.as_deref(),
                DriverSettings {
                    python: ambient_cli::program_path(&cli.langgraph_python),
                    script: cli
                        .langgraph_driver
                        .as_deref()
                        .map(ambient_cli::program_path),
                    env: driver_environment(cli.langgraph_pass_env.as_deref()),
                    start_timeout: std::time::Duration::from_secs(
                        cli.langgraph_driver_start_timeout,
                    ),
                    run_as: agent.agent_user.map(|user| RunAs {
                        uid: user.uid,
                        gid: user.gid,
                    }),
                    output_limits: OutputLimits {
                        max_line_bytes: cli.common.runner.limits.limits().max_line_bytes,
                        ..OutputLimits::default()
                    },
                },
            )
            .map_err(|error| error.to_string())
        })
        .map(|mut settings| {
            // The serve mode streams the graph's state; the WebSocket has no frame for it.
            settings.workflow.stream_state = cli.common.serves();
            settings.max_event_bytes = cli.common.runner.limits.limits().max_line_bytes;
            settings.response_timeout = std::time::Duration::from_secs(cli.langgraph_timeout);
            settings
        })
        .and_then(|settings| LangGraphAdapter::new(settings).map_err(|error| error.to_string()));
    ambient_cli::execute_as(
        cli.common,
        adapter,
        ambient_cli::ServeIdentity {
            name: String::from("langgraph-runner"),
            framework: String::from("langgraph"),
            version: String::from(env!("CARGO_PKG_VERSION")),
            interrupts: true,
            agent_features: vec![
                String::from("agentic_chat"),
                String::from("backend_tool_rendering"),
                String::from("shared_state"),
                String::from("human_in_the_loop"),
            ],
            session_persistence: true,
            ..ambient_cli::ServeIdentity::default()
        },
    )
}
