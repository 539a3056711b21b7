//! Workspace preparation: every runner's repositories checked out before the agent starts
//! (`platform-wire.md` §1.3, §1.5, §8).
//!
//! Each repository is handled on its own: one that fails is reported and the others still
//! come. Folder names cannot collide. A continuation keeps its checkouts as they are; a
//! fresh session updates a clean checkout it finds and never resets one with local
//! changes. Credentials go to git through its environment, per command: never in a remote
//! URL, `.git/config`, a frame or a log line.

mod git;
pub mod inspect;
mod pin;

use std::{
    collections::HashMap,
    fmt,
    future::Future,
    path::{Path, PathBuf},
    pin::Pin,
    sync::Arc,
};

use ambient_protocol::{
    Secret,
    repos::{RepoLocation, RepoSpec},
};
use std::os::unix::ffi::OsStrExt as _;

use tokio::sync::mpsc;
use tracing::warn;

use crate::{
    Redactor,
    config::{AgentUser, CheckoutLayout, MainRepo, WorkspaceSettings},
    redact::Unlearnable,
};
pub use git::GitSettings;
use git::{GIT_TIMEOUT, GitError, HostCredential};

/// What happened to one repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RepoResult {
    /// Cloned fresh.
    Cloned,
    /// Kept as it was (a continuation).
    Preserved,
    /// An existing clean checkout, updated to the remote branch.
    Updated,
    /// An existing checkout with local changes, left as it was.
    KeptLocalChanges,
    /// An existing checkout the runner's git does not touch, and why (its `.git` could make
    /// git run something or send a token elsewhere); the agent keeps it as it is.
    LeftAlone(String),
    /// It could not be had; why.
    Failed(String),
}

/// One repository's outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepoOutcome {
    /// Its folder name.
    pub name: String,
    /// The URL it was asked for at: with the name, which of the session's repositories
    /// it is, whatever names the others have since.
    pub url: String,
    /// Its checkout.
    pub path: PathBuf,
    /// What happened.
    pub result: RepoResult,
}

/// Where the AG-UI platform's UI puts the files the user uploads, in the workspace.
pub const FILE_UPLOADS: &str = "file-uploads";

/// The prepared workspace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreparedWorkspace {
    /// The agent's working directory.
    pub main: PathBuf,
    /// The other folders the agent may use (other repositories, artifacts).
    pub extra: Vec<PathBuf>,
    /// Where the agent leaves files that are not in a repository.
    pub artifacts: PathBuf,
    /// Each repository's outcome, in the configured order.
    pub repos: Vec<RepoOutcome>,
}

/// Preparation failed as a whole.
#[derive(Debug, thiserror::Error)]
pub enum WorkspaceError {
    /// The workspace folder could not be made.
    #[error("creating the workspace folder {} failed", path.display())]
    CreateFolder {
        /// The folder.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The folder the checkouts go in could not be made, or is not the workspace's own.
    #[error("the checkouts' folder {} cannot be used: {why}", path.display())]
    CheckoutsFolder {
        /// The folder.
        path: PathBuf,
        /// Why.
        why: String,
    },
    /// The repository the agent works in could not be had.
    #[error("the main repository {name} could not be had: {reason}")]
    MainRepoUnavailable {
        /// Its folder name.
        name: String,
        /// Why.
        reason: String,
    },
    /// `MAIN_REPO_NAME` names no repository.
    #[error("MAIN_REPO_NAME {name} names none of the session's repositories")]
    UnknownMainRepo {
        /// The name given.
        name: String,
    },
}

/// Mints a GitHub token when the session was given none: the WebSocket front asks the
/// backend. The workspace knows nothing more of where tokens come from.
pub trait TokenMinter: Send + Sync + fmt::Debug {
    /// A fresh token, or why there is none (a line for the log).
    fn mint(&self) -> Pin<Box<dyn Future<Output = Result<Secret, String>> + Send + '_>>;
}

/// Where git tokens come from, and who learns of the ones minted.
#[derive(Debug, Clone)]
pub struct Credentials {
    /// `GITHUB_TOKEN`.
    pub github: Option<Secret>,
    /// `GITLAB_TOKEN`.
    pub gitlab: Option<Secret>,
    /// Mints a GitHub token when none is given.
    pub mint: Option<Arc<dyn TokenMinter>>,
    minted: Option<Secret>,
    /// Scrubs a minted token from everything from the moment it is minted.
    redactor: Redactor,
}

/// What a URL gets from [`Credentials::for_url`].
#[derive(Debug, Default)]
struct Access {
    /// The credential for the URL's origin.
    credential: Option<HostCredential>,
    /// Why a token the session holds is not sent there, when one is not.
    withheld: Option<String>,
}

impl Credentials {
    /// Tokens as configured; `mint` is asked when a GitHub token is needed and missing,
    /// and `redactor` learns what it mints.
    pub fn new(
        github: Option<Secret>,
        gitlab: Option<Secret>,
        mint: Option<Arc<dyn TokenMinter>>,
        redactor: Redactor,
    ) -> Self {
        Self {
            github,
            gitlab,
            mint,
            minted: None,
            redactor,
        }
    }

