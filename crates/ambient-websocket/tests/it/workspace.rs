//! The workspace as a WebSocket session sees it: a token minted through the backend,
//! repositories added and removed while the session runs, and the folders the adapter is
//! handed. (Preparation itself, and the attacks on the runner's git, are the host's tests.)

use std::{ffi::OsString, path::PathBuf};

use ambient_host::config::{MainRepo, WorkspaceSettings};
use ambient_protocol::repos::{RepoLocation, RepoSpec};
use ambient_test_support::git_repos::bare_repo as origin;
use tokio::sync::mpsc;

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

/// The session's repositories, with the runner's git allowed to use local ones.
fn settings(repos: Vec<RepoSpec>) -> WorkspaceSettings {
    let mut settings = WorkspaceSettings {
        repos,
        git_user_name: String::from("Ambient Code Bot"),
        git_user_email: String::from("bot@ambient-code.local"),
        ..WorkspaceSettings::default()
    };
    settings.git.protocols.push(String::from("file"));
    settings.git.env = vec![(
        OsString::from("PATH"),
        OsString::from("/usr/local/bin:/usr/bin:/bin"),
    )];
    settings
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
        let server = GitHttpServer::start_tls(&s.origins, "x-access-token", MINTED)
            .await
            .unwrap();
        let mut config = config(&backend, false, None);
        config.host.workspace = s.workspace.clone();
        let mut repos = settings(vec![spec(&server.url("o/a.git"))]);
        repos.git.github_hosts = vec![server.host()];
        if let Some(certificate) = server.certificate() {
            repos.git.env.push((
                OsString::from("GIT_SSL_CAINFO"),
                certificate.as_os_str().to_owned(),
            ));
        }
        config.host.workspace_settings = repos;
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
