//! The adapter's settings, and the CLI command line they become.

use std::{ffi::OsString, path::PathBuf, time::Duration};

use ambient_process::{OutputLimits, RunAs};
use serde_json::Value;

use crate::TaskFolders;

/// The tools the CLI may use without asking, as the Python runners allowed them.
pub const DEFAULT_ALLOWED_TOOLS: &str =
    "Read,Write,Bash,Glob,Grep,Edit,MultiEdit,WebSearch,WebFetch,Skill,Agent";

/// The annotation that keeps the CLI's session id, so that a continuation resumes it
/// (the platform's name for it).
pub const SESSION_ANNOTATION: &str = "ambient-code.io/sdk-session-id";

/// How many times the CLI retries a failed API call unless told otherwise: with the CLI's
/// backoff, an API that is down fails a turn within seconds, not minutes.
pub const DEFAULT_MAX_RETRIES: u32 = 3;

/// How the CLI is run.
#[derive(Debug, Clone)]
pub struct ClaudeSettings {
    /// The CLI binary (`CLAUDE_BIN`).
    pub binary: PathBuf,
    /// The version the binary must report, when pinned (`CLAUDE_CLI_VERSION`).
    pub expected_version: Option<String>,
    /// The model (`LLM_MODEL`).
    pub model: Option<String>,
    /// `--permission-mode`.
    pub permission_mode: String,
    /// Tools allowed without asking.
    pub allowed_tools: Vec<String>,
    /// Tools removed.
    pub disallowed_tools: Vec<String>,
    /// Text appended to Claude Code's system prompt.
    pub append_system_prompt: Option<String>,
    /// Which settings files the CLI reads (`user`, `project`, `local`).
    pub setting_sources: Vec<String>,
    /// The most model turns a user turn may take.
    pub max_turns: Option<u32>,
    /// Stream text as it is generated (partials), not only whole blocks.
    pub partial_messages: bool,
    /// Look for MCP servers in the workspace's `.mcp.json`.
    pub mcp_search: bool,
    /// An explicit `.mcp.json`.
    pub mcp_config_path: Option<PathBuf>,
    /// The largest response, in tokens (passed as `CLAUDE_CODE_MAX_OUTPUT_TOKENS`).
    pub max_output_tokens: Option<u32>,
    /// How many times the CLI retries a failed API call (`CLAUDE_CODE_MAX_RETRIES`). The
    /// CLI's own default (10, tens of seconds apart) makes an outage take minutes to fail.
    pub max_retries: u32,
    /// The CLI forwards what its subagents say (`--forward-subagent-text`); the runner
    /// relays it marked with the tool call that started the subagent.
    pub forward_subagent_text: bool,
    /// Tool calls the permission settings do not allow become a question to the user
    /// (`--permission-prompt-tool=stdio`), instead of being refused.
    pub permission_prompts: bool,
    /// How long a tool approval may wait for the user before it is denied.
    pub approval_timeout: Duration,
    /// A sampling temperature: the CLI has no such setting, so it is reported, not used.
    pub temperature: Option<f32>,
    /// The child's environment, whole: the binary chooses what passes (never the
    /// runner's own credentials).
    pub env: Vec<(OsString, OsString)>,
    /// How long `initialize` may take.
    pub initialize_timeout: Duration,
    /// How long the CLI may take to answer an interrupt.
    pub control_timeout: Duration,
    /// How long the CLI may take to exit once it is idle and its input is closed.
    pub exit_timeout: Duration,
    /// How long a turn still running when the session ends may take to finish.
    pub end_timeout: Duration,
    /// The user the CLI runs as (`AGENT_UID`, `AGENT_GID`), when not the runner's.
    pub run_as: Option<RunAs>,
    /// How much of the CLI's output is held: its longest line, and what is read ahead.
    pub output_limits: OutputLimits,
}