    /// These credentials with a caller's own tokens in place of the runner's, where given;
    /// none is minted for a caller who brought a GitHub token. The redactor learns them,
    /// and tokens it cannot learn (it holds too many) are not used.
    pub fn with_callers_tokens(
        &self,
        github: Option<Secret>,
        gitlab: Option<Secret>,
    ) -> Result<Self, Unlearnable> {
        for token in github.iter().chain(&gitlab) {
            self.redactor.learn(token)?;
        }
        Ok(Self {
            mint: if github.is_some() {
                None
            } else {
                self.mint.clone()
            },
            minted: if github.is_some() {
                None
            } else {
                self.minted.clone()
            },
            github: github.or_else(|| self.github.clone()),
            gitlab: gitlab.or_else(|| self.gitlab.clone()),
            redactor: self.redactor.clone(),
        })
    }

    /// The credential for a URL: the GitLab token for an https URL of a GitLab host, the
    /// GitHub token (given, or minted) for one of a GitHub host, and none for any other
    /// host or transport (with a word on why, where a token was held back).
    async fn for_url(&mut self, url: &str, git: &GitSettings) -> Access {
        let Some(origin) = https_origin(url) else {
            let withheld = (self.github.is_some() || self.gitlab.is_some() || self.mint.is_some())
                .then(|| String::from("no token goes over a transport other than https"));
            return Access {
                credential: None,
                withheld,
            };
        };
        let host = origin.trim_start_matches("https://").to_ascii_lowercase();
        let listed = |hosts: &[String]| hosts.iter().any(|h| h.eq_ignore_ascii_case(&host));
        if listed(&git.gitlab_hosts) {
            return Access {
                credential: self.gitlab.clone().map(|token| HostCredential {
                    origin,
                    user: "oauth2",
                    token,
                }),
                withheld: None,
            };
        }
        if !listed(&git.github_hosts) {
            let withheld = (self.github.is_some() || self.gitlab.is_some() || self.mint.is_some())
                .then(|| {
                    format!(
                        "{host} is not a host the tokens are for (GITHUB_HOSTS: {}; GITLAB_HOSTS: {})",
                        git.github_hosts.join(", "),
                        git.gitlab_hosts.join(", ")
                    )
                });
            return Access {
                credential: None,
                withheld,
            };
        }
        if self.github.is_none()
            && self.minted.is_none()
            && let Some(mint) = &self.mint
        {
            match mint.mint().await {
                Ok(token) if !token.is_empty() => match self.redactor.learn(&token) {
                    Ok(()) => self.minted = Some(token),
                    // A token that would not be scrubbed is not used.
                    Err(error) => warn!(%error, "the minted GitHub token is not used"),
                },
                Ok(_) => warn!("an empty GitHub token was minted"),
                Err(error) => {
                    warn!(%error, "no GitHub token could be minted; cloning without one");
                }
            }
        }
        Access {
            credential: self
                .github
                .clone()
                .or_else(|| self.minted.clone())
                .map(|token| HostCredential {
                    origin,
                    user: "x-access-token",
                    token,
                }),
            withheld: None,
        }
    }

    /// Whether the GitHub credential in use was minted (and so may have expired).
    fn uses_minted(&self) -> bool {
        self.github.is_none() && self.minted.is_some()
    }

    /// Forgets a minted token, so that the next use mints a fresh one (they expire).
    pub fn refresh(&mut self) {
        self.minted = None;
    }
}

/// `https://host[:port]` of an https URL, without credentials; `None` for any other
/// transport.
fn https_origin(url: &str) -> Option<String> {
    let rest = url.strip_prefix("https://")?;
    let authority = rest.split(['/', '?', '#']).next()?;
    let host = authority.rsplit('@').next().unwrap_or(authority);
    (!host.is_empty()).then(|| format!("https://{host}"))
}

/// `url` without credentials in it.
pub(crate) fn clean_url(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let (authority, path) = rest.split_once('/').map_or((rest, ""), |(a, p)| (a, p));
            let host = authority.rsplit('@').next().unwrap_or(authority);
            if path.is_empty() && !rest.contains('/') {
                format!("{scheme}://{host}")
            } else {
                format!("{scheme}://{host}/{path}")
            }
        }
        None => url.to_owned(),
    }
}

