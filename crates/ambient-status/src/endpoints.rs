//! The backend URLs of one session (`platform-wire.md` §4.1).

use url::Url;

use crate::{Error, Result};

/// Where one session's runner-facing endpoints are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoints {
    /// The API base, e.g. `http://backend-service.ns.svc.cluster.local:8080/api`.
    pub api_base: Url,
    /// The project (namespace).
    pub project: String,
    /// The session name.
    pub session: String,
}

impl Endpoints {
    /// Endpoints under an explicit API base.
    pub fn new(
        api_base: &str,
        project: impl Into<String>,
        session: impl Into<String>,
    ) -> Result<Self> {
        let mut api_base = Url::parse(api_base).map_err(|_| Error::InvalidUrl {
            base: api_base.to_owned(),
        })?;
        if api_base.cannot_be_a_base() || !matches!(api_base.scheme(), "http" | "https") {
            return Err(Error::InvalidUrl {
                base: api_base.to_string(),
            });
        }
        api_base.set_query(None);
        Ok(Self {
            api_base,
            project: project.into(),
            session: session.into(),
        })
    }

    /// Endpoints derived from the WebSocket URL, the Python runner's way: `wss` becomes
    /// `https` and anything else `http`, the host and port are kept, the project and
    /// session are the segments after `projects` and `sessions`, and the API lives under
    /// `/api`. `None` when the URL has no such segments.
    pub fn from_websocket_url(ws_url: &str) -> Option<Self> {
        let url = Url::parse(ws_url).ok()?;
        let segments: Vec<&str> = url.path_segments()?.collect();
        let after = |name: &str| {
            segments
                .iter()
                .position(|s| *s == name)
                .and_then(|i| segments.get(i + 1))
                .filter(|s| !s.is_empty())
                .map(|s| (*s).to_owned())
        };
        let project = after("projects")?;
        let session = after("sessions")?;
        let scheme = if url.scheme() == "wss" {
            "https"
        } else {
            "http"
        };
        let host = url.host_str()?;
        let base = match url.port() {
            Some(port) => format!("{scheme}://{host}:{port}/api"),
            None => format!("{scheme}://{host}/api"),
        };
        Self::new(&base, project, session).ok()
    }

    fn join(&self, segments: &[&str]) -> Result<Url> {
        let mut url = self.api_base.clone();
        {
            let mut path = url.path_segments_mut().map_err(|()| Error::InvalidUrl {
                base: self.api_base.to_string(),
            })?;
            path.pop_if_empty();
            path.extend(segments);
        }
        Ok(url)
    }

    /// `{base}/projects/{p}/agentic-sessions/{s}/status`.
    pub fn status_url(&self) -> Result<Url> {
        self.join(&[
            "projects",
            &self.project,
            "agentic-sessions",
            &self.session,
            "status",
        ])
    }

    /// `{base}/projects/{p}/agentic-sessions/{name}`.
    pub fn session_url(&self, name: &str) -> Result<Url> {
        self.join(&["projects", &self.project, "agentic-sessions", name])
    }

    /// `{base}/projects/{p}/sessions/{s}/messages`.
    pub fn messages_url(&self) -> Result<Url> {
        self.join(&[
            "projects",
            &self.project,
            "sessions",
            &self.session,
            "messages",
        ])
    }

    /// `{base}/projects/{p}/agentic-sessions/{s}/github/token`.
    pub fn github_token_url(&self) -> Result<Url> {
        self.join(&[
            "projects",
            &self.project,
            "agentic-sessions",
            &self.session,
            "github",
            "token",
        ])
    }

    /// `ws(s)://…/api/projects/{p}/sessions/{s}/ws` under the same base.
    pub fn websocket_url(&self) -> Result<Url> {
        let mut url = self.join(&["projects", &self.project, "sessions", &self.session, "ws"])?;
        let scheme = if url.scheme() == "https" { "wss" } else { "ws" };
        url.set_scheme(scheme).map_err(|()| Error::InvalidUrl {
            base: self.api_base.to_string(),
        })?;
        Ok(url)
    }
}
