//! Workspace preparation with real git, against repositories the tests create, over
//! `file://`.

use std::path::{Path, PathBuf};

use ambient_host::{
    config::{MainRepo, WorkspaceSettings},
    workspace::{Credentials, PreparedWorkspace, RepoResult, WorkspaceError, prepare},
};
use ambient_protocol::repos::{RepoLocation, RepoSpec};
use tokio::sync::mpsc;

use ambient_test_support::git_repos::{advance, bare_repo as origin, git};

fn spec(url: &str) -> RepoSpec {
    RepoSpec {
        name: None,
        input: RepoLocation {
            url: url.to_owned(),
            branch: None,
        },
        output: None,
        status: None,
    }
}

fn settings(repos: Vec<RepoSpec>) -> WorkspaceSettings {
    WorkspaceSettings {
        repos,
        git_user_name: String::from("Ambient Code Bot"),
        git_user_email: String::from("bot@ambient-code.local"),
        ..WorkspaceSettings::default()
    }
}

async fn run(
    workspace: &Path,
    settings: &WorkspaceSettings,
    continuation: bool,
) -> (Result<PreparedWorkspace, WorkspaceError>, Vec<String>) {
    let (log, mut lines) = mpsc::unbounded_channel();
    let result = prepare(
        workspace,
        settings,
        continuation,
        &mut Credentials::default(),
        &log,
    )
    .await;
    drop(log);
    let mut said = Vec::new();
    while let Some(line) = lines.recv().await {
        said.push(line);
    }
    (result, said)
}

struct Setup {
    _dir: tempfile::TempDir,
    origins: PathBuf,
    workspace: PathBuf,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let origins = dir.path().join("origins");
    let workspace = dir.path().join("workspace");
    Setup {
        origins,
        workspace,
        _dir: dir,
    }
}

#[tokio::test]
async fn one_bad_repository_does_not_stop_the_others() {
    let s = setup();
    let a = origin(&s.origins, "o", "a");
    let b = origin(&s.origins, "o", "b");
    let repos = vec![spec(&a), spec("file:///no/such/repo.git"), spec(&b)];
    let (prepared, said) = run(&s.workspace, &settings(repos), false).await;
    let prepared = prepared.unwrap();
    let results: Vec<_> = prepared
        .repos
        .iter()
        .map(|r| (r.name.as_str(), &r.result))
        .collect();
    assert!(
        matches!(
            results[..],
            [
                ("a", RepoResult::Cloned),
                ("repo", RepoResult::Failed(_)),
                ("b", RepoResult::Cloned)
            ]
        ),
        "{results:?}"
    );
    assert!(
        said.iter()
            .any(|l| l.starts_with("✗ repo: git clone failed")),
        "{said:?}"
    );
    assert_eq!(prepared.main, s.workspace.join("a"));
    assert_eq!(
        prepared.extra,
        [s.workspace.join("b"), s.workspace.join("artifacts")]
    );
    assert!(s.workspace.join("b/README.md").exists());
    let config = std::fs::read_to_string(s.workspace.join("a/.git/config")).unwrap();
    assert!(config.contains("name = Ambient Code Bot"), "{config}");
}

#[tokio::test]
async fn a_main_repository_that_cannot_be_had_fails_clearly() {
    let s = setup();
    let b = origin(&s.origins, "o", "b");
    let mut settings = settings(vec![spec("file:///no/such/main.git"), spec(&b)]);
    settings.main_repo = MainRepo::Index(0);
    let (prepared, _) = run(&s.workspace, &settings, false).await;
    let error = prepared.unwrap_err();
    assert!(
        error
            .to_string()
            .starts_with("the main repository main could not be had: git clone failed"),
        "{error}"
    );
}

#[tokio::test]
async fn repositories_of_the_same_name_from_two_owners_get_two_folders() {
    let s = setup();
    let alpha = origin(&s.origins, "alpha", "app");
    let beta = origin(&s.origins, "beta", "app");
    let (prepared, _) = run(
        &s.workspace,
        &settings(vec![spec(&alpha), spec(&beta)]),
        false,
    )
    .await;
    let prepared = prepared.unwrap();
    assert_eq!(
        std::fs::read_to_string(s.workspace.join("alpha-app/README.md")).unwrap(),
        "alpha/app\n"
    );
    assert_eq!(
        std::fs::read_to_string(s.workspace.join("beta-app/README.md")).unwrap(),
        "beta/app\n"
    );
    assert_eq!(prepared.main, s.workspace.join("alpha-app"));
}

#[tokio::test]
async fn a_continuation_keeps_local_changes() {
    let s = setup();
    let a = origin(&s.origins, "o", "a");
    let settings = settings(vec![spec(&a)]);
    run(&s.workspace, &settings, false).await.0.unwrap();
    std::fs::write(s.workspace.join("a/README.md"), "edited by the agent\n").unwrap();
    advance(&s.origins, "o", "a", "upstream.txt");
    let (prepared, _) = run(&s.workspace, &settings, true).await;
    assert_eq!(prepared.unwrap().repos[0].result, RepoResult::Preserved);
    assert_eq!(
        std::fs::read_to_string(s.workspace.join("a/README.md")).unwrap(),
        "edited by the agent\n"
    );
    assert!(
        !s.workspace.join("a/upstream.txt").exists(),
        "a continuation fetched"
    );
}