/// The folder a repository is checked out in, before any clash with another's: its
/// name, or its URL's repository segment, made safe.
pub fn folder_name(repo: &RepoSpec) -> String {
    safe_folder(
        &repo
            .name
            .clone()
            .unwrap_or_else(|| owner_and_repo(&repo.input.url).1),
    )
}

/// The owner and repository segments of a URL (`…/owner/repo.git`).
fn owner_and_repo(url: &str) -> (String, String) {
    let path = url.trim_end_matches('/').trim_end_matches(".git");
    let mut segments = path.rsplit(['/', ':']).filter(|s| !s.is_empty());
    let repo = segments.next().unwrap_or("repo").to_owned();
    let owner = segments.next().unwrap_or("").to_owned();
    (owner, repo)
}

/// A folder name that cannot escape the workspace.
fn safe_folder(name: &str) -> String {
    // Only the last real path segment counts: `../../etc` is `etc`.
    let last = name
        .rsplit(['/', '\\'])
        .find(|s| !s.is_empty() && *s != "." && *s != "..")
        .unwrap_or("");
    let cleaned: String = last
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '-'
            }
        })
        .collect();
    match cleaned.trim_matches('.') {
        "" => String::from("repo"),
        kept => kept.to_owned(),
    }
}

/// One folder name per repository, none alike: the configured name or the URL's
/// repository name; where two would be alike, the owner is put in front, and a number
/// after where that is not enough.
pub(crate) fn folder_names(repos: &[RepoSpec]) -> Vec<String> {
    let base: Vec<String> = repos.iter().map(folder_name).collect();
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for name in &base {
        *counts.entry(name.as_str()).or_default() += 1;
    }
    let mut names: Vec<String> = repos
        .iter()
        .zip(&base)
        .map(|(repo, name)| {
            if counts.get(name.as_str()).copied().unwrap_or(0) > 1 && repo.name.is_none() {
                let (owner, repo_name) = owner_and_repo(&repo.input.url);
                safe_folder(&format!("{owner}-{repo_name}"))
            } else {
                name.clone()
            }
        })
        .collect();
    let mut seen: HashMap<String, usize> = HashMap::new();
    for name in &mut names {
        let count = seen.entry(name.clone()).or_default();
        *count += 1;
        if *count > 1 {
            name.push_str(&format!("-{count}"));
        }
    }
    names
}

/// [`prepare`], handing each line for the user to `relay` as it comes (the session
/// relays them while the repositories are checked out, not after).
pub async fn prepare_relaying<Relayed: std::future::Future<Output = ()>>(
    root: &Path,
    settings: &WorkspaceSettings,
    is_continuation: bool,
    credentials: &mut Credentials,
    mut relay: impl FnMut(String) -> Relayed,
) -> Result<PreparedWorkspace, WorkspaceError> {
    let (log, mut lines) = mpsc::unbounded_channel();
    let prepared = {
        let mut preparing =
            std::pin::pin!(prepare(root, settings, is_continuation, credentials, &log));
        loop {
            tokio::select! {
                prepared = &mut preparing => break prepared,
                Some(line) = lines.recv() => relay(line).await,
            }
        }
    };
    drop(log);
    while let Some(line) = lines.recv().await {
        relay(line).await;
    }
    prepared
}

