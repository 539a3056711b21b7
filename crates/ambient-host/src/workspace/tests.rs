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
