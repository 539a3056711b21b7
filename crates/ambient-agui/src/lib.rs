//! The runner's events as AG-UI events, in the order the protocol requires.
//!
//! This is the first part of the AG-UI serve mode: the newer platform's runners are HTTP
//! servers that stream AG-UI events over SSE. [`AguiMapper`] turns the runner's
//! framework-neutral [`Event`]s of one run into [`AguiEvent`]s:
//!
//! - `RUN_STARTED` first, and `RUN_FINISHED` (or `RUN_ERROR`) last;
//! - streamed text as `TEXT_MESSAGE_START`, `TEXT_MESSAGE_CONTENT`… and
//!   `TEXT_MESSAGE_END`, a whole text as the three at once, never two messages open;
//! - a tool call as `TOOL_CALL_START`, `TOOL_CALL_ARGS`, `TOOL_CALL_END`, and its result
//!   as `TOOL_CALL_RESULT`;
//! - log lines as `CUSTOM` events named `log`;
//! - the model's reasoning as `REASONING_START`, `REASONING_MESSAGE_START`,
//!   `REASONING_MESSAGE_CONTENT`, `REASONING_MESSAGE_END` and `REASONING_END`;
//! - the agent's state (a LangGraph graph's values) as a `STATE_SNAPSHOT`, then
//!   `STATE_DELTA` JSON Patches;
//! - a question the agent waits on (a LangGraph interrupt) as the run's `interrupt`
//!   outcome.
//!
//! [`check_order`] states the ordering rules, for tests of any producer, and
//! [`ReplayBuffer`] numbers a run's events and keeps the last of them, so that a client
//! that reconnects with `Last-Event-ID` gets every event after it.

mod replay;
mod state;
mod transcript;

use std::collections::HashSet;

use ambient_protocol::{Event, Next, ResultPayload};
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use replay::{Numbered, ReplayBuffer, ReplayGap};
pub use state::diff as state_diff;
pub use transcript::Messages;
use transcript::Transcript;

/// One AG-UI event, serialised as the protocol's JSON (`type` in upper snake case, fields
/// in camel case). It reads back from that JSON too, so that a client (a test) can check
/// what it received with [`check_order`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AguiEvent {
    /// A run began.
    #[serde(rename_all = "camelCase")]
    RunStarted {
        /// The conversation.
        thread_id: String,
        /// This run.
        run_id: String,
    },
    /// A run ended.
    #[serde(rename_all = "camelCase")]
    RunFinished {
        /// The conversation.
        thread_id: String,
        /// This run.
        run_id: String,
        /// What the framework reported.
        #[serde(skip_serializing_if = "Option::is_none")]
        result: Option<Value>,
        /// `{"type": "success"}`, or `{"type": "interrupt", "interrupts": […]}`.
        #[serde(skip_serializing_if = "Option::is_none")]
        outcome: Option<Value>,
        /// The run's token usage, one entry per model (AG-UI's `TokenUsage`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        usage: Option<Vec<Value>>,
    },
    /// A run failed.
    RunError {
        /// Why.
        message: String,
    },
    /// A text message begins.
    #[serde(rename_all = "camelCase")]
    TextMessageStart {
        /// The message.
        message_id: String,
        /// Always `assistant`.
        role: Role,
        /// The subagent that says it, when not the main agent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        subagent_run_id: Option<String>,
    },
    /// A subagent starts (the first of its events in this run).
    #[serde(rename_all = "camelCase")]
    SubagentStarted {
        /// The subagent, as the events it says carry it.
        subagent_run_id: String,
        /// What kind of subagent.
        name: String,
        /// The tool call that started it.
        parent_tool_call_id: String,
    },
    /// A subagent's part of this run ends.
    #[serde(rename_all = "camelCase")]
    SubagentFinished {
        /// The subagent.
        subagent_run_id: String,
    },
    /// A piece of a text message.
    #[serde(rename_all = "camelCase")]
    TextMessageContent {
        /// The message.
        message_id: String,
        /// The piece (never empty).
        delta: String,
    },
    /// A text message ends.
    #[serde(rename_all = "camelCase")]
    TextMessageEnd {
        /// The message.
        message_id: String,
    },
    /// A tool call begins.
    #[serde(rename_all = "camelCase")]
    ToolCallStart {
        /// The call.
        tool_call_id: String,
        /// The tool.
        tool_call_name: String,
    },
    /// The call's arguments, as JSON text.
    #[serde(rename_all = "camelCase")]
    ToolCallArgs {
        /// The call.
        tool_call_id: String,
        /// A piece of the arguments' JSON.
        delta: String,
    },
    /// A tool call's arguments are complete.
    #[serde(rename_all = "camelCase")]
    ToolCallEnd {
        /// The call.
        tool_call_id: String,
    },
    /// A tool call's result.
    #[serde(rename_all = "camelCase")]
    ToolCallResult {
        /// The result's own message id.
        message_id: String,
        /// The call it answers.
        tool_call_id: String,
        /// The result, as text.
        content: String,
        /// Always `tool`.
        role: Role,
    },
    /// A span of reasoning opens.
    #[serde(rename_all = "camelCase")]
    ReasoningStart {
        /// The span's id.
        message_id: String,
    },
    /// A reasoning message opens.
    #[serde(rename_all = "camelCase")]
    ReasoningMessageStart {
        /// Its id.
        message_id: String,
        /// Always `reasoning`.
        role: Role,
    },
    /// A piece of a reasoning message.
    #[serde(rename_all = "camelCase")]
    ReasoningMessageContent {
        /// The message's id.
        message_id: String,
        /// The piece.
        delta: String,
    },
    /// A reasoning message closes.
    #[serde(rename_all = "camelCase")]
    ReasoningMessageEnd {
        /// Its id.
        message_id: String,
    },
    /// The span of reasoning closes.
    #[serde(rename_all = "camelCase")]
    ReasoningEnd {
        /// The span's id.
        message_id: String,
    },
    /// The agent's state, whole.
    StateSnapshot {
        /// The state.
        snapshot: Value,
    },
    /// A change to the agent's state, as a JSON Patch (RFC 6902) on the last one.
    StateDelta {
        /// The patch's operations.
        delta: Vec<Value>,
    },
    /// The conversation's messages this run owns: its user messages and what the agent
    /// said and did, in order. The platform's backend keeps a finished run as this.
    MessagesSnapshot {
        /// AG-UI messages (`user`, `assistant` with its `toolCalls`, `tool`).
        messages: Messages,
    },
    /// A named step of the run begins (a LangGraph node).
    #[serde(rename_all = "camelCase")]
    StepStarted {
        /// The step.
        step_name: String,
    },
    /// A named step of the run ends.
    #[serde(rename_all = "camelCase")]
    StepFinished {
        /// The step.
        step_name: String,
    },
    /// Anything else the agent reports.
    Custom {
        /// What it is (`log`).
        name: String,
        /// Its value.
        value: Value,
    },
}

