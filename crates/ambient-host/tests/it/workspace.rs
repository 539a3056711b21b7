//! Workspace preparation with real git, against repositories the tests create (over
//! `file://`, and over https from a git server that requires a token), and the attacks an
//! agent or a session's peer can try on the runner's git.

use std::{
    ffi::OsString,
    future::Future,
    path::{Path, PathBuf},
    pin::Pin,
    sync::Arc,
};

use ambient_host::{
    Redactor,
    config::{CheckoutLayout, MainRepo, WorkspaceSettings},
    workspace::{
        Change, Credentials, GitSettings, PreparedWorkspace, RepoResult, TokenMinter,
        WorkspaceError, apply, prepare,
    },
};
use ambient_protocol::{
    Secret,
    repos::{RepoLocation, RepoSpec},
};
use ambient_test_support::{
    GitHttpServer,
    git_repos::{advance, bare_repo as origin, git},
};
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

/// The runner's git for these tests: local repositories are allowed, and git finds its
/// programs; nothing else of this process's environment.
fn git_settings() -> GitSettings {
    GitSettings {
        env: vec![(
            OsString::from("PATH"),
            OsString::from("/usr/local/bin:/usr/bin:/bin"),
        )],
        protocols: vec![String::from("https"), String::from("file")],
        ..GitSettings::default()
    }
}

fn settings(repos: Vec<RepoSpec>) -> WorkspaceSettings {
    WorkspaceSettings {
        repos,
        git_user_name: String::from("Ambient Code Bot"),
        git_user_email: String::from("bot@ambient-code.local"),
        git: git_settings(),
        ..WorkspaceSettings::default()
    }
}

fn no_credentials() -> Credentials {
    Credentials::new(None, None, None, Redactor::default())
}

async fn run_with(
    workspace: &Path,
    settings: &WorkspaceSettings,
    continuation: bool,
    credentials: &mut Credentials,
) -> (Result<PreparedWorkspace, WorkspaceError>, Vec<String>) {
    let (log, mut lines) = mpsc::unbounded_channel();
    let result = prepare(workspace, settings, continuation, credentials, &log).await;
    drop(log);
    let mut said = Vec::new();
    while let Some(line) = lines.recv().await {
        said.push(line);
    }
    (result, said)
}

async fn run(
    workspace: &Path,
    settings: &WorkspaceSettings,
    continuation: bool,
) -> (Result<PreparedWorkspace, WorkspaceError>, Vec<String>) {
    run_with(workspace, settings, continuation, &mut no_credentials()).await
}

struct Setup {
    dir: tempfile::TempDir,
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
        dir,
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

#[tokio::test]
async fn a_workflow_path_cannot_leave_the_workflow_repository() {
    let s = setup();
    let flow = origin(&s.origins, "o", "flow");
    let mut settings = settings(Vec::new());
    settings.workflow = Some(RepoLocation {
        url: flow,
        branch: None,
    });
    settings.workflow_path = Some(String::from("sub/../../../etc"));
    let (prepared, said) = run(&s.workspace, &settings, false).await;
    assert_eq!(prepared.unwrap().main, s.workspace, "{said:?}");
    assert!(
        said.iter()
            .any(|l| l.contains("leaves the workflow's repository")),
        "{said:?}"
    );
}

/// The attacks of an agent that can write the workspace, and of a peer that can name a
/// branch or a URL: each plants something that makes plain git run a command (which a
/// control step shows), then has the runner's git work on the repository; the command
/// must not have run.
mod attacks {
    use super::*;

    /// A script that leaves `marker` when it runs, and the marker.
    fn trap(s: &Setup, name: &str) -> (PathBuf, PathBuf) {
        let marker = s.dir.path().join(format!("{name}.ran"));
        let script = s.dir.path().join(format!("{name}.sh"));
        std::fs::write(
            &script,
            format!("#!/bin/sh\ntouch '{}'\n", marker.display()),
        )
        .unwrap();
        let mut permissions = std::fs::metadata(&script).unwrap().permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut permissions, 0o755);
        std::fs::set_permissions(&script, permissions).unwrap();
        (script, marker)
    }

