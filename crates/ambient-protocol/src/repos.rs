//! `REPOS_JSON`: the session's repositories as the operator passes them (the JSON of the
//! custom resource's `spec.repos`).

use serde::{Deserialize, Serialize};

/// One repository of the session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepoSpec {
    /// The folder name; derived from the URL when absent.
    #[serde(default)]
    pub name: Option<String>,
    /// Where to clone from.
    pub input: RepoLocation,
    /// Where to push to, if anywhere.
    #[serde(default)]
    pub output: Option<RepoLocation>,
    /// The backend's record of what happened to it (pushed, abandoned, …); not read.
    #[serde(default)]
    pub status: Option<String>,
}

/// A repository URL and branch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepoLocation {
    /// The clone URL.
    pub url: String,
    /// The branch; `main` when absent (for an input), `sessions/{SESSION_ID}` (output).
    #[serde(default)]
    pub branch: Option<String>,
}

/// Parses `REPOS_JSON`; the empty string is no repositories.
pub fn parse_repos(json: &str) -> Result<Vec<RepoSpec>, serde_json::Error> {
    if json.trim().is_empty() {
        return Ok(Vec::new());
    }
    serde_json::from_str(json)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repos_parse_from_the_operator_form_and_name_what_is_wrong() {
        let repos = parse_repos(
            r#"[{"name":"a","input":{"url":"https://github.com/o/a.git","branch":"dev"},"output":{"url":"https://github.com/me/a.git"}},{"input":{"url":"https://github.com/o/b.git"}}]"#,
        )
        .unwrap();
        assert_eq!(repos.len(), 2);
        assert_eq!(repos[0].input.branch.as_deref(), Some("dev"));
        assert_eq!(repos[1].name, None);
        assert!(parse_repos("").unwrap().is_empty());
        let error = parse_repos(r#"[{"name":"a"}]"#).unwrap_err();
        assert!(
            error.to_string().contains("missing field `input`"),
            "{error}"
        );
        assert!(parse_repos("{").is_err());
    }
}