/// Who a message is from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// The agent's own text.
    Assistant,
    /// A tool's result.
    Tool,
    /// The model's reasoning.
    Reasoning,
}

/// What answers a tool approval: `{"approved": true}`, or `false` with a reason the
/// agent is told.
pub fn approval_schema() -> Value {
    serde_json::json!({
        "type": "object",
        "properties": {
            "approved": {"type": "boolean", "description": "Whether the tool call may run, once."},
            "reason": {"type": "string", "description": "Why not, for the agent."}
        },
        "required": ["approved"]
    })
}

/// How a run ended, for [`AguiMapper::finish`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunEnd<'a> {
    /// The run completed, or stopped on a question it waits on.
    Completed,
    /// Whoever ran it stopped it (an interrupt); it did not fail.
    Cancelled,
    /// The run failed, for this reason.
    Failed(&'a str),
}

impl AguiEvent {
    /// The protocol's name for this event's type.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::RunStarted { .. } => "RUN_STARTED",
            Self::RunFinished { .. } => "RUN_FINISHED",
            Self::RunError { .. } => "RUN_ERROR",
            Self::TextMessageStart { .. } => "TEXT_MESSAGE_START",
            Self::SubagentStarted { .. } => "SUBAGENT_STARTED",
            Self::SubagentFinished { .. } => "SUBAGENT_FINISHED",
            Self::TextMessageContent { .. } => "TEXT_MESSAGE_CONTENT",
            Self::TextMessageEnd { .. } => "TEXT_MESSAGE_END",
            Self::ToolCallStart { .. } => "TOOL_CALL_START",
            Self::ToolCallArgs { .. } => "TOOL_CALL_ARGS",
            Self::ToolCallEnd { .. } => "TOOL_CALL_END",
            Self::ToolCallResult { .. } => "TOOL_CALL_RESULT",
            Self::ReasoningStart { .. } => "REASONING_START",
            Self::ReasoningMessageStart { .. } => "REASONING_MESSAGE_START",
            Self::ReasoningMessageContent { .. } => "REASONING_MESSAGE_CONTENT",
            Self::ReasoningMessageEnd { .. } => "REASONING_MESSAGE_END",
            Self::ReasoningEnd { .. } => "REASONING_END",
            Self::StateSnapshot { .. } => "STATE_SNAPSHOT",
            Self::StateDelta { .. } => "STATE_DELTA",
            Self::MessagesSnapshot { .. } => "MESSAGES_SNAPSHOT",
            Self::StepStarted { .. } => "STEP_STARTED",
            Self::StepFinished { .. } => "STEP_FINISHED",
            Self::Custom { .. } => "CUSTOM",
        }
    }
}

