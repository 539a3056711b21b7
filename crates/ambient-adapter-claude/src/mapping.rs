//! The CLI's stdout lines, mapped to runner events.

use ambient_adapter::{Event, ModelCall, ResultPayload, TokenCounts};
use serde_json::Value;

use crate::tasks::{BackgroundTasks, TaskFolders};

/// What one stdout line means, beyond the events it becomes.
#[derive(Debug, Clone, PartialEq)]
pub enum Signal {
    /// Nothing the adapter acts on.
    None,
    /// A turn started (`system/init`), with the CLI's session id.
    TurnStarted {
        /// The CLI's session id.
        session_id: Option<String>,
    },
    /// A turn ended.
    TurnEnded {
        /// What the CLI reported.
        result: ResultPayload,
        /// The error text, when the turn failed.
        error: Option<String>,
        /// The turn was cut short by an interrupt.
        aborted: bool,
    },
    /// The CLI asks the adapter something and waits for the answer.
    Request {
        /// Its id, to answer with.
        request_id: String,
        /// What it asks (`can_use_tool`, …).
        subtype: String,
        /// The request whole (a tool's name and input, for `can_use_tool`).
        request: Value,
    },
    /// The CLI answered a request of the adapter's.
    Response {
        /// The request's id.
        request_id: String,
        /// The error, when it refused.
        error: Option<String>,
    },
}

/// Maps the CLI's stdout to runner events, remembering what spans lines (the message
/// being streamed, the tasks running in the background).
#[derive(Debug, Default)]
pub struct CliMapper {
    streaming: Option<String>,
    tasks: BackgroundTasks,
    /// The model call being streamed (from `message_start`), with its message's id: it is
    /// reported when its `message_delta` gives the answer's tokens.
    calling: Option<(String, ModelCall)>,
    /// The messages whose model call was reported, the latest few: a message's blocks
    /// come as several `assistant` lines, and the call is one.
    reported_calls: std::collections::VecDeque<String>,
}

/// Message ids remembered as reported (subagents' messages interleave with the main
/// agent's).
const CALLS_REMEMBERED: usize = 32;

/// The model call a message of the API reports (its `message` object, as `message_start`
/// and `assistant` lines carry it).
fn model_call(message: &Value) -> ModelCall {
    let tokens = message
        .get("usage")
        .map(TokenCounts::of)
        .unwrap_or_default();
    ModelCall {
        system: String::from("anthropic"),
        model: message
            .get("model")
            .and_then(Value::as_str)
            .map(str::to_owned),
        input_tokens: tokens.input,
        output_tokens: tokens.output,
    }
}

impl CliMapper {
    /// A mapper for a new process.
    pub fn new() -> Self {
        Self::default()
    }

    /// A mapper for a CLI whose background tasks write in `folders`.
    pub fn with_task_folders(folders: TaskFolders) -> Self {
        Self {
            tasks: BackgroundTasks::new(folders),
            ..Self::default()
        }
    }

    /// Whether background tasks (subagents) are still running.
    pub fn tasks_running(&self) -> bool {
        self.tasks.any_running()
    }

    /// The user stopped background task `id`: the events that says, if it ran.
    pub fn task_stopped(&mut self, id: &str) -> Vec<Event> {
        self.tasks.stopped(id)
    }

    /// The events one line becomes, and what it means for the turn.
    pub fn map(&mut self, line: &Value) -> (Vec<Event>, Signal) {
        let text = |key: &str| line.get(key).and_then(Value::as_str);
        // A subagent's messages name the tool call that started it.
        let parent = text("parent_tool_use_id").filter(|id| !id.is_empty());
        match (text("type"), parent) {
            // Its whole messages follow its streamed pieces, which are not relayed.
            (Some("stream_event"), Some(_)) => (Vec::new(), Signal::None),
            (Some("assistant"), Some(parent)) => {
                let mut events = self.call_of_assistant(line).into_iter().collect::<Vec<_>>();
                events.extend(assistant(line));
                (subagent(parent, events), Signal::None)
            }
            (Some("user"), Some(parent)) => (subagent(parent, user(line)), Signal::None),
            _ => self.main_agent(line),
        }
    }

