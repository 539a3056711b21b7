//! The runner's configuration: every setting typed, with the environment variable each
//! comes from (`platform-wire.md` §2).
//!
//! [`RunnerArgs`] is the clap form the binaries flatten into their own arguments (a flag
//! overrides its variable); [`RunnerArgs::host_config`] validates the part every front
//! shares into a [`HostConfig`], naming the variable in every error. A front validates
//! its own settings from the same arguments.

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use ambient_adapter::Mode;
use ambient_protocol::{
    Secret,
    repos::{RepoLocation, RepoSpec, parse_repos},
};

use crate::trace::TraceIdentity;
use crate::{
    Redactor,
    limits::{LimitArgs, Limits},
    workspace::GitSettings,
};

/// The names of the environment variables the host and the fronts read.
pub mod env {
    /// The session (custom resource) name.
    pub const SESSION_ID: &str = "SESSION_ID";
    /// The backend's WebSocket endpoint for this session.
    pub const WEBSOCKET_URL: &str = "WEBSOCKET_URL";
    /// The bearer token.
    pub const BOT_TOKEN: &str = "BOT_TOKEN";
    /// A file holding the bearer token, read again before each reconnect.
    pub const BOT_TOKEN_FILE: &str = "BOT_TOKEN_FILE";
    /// The backend's API base URL (`…/api`).
    pub const BACKEND_API_URL: &str = "BACKEND_API_URL";
    /// The project (namespace) of the session.
    pub const AGENTIC_SESSION_NAMESPACE: &str = "AGENTIC_SESSION_NAMESPACE";
    /// The project, as the Python runner's fallback named it.
    pub const PROJECT_NAME: &str = "PROJECT_NAME";
    /// The initial prompt.
    pub const PROMPT: &str = "PROMPT";
    /// Chat mode.
    pub const INTERACTIVE: &str = "INTERACTIVE";
    /// The workspace root.
    pub const WORKSPACE_PATH: &str = "WORKSPACE_PATH";
    /// The session timeout, in seconds.
    pub const TIMEOUT: &str = "TIMEOUT";
    /// The session this one continues.
    pub const PARENT_SESSION_ID: &str = "PARENT_SESSION_ID";
}

/// The prompt a batch session runs when it is given none, as the Python runner does.
pub const DEFAULT_PROMPT: &str = "Hello! How can I help you today?";

/// The workspace root when none is configured, as the Python runner defaults it.
pub const DEFAULT_WORKSPACE: &str = "/workspace";

/// The platform's settings as command-line flags, each backed by its environment variable.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct RunnerArgs {
    /// The session (custom resource) name.
    #[arg(long, env = env::SESSION_ID)]
    pub session_id: Option<String>,
    /// The backend's WebSocket URL for this session.
    #[arg(long, env = env::WEBSOCKET_URL)]
    pub websocket_url: Option<String>,
    /// The bearer token for the backend.
    #[arg(long, env = env::BOT_TOKEN, hide_env_values = true)]
    pub bot_token: Option<String>,
    /// A file holding the bearer token; read again before every reconnect.
    #[arg(long, env = env::BOT_TOKEN_FILE)]
    pub bot_token_file: Option<PathBuf>,
    /// The backend's API base URL; derived from the WebSocket URL when absent.
    #[arg(long, env = env::BACKEND_API_URL)]
    pub backend_api_url: Option<String>,
    /// The session's project (namespace).
    #[arg(long, env = env::AGENTIC_SESSION_NAMESPACE)]
    pub project: Option<String>,
    /// The initial prompt.
    #[arg(long, env = env::PROMPT)]
    pub prompt: Option<String>,
    /// Converse until the session is ended, instead of running one prompt.
    #[arg(long, env = env::INTERACTIVE, value_parser = parse_truthy, num_args = 0..=1, default_missing_value = "true")]
    pub interactive: Option<bool>,
    /// The workspace root [default: /workspace].
    #[arg(long, env = env::WORKSPACE_PATH)]
    pub workspace: Option<PathBuf>,
    /// Seconds after which the session fails as timed out.
    #[arg(long, env = env::TIMEOUT, value_parser = parse_timeout)]
    pub timeout: Option<Duration>,
    /// The session this one continues.
    #[arg(long, env = env::PARENT_SESSION_ID)]
    pub parent_session_id: Option<String>,
    /// Credentials the runner may hold; each is redacted from everything it sends.
    #[command(flatten)]
    pub secrets: SecretArgs,
    /// The repositories and git settings of the workspace.
    #[command(flatten)]
    pub workspace_args: WorkspaceArgs,
    /// Settings for the agent framework.
    #[command(flatten)]
    pub agent: AgentArgs,
    /// How much the platform and the agent's processes can make the runner hold.
    #[command(flatten)]
    pub limits: LimitArgs,
}

