//! Running git for the runner, treating the workspace as hostile: the agent the runner
//! hosts can write every repository's `.git/config` and the home folder, and a peer of the
//! session can name a branch or a URL.
//!
//! - git gets a cleared environment (the system's variables only), no system or global
//!   configuration, no prompts, and command-scope settings that override what a
//!   repository's configuration could make it run or where it could send a token:
//!   `core.fsmonitor`, `core.hooksPath`, `core.sshCommand`, credential helpers, and the
//!   transports it may use;
//! - a checkout is used only when its `.git` is a plain folder whose configuration holds
//!   nothing but keys from a list of harmless ones ([`check_checkout`]): what a
//!   command-scope setting cannot override (a filter, `url.*.insteadOf`, an include) is
//!   refused, naming the key;
//! - branches are checked with `git check-ref-format --branch`, URLs against the allowed
//!   transports, and every URL and path follows `--`;
//! - a credential goes in an `http.<origin>.extraHeader` for its one origin, over https
//!   only, in the command's environment (never in a URL, the arguments or
//!   `.git/config`);
//! - output is streamed, and every command has a timeout.

use std::{ffi::OsString, path::Path, process::Stdio, time::Duration};

use ambient_protocol::Secret;
use base64::Engine as _;
use tokio::process::Command;
use tracing::debug;

/// The longest any git command may take.
pub(crate) const GIT_TIMEOUT: Duration = Duration::from_secs(600);
/// Lines of a failed command's output kept for its error.
const TAIL_LINES: usize = 12;
/// The most a git command's stdout is read: past it, the command fails (the runner reads
/// small outputs only, a configuration's keys or a status).
pub(crate) const GIT_OUTPUT_BYTES: usize = 1 << 20;

/// How the runner's git runs: its environment, the transports it may use, and the hosts
/// each token is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GitSettings {
    /// The variables git gets: the system's (`PATH`, `HOME`, locale, proxies, CA
    /// bundles), never a credential.
    pub env: Vec<(OsString, OsString)>,
    /// The transports git may use (`GIT_PROTOCOLS`): `https` unless configured.
    pub protocols: Vec<String>,
    /// Hosts the GitHub token is for (`GITHUB_HOSTS`): `github.com` unless configured.
    pub github_hosts: Vec<String>,
    /// Hosts the GitLab token is for (`GITLAB_HOSTS`): `gitlab.com` unless configured.
    pub gitlab_hosts: Vec<String>,
}

impl Default for GitSettings {
    fn default() -> Self {
        Self {
            env: Vec::new(),
            protocols: vec![String::from("https")],
            github_hosts: vec![String::from("github.com")],
            gitlab_hosts: vec![String::from("gitlab.com")],
        }
    }
}

/// Credentials for one origin.
#[derive(Debug, Clone)]
pub(crate) struct HostCredential {
    /// `https://host[:port]`, the one origin the token goes to.
    pub(crate) origin: String,
    /// The user git authenticates as (`x-access-token` for GitHub, `oauth2` for GitLab).
    pub(crate) user: &'static str,
    /// The token.
    pub(crate) token: Secret,
}

/// A failed git command, or one the runner would not run.
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
    /// It printed more than the runner reads.
    #[error("git {command} printed more than {limit} bytes")]
    TooMuchOutput { command: String, limit: usize },
    /// The input would make git do what the runner does not allow.
    #[error("{0}")]
    Refused(String),
}

/// What git may read from a checkout's own configuration: keys that make it run nothing
/// and send nothing anywhere. `*` stands for one subsection (a remote's or a branch's
/// name); a section alone allows all its keys.
const HARMLESS_KEYS: &[&str] = &[
    "core.repositoryformatversion",
    "core.filemode",
    "core.bare",
    "core.logallrefupdates",
    "core.ignorecase",
    "core.precomposeunicode",
    "core.symlinks",
    "core.autocrlf",
    "core.eol",
    "core.safecrlf",
    "core.quotepath",
    "core.checkstat",
    "core.trustctime",
    "remote.*.url",
    "remote.*.fetch",
    "remote.*.pushurl",
    "remote.*.tagopt",
    "remote.*.prune",
    "branch.*.remote",
    "branch.*.merge",
    "branch.*.rebase",
    "branch.*.pushremote",
    "branch.*.description",
    "user.name",
    "user.email",
    "pull.rebase",
    "pull.ff",
    "push.default",
    "push.autosetupremote",
    "fetch.prune",
    "init.defaultbranch",
    "advice",
    "color",
    "column",
];

/// Whether git may read `key` (as `git config --list` names it) from a checkout.
fn harmless(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    HARMLESS_KEYS.iter().any(|allowed| {
        let allowed_parts: Vec<&str> = allowed.split('.').collect();
        match allowed_parts.as_slice() {
            [section] => key.split('.').next() == Some(*section),
            [section, name] => key == format!("{section}.{name}"),
            [section, "*", name] => key
                .strip_prefix(&format!("{section}."))
                .and_then(|rest| rest.strip_suffix(&format!(".{name}")))
                .is_some_and(|subsection| !subsection.is_empty()),
            _ => false,
        }
    })
}

