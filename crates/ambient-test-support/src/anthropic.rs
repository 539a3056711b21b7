//! A mock of the Anthropic Messages API on loopback, for the real Claude Code CLI.
//!
//! It answers `POST /v1/messages` with a streamed reply chosen by a trigger word in the
//! conversation's last user message:
//!
//! - `MOCK_TOOL_BASH`: a `Bash` tool call (`echo hi`); once the tool result comes back,
//!   a text that quotes it;
//! - `MOCK_TOOL_ENV`: the same with `env`, to see what the agent's tools can read;
//! - `MOCK_TOOL_TOUCH`: the same with `touch mock_N.txt && echo created` (N the request's
//!   number), a command the CLI's default permissions do not allow;
//! - `MOCK_AGENT`: an `Agent` tool call whose subagent is asked `MOCK_SUBAGENT_TASK`,
//!   which it answers with [`SUBAGENT_REPLY`];
//! - `MOCK_AGENT_SLOW`: the same in the background, with a subagent asked `MOCK_SLOW`
//!   (a background task that runs for ten seconds);
//! - `MOCK_SLOW`: a long text, one word every 100 ms (a turn to interrupt);
//! - `MOCK_THINK`: a thinking block (`THOUGHT`, streamed in two pieces), then a text;
//! - `MOCK_ERR401` / `MOCK_ERR500`: that HTTP error, every time;
//! - anything else: `Hello from mock (turn N).`, N counting the user turns of the
//!   conversation (so a resumed conversation goes on counting).
//!
//! Every request body is kept, for tests that check what the CLI sent.
#![allow(clippy::unwrap_used, reason = "a test server fails loudly")]