/// The workspace's repositories and git settings (`platform-wire.md` §2.1, §8).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct WorkspaceArgs {
    /// The session's repositories, as a JSON array of `{name?, input:{url, branch?}, output?:{url, branch?}}`.
    #[arg(long, env = "REPOS_JSON")]
    pub repos_json: Option<String>,
    /// The repository folder the agent works in.
    #[arg(long, env = "MAIN_REPO_NAME")]
    pub main_repo_name: Option<String>,
    /// The index into the repositories of the one the agent works in.
    #[arg(long, env = "MAIN_REPO_INDEX")]
    pub main_repo_index: Option<String>,
    /// Single-repository mode: the repository to clone.
    #[arg(long, env = "INPUT_REPO_URL")]
    pub input_repo_url: Option<String>,
    /// Single-repository mode: its branch [default: main].
    #[arg(long, env = "INPUT_BRANCH")]
    pub input_branch: Option<String>,
    /// Single-repository mode: where to push.
    #[arg(long, env = "OUTPUT_REPO_URL")]
    pub output_repo_url: Option<String>,
    /// Single-repository mode: the branch to push [default: sessions/{SESSION_ID}].
    #[arg(long, env = "OUTPUT_BRANCH")]
    pub output_branch: Option<String>,
    /// Push the changes when the session completes.
    #[arg(long, env = "AUTO_PUSH_ON_COMPLETE", value_parser = parse_truthy, num_args = 0..=1, default_missing_value = "true")]
    pub auto_push_on_complete: Option<bool>,
    /// Open a pull request after pushing (only the value `true`, in any case, turns it on).
    #[arg(long, env = "CREATE_PR")]
    pub create_pr: Option<String>,
    /// The pull request's base branch [default: the input branch].
    #[arg(long, env = "PR_TARGET_BRANCH")]
    pub pr_target_branch: Option<String>,
    /// The commit author's name [default: Ambient Code Bot].
    #[arg(long, env = "GIT_USER_NAME")]
    pub git_user_name: Option<String>,
    /// The commit author's email (default: `bot@ambient-code.local`).
    #[arg(long, env = "GIT_USER_EMAIL")]
    pub git_user_email: Option<String>,
    /// The active workflow's repository.
    #[arg(long, env = "ACTIVE_WORKFLOW_GIT_URL")]
    pub active_workflow_git_url: Option<String>,
    /// The active workflow's branch [default: main].
    #[arg(long, env = "ACTIVE_WORKFLOW_BRANCH")]
    pub active_workflow_branch: Option<String>,
    /// A folder inside the workflow repository.
    #[arg(long, env = "ACTIVE_WORKFLOW_PATH")]
    pub active_workflow_path: Option<String>,
    /// The transports the runner's git may use, comma-separated (`https`, `ssh`, `http`,
    /// `file`) [default: https]. Tokens go over https only, whatever this says.
    #[arg(long, env = "GIT_PROTOCOLS")]
    pub git_protocols: Option<String>,
    /// The hosts the GitHub token is for, comma-separated (`host` or `host:port`)
    /// [default: github.com].
    #[arg(long, env = "GITHUB_HOSTS")]
    pub github_hosts: Option<String>,
    /// The hosts the GitLab token is for, comma-separated [default: gitlab.com].
    #[arg(long, env = "GITLAB_HOSTS")]
    pub gitlab_hosts: Option<String>,
}

