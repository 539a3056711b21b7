//! The claude-proxy adapter: drives the Claude Code CLI directly, with no Python in
//! between.
//!
//! One long-lived CLI process per session, spawned with stream-json in and out in the
//! session's working directory, the other folders as `--add-dir`:
//!
//! - [`ClaudeSettings`] holds what the configuration says and builds the argv (model,
//!   permission mode, tools, system prompt addition, MCP servers, setting sources, the
//!   session id chosen up front or `--resume`);
//! - [`CliMapper`] maps each stdout line to runner events (text, partial text, thinking,
//!   tool use and result, retries, background tasks, results);
//! - [`ClaudeAdapter`] runs the session: `initialize` first, user messages and
//!   interrupts written as they arrive, the turn count that decides when the session
//!   waits, and a bounded shutdown.

mod adapter;
mod mapping;
mod process;
mod settings;
mod tasks;

pub use adapter::{ClaudeAdapter, ClaudeError};
pub use ambient_process::{OutputLimits, ProcessError, RunAs};
pub use mapping::{API_ERROR_SUBTYPE, CliMapper, Signal};
pub use process::CliProcess;
pub use settings::{
    ClaudeSettings, Conversation, DEFAULT_ALLOWED_TOOLS, DEFAULT_MAX_RETRIES, SESSION_ANNOTATION,
    new_session_id,
};
pub use tasks::TaskFolders;

#[cfg(test)]
mod tests;