    /// A checkout whose `.git` is an empty folder, in a workspace the agent made a
    /// repository of its own with a clean filter: the runner's git never looks above the
    /// checkout for a `.git`, so the agent's command never runs.
    #[tokio::test]
    async fn an_empty_git_folder_does_not_send_the_runners_git_to_the_agents_repository() {
        let s = setup();
        let b = origin(&s.origins, "o", "b");
        std::fs::create_dir_all(s.workspace.join("repos/b/.git")).unwrap();
        // The agent's repository: an origin, and a clean filter on a file that changed.
        git(&s.workspace, &["init", "-q"]);
        git(
            &s.workspace,
            &["remote", "add", "origin", "https://example.invalid/x.git"],
        );
        std::fs::write(s.workspace.join("notes.txt"), "one").unwrap();
        git(&s.workspace, &["add", "notes.txt"]);
        git(&s.workspace, &["commit", "-qm", "notes"]);
        std::fs::write(s.workspace.join("notes.txt"), "two").unwrap();
        let (script, marker) = trap(&s, "outer");
        git(
            &s.workspace,
            &["config", "filter.x.clean", &script.to_string_lossy()],
        );
        std::fs::write(s.workspace.join(".git/info/attributes"), "* filter=x\n").unwrap();
        let mut live = settings(vec![spec(&b)]);
        live.layout = CheckoutLayout::ReposFolder;
        let (_, said) = run(&s.workspace, &live, false).await;
        assert!(
            !marker.exists(),
            "the runner's git ran the agent's command: {said:?}"
        );
    }

    /// A fresh session's first run: `a` cloned, as the agent then finds it.
    async fn cloned(s: &Setup) -> WorkspaceSettings {
        let a = origin(&s.origins, "o", "a");
        let settings = settings(vec![spec(&a)]);
        run(&s.workspace, &settings, false).await.0.unwrap();
        advance(&s.origins, "o", "a", "later.txt");
        settings
    }

    /// Plain git running `args` in the checkout runs the trap: the plant is live.
    fn control(s: &Setup, args: &[&str], marker: &Path) {
        let _ran = std::process::Command::new("git")
            .args(args)
            .current_dir(s.workspace.join("a"))
            .output()
            .unwrap();
        assert!(marker.exists(), "the plant does not work on plain git");
        std::fs::remove_file(marker).unwrap();
    }

    /// The next session's runner does its git in the checkout: the trap must not run, and
    /// the checkout is left as the agent made it, naming what it refused.
    async fn check_refused(s: &Setup, settings: &WorkspaceSettings, marker: &Path, key: &str) {
        let (prepared, said) = run(&s.workspace, settings, false).await;
        assert!(!marker.exists(), "the runner's git ran the agent's command");
        let result = &prepared.unwrap().repos[0].result;
        assert!(
            matches!(result, RepoResult::LeftAlone(why) if why.contains(key)),
            "{result:?}: {said:?}"
        );
        assert!(!s.workspace.join("a/later.txt").exists());
    }

    #[tokio::test]
    async fn an_fsmonitor_planted_in_the_repository() {
        let s = setup();
        let settings = cloned(&s).await;
        let (script, marker) = trap(&s, "fsmonitor");
        git(
            &s.workspace.join("a"),
            &["config", "core.fsmonitor", &script.to_string_lossy()],
        );
        control(&s, &["status"], &marker);
        check_refused(&s, &settings, &marker, "core.fsmonitor").await;
    }

    #[tokio::test]
    async fn a_configuration_too_large_to_check_is_refused_with_bounded_reading() {
        let s = setup();
        let settings = cloned(&s).await;
        // Harmless keys, but more of them than the runner reads: it cannot check them
        // all, so it leaves the checkout alone.
        let config = s.workspace.join("a/.git/config");
        let mut text = std::fs::read_to_string(&config).unwrap();
        for n in 0..80_000 {
            text.push_str(&format!("[branch \"b{n:06}\"]\n\tmerge = refs/heads/b\n"));
        }
        std::fs::write(&config, text).unwrap();
        let (prepared, said) = run(&s.workspace, &settings, false).await;
        let result = &prepared.unwrap().repos[0].result;
        assert!(
            matches!(result, RepoResult::LeftAlone(why) if why.contains("more than 1048576 bytes")),
            "{result:?}: {said:?}"
        );
    }

