//! The framework-neutral events adapters emit, and their mapping to frames
//! (`design.md` §4).

use std::collections::HashMap;

use serde_json::Value;

use crate::{Outbound, Partial, ResultPayload, ToolResult};

/// Something an agent did that the user should see.
///
/// Adapters emit these; they never build frames. Lifecycle strings and the prompt echo are
/// the host's and the fronts', not an adapter's, so they are not events.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// A progress or log line.
    Log(String),
    /// A turn started.
    TurnStarted,
    /// A complete block of assistant text.
    Text(String),
    /// A piece of assistant text while it streams; the complete [`Event::Text`] follows.
    TextDelta {
        /// Identifies the text being streamed; deltas of one text share it.
        stream: String,
        /// The new piece.
        data: String,
    },
    /// A tool call.
    ToolUse {
        /// The tool's name.
        name: String,
        /// Its input, an object.
        input: Value,
        /// The framework's id for the call.
        id: Option<String>,
    },
    /// A tool call's result.
    ToolResult {
        /// The id of the call it answers.
        tool_use_id: Option<String>,
        /// A string, an array of content objects, or null.
        content: Value,
        /// Whether the tool failed.
        is_error: Option<bool>,
    },
    /// The model's reasoning before it answers (a thinking block), whole. The WebSocket
    /// shows it as a log line; the AG-UI serve mode as a reasoning message.
    Thinking(String),
    /// The agent asks the user this and waits for the answer, where no turn ends (the
    /// next of several questions, once one is answered). A question a turn ends on is
    /// that turn's [`Event::TurnEnded`] with [`Next::Answer`].
    Question(String),
    /// Something a subagent did (its text, thinking, tool calls and their results), started
    /// by the tool call `parent_tool_use_id`: shown apart from the main agent's, linked to
    /// that call.
    Subagent {
        /// The tool call that started the subagent.
        parent_tool_use_id: String,
        /// What it did.
        event: Box<Event>,
    },
    /// The agent asks the user whether a tool call may run, and waits for the answer (the
    /// next `Input::Message`: `allow`, or `deny` with a reason), mid-turn. The WebSocket
    /// shows `question` and waits; the AG-UI serve mode ends the run with an `interrupt`
    /// outcome of reason `tool_call`.
    ToolApproval {
        /// The call's id.
        tool_call_id: String,
        /// The tool.
        tool: String,
        /// What it would run with.
        input: Value,
        /// The question, in words: the tool, its input, and how to answer.
        question: String,
    },
    /// The end of a turn, with what the framework reported and what comes next.
    TurnEnded {
        /// What the framework reported.
        result: ResultPayload,
        /// Whose turn it is now.
        next: Next,
    },
    /// The agent's state as a whole after a step (a LangGraph graph's values). The
    /// WebSocket protocol has no frame for it; the AG-UI serve mode streams it as state
    /// snapshots and deltas.
    State(Value),
    /// A named step of the agent's work begins, or ends (a LangGraph node). The WebSocket
    /// protocol has no frame for it; the AG-UI serve mode streams `STEP_STARTED` and
    /// `STEP_FINISHED`.
    Step {
        /// The step (the node's name).
        name: String,
        /// Whether it ends (else it begins).
        finished: bool,
    },
    /// A fact about the agent that the platform's UI asks for apart from the
    /// conversation, the latest of each name standing: `mcp_status` (its MCP servers,
    /// `{"servers": [{name, status}], "totalCount"}`), `tasks` (its background tasks,
    /// `{"tasks": [{task_id, description, task_type, status, output_file, …}]}`),
    /// `task_output_roots` (the folders a task's `output_file` may be read in, a list of
    /// paths). Not part of any turn; the WebSocket protocol has no frame for it, and the
    /// serve mode answers `/mcp/status`, `/tasks` and `/tasks/{id}/output` with it.
    Report {
        /// What it is about.
        name: String,
        /// The fact.
        value: Value,
    },
    /// A notice of the framework's that the platform's UI knows by name, outside the
    /// conversation's messages: `task:started`, `task:progress` and `task:completed`
    /// (a background task's life, `{task_id, description, status, …}`). The serve mode
    /// streams it as an AG-UI `CUSTOM` event of that name; the WebSocket protocol has no
    /// frame for it.
    Notice {
        /// Its name.
        name: String,
        /// What it says.
        value: Value,
    },
    /// The framework called a model and reports it (its answer came back). Not shown to
    /// the user: neither protocol has a place for it; it becomes a span of the session's
    /// trace, with the GenAI attributes.
    ModelCall(ModelCall),
}