/// Settings for the agent framework (`platform-wire.md` §2.1, §8).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct AgentArgs {
    /// The model [default: the framework's].
    #[arg(long, env = "LLM_MODEL")]
    pub llm_model: Option<String>,
    /// The largest response, in tokens.
    #[arg(long, env = "LLM_MAX_TOKENS")]
    pub llm_max_tokens: Option<String>,
    /// The older name of `LLM_MAX_TOKENS`, read when that is unset.
    #[arg(long, env = "MAX_TOKENS", hide = true)]
    pub max_tokens: Option<String>,
    /// The sampling temperature.
    #[arg(long, env = "LLM_TEMPERATURE")]
    pub llm_temperature: Option<String>,
    /// The older name of `LLM_TEMPERATURE`, read when that is unset.
    #[arg(long, env = "TEMPERATURE", hide = true)]
    pub temperature: Option<String>,
    /// Look for MCP servers in `.mcp.json` (`0`, `false`, `no` turn it off).
    #[arg(long, env = "MCP_CONFIG_SEARCH", value_parser = parse_truthy)]
    pub mcp_config_search: Option<bool>,
    /// An explicit `.mcp.json`.
    #[arg(long, env = "MCP_CONFIG_PATH")]
    pub mcp_config_path: Option<PathBuf>,
    /// Use Claude through Vertex AI.
    #[arg(long, env = "CLAUDE_CODE_USE_VERTEX", value_parser = parse_truthy)]
    pub claude_code_use_vertex: Option<bool>,
    /// The Vertex AI service account key file.
    #[arg(long, env = "GOOGLE_APPLICATION_CREDENTIALS")]
    pub google_application_credentials: Option<PathBuf>,
    /// The Vertex AI project.
    #[arg(long, env = "ANTHROPIC_VERTEX_PROJECT_ID")]
    pub anthropic_vertex_project_id: Option<String>,
    /// The Vertex AI region.
    #[arg(long, env = "CLOUD_ML_REGION")]
    pub cloud_ml_region: Option<String>,
    /// The id of the user the session runs for.
    #[arg(long, env = "USER_ID")]
    pub user_id: Option<String>,
    /// The name of the user the session runs for.
    #[arg(long, env = "USER_NAME")]
    pub user_name: Option<String>,
    /// Run the agent's processes as this user id, not the runner's (needs root, or
    /// `CAP_SETUID` and `CAP_SETGID`): then they cannot read what only the runner can.
    #[arg(long, env = "AGENT_UID")]
    pub agent_uid: Option<String>,
    /// The agent's group id [default: AGENT_UID].
    #[arg(long, env = "AGENT_GID")]
    pub agent_gid: Option<String>,
}

/// The workspace settings, validated.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WorkspaceSettings {
    /// The repositories (`REPOS_JSON`), or the single legacy one.
    pub repos: Vec<RepoSpec>,
    /// Which repository the agent works in.
    pub main_repo: MainRepo,
    /// Push when the session completes.
    pub auto_push: bool,
    /// Open a pull request after pushing.
    pub create_pr: bool,
    /// The pull request's base branch.
    pub pr_target_branch: Option<String>,
    /// The commit author's name.
    pub git_user_name: String,
    /// The commit author's email.
    pub git_user_email: String,
    /// The active workflow repository.
    pub workflow: Option<RepoLocation>,
    /// A folder inside the workflow repository.
    pub workflow_path: Option<String>,
    /// How the runner's git runs: its environment, transports and token hosts.
    pub git: GitSettings,
    /// Where the repositories are checked out.
    pub layout: CheckoutLayout,
}

/// Where in the workspace the session's repositories are checked out: a fact of the
/// platform the runner serves, which its UI and its pod's init container rely on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum CheckoutLayout {
    /// `<workspace>/<name>`, as the WebSocket platform lays them out.
    #[default]
    WorkspaceRoot,
    /// `<workspace>/repos/<name>`, as the AG-UI platform does (its init container
    /// clones there, and its UI browses and configures `repos/<name>`).
    ReposFolder,
}

