//! Git repositories for tests: bare origins with commits, made with the real git.

use std::{path::Path, process::Command};

/// Runs git in `cwd` with a fixed identity and `main` as the first branch; panics with
/// git's error when it fails (a test set-up step).
pub fn git(cwd: &Path, args: &[&str]) -> String {
    let output = Command::new("git")
        .args([
            "-c",
            "user.name=Test",
            "-c",
            "user.email=test@example.com",
            "-c",
            "init.defaultBranch=main",
        ])
        .args(args)
        .current_dir(cwd)
        .output()
        .unwrap_or_else(|error| panic!("git {args:?} could not start: {error}"));
    assert!(
        output.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// A bare repository `{root}/{owner}/{name}.git` whose `main` has one commit with a
/// `README.md` reading `{owner}/{name}`; returns its `file://` URL.
pub fn bare_repo(root: &Path, owner: &str, name: &str) -> String {
    let bare = root.join(owner).join(format!("{name}.git"));
    mkdir(&bare);
    git(&bare, &["init", "--bare", "-q"]);
    let work = working_copy(root, owner, name);
    mkdir(&work);
    git(&work, &["init", "-q"]);
    std::fs::write(work.join("README.md"), format!("{owner}/{name}\n"))
        .unwrap_or_else(|error| panic!("writing README.md: {error}"));
    git(&work, &["add", "."]);
    git(&work, &["commit", "-q", "-m", "first"]);
    git(&work, &["push", "-q", &bare.to_string_lossy(), "main"]);
    format!("file://{}", bare.display())
}

/// Adds a commit with a new `file` to the `main` of a repository made by [`bare_repo`].
pub fn advance(root: &Path, owner: &str, name: &str, file: &str) {
    let work = working_copy(root, owner, name);
    std::fs::write(work.join(file), "new\n")
        .unwrap_or_else(|error| panic!("writing {file}: {error}"));
    git(&work, &["add", "."]);
    git(&work, &["commit", "-q", "-m", "more"]);
    let bare = root.join(owner).join(format!("{name}.git"));
    git(&work, &["push", "-q", &bare.to_string_lossy(), "main"]);
}

fn working_copy(root: &Path, owner: &str, name: &str) -> std::path::PathBuf {
    root.join("work").join(owner).join(name)
}

fn mkdir(path: &Path) {
    std::fs::create_dir_all(path)
        .unwrap_or_else(|error| panic!("creating {}: {error}", path.display()));
}