/// Maps one run's events to AG-UI events.
#[derive(Debug)]
pub struct AguiMapper {
    thread_id: String,
    run_id: String,
    /// The text message streaming now: the runner's stream id and the message id.
    open: Option<(String, String)>,
    /// Streams already closed by their whole text.
    closed: HashSet<String>,
    next_id: u64,
    /// Whether the agent asked a question it waits on.
    waiting: bool,
    /// The tool call the agent asks approval for, when that is its question.
    approval: Option<(String, String)>,
    /// The last whole text: the question, when the agent asks one.
    last_text: Option<String>,
    /// The agent's state as last sent, which the next delta patches.
    state: Option<Value>,
    /// The subagents started in this run, to finish with it.
    subagents: Vec<String>,
    /// The steps started and not finished, to finish with the run.
    steps: Vec<String>,
    /// The messages of the run's `MESSAGES_SNAPSHOT`.
    transcript: Transcript,
}

impl AguiMapper {
    /// A mapper for run `run_id` of thread `thread_id`.
    pub fn new(thread_id: impl Into<String>, run_id: impl Into<String>) -> Self {
        Self {
            thread_id: thread_id.into(),
            run_id: run_id.into(),
            open: None,
            closed: HashSet::new(),
            next_id: 0,
            waiting: false,
            approval: None,
            last_text: None,
            state: None,
            subagents: Vec::new(),
            steps: Vec::new(),
            transcript: Transcript::default(),
        }
    }

    /// The run's input messages (the user's, as the request gave them), which its
    /// `MESSAGES_SNAPSHOT` opens with.
    #[must_use]
    pub fn with_input_messages(mut self, messages: &[Value]) -> Self {
        self.transcript.set_input(messages);
        self
    }

    fn id(&mut self, what: &str) -> String {
        self.next_id += 1;
        format!("{}-{what}-{}", self.run_id, self.next_id)
    }

    /// The run's first event.
    pub fn start(&self) -> AguiEvent {
        AguiEvent::RunStarted {
            thread_id: self.thread_id.clone(),
            run_id: self.run_id.clone(),
        }
    }