/// Prepares the workspace under `root`. Progress and per-repository outcomes go to `log`
/// as lines for the user.
pub async fn prepare(
    root: &Path,
    settings: &WorkspaceSettings,
    is_continuation: bool,
    credentials: &mut Credentials,
    log: &mpsc::UnboundedSender<String>,
) -> Result<PreparedWorkspace, WorkspaceError> {
    let say = |line: String| {
        let _sent = log.send(line);
    };
    let create = |path: &Path| {
        std::fs::create_dir_all(path).map_err(|source| WorkspaceError::CreateFolder {
            path: path.to_owned(),
            source,
        })
    };
    create(root)?;
    let artifacts = root.join("artifacts");
    create(&artifacts)?;
    if !settings.repos.is_empty() {
        checkouts_folder(root, settings.layout)?;
    }
    let names = folder_names(&settings.repos);
    let mut outcomes = Vec::new();
    for (repo, name) in settings.repos.iter().zip(&names) {
        let path = settings.layout.repo_path(root, name);
        let span = crate::trace::repository_span(&credentials.redactor.text(name));
        let result = prepare_repo(
            repo,
            Destination {
                root,
                name,
                path: &path,
            },
            settings,
            is_continuation,
            credentials,
            &say,
        )
        .await;
        crate::trace::finish(
            &span,
            match &result {
                RepoResult::Failed(reason) => Some(credentials.redactor.text(reason).into_owned()),
                _ => None,
            },
        );
        say(match &result {
            RepoResult::Cloned => format!("✓ {name}: cloned"),
            RepoResult::Preserved => format!("✓ {name}: preserved (continuation)"),
            RepoResult::Updated => format!("✓ {name}: updated to the remote branch"),
            RepoResult::KeptLocalChanges => {
                format!("⚠️ {name}: has local changes; kept as it is, not reset")
            }
            RepoResult::LeftAlone(why) => format!("⚠️ {name}: left as it is: {why}"),
            RepoResult::Failed(reason) => format!("✗ {name}: {reason}"),
        });
        outcomes.push(RepoOutcome {
            name: name.clone(),
            url: repo.input.url.clone(),
            path,
            result,
        });
    }
    let main_index = match &settings.main_repo {
        MainRepo::First => 0,
        MainRepo::Index(index) => *index,
        MainRepo::Named(wanted) => outcomes
            .iter()
            .position(|o| &o.name == wanted)
            .or_else(|| {
                settings
                    .repos
                    .iter()
                    .position(|r| r.name.as_deref() == Some(wanted.as_str()))
            })
            .ok_or_else(|| WorkspaceError::UnknownMainRepo {
                name: wanted.clone(),
            })?,
    };
    let workflow = match &settings.workflow {
        Some(location) => Some(prepare_workflow(root, location, settings, credentials, &say).await),
        None => None,
    };
    let main = match (&workflow, outcomes.get(main_index)) {
        (Some(Ok(dir)), _) => dir.clone(),
        (_, Some(outcome)) => {
            if let RepoResult::Failed(reason) = &outcome.result {
                return Err(WorkspaceError::MainRepoUnavailable {
                    name: outcome.name.clone(),
                    reason: reason.clone(),
                });
            }
            outcome.path.clone()
        }
        // With nothing to work in, the agent works in the workspace, where an in-pod
        // LangGraph graph's project is (the platform's Python runner uses `artifacts`).
        (_, None) => root.to_owned(),
    };
    let mut extra: Vec<PathBuf> = outcomes
        .iter()
        .filter(|o| o.path != main && !matches!(o.result, RepoResult::Failed(_)))
        .map(|o| o.path.clone())
        .collect();
    extra.push(artifacts.clone());
    // The AG-UI platform's UI uploads the user's files there, for the agent to read.
    if settings.layout == CheckoutLayout::ReposFolder {
        let uploads = root.join(FILE_UPLOADS);
        create(&uploads)?;
        extra.push(uploads);
    }
    Ok(PreparedWorkspace {
        main,
        extra,
        artifacts,
        repos: outcomes,
    })
}

