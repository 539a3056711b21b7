//! Running git: no prompts, a timeout on every command, credentials in the environment of
//! the one command that needs them (never in a URL or `.git/config`), output streamed.

use std::{path::Path, process::Stdio, time::Duration};

use ambient_protocol::Secret;
use base64::Engine as _;
use tokio::{
    io::{AsyncBufReadExt, BufReader},
    process::Command,
};
use tracing::debug;

/// The longest any git command may take.
pub(crate) const GIT_TIMEOUT: Duration = Duration::from_secs(600);
/// Lines of a failed command's output kept for its error.
const TAIL_LINES: usize = 12;

/// Credentials for one host.
#[derive(Debug, Clone)]
pub(crate) struct HostCredential {
    /// The user git authenticates as (`x-access-token` for GitHub, `oauth2` for GitLab).
    pub(crate) user: &'static str,
    /// The token.
    pub(crate) token: Secret,
}

/// A failed git command.
#[derive(Debug, thiserror::Error)]
pub(crate) enum GitError {
    /// git could not be started.
    #[error("git could not be started")]
    Spawn(#[source] std::io::Error),
    /// It ran longer than allowed.
    #[error("git {command} timed out after {after:?}")]
    TimedOut { command: String, after: Duration },
    /// It exited with an error.
    #[error("git {command} failed: {tail}")]
    Failed { command: String, tail: String },
}

/// Runs `git args…` in `cwd`; `credential` is offered to HTTPS remotes as an
/// `Authorization` header through git's environment configuration.
pub(crate) async fn run(
    cwd: &Path,
    args: &[&str],
    credential: Option<&HostCredential>,
    timeout: Duration,
) -> Result<String, GitError> {
    let command_name = args.first().copied().unwrap_or("").to_owned();
    let mut command = Command::new("git");
    command
        .args(args)
        .current_dir(cwd)
        .env("GIT_TERMINAL_PROMPT", "0")
        // No askpass program either: a missing credential fails at once.
        .env("GIT_ASKPASS", "true")
        .env("SSH_ASKPASS", "true")
        .env_remove("GIT_CONFIG_PARAMETERS")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    if let Some(credential) = credential {
        let basic = base64::engine::general_purpose::STANDARD.encode(format!(
            "{}:{}",
            credential.user,
            credential.token.expose()
        ));
        command
            .env("GIT_CONFIG_COUNT", "1")
            .env("GIT_CONFIG_KEY_0", "http.extraHeader")
            .env(
                "GIT_CONFIG_VALUE_0",
                format!("Authorization: Basic {basic}"),
            );
    }
    let mut child = command.spawn().map_err(GitError::Spawn)?;
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    let collect = async {
        let mut tail: Vec<String> = Vec::new();
        let mut out = String::new();
        let mut stdout = stdout.map(|s| BufReader::new(s).lines());
        let mut stderr = stderr.map(|s| BufReader::new(s).lines());
        loop {
            tokio::select! {
                line = async { match &mut stdout { Some(l) => l.next_line().await, None => Ok(None) } }, if stdout.is_some() => match line {
                    Ok(Some(line)) => { out.push_str(&line); out.push('\n'); }
                    _ => stdout = None,
                },
                line = async { match &mut stderr { Some(l) => l.next_line().await, None => Ok(None) } }, if stderr.is_some() => match line {
                    Ok(Some(line)) => {
                        debug!(git = %command_name, "{line}");
                        tail.push(line);
                        if tail.len() > TAIL_LINES { tail.remove(0); }
                    }
                    _ => stderr = None,
                },
                else => break,
            }
        }
        let status = child.wait().await;
        (status, out, tail)
    };
    let (status, out, tail) =
        tokio::time::timeout(timeout, collect)
            .await
            .map_err(|_| GitError::TimedOut {
                command: command_name.clone(),
                after: timeout,
            })?;
    match status {
        Ok(status) if status.success() => Ok(out),
        Ok(_) | Err(_) => Err(GitError::Failed {
            command: command_name,
            tail: tail.join(" | "),
        }),
    }
}