    #[tokio::test]
    async fn a_hooks_path_planted_in_the_repository() {
        let s = setup();
        let settings = cloned(&s).await;
        let (script, marker) = trap(&s, "hooks");
        let hooks = s.dir.path().join("hooks");
        std::fs::create_dir_all(&hooks).unwrap();
        for hook in ["reference-transaction", "post-checkout"] {
            std::fs::copy(&script, hooks.join(hook)).unwrap();
        }
        git(
            &s.workspace.join("a"),
            &["config", "core.hooksPath", &hooks.to_string_lossy()],
        );
        control(&s, &["checkout", "-q", "-B", "main"], &marker);
        check_refused(&s, &settings, &marker, "core.hookspath").await;
    }

    #[tokio::test]
    async fn a_filter_planted_in_the_repository() {
        let s = setup();
        let settings = cloned(&s).await;
        let (script, marker) = trap(&s, "filter");
        let checkout = s.workspace.join("a");
        std::fs::write(checkout.join(".git/info/attributes"), "* filter=evil\n").unwrap();
        git(
            &checkout,
            &["config", "filter.evil.clean", &script.to_string_lossy()],
        );
        // A touched file makes git run the clean filter to see whether it changed.
        std::fs::write(checkout.join("README.md"), "o/a\n").unwrap();
        control(&s, &["status"], &marker);
        std::fs::write(checkout.join("README.md"), "o/a\n").unwrap();
        check_refused(&s, &settings, &marker, "filter.evil.clean").await;
    }

    #[tokio::test]
    async fn an_instead_of_planted_in_the_repository() {
        let s = setup();
        let settings = cloned(&s).await;
        let (script, marker) = trap(&s, "insteadof");
        let helper = format!("ext::{}", script.display());
        let origin_url = settings.repos[0].input.url.clone();
        git(
            &s.workspace.join("a"),
            &["config", &format!("url.{helper}.insteadOf"), &origin_url],
        );
        control(
            &s,
            &["-c", "protocol.ext.allow=always", "fetch", "origin"],
            &marker,
        );
        check_refused(&s, &settings, &marker, "insteadof").await;
    }

    #[tokio::test]
    async fn hooks_in_the_repository_and_a_global_configuration_are_ignored() {
        let s = setup();
        let mut settings = cloned(&s).await;
        let (script, marker) = trap(&s, "hook");
        let checkout = s.workspace.join("a");
        for hook in ["reference-transaction", "post-checkout"] {
            std::fs::copy(&script, checkout.join(".git/hooks").join(hook)).unwrap();
        }
        control(&s, &["checkout", "-q", "-B", "main"], &marker);
        // The agent's home: a global configuration the runner's git must not read.
        let home = s.dir.path().join("home");
        std::fs::create_dir_all(&home).unwrap();
        std::fs::write(
            home.join(".gitconfig"),
            format!("[core]\n\tfsmonitor = {}\n", script.display()),
        )
        .unwrap();
        settings
            .git
            .env
            .push((OsString::from("HOME"), home.into_os_string()));
        let (prepared, said) = run(&s.workspace, &settings, false).await;
        assert!(
            !marker.exists(),
            "the runner's git ran a hook or the home's configuration"
        );
        assert_eq!(
            prepared.unwrap().repos[0].result,
            RepoResult::Updated,
            "{said:?}"
        );
        assert!(checkout.join("later.txt").exists());
    }

    #[tokio::test]
    async fn a_branch_that_reads_as_an_option_on_the_clone_the_update_and_repo_added() {
        let s = setup();
        let (script, marker) = trap(&s, "upload-pack");
        let branch = format!("--upload-pack={}", script.display());
        // The clone.
        let a = origin(&s.origins, "o", "a");
        let mut injected = spec(&a);
        injected.input.branch = Some(branch.clone());
        let (prepared, said) = run(&s.workspace, &settings(vec![injected.clone()]), false).await;
        assert!(prepared.is_err(), "{said:?}");
        assert!(
            said.iter().any(|l| l.contains("not a branch name")),
            "{said:?}"
        );
        // The update of a checkout a first session made.
        let good = settings(vec![spec(&a)]);
        run(&s.workspace, &good, false).await.0.unwrap();
        let (prepared, said) = run(&s.workspace, &settings(vec![injected.clone()]), false).await;
        assert!(prepared.is_err(), "{said:?}");
        // A repository added while the session runs.
        let mut live = good.clone();
        let mut workspace = run(&s.workspace, &good, false).await.0.unwrap();
        injected.name = Some(String::from("added"));
        let (log, mut lines) = mpsc::unbounded_channel();
        let changed = apply(
            &s.workspace,
            &mut live,
            &mut workspace,
            Change::AddRepo(injected),
            &mut no_credentials(),
            &log,
        )
        .await;
        drop(log);
        assert!(!changed);
        let line = lines.recv().await.unwrap();
        assert!(line.contains("not a branch name"), "{line}");
        assert!(!marker.exists(), "git ran the option's command");
    }

