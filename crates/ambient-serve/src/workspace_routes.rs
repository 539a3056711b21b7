//! The platform UI's repository and workflow routes (`/repos/add`, `/repos/remove`,
//! `/repos/status`, `/workflow`), through the host's own workspace code, the same that
//! prepares the workspace and serves the WebSocket front's changes: its git runs with a
//! cleared environment, checked URLs and refs, and sends a token only to its own origin.
//! `/repos/status` runs no git at all: it reads each checkout's `.git` files through the
//! file API's confined opens, since the agent can write them.

use std::time::Duration;

use ambient_host::{
    ChangeOutcome,
    workspace::{Change, RepoResult},
};
use ambient_protocol::{
    Secret,
    repos::{RepoLocation, RepoSpec},
};
use axum::{
    Router,
    body::Bytes,
    extract::State,
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::{content::Workspace, http::Front, hub::Command};

/// The most bytes read of one file on the way to an answer (a `.git/HEAD`, a command's
/// front matter); a larger one is left out.
const SMALL_FILE: u64 = 64 << 10;
/// The most folders, branches or workflow files an answer lists.
const MAX_LISTED: usize = 500;

/// How long a change may take (a clone of a large repository) before the caller is
/// answered that it still runs.
const CHANGE_TIMEOUT: Duration = Duration::from_secs(600);

/// The routes, for the guarded part of the router.
pub(crate) fn routes() -> Router<Front> {
    Router::new()
        .route("/repos/add", post(add))
        .route("/repos/remove", post(remove))
        .route("/repos/status", get(status))
        .route("/workflow", post(workflow))
        .route("/content/workflow-metadata", get(metadata))
        .route("/content/git-status", get(git_status))
        .route("/content/git-list-branches", get(git_branches))
        .route("/content/git-configure-remote", post(configure_remote))
}

/// The headers the platform's backend sends the user's own tokens in, with a repository
/// or workflow change.
const GITHUB_TOKEN_HEADER: &str = "x-github-token";
const GITLAB_TOKEN_HEADER: &str = "x-gitlab-token";

/// Distinct tokens callers may bring in a session: each is learned by the redactor for
/// good, which must keep room for the runner's own.
const MAX_CALLERS_TOKENS: usize = 64;
/// The longest token a caller may bring; GitHub's and GitLab's are under 100 bytes.
const MAX_TOKEN_BYTES: usize = 512;

/// A caller's token header's value, if it is one: printable ASCII with no space, at
/// most [`MAX_TOKEN_BYTES`]. The message names the header, never the value.
fn callers_token(headers: &HeaderMap, name: &str) -> Result<Option<Secret>, String> {
    let Some(value) = headers.get(name) else {
        return Ok(None);
    };
    let token = value.as_bytes().trim_ascii();
    if token.is_empty() {
        return Ok(None);
    }
    if token.len() > MAX_TOKEN_BYTES || !token.iter().all(u8::is_ascii_graphic) {
        return Err(format!(
            "{name} is not a token: at most {MAX_TOKEN_BYTES} printable characters, no spaces"
        ));
    }
    Ok(Some(Secret::new(String::from_utf8_lossy(token))))
}

impl Front {
    /// `change`, made with the user's tokens where the request brings them.
    fn with_callers_tokens(
        &self,
        headers: &HeaderMap,
        change: Change,
    ) -> Result<Change, Box<Response>> {
        let (github, gitlab) = self.callers_tokens(headers)?;
        if github.is_none() && gitlab.is_none() {
            return Ok(change);
        }
        Ok(Change::WithTokens {
            change: Box::new(change),
            github,
            gitlab,
        })
    }

    /// The user's GitHub and GitLab tokens the request brings, scrubbed from everything
    /// from here on. A header that holds no token, or one token more than the session
    /// takes, is refused.
    fn callers_tokens(
        &self,
        headers: &HeaderMap,
    ) -> Result<(Option<Secret>, Option<Secret>), Box<Response>> {
        let token = |name: &str| {
            callers_token(headers, name)
                .map_err(|why| Box::new(self.error(StatusCode::BAD_REQUEST, &why)))
        };
        let (github, gitlab) = (token(GITHUB_TOKEN_HEADER)?, token(GITLAB_TOKEN_HEADER)?);
        for token in github.iter().chain(&gitlab) {
            let mut seen = self
                .callers_tokens
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let fingerprint = std::hash::BuildHasher::hash_one(seen.hasher(), token.expose());
            if !seen.contains(&fingerprint) && seen.len() >= MAX_CALLERS_TOKENS {
                return Err(Box::new(self.error(
                    StatusCode::TOO_MANY_REQUESTS,
                    &format!(
                        "this session has taken {MAX_CALLERS_TOKENS} different tokens from callers and takes no more"
                    ),
                )));
            }
            if let Err(error) = self.redactor.learn(token) {
                return Err(Box::new(self.error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    &format!("the token is not used: {error}"),
                )));
            }
            seen.insert(fingerprint);
        }
        Ok((github, gitlab))
    }

    /// Has the session loop make `change`, and waits for what it did.
    async fn change(&self, change: Change) -> Result<ChangeOutcome, Response> {
        let queued = self
            .ask(|reply| Command::ChangeWorkspace(change, reply))
            .await
            .and_then(|queued| queued);
        let done = match queued {
            Ok(done) => done,
            Err(refused) => return Err(self.refusal(&refused)),
        };
        match tokio::time::timeout(CHANGE_TIMEOUT, done).await {
            Ok(Ok(outcome)) => Ok(outcome),
            Ok(Err(_)) => Err(self.error(
                StatusCode::SERVICE_UNAVAILABLE,
                "the change was not made: too many workspace changes wait, or the session ended",
            )),
            Err(_) => Err(self.error(
                StatusCode::GATEWAY_TIMEOUT,
                "the change still runs after 10 minutes; /repos/status will show it when done",
            )),
        }
    }

    /// The change's own report, as the error of a change that did not happen.
    fn failed_change(&self, status: StatusCode, outcome: &ChangeOutcome) -> Response {
        let said = outcome.lines.join("; ");
        self.error(
            status,
            if said.is_empty() {
                "the workspace did not change"
            } else {
                &said
            },
        )
    }
}