/// Gives the agent's user the workspace under `root` (every file and folder it does not
/// own yet), so that an agent running as its own user can work in what the runner
/// checked out. A file it cannot take is logged and left.
///
/// The walk goes by directory descriptors, each opened from its parent without following
/// a link, and every owner is changed relative to its directory's descriptor: a folder
/// the agent swaps for a link to `/etc` while the walk runs is never entered, so nothing
/// outside the workspace changes owner, even for a runner that is root.
pub fn hand_over(root: &Path, user: AgentUser) {
    use std::{os::fd::AsFd, rc::Rc};

    use nix::{
        fcntl::{AtFlags, OFlag, openat},
        sys::stat::{Mode, SFlag, fstatat},
        unistd::{Gid, Uid, fchownat},
    };

    let owner = (Some(Uid::from_raw(user.uid)), Some(Gid::from_raw(user.gid)));
    let directory = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    // The top is the runner's to name (the workspace, or a folder it holds open as
    // `/proc/self/fd/<n>`): followed; nothing below it is.
    let Ok(top) = nix::fcntl::open(root, directory - OFlag::O_NOFOLLOW, Mode::empty()) else {
        return;
    };
    let give = |dir: &std::os::fd::OwnedFd, name: &std::ffi::OsStr| -> nix::Result<bool> {
        let stat = fstatat(dir.as_fd(), name, AtFlags::AT_SYMLINK_NOFOLLOW)?;
        if stat.st_uid != user.uid || stat.st_gid != user.gid {
            fchownat(
                dir.as_fd(),
                name,
                owner.0,
                owner.1,
                AtFlags::AT_SYMLINK_NOFOLLOW,
            )?;
        }
        Ok(SFlag::from_bits_truncate(stat.st_mode & SFlag::S_IFMT.bits()) == SFlag::S_IFDIR)
    };
    let top = Rc::new(top);
    if let Err(error) = give(&top, std::ffi::OsStr::new(".")) {
        warn!(path = %root.display(), %error, "the workspace could not be given to the agent's user");
        return;
    }
    // Folders to walk, as their parent and name: each is opened from its parent when its
    // turn comes, so that only the folders on the way down are open at once.
    let mut folders: Vec<(Rc<std::os::fd::OwnedFd>, Option<std::ffi::OsString>)> =
        vec![(top, None)];
    while let Some((parent, name)) = folders.pop() {
        let folder = match name {
            None => parent,
            // A link put in its place since is refused here (O_NOFOLLOW).
            Some(name) => {
                match openat(parent.as_fd(), name.as_os_str(), directory, Mode::empty()) {
                    Ok(inner) => Rc::new(inner),
                    Err(_) => continue,
                }
            }
        };
        let Some(mut listing) = folder
            .as_ref()
            .try_clone()
            .ok()
            .and_then(|fd| nix::dir::Dir::from_fd(fd).ok())
        else {
            continue;
        };
        let names: Vec<std::ffi::OsString> = listing
            .iter()
            .flatten()
            .map(|entry| std::ffi::OsStr::from_bytes(entry.file_name().to_bytes()).to_owned())
            .filter(|name| name != "." && name != "..")
            .collect();
        for name in names {
            match give(&folder, &name) {
                Ok(true) => folders.push((Rc::clone(&folder), Some(name))),
                Ok(false) => {}
                Err(error) => {
                    // One failure says it all (the runner may not change owners at all).
                    warn!(path = %root.join(&name).display(), %error, "the workspace could not be given to the agent's user");
                    return;
                }
            }
        }
    }
}

/// A change to the workspace while the session runs (`repo_added`, `repo_removed`,
/// `workflow_change`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Clone another repository.
    AddRepo(RepoSpec),
    /// Remove a repository's folder.
    RemoveRepo(String),
    /// Check out another workflow and work there.
    SwitchWorkflow(RepoLocation, Option<String>),
    /// A change made with the caller's own tokens (the platform's UI sends the user's
    /// with a repository or workflow change): for its GitHub and GitLab hosts, in place
    /// of the runner's, for this change only. They go where the runner's would (https,
    /// to the hosts they are for), and are scrubbed from everything from the start.
    WithTokens {
        /// The change.
        change: Box<Change>,
        /// The caller's GitHub token.
        github: Option<Secret>,
        /// The caller's GitLab token.
        gitlab: Option<Secret>,
    },
}

/// Makes the folder the checkouts go in, if the layout has one. The agent may have made
/// it first: a symbolic link there (which would send clones where the agent points) is
/// refused.
fn checkouts_folder(root: &Path, layout: CheckoutLayout) -> Result<(), WorkspaceError> {
    if layout.folder().is_empty() {
        return Ok(());
    }
    let folder = root.join(layout.folder());
    let refused = |why: String| WorkspaceError::CheckoutsFolder {
        path: folder.clone(),
        why,
    };
    std::fs::create_dir_all(&folder).map_err(|error| refused(error.to_string()))?;
    let kind = std::fs::symlink_metadata(&folder).map_err(|error| refused(error.to_string()))?;
    if kind.file_type().is_symlink() || !kind.is_dir() {
        return Err(refused(String::from(
            "a symbolic link or a file, not a folder",
        )));
    }
    Ok(())
}