use std::{
    convert::Infallible,
    ffi::OsString,
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{
    Router,
    body::{Body, Bytes},
    extract::State,
    http::{StatusCode, header},
    response::{IntoResponse, Response},
    routing::post,
};
use serde_json::{Value, json};

/// The mock; stops when dropped.
#[derive(Debug)]
pub struct MockAnthropic {
    url: String,
    requests: Arc<Mutex<Vec<Value>>>,
    _server: tokio_util::task::AbortOnDropHandle<()>,
}

impl MockAnthropic {
    /// Starts the mock on a free loopback port.
    pub async fn start() -> Self {
        let requests = Arc::new(Mutex::new(Vec::new()));
        let app = Router::new()
            .route("/v1/messages", post(messages))
            .with_state(requests.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let server = tokio::spawn(async move {
            let _served = axum::serve(listener, app).await;
        });
        Self {
            url,
            requests,
            _server: tokio_util::task::AbortOnDropHandle::new(server),
        }
    }

    /// The base URL, for `ANTHROPIC_BASE_URL`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The bodies of the requests so far.
    pub fn requests(&self) -> Vec<Value> {
        self.requests.lock().unwrap().clone()
    }

    /// The environment that sends a Claude CLI to this mock with [`API_KEY`], with `home`
    /// as its home and its scratch folder (never `/tmp`), and no retries.
    pub fn cli_environment(&self, home: &std::path::Path) -> Vec<(&'static str, OsString)> {
        vec![
            ("ANTHROPIC_BASE_URL", OsString::from(&self.url)),
            ("ANTHROPIC_API_KEY", OsString::from(API_KEY)),
            ("HOME", home.into()),
            ("CLAUDE_CONFIG_DIR", home.join(".claude").into()),
            ("CLAUDE_CODE_MAX_RETRIES", OsString::from("0")),
            ("IS_SANDBOX", OsString::from("1")),
            ("TMPDIR", home.into()),
            ("PATH", OsString::from("/usr/local/bin:/usr/bin:/bin")),
        ]
    }
}

/// The API key the tests give the CLI, shaped like a real one so that the runners'
/// scrubbing of it is tested.
pub const API_KEY: &str = "sk-ant-api03-planted-key-0123456789abcdefghij";

/// The text and tool results of the conversation's last user message (the CLI appends
/// `system` messages after it), and how many user turns there were.
fn last_user_turn(body: &Value) -> (String, Option<String>, usize) {
    let messages = body["messages"].as_array().cloned().unwrap_or_default();
    let user_turns = messages
        .iter()
        .filter(|m| m["role"] == "user" && !has_tool_result(m))
        .count();
    let Some(last) = messages.iter().rev().find(|m| m["role"] == "user") else {
        return (String::new(), None, user_turns);
    };
    let blocks = match &last["content"] {
        Value::String(text) => vec![json!({"type": "text", "text": text})],
        Value::Array(blocks) => blocks.clone(),
        _ => Vec::new(),
    };
    let text = blocks
        .iter()
        .filter(|b| b["type"] == "text")
        .filter_map(|b| b["text"].as_str())
        .filter(|t| !t.starts_with("<system-reminder>"))
        .collect::<Vec<_>>()
        .join("\n");
    let tool_result =
        blocks
            .iter()
            .find(|b| b["type"] == "tool_result")
            .map(|b| match &b["content"] {
                Value::String(text) => text.clone(),
                other => other
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|c| c["text"].as_str())
                    .collect::<Vec<_>>()
                    .join(""),
            });
    (text, tool_result, user_turns)
}

fn has_tool_result(message: &Value) -> bool {
    message["content"]
        .as_array()
        .is_some_and(|blocks| blocks.iter().any(|b| b["type"] == "tool_result"))
}

async fn messages(State(requests): State<Arc<Mutex<Vec<Value>>>>, body: Bytes) -> Response {
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let model = body["model"].as_str().unwrap_or("claude-mock").to_owned();
    let number = {
        let mut kept = requests.lock().unwrap();
        kept.push(body.clone());
        kept.len()
    };
    let (text, tool_result, turns) = last_user_turn(&body);
    let id = format!("msg_mock_{number:04}");
    if text.contains("MOCK_ERR401") {
        return error(
            StatusCode::UNAUTHORIZED,
            "authentication_error",
            "invalid x-api-key",
        );
    }
    if text.contains("MOCK_ERR500") {
        return error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "api_error",
            "Internal server error",
        );
    }
    let (blocks, stop_reason, delay) = if let Some(result) = tool_result {
        (
            vec![Block::Text(vec![format!(
                "The tool said: {}.",
                result.trim()
            )])],
            "end_turn",
            None,
        )
    } else if text.contains("MOCK_TOOL_BASH")
        || text.contains("MOCK_TOOL_ENV")
        || text.contains("MOCK_TOOL_TOUCH")
    {
        let command = if text.contains("MOCK_TOOL_ENV") {
            String::from("env")
        } else if text.contains("MOCK_TOOL_TOUCH") {
            format!("touch mock_{number}.txt && echo created")
        } else {
            String::from("echo hi")
        };
        let input = json!({"command": command, "description": "Run a command"}).to_string();
        (
            vec![
                Block::Text(vec![String::from("Let me run that.")]),
                Block::Tool {
                    id: format!("toolu_mock_{number:04}"),
                    name: String::from("Bash"),
                    input,
                },
            ],
            "tool_use",
            None,
        )
    } else if text.contains("MOCK_SUBAGENT_TASK") {
        (
            vec![Block::Text(vec![String::from(SUBAGENT_REPLY)])],
            "end_turn",
            None,
        )
    } else if text.contains("MOCK_AGENT") {
        // A slow one runs in the background, long enough to be stopped.
        let input = if text.contains("MOCK_AGENT_SLOW") {
            json!({
                "description": "Delegate a long story",
                "prompt": "MOCK_SLOW story for the parent",
                "subagent_type": "general-purpose",
                "run_in_background": true,
            })
        } else {
            json!({
                "description": "Delegate",
                "prompt": "MOCK_SUBAGENT_TASK",
                "subagent_type": "general-purpose",
            })
        }
        .to_string();
        (
            vec![Block::Tool {
                id: format!("toolu_mock_{number:04}"),
                name: String::from("Agent"),
                input,
            }],
            "tool_use",
            None,
        )
    } else if text.contains("MOCK_THINK") {
        let (first, second) = THOUGHT.split_at(THOUGHT.len() / 2);
        (
            vec![
                Block::Thinking(vec![first.to_owned(), second.to_owned()]),
                Block::Text(vec![String::from("Thought it through.")]),
            ],
            "end_turn",
            None,
        )
    } else if text.contains("MOCK_SLOW") {
        (
            vec![Block::Text(slow_answer())],
            "end_turn",
            Some(Duration::from_millis(100)),
        )
    } else {
        let reply = format!("Hello from mock (turn {turns}).");
        let words = reply.split_inclusive(' ').map(str::to_owned).collect();
        (vec![Block::Text(words)], "end_turn", None)
    };
    let events = stream_events(&id, &model, &blocks, stop_reason);
    let stream = futures_util::stream::unfold(
        (events.into_iter(), delay, 0_usize),
        |(mut events, delay, sent)| async move {
            let event = events.next()?;
            if let Some(pause) = delay
                && sent > 0
                && event.starts_with("event: content_block_delta")
            {
                tokio::time::sleep(pause).await;
            }
            Some((
                Ok::<_, Infallible>(Bytes::from(event)),
                (events, delay, sent + 1),
            ))
        },
    );
    (
        [(header::CONTENT_TYPE, "text/event-stream")],
        Body::from_stream(stream),
    )
        .into_response()
}