impl CheckoutLayout {
    /// The folder that holds the checkouts, relative to the workspace (`""` for its root).
    pub fn folder(self) -> &'static str {
        match self {
            Self::WorkspaceRoot => "",
            Self::ReposFolder => "repos",
        }
    }

    /// Where the repository named `name` is checked out under `root`.
    pub fn repo_path(self, root: &Path, name: &str) -> PathBuf {
        root.join(self.folder()).join(name)
    }
}

/// Which repository is the agent's working directory.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum MainRepo {
    /// The first (or only) one.
    #[default]
    First,
    /// The one with this folder name.
    Named(String),
    /// The one at this index.
    Index(usize),
}

/// The agent settings, validated.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AgentSettings {
    /// The model.
    pub model: Option<String>,
    /// The largest response, in tokens.
    pub max_tokens: Option<u32>,
    /// The sampling temperature.
    pub temperature: Option<f32>,
    /// Look for MCP servers in `.mcp.json`.
    pub mcp_config_search: bool,
    /// An explicit `.mcp.json`.
    pub mcp_config_path: Option<PathBuf>,
    /// Vertex AI, when used.
    pub vertex: Option<VertexSettings>,
    /// The user the session runs for.
    pub user_id: Option<String>,
    /// The user's name.
    pub user_name: Option<String>,
    /// The user the agent's processes run as, when not the runner's.
    pub agent_user: Option<AgentUser>,
}

/// A user id and group id for the agent's processes (`AGENT_UID`, `AGENT_GID`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AgentUser {
    /// The user id.
    pub uid: u32,
    /// The group id.
    pub gid: u32,
}

/// Claude through Vertex AI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VertexSettings {
    /// The service account key file.
    pub credentials: PathBuf,
    /// The project.
    pub project_id: String,
    /// The region.
    pub region: String,
}

/// Credentials from the environment. Each one the runner holds is scrubbed from every
/// frame, status body and log line, whether or not this runner uses it.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct SecretArgs {
    /// GitHub token for git and pull requests.
    #[arg(long, env = "GITHUB_TOKEN", hide_env_values = true)]
    pub github_token: Option<String>,
    /// GitLab token for git.
    #[arg(long, env = "GITLAB_TOKEN", hide_env_values = true)]
    pub gitlab_token: Option<String>,
    /// Anthropic API key, for the Claude Code CLI.
    #[arg(long, env = "ANTHROPIC_API_KEY", hide_env_values = true)]
    pub anthropic_api_key: Option<String>,
    /// LangGraph Server API key.
    #[arg(long, env = "LANGGRAPH_API_KEY", hide_env_values = true)]
    pub langgraph_api_key: Option<String>,
    /// Langfuse secret key (observability).
    #[arg(long, env = "LANGFUSE_SECRET_KEY", hide_env_values = true)]
    pub langfuse_secret_key: Option<String>,
}

impl SecretArgs {
    fn values(&self) -> Vec<Secret> {
        [
            &self.github_token,
            &self.gitlab_token,
            &self.anthropic_api_key,
            &self.langgraph_api_key,
            &self.langfuse_secret_key,
        ]
        .into_iter()
        .flatten()
        .filter(|v| !v.trim().is_empty())
        .map(|v| Secret::new(v.as_str()))
        .collect()
    }
}

