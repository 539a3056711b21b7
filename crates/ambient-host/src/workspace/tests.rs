//! Folder names and URLs.

use ambient_protocol::repos::{RepoLocation, RepoSpec};

use super::{clean_url, folder_names, https_origin};

fn repo(name: Option<&str>, url: &str) -> RepoSpec {
    RepoSpec {
        name: name.map(str::to_owned),
        input: RepoLocation {
            url: url.to_owned(),
            branch: None,
        },
        output: None,
        status: None,
    }
}

#[test]
fn folder_names_never_collide_or_escape_the_workspace() {
    let repos = [
        repo(None, "https://github.com/alpha/app.git"),
        repo(None, "https://github.com/beta/app.git"),
        repo(None, "https://github.com/alpha/lib"),
        repo(Some("../../etc"), "https://github.com/x/y.git"),
        repo(Some("lib"), "https://github.com/z/other.git"),
        repo(None, "git@github.com:gamma/tool.git"),
    ];
    // A configured name wins; a derived one that meets it takes its owner in front.
    assert_eq!(
        folder_names(&repos),
        ["alpha-app", "beta-app", "alpha-lib", "etc", "lib", "tool"]
    );
}

#[test]
fn urls_lose_their_credentials_and_name_their_host() {
    assert_eq!(
        clean_url("https://x-access-token:ghs_1@github.com/o/r.git"),
        "https://github.com/o/r.git"
    );
    assert_eq!(
        clean_url("https://github.com/o/r.git"),
        "https://github.com/o/r.git"
    );
    assert_eq!(clean_url("file:///tmp/r.git"), "file:///tmp/r.git");
    assert_eq!(
        https_origin("https://user:pw@gitlab.example.com:8443/o/r"),
        Some(String::from("https://gitlab.example.com:8443"))
    );
    assert_eq!(https_origin("git@github.com:o/r.git"), None);
    assert_eq!(https_origin("http://github.com/o/r.git"), None);
}

#[test]
fn the_workspace_is_handed_over_to_the_agents_user_and_nothing_a_link_leads_to() {
    #![allow(clippy::unwrap_used, reason = "a failed step is a failed test")]
    use std::os::unix::fs::MetadataExt as _;

    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("shadow"), "root's").unwrap();
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(root.path().join("repo/src/deep")).unwrap();
    std::fs::write(root.path().join("repo/src/deep/main.rs"), "fn main() {}").unwrap();
    std::os::unix::fs::symlink(outside.path(), root.path().join("repo/escape")).unwrap();
    std::os::unix::fs::symlink(outside.path().join("shadow"), root.path().join("shadow")).unwrap();
    let before = std::fs::metadata(outside.path().join("shadow")).unwrap();
    let folder_before = std::fs::metadata(outside.path()).unwrap();
    // As root (the tests' user in CI), to a user of its own; else to this user, which
    // changes nothing but still walks.
    let user = if nix::unistd::geteuid().is_root() {
        crate::config::AgentUser {
            uid: 4242,
            gid: 4242,
        }
    } else {
        crate::config::AgentUser {
            uid: nix::unistd::geteuid().as_raw(),
            gid: nix::unistd::getegid().as_raw(),
        }
    };
    super::hand_over(root.path(), user);
    for inside in ["repo", "repo/src/deep", "repo/src/deep/main.rs"] {
        let meta = std::fs::metadata(root.path().join(inside)).unwrap();
        assert_eq!((meta.uid(), meta.gid()), (user.uid, user.gid), "{inside}");
    }
    // The links themselves are the agent's; what they lead to is not.
    let link = std::fs::symlink_metadata(root.path().join("repo/escape")).unwrap();
    assert_eq!(link.uid(), user.uid);
    let after = std::fs::metadata(outside.path().join("shadow")).unwrap();
    assert_eq!((after.uid(), after.gid()), (before.uid(), before.gid()));
    let folder_after = std::fs::metadata(outside.path()).unwrap();
    assert_eq!(
        (folder_after.uid(), folder_after.gid()),
        (folder_before.uid(), folder_before.gid()),
        "the folder a link leads to changed owner"
    );
}
