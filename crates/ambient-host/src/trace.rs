//! The session's trace, in OpenTelemetry's terms: one trace per session, with a span for
//! the workspace's preparation (one child per repository), each turn, each tool call and
//! each model call the framework reports, and the fronts' own (reconnects, status
//! writes), with the GenAI semantic conventions' attributes (`gen_ai.*`).
//!
//! Spans go to the process's tracer provider, which `ambient-cli` installs only when an
//! OTLP endpoint is set. With none, OpenTelemetry's tracer makes no span at all: the
//! session's root span is not recording, [`SessionTrace::trace_id`] is `None`, and
//! everything else here returns before it does any work.
//!
//! What goes into a span comes from events the host already scrubbed; the exporter
//! scrubs every attribute again on its way out (`ambient-cli`), so that no value reaches
//! the collector unredacted whatever its path.

use std::{borrow::Cow, collections::HashMap, sync::Arc, time::SystemTime};

use ambient_adapter::{Event, ModelCall};
use ambient_protocol::ResultPayload;
use opentelemetry::{
    Context,
    global::{self, BoxedTracer},
    metrics::{Counter, Histogram},
    trace::{Span as _, SpanKind, Status, TraceContextExt, Tracer as _, noop::NoopTracer},
};

pub use opentelemetry::KeyValue;

use crate::{Redactor, exit::SessionEnd};

/// The instrumentation scope of every span the runner makes.
pub const TRACER_NAME: &str = "ambient-runner";
/// Tool calls open at once in a turn that get a span; past it, a call gets none (an agent
/// that starts calls it never finishes must not grow the runner's memory).
const OPEN_TOOL_SPANS: usize = 256;
/// The longest string a span attribute of ours holds, in bytes: names and ids, which an
/// agent chooses, each cost this much at most in the export queue.
const ATTRIBUTE_BYTES: usize = 256;

/// Who the session is, on its root span.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TraceIdentity {
    /// The runner binary (`claude-runner`).
    pub runner: String,
    /// The framework it runs (`claude-agent-sdk`, `langgraph`).
    pub framework: String,
    /// The platform project (namespace) the session belongs to.
    pub project: Option<String>,
}

/// The session's root span, for the host and the fronts to hang their spans on. Cheap to
/// clone.
#[derive(Clone)]
pub struct SessionTrace {
    tracer: Arc<BoxedTracer>,
    root: Context,
    recording: bool,
    /// Scrubs what is clipped here (failure reasons), before the clip can cut a secret
    /// out of the exporter's reach.
    redactor: Redactor,
}

impl std::fmt::Debug for SessionTrace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionTrace")
            .field("trace_id", &self.trace_id())
            .finish_non_exhaustive()
    }
}

impl Default for SessionTrace {
    /// A trace that records nothing (a front's, before the host hands it the session's).
    fn default() -> Self {
        Self {
            tracer: Arc::new(BoxedTracer::new(Box::new(NoopTracer::new()))),
            root: Context::new(),
            recording: false,
            redactor: Redactor::default(),
        }
    }
}

impl SessionTrace {
    /// Starts the session's trace: its root span, named `session`.
    pub fn start(session_id: &str, identity: &TraceIdentity, redactor: Redactor) -> Self {
        let tracer = global::tracer(TRACER_NAME);
        let mut attributes = vec![
            text("ambient.session.id", session_id),
            text("ambient.runner.type", &identity.runner),
            text("gen_ai.agent.name", &identity.framework),
            KeyValue::new("gen_ai.operation.name", "invoke_agent"),
        ];
        if let Some(project) = &identity.project {
            attributes.push(text("ambient.project", project));
        }
        let span = tracer
            .span_builder("session")
            .with_kind(SpanKind::Internal)
            .with_attributes(attributes)
            .start_with_context(&tracer, &Context::new());
        let recording = span.is_recording();
        Self {
            tracer: Arc::new(tracer),
            root: Context::new().with_span(span),
            recording,
            redactor,
        }
    }

    /// The trace's id (32 hex digits), when the session is traced and exported.
    pub fn trace_id(&self) -> Option<String> {
        let span = self.root.span();
        let context = span.span_context();
        (self.recording && context.is_valid() && context.is_sampled())
            .then(|| context.trace_id().to_string())
    }

    /// Whether spans are recorded at all.
    pub fn is_recording(&self) -> bool {
        self.recording
    }

    /// Records a span of the session's that began at `started` and ends now: a
    /// reconnect, a status write. `error` marks it failed, with why.
    pub fn record(
        &self,
        name: &'static str,
        started: SystemTime,
        attributes: Vec<KeyValue>,
        error: Option<&str>,
    ) {
        if !self.recording {
            return;
        }
        let mut span = self.child(&self.root, name, Some(started), attributes);
        if let Some(error) = error {
            span.set_status(Status::error(self.scrubbed(error)));
        }
        span.end();
    }

