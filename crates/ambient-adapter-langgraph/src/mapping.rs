//! The LangGraph stream vocabulary, and its mapping to runner events.

use std::collections::{HashMap, HashSet};

use ambient_adapter::{Event, ModelCall, TokenCounts};
use serde_json::Value;

use ambient_sse::SseEvent;

/// The longest log line made from a node's update or a custom event.
const MAX_LOG_CHARS: usize = 500;

/// One event of a LangGraph run.
#[derive(Debug, Clone, PartialEq)]
pub struct GraphEvent {
    /// The stream mode: `metadata`, `values`, `updates`, `messages`, `custom`, `error`, …
    pub name: String,
    /// The subgraph namespace, outermost first; empty for the root graph.
    pub ns: Vec<String>,
    /// The event's data. Of a `messages` event (`[chunk, metadata]`), only the chunk's
    /// `type`, `id` and `content` are kept: one comes per token, and its metadata, larger
    /// than the token, is never read.
    pub data: Value,
}

/// The parts of a `messages` event the mapper reads, borrowed from the event's text; the
/// metadata is skipped without being built.
#[derive(serde::Deserialize)]
struct MessageChunk<'a> {
    #[serde(rename = "type", borrow, default)]
    kind: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow, default)]
    id: Option<std::borrow::Cow<'a, str>>,
    #[serde(default)]
    content: Value,
    /// `last` on a model's last chunk: the call is over.
    #[serde(borrow, default)]
    chunk_position: Option<std::borrow::Cow<'a, str>>,
    /// The call's token counts, where the model reports them (on its last chunks).
    #[serde(default)]
    usage_metadata: Option<Value>,
}

/// Of a `messages` event's metadata, the node that said it; the rest is skipped without
/// being built.
#[derive(serde::Deserialize)]
struct ChunkMetadata<'a> {
    #[serde(borrow, default)]
    langgraph_node: Option<std::borrow::Cow<'a, str>>,
    /// Who serves the model (`openai`, `anthropic`), as LangChain names it.
    #[serde(borrow, default)]
    ls_provider: Option<std::borrow::Cow<'a, str>>,
    /// The model.
    #[serde(borrow, default)]
    ls_model_name: Option<std::borrow::Cow<'a, str>>,
}

impl MessageChunk<'_> {
    fn into_data(self, metadata: ChunkMetadata<'_>) -> Value {
        let mut chunk = serde_json::Map::new();
        if let Some(kind) = self.kind {
            chunk.insert("type".into(), Value::String(kind.into_owned()));
        }
        if let Some(id) = self.id {
            chunk.insert("id".into(), Value::String(id.into_owned()));
        }
        chunk.insert("content".into(), self.content);
        let mut kept = serde_json::Map::new();
        if let Some(node) = metadata.langgraph_node {
            kept.insert("langgraph_node".into(), Value::String(node.into_owned()));
        }
        // A model's last chunk ends its call: what the call is reported with is kept.
        if self.chunk_position.as_deref() == Some("last") {
            chunk.insert("chunk_position".into(), Value::from("last"));
            if let Some(usage) = self.usage_metadata {
                chunk.insert("usage_metadata".into(), usage);
            }
            for (key, value) in [
                ("ls_provider", metadata.ls_provider),
                ("ls_model_name", metadata.ls_model_name),
            ] {
                if let Some(value) = value {
                    kept.insert(key.into(), Value::String(value.into_owned()));
                }
            }
        }
        let mut data = vec![Value::Object(chunk)];
        if !kept.is_empty() {
            data.push(Value::Object(kept));
        }
        Value::Array(data)
    }
}

impl GraphEvent {
    /// Reads a server-sent event (`event: updates|inner:…`, `data: {…}`); an error names
    /// the event whose data is not JSON.
    pub fn from_sse(event: &SseEvent) -> Result<Self, String> {
        let mut parts = event.event.split('|');
        let name = parts.next().unwrap_or_default().to_owned();
        let ns = parts.map(str::to_owned).collect();
        if name == "messages"
            && let Ok((chunk, metadata)) =
                serde_json::from_str::<(MessageChunk, ChunkMetadata)>(&event.data)
        {
            return Ok(Self {
                name,
                ns,
                data: chunk.into_data(metadata),
            });
        }
        let data = serde_json::from_str(&event.data).map_err(|error| {
            format!("the data of a `{}` event is not JSON: {error}", event.event)
        })?;
        Ok(Self { name, ns, data })
    }
}

/// A question the graph asked with `interrupt()`.
#[derive(Debug, Clone, PartialEq)]
pub struct Interrupt {
    /// Its id (the key of a resume map when several are pending).
    pub id: String,
    /// What the graph passed to `interrupt()`.
    pub value: Value,
}

impl Interrupt {
    /// An interrupt as the server lists it: `{"id", "value", …}`.
    pub fn from_server(interrupt: &Value) -> Self {
        Self {
            id: interrupt
                .get("id")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
            value: interrupt.get("value").cloned().unwrap_or(Value::Null),
        }
    }
}