impl WorkspaceArgs {
    /// Validates the repositories and git settings.
    pub fn into_settings(self) -> Result<WorkspaceSettings, ConfigError> {
        let non_empty = |value: Option<String>| value.filter(|v| !v.trim().is_empty());
        let mut repos = match non_empty(self.repos_json) {
            Some(json) => parse_repos(&json).map_err(|error| ConfigError::Invalid {
                variable: "REPOS_JSON",
                why: format!(
                    "expected a JSON array of {{name?, input: {{url, branch?}}, output?}}: {error}"
                ),
            })?,
            None => Vec::new(),
        };
        for (index, repo) in repos.iter().enumerate() {
            if repo.input.url.trim().is_empty() {
                return Err(ConfigError::Invalid {
                    variable: "REPOS_JSON",
                    why: format!("repository {index} has an empty input url"),
                });
            }
        }
        if repos.is_empty()
            && let Some(url) = non_empty(self.input_repo_url)
        {
            repos.push(RepoSpec {
                name: None,
                input: RepoLocation {
                    url,
                    branch: non_empty(self.input_branch),
                },
                output: non_empty(self.output_repo_url).map(|url| RepoLocation {
                    url,
                    branch: non_empty(self.output_branch),
                }),
                status: None,
            });
        }
        let main_repo = match (
            non_empty(self.main_repo_name),
            non_empty(self.main_repo_index),
        ) {
            (Some(name), _) => MainRepo::Named(name),
            (None, Some(index)) => {
                let index: usize = index.trim().parse().map_err(|_| ConfigError::Invalid {
                    variable: "MAIN_REPO_INDEX",
                    why: format!("expected a whole number, got {index:?}"),
                })?;
                if !repos.is_empty() && index >= repos.len() {
                    return Err(ConfigError::Invalid {
                        variable: "MAIN_REPO_INDEX",
                        why: format!("{index} is past the {} repositories", repos.len()),
                    });
                }
                MainRepo::Index(index)
            }
            (None, None) => MainRepo::First,
        };
        Ok(WorkspaceSettings {
            repos,
            main_repo,
            auto_push: self.auto_push_on_complete.unwrap_or(false),
            // The Python runner compares with "true" after lower-casing: 1 and yes do not
            // count. Kept, since a Secret that says CREATE_PR=1 did not open PRs before.
            create_pr: self
                .create_pr
                .is_some_and(|v| v.trim().eq_ignore_ascii_case("true")),
            pr_target_branch: non_empty(self.pr_target_branch),
            git_user_name: non_empty(self.git_user_name)
                .unwrap_or_else(|| String::from("Ambient Code Bot")),
            git_user_email: non_empty(self.git_user_email)
                .unwrap_or_else(|| String::from("bot@ambient-code.local")),
            workflow: non_empty(self.active_workflow_git_url).map(|url| RepoLocation {
                url,
                branch: non_empty(self.active_workflow_branch),
            }),
            workflow_path: non_empty(self.active_workflow_path),
            git: git_settings(
                non_empty(self.git_protocols),
                non_empty(self.github_hosts),
                non_empty(self.gitlab_hosts),
            )?,
            layout: CheckoutLayout::default(),
        })
    }
}

/// The runner's git settings; the environment is the process's to add.
fn git_settings(
    protocols: Option<String>,
    github_hosts: Option<String>,
    gitlab_hosts: Option<String>,
) -> Result<GitSettings, ConfigError> {
    let list = |text: String| -> Vec<String> {
        text.split(',')
            .map(|item| item.trim().to_ascii_lowercase())
            .filter(|item| !item.is_empty())
            .collect()
    };
    let defaults = GitSettings::default();
    let protocols = protocols.map_or(defaults.protocols, list);
    if let Some(unknown) = protocols
        .iter()
        .find(|p| !["https", "ssh", "http", "file"].contains(&p.as_str()))
    {
        return Err(ConfigError::Invalid {
            variable: "GIT_PROTOCOLS",
            why: format!("{unknown:?} is not one of https, ssh, http, file"),
        });
    }
    Ok(GitSettings {
        env: Vec::new(),
        protocols,
        github_hosts: github_hosts.map_or(defaults.github_hosts, list),
        gitlab_hosts: gitlab_hosts.map_or(defaults.gitlab_hosts, list),
    })
}