    /// `text` scrubbed, then clipped.
    pub(crate) fn scrubbed(&self, text: &str) -> String {
        clip(&self.redactor.text(text)).into_owned()
    }

    /// A span under the session's root, open until the returned context's span ends.
    pub(crate) fn open(&self, name: &'static str, attributes: Vec<KeyValue>) -> Context {
        let span = self.child(&self.root, name, None, attributes);
        self.root.with_span(span)
    }

    fn child(
        &self,
        parent: &Context,
        name: impl Into<Cow<'static, str>>,
        started: Option<SystemTime>,
        attributes: Vec<KeyValue>,
    ) -> global::BoxedSpan {
        let mut builder = self
            .tracer
            .span_builder(name)
            .with_kind(SpanKind::Internal)
            .with_attributes(attributes);
        if let Some(started) = started {
            builder = builder.with_start_time(started);
        }
        builder.start_with_context(self.tracer.as_ref(), parent)
    }

    /// Ends the root span with how the session ended.
    pub(crate) fn end(&self, end: &SessionEnd) {
        if !self.recording {
            return;
        }
        let span = self.root.span();
        let label = match end {
            SessionEnd::Completed => "completed",
            SessionEnd::Failed { .. } => "failed",
            SessionEnd::TimedOut => "timed_out",
            SessionEnd::Stopped => "stopped",
            SessionEnd::BackendUnreachable { .. } => "backend_unreachable",
        };
        span.set_attribute(KeyValue::new("ambient.session.end", label));
        if let SessionEnd::Failed { reason } | SessionEnd::BackendUnreachable { reason } = end {
            span.set_status(Status::error(self.scrubbed(reason)));
        }
        span.end();
    }
}

/// Ends a span kept in a context, with its outcome.
pub(crate) fn finish(context: &Context, failed: Option<String>) {
    let span = context.span();
    if let Some(why) = failed {
        span.set_status(Status::error(why));
    }
    span.end();
}

/// A span for one repository of the workspace's preparation, under the span the
/// preparation runs in (the current context).
pub(crate) fn repository_span(name: &str) -> Context {
    let current = Context::current();
    if !current.span().is_recording() {
        return current;
    }
    let tracer = global::tracer(TRACER_NAME);
    let span = tracer
        .span_builder("workspace.repository")
        .with_kind(SpanKind::Internal)
        .with_attributes([text("ambient.repository.name", name)])
        .start_with_context(&tracer, &current);
    current.with_span(span)
}

/// The spans of the turns and their tool and model calls, from the session's scrubbed
/// events.
#[derive(Debug)]
pub(crate) struct TurnSpans {
    session: SessionTrace,
    turn: Option<OpenTurn>,
    turns: u64,
}

#[derive(Debug)]
struct OpenTurn {
    context: Context,
    /// Open tool calls by id (an empty id for a call the framework gave none).
    tools: HashMap<String, Context>,
    /// When the model was last handed the conversation: the turn's start or the last
    /// tool result, whichever came later. A framework reports a model call when its
    /// answer is in, so this is the call's start.
    model_since: SystemTime,
    /// The last model call's system and model, for the turn's own attributes.
    model: Option<ModelCall>,
}

impl TurnSpans {
    pub(crate) fn new(session: SessionTrace) -> Self {
        Self {
            session,
            turn: None,
            turns: 0,
        }
    }

    /// Follows one event of the adapter's, already scrubbed.
    pub(crate) fn event(&mut self, event: &Event) {
        if !self.session.recording {
            return;
        }
        match event {
            Event::TurnStarted => {
                self.end_turn(None);
                self.open_turn();
            }
            Event::TurnEnded { result, .. } => self.end_turn(Some(result)),
            Event::ToolUse { .. } | Event::ToolResult { .. } | Event::ModelCall(_) => {
                self.call(event, None);
            }
            Event::Subagent {
                parent_tool_use_id,
                event,
            } => self.call(event, Some(parent_tool_use_id)),
            _ => {}
        }
    }

    /// Ends what is still open: the session is over.
    pub(crate) fn close(&mut self) {
        self.end_turn(None);
    }

    fn open_turn(&mut self) {
        self.turns += 1;
        let attributes = vec![
            KeyValue::new(
                "ambient.turn.number",
                i64::try_from(self.turns).unwrap_or(i64::MAX),
            ),
            KeyValue::new("gen_ai.operation.name", "invoke_agent"),
        ];
        let context = self.session.open("turn", attributes);
        self.turn = Some(OpenTurn {
            context,
            tools: HashMap::new(),
            model_since: SystemTime::now(),
            model: None,
        });
    }