/// The transport of a URL as git reads it: `https`, `http`, `ssh` (also `user@host:path`),
/// `git`, `file` (also a path).
pub(crate) fn transport(url: &str) -> &str {
    // A remote helper (`ext::`, `fd::`): its own transport, never one the runner allows.
    if let Some((helper, _)) = url.split_once("::")
        && !helper.is_empty()
        && !helper.contains('/')
    {
        return helper;
    }
    if let Some((scheme, _)) = url.split_once("://") {
        return match scheme {
            "git+ssh" | "ssh+git" => "ssh",
            other => other,
        };
    }
    let scp_like = url
        .split_once(':')
        .is_some_and(|(host, _)| !host.is_empty() && !host.contains('/'));
    if scp_like { "ssh" } else { "file" }
}

/// Refuses a URL git must not be given: one that reads as an option, or whose transport
/// is not allowed.
pub(crate) fn check_url(url: &str, git: &GitSettings) -> Result<(), GitError> {
    if url.trim_start().starts_with('-') {
        return Err(GitError::Refused(format!(
            "the URL {url:?} starts with '-', which git would read as an option"
        )));
    }
    let transport = transport(url);
    if !git.protocols.iter().any(|allowed| allowed == transport) {
        return Err(GitError::Refused(format!(
            "the URL uses {transport}, and the runner's git takes only {} (GIT_PROTOCOLS)",
            git.protocols.join(", ")
        )));
    }
    Ok(())
}

/// Refuses a branch name git would read as an option or that is not a branch name.
pub(crate) async fn check_branch(branch: &str, git: &GitSettings) -> Result<(), GitError> {
    if branch.is_empty() || branch.starts_with('-') {
        return Err(GitError::Refused(format!(
            "{branch:?} is not a branch name the runner passes to git"
        )));
    }
    let checked = run(
        Path::new("/"),
        &["check-ref-format", "--branch", branch],
        git,
        None,
        Duration::from_secs(30),
    )
    .await;
    match checked {
        Ok(_) => Ok(()),
        Err(GitError::Failed { .. }) => Err(GitError::Refused(format!(
            "{branch:?} is not a valid branch name"
        ))),
        Err(other) => Err(other),
    }
}

/// Refuses a checkout whose `.git` could make the runner's git run something or send a
/// token elsewhere: a `.git` that is not a plain folder, a shared `commondir`, or a
/// configuration key outside [`HARMLESS_KEYS`].
pub(crate) async fn check_checkout(path: &Path, git: &GitSettings) -> Result<(), GitError> {
    let dot_git = path.join(".git");
    let plain_folder = std::fs::symlink_metadata(&dot_git).is_ok_and(|m| m.file_type().is_dir());
    if !plain_folder {
        return Err(GitError::Refused(String::from(
            "its .git is not a plain folder (a link or a gitfile could point git anywhere)",
        )));
    }
    if dot_git.join("commondir").exists() {
        return Err(GitError::Refused(String::from(
            "its .git shares another repository's configuration (commondir)",
        )));
    }
    let config = dot_git.join("config");
    if !config.exists() {
        return Ok(());
    }
    // Reading a file with --file runs nothing and follows no include. The file is named
    // from git's working directory, `path`: a path this process can name (a descriptor's
    // `/proc/self/fd/…`) may mean nothing to git.
    let keys = run(
        path,
        &[
            "config",
            "--file",
            ".git/config",
            "--null",
            "--list",
            "--name-only",
        ],
        git,
        None,
        Duration::from_secs(30),
    )
    .await
    .map_err(|error| match error {
        GitError::TooMuchOutput { limit, .. } => GitError::Refused(format!(
            "its .git/config names more than {limit} bytes of keys, more than the runner checks"
        )),
        other => other,
    })?;
    // With --null, a name is ended by a NUL (and, with no value, a newline before it).
    match keys
        .split('\0')
        .map(str::trim)
        .find(|key| !key.is_empty() && !harmless(key))
    {
        Some(key) => Err(GitError::Refused(format!(
            "its .git/config sets {key}, which the runner's git does not take from a workspace"
        ))),
        None => Ok(()),
    }
}

/// [`run`] in the checkout at `cwd`, with its `.git` named: git never looks for one in
/// the folders above, where the agent (who owns the workspace) could have put its own.
pub(crate) async fn run_in_checkout(
    cwd: &Path,
    args: &[&str],
    git: &GitSettings,
    credential: Option<&HostCredential>,
    timeout: Duration,
) -> Result<String, GitError> {
    let mut all = vec!["--git-dir=.git", "--work-tree=."];
    all.extend_from_slice(args);
    run(cwd, &all, git, credential, timeout).await
}