impl AgentArgs {
    /// Validates the settings; each error names its variable.
    pub fn into_settings(self) -> Result<AgentSettings, ConfigError> {
        let non_empty = |value: Option<String>| value.filter(|v| !v.trim().is_empty());
        let max_tokens = match non_empty(self.llm_max_tokens)
            .map(|v| ("LLM_MAX_TOKENS", v))
            .or_else(|| non_empty(self.max_tokens).map(|v| ("MAX_TOKENS", v)))
        {
            Some((variable, value)) => {
                Some(
                    value
                        .trim()
                        .parse::<u32>()
                        .map_err(|_| ConfigError::Invalid {
                            variable,
                            why: format!("expected a whole number of tokens, got {value:?}"),
                        })?,
                )
            }
            None => None,
        };
        let temperature = match non_empty(self.llm_temperature)
            .map(|v| ("LLM_TEMPERATURE", v))
            .or_else(|| non_empty(self.temperature).map(|v| ("TEMPERATURE", v)))
        {
            Some((variable, value)) => {
                let parsed = value
                    .trim()
                    .parse::<f32>()
                    .ok()
                    .filter(|t| t.is_finite() && *t >= 0.0);
                Some(parsed.ok_or_else(|| ConfigError::Invalid {
                    variable,
                    why: format!("expected a number of at least 0, got {value:?}"),
                })?)
            }
            None => None,
        };
        let vertex = if self.claude_code_use_vertex.unwrap_or(false) {
            let missing = |variable| ConfigError::Missing {
                variable,
                why: "Vertex AI mode (CLAUDE_CODE_USE_VERTEX) needs it",
            };
            Some(VertexSettings {
                credentials: self
                    .google_application_credentials
                    .ok_or(missing("GOOGLE_APPLICATION_CREDENTIALS"))?,
                project_id: non_empty(self.anthropic_vertex_project_id)
                    .ok_or(missing("ANTHROPIC_VERTEX_PROJECT_ID"))?,
                region: non_empty(self.cloud_ml_region).ok_or(missing("CLOUD_ML_REGION"))?,
            })
        } else {
            None
        };
        let id = |variable: &'static str, value: String| {
            value
                .trim()
                .parse::<u32>()
                .map_err(|_| ConfigError::Invalid {
                    variable,
                    why: format!("expected a numeric id, got {value:?}"),
                })
        };
        let agent_user = match (non_empty(self.agent_uid), non_empty(self.agent_gid)) {
            (Some(uid), gid) => {
                let uid = id("AGENT_UID", uid)?;
                let gid = gid.map(|gid| id("AGENT_GID", gid)).transpose()?;
                Some(AgentUser {
                    uid,
                    gid: gid.unwrap_or(uid),
                })
            }
            (None, Some(_)) => {
                return Err(ConfigError::Missing {
                    variable: "AGENT_UID",
                    why: "AGENT_GID is set, and a group alone does not separate the agent",
                });
            }
            (None, None) => None,
        };
        Ok(AgentSettings {
            agent_user,
            model: non_empty(self.llm_model),
            max_tokens,
            temperature,
            mcp_config_search: self.mcp_config_search.unwrap_or(true),
            mcp_config_path: self.mcp_config_path,
            vertex,
            user_id: non_empty(self.user_id),
            user_name: non_empty(self.user_name),
        })
    }
}

/// `1`, `true`, `yes` (any case) are true; `0`, `false`, `no` and the empty string false.
fn parse_truthy(value: &str) -> Result<bool, String> {
    match value.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" => Ok(true),
        "" | "0" | "false" | "no" => Ok(false),
        _ => Err(String::from("expected one of 1, true, yes, 0, false, no")),
    }
}

/// Whole seconds; 0 means no timeout.
fn parse_timeout(value: &str) -> Result<Duration, String> {
    value
        .trim()
        .parse::<u64>()
        .map(Duration::from_secs)
        .map_err(|_| String::from("expected a whole number of seconds"))
}

/// A setting that is missing or wrong.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A required setting is absent.
    #[error("{variable} is not set: {why}")]
    Missing {
        /// The environment variable (or flag) that must be given.
        variable: &'static str,
        /// What it is needed for.
        why: &'static str,
    },
    /// A setting has a value that cannot be used.
    #[error("{variable} is invalid: {why}")]
    Invalid {
        /// The environment variable (or flag).
        variable: &'static str,
        /// What is wrong with it.
        why: String,
    },
}