    /// A tool call's start or end, or a model call; under `parent`'s tool span for a
    /// subagent's.
    fn call(&mut self, event: &Event, parent: Option<&String>) {
        if self.turn.is_none() {
            // A framework that reports no turn start still has its calls traced.
            self.open_turn();
        }
        let Some(turn) = self.turn.as_mut() else {
            return;
        };
        let parent = parent
            .and_then(|id| turn.tools.get(id))
            .unwrap_or(&turn.context)
            .clone();
        match event {
            Event::ToolUse { name, id, .. } => {
                if turn.tools.len() >= OPEN_TOOL_SPANS {
                    return;
                }
                let mut attributes = vec![
                    KeyValue::new("gen_ai.operation.name", "execute_tool"),
                    text("gen_ai.tool.name", name),
                ];
                if let Some(id) = id {
                    attributes.push(text("gen_ai.tool.call.id", id));
                }
                let span = self.session.child(
                    &parent,
                    format!("execute_tool {}", clip(name)),
                    None,
                    attributes,
                );
                let key = id.clone().unwrap_or_default();
                if let Some(earlier) = turn.tools.insert(key, parent.with_span(span)) {
                    finish(&earlier, None);
                }
            }
            Event::ToolResult {
                tool_use_id,
                is_error,
                ..
            } => {
                let key = tool_use_id.clone().unwrap_or_default();
                if let Some(call) = turn.tools.remove(&key) {
                    let failed = (*is_error == Some(true)).then(|| "the tool failed".to_owned());
                    finish(&call, failed);
                }
                turn.model_since = SystemTime::now();
            }
            Event::ModelCall(call) => {
                let mut span = self.session.child(
                    &parent,
                    match &call.model {
                        Some(model) => format!("chat {}", clip(model)),
                        None => "chat".to_owned(),
                    },
                    Some(turn.model_since),
                    model_attributes(call, None),
                );
                span.set_attribute(KeyValue::new("gen_ai.operation.name", "chat"));
                span.end();
                turn.model_since = SystemTime::now();
                turn.model = Some(call.clone());
            }
            _ => {}
        }
    }

    fn end_turn(&mut self, result: Option<&ResultPayload>) {
        let Some(turn) = self.turn.take() else {
            return;
        };
        for call in turn.tools.values() {
            call.span()
                .set_attribute(KeyValue::new("ambient.tool.unfinished", true));
            finish(call, None);
        }
        let span = turn.context.span();
        let Some(result) = result else {
            span.set_attribute(KeyValue::new("ambient.turn.unfinished", true));
            span.end();
            return;
        };
        let model = turn.model.unwrap_or_default();
        span.set_attributes(model_attributes(&model, Some(result)));
        if let Some(subtype) = &result.subtype {
            span.set_attribute(text("ambient.turn.subtype", subtype));
        }
        if let Some(cost) = result.total_cost_usd.filter(|cost| cost.is_finite()) {
            span.set_attribute(KeyValue::new("ambient.turn.cost_usd", cost));
        }
        if result.is_error == Some(true) {
            let why = result.subtype.as_deref().unwrap_or("the turn failed");
            span.set_status(Status::error(clip(why).into_owned()));
        }
        span.end();
    }
}

/// The GenAI attributes of a model call, or of a turn (with its result's token counts).
fn model_attributes(call: &ModelCall, result: Option<&ResultPayload>) -> Vec<KeyValue> {
    let mut attributes = Vec::with_capacity(5);
    if !call.system.is_empty() {
        attributes.push(text("gen_ai.system", &call.system));
    }
    if let Some(model) = &call.model {
        attributes.push(text("gen_ai.request.model", model));
        attributes.push(text("gen_ai.response.model", model));
    }
    let (input, output) = match result {
        Some(result) => {
            let tokens = result.tokens();
            (tokens.input, tokens.output)
        }
        None => (call.input_tokens, call.output_tokens),
    };
    for (key, count) in [
        ("gen_ai.usage.input_tokens", input),
        ("gen_ai.usage.output_tokens", output),
    ] {
        if let Some(count) = count {
            attributes.push(KeyValue::new(key, i64::try_from(count).unwrap_or(i64::MAX)));
        }
    }
    attributes
}

/// A string attribute, clipped to [`ATTRIBUTE_BYTES`].
fn text(key: &'static str, value: &str) -> KeyValue {
    KeyValue::new(key, clip(value).into_owned())
}