    fn main_agent(&mut self, line: &Value) -> (Vec<Event>, Signal) {
        let text = |key: &str| line.get(key).and_then(Value::as_str);
        match text("type") {
            Some("system") => self.system(line),
            Some("stream_event") => (self.stream_event(line), Signal::None),
            Some("assistant") => {
                let mut events = self.call_of_assistant(line).into_iter().collect::<Vec<_>>();
                events.extend(assistant(line));
                (events, Signal::None)
            }
            Some("user") => (user(line), Signal::None),
            Some("result") => result(line),
            Some("control_request") => (
                Vec::new(),
                Signal::Request {
                    request_id: text("request_id").unwrap_or_default().to_owned(),
                    subtype: line
                        .pointer("/request/subtype")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_owned(),
                    request: line.get("request").cloned().unwrap_or(Value::Null),
                },
            ),
            Some("control_response") => {
                let response = line.get("response").unwrap_or(&Value::Null);
                let request_id = response
                    .get("request_id")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned();
                let error = (response.get("subtype").and_then(Value::as_str) == Some("error"))
                    .then(|| {
                        response
                            .get("error")
                            .and_then(Value::as_str)
                            .unwrap_or("refused")
                            .to_owned()
                    });
                (Vec::new(), Signal::Response { request_id, error })
            }
            // New kinds appear with every release; they are not errors.
            _ => (Vec::new(), Signal::None),
        }
    }

    fn system(&mut self, line: &Value) -> (Vec<Event>, Signal) {
        let field = |key: &str| line.get(key).and_then(Value::as_str).unwrap_or_default();
        match field("subtype") {
            "init" => {
                self.tasks.init(line);
                let failed: Vec<&str> = line
                    .get("mcp_servers")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter(|s| s.get("status").and_then(Value::as_str) == Some("failed"))
                    .filter_map(|s| s.get("name").and_then(Value::as_str))
                    .collect();
                let events = if failed.is_empty() {
                    Vec::new()
                } else {
                    vec![Event::Log(format!(
                        "MCP servers that failed to start: {}",
                        failed.join(", ")
                    ))]
                };
                let mut events = events;
                let servers: Vec<Value> = line
                    .get("mcp_servers")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(|server| {
                        let name = server.get("name")?.as_str()?;
                        let status = server
                            .get("status")
                            .and_then(Value::as_str)
                            .unwrap_or("unknown");
                        Some(serde_json::json!({"name": name, "status": status}))
                    })
                    .collect();
                events.push(Event::Report {
                    name: String::from("mcp_status"),
                    value: serde_json::json!({"totalCount": servers.len(), "servers": servers}),
                });
                let session_id = line
                    .get("session_id")
                    .and_then(Value::as_str)
                    .map(str::to_owned);
                (events, Signal::TurnStarted { session_id })
            }
            "api_retry" => {
                let number = |key: &str| line.get(key).map(Value::to_string).unwrap_or_default();
                // A refused connection has no HTTP status, and an error the CLI calls
                // `unknown`.
                let kind = Some(field("error")).filter(|e| !e.is_empty() && *e != "unknown");
                let failure = match (line.get("error_status").and_then(Value::as_u64), kind) {
                    (Some(status), Some(kind)) => format!("API error {status} ({kind})"),
                    (Some(status), None) => format!("API error {status}"),
                    (None, Some(kind)) => format!("API call failed ({kind})"),
                    (None, None) => String::from("API call failed"),
                };
                (
                    vec![Event::Log(format!(
                        "{failure}, retry {}/{} in {} ms",
                        number("attempt"),
                        number("max_retries"),
                        line.get("retry_delay_ms")
                            .and_then(Value::as_f64)
                            .map_or(0, |ms| ms.round() as u64),
                    ))],
                    Signal::None,
                )
            }
            subtype @ ("task_started" | "task_progress" | "task_notification" | "task_updated") => {
                (self.tasks.line(subtype, line), Signal::None)
            }
            _ => (Vec::new(), Signal::None),
        }
    }