#[derive(Debug, Deserialize)]
struct AddBody {
    #[serde(default)]
    url: String,
    #[serde(default)]
    branch: Option<String>,
    #[serde(default)]
    name: Option<String>,
}

async fn add(State(front): State<Front>, headers: HeaderMap, body: Bytes) -> Response {
    let body: AddBody = match front.parse_body(&body, r#"{"url", "branch"?, "name"?}"#) {
        Ok(body) => body,
        Err(response) => return *response,
    };
    if body.url.trim().is_empty() {
        return front.error(StatusCode::BAD_REQUEST, "url is required");
    }
    let name = body.name.filter(|name| !name.trim().is_empty());
    let branch = body
        .branch
        .filter(|branch| !branch.trim().is_empty())
        .unwrap_or_else(|| String::from("main"));
    let spec = RepoSpec {
        name,
        input: RepoLocation {
            url: body.url,
            branch: Some(branch),
        },
        output: None,
        status: None,
    };
    // The host names the folder, from the name or the URL.
    let name = ambient_host::workspace::folder_name(&spec);
    let change = match front.with_callers_tokens(&headers, Change::AddRepo(spec)) {
        Ok(change) => change,
        Err(response) => return *response,
    };
    let outcome = match front.change(change).await {
        Ok(outcome) => outcome,
        Err(response) => return response,
    };
    // An added repository comes last; one already there keeps its place.
    let repo = if outcome.changed {
        outcome.repos.last()
    } else {
        outcome
            .repos
            .iter()
            .find(|repo| repo.name == name && !matches!(repo.result, RepoResult::Failed(_)))
    };
    let Some(repo) = repo else {
        return front.failed_change(StatusCode::INTERNAL_SERVER_ERROR, &outcome);
    };
    axum::Json(json!({
        "message": "Repository added",
        "name": repo.name,
        "path": repo.path,
        "newly_cloned": outcome.changed && repo.result == RepoResult::Cloned,
    }))
    .into_response()
}