/// One call to a model, as the framework reports it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ModelCall {
    /// Who serves the model, in OpenTelemetry's `gen_ai.system` words (`anthropic`,
    /// `openai`, …).
    pub system: String,
    /// The model that answered, where the framework names it.
    pub model: Option<String>,
    /// Tokens of the prompt, cached ones included.
    pub input_tokens: Option<u64>,
    /// Tokens of the answer.
    pub output_tokens: Option<u64>,
}

/// What a log frame of the model's reasoning starts with, before its text.
pub const THINKING_PREFIX: &str = "Thinking: ";

/// What follows the end of a turn: the host tells the user to speak only when the agent
/// waits for them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// The agent is idle: in an interactive session the user speaks next.
    User,
    /// Another turn is already due (a message that arrived during this one, a task still
    /// running in the background): the user is not asked.
    Busy,
    /// The turn ended on a question (a human-in-the-loop interrupt) whose answer the agent
    /// waits for, in any mode.
    Answer,
}

impl Event {
    /// The end of a turn after which the agent is idle.
    pub fn turn_ended(result: ResultPayload) -> Self {
        Self::TurnEnded {
            result,
            next: Next::User,
        }
    }
}

/// Turns events into frames; it numbers the fragments of each streamed text.
#[derive(Debug, Default)]
pub struct EventMapper {
    next_fragment: HashMap<String, u32>,
}

impl EventMapper {
    /// A mapper with no stream open.
    pub fn new() -> Self {
        Self::default()
    }

    /// The frame an event becomes; none for the agent's state, which has no frame. Whether
    /// the agent then waits for the user (`agent.waiting`) is the host's to say.
    pub fn map(&mut self, event: Event) -> Option<Outbound> {
        let frame = match event {
            Event::Log(message) => Outbound::Log { message },
            Event::TurnStarted => {
                self.next_fragment.clear();
                Outbound::Running
            }
            Event::Text(text) => Outbound::TextBlock { text },
            Event::TextDelta { stream, data } => {
                let index = self.next_fragment.entry(stream.clone()).or_insert(0);
                let partial = Partial {
                    id: stream,
                    index: *index,
                    total: 0,
                    data,
                };
                *index += 1;
                Outbound::Partial(partial)
            }
            Event::ToolUse { name, input, id } => Outbound::ToolUse {
                tool: name,
                input,
                id,
            },
            Event::ToolResult {
                tool_use_id,
                content,
                is_error,
            } => Outbound::ToolResult(ToolResult {
                tool_use_id,
                content,
                is_error,
            }),
            Event::Question(text) | Event::ToolApproval { question: text, .. } => {
                Outbound::TextBlock { text }
            }
            Event::Thinking(text) => Outbound::Log {
                message: format!("{THINKING_PREFIX}{text}"),
            },
            Event::TurnEnded { result, .. } => {
                self.next_fragment.clear();
                Outbound::Result(result)
            }
            Event::State(_)
            | Event::Step { .. }
            | Event::Report { .. }
            | Event::Notice { .. }
            | Event::ModelCall(_) => {
                return None;
            }
            Event::Subagent {
                parent_tool_use_id,
                event,
            } => {
                let body = self.map(*event)?;
                match body {
                    Outbound::TextBlock { .. }
                    | Outbound::ToolUse { .. }
                    | Outbound::ToolResult(_) => Outbound::Subagent {
                        parent_tool_use_id,
                        body: Box::new(body),
                    },
                    // Logs, partials and the rest have no place for it.
                    other => other,
                }
            }
        };
        Some(frame)
    }
}