impl Default for ClaudeSettings {
    fn default() -> Self {
        Self {
            binary: PathBuf::from("claude"),
            expected_version: None,
            model: None,
            permission_mode: String::from("acceptEdits"),
            allowed_tools: DEFAULT_ALLOWED_TOOLS.split(',').map(String::from).collect(),
            disallowed_tools: Vec::new(),
            append_system_prompt: None,
            setting_sources: vec![String::from("project")],
            max_turns: None,
            partial_messages: true,
            mcp_search: true,
            mcp_config_path: None,
            max_output_tokens: None,
            max_retries: DEFAULT_MAX_RETRIES,
            permission_prompts: false,
            forward_subagent_text: true,
            approval_timeout: Duration::from_secs(300),
            temperature: None,
            env: Vec::new(),
            run_as: None,
            output_limits: OutputLimits::default(),
            initialize_timeout: Duration::from_secs(60),
            control_timeout: Duration::from_secs(10),
            exit_timeout: Duration::from_secs(5),
            end_timeout: Duration::from_secs(60),
        }
    }
}

/// How the CLI's conversation starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Conversation {
    /// A new one with this id, chosen up front.
    New(String),
    /// The earlier one with this id.
    Resume(String),
}

impl Conversation {
    /// The session id either way.
    pub fn id(&self) -> &str {
        match self {
            Self::New(id) | Self::Resume(id) => id,
        }
    }
}

impl ClaudeSettings {
    /// Where the CLI's background tasks write, as its environment and user make it: its
    /// configuration folder (`CLAUDE_CONFIG_DIR`, else `.claude` in its `HOME`), whose
    /// `projects` holds subagents' transcripts, and `claude-<its uid>` in its scratch
    /// folder (`TMPDIR`, else `/tmp`), which holds background shells' outputs.
    pub fn task_folders(&self) -> TaskFolders {
        let given = |name: &str| {
            self.env
                .iter()
                .find(|(key, value)| key == name && !value.is_empty())
                .map(|(_, value)| PathBuf::from(value))
                .filter(|path| path.is_absolute())
        };
        let config_dir =
            given("CLAUDE_CONFIG_DIR").or_else(|| given("HOME").map(|home| home.join(".claude")));
        let scratch = given("TMPDIR").unwrap_or_else(|| PathBuf::from("/tmp"));
        let uid = RunAs::uid_of_child(self.run_as);
        let mut output_roots: Vec<PathBuf> = config_dir
            .iter()
            .map(|config| config.join("projects"))
            .collect();
        output_roots.push(scratch.join(format!("claude-{uid}")));
        TaskFolders {
            config_dir,
            output_roots,
        }
    }

    /// The command line: stream-json both ways, the settings, the other folders, the MCP
    /// servers, and the conversation.
    pub fn argv(
        &self,
        extra_dirs: &[PathBuf],
        mcp_servers: Option<&Value>,
        conversation: &Conversation,
    ) -> Vec<OsString> {
        let mut argv: Vec<OsString> = [
            "--output-format",
            "stream-json",
            "--verbose",
            "--input-format",
            "stream-json",
        ]
        .map(OsString::from)
        .to_vec();
        if self.partial_messages {
            argv.push(OsString::from("--include-partial-messages"));
        }
        argv.push(OsString::from("--permission-mode"));
        argv.push(OsString::from(&self.permission_mode));
        if !self.allowed_tools.is_empty() {
            argv.push(OsString::from("--allowedTools"));
            argv.push(OsString::from(self.allowed_tools.join(",")));
        }
        if self.forward_subagent_text {
            argv.push(OsString::from("--forward-subagent-text"));
        }
        if self.permission_prompts {
            argv.push(OsString::from("--permission-prompt-tool=stdio"));
        }
        if !self.disallowed_tools.is_empty() {
            argv.push(OsString::from("--disallowedTools"));
            argv.push(OsString::from(self.disallowed_tools.join(",")));
        }
        if !self.setting_sources.is_empty() {
            argv.push(OsString::from(format!(
                "--setting-sources={}",
                self.setting_sources.join(",")
            )));
        }
        // Values that may start with `-` use the `--flag=value` form.
        if let Some(model) = &self.model {
            argv.push(OsString::from(format!("--model={model}")));
        }
        if let Some(turns) = self.max_turns {
            argv.push(OsString::from(format!("--max-turns={turns}")));
        }
        if let Some(prompt) = &self.append_system_prompt {
            argv.push(OsString::from("--append-system-prompt"));
            argv.push(OsString::from(prompt));
        }
        if let Some(servers) = mcp_servers {
            argv.push(OsString::from("--mcp-config"));
            argv.push(OsString::from(
                serde_json::json!({ "mcpServers": servers }).to_string(),
            ));
        }
        for dir in extra_dirs {
            argv.push(OsString::from("--add-dir"));
            argv.push(dir.clone().into_os_string());
        }
        argv.push(OsString::from(match conversation {
            Conversation::New(id) => format!("--session-id={id}"),
            Conversation::Resume(id) => format!("--resume={id}"),
        }));
        argv
    }