/// How a run ended, as far as the stream tells.
#[derive(Debug, Clone, PartialEq)]
pub enum RunEnd {
    /// It finished.
    Completed,
    /// It stopped at one or more interrupts and waits for answers.
    Interrupted(Vec<Interrupt>),
    /// It failed; why.
    Failed(String),
}

/// Maps one run's events to runner events.
#[derive(Debug, Default)]
pub struct StreamMapper {
    /// Text streamed so far, per message id.
    streamed: HashMap<String, String>,
    /// Messages already relayed whole.
    relayed: HashSet<String>,
    interrupts: Vec<Interrupt>,
    error: Option<String>,
    run_id: Option<String>,
    /// The root graph's node at work now, as a step.
    step: Option<String>,
}

impl StreamMapper {
    /// A mapper for a new run.
    pub fn new() -> Self {
        Self::default()
    }

    /// The run's id, once `metadata` has told it.
    pub fn run_id(&self) -> Option<&str> {
        self.run_id.as_deref()
    }

    /// The runner events one graph event becomes.
    pub fn map(&mut self, event: &GraphEvent) -> Vec<Event> {
        match event.name.as_str() {
            "metadata" => {
                if let Some(id) = event.data.get("run_id").and_then(Value::as_str) {
                    self.run_id = Some(id.to_owned());
                }
                Vec::new()
            }
            "messages" => {
                let node = event
                    .data
                    .get(1)
                    .and_then(|metadata| metadata.get("langgraph_node"))
                    .and_then(Value::as_str)
                    .filter(|_| event.ns.is_empty());
                let mut events = node.map(|node| self.enter(node)).unwrap_or_default();
                events.extend(self.message_chunk(&event.data));
                events
            }
            "updates" => self.updates(&event.data, event.ns.is_empty()),
            "custom" => vec![Event::Log(shorten(&compact(&event.data)))],
            // The root graph's state; a subgraph's is its own business.
            "values" if event.ns.is_empty() => {
                let mut state = event.data.clone();
                if let Value::Object(values) = &mut state {
                    values.remove("__interrupt__");
                }
                vec![Event::State(state)]
            }
            "error" => {
                let kind = event
                    .data
                    .get("error")
                    .and_then(Value::as_str)
                    .unwrap_or("error");
                let message = event
                    .data
                    .get("message")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                let reason = format!("{kind}: {message}");
                self.error = Some(reason.clone());
                vec![Event::Log(format!("graph error: {reason}"))]
            }
            // Checkpoints and task records repeat what updates say.
            _ => Vec::new(),
        }
    }

    /// How the run ended, from what the stream said.
    pub fn end(&mut self) -> RunEnd {
        if let Some(error) = self.error.take() {
            return RunEnd::Failed(error);
        }
        if self.interrupts.is_empty() {
            RunEnd::Completed
        } else {
            RunEnd::Interrupted(std::mem::take(&mut self.interrupts))
        }
    }

    /// `messages` (mode `messages-tuple`): `[chunk, metadata]`; an AI chunk's text is a
    /// delta of the message it belongs to.
    fn message_chunk(&mut self, data: &Value) -> Vec<Event> {
        let Some(chunk) = data.get(0) else {
            return Vec::new();
        };
        let ends_call = chunk.get("chunk_position").and_then(Value::as_str) == Some("last");
        let call = ends_call.then(|| {
            let metadata = |key: &str| {
                data.pointer(&format!("/1/{key}"))
                    .and_then(Value::as_str)
                    .map(str::to_owned)
            };
            let tokens = chunk
                .get("usage_metadata")
                .map(TokenCounts::of)
                .unwrap_or_default();
            Event::ModelCall(ModelCall {
                system: metadata("ls_provider").unwrap_or_default(),
                model: metadata("ls_model_name"),
                input_tokens: tokens.input,
                output_tokens: tokens.output,
            })
        });
        let is_ai = matches!(
            chunk.get("type").and_then(Value::as_str),
            Some("AIMessageChunk" | "ai")
        );
        let mut events = Vec::new();
        if let (true, Some(id), Some(text)) = (
            is_ai,
            chunk.get("id").and_then(Value::as_str),
            chunk.get("content").and_then(Value::as_str),
        ) && !text.is_empty()
        {
            self.streamed
                .entry(id.to_owned())
                .or_default()
                .push_str(text);
            events.push(Event::TextDelta {
                stream: id.to_owned(),
                data: text.to_owned(),
            });
        }
        // The model's answer is whole: its call is reported after its last text.
        events.extend(call);
        events
    }

    /// The root graph's `node` is at work: its step begins (and the one before ends).
    fn enter(&mut self, node: &str) -> Vec<Event> {
        if self.step.as_deref() == Some(node) {
            return Vec::new();
        }
        let mut events = self.leave();
        self.step = Some(node.to_owned());
        events.push(Event::Step {
            name: node.to_owned(),
            finished: false,
        });
        events
    }