    #[tokio::test]
    async fn a_url_that_reads_as_an_option_or_another_transport_is_refused() {
        let s = setup();
        let (script, marker) = trap(&s, "url");
        let mut github_only = settings(Vec::new());
        github_only.git.protocols = vec![String::from("https")];
        for url in [
            format!("--upload-pack={}", script.display()),
            format!("ext::{}", script.display()),
            String::from("http://127.0.0.1:1/o/r.git"),
            origin(&s.origins, "o", "local"),
        ] {
            let mut settings = github_only.clone();
            settings.repos = vec![spec(&url)];
            let (prepared, said) = run(&s.workspace, &settings, false).await;
            assert!(prepared.is_err(), "{url}: {said:?}");
            assert!(
                said.iter().any(|l| l.contains("starts with '-'")
                    || l.contains("the runner's git takes only https")),
                "{url}: {said:?}"
            );
        }
        assert!(!marker.exists());
    }

    #[tokio::test]
    async fn a_repository_removed_after_the_agent_planted_an_fsmonitor() {
        let s = setup();
        let a = origin(&s.origins, "o", "a");
        let b = origin(&s.origins, "o", "b");
        let mut live = settings(vec![spec(&a), spec(&b)]);
        let mut workspace = run(&s.workspace, &live, false).await.0.unwrap();
        let (script, marker) = trap(&s, "remove");
        let checkout = s.workspace.join("b");
        git(
            &checkout,
            &["config", "core.fsmonitor", &script.to_string_lossy()],
        );
        let (log, mut lines) = mpsc::unbounded_channel();
        let changed = apply(
            &s.workspace,
            &mut live,
            &mut workspace,
            Change::RemoveRepo(String::from("b")),
            &mut no_credentials(),
            &log,
        )
        .await;
        drop(log);
        assert!(changed);
        assert!(!marker.exists(), "the runner's git ran the agent's command");
        let line = lines.recv().await.unwrap();
        assert!(line.contains("kept on disk"), "{line}");
        assert!(
            checkout.exists(),
            "a checkout git could not look at was deleted"
        );
    }

    /// Applies `change` to the session, returning whether it changed and what it said.
    async fn change(
        s: &Setup,
        live: &mut WorkspaceSettings,
        workspace: &mut PreparedWorkspace,
        change: Change,
    ) -> (bool, Vec<String>) {
        let (log, mut lines) = mpsc::unbounded_channel();
        let changed = apply(
            &s.workspace,
            live,
            workspace,
            change,
            &mut no_credentials(),
            &log,
        )
        .await;
        drop(log);
        let mut said = Vec::new();
        while let Some(line) = lines.recv().await {
            said.push(line);
        }
        (changed, said)
    }

    #[tokio::test]
    async fn the_ag_ui_layout_keeps_checkouts_in_repos_and_a_removed_one_can_come_back() {
        let s = setup();
        let a = origin(&s.origins, "o", "a");
        let b = origin(&s.origins, "o", "b");
        let mut live = settings(vec![spec(&a)]);
        live.layout = CheckoutLayout::ReposFolder;
        let mut workspace = run(&s.workspace, &live, false).await.0.unwrap();
        assert_eq!(workspace.main, s.workspace.join("repos/a"));
        assert!(s.workspace.join("repos/a/README.md").exists());
        for _ in 0..2 {
            let (changed, said) =
                change(&s, &mut live, &mut workspace, Change::AddRepo(spec(&b))).await;
            assert!(changed, "{said:?}");
            assert!(s.workspace.join("repos/b/README.md").exists());
            let (changed, said) = change(
                &s,
                &mut live,
                &mut workspace,
                Change::RemoveRepo(String::from("b")),
            )
            .await;
            assert!(changed, "{said:?}");
            assert!(!s.workspace.join("repos/b").exists(), "{said:?}");
        }
    }