    /// The child's environment: the one given, plus what the settings set through it.
    pub fn child_env(&self, extra_dirs: &[PathBuf]) -> Vec<(OsString, OsString)> {
        let mut env = self.env.clone();
        let mut set = |key: &str, value: String| {
            env.retain(|(k, _)| k != key);
            env.push((OsString::from(key), OsString::from(value)));
        };
        if let Some(tokens) = self.max_output_tokens {
            set("CLAUDE_CODE_MAX_OUTPUT_TOKENS", tokens.to_string());
        }
        set("CLAUDE_CODE_MAX_RETRIES", self.max_retries.to_string());
        if !extra_dirs.is_empty() {
            set(
                "CLAUDE_CODE_ADDITIONAL_DIRECTORIES_CLAUDE_MD",
                String::from("1"),
            );
        }
        set(
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC",
            String::from("1"),
        );
        set("DISABLE_AUTOUPDATER", String::from("1"));
        env
    }

    /// Settings the CLI has no equivalent for, in words for the user.
    pub fn unsupported(&self) -> Vec<String> {
        let mut notes = Vec::new();
        if let Some(temperature) = self.temperature {
            notes.push(format!(
                "LLM_TEMPERATURE={temperature} is not used: the Claude Code CLI has no temperature setting"
            ));
        }
        notes
    }
}

/// A new random (version 4) UUID, the form the CLI wants for `--session-id`.
pub fn new_session_id() -> String {
    let mut bytes = fastrand::u128(..).to_be_bytes();
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_argv_carries_every_setting_in_the_forms_the_cli_takes() {
        let settings = ClaudeSettings {
            model: Some(String::from("claude-sonnet-4-5")),
            max_turns: Some(3),
            disallowed_tools: vec![String::from("WebFetch")],
            append_system_prompt: Some(String::from("Be brief.")),
            ..ClaudeSettings::default()
        };
        let servers = serde_json::json!({"mini": {"command": "mini-mcp"}});
        let argv = settings.argv(
            &[PathBuf::from("/workspace/other")],
            Some(&servers),
            &Conversation::Resume(String::from("-odd-id")),
        );
        let argv: Vec<String> = argv
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        insta::assert_debug_snapshot!(argv);
    }

    #[test]
    fn a_new_conversation_gets_a_fresh_session_id_and_temperature_is_reported() {
        let id = new_session_id();
        assert_eq!(id.len(), 36);
        assert_eq!(&id[14..15], "4");
        assert_ne!(id, new_session_id());
        let argv = ClaudeSettings::default().argv(&[], None, &Conversation::New(id.clone()));
        assert_eq!(
            argv.last().map(|a| a.to_string_lossy().into_owned()),
            Some(format!("--session-id={id}"))
        );
        let settings = ClaudeSettings {
            temperature: Some(0.2),
            ..ClaudeSettings::default()
        };
        assert_eq!(settings.unsupported().len(), 1);
        assert!(ClaudeSettings::default().unsupported().is_empty());
    }
}