#[derive(Debug, Deserialize)]
struct RemoveBody {
    name: String,
}

async fn remove(State(front): State<Front>, body: Bytes) -> Response {
    let body: RemoveBody = match front.parse_body(&body, r#"{"name"}"#) {
        Ok(body) => body,
        Err(response) => return *response,
    };
    match front.change(Change::RemoveRepo(body.name)).await {
        Ok(outcome) if outcome.changed => {
            let mut answer = json!({"message": "Repository removed"});
            // A checkout with local changes is kept on disk, no longer offered to the
            // agent: the caller is told.
            if let Some(kept) = outcome
                .lines
                .iter()
                .find(|line| line.contains("kept on disk"))
            {
                answer["detail"] = Value::String(front.redactor.text(kept).into_owned());
            }
            axum::Json(answer).into_response()
        }
        Ok(outcome) => front.failed_change(StatusCode::CONFLICT, &outcome),
        Err(response) => response,
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct WorkflowBody {
    #[serde(default)]
    git_url: String,
    #[serde(default)]
    branch: Option<String>,
    #[serde(default)]
    path: Option<String>,
}

async fn workflow(State(front): State<Front>, headers: HeaderMap, body: Bytes) -> Response {
    let body: WorkflowBody = match front.parse_body(&body, r#"{"gitUrl", "branch"?, "path"?}"#) {
        Ok(body) => body,
        Err(response) => return *response,
    };
    if body.git_url.trim().is_empty() {
        return front.error(StatusCode::BAD_REQUEST, "gitUrl is required");
    }
    let branch = body
        .branch
        .filter(|branch| !branch.trim().is_empty())
        .unwrap_or_else(|| String::from("main"));
    let path = body.path.filter(|path| !path.trim().is_empty());
    let location = RepoLocation {
        url: body.git_url.clone(),
        branch: Some(branch.clone()),
    };
    let change =
        match front.with_callers_tokens(&headers, Change::SwitchWorkflow(location, path.clone())) {
            Ok(change) => change,
            Err(response) => return *response,
        };
    match front.change(change).await {
        // Unlike the platform's runner, a workflow that could not be had is an error,
        // not a success that did nothing.
        Ok(outcome) if outcome.changed => axum::Json(json!({
            "message": "Workflow updated",
            "gitUrl": body.git_url,
            "branch": branch,
            "path": path.unwrap_or_default(),
        }))
        .into_response(),
        Ok(outcome) => front.failed_change(StatusCode::INTERNAL_SERVER_ERROR, &outcome),
        Err(response) => response,
    }
}

/// The checkouts in the checkouts' folder, read from their `.git` files.
async fn status(State(front): State<Front>) -> Response {
    let workspace = front.workspace.clone();
    let folder = format!("/{}", front.layout.folder());
    let repos = tokio::task::spawn_blocking(move || repos_in(&workspace, &folder))
        .await
        .unwrap_or_default();
    let repos: Vec<Value> = repos
        .into_iter()
        .map(|mut repo| {
            // A remote URL written by the agent could carry a credential.
            if let Some(Value::String(url)) = repo.get_mut("url") {
                *url = front.redactor.text(url).into_owned();
            }
            repo
        })
        .collect();
    axum::Json(json!({ "repos": repos })).into_response()
}

fn repos_in(workspace: &Workspace, folder: &str) -> Vec<Value> {
    let Ok(top) = workspace.list(folder) else {
        return Vec::new();
    };
    top.into_iter()
        .filter(|item| item.is_dir)
        .take(MAX_LISTED)
        .filter_map(|item| {
            let git = format!("{}/.git", item.path);
            let head = String::from_utf8(
                workspace
                    .read_small(&format!("{git}/HEAD"), SMALL_FILE)
                    .ok()?,
            )
            .ok()?;
            let current = head
                .trim()
                .strip_prefix("ref: refs/heads/")
                .map(str::to_owned)
                .unwrap_or_default();
            let mut branches: Vec<String> = workspace
                .list(&format!("{git}/refs/heads"))
                .unwrap_or_default()
                .into_iter()
                .filter(|entry| !entry.is_dir)
                .map(|entry| entry.name)
                .collect();
            if let Some(packed) = workspace
                .read_small(&format!("{git}/packed-refs"), SMALL_FILE)
                .ok()
                .and_then(|bytes| String::from_utf8(bytes).ok())
            {
                branches.extend(packed.lines().filter_map(|line| {
                    line.split_once(" refs/heads/")
                        .map(|(_, branch)| branch.trim().to_owned())
                }));
            }
            branches.sort();
            branches.dedup();
            branches.truncate(MAX_LISTED);
            let config = workspace
                .read_small(&format!("{git}/config"), SMALL_FILE)
                .ok()
                .and_then(|bytes| String::from_utf8(bytes).ok())
                .unwrap_or_default();
            let default_branch = workspace
                .read_small(&format!("{git}/refs/remotes/origin/HEAD"), SMALL_FILE)
                .ok()
                .and_then(|bytes| String::from_utf8(bytes).ok())
                .and_then(|head| {
                    head.trim()
                        .strip_prefix("ref: refs/remotes/origin/")
                        .map(str::to_owned)
                })
                .unwrap_or_else(|| String::from("main"));
            Some(json!({
                "url": origin_url(&config).unwrap_or_default(),
                "name": item.name,
                "branches": branches,
                "currentActiveBranch": current,
                "defaultBranch": default_branch,
            }))
        })
        .collect()
}

/// The `url` of `[remote "origin"]` in a git config file.
fn origin_url(config: &str) -> Option<String> {
    let mut in_origin = false;
    for line in config.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            in_origin = line.replace(' ', "") == r#"[remote"origin"]"#;
            continue;
        }
        if in_origin
            && let Some((key, value)) = line.split_once('=')
            && key.trim() == "url"
        {
            return Some(value.trim().to_owned());
        }
    }
    None
}

