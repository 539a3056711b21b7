//! `claude-runner`: drives the Claude Code CLI for a session (claude-proxy).
//!
//! In a pod it reads the environment the operator sets and connects to the backend. With
//! `--local` it runs the session against a local backend started in-process and prints
//! the conversation as the UI would show it. With `AGUI_LISTEN`
//! (`--serve`) it serves the session as AG-UI over HTTP instead (`ambient-serve`).

use std::{ffi::OsString, path::PathBuf, process::ExitCode};

use ambient_adapter_claude::{
    ClaudeAdapter, ClaudeSettings, DEFAULT_ALLOWED_TOOLS, DEFAULT_MAX_RETRIES, OutputLimits, RunAs,
};
use ambient_cli::CommonArgs;

/// Runs an Ambient Code Platform session with the Claude Code CLI.
#[derive(Debug, clap::Parser)]
#[command(name = "claude-runner", version, about)]
struct Cli {
    #[command(flatten)]
    common: CommonArgs,
    /// The Claude Code CLI binary.
    #[arg(long, env = "CLAUDE_BIN", default_value = "claude")]
    claude_bin: PathBuf,
    /// The CLI version the binary must report (for example `2.1.332`); unchecked when
    /// unset.
    #[arg(long, env = "CLAUDE_CLI_VERSION")]
    claude_cli_version: Option<String>,
    /// The CLI's permission mode (`acceptEdits`, `default`, `plan`, `bypassPermissions`, …).
    #[arg(long, env = "CLAUDE_PERMISSION_MODE", default_value = "acceptEdits")]
    permission_mode: String,
    /// Tools the CLI may use without asking, comma-separated.
    #[arg(long, env = "CLAUDE_ALLOWED_TOOLS", default_value = DEFAULT_ALLOWED_TOOLS)]
    allowed_tools: String,
    /// Tools removed from the CLI, comma-separated.
    #[arg(long, env = "CLAUDE_DISALLOWED_TOOLS", default_value = "")]
    disallowed_tools: String,
    /// Text appended to Claude Code's system prompt.
    #[arg(long, env = "CLAUDE_APPEND_SYSTEM_PROMPT")]
    append_system_prompt: Option<String>,
    /// Which settings files the CLI reads, comma-separated (`user`, `project`, `local`).
    #[arg(long, env = "CLAUDE_SETTING_SOURCES", default_value = "project")]
    setting_sources: String,
    /// The most model turns one user turn may take.
    #[arg(long, env = "CLAUDE_MAX_TURNS")]
    max_turns: Option<u32>,
    /// Seconds the CLI may take to answer an interrupt before the session fails.
    #[arg(long, env = "CLAUDE_CONTROL_TIMEOUT", default_value_t = 10)]
    control_timeout: u64,
    /// Seconds a turn still running when the session ends may take to finish before the
    /// CLI is stopped.
    #[arg(long, env = "CLAUDE_END_TIMEOUT", default_value_t = 60)]
    end_timeout: u64,
    /// How many times the CLI retries a failed API call before the turn fails (the CLI's
    /// own variable; the runner's default is lower than the CLI's 10).
    #[arg(long, env = "CLAUDE_CODE_MAX_RETRIES", default_value_t = DEFAULT_MAX_RETRIES)]
    max_retries: u32,
    /// Relay what subagents say, marked with the tool call that started each (the CLI's
    /// `--forward-subagent-text`).
    #[arg(long, env = "CLAUDE_FORWARD_SUBAGENT_TEXT", default_value_t = true, action = clap::ArgAction::Set)]
    forward_subagent_text: bool,
    /// Ask the user to approve each tool call the permission settings do not allow (allow
    /// once, or deny with a reason), instead of refusing it.
    #[arg(long, env = "CLAUDE_PERMISSION_PROMPTS", default_value_t = false, action = clap::ArgAction::Set)]
    permission_prompts: bool,
    /// Seconds a tool approval waits for the user's answer before the call is denied.
    #[arg(long, env = "CLAUDE_APPROVAL_TIMEOUT", default_value_t = 300)]
    approval_timeout: u64,
    /// Stream text as it is generated (`false` relays whole blocks only).
    #[arg(long, env = "CLAUDE_PARTIAL_MESSAGES", default_value_t = true, action = clap::ArgAction::Set)]
    partial_messages: bool,
}

/// Variables the CLI may see besides the system's (`ambient_cli::SYSTEM_VARIABLES`),
/// `ANTHROPIC_*`, `CLAUDE_*` and `LC_*`: the agent's own settings and git tokens, never the
/// runner's own credentials (the bot token, other frameworks' keys).
const PASSED_TO_CLI: [&str; 7] = [
    "IS_SANDBOX",
    "DISABLE_TELEMETRY",
    "DISABLE_ERROR_REPORTING",
    "GOOGLE_APPLICATION_CREDENTIALS",
    "CLOUD_ML_REGION",
    "GITHUB_TOKEN",
    "GITLAB_TOKEN",
];

fn cli_environment() -> Vec<(OsString, OsString)> {
    ambient_cli::child_environment(&PASSED_TO_CLI, &["ANTHROPIC_", "CLAUDE_"])
}

fn list(text: &str) -> Vec<String> {
    text.split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(str::to_owned)
        .collect()
}

fn main() -> ExitCode {
    let cli: Cli = match ambient_cli::parse() {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    let settings = cli.common.runner.agent.clone().into_settings();
    let model = settings.as_ref().ok().and_then(|agent| agent.model.clone());
    let adapter = settings.map(|agent| {
        ClaudeAdapter::new(ClaudeSettings {
            binary: ambient_cli::program_path(&cli.claude_bin),
            expected_version: cli.claude_cli_version.clone(),
            model: agent.model,
            permission_mode: cli.permission_mode.clone(),
            allowed_tools: list(&cli.allowed_tools),
            disallowed_tools: list(&cli.disallowed_tools),
            append_system_prompt: cli.append_system_prompt.clone(),
            setting_sources: list(&cli.setting_sources),
            max_turns: cli.max_turns,
            partial_messages: cli.partial_messages,
            mcp_search: agent.mcp_config_search,
            mcp_config_path: agent.mcp_config_path,
            max_output_tokens: agent.max_tokens,
            max_retries: cli.max_retries,
            permission_prompts: cli.permission_prompts,
            forward_subagent_text: cli.forward_subagent_text,
            approval_timeout: std::time::Duration::from_secs(cli.approval_timeout),
            temperature: agent.temperature,
            env: cli_environment(),
            control_timeout: std::time::Duration::from_secs(cli.control_timeout),
            end_timeout: std::time::Duration::from_secs(cli.end_timeout),
            run_as: agent.agent_user.map(|user| RunAs {
                uid: user.uid,
                gid: user.gid,
            }),
            output_limits: OutputLimits {
                max_line_bytes: cli.common.runner.limits.limits().max_line_bytes,
                ..OutputLimits::default()
            },
            ..ClaudeSettings::default()
        })
    });
    ambient_cli::execute_as(
        cli.common,
        adapter,
        ambient_cli::ServeIdentity {
            name: String::from("claude-runner"),
            framework: String::from("claude-agent-sdk"),
            version: String::from(env!("CARGO_PKG_VERSION")),
            interrupts: cli.permission_prompts,
            agent_features: vec![
                String::from("agentic_chat"),
                String::from("backend_tool_rendering"),
                String::from("human_in_the_loop"),
                String::from("thinking"),
            ],
            file_system: true,
            mcp: true,
            session_persistence: true,
            model,
            switches_model: true,
        },
    )
}
