//! The continuation rule, as every runner's end-to-end tests check it: a continuation
//! runs a new prompt, never the one its parent already ran, and never finishes having
//! done nothing (`ambient_host`'s prompt rule).
//!
//! A runner's test starts a backend with [`seeds`], and for each of [`CASES`] spawns its
//! runner with [`Case::vars`] inside [`Case::follow`], then calls [`Case::check`].
#![allow(clippy::unwrap_used, reason = "a failed step is a failed test")]

use ambient_local_backend::SessionSeed;
use serde_json::json;
use tokio::process::Child;

use crate::harness::{Backend, Finished, PROJECT, SESSION, transcript, until};

/// The session every case continues.
pub const PARENT: &str = "agentic-session-parent";
/// The prompt the parent ran, which its conversation holds.
pub const PARENT_PROMPT: &str = "say hello to the parent";
/// A prompt the parent never ran.
pub const NEW_PROMPT: &str = "now say hello to the child";
/// What the user says when the continuation waits for a message.
pub const FOLLOW_UP: &str = "and one more thing";

/// The parent, with its prompt in its spec, and the session that continues it.
pub fn seeds() -> [SessionSeed; 2] {
    [
        SessionSeed::new(PROJECT, PARENT).spec(json!({ "prompt": PARENT_PROMPT })),
        SessionSeed::new(PROJECT, SESSION),
    ]
}

/// One continuation: its mode and its prompt.
#[derive(Debug, Clone, Copy)]
pub struct Case {
    /// Whether the session is interactive.
    pub interactive: bool,
    /// Its `PROMPT`, if any.
    pub prompt: Option<&'static str>,
}

/// Batch and interactive, with a new prompt, the parent's own, and none.
pub const CASES: [Case; 6] = [
    Case {
        interactive: false,
        prompt: Some(NEW_PROMPT),
    },
    Case {
        interactive: false,
        prompt: Some(PARENT_PROMPT),
    },
    Case {
        interactive: false,
        prompt: None,
    },
    Case {
        interactive: true,
        prompt: Some(NEW_PROMPT),
    },
    Case {
        interactive: true,
        prompt: Some(PARENT_PROMPT),
    },
    Case {
        interactive: true,
        prompt: None,
    },
];

impl Case {
    /// The runner's settings for this case.
    pub fn vars(&self) -> Vec<(&'static str, &'static str)> {
        let mut vars = vec![
            ("PARENT_SESSION_ID", PARENT),
            (
                "INTERACTIVE",
                if self.interactive { "true" } else { "false" },
            ),
        ];
        if let Some(prompt) = self.prompt {
            vars.push(("PROMPT", prompt));
        }
        vars
    }

    /// Checks what the continuation did: it completed; it never ran the parent's prompt;
    /// a new prompt ran; without one it waited for a message (saying why, where it is a
    /// batch session) and answered it; and it did something in every case.
    #[track_caller]
    pub fn check(&self, finished: &Finished, lines: &[String]) {
        let context = format!("{self:?}: {lines:#?}\nstderr:\n{}", finished.stderr);
        assert_eq!(finished.code, Some(0), "{context}");
        assert!(
            !lines.contains(&format!("you: {PARENT_PROMPT}")),
            "the parent's prompt ran again: {context}"
        );
        let result_after = |line: &str| {
            lines
                .iter()
                .skip_while(|l| *l != line)
                .any(|l| l.starts_with("result:"))
        };
        let new = self.prompt == Some(NEW_PROMPT);
        if new {
            assert!(
                result_after(&format!("you: {NEW_PROMPT}")),
                "the new prompt did not run: {context}"
            );
        }
        if self.interactive || !new {
            assert!(
                result_after(&format!("you: {FOLLOW_UP}")),
                "the session did not take a message: {context}"
            );
        }
        let noted = lines
            .iter()
            .any(|l| l.contains("it waits for a message instead of finishing"));
        assert_eq!(noted, !self.interactive && !new, "{context}");
    }
}

impl Case {
    /// Runs the runner `spawn` starts for this case: a session with nothing to run gets
    /// [`FOLLOW_UP`] once the runner is connected, one that runs its prompt gets it when it
    /// waits; once it waits again, it gets the end of the session. Returns how it
    /// finished and the transcript.
    pub async fn follow(
        &self,
        env: &Backend,
        spawn: impl FnOnce() -> Child,
    ) -> (Finished, Vec<String>) {
        follow(env, spawn, self.prompt != Some(NEW_PROMPT)).await
    }
}

async fn follow(
    env: &Backend,
    spawn: impl FnOnce() -> Child,
    nothing_to_run: bool,
) -> (Finished, Vec<String>) {
    let mut watch = env.backend.watch(SESSION);
    let child = spawn();
    let mut followed_up = false;
    if nothing_to_run {
        // Nothing says an idle session is ready but its connection: the backend delivers
        // to the connections it has.
        env.backend.wait_for_connections(SESSION, 1).await.unwrap();
        env.post(json!({ "content": FOLLOW_UP })).await;
        followed_up = true;
    }
    loop {
        let message = until(&mut watch, |m| {
            m.kind == "agent.waiting"
                || ["session.completed", "session.failed"]
                    .iter()
                    .any(|end| m.payload["payload"] == json!(end))
        })
        .await;
        if message.kind != "agent.waiting" {
            break;
        }
        if followed_up {
            env.post(json!({"type": "end_session"})).await;
        } else {
            env.post(json!({ "content": FOLLOW_UP })).await;
            followed_up = true;
        }
    }
    let finished = env.finish(child).await;
    (finished, transcript(&env.backend).await)
}