    /// As the AG-UI platform's runner has it, the user's uploads are a folder the agent
    /// can read.
    #[tokio::test]
    async fn the_ag_ui_layout_offers_the_uploads() {
        let s = setup();
        let mut live = settings(Vec::new());
        live.layout = CheckoutLayout::ReposFolder;
        let workspace = run(&s.workspace, &live, false).await.0.unwrap();
        assert_eq!(workspace.main, s.workspace);
        assert_eq!(
            workspace.extra,
            [
                s.workspace.join("artifacts"),
                s.workspace.join("file-uploads")
            ]
        );
        assert!(s.workspace.join("file-uploads").is_dir());
        // The WebSocket platform's has no uploads folder.
        let s = setup();
        let workspace = run(&s.workspace, &settings(Vec::new()), false)
            .await
            .0
            .unwrap();
        assert_eq!(workspace.main, s.workspace);
        assert_eq!(workspace.extra, [s.workspace.join("artifacts")]);
    }

    /// A repository of the session whose clone failed at the start (its origin was not
    /// there yet, or wanted the user's token) is cloned when asked for again, and stays
    /// one repository of the session.
    #[tokio::test]
    async fn a_repository_whose_first_clone_failed_is_cloned_when_asked_again() {
        let s = setup();
        let a = origin(&s.origins, "o", "a");
        let b = origin(&s.origins, "o", "b");
        let b_folder = PathBuf::from(b.trim_start_matches("file://"));
        let away = s.dir.path().join("away");
        std::fs::rename(&b_folder, &away).unwrap();
        let mut live = settings(vec![spec(&a), spec(&b)]);
        live.layout = CheckoutLayout::ReposFolder;
        let mut workspace = run(&s.workspace, &live, false).await.0.unwrap();
        assert!(matches!(workspace.repos[1].result, RepoResult::Failed(_)));
        std::fs::rename(&away, &b_folder).unwrap();
        let (changed, said) =
            change(&s, &mut live, &mut workspace, Change::AddRepo(spec(&b))).await;
        assert!(changed, "{said:?}");
        assert!(s.workspace.join("repos/b/README.md").exists());
        assert_eq!(live.repos.len(), 2);
        assert!(workspace.extra.contains(&s.workspace.join("repos/b")));
        let (changed, said) =
            change(&s, &mut live, &mut workspace, Change::AddRepo(spec(&b))).await;
        assert!(!changed);
        assert!(said[0].contains("already in the workspace"), "{said:?}");
    }