#[tokio::test]
async fn a_fresh_session_never_resets_a_dirty_checkout_and_updates_a_clean_one() {
    let s = setup();
    let dirty = origin(&s.origins, "o", "dirty");
    let clean = origin(&s.origins, "o", "clean");
    let settings = settings(vec![spec(&dirty), spec(&clean)]);
    run(&s.workspace, &settings, false).await.0.unwrap();
    std::fs::write(s.workspace.join("dirty/README.md"), "unsaved work\n").unwrap();
    advance(&s.origins, "o", "dirty", "later.txt");
    advance(&s.origins, "o", "clean", "later.txt");
    let (prepared, said) = run(&s.workspace, &settings, false).await;
    let prepared = prepared.unwrap();
    assert_eq!(prepared.repos[0].result, RepoResult::KeptLocalChanges);
    assert_eq!(
        std::fs::read_to_string(s.workspace.join("dirty/README.md")).unwrap(),
        "unsaved work\n"
    );
    assert!(
        said.iter()
            .any(|l| l.contains("dirty: has local changes; kept as it is")),
        "{said:?}"
    );
    assert_eq!(prepared.repos[1].result, RepoResult::Updated);
    assert!(s.workspace.join("clean/later.txt").exists());
}

mod over_http {
    //! The credential path, against a git smart-HTTP server that requires a token.

    use ambient_protocol::Secret;
    use ambient_test_support::GitHttpServer;

    use super::*;

    const TOKEN: &str = "ghs_plantedHttpToken0123456789abcdef";

    /// Every file under `dir`, read as text where it is text.
    fn every_file(dir: &Path, found: &mut Vec<(PathBuf, String)>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                every_file(&path, found);
            } else if let Ok(bytes) = std::fs::read(&path) {
                found.push((path, String::from_utf8_lossy(&bytes).into_owned()));
            }
        }
    }

    #[tokio::test]
    async fn the_token_reaches_git_and_nothing_in_the_workspace_or_the_log() {
        let s = setup();
        origin(&s.origins, "o", "a");
        let server = GitHttpServer::start(&s.origins, "x-access-token", TOKEN)
            .await
            .unwrap();
        let url = server.url("o/a.git");
        let settings = settings(vec![spec(&url)]);
        let (log, mut lines) = mpsc::unbounded_channel();
        let mut credentials = Credentials::new(Some(Secret::new(TOKEN)), None, None);
        let prepared = prepare(&s.workspace, &settings, false, &mut credentials, &log)
            .await
            .unwrap();
        drop(log);
        assert_eq!(prepared.repos[0].result, RepoResult::Cloned);
        assert!(server.authorized_requests() > 0, "git never sent the token");
        let mut said = Vec::new();
        while let Some(line) = lines.recv().await {
            said.push(line);
        }
        assert!(!said.iter().any(|l| l.contains(TOKEN)), "{said:?}");
        let mut files = Vec::new();
        every_file(&s.workspace, &mut files);
        assert!(files.len() > 5, "the clone is empty");
        for (path, text) in files {
            assert!(!text.contains(TOKEN), "the token is in {}", path.display());
        }
        let remote = git(&s.workspace.join("a"), &["remote", "get-url", "origin"]);
        assert_eq!(remote.trim(), url);
    }

    #[tokio::test]
    async fn without_the_token_the_clone_fails_at_once_and_says_so() {
        let s = setup();
        origin(&s.origins, "o", "a");
        let server = GitHttpServer::start(&s.origins, "x-access-token", TOKEN)
            .await
            .unwrap();
        let settings = settings(vec![spec(&server.url("o/a.git"))]);
        let (prepared, _) = run(&s.workspace, &settings, false).await;
        let error = prepared.unwrap_err();
        assert!(error.to_string().contains("git clone failed"), "{error}");
    }
}

mod minted {
    //! A token minted through the backend when none is configured.

    use ambient_adapter_echo::EchoAdapter;
    use ambient_host::RunnerExit;
    use ambient_local_backend::{LocalBackend, SessionSeed};
    use ambient_test_support::GitHttpServer;
    use ambient_websocket::run_session;
    use tokio_util::sync::CancellationToken;

    use super::*;
    use crate::{PROJECT, SESSION, TOKEN, WAIT, config};