    /// The AG-UI events one runner event becomes.
    pub fn map(&mut self, event: Event) -> Vec<AguiEvent> {
        match event {
            Event::TextDelta { stream, data } => {
                if data.is_empty() || self.closed.contains(&stream) {
                    return Vec::new();
                }
                let mut events = Vec::new();
                let message_id = match &self.open {
                    Some((open, id)) if *open == stream => id.clone(),
                    _ => {
                        events.extend(self.close_text());
                        let id = self.id("message");
                        self.open = Some((stream, id.clone()));
                        self.transcript.start_streaming(&id);
                        events.push(AguiEvent::TextMessageStart {
                            message_id: id.clone(),
                            role: Role::Assistant,
                            subagent_run_id: None,
                        });
                        id
                    }
                };
                self.transcript.stream(&data);
                events.push(AguiEvent::TextMessageContent {
                    message_id,
                    delta: data,
                });
                events
            }
            Event::Text(text) => {
                self.last_text = Some(text.clone());
                // A streamed text ends with its whole text: the stream's message closes.
                if let Some((stream, _)) = &self.open {
                    self.closed.insert(stream.clone());
                    return self.close_text();
                }
                if text.is_empty() {
                    return Vec::new();
                }
                let message_id = self.id("message");
                self.transcript.assistant(&message_id, &text, None);
                vec![
                    AguiEvent::TextMessageStart {
                        message_id: message_id.clone(),
                        role: Role::Assistant,
                        subagent_run_id: None,
                    },
                    AguiEvent::TextMessageContent {
                        message_id: message_id.clone(),
                        delta: text,
                    },
                    AguiEvent::TextMessageEnd { message_id },
                ]
            }
            Event::ToolUse { name, input, id } => {
                let mut events = self.close_text();
                let tool_call_id = id.unwrap_or_else(|| self.id("call"));
                let arguments = input.to_string();
                let message_id = self.id("calls");
                self.transcript
                    .tool_call(&message_id, &tool_call_id, &name, &arguments);
                events.push(AguiEvent::ToolCallStart {
                    tool_call_id: tool_call_id.clone(),
                    tool_call_name: name,
                });
                events.push(AguiEvent::ToolCallArgs {
                    tool_call_id: tool_call_id.clone(),
                    delta: arguments,
                });
                events.push(AguiEvent::ToolCallEnd { tool_call_id });
                events
            }
            Event::ToolResult {
                tool_use_id,
                content,
                ..
            } => {
                let mut events = self.close_text();
                let tool_call_id = tool_use_id.unwrap_or_else(|| self.id("call"));
                let content = match content {
                    Value::String(text) => text,
                    other => other.to_string(),
                };
                let message_id = self.id("result");
                self.transcript
                    .tool_result(&message_id, &tool_call_id, &content);
                events.push(AguiEvent::ToolCallResult {
                    message_id,
                    tool_call_id,
                    content,
                    role: Role::Tool,
                });
                events
            }
            Event::Thinking(text) => {
                let mut events = self.close_text();
                if text.is_empty() {
                    return events;
                }
                let span = self.id("reasoning");
                let message_id = self.id("thought");
                events.extend([
                    AguiEvent::ReasoningStart {
                        message_id: span.clone(),
                    },
                    AguiEvent::ReasoningMessageStart {
                        message_id: message_id.clone(),
                        role: Role::Reasoning,
                    },
                    AguiEvent::ReasoningMessageContent {
                        message_id: message_id.clone(),
                        delta: text,
                    },
                    AguiEvent::ReasoningMessageEnd { message_id },
                    AguiEvent::ReasoningEnd { message_id: span },
                ]);
                events
            }
            Event::Log(line) => vec![AguiEvent::Custom {
                name: String::from("log"),
                value: Value::String(line),
            }],
            // The question is the run's interrupt; the call is named there, not streamed.
            Event::ToolApproval {
                tool_call_id,
                tool,
                question,
                ..
            } => {
                self.waiting = true;
                self.approval = Some((tool_call_id, tool));
                let mut events = self.close_text();
                events.extend(self.map(Event::Text(question)));
                events
            }
            // A question asked where no turn ends: its text, and the run ends on it.
            Event::Question(text) => {
                self.waiting = true;
                let mut events = self.close_text();
                events.extend(self.map(Event::Text(text)));
                events
            }
            // A subagent's messages are its own, marked with the run the subagent is.
            Event::Subagent {
                parent_tool_use_id,
                event,
            } => self.subagent(parent_tool_use_id, *event),
            // The first state of a run goes whole, the rest as patches on it.
            Event::State(state) => {
                let event = match &self.state {
                    None => AguiEvent::StateSnapshot {
                        snapshot: state.clone(),
                    },
                    Some(last) => {
                        let delta = state::diff(last, &state);
                        if delta.is_empty() {
                            return Vec::new();
                        }
                        AguiEvent::StateDelta { delta }
                    }
                };
                self.state = Some(state);
                vec![event]
            }
            // A turn that ends on a question (LangGraph's interrupt) ends its run waiting.
            Event::TurnEnded {
                next: Next::Answer, ..
            } => {
                self.waiting = true;
                self.close_text()
            }
            Event::Step {
                name,
                finished: false,
            } => {
                self.steps.push(name.clone());
                vec![AguiEvent::StepStarted { step_name: name }]
            }
            // Only a step started in this run finishes in it.
            Event::Step {
                name,
                finished: true,
            } => match self.steps.iter().rposition(|open| *open == name) {
                Some(at) => {
                    self.steps.remove(at);
                    vec![AguiEvent::StepFinished { step_name: name }]
                }
                None => Vec::new(),
            },
            // Not part of the conversation: the front keeps it for its own routes.
            Event::Report { .. } => Vec::new(),
            Event::Notice { name, value } => vec![AguiEvent::Custom { name, value }],
            // The trace's, not the conversation's.
            Event::ModelCall(_) => Vec::new(),
            // The run's end is `finish`'s; a turn start is the run's start.
            Event::TurnStarted | Event::TurnEnded { .. } => self.close_text(),
        }
    }