    /// Two repositories of one name from two owners: removing one renames the other in
    /// the session's list (its folder stays where it is), and removing that one then
    /// takes it out of the list too, so that it can be added again.
    #[tokio::test]
    async fn a_repository_is_removed_by_what_it_is_not_by_a_name_computed_again() {
        let s = setup();
        let main = origin(&s.origins, "o", "main");
        let first = origin(&s.origins, "o1", "app");
        let second = origin(&s.origins, "o2", "app");
        let mut live = settings(vec![spec(&main), spec(&first), spec(&second)]);
        live.layout = CheckoutLayout::ReposFolder;
        let mut workspace = run(&s.workspace, &live, false).await.0.unwrap();
        let names: Vec<&str> = workspace.repos.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["main", "o1-app", "o2-app"]);
        for name in ["o1-app", "o2-app"] {
            let (changed, said) = change(
                &s,
                &mut live,
                &mut workspace,
                Change::RemoveRepo(String::from(name)),
            )
            .await;
            assert!(changed, "{said:?}");
            assert!(!s.workspace.join("repos").join(name).exists(), "{said:?}");
        }
        assert_eq!(live.repos.len(), 1, "{:?}", live.repos);
        let (changed, said) = change(
            &s,
            &mut live,
            &mut workspace,
            Change::AddRepo(spec(&second)),
        )
        .await;
        assert!(changed, "{said:?}");
    }

    /// The agent swaps a checkout's folder, or the folder it is in, for a link: the
    /// runner's git neither clones into where the link leads nor removes what is there.
    #[tokio::test]
    async fn a_checkout_folder_the_agent_linked_elsewhere_is_neither_cloned_into_nor_removed() {
        let s = setup();
        let main = origin(&s.origins, "o", "main");
        let b = origin(&s.origins, "o", "b");
        let mut live = settings(vec![spec(&main)]);
        let mut workspace = run(&s.workspace, &live, false).await.0.unwrap();
        // The leaf: an empty folder elsewhere, which git would clone into.
        let elsewhere = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(elsewhere.path(), s.workspace.join("b")).unwrap();
        let (changed, said) =
            change(&s, &mut live, &mut workspace, Change::AddRepo(spec(&b))).await;
        assert!(!changed, "{said:?}");
        assert!(said.iter().any(|l| l.contains("symbolic link")), "{said:?}");
        assert_eq!(std::fs::read_dir(elsewhere.path()).unwrap().count(), 0);

        // The folder it is in: `repos` made a link to a folder holding a clean checkout
        // of the same name after the clone.
        let s = setup();
        let b = origin(&s.origins, "o", "b");
        let mut live = settings(vec![spec(&main), spec(&b)]);
        live.layout = CheckoutLayout::ReposFolder;
        let mut workspace = run(&s.workspace, &live, false).await.0.unwrap();
        let victim = tempfile::tempdir().unwrap();
        git(
            victim.path(),
            &[
                "clone",
                "-q",
                &b,
                &victim.path().join("b").to_string_lossy(),
            ],
        );
        let repos = s.workspace.join("repos");
        std::fs::rename(&repos, s.workspace.join("moved")).unwrap();
        std::os::unix::fs::symlink(victim.path(), &repos).unwrap();
        let (changed, said) = change(
            &s,
            &mut live,
            &mut workspace,
            Change::RemoveRepo(String::from("b")),
        )
        .await;
        assert!(!changed, "{said:?}");
        assert!(said.iter().any(|l| l.contains("symbolic link")), "{said:?}");
        assert!(
            victim.path().join("b/README.md").exists(),
            "the runner removed what the link led to"
        );
    }

    #[tokio::test]
    async fn a_repos_folder_the_agent_linked_elsewhere_gets_no_clone() {
        let s = setup();
        let b = origin(&s.origins, "o", "b");
        let mut live = settings(Vec::new());
        live.layout = CheckoutLayout::ReposFolder;
        let mut workspace = run(&s.workspace, &live, false).await.0.unwrap();
        let elsewhere = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(elsewhere.path(), s.workspace.join("repos")).unwrap();
        let (changed, said) =
            change(&s, &mut live, &mut workspace, Change::AddRepo(spec(&b))).await;
        assert!(!changed);
        assert!(
            said.iter().any(|line| line.contains("a symbolic link")),
            "{said:?}"
        );
        assert_eq!(std::fs::read_dir(elsewhere.path()).unwrap().count(), 0);
        // At the start, the same refusal fails the preparation.
        live.repos = vec![spec(&b)];
        let (prepared, _) = run(&s.workspace, &live, false).await;
        assert!(prepared.is_err());
        assert_eq!(std::fs::read_dir(elsewhere.path()).unwrap().count(), 0);
    }
}

/// The credential path, against a git smart-HTTP server that requires a token.
mod tokens {
    use super::*;

    const TOKEN: &str = "ghs_plantedHttpsToken0123456789abcdef";

    /// Whether the server saw no credential but git's empty one (`:` after a refusal).
    #[track_caller]
    fn assert_no_credential(server: &GitHttpServer) {
        assert_eq!(server.authorized_requests(), 0);
        for seen in server.credentials_seen() {
            assert_eq!(seen, "Basic Og==", "a credential went to the server");
        }
    }

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

    /// Settings for the TLS server: git trusts its certificate; its host is the GitHub
    /// token's when `listed`.
    fn for_server(server: &GitHttpServer, repo: &str, listed: bool) -> WorkspaceSettings {
        let mut settings = settings(vec![spec(&server.url(repo))]);
        if let Some(certificate) = server.certificate() {
            settings.git.env.push((
                OsString::from("GIT_SSL_CAINFO"),
                certificate.as_os_str().to_owned(),
            ));
        }
        if listed {
            settings.git.github_hosts = vec![server.host()];
        }
        settings
    }