/// Applies a change to a prepared workspace, reporting to `log`; returns whether the
/// workspace changed.
pub async fn apply(
    root: &Path,
    settings: &mut WorkspaceSettings,
    prepared: &mut PreparedWorkspace,
    change: Change,
    credentials: &mut Credentials,
    log: &mpsc::UnboundedSender<String>,
) -> bool {
    let say = |line: String| {
        let _sent = log.send(line);
    };
    match change {
        Change::WithTokens {
            change,
            github,
            gitlab,
        } => match credentials.with_callers_tokens(github, gitlab) {
            Ok(mut callers) => {
                Box::pin(apply(root, settings, prepared, *change, &mut callers, log)).await
            }
            Err(error) => {
                say(format!("✗ the caller's token is not used: {error}"));
                false
            }
        },
        Change::AddRepo(repo) => {
            // The same repository asked for again, under its own name or none, is the
            // one already there, not a second copy; if it could not be had before (its
            // clone failed at the start, say), it is tried again under its name.
            let names = folder_names(&settings.repos);
            let listed = settings.repos.iter().zip(&names).position(|(known, name)| {
                known.input.url == repo.input.url
                    && repo.name.as_deref().is_none_or(|asked| asked == name)
            });
            let name = match listed {
                Some(index) => {
                    // Under the name it failed with, whatever names the others have since.
                    let failed = prepared.repos.iter().find(|r| {
                        r.url == repo.input.url
                            && matches!(r.result, RepoResult::Failed(_))
                            && repo.name.as_deref().is_none_or(|asked| asked == r.name)
                    });
                    let Some(failed) = failed else {
                        say(format!("✓ {}: already in the workspace", names[index]));
                        return false;
                    };
                    failed.name.clone()
                }
                None => {
                    let mut all = settings.repos.clone();
                    all.push(repo.clone());
                    folder_names(&all)
                        .pop()
                        .unwrap_or_else(|| String::from("repo"))
                }
            };
            let path = settings.layout.repo_path(root, &name);
            // One that failed before is tried again (with other tokens, say).
            if prepared
                .repos
                .iter()
                .any(|r| r.path == path && !matches!(r.result, RepoResult::Failed(_)))
            {
                say(format!("✓ {name}: already in the workspace"));
                return false;
            }
            prepared.repos.retain(|r| r.path != path);
            if let Err(error) = checkouts_folder(root, settings.layout) {
                say(format!("✗ {name}: {error}"));
                return false;
            }
            let result = prepare_repo(
                &repo,
                Destination {
                    root,
                    name: &name,
                    path: &path,
                },
                settings,
                false,
                credentials,
                &say,
            )
            .await;
            let added = !matches!(result, RepoResult::Failed(_));
            say(match &result {
                RepoResult::Failed(reason) => format!("✗ {name}: {reason}"),
                _ => format!("✓ {name}: added"),
            });
            let url = repo.input.url.clone();
            if added {
                match listed {
                    Some(index) => settings.repos[index] = repo,
                    None => settings.repos.push(repo),
                }
                if !prepared.extra.contains(&path) {
                    prepared
                        .extra
                        .insert(prepared.extra.len().saturating_sub(1), path.clone());
                }
            }
            prepared.repos.push(RepoOutcome {
                name,
                url,
                path,
                result,
            });
            added
        }
        Change::RemoveRepo(name) => {
            let Some(index) = prepared.repos.iter().position(|r| r.name == name) else {
                say(format!("✗ {name}: no such repository in the workspace"));
                return false;
            };
            let path = prepared.repos[index].path.clone();
            if path == prepared.main {
                say(format!("✗ {name}: the agent works in it; not removed"));
                return false;
            }
            // Looked at and removed pinned, never by its path: the agent may have made a
            // folder on the way a link to anywhere.
            match pin::existing(root, &path) {
                Err(why) => {
                    say(format!("✗ {name}: {why}"));
                    return false;
                }
                Ok(None) => say(format!("✓ {name}: already gone from disk")),
                Ok(Some(pinned)) => {
                    let status = match git::check_checkout(&pinned.path(), &settings.git).await {
                        Ok(()) => {
                            git::run_in_checkout(
                                &pinned.path(),
                                &["status", "--porcelain"],
                                &settings.git,
                                None,
                                GIT_TIMEOUT,
                            )
                            .await
                        }
                        Err(refused) => Err(refused),
                    };
                    if status.as_deref().map_or(true, |s| !s.trim().is_empty()) {
                        say(format!(
                            "⚠️ {name}: has local changes (or is not a checkout); kept on disk, no longer offered to the agent"
                        ));
                    } else if let Err(error) = std::fs::remove_dir_all(pinned.path_in_parent()) {
                        say(format!("✗ {name}: could not be removed: {error}"));
                        return false;
                    } else {
                        say(format!("✓ {name}: removed"));
                    }
                }
            }
            prepared.extra.retain(|p| *p != path);
            // Out of the session's repositories too, so that it can be added again: the
            // one asked for at its URL, under its name if several were.
            let removed = prepared.repos.remove(index);
            let names = folder_names(&settings.repos);
            let listed = settings
                .repos
                .iter()
                .zip(&names)
                .enumerate()
                .filter(|(_, (known, _))| known.input.url == removed.url)
                // The first of that name, else the first at the URL.
                .min_by_key(|(_, (_, listed_name))| **listed_name != name)
                .map(|(at, _)| at);
            if let Some(listed) = listed {
                settings.repos.remove(listed);
            }
            true
        }
        Change::SwitchWorkflow(location, path) => {
            settings.workflow = Some(location.clone());
            settings.workflow_path = path;
            match prepare_workflow(root, &location, settings, credentials, &say).await {
                Ok(dir) => {
                    let previous = std::mem::replace(&mut prepared.main, dir);
                    if !prepared.extra.contains(&previous)
                        && !previous.starts_with(root.join("workflows"))
                    {
                        prepared.extra.insert(0, previous);
                    }
                    say(format!(
                        "✓ workflow switched to {}",
                        clean_url(&location.url)
                    ));
                    true
                }
                Err(_) => false,
            }
        }
    }
}