    fn stream_event(&mut self, line: &Value) -> Vec<Event> {
        let Some(event) = line.get("event") else {
            return Vec::new();
        };
        match event.get("type").and_then(Value::as_str) {
            Some("message_start") => {
                self.streaming = event
                    .pointer("/message/id")
                    .and_then(Value::as_str)
                    .map(str::to_owned);
                if let (Some(id), Some(message)) = (&self.streaming, event.get("message")) {
                    self.calling = Some((id.clone(), model_call(message)));
                }
                Vec::new()
            }
            // The answer is in: its usage counts what it cost, in full.
            Some("message_delta") => {
                let Some((id, mut call)) = self.calling.take() else {
                    return Vec::new();
                };
                if let Some(usage) = event.get("usage") {
                    let tokens = TokenCounts::of(usage);
                    call.output_tokens = tokens.output.or(call.output_tokens);
                    call.input_tokens = tokens.input.or(call.input_tokens);
                }
                self.remember_call(id);
                vec![Event::ModelCall(call)]
            }
            Some("content_block_delta") => {
                let (Some(message), Some(text)) = (
                    &self.streaming,
                    event
                        .pointer("/delta/text")
                        .and_then(Value::as_str)
                        .filter(|_| {
                            event.pointer("/delta/type").and_then(Value::as_str)
                                == Some("text_delta")
                        }),
                ) else {
                    return Vec::new();
                };
                let index = event.get("index").and_then(Value::as_u64).unwrap_or(0);
                vec![Event::TextDelta {
                    stream: format!("{message}:{index}"),
                    data: text.to_owned(),
                }]
            }
            // Tool inputs are relayed whole from the `assistant` line.
            _ => Vec::new(),
        }
    }
}

impl CliMapper {
    /// The model call an `assistant` line reports, when its message's was not reported
    /// already (nor is being streamed, which reports it at its end). Without streamed
    /// events, its output tokens are what the API had counted when the message began.
    fn call_of_assistant(&mut self, line: &Value) -> Option<Event> {
        let message = line.get("message")?;
        let id = message.get("id").and_then(Value::as_str)?;
        // The CLI's own stand-in for an answer that never came (an API error): no call.
        if message.get("model").and_then(Value::as_str) == Some("<synthetic>") {
            return None;
        }
        let streamed = self
            .calling
            .as_ref()
            .is_some_and(|(calling, _)| calling == id);
        if streamed || self.reported_calls.iter().any(|reported| reported == id) {
            return None;
        }
        self.remember_call(id.to_owned());
        Some(Event::ModelCall(model_call(message)))
    }

    fn remember_call(&mut self, id: String) {
        self.reported_calls.push_back(id);
        while self.reported_calls.len() > CALLS_REMEMBERED {
            self.reported_calls.pop_front();
        }
    }
}

/// A subagent's events, marked with the tool call that started it; its log lines are the
/// session's.
fn subagent(parent: &str, events: Vec<Event>) -> Vec<Event> {
    events
        .into_iter()
        .map(|event| match event {
            Event::Log(_) => event,
            other => Event::Subagent {
                parent_tool_use_id: parent.to_owned(),
                event: Box::new(other),
            },
        })
        .collect()
}