    /// The run's last events: what is open is closed, then `RUN_FINISHED` with the result
    /// and its outcome (success, the questions the agent waits on, or cancelled), or
    /// `RUN_ERROR` for a failed run.
    pub fn finish(&mut self, result: Option<&ResultPayload>, end: RunEnd<'_>) -> Vec<AguiEvent> {
        let mut events = self.close_text();
        events.extend(
            self.steps
                .drain(..)
                .rev()
                .map(|step_name| AguiEvent::StepFinished { step_name }),
        );
        events.extend(
            self.subagents
                .drain(..)
                .map(|subagent_run_id| AguiEvent::SubagentFinished { subagent_run_id }),
        );
        // A run that stops to ask gives the agent's whole state first: the UI shows the
        // question against it, and a client that joined late has it.
        if self.waiting
            && end == RunEnd::Completed
            && let Some(state) = &self.state
        {
            events.push(AguiEvent::StateSnapshot {
                snapshot: state.clone(),
            });
        }
        events.push(AguiEvent::MessagesSnapshot {
            messages: self.transcript.take(&self.run_id),
        });
        let outcome = match end {
            RunEnd::Failed(message) => {
                events.push(AguiEvent::RunError {
                    message: message.to_owned(),
                });
                return events;
            }
            RunEnd::Cancelled => serde_json::json!({"type": "cancelled"}),
            RunEnd::Completed if !self.waiting => serde_json::json!({"type": "success"}),
            RunEnd::Completed if self.approval.is_some() => {
                let (tool_call_id, tool) = self.approval.take().unwrap_or_default();
                serde_json::json!({
                    "type": "interrupt",
                    "interrupts": [{
                        "id": self.id("interrupt"),
                        "reason": "tool_call",
                        "message": self.last_text.clone().unwrap_or_default(),
                        "toolCallId": tool_call_id,
                        "metadata": {"tool": tool},
                        "responseSchema": approval_schema(),
                    }],
                })
            }
            RunEnd::Completed => {
                let question = result
                    .and_then(|r| r.result.clone())
                    .or_else(|| self.last_text.clone())
                    .unwrap_or_default();
                serde_json::json!({
                    "type": "interrupt",
                    "interrupts": [{"id": self.id("interrupt"), "reason": "input_required", "message": question}],
                })
            }
        };
        events.push(AguiEvent::RunFinished {
            thread_id: self.thread_id.clone(),
            run_id: self.run_id.clone(),
            result: result.and_then(|r| serde_json::to_value(r).ok()),
            outcome: Some(outcome),
            usage: result.and_then(|r| r.usage.as_ref()).and_then(token_usage),
        });
        events
    }

    /// A subagent's event: its start first (once a run), then its text as a message of
    /// its own, or its tool calls and thinking as the main agent's are.
    fn subagent(&mut self, parent_tool_use_id: String, event: Event) -> Vec<AguiEvent> {
        let mut events = self.close_text();
        let subagent_run_id = format!("subagent-{parent_tool_use_id}");
        if !self.subagents.contains(&subagent_run_id) {
            self.subagents.push(subagent_run_id.clone());
            events.push(AguiEvent::SubagentStarted {
                subagent_run_id: subagent_run_id.clone(),
                name: String::from("subagent"),
                parent_tool_call_id: parent_tool_use_id,
            });
        }
        match event {
            Event::Text(text) if !text.is_empty() => {
                let message_id = self.id("message");
                self.transcript
                    .assistant(&message_id, &text, Some(&subagent_run_id));
                events.extend([
                    AguiEvent::TextMessageStart {
                        message_id: message_id.clone(),
                        role: Role::Assistant,
                        subagent_run_id: Some(subagent_run_id),
                    },
                    AguiEvent::TextMessageContent {
                        message_id: message_id.clone(),
                        delta: text,
                    },
                    AguiEvent::TextMessageEnd { message_id },
                ]);
            }
            // Streamed pieces are not relayed for a subagent: its whole text follows.
            Event::TextDelta { .. } | Event::Text(_) => {}
            other => events.extend(self.map(other)),
        }
        events
    }

    fn close_text(&mut self) -> Vec<AguiEvent> {
        self.transcript.close_streaming();
        match self.open.take() {
            Some((_, message_id)) => vec![AguiEvent::TextMessageEnd { message_id }],
            None => Vec::new(),
        }
    }
}

