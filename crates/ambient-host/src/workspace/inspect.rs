//! A checkout's git state as a front shows it (the serve mode's `/content/git-status`,
//! `/content/git-list-branches`), and its `origin` set (`/content/git-configure-remote`). The folder belongs to the
//! agent, so its git runs as every git of the runner does: hardened, and only once the
//! checkout's `.git` has passed the runner's check (no configuration key that could run
//! something or send a token elsewhere).

use std::path::Path;

use super::git::{self, GitError, GitSettings};

/// How long one of these git commands may take.
const INSPECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// A folder's git state, in the platform UI's terms.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GitStatus {
    /// Whether the folder is a checkout.
    pub initialized: bool,
    /// Whether anything differs from its `HEAD`.
    pub has_changes: bool,
    /// The branch checked out.
    pub branch: String,
    /// `origin`'s URL.
    pub remote_url: String,
    /// Whether it has an `origin`.
    pub has_remote: bool,
    /// Files with lines added (or, with no line counts, files changed).
    pub files_added: u64,
    /// Files with lines removed.
    pub files_removed: u64,
    /// Files `git status` lists.
    pub uncommitted_files: u64,
    /// Lines added.
    pub total_added: u64,
    /// Lines removed.
    pub total_removed: u64,
}

/// Why a folder's git state could not be read.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct InspectError(String);

impl From<GitError> for InspectError {
    fn from(error: GitError) -> Self {
        Self(error.to_string())
    }
}

/// `origin`'s URL, read from the checkout's own configuration file (no include followed).
async fn origin(folder: &Path, settings: &GitSettings) -> Option<String> {
    git::run(
        folder,
        &[
            "config",
            "--file",
            ".git/config",
            "--get",
            "remote.origin.url",
        ],
        settings,
        None,
        INSPECT_TIMEOUT,
    )
    .await
    .ok()
    .map(|out| out.trim().to_owned())
}

fn is_checkout(folder: &Path) -> bool {
    std::fs::symlink_metadata(folder.join(".git")).is_ok()
}

/// git in the checkout `folder`, told where its repository is (`.git`) and where its
/// files are (the folder): it looks for no repository of its own, so a folder the agent
/// laid out otherwise (a bare repository beside an empty `.git`, say) is never read.
async fn in_checkout(
    folder: &Path,
    args: &[&str],
    settings: &GitSettings,
) -> Result<String, GitError> {
    git::run_in_checkout(folder, args, settings, None, INSPECT_TIMEOUT).await
}

/// The git state of the checkout in `folder` (a folder that is not one is
/// `initialized: false`).
pub async fn git_status(folder: &Path, settings: &GitSettings) -> Result<GitStatus, InspectError> {
    if !is_checkout(folder) {
        return Ok(GitStatus::default());
    }
    git::check_checkout(folder, settings).await?;
    let run = |args: &'static [&'static str]| in_checkout(folder, args, settings);
    let branch = run(&["rev-parse", "--abbrev-ref", "HEAD"])
        .await
        .map(|out| out.trim().to_owned())
        .unwrap_or_default();
    let remote_url = origin(folder, settings).await.unwrap_or_default();
    let listed = run(&["status", "--porcelain", "-z", "--ignore-submodules=all"]).await?;
    let mut uncommitted_files = 0_u64;
    let mut entries = listed.split('\0').filter(|entry| entry.len() > 3);
    while let Some(entry) = entries.next() {
        uncommitted_files += 1;
        // A rename or copy names the file it came from next.
        if matches!(entry.as_bytes().first(), Some(b'R' | b'C')) {
            entries.next();
        }
    }
    let mut status = GitStatus {
        initialized: true,
        has_remote: !remote_url.is_empty(),
        branch,
        remote_url,
        uncommitted_files,
        ..GitStatus::default()
    };
    if uncommitted_files > 0 {
        // A checkout with no commit has no HEAD to compare with: its files are all new.
        let counted = run(&["diff", "--numstat", "HEAD"])
            .await
            .unwrap_or_default();
        for line in counted.lines() {
            let mut fields = line.split('\t');
            let added = fields
                .next()
                .and_then(|n| n.parse::<u64>().ok())
                .unwrap_or(0);
            let removed = fields
                .next()
                .and_then(|n| n.parse::<u64>().ok())
                .unwrap_or(0);
            status.total_added += added;
            status.total_removed += removed;
            status.files_added += u64::from(added > 0);
            status.files_removed += u64::from(removed > 0);
        }
        if status.files_added == 0 && status.files_removed == 0 {
            status.files_added = uncommitted_files;
        }
    }
    status.has_changes = status.files_added > 0
        || status.files_removed > 0
        || status.total_added > 0
        || status.total_removed > 0;
    Ok(status)
}

/// The branches of `origin` the checkout in `folder` knows, without `origin/`.
pub async fn remote_branches(
    folder: &Path,
    settings: &GitSettings,
) -> Result<Vec<String>, InspectError> {
    if !is_checkout(folder) {
        return Err(InspectError(String::from(
            "the folder is not a git checkout",
        )));
    }
    git::check_checkout(folder, settings).await?;
    let listed = in_checkout(
        folder,
        &["branch", "-r", "--format=%(refname:short)"],
        settings,
    )
    .await?;
    Ok(listed
        .lines()
        .map(str::trim)
        .filter(|branch| !branch.is_empty() && !branch.ends_with("/HEAD"))
        .map(|branch| branch.strip_prefix("origin/").unwrap_or(branch).to_owned())
        .collect())
}

/// Makes `folder` a checkout (`git init` when it is not one) whose `origin` is `url`, and
/// fetches `branch` from it, best effort, with `credentials`' token for the URL's host
/// (over https only, as every clone): without one, a private remote is set but not
/// fetched. Returns whether the fetch worked. The URL and branch are checked as every git
/// input of the runner is.
pub async fn configure_remote(
    folder: &Path,
    url: &str,
    branch: &str,
    settings: &GitSettings,
    credentials: &mut super::Credentials,
) -> Result<bool, InspectError> {
    git::check_url(url, settings)?;
    git::check_branch(branch, settings).await?;
    let run = |args: &[&str]| {
        let args: Vec<String> = args.iter().map(|arg| (*arg).to_owned()).collect();
        async move {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            in_checkout(folder, &args, settings).await
        }
    };
    if !is_checkout(folder) {
        git::run(folder, &["init", "-q"], settings, None, INSPECT_TIMEOUT).await?;
    }
    git::check_checkout(folder, settings).await?;
    if origin(folder, settings).await.is_some() {
        run(&["remote", "set-url", "origin", url]).await?;
    } else {
        run(&["remote", "add", "origin", url]).await?;
    }
    // The fetch goes with the token for the URL's host, if the caller brought one.
    let access = credentials.for_url(url, settings).await;
    let fetched = git::run_in_checkout(
        folder,
        &["fetch", "-q", "origin", branch],
        settings,
        access.credential.as_ref(),
        INSPECT_TIMEOUT,
    )
    .await;
    Ok(fetched.is_ok())
}