/// Where a repository goes: its folder `path` in the workspace at `root`, and the name it
/// is told by.
#[derive(Clone, Copy)]
struct Destination<'a> {
    root: &'a Path,
    name: &'a str,
    path: &'a Path,
}

async fn prepare_repo(
    repo: &RepoSpec,
    destination: Destination<'_>,
    settings: &WorkspaceSettings,
    is_continuation: bool,
    credentials: &mut Credentials,
    say: &impl Fn(String),
) -> RepoResult {
    let Destination { root, name, path } = destination;
    let git = &settings.git;
    let branch = repo
        .input
        .branch
        .clone()
        .unwrap_or_else(|| String::from("main"));
    let url = clean_url(&repo.input.url);
    let checked = async {
        git::check_url(&url, git)?;
        git::check_branch(&branch, git).await?;
        if let Some(output) = &repo.output {
            git::check_url(&clean_url(&output.url), git)?;
        }
        Ok::<(), GitError>(())
    };
    if let Err(refused) = checked.await {
        return RepoResult::Failed(refused.to_string());
    }
    let access = credentials.for_url(&url, git).await;
    if let Some(why) = &access.withheld {
        say(format!("ℹ️ {name}: cloned without a token: {why}"));
    }
    // From here on git works in the folder pinned, never by its path.
    let pinned = match pin::checkout(root, path) {
        Ok(pinned) => pinned,
        Err(why) => return RepoResult::Failed(why),
    };
    let git_path = pinned.path();
    let path = git_path.as_path();
    let target = Checkout {
        url: &url,
        branch: &branch,
        name,
        path,
        fresh: !pinned.existed,
        is_continuation,
    };
    let mut outcome = checkout(&target, git, access.credential.as_ref(), say).await;
    // A minted token expires (GitHub App tokens last an hour): mint again, once.
    if matches!(outcome, Err(GitError::Failed { .. })) && credentials.uses_minted() {
        credentials.refresh();
        let fresh = credentials.for_url(&url, git).await;
        outcome = checkout(&target, git, fresh.credential.as_ref(), say).await;
    }
    let result = match outcome {
        Ok(result) => result,
        Err(GitError::Refused(why)) => return RepoResult::LeftAlone(why),
        Err(error) => {
            if target.fresh {
                pinned.remove_if_empty();
            }
            return RepoResult::Failed(error.to_string());
        }
    };
    if matches!(result, RepoResult::Preserved | RepoResult::KeptLocalChanges) {
        return result;
    }
    let configure = async {
        git::run_in_checkout(
            path,
            &["config", "user.name", &settings.git_user_name],
            git,
            None,
            GIT_TIMEOUT,
        )
        .await?;
        git::run_in_checkout(
            path,
            &["config", "user.email", &settings.git_user_email],
            git,
            None,
            GIT_TIMEOUT,
        )
        .await?;
        if let Some(output) = &repo.output {
            let _absent = git::run_in_checkout(
                path,
                &["remote", "remove", "output"],
                git,
                None,
                GIT_TIMEOUT,
            )
            .await;
            git::run_in_checkout(
                path,
                &["remote", "add", "output", "--", &clean_url(&output.url)],
                git,
                None,
                GIT_TIMEOUT,
            )
            .await?;
        }
        Ok::<(), GitError>(())
    };
    match configure.await {
        Ok(()) => result,
        Err(error) => RepoResult::Failed(error.to_string()),
    }
}