/// Runs `git args…` in `cwd`, hardened (see the module), with `credential` offered to its
/// one origin.
pub(crate) async fn run(
    cwd: &Path,
    args: &[&str],
    git: &GitSettings,
    credential: Option<&HostCredential>,
    timeout: Duration,
) -> Result<String, GitError> {
    let command_name = args
        .iter()
        .find(|arg| !arg.starts_with("--"))
        .copied()
        .unwrap_or("")
        .to_owned();
    let mut command = Command::new("git");
    command
        .args(args)
        .current_dir(cwd)
        .env_clear()
        .envs(git.env.iter().map(|(k, v)| (k, v)))
        .env("GIT_TERMINAL_PROMPT", "0")
        // No askpass program either: a missing credential fails at once.
        .env("GIT_ASKPASS", "true")
        .env("SSH_ASKPASS", "true")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_ATTR_NOSYSTEM", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut settings: Vec<(String, String)> = vec![
        (String::from("core.fsmonitor"), String::from("false")),
        (String::from("core.hooksPath"), String::from("/dev/null")),
        (String::from("core.sshCommand"), String::from("ssh")),
        // An empty helper empties the list of helpers: none runs.
        (String::from("credential.helper"), String::new()),
        (String::from("safe.directory"), String::from("*")),
        // A folder the agent laid out as a bare repository is never taken for one: only
        // a `.git` the runner names, or finds, is.
        (
            String::from("safe.bareRepository"),
            String::from("explicit"),
        ),
        (String::from("protocol.allow"), String::from("never")),
    ];
    settings.extend(
        git.protocols
            .iter()
            .map(|protocol| (format!("protocol.{protocol}.allow"), String::from("always"))),
    );
    if let Some(credential) = credential {
        let basic = base64::engine::general_purpose::STANDARD.encode(format!(
            "{}:{}",
            credential.user,
            credential.token.expose()
        ));
        settings.push((
            format!("http.{}/.extraHeader", credential.origin),
            format!("Authorization: Basic {basic}"),
        ));
    }
    command.env("GIT_CONFIG_COUNT", settings.len().to_string());
    for (index, (key, value)) in settings.iter().enumerate() {
        command
            .env(format!("GIT_CONFIG_KEY_{index}"), key)
            .env(format!("GIT_CONFIG_VALUE_{index}"), value);
    }
    let mut child = command.spawn().map_err(GitError::Spawn)?;
    let collected = tokio::time::timeout(
        timeout,
        ambient_process::collect(&mut child, GIT_OUTPUT_BYTES, |line| {
            debug!(git = %command_name, "{line}");
        }),
    )
    .await
    .map_err(|_| GitError::TimedOut {
        command: command_name.clone(),
        after: timeout,
    })?;
    let collected = match collected {
        Ok(collected) if collected.status.success() => collected,
        Ok(collected) => {
            let lines: Vec<&str> = collected.stderr_tail.lines().collect();
            let tail = lines[lines.len().saturating_sub(TAIL_LINES)..].join(" | ");
            return Err(GitError::Failed {
                command: command_name,
                tail,
            });
        }
        Err(error) => {
            return Err(GitError::Failed {
                command: command_name,
                tail: error.to_string(),
            });
        }
    };
    if collected.stdout_cut > 0 {
        return Err(GitError::TooMuchOutput {
            command: command_name,
            limit: GIT_OUTPUT_BYTES,
        });
    }
    Ok(String::from_utf8_lossy(&collected.stdout).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_harmless_keys_are_read_from_a_checkout() {
        for key in [
            "core.filemode",
            "remote.origin.url",
            "remote.my.fork.fetch",
            "branch.feature/x.merge",
            "user.email",
            "color.ui",
        ] {
            assert!(harmless(key), "{key}");
        }
        for key in [
            "core.fsmonitor",
            "core.hookspath",
            "core.sshcommand",
            "filter.lfs.smudge",
            "url.https://evil/.insteadof",
            "include.path",
            "includeif.gitdir:/x.path",
            "credential.helper",
            "remote.origin.uploadpack",
            "remote..url",
            "http.extraheader",
            "protocol.file.allow",
            "extensions.worktreeconfig",
            "colorful.thing",
        ] {
            assert!(!harmless(key), "{key}");
        }
    }

    #[test]
    fn transports_are_read_as_git_reads_them() {
        for (url, expect) in [
            ("https://github.com/o/r.git", "https"),
            ("http://127.0.0.1:8080/o/r.git", "http"),
            ("ssh://git@host/o/r", "ssh"),
            ("git@github.com:o/r.git", "ssh"),
            ("git://host/r", "git"),
            ("file:///srv/r.git", "file"),
            ("/srv/r.git", "file"),
            ("../r.git", "file"),
            ("ext::sh -c touch% /tmp/x", "ext"),
        ] {
            assert_eq!(transport(url), expect, "{url}");
        }
        let git = GitSettings::default();
        assert!(check_url("https://github.com/o/r.git", &git).is_ok());
        for refused in [
            "-uhttps://x",
            "--upload-pack=x",
            "http://x/r",
            "/srv/r.git",
            "ext::sh -c x",
        ] {
            assert!(check_url(refused, &git).is_err(), "{refused}");
        }
    }
}