/// `assistant`: one content block per line (text, tool use, thinking).
fn assistant(line: &Value) -> Vec<Event> {
    let mut events = Vec::new();
    if let Some(error) = line.get("error").and_then(Value::as_str) {
        events.push(Event::Log(format!("API error: {error}")));
    }
    for block in line
        .pointer("/message/content")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        match block.get("type").and_then(Value::as_str) {
            Some("text") => {
                if let Some(text) = block.get("text").and_then(Value::as_str) {
                    events.push(Event::Text(text.to_owned()));
                }
            }
            Some("tool_use") => events.push(Event::ToolUse {
                name: block
                    .get("name")
                    .and_then(Value::as_str)
                    .unwrap_or("unknown")
                    .to_owned(),
                input: block
                    .get("input")
                    .cloned()
                    .unwrap_or_else(|| Value::Object(serde_json::Map::new())),
                id: block.get("id").and_then(Value::as_str).map(str::to_owned),
            }),
            Some("thinking") => match block.get("thinking").and_then(Value::as_str) {
                Some(text) if !text.trim().is_empty() => {
                    events.push(Event::Thinking(text.to_owned()));
                }
                _ => events.push(Event::Log(String::from("Model is reasoning..."))),
            },
            // Encrypted by the API: there is nothing to show but that it happened.
            Some("redacted_thinking") => {
                events.push(Event::Log(String::from("Model is reasoning...")));
            }
            _ => {}
        }
    }
    events
}

/// `user`: tool results, and the CLI's note that a turn was interrupted.
fn user(line: &Value) -> Vec<Event> {
    let mut events = Vec::new();
    let content = line.pointer("/message/content");
    for block in content.and_then(Value::as_array).into_iter().flatten() {
        match block.get("type").and_then(Value::as_str) {
            Some("tool_result") => events.push(Event::ToolResult {
                tool_use_id: block
                    .get("tool_use_id")
                    .and_then(Value::as_str)
                    .map(str::to_owned),
                content: block.get("content").cloned().unwrap_or(Value::Null),
                is_error: block.get("is_error").and_then(Value::as_bool),
            }),
            Some("text")
                if block
                    .get("text")
                    .and_then(Value::as_str)
                    .is_some_and(|t| t.starts_with("[Request interrupted")) =>
            {
                events.push(Event::Log(String::from("interrupted")));
            }
            // A subagent's prompt, and other text the CLI feeds itself.
            _ => {}
        }
    }
    events
}

/// The subtype of a turn that failed on the API (the CLI says `success` with `is_error`).
pub const API_ERROR_SUBTYPE: &str = "error_api";

/// `result`: the end of a turn.
fn result(line: &Value) -> (Vec<Event>, Signal) {
    let text = |key: &str| line.get(key).and_then(Value::as_str).map(str::to_owned);
    let number = |key: &str| line.get(key).and_then(Value::as_u64);
    let is_error = line
        .get("is_error")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    // The CLI reports an API failure as a `success` with `is_error`: the status and the
    // result frame say what it was.
    let subtype = match text("subtype") {
        Some(subtype) if is_error && subtype == "success" => Some(String::from(API_ERROR_SUBTYPE)),
        other => other,
    };
    let payload = ResultPayload {
        subtype,
        duration_ms: number("duration_ms"),
        duration_api_ms: number("duration_api_ms"),
        is_error: Some(is_error),
        num_turns: number("num_turns"),
        session_id: text("session_id"),
        total_cost_usd: line.get("total_cost_usd").and_then(Value::as_f64),
        usage: line.get("usage").cloned(),
        result: text("result"),
    };
    // The SDK's order: the errors list, the result text, the subtype, the API status.
    let error = is_error.then(|| {
        let errors: Vec<&str> = line
            .get("errors")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        if !errors.is_empty() {
            errors.join("; ")
        } else if let Some(result) = text("result") {
            result
        } else if let Some(subtype) = text("subtype").filter(|s| s != "success") {
            subtype
        } else {
            format!(
                "API error {}",
                line.get("api_error_status")
                    .map(Value::to_string)
                    .unwrap_or_default()
            )
        }
    });
    let aborted = text("terminal_reason").as_deref() == Some("aborted_streaming");
    let mut events = Vec::new();
    let denials: Vec<&str> = line
        .get("permission_denials")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|d| d.get("tool_name").and_then(Value::as_str))
        .collect();
    if !denials.is_empty() {
        events.push(Event::Log(format!(
            "tools refused by the permission settings: {}",
            denials.join(", ")
        )));
    }
    (
        events,
        Signal::TurnEnded {
            result: payload,
            error,
            aborted,
        },
    )
}
