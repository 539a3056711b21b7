//! The CLI's process: a JSON-lines child, plus the messages the CLI takes on stdin.

use std::ops::{Deref, DerefMut};

use ambient_process::{JsonLinesProcess, Launch, ProcessError};
use serde_json::{Value, json};

/// A running Claude Code CLI.
#[derive(Debug)]
pub struct CliProcess {
    process: JsonLinesProcess,
    next_request: u64,
}

impl Deref for CliProcess {
    type Target = JsonLinesProcess;

    fn deref(&self) -> &JsonLinesProcess {
        &self.process
    }
}

impl DerefMut for CliProcess {
    fn deref_mut(&mut self) -> &mut JsonLinesProcess {
        &mut self.process
    }
}

impl CliProcess {
    /// Starts the CLI (see [`JsonLinesProcess::spawn`]).
    pub fn spawn(launch: Launch<'_>) -> Result<Self, ProcessError> {
        Ok(Self {
            process: JsonLinesProcess::spawn(launch)?,
            next_request: 0,
        })
    }

    /// Sends a user message.
    pub fn send_user(&self, text: &str) -> bool {
        self.send(&json!({
            "type": "user",
            "message": {"role": "user", "content": text},
            "parent_tool_use_id": null,
            "session_id": "",
        }))
    }

    /// Sends a control request; returns its id.
    pub fn request(&mut self, request: &Value) -> String {
        self.next_request += 1;
        let id = format!("req_{}_runner", self.next_request);
        self.send(&json!({"type": "control_request", "request_id": id, "request": request}));
        id
    }

    /// Answers a request of the CLI's.
    pub fn answer(&self, request_id: &str, response: &Value) {
        self.send(&json!({
            "type": "control_response",
            "response": {"subtype": "success", "request_id": request_id, "response": response},
        }));
    }

    /// Answers a request of the CLI's that the adapter does not handle.
    pub fn refuse(&self, request_id: &str, why: &str) {
        self.send(&json!({
            "type": "control_response",
            "response": {"subtype": "error", "request_id": request_id, "error": why},
        }));
    }
}