fn clip(value: &str) -> Cow<'_, str> {
    if value.len() <= ATTRIBUTE_BYTES {
        return Cow::Borrowed(value);
    }
    let mut end = ATTRIBUTE_BYTES;
    while !value.is_char_boundary(end) {
        end -= 1;
    }
    Cow::Owned(format!("{}…", &value[..end]))
}

/// The session's figures as OpenTelemetry metrics (the WebSocket mode's counterpart of the
/// serve mode's `/metrics`): made through the process's meter provider, which
/// `ambient-cli` installs with the tracer provider only when an OTLP endpoint is set.
/// Off ([`SessionMetrics::default`]), it holds no instrument and every method returns at
/// once. Cheap to clone.
#[derive(Clone, Default)]
pub struct SessionMetrics {
    instruments: Option<Arc<Instruments>>,
}

struct Instruments {
    turns: Counter<u64>,
    tool_calls: Counter<u64>,
    tokens: Counter<u64>,
    cost: Counter<f64>,
    frames: Counter<u64>,
    reconnects: Counter<u64>,
    outbox: Histogram<u64>,
    relay_latency: Histogram<f64>,
}

impl std::fmt::Debug for SessionMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionMetrics")
            .field("on", &self.instruments.is_some())
            .finish()
    }
}

impl SessionMetrics {
    /// The session's metrics, on where its trace is recorded (the two are exported
    /// together).
    pub fn of(trace: &SessionTrace) -> Self {
        Self {
            instruments: trace.is_recording().then(|| Arc::new(Instruments::new())),
        }
    }

    /// Whether the figures are recorded at all.
    pub fn is_on(&self) -> bool {
        self.instruments.is_some()
    }
}

impl Instruments {
    fn new() -> Self {
        let meter = global::meter(TRACER_NAME);
        Self {
            turns: meter
                .u64_counter("ambient.turns")
                .with_description("Turns the agent ended")
                .build(),
            tool_calls: meter
                .u64_counter("ambient.tool_calls")
                .with_description("Tool calls the agent made")
                .build(),
            tokens: meter
                .u64_counter("gen_ai.client.token.usage")
                .with_unit("{token}")
                .with_description("Tokens of the turns, by gen_ai.token.type")
                .build(),
            cost: meter
                .f64_counter("ambient.cost")
                .with_unit("USD")
                .with_description("What the turns cost, as the framework reported it")
                .build(),
            frames: meter
                .u64_counter("ambient.frames_sent")
                .with_description("Frames handed to the backend's connection")
                .build(),
            reconnects: meter
                .u64_counter("ambient.reconnects")
                .with_description("Connections to the backend made again after a loss")
                .build(),
            outbox: meter
                .u64_histogram("ambient.outbox.depth")
                .with_unit("{frame}")
                .with_description("Frames not yet acknowledged, at each reconnect")
                .build(),
            relay_latency: meter
                .f64_histogram("ambient.relay.latency")
                .with_unit("s")
                .with_description("From a frame's queueing to the backend's echo of it (delivered)")
                .with_boundaries(vec![
                    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
                ])
                .build(),
        }
    }
}

impl SessionMetrics {
    /// Counts what an event of the adapter's says: a tool call, a turn's end with its
    /// tokens and cost.
    pub(crate) fn event(&self, event: &Event) {
        let Some(on) = &self.instruments else {
            return;
        };
        match event {
            Event::ToolUse { .. } => on.tool_calls.add(1, &[]),
            Event::Subagent { event, .. } => self.event(event),
            Event::TurnEnded { result, .. } => {
                on.turns.add(1, &[]);
                let tokens = result.tokens();
                for (kind, count) in [("input", tokens.input), ("output", tokens.output)] {
                    if let Some(count) = count {
                        on.tokens
                            .add(count, &[KeyValue::new("gen_ai.token.type", kind)]);
                    }
                }
                if let Some(cost) = result
                    .total_cost_usd
                    .filter(|cost| cost.is_finite() && *cost > 0.0)
                {
                    on.cost.add(cost, &[]);
                }
            }
            _ => {}
        }
    }

    /// `count` frames went to the backend's connection.
    pub fn frames_sent(&self, count: u64) {
        if let Some(on) = &self.instruments {
            on.frames.add(count, &[]);
        }
    }

    /// A frame was delivered, `took` after it was queued.
    pub fn relayed(&self, took: std::time::Duration) {
        if let Some(on) = &self.instruments {
            on.relay_latency.record(took.as_secs_f64(), &[]);
        }
    }

    /// The connection was made again, with `unacknowledged` frames to send again.
    pub fn reconnected(&self, unacknowledged: u64) {
        if let Some(on) = &self.instruments {
            on.reconnects.add(1, &[]);
            on.outbox.record(unacknowledged, &[]);
        }
    }
}