/// The answer to `MOCK_SLOW`: a hundred words, sent 100 ms apart.
pub fn slow_answer() -> Vec<String> {
    (1..=100).map(|i| format!("word{i} ")).collect()
}

/// The platform contract's prompts for a Claude runner against this API, with a
/// `MOCK_SLOW` story to interrupt.
pub fn contract_prompts() -> crate::platform::ContractPrompts {
    crate::platform::ContractPrompts {
        initial: String::from("Look at the repository"),
        messages: [
            String::from("first question"),
            String::from("second question"),
            String::from("third question"),
        ],
        long: Some(crate::platform::LongMessage {
            text: String::from("MOCK_SLOW story"),
            whole_answer_bytes: slow_answer().concat().len(),
        }),
    }
}

/// What the subagent `MOCK_AGENT` starts says.
pub const SUBAGENT_REPLY: &str = "Hello from the subagent.";

/// The reasoning `MOCK_THINK` streams before its answer.
pub const THOUGHT: &str = "The user wants me to think first, so I weigh it before I answer.";

enum Block {
    /// A text, in the pieces it streams as.
    Text(Vec<String>),
    /// A thinking block, in the pieces it streams as.
    Thinking(Vec<String>),
    /// A tool call with its input as JSON text.
    Tool {
        id: String,
        name: String,
        input: String,
    },
}

fn stream_events(id: &str, model: &str, blocks: &[Block], stop_reason: &str) -> Vec<String> {
    let event = |data: Value| {
        format!(
            "event: {}\ndata: {data}\n\n",
            data["type"].as_str().unwrap_or("message")
        )
    };
    let mut events = vec![event(json!({
        "type": "message_start",
        "message": {
            "id": id, "type": "message", "role": "assistant", "model": model, "content": [],
            "stop_reason": null, "stop_sequence": null,
            "usage": {"input_tokens": 12, "output_tokens": 1, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}
        }
    }))];
    for (index, block) in blocks.iter().enumerate() {
        match block {
            Block::Text(pieces) => {
                events.push(event(json!({"type": "content_block_start", "index": index, "content_block": {"type": "text", "text": ""}})));
                for piece in pieces {
                    events.push(event(json!({"type": "content_block_delta", "index": index, "delta": {"type": "text_delta", "text": piece}})));
                }
            }
            Block::Thinking(pieces) => {
                events.push(event(json!({"type": "content_block_start", "index": index, "content_block": {"type": "thinking", "thinking": "", "signature": ""}})));
                for piece in pieces {
                    events.push(event(json!({"type": "content_block_delta", "index": index, "delta": {"type": "thinking_delta", "thinking": piece}})));
                }
                events.push(event(json!({"type": "content_block_delta", "index": index, "delta": {"type": "signature_delta", "signature": "bW9jay1zaWduYXR1cmU="}})));
            }
            Block::Tool { id, name, input } => {
                events.push(event(json!({"type": "content_block_start", "index": index, "content_block": {"type": "tool_use", "id": id, "name": name, "input": {}}})));
                events.push(event(json!({"type": "content_block_delta", "index": index, "delta": {"type": "input_json_delta", "partial_json": input}})));
            }
        }
        events.push(event(json!({"type": "content_block_stop", "index": index})));
    }
    events.push(event(json!({
        "type": "message_delta",
        "delta": {"stop_reason": stop_reason, "stop_sequence": null},
        "usage": {"output_tokens": 12}
    })));
    events.push(event(json!({"type": "message_stop"})));
    events
}

fn error(status: StatusCode, kind: &str, message: &str) -> Response {
    let body = json!({"type": "error", "error": {"type": kind, "message": message}});
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}