/// The `key: value` lines of a Markdown file's front matter.
fn front_matter(text: &str) -> std::collections::HashMap<String, String> {
    let Some(rest) = text.strip_prefix("---\n") else {
        return std::collections::HashMap::new();
    };
    let Some(end) = rest.find("\n---") else {
        return std::collections::HashMap::new();
    };
    rest[..end]
        .lines()
        .filter_map(|line| line.split_once(':'))
        .map(|(key, value)| {
            (
                key.trim().to_owned(),
                value.trim().trim_matches(['"', '\'']).to_owned(),
            )
        })
        .collect()
}

/// The active workflow's commands, agents and settings, read from its `.claude/` and
/// `.ambient/ambient.json`, as the platform's UI shows them; every file through the file
/// API's confined opens.
pub(crate) fn workflow_metadata(workspace: &Workspace) -> Value {
    let none = json!({"commands": [], "agents": [], "config": {"artifactsDir": "artifacts"}});
    let Some(workflow) = workspace
        .list("/workflows")
        .unwrap_or_default()
        .into_iter()
        .filter(|entry| {
            entry.is_dir && entry.name != "default" && !entry.name.ends_with("-clone-temp")
        })
        .find(|entry| {
            workspace
                .list(&entry.path)
                .unwrap_or_default()
                .iter()
                .any(|inside| inside.name == ".claude" && inside.is_dir)
        })
    else {
        return none;
    };
    let markdown_in = |folder: &str| -> Vec<(String, std::collections::HashMap<String, String>)> {
        let mut files: Vec<_> = workspace
            .list(&format!("{}/.claude/{folder}", workflow.path))
            .unwrap_or_default()
            .into_iter()
            .filter(|entry| !entry.is_dir && entry.name.ends_with(".md"))
            .take(MAX_LISTED)
            .filter_map(|entry| {
                let bytes = workspace.read_small(&entry.path, SMALL_FILE).ok()?;
                let text = String::from_utf8_lossy(&bytes).into_owned();
                Some((
                    entry.name.trim_end_matches(".md").to_owned(),
                    front_matter(&text),
                ))
            })
            .collect();
        files.sort_by(|a, b| a.0.cmp(&b.0));
        files
    };
    let mut commands: Vec<(i64, String, Value)> = markdown_in("commands")
        .into_iter()
        .map(|(id, meta)| {
            let order = meta
                .get("order")
                .and_then(|order| order.parse::<i64>().ok())
                .unwrap_or(i64::from(i32::MAX));
            let field = |key: &str| meta.get(key).cloned().unwrap_or_default();
            let command = json!({
                "id": id,
                "name": meta.get("displayName").cloned().unwrap_or_else(|| id.clone()),
                "description": field("description"),
                "slashCommand": format!("/{id}"),
                "icon": field("icon"),
                "order": order,
            });
            (order, id, command)
        })
        .collect();
    commands.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
    let agents: Vec<Value> = markdown_in("agents")
        .into_iter()
        .map(|(id, meta)| {
            let field = |key: &str| meta.get(key).cloned().unwrap_or_default();
            json!({"id": id, "name": field("name"), "description": field("description"), "tools": field("tools")})
        })
        .collect();
    let settings: Value = workspace
        .read_small(
            &format!("{}/.ambient/ambient.json", workflow.path),
            SMALL_FILE,
        )
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .unwrap_or_else(|| json!({}));
    let text = |key: &str| {
        settings
            .get(key)
            .and_then(Value::as_str)
            .unwrap_or_default()
    };
    let mut config = json!({
        "name": text("name"),
        "description": text("description"),
        "systemPrompt": text("systemPrompt"),
        "artifactsDir": text("artifactsDir"),
    });
    if let Some(rubric) = settings.get("rubric").filter(|rubric| !rubric.is_null()) {
        config["rubric"] = rubric.clone();
    }
    json!({
        "commands": commands.into_iter().map(|(_, _, command)| command).collect::<Vec<_>>(),
        "agents": agents,
        "config": config,
    })
}