/// A framework's token counts as AG-UI's `TokenUsage` (one entry): Anthropic's
/// `input_tokens` with its cache reads and writes, which AG-UI counts as parts of the
/// input, or LangChain's `input_tokens`/`output_tokens`/`total_tokens`. `None` when the
/// usage names no count.
pub fn token_usage(usage: &Value) -> Option<Vec<Value>> {
    let ambient_protocol::status::TokenCounts {
        input,
        output,
        cache_read,
        cache_write,
    } = ambient_protocol::status::TokenCounts::of(usage);
    if input.is_none() && output.is_none() {
        return None;
    }
    let mut entry = serde_json::Map::new();
    let mut put = |key: &str, value: Option<u64>| {
        if let Some(value) = value {
            entry.insert(key.to_owned(), Value::from(value));
        }
    };
    put("inputTokens", input);
    put("outputTokens", output);
    put(
        "totalTokens",
        Some(input.unwrap_or(0).saturating_add(output.unwrap_or(0))),
    );
    put("cachedInputTokens", cache_read);
    put("cacheWriteInputTokens", cache_write);
    if let Some(model) = usage.get("model").and_then(Value::as_str) {
        entry.insert(String::from("model"), Value::String(model.to_owned()));
    }
    Some(vec![Value::Object(entry)])
}

/// Checks the protocol's ordering rules on one run's events: `RUN_STARTED` first and
/// once; `RUN_FINISHED` or `RUN_ERROR` last and once; text message and tool call events
/// only between their start and end, one text message open at a time; no tool result for
/// a call still open (a call of an earlier run, which stopped to ask whether it may run,
/// can have its result here). Names the first event that breaks a rule.
pub fn check_order(events: &[AguiEvent]) -> Result<(), String> {
    let Some(AguiEvent::RunStarted { .. }) = events.first() else {
        return Err(String::from("the first event is not RUN_STARTED"));
    };
    match events.last() {
        Some(AguiEvent::RunFinished { .. } | AguiEvent::RunError { .. }) => {}
        _ => {
            return Err(String::from(
                "the last event is not RUN_FINISHED or RUN_ERROR",
            ));
        }
    }
    let mut open_text: Option<&str> = None;
    let mut open_calls: HashSet<&str> = HashSet::new();
    for (index, event) in events.iter().enumerate() {
        let fail = |why: &str| Err(format!("event {index} ({}): {why}", event.kind()));
        let inner = index > 0 && index + 1 < events.len();
        match event {
            AguiEvent::RunStarted { .. } if index > 0 => return fail("a second RUN_STARTED"),
            AguiEvent::RunFinished { .. } | AguiEvent::RunError { .. } if inner => {
                return fail("the run ended before its last event");
            }
            AguiEvent::ReasoningMessageStart { .. } | AguiEvent::ReasoningStart { .. }
                if open_text.is_some() =>
            {
                return fail("reasoning starts while a text message is open");
            }
            AguiEvent::ReasoningMessageContent { delta, .. } if delta.is_empty() => {
                return fail("an empty delta");
            }
            AguiEvent::TextMessageStart { message_id, .. } => {
                if open_text.is_some() {
                    return fail("a text message starts while another is open");
                }
                open_text = Some(message_id);
            }
            AguiEvent::TextMessageContent { message_id, delta } => {
                if open_text != Some(message_id.as_str()) {
                    return fail("content for a text message that is not open");
                }
                if delta.is_empty() {
                    return fail("an empty delta");
                }
            }
            AguiEvent::TextMessageEnd { message_id } => {
                if open_text != Some(message_id.as_str()) {
                    return fail("the end of a text message that is not open");
                }
                open_text = None;
            }
            AguiEvent::ToolCallStart { tool_call_id, .. } if !open_calls.insert(tool_call_id) => {
                return fail("a tool call started twice");
            }
            AguiEvent::ToolCallArgs { tool_call_id, .. }
                if !open_calls.contains(tool_call_id.as_str()) =>
            {
                return fail("arguments for a tool call that is not open");
            }
            AguiEvent::ToolCallEnd { tool_call_id }
                if !open_calls.remove(tool_call_id.as_str()) =>
            {
                return fail("the end of a tool call that is not open");
            }
            // A call may have ended in an earlier run (one that stopped to ask whether it
            // may run): only a call still open here cannot have its result.
            AguiEvent::ToolCallResult { tool_call_id, .. }
                if open_calls.contains(tool_call_id.as_str()) =>
            {
                return fail("a result for a tool call that has not ended");
            }
            _ => {}
        }
    }
    if open_text.is_some() || !open_calls.is_empty() {
        return Err(String::from(
            "the run ended with a message or tool call open",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