    #[tokio::test]
    async fn a_missing_github_token_is_minted_through_the_backend() {
        const MINTED: &str = "ghs_mintedByTheBackend0123456789";
        let backend = LocalBackend::builder()
            .token(TOKEN)
            .github_token(MINTED)
            .session(SessionSeed::new(PROJECT, SESSION))
            .start(([127, 0, 0, 1], 0).into())
            .await
            .unwrap();
        let s = setup();
        origin(&s.origins, "o", "a");
        let server = GitHttpServer::start(&s.origins, "x-access-token", MINTED)
            .await
            .unwrap();
        let mut config = config(&backend, false, None);
        config.host.workspace = s.workspace.clone();
        config.host.workspace_settings = settings(vec![spec(&server.url("o/a.git"))]);
        let report = tokio::time::timeout(
            WAIT,
            run_session(config, EchoAdapter::default(), CancellationToken::new()),
        )
        .await
        .unwrap();
        assert_eq!(report.exit(), RunnerExit::Completed, "{report:?}");
        assert!(s.workspace.join("a/README.md").exists());
        assert!(server.authorized_requests() > 0);
    }
}

mod while_running {
    //! Repositories added and removed while a session runs.

    use ambient_adapter_echo::EchoAdapter;
    use ambient_host::RunnerExit;
    use ambient_websocket::run_session;
    use serde_json::json;
    use tokio_util::sync::CancellationToken;

    use super::*;
    use crate::{PROJECT, SESSION, WAIT, backend, config, until};

    async fn until_line(
        watch: &mut mpsc::UnboundedReceiver<ambient_protocol::SessionMessage>,
        line: &str,
    ) {
        until(watch, |m| m.payload["message"] == json!(line)).await;
    }

    #[tokio::test]
    async fn a_repository_added_is_cloned_and_one_removed_is_gone() {
        let s = setup();
        let main = origin(&s.origins, "o", "main");
        let extra = origin(&s.origins, "o", "extra");
        let backend = backend().await;
        let mut watch = backend.watch(SESSION);
        let mut config = config(&backend, true, None);
        config.host.workspace = s.workspace.clone();
        config.host.workspace_settings = settings(vec![spec(&main)]);
        let session = tokio::spawn(run_session(
            config,
            EchoAdapter::default(),
            CancellationToken::new(),
        ));
        until_line(&mut watch, "✓ main: cloned").await;
        backend
            .post_message(
                PROJECT,
                SESSION,
                json!({"type": "repo_added", "name": "extra", "url": extra}),
            )
            .await
            .unwrap();
        until_line(&mut watch, "✓ extra: added").await;
        assert!(s.workspace.join("extra/README.md").exists());
        backend
            .post_message(
                PROJECT,
                SESSION,
                json!({"type": "repo_removed", "name": "extra"}),
            )
            .await
            .unwrap();
        until_line(&mut watch, "✓ extra: removed").await;
        assert!(!s.workspace.join("extra").exists());
        backend
            .post_message(
                PROJECT,
                SESSION,
                json!({"type": "repo_removed", "name": "main"}),
            )
            .await
            .unwrap();
        until_line(&mut watch, "✗ main: the agent works in it; not removed").await;
        backend
            .post_message(PROJECT, SESSION, json!({"type": "end_session"}))
            .await
            .unwrap();
        let report = tokio::time::timeout(WAIT, session).await.unwrap().unwrap();
        assert_eq!(report.exit(), RunnerExit::Completed, "{report:?}");
        assert!(s.workspace.join("main/README.md").exists());
    }
}

mod seen_by_the_adapter {
    //! What an adapter is handed.

    use std::sync::{Arc, Mutex};

    use ambient_adapter::{Adapter, Outcome, Session, SessionClosed, Workspace};
    use ambient_host::RunnerExit;
    use ambient_websocket::run_session;
    use tokio_util::sync::CancellationToken;

    use super::*;
    use crate::{WAIT, backend, config};

    struct Recording(Arc<Mutex<Option<Workspace>>>);

    impl Adapter for Recording {
        type Error = SessionClosed;
        async fn run(&mut self, session: &mut Session) -> Result<Outcome, Self::Error> {
            *self.0.lock().unwrap() = Some(session.info().workspace.clone());
            Ok(Outcome::Completed { result: None })
        }
    }

    #[tokio::test]
    async fn the_adapter_gets_the_main_folder_the_others_and_the_artifacts_folder() {
        let s = setup();
        let a = origin(&s.origins, "o", "a");
        let b = origin(&s.origins, "o", "b");
        let backend = backend().await;
        let mut config = config(&backend, false, None);
        config.host.workspace = s.workspace.clone();
        config.host.workspace_settings = settings(vec![spec(&a), spec(&b)]);
        config.host.workspace_settings.main_repo = MainRepo::Named(String::from("b"));
        let seen = Arc::new(Mutex::new(None));
        let report = tokio::time::timeout(
            WAIT,
            run_session(config, Recording(seen.clone()), CancellationToken::new()),
        )
        .await
        .unwrap();
        assert_eq!(report.exit(), RunnerExit::Completed);
        let workspace = seen.lock().unwrap().clone().unwrap();
        assert_eq!(workspace.main, s.workspace.join("b"));
        assert_eq!(
            workspace.extra,
            [s.workspace.join("a"), s.workspace.join("artifacts")]
        );
        assert_eq!(workspace.artifacts, s.workspace.join("artifacts"));
        assert!(workspace.artifacts.is_dir());
    }
}