    #[tokio::test]
    async fn the_token_reaches_its_host_and_nothing_in_the_workspace_or_the_log() {
        let s = setup();
        origin(&s.origins, "o", "a");
        let server = GitHttpServer::start_tls(&s.origins, "x-access-token", TOKEN)
            .await
            .unwrap();
        let settings = for_server(&server, "o/a.git", true);
        let mut credentials =
            Credentials::new(Some(Secret::new(TOKEN)), None, None, Redactor::default());
        let (prepared, said) = run_with(&s.workspace, &settings, false, &mut credentials).await;
        assert_eq!(
            prepared.unwrap().repos[0].result,
            RepoResult::Cloned,
            "{said:?}"
        );
        assert!(server.authorized_requests() > 0, "git never sent the token");
        assert!(!said.iter().any(|l| l.contains(TOKEN)), "{said:?}");
        let mut files = Vec::new();
        every_file(&s.workspace, &mut files);
        assert!(files.len() > 5, "the clone is empty");
        for (path, text) in files {
            assert!(!text.contains(TOKEN), "the token is in {}", path.display());
        }
        let remote = git(&s.workspace.join("a"), &["remote", "get-url", "origin"]);
        assert_eq!(remote.trim(), server.url("o/a.git"));
    }

    #[tokio::test]
    async fn a_host_the_token_is_not_for_gets_no_credential_and_the_user_is_told() {
        let s = setup();
        origin(&s.origins, "o", "a");
        let server = GitHttpServer::start_tls(&s.origins, "x-access-token", TOKEN)
            .await
            .unwrap();
        let settings = for_server(&server, "o/a.git", false);
        let mut credentials = Credentials::new(
            Some(Secret::new(TOKEN)),
            Some(Secret::new("glpat-planted-gitlab-token-0123")),
            None,
            Redactor::default(),
        );
        let (prepared, said) = run_with(&s.workspace, &settings, false, &mut credentials).await;
        assert!(prepared.is_err(), "the server requires a token: {said:?}");
        assert!(server.requests() > 0, "git never asked the server");
        assert_no_credential(&server);
        assert!(
            said.iter().any(|l| l.contains("cloned without a token")
                && l.contains("is not a host the tokens are for")),
            "{said:?}"
        );
    }

    #[tokio::test]
    async fn no_token_goes_over_plain_http_even_to_its_host() {
        let s = setup();
        origin(&s.origins, "o", "a");
        let server = GitHttpServer::start(&s.origins, "x-access-token", TOKEN)
            .await
            .unwrap();
        let mut settings = for_server(&server, "o/a.git", true);
        settings.git.protocols.push(String::from("http"));
        let mut credentials =
            Credentials::new(Some(Secret::new(TOKEN)), None, None, Redactor::default());
        let (prepared, said) = run_with(&s.workspace, &settings, false, &mut credentials).await;
        assert!(prepared.is_err(), "{said:?}");
        assert!(server.requests() > 0);
        assert_no_credential(&server);
    }

    /// Mints the test server's token, as the backend does.
    #[derive(Debug)]
    struct Minter(&'static str);

    impl TokenMinter for Minter {
        fn mint(&self) -> Pin<Box<dyn Future<Output = Result<Secret, String>> + Send + '_>> {
            Box::pin(async move { Ok(Secret::new(self.0)) })
        }
    }

    #[tokio::test]
    async fn a_minted_token_clones_and_is_scrubbed_from_then_on() {
        // No token shape: only learning it scrubs it.
        const MINTED: &str = "minted-by-the-backend-7f3a9c2e";
        let s = setup();
        origin(&s.origins, "o", "a");
        let server = GitHttpServer::start_tls(&s.origins, "x-access-token", MINTED)
            .await
            .unwrap();
        let settings = for_server(&server, "o/a.git", true);
        let redactor = Redactor::default();
        assert!(!redactor.finds(MINTED));
        let mut credentials =
            Credentials::new(None, None, Some(Arc::new(Minter(MINTED))), redactor.clone());
        let (prepared, said) = run_with(&s.workspace, &settings, false, &mut credentials).await;
        assert_eq!(
            prepared.unwrap().repos[0].result,
            RepoResult::Cloned,
            "{said:?}"
        );
        assert!(server.authorized_requests() > 0);
        assert!(
            redactor.finds(&format!("echo {MINTED}")),
            "the minted token is not scrubbed"
        );
    }
}