    /// The step at work ends.
    fn leave(&mut self) -> Vec<Event> {
        self.step
            .take()
            .map(|name| Event::Step {
                name,
                finished: true,
            })
            .into_iter()
            .collect()
    }

    /// `updates`: `{node: output}`, or `{"__interrupt__": [...]}`; a node of the root
    /// graph (`root`) is a step, which its update ends.
    fn updates(&mut self, data: &Value, root: bool) -> Vec<Event> {
        let Some(nodes) = data.as_object() else {
            return Vec::new();
        };
        let mut events = Vec::new();
        for (node, output) in nodes {
            if node == "__interrupt__" {
                // Asked when the run ends, when it is known how many wait at once.
                for interrupt in output.as_array().into_iter().flatten() {
                    self.interrupts.push(Interrupt::from_server(interrupt));
                }
                continue;
            }
            if root {
                events.extend(self.enter(node));
            }
            match output.get("messages").and_then(Value::as_array) {
                Some(messages) => {
                    for message in messages {
                        events.extend(self.message(message));
                    }
                }
                None => events.push(Event::Log(shorten(&format!("{node}: {}", compact(output))))),
            }
            if root {
                events.extend(self.leave());
            }
        }
        events
    }

    /// A whole message from a node's update.
    fn message(&mut self, message: &Value) -> Vec<Event> {
        let id = message
            .get("id")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        if !id.is_empty() && !self.relayed.insert(id.clone()) {
            return Vec::new();
        }
        let mut events = Vec::new();
        match message.get("type").and_then(Value::as_str) {
            Some("ai" | "AIMessage" | "AIMessageChunk") => {
                let text = text_of(message.get("content"));
                // A streamed message ends with its whole text, which closes the stream.
                let streamed = self.streamed.remove(&id);
                if !text.is_empty() || streamed.is_some() {
                    events.push(Event::Text(if text.is_empty() {
                        streamed.unwrap_or_default()
                    } else {
                        text
                    }));
                }
                for call in message
                    .get("tool_calls")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    events.push(Event::ToolUse {
                        name: call
                            .get("name")
                            .and_then(Value::as_str)
                            .unwrap_or("unknown")
                            .to_owned(),
                        input: call
                            .get("args")
                            .cloned()
                            .unwrap_or_else(|| Value::Object(serde_json::Map::new())),
                        id: call.get("id").and_then(Value::as_str).map(str::to_owned),
                    });
                }
            }
            Some("tool" | "ToolMessage") => events.push(Event::ToolResult {
                tool_use_id: message
                    .get("tool_call_id")
                    .and_then(Value::as_str)
                    .map(str::to_owned),
                content: message.get("content").cloned().unwrap_or(Value::Null),
                is_error: Some(message.get("status").and_then(Value::as_str) == Some("error")),
            }),
            // The user's own messages echo back in the state; the UI has them already.
            _ => {}
        }
        events
    }
}

impl Interrupt {
    /// What to show the user: the value's `question` (or `message`, or `prompt`) when it
    /// has one, else the whole value.
    pub fn question(&self) -> String {
        question(&self.value)
    }

    /// The question as the user sees it: its text, then the value's other fields, and,
    /// when `several` questions wait at once, its id (an answer may be a JSON object
    /// keyed by the ids, answering them all).
    pub fn shown(&self, several: bool) -> String {
        let mut shown = self.question();
        if let Value::Object(fields) = &self.value {
            let asked = ["question", "message", "prompt"]
                .into_iter()
                .find(|key| fields.get(*key).is_some_and(Value::is_string));
            let rest: serde_json::Map<String, Value> = fields
                .iter()
                .filter(|(key, _)| Some(key.as_str()) != asked)
                .map(|(key, value)| (key.clone(), value.clone()))
                .collect();
            if asked.is_some() && !rest.is_empty() {
                shown.push_str(&format!("\n{}", Value::Object(rest)));
            }
        }
        if several && !self.id.is_empty() {
            shown.push_str(&format!("\n(interrupt id: {})", self.id));
        }
        shown
    }
}

fn question(value: &Value) -> String {
    ["question", "message", "prompt"]
        .iter()
        .find_map(|key| value.get(*key).and_then(Value::as_str))
        .map_or_else(
            || value.as_str().map_or_else(|| compact(value), str::to_owned),
            str::to_owned,
        )
}

/// A message's text: a string, or the text parts of a list of content blocks.
fn text_of(content: Option<&Value>) -> String {
    match content {
        Some(Value::String(text)) => text.clone(),
        Some(Value::Array(blocks)) => blocks
            .iter()
            .filter_map(|b| b.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join(""),
        _ => String::new(),
    }
}

fn compact(value: &Value) -> String {
    value.to_string()
}

fn shorten(text: &str) -> String {
    if text.chars().count() <= MAX_LOG_CHARS {
        return text.to_owned();
    }
    let mut short: String = text.chars().take(MAX_LOG_CHARS).collect();
    short.push('…');
    short
}