/// One repository to have in the workspace.
struct Checkout<'a> {
    url: &'a str,
    branch: &'a str,
    name: &'a str,
    /// The pinned folder (`/proc/self/fd/<n>`).
    path: &'a Path,
    /// Whether the folder was made for a clone (else a checkout is there).
    fresh: bool,
    is_continuation: bool,
}

async fn checkout(
    target: &Checkout<'_>,
    git: &GitSettings,
    credential: Option<&HostCredential>,
    say: &impl Fn(String),
) -> Result<RepoResult, GitError> {
    let Checkout {
        url,
        branch,
        name,
        path,
        fresh,
        is_continuation,
    } = *target;
    if fresh {
        say(format!("📥 Cloning {name} ({branch})..."));
        // Into the empty folder the runner made and holds, as git's working directory.
        git::run(
            path,
            &[
                "clone",
                "--branch",
                branch,
                "--single-branch",
                "--",
                url,
                ".",
            ],
            git,
            credential,
            GIT_TIMEOUT,
        )
        .await?;
        return Ok(RepoResult::Cloned);
    }
    // A checkout the agent had: git runs in it only when nothing in it can make git run
    // something or send a token elsewhere.
    git::check_checkout(path, git).await?;
    // The remote URL is kept free of credentials whatever an earlier runner left there.
    git::run_in_checkout(
        path,
        &["remote", "set-url", "origin", "--", url],
        git,
        None,
        GIT_TIMEOUT,
    )
    .await?;
    if is_continuation {
        return Ok(RepoResult::Preserved);
    }
    let status =
        git::run_in_checkout(path, &["status", "--porcelain"], git, None, GIT_TIMEOUT).await;
    // More changes than the runner reads are changes all the same.
    let changed = match status {
        Ok(status) => !status.trim().is_empty(),
        Err(GitError::TooMuchOutput { .. }) => true,
        Err(other) => return Err(other),
    };
    if changed {
        return Ok(RepoResult::KeptLocalChanges);
    }
    say(format!("🔄 Updating {name} to origin/{branch}..."));
    git::run_in_checkout(
        path,
        &["fetch", "origin", "--", branch],
        git,
        credential,
        GIT_TIMEOUT,
    )
    .await?;
    git::run_in_checkout(
        path,
        &["checkout", "-B", branch, &format!("origin/{branch}"), "--"],
        git,
        None,
        GIT_TIMEOUT,
    )
    .await?;
    Ok(RepoResult::Updated)
}

/// A folder inside a workflow repository, as a relative path that cannot leave it.
fn inside(sub: &str) -> Result<PathBuf, String> {
    let relative = Path::new(sub.trim_start_matches('/'));
    let mut path = PathBuf::new();
    for component in relative.components() {
        match component {
            std::path::Component::Normal(part) => path.push(part),
            std::path::Component::CurDir => {}
            _ => {
                return Err(format!(
                    "the workflow path {sub:?} leaves the workflow's repository"
                ));
            }
        }
    }
    Ok(path)
}

async fn prepare_workflow(
    root: &Path,
    location: &RepoLocation,
    settings: &WorkspaceSettings,
    credentials: &mut Credentials,
    say: &impl Fn(String),
) -> Result<PathBuf, String> {
    let (_, name) = owner_and_repo(&location.url);
    let name = safe_folder(&name);
    let sub = match settings.workflow_path.as_deref().map(inside).transpose() {
        Ok(sub) => sub,
        Err(why) => {
            say(format!("✗ workflow {name}: {why}"));
            return Err(why);
        }
    };
    let workflows = root.join("workflows");
    std::fs::create_dir_all(&workflows).map_err(|e| e.to_string())?;
    let path = workflows.join(&name);
    let spec = RepoSpec {
        name: Some(name.clone()),
        input: location.clone(),
        output: None,
        status: None,
    };
    match prepare_repo(
        &spec,
        Destination {
            root,
            name: &format!("workflow {name}"),
            path: &path,
        },
        settings,
        false,
        credentials,
        say,
    )
    .await
    {
        RepoResult::Failed(reason) | RepoResult::LeftAlone(reason) => {
            say(format!("✗ workflow {name}: {reason}"));
            Err(reason)
        }
        _ => Ok(match sub {
            Some(sub) => path.join(sub),
            None => path,
        }),
    }
}

#[cfg(test)]
mod tests;