#[derive(Debug, Deserialize)]
struct FolderQuery {
    #[serde(default)]
    path: String,
}

impl Front {
    /// Opens the folder at `path` beneath the workspace and runs `inspect` on it; a path
    /// out of the workspace or a checkout the runner's git does not take is refused.
    async fn inspect_folder<T, F>(
        &self,
        path: &str,
        inspect: impl FnOnce(
            std::path::PathBuf,
            std::sync::Arc<ambient_host::workspace::GitSettings>,
        ) -> F,
    ) -> Result<T, Response>
    where
        F: std::future::Future<Output = Result<T, ambient_host::workspace::inspect::InspectError>>,
    {
        use std::os::fd::AsRawFd;
        let folder = self.workspace.open_dir(path).map_err(|refused| {
            let status =
                StatusCode::from_u16(refused.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            self.error(status, &refused.to_string())
        })?;
        let at = std::path::PathBuf::from(format!("/proc/self/fd/{}", folder.as_raw_fd()));
        let inspected = inspect(at, std::sync::Arc::clone(&self.git)).await;
        drop(folder);
        inspected.map_err(|why| self.error(StatusCode::BAD_REQUEST, &format!("{path}: {why}")))
    }
}

async fn git_status(
    State(front): State<Front>,
    axum::extract::Query(query): axum::extract::Query<FolderQuery>,
) -> Response {
    let inspected = front
        .inspect_folder(&query.path, |folder, git| async move {
            ambient_host::workspace::inspect::git_status(&folder, &git).await
        })
        .await;
    match inspected {
        Ok(status) if !status.initialized => {
            axum::Json(json!({"initialized": false, "hasChanges": false})).into_response()
        }
        Ok(status) => axum::Json(json!({
            "initialized": true,
            "hasChanges": status.has_changes,
            "branch": status.branch,
            // A remote URL written by the agent could carry a credential.
            "remoteUrl": front.redactor.text(&status.remote_url),
            "hasRemote": status.has_remote,
            "filesAdded": status.files_added,
            "filesRemoved": status.files_removed,
            "uncommittedFiles": status.uncommitted_files,
            "totalAdded": status.total_added,
            "totalRemoved": status.total_removed,
        }))
        .into_response(),
        // A folder that is not there is not a checkout, as the platform's runner says.
        Err(response) if response.status() == StatusCode::NOT_FOUND => {
            axum::Json(json!({"initialized": false, "hasChanges": false})).into_response()
        }
        Err(response) => response,
    }
}

async fn git_branches(
    State(front): State<Front>,
    axum::extract::Query(query): axum::extract::Query<FolderQuery>,
) -> Response {
    let inspected = front
        .inspect_folder(&query.path, |folder, git| async move {
            ambient_host::workspace::inspect::remote_branches(&folder, &git).await
        })
        .await;
    match inspected {
        Ok(branches) => axum::Json(json!({ "branches": branches })).into_response(),
        Err(response) => response,
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RemoteBody {
    #[serde(default)]
    path: String,
    #[serde(default)]
    remote_url: String,
    #[serde(default)]
    branch: Option<String>,
}

/// Sets a folder's `origin` (making it a checkout first if it is not one) and fetches
/// the branch from it, best effort, by the host's git.
async fn configure_remote(State(front): State<Front>, headers: HeaderMap, body: Bytes) -> Response {
    let body: RemoteBody = match front.parse_body(&body, r#"{"path", "remoteUrl", "branch"?}"#) {
        Ok(body) => body,
        Err(response) => return *response,
    };
    if body.remote_url.trim().is_empty() {
        return front.error(StatusCode::BAD_REQUEST, "remoteUrl is required");
    }
    // A credential in the URL would be written into a configuration the agent reads.
    if body.remote_url.split_once("://").is_some_and(|(_, rest)| {
        rest.split('/')
            .next()
            .is_some_and(|host| host.contains('@'))
    }) {
        return front.error(
            StatusCode::BAD_REQUEST,
            "remoteUrl carries a user or a credential; give the URL without it",
        );
    }
    let branch = body
        .branch
        .filter(|branch| !branch.trim().is_empty())
        .unwrap_or_else(|| String::from("main"));
    // The fetch goes with the user's token, as the platform's runner's does.
    let (github, gitlab) = match front.callers_tokens(&headers) {
        Ok(tokens) => tokens,
        Err(response) => return *response,
    };
    let mut credentials =
        ambient_host::workspace::Credentials::new(github, gitlab, None, front.redactor.clone());
    let url = body.remote_url.clone();
    let wanted = branch.clone();
    let owner = front.workspace.owner();
    let configured = front
        .inspect_folder(&body.path, |folder, git| async move {
            let configured = ambient_host::workspace::inspect::configure_remote(
                &folder,
                &url,
                &wanted,
                &git,
                &mut credentials,
            )
            .await;
            // What the runner's git made there (`.git`, fetched objects) is the agent's,
            // as the rest of the workspace is, so that its own git can write there.
            if let Some((uid, gid)) = owner {
                let user = ambient_host::config::AgentUser { uid, gid };
                let handed = tokio::task::spawn_blocking(move || {
                    ambient_host::workspace::hand_over(&folder, user);
                })
                .await;
                if handed.is_err() {
                    tracing::warn!("the configured folder could not be handed to the agent's user");
                }
            }
            configured
        })
        .await;
    match configured {
        Ok(fetched) => axum::Json(json!({
            "message": "remote configured",
            "remote": front.redactor.text(&body.remote_url),
            "branch": branch,
            "fetched": fetched,
        }))
        .into_response(),
        Err(response) if response.status() == StatusCode::NOT_FOUND => {
            front.error(StatusCode::BAD_REQUEST, "directory not found")
        }
        Err(response) => response,
    }
}

#[derive(Debug, Deserialize)]
struct MetadataQuery {
    #[serde(default)]
    session: String,
}

async fn metadata(
    State(front): State<Front>,
    axum::extract::Query(query): axum::extract::Query<MetadataQuery>,
) -> Response {
    if query.session.trim().is_empty() {
        return front.error(StatusCode::BAD_REQUEST, "missing session parameter");
    }
    let workspace = front.workspace.clone();
    match tokio::task::spawn_blocking(move || workflow_metadata(&workspace)).await {
        Ok(metadata) => axum::Json(metadata).into_response(),
        Err(_) => front.error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "reading the workflow failed",
        ),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "a failed step is a failed test")]

    use super::*;

    #[test]
    fn the_workflows_commands_agents_and_settings_as_the_ui_reads_them() {
        let root = tempfile::tempdir().unwrap();
        let workspace = Workspace::new(root.path());
        assert_eq!(
            workflow_metadata(&workspace),
            json!({"commands": [], "agents": [], "config": {"artifactsDir": "artifacts"}})
        );
        let flow = root.path().join("workflows/review");
        std::fs::create_dir_all(flow.join(".claude/commands")).unwrap();
        std::fs::create_dir_all(flow.join(".claude/agents")).unwrap();
        std::fs::create_dir_all(flow.join(".ambient")).unwrap();
        std::fs::write(
            flow.join(".claude/commands/triage.md"),
            "---\ndisplayName: \"Triage\"\ndescription: sort issues\norder: 2\n---\nbody",
        )
        .unwrap();
        std::fs::write(
            flow.join(".claude/commands/audit.md"),
            "---\norder: 1\n---\n",
        )
        .unwrap();
        std::fs::write(flow.join(".claude/commands/zeta.md"), "no front matter").unwrap();
        std::fs::write(
            flow.join(".claude/agents/critic.md"),
            "---\nname: Critic\ntools: Read, Grep\n---\n",
        )
        .unwrap();
        std::fs::write(
            flow.join(".ambient/ambient.json"),
            r#"{"name": "Review", "systemPrompt": "Be brief", "artifactsDir": "out", "rubric": {"max": 5}}"#,
        )
        .unwrap();
        // A settings file the agent linked to the runner's environment is not read.
        std::os::unix::fs::symlink("/proc/self/environ", flow.join(".claude/agents/leak.md"))
            .unwrap();
        let metadata = workflow_metadata(&workspace);
        let ids: Vec<&str> = metadata["commands"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["id"].as_str().unwrap())
            .collect();
        assert_eq!(ids, ["audit", "triage", "zeta"]);
        assert_eq!(
            metadata["commands"][1],
            json!({"id": "triage", "name": "Triage", "description": "sort issues", "slashCommand": "/triage", "icon": "", "order": 2})
        );
        assert_eq!(
            metadata["agents"],
            json!([{"id": "critic", "name": "Critic", "description": "", "tools": "Read, Grep"}])
        );
        assert_eq!(
            metadata["config"],
            json!({"name": "Review", "description": "", "systemPrompt": "Be brief", "artifactsDir": "out", "rubric": {"max": 5}})
        );
    }
}