/// The validated settings every front shares: the session, its prompt and mode, the
/// workspace, the timeout, the credentials to redact and the agent's settings. A front
/// adds its own (the WebSocket's URL and token, the serve mode's address).
#[derive(Debug, Clone)]
pub struct HostConfig {
    /// The session name.
    pub session_id: String,
    /// The initial prompt (empty when none).
    pub prompt: String,
    /// Batch or interactive.
    pub mode: Mode,
    /// The workspace root.
    pub workspace: PathBuf,
    /// When the session fails as timed out.
    pub timeout: Option<Duration>,
    /// The session this one continues.
    pub parent_session_id: Option<String>,
    /// Scrubs every credential the runner holds from what it sends; the one the log
    /// writer uses too.
    pub redactor: Redactor,
    /// The GitHub token, when given (minted through the backend otherwise).
    pub github_token: Option<Secret>,
    /// The GitLab token, when given.
    pub gitlab_token: Option<Secret>,
    /// Repositories and git settings.
    pub workspace_settings: WorkspaceSettings,
    /// Settings for the agent framework.
    pub agent: AgentSettings,
    /// The byte budgets.
    pub limits: Limits,
    /// Who the session is, on its trace (the runner's identity is the binary's to fill).
    pub trace_identity: TraceIdentity,
}

impl RunnerArgs {
    /// Every credential these settings carry: for a redactor set up before the settings
    /// are validated (the one that guards the log).
    pub fn secret_values(&self) -> Vec<Secret> {
        let mut secrets = self.secrets.values();
        secrets.extend(
            self.bot_token
                .iter()
                .filter(|t| !t.trim().is_empty())
                .map(|t| Secret::new(t.as_str())),
        );
        if let Some(current) = self
            .bot_token_file
            .as_ref()
            .and_then(|path| std::fs::read_to_string(path).ok())
        {
            secrets.push(Secret::new(current.trim()));
        }
        secrets
    }

    /// Validates the front-neutral settings. `SESSION_ID` is required unless the front
    /// has a `default_session` name for it (the serve mode works without the platform).
    /// `redactor` is the process's, built from [`RunnerArgs::secret_values`] and whatever
    /// else the process holds.
    pub fn host_config(
        &self,
        default_session: Option<&str>,
        redactor: Redactor,
    ) -> Result<HostConfig, ConfigError> {
        let non_empty = |value: &Option<String>| value.clone().filter(|v| !v.trim().is_empty());
        let session_id = non_empty(&self.session_id)
            .or_else(|| default_session.map(str::to_owned))
            .ok_or(ConfigError::Missing {
                variable: env::SESSION_ID,
                why: "the runner must know which session it runs",
            })?;
        Ok(HostConfig {
            session_id,
            prompt: self.prompt.clone().unwrap_or_default(),
            mode: if self.interactive.unwrap_or(false) {
                Mode::Interactive
            } else {
                Mode::Batch
            },
            workspace: self
                .workspace
                .clone()
                .unwrap_or_else(|| PathBuf::from(DEFAULT_WORKSPACE)),
            timeout: self.timeout.filter(|t| !t.is_zero()),
            parent_session_id: non_empty(&self.parent_session_id),
            redactor,
            github_token: non_empty(&self.secrets.github_token).map(Secret::new),
            gitlab_token: non_empty(&self.secrets.gitlab_token).map(Secret::new),
            workspace_settings: self.workspace_args.clone().into_settings()?,
            agent: self.agent.clone().into_settings()?,
            limits: self.limits.limits(),
            trace_identity: TraceIdentity {
                project: non_empty(&self.project),
                ..TraceIdentity::default()
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        runner: RunnerArgs,
    }

    /// Parses `args` (environment variables are given as flags of the same meaning) and
    /// returns the error text or the configuration.
    fn parse(args: &[&str]) -> Result<HostConfig, String> {
        let all = ["runner", "--session-id=s1"]
            .into_iter()
            .chain(args.iter().copied());
        let cli = Cli::try_parse_from(all).map_err(|e| format!("usage: {}", e.kind()))?;
        cli.runner
            .host_config(None, Redactor::default())
            .map_err(|e| e.to_string())
    }

    /// Checks the outcome of `args`: the error text, or the mode and timeout.
    #[track_caller]
    fn check(args: &[&str], expect: &str) {
        let got = match parse(args) {
            Err(error) => format!("error: {error}"),
            Ok(config) => format!("mode={:?} timeout={:?}", config.mode, config.timeout),
        };
        assert_eq!(got, expect);
    }

    #[test]
    fn the_session_mode_and_timeout_are_validated_and_errors_name_the_variable() {
        let bare = Cli::try_parse_from(["runner"]).unwrap();
        assert_eq!(
            bare.runner
                .host_config(None, Redactor::default())
                .unwrap_err()
                .to_string(),
            "SESSION_ID is not set: the runner must know which session it runs"
        );
        assert_eq!(
            bare.runner
                .host_config(Some("served"), Redactor::default())
                .unwrap()
                .session_id,
            "served"
        );
        check(&[], "mode=Batch timeout=None");
        check(
            &["--interactive=YES", "--timeout=300"],
            "mode=Interactive timeout=Some(300s)",
        );
        check(
            &["--interactive", "--timeout=0"],
            "mode=Interactive timeout=None",
        );
        check(
            &["--interactive=maybe"],
            "error: usage: invalid value for one of the arguments",
        );
        check(
            &["--timeout=soon"],
            "error: usage: invalid value for one of the arguments",
        );
    }

    #[test]
    fn workspace_and_agent_settings_are_validated_and_name_the_variable() {
        let errors = [
            (
                &["--repos-json=[{\"name\":1}]"][..],
                "REPOS_JSON is invalid: expected a JSON array",
            ),
            (&["--repos-json={"], "REPOS_JSON is invalid"),
            (
                &["--repos-json=[{\"input\":{\"url\":\" \"}}]"],
                "REPOS_JSON is invalid: repository 0 has an empty input url",
            ),
            (
                &["--main-repo-index=two"],
                "MAIN_REPO_INDEX is invalid: expected a whole number, got \"two\"",
            ),
            (
                &[
                    "--repos-json=[{\"input\":{\"url\":\"https://h/a.git\"}}]",
                    "--main-repo-index=3",
                ],
                "MAIN_REPO_INDEX is invalid: 3 is past the 1 repositories",
            ),
            (&["--llm-max-tokens=lots"], "LLM_MAX_TOKENS is invalid"),
            (&["--max-tokens=lots"], "MAX_TOKENS is invalid"),
            (&["--llm-temperature=-1"], "LLM_TEMPERATURE is invalid"),
            (
                &["--claude-code-use-vertex=true"],
                "GOOGLE_APPLICATION_CREDENTIALS is not set",
            ),
        ];
        for (args, expect) in errors {
            let error = parse(args).expect_err(expect);
            assert!(error.starts_with(expect), "{args:?}: {error}");
        }
        let config = parse(&[
            "--repos-json=[{\"name\":\"a\",\"input\":{\"url\":\"https://h/a.git\"}},{\"input\":{\"url\":\"https://h/b.git\"}}]",
            "--main-repo-index=1",
            "--max-tokens=1000",
            "--llm-temperature=0.70",
            "--create-pr=1",
            "--auto-push-on-complete=yes",
        ])
        .unwrap();
        assert_eq!(config.workspace_settings.repos.len(), 2);
        assert_eq!(config.workspace_settings.main_repo, MainRepo::Index(1));
        assert!(config.workspace_settings.auto_push);
        assert!(
            !config.workspace_settings.create_pr,
            "only `true` turns pull requests on"
        );
        assert_eq!(config.workspace_settings.git_user_name, "Ambient Code Bot");
        assert_eq!(config.agent.max_tokens, Some(1000));
        assert_eq!(config.agent.temperature, Some(0.7));
        assert!(config.agent.mcp_config_search);
        let legacy = parse(&[
            "--input-repo-url=https://h/only.git",
            "--output-repo-url=https://h/fork.git",
        ])
        .unwrap();
        assert_eq!(
            legacy.workspace_settings.repos[0].input.url,
            "https://h/only.git"
        );
        assert_eq!(
            legacy.workspace_settings.repos[0]
                .output
                .as_ref()
                .map(|o| o.url.as_str()),
            Some("https://h/fork.git")
        );
    }
}
