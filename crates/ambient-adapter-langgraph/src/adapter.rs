//! The adapter: a session's conversation as runs on one LangGraph thread, on a server or
//! in the pod.

use std::{collections::VecDeque, time::Instant};

use ambient_adapter::{
    Adapter, CancellationToken, Event, Input, Inputs, Next, Outcome, ResultPayload, Session,
    SessionClosed, UserMessage,
};
use serde_json::{Map, Value, json};
use tracing::{info, warn};

use crate::{
    ClientError, Engine, GraphDriver, GraphEvent, Interrupt, LangGraphClient, LangGraphSettings,
    RunEnd, RunStatus, RunStream, StreamMapper,
    config::BusyPolicy,
    driver::{DriverError, DriverEvent, DriverSettings},
};

/// The annotation that keeps the session's thread, so that a continuation resumes it.
pub const THREAD_ANNOTATION: &str = "ambient-code.io/langgraph-thread-id";

/// How long cancelling a run on the server may take when the session is stopping.
const CANCEL_BOUND: std::time::Duration = std::time::Duration::from_secs(3);

/// What stops a LangGraph session.
#[derive(Debug, thiserror::Error)]
pub enum LangGraphError {
    /// The server could not be used.
    #[error("the LangGraph Server at {url}")]
    Server {
        /// The server.
        url: String,
        /// What went wrong.
        #[source]
        source: ClientError,
    },
    /// The in-pod driver failed.
    #[error(transparent)]
    Driver(#[from] DriverError),
    /// The graph's input cannot take the prompt as configured.
    #[error("{0}")]
    Input(String),
    /// The shell stopped reading.
    #[error(transparent)]
    Closed(#[from] SessionClosed),
}

/// Runs a session's workflow on a LangGraph Server, or in the pod with the driver.
#[derive(Debug)]
pub struct LangGraphAdapter {
    settings: LangGraphSettings,
    runtime: Runtime,
    runs: u64,
    /// The input field the prompt goes in, as the settings or the graph's input decide.
    prompt_field: String,
    /// The graph's output schema, when it has one: what a graph without messages answers.
    output_schema: Option<Value>,
    /// On a server: the assistant's id, which its schemas are read by.
    assistant_id: String,
}

/// Where runs go.
#[derive(Debug)]
enum Runtime {
    Server {
        client: LangGraphClient,
    },
    Driver {
        settings: DriverSettings,
        driver: Option<Box<GraphDriver>>,
    },
}

impl LangGraphAdapter {
    /// An adapter for these settings.
    pub fn new(settings: LangGraphSettings) -> Result<Self, LangGraphError> {
        let runtime = match &settings.engine {
            Engine::Server { url, api_key } => Runtime::Server {
                client: LangGraphClient::new(url, api_key.clone())
                    .map_err(|source| LangGraphError::Server {
                        url: url.clone(),
                        source,
                    })?
                    .with_max_event_bytes(settings.max_event_bytes)
                    .with_response_timeout(settings.response_timeout),
            },
            Engine::Driver(driver) => Runtime::Driver {
                settings: driver.clone(),
                driver: None,
            },
        };
        Ok(Self {
            settings,
            runtime,
            runs: 0,
            prompt_field: String::from(crate::config::MESSAGES),
            output_schema: None,
            assistant_id: String::new(),
        })
    }
}

fn server_error(url: &str, source: ClientError) -> LangGraphError {
    LangGraphError::Server {
        url: url.to_owned(),
        source,
    }
}

/// A run in progress, on either runtime.
enum ActiveRun<'a> {
    Server {
        stream: Box<RunStream>,
        client: &'a LangGraphClient,
        url: &'a str,
        thread: &'a str,
    },
    Driver {
        driver: &'a mut GraphDriver,
        status: Option<RunStatus>,
    },
}

impl ActiveRun<'_> {
    /// The next event; `None` once the run is over.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: both sources keep what they have read.
    async fn next(&mut self) -> Result<Option<GraphEvent>, LangGraphError> {
        match self {
            Self::Server { stream, url, .. } => {
                stream.next().await.map_err(|e| server_error(url, e))
            }
            Self::Driver { driver, status } => {
                if status.is_some() {
                    return Ok(None);
                }
                match driver.next().await? {
                    DriverEvent::Graph(event) => Ok(Some(event)),
                    DriverEvent::End(end) => {
                        *status = Some(end);
                        Ok(None)
                    }
                }
            }
        }
    }

    /// Cancels the run, within a bound: a failure is logged, since the session goes on
    /// either way.
    async fn cancel(&mut self) {
        match self {
            Self::Server {
                stream,
                client,
                thread,
                ..
            } => {
                let Some(run) = stream.run_id() else {
                    warn!("the run cannot be cancelled: the server has not said its id");
                    return;
                };
                match tokio::time::timeout(CANCEL_BOUND, client.cancel_run(thread, run)).await {
                    Ok(Ok(())) => info!(%run, "run cancelled"),
                    Ok(Err(error)) => warn!(%run, %error, "cancelling the run failed"),
                    Err(_) => warn!(%run, "cancelling the run took too long"),
                }
            }
            Self::Driver { driver, .. } => driver.cancel(),
        }
    }

    /// How the run ended, once it has.
    fn status(&self) -> RunStatus {
        match self {
            Self::Server { stream, .. } => {
                let rejoins = stream.rejoins();
                if rejoins > 0 {
                    info!(rejoins, "the run's stream was rejoined");
                }
                stream.status().cloned().unwrap_or(RunStatus::Success)
            }
            Self::Driver { status, .. } => status.clone().unwrap_or(RunStatus::Success),
        }
    }
}

/// The questions a thread waits on, and the answers given so far.
#[derive(Debug, Default)]
struct Questions {
    pending: Vec<Interrupt>,
    answers: Vec<Value>,
}

/// What a user message does to a thread that waits on questions.
enum Answered {
    /// More questions remain.
    Partly { next: String },
    /// The run resumes with this value.
    Resume(Value),
}

impl Questions {
    fn waiting(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Takes `message` as the answer to the next question. A message that is a JSON object
    /// keyed by every pending interrupt id answers them all at once.
    fn answer(&mut self, message: &str) -> Answered {
        let value = answer_value(message);
        if self.pending.len() > 1
            && let Value::Object(map) = &value
            && self.pending.iter().all(|i| map.contains_key(&i.id))
        {
            self.pending.clear();
            self.answers.clear();
            return Answered::Resume(value);
        }
        self.answers.push(value);
        if self.answers.len() < self.pending.len() {
            return Answered::Partly {
                next: self.pending[self.answers.len()].shown(true),
            };
        }
        let pending = std::mem::take(&mut self.pending);
        let mut answers = std::mem::take(&mut self.answers);
        if pending.len() == 1 {
            return Answered::Resume(answers.pop().unwrap_or(Value::Null));
        }
        // Several at once: LangGraph takes a map keyed by the interrupt ids.
        let map: Map<String, Value> = pending.into_iter().map(|i| i.id).zip(answers).collect();
        Answered::Resume(Value::Object(map))
    }
}

/// A user's answer as the graph gets it: a JSON object or array when the message is one,
/// else the text.
fn answer_value(message: &str) -> Value {
    let trimmed = message.trim();
    if (trimmed.starts_with('{') || trimmed.starts_with('['))
        && let Ok(value) = serde_json::from_str::<Value>(trimmed)
    {
        return value;
    }
    Value::String(message.to_owned())
}

/// How one run ended.
enum RunOutcome {
    /// It finished, or stopped at questions (kept in the adapter's [`Questions`]).
    Done(ResultPayload),
    /// It failed.
    Failed(String, ResultPayload),
    /// The user interrupted it.
    Interrupted(ResultPayload),
    /// The session is stopping.
    Cancelled,
}

/// What the turn loop keeps between runs.
struct Conversation {
    queue: VecDeque<UserMessage>,
    /// The session ends once the queue is done.
    ending: bool,
    /// No more input can come.
    closed: bool,
    questions: Questions,
}

impl Adapter for LangGraphAdapter {
    type Error = LangGraphError;

    async fn run(&mut self, session: &mut Session) -> Result<Outcome, Self::Error> {
        let cancel = session.cancellation().clone();
        let Some(opened) = until_cancelled(&cancel, self.open_thread(session)).await else {
            return Ok(Outcome::Completed { result: None });
        };
        let (thread, questions) = opened?;
        let mut talk = Conversation {
            queue: VecDeque::new(),
            ending: false,
            closed: false,
            questions,
        };
        let mut last: Option<(ResultPayload, Option<String>)> = None;
        loop {
            let Some(message) = talk.queue.pop_front() else {
                if talk.ending || talk.closed {
                    break;
                }
                let input = tokio::select! {
                    () = cancel.cancelled() => break,
                    input = session.next_input() => input,
                };
                match input {
                    Some(Input::Message(text)) => talk.queue.push_back(text),
                    // Nothing runs between turns, and the server works in no folder.
                    // A graph's model is the graph's own.
                    Some(
                        Input::Interrupt
                        | Input::WorkspaceChanged(_)
                        | Input::SetModel(_)
                        | Input::StopTask(_),
                    ) => {}
                    Some(Input::EndSession) => talk.ending = true,
                    None => talk.closed = true,
                }
                continue;
            };
            // Its turn starts: its bytes go back to the session's budget.
            let message = message.into_text();
            let command = if talk.questions.waiting() {
                match talk.questions.answer(&message) {
                    Answered::Partly { next } => {
                        let noted = Event::Log(String::from("answer noted; one more question"));
                        if session.emit(noted).await.is_err()
                            || session.emit(Event::Question(next)).await.is_err()
                        {
                            break;
                        }
                        continue;
                    }
                    Answered::Resume(value) => Some(json!({ "resume": value })),
                }
            } else {
                None
            };
            let body = self.run_body(&message, command);
            match self.run_once(session, &thread, &body, &mut talk).await? {
                RunOutcome::Done(result) | RunOutcome::Interrupted(result) => {
                    last = Some((result, None));
                }
                RunOutcome::Failed(reason, result) => last = Some((result, Some(reason))),
                RunOutcome::Cancelled => break,
            }
        }
        // Let the driver exit on its own, so that it saves the checkpoints of a cancelled run.
        if let Runtime::Driver {
            driver: Some(driver),
            ..
        } = &mut self.runtime
        {
            driver.finish(std::time::Duration::from_secs(5)).await;
        }
        Ok(Outcome::from_last_turn(last))
    }
}

impl LangGraphAdapter {
    /// The session's thread: the one an earlier session kept, when it still exists, else a
    /// new one, kept for later. Also the questions it waits on.
    async fn open_thread(
        &mut self,
        session: &mut Session,
    ) -> Result<(String, Questions), LangGraphError> {
        let earlier = session
            .continuation()
            .get(THREAD_ANNOTATION)
            .map(str::to_owned);
        let (thread, pending) = match &mut self.runtime {
            Runtime::Server { client } => {
                let url = client.url().to_owned();
                self.assistant_id = client
                    .check_assistant(&self.settings.assistant)
                    .await
                    .map_err(|e| server_error(&url, e))?;
                let mut found = None;
                if let Some(earlier) = earlier {
                    match client.thread(&earlier).await {
                        Ok(Some(state)) => {
                            info!(thread = %earlier, status = %state.status, "continuing the earlier thread");
                            let pending = if state.status == "interrupted" {
                                state.interrupts
                            } else {
                                Vec::new()
                            };
                            found = Some((earlier, pending));
                        }
                        Ok(None) => {
                            warn!(thread = %earlier, "the earlier thread is gone; starting a new one");
                            session
                                .emit(Event::Log(String::from(
                                    "the earlier LangGraph thread is gone; starting a new one",
                                )))
                                .await?;
                        }
                        Err(error) => return Err(server_error(&url, error)),
                    }
                }
                match found {
                    Some(found) => found,
                    None => {
                        let thread = client
                            .create_thread()
                            .await
                            .map_err(|e| server_error(&url, e))?;
                        info!(%thread, "thread created");
                        (thread, Vec::new())
                    }
                }
            }
            Runtime::Driver { settings, driver } => {
                let workspace = &session.info().workspace;
                let checkpoints = self
                    .settings
                    .workflow
                    .checkpoints
                    .clone()
                    .unwrap_or_else(|| {
                        // The workspace root (the artifacts folder's parent) is on the
                        // session's volume, and in no repository.
                        workspace
                            .artifacts
                            .parent()
                            .unwrap_or(&workspace.main)
                            .join(".langgraph-runner/checkpoints.sqlite")
                    });
                let mut started = GraphDriver::start(
                    settings,
                    &self.settings.assistant,
                    &workspace.main,
                    &checkpoints,
                )
                .await?;
                let thread = earlier.unwrap_or_else(new_thread_id);
                let pending = started.pending(&thread).await?;
                *driver = Some(Box::new(started));
                (thread, pending)
            }
        };
        self.read_schemas().await?;
        let mut questions = Questions::default();
        if let Some(first) = pending.first() {
            // The thread stopped at a question: it is asked again, and the user's next
            // message answers it.
            session
                .emit(Event::Log(format!(
                    "the workflow waits for {} answer(s)",
                    pending.len()
                )))
                .await?;
            session
                .emit(Event::Question(first.shown(pending.len() > 1)))
                .await?;
            questions.pending = pending;
        }
        // This session's resource keeps it too, for a continuation of this one.
        session.store(THREAD_ANNOTATION, thread.clone()).await?;
        Ok((thread, questions))
    }

    /// Where the prompt goes and what the graph answers with, from its schemas.
    async fn read_schemas(&mut self) -> Result<(), LangGraphError> {
        let schemas = match &mut self.runtime {
            // Without them the runner guesses as before: a chat graph's `messages`.
            Runtime::Server { client } => match client.schemas(&self.assistant_id).await {
                Ok(schemas) => schemas.unwrap_or(Value::Null),
                Err(error) => {
                    warn!(%error, "the graph's schemas could not be read");
                    Value::Null
                }
            },
            Runtime::Driver {
                driver: Some(driver),
                ..
            } => driver.schemas().clone(),
            Runtime::Driver { driver: None, .. } => Value::Null,
        };
        // A server that cannot render the input schema (a `typing.TypedDict` on Python
        // 3.11) still gives the state's, which the input is by default.
        let input = ["input_schema", "state_schema"]
            .into_iter()
            .find_map(|key| schemas.get(key).filter(|schema| !schema.is_null()));
        self.prompt_field = crate::config::prompt_field_for(
            self.settings.workflow.prompt_field.as_deref(),
            input,
            &self.settings.assistant,
        )
        .map_err(LangGraphError::Input)?;
        info!(field = %self.prompt_field, "the prompt goes in this input field");
        self.output_schema = schemas.get("output_schema").cloned();
        Ok(())
    }

    /// The answer of a run that said nothing: its graph's output, read from the state.
    async fn answer_from_state(&mut self, thread: &str) -> Result<Option<String>, LangGraphError> {
        let values = match &mut self.runtime {
            Runtime::Server { client } => {
                let url = client.url().to_owned();
                client
                    .state_values(thread)
                    .await
                    .map_err(|e| server_error(&url, e))?
                    .unwrap_or(Value::Null)
            }
            Runtime::Driver {
                driver: Some(driver),
                ..
            } => driver.values(thread).await?,
            Runtime::Driver { driver: None, .. } => Value::Null,
        };
        Ok(crate::config::answer_from_state(
            &values,
            self.output_schema.as_ref(),
        ))
    }

    /// The body of a run that starts with `message`, or resumes with `command`.
    fn run_body(&self, message: &str, command: Option<Value>) -> Value {
        let workflow = &self.settings.workflow;
        let mut body = Map::new();
        body.insert(
            String::from("assistant_id"),
            Value::String(self.settings.assistant.clone()),
        );
        match command {
            Some(command) => body.insert(String::from("command"), command),
            None => body.insert(
                String::from("input"),
                workflow.input_for(message, &self.prompt_field),
            ),
        };
        body.insert(String::from("stream_mode"), json!(workflow.stream_modes()));
        body.insert(
            String::from("stream_subgraphs"),
            Value::Bool(workflow.stream_subgraphs),
        );
        // Resumable, so that a dropped stream can be rejoined where it left off; and the
        // run goes on while the stream is away.
        body.insert(String::from("stream_resumable"), Value::Bool(true));
        body.insert(String::from("on_disconnect"), json!("continue"));
        for (key, value) in [
            ("config", &workflow.config),
            ("context", &workflow.context),
            ("metadata", &workflow.metadata),
        ] {
            if let Some(value) = value {
                body.insert(key.to_owned(), Value::Object(value.clone()));
            }
        }
        Value::Object(body)
    }

    /// One run: relays its stream until it ends, watching input meanwhile.
    async fn run_once(
        &mut self,
        session: &mut Session,
        thread: &str,
        body: &Value,
        talk: &mut Conversation,
    ) -> Result<RunOutcome, LangGraphError> {
        self.runs += 1;
        let runs = self.runs;
        let started = Instant::now();
        let cancel = session.cancellation().clone();
        let policy = self.settings.workflow.on_busy;
        let (emitter, inputs) = session.io();
        if emitter.emit(Event::TurnStarted).await.is_err() {
            return Ok(RunOutcome::Cancelled);
        }
        let mut run = match &mut self.runtime {
            Runtime::Server { client } => {
                let url = client.url();
                let Some(stream) = until_cancelled(&cancel, client.stream_run(thread, body)).await
                else {
                    return Ok(RunOutcome::Cancelled);
                };
                ActiveRun::Server {
                    stream: Box::new(stream.map_err(|e| server_error(url, e))?),
                    client,
                    url,
                    thread,
                }
            }
            Runtime::Driver { driver, .. } => {
                let Some(driver) = driver.as_mut() else {
                    return Err(LangGraphError::Driver(DriverError::BadLine(String::from(
                        "no driver is running",
                    ))));
                };
                driver.run(thread, body);
                ActiveRun::Driver {
                    driver,
                    status: None,
                }
            }
        };
        let mut mapper = StreamMapper::new();
        let mut last_text: Option<String> = None;
        let mut stopped_by_user = false;
        let mut watching_input = !talk.closed;
        loop {
            let event = tokio::select! {
                biased;
                () = cancel.cancelled() => {
                    run.cancel().await;
                    return Ok(RunOutcome::Cancelled);
                }
                input = next_input(inputs), if watching_input => {
                    let stop = match input {
                        Some(Input::Interrupt) => true,
                        Some(Input::Message(text)) => {
                            talk.queue.push_back(text);
                            policy == BusyPolicy::Interrupt
                        }
                        Some(Input::WorkspaceChanged(_) | Input::SetModel(_) | Input::StopTask(_)) => false,
                        // An interrupt can still come after the end of the session.
                        Some(Input::EndSession) => {
                            talk.ending = true;
                            false
                        }
                        None => {
                            talk.closed = true;
                            watching_input = false;
                            false
                        }
                    };
                    if stop && !stopped_by_user {
                        stopped_by_user = true;
                        // The stream closes once the run is cancelled.
                        run.cancel().await;
                    }
                    continue;
                }
                event = run.next() => event?,
            };
            let Some(event) = event else { break };
            for mapped in mapper.map(&event) {
                if let Event::Text(text) = &mapped {
                    last_text = Some(text.clone());
                }
                if emitter.emit(mapped).await.is_err() {
                    // The session is over: the run on the server goes too.
                    run.cancel().await;
                    return Ok(RunOutcome::Cancelled);
                }
            }
        }
        let status = run.status();
        drop(run);
        let end = mapper.end();
        let payload = |subtype: &str, is_error: bool, text: Option<String>| ResultPayload {
            subtype: Some(subtype.to_owned()),
            duration_ms: Some(u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX)),
            is_error: Some(is_error),
            num_turns: Some(runs),
            session_id: Some(thread.to_owned()),
            result: text,
            ..ResultPayload::default()
        };
        let failed = |reason: String| {
            let result = payload("error_during_execution", true, Some(reason.clone()));
            RunOutcome::Failed(reason, result)
        };
        let outcome = match (status, end) {
            (_, RunEnd::Failed(reason)) => failed(reason),
            (RunStatus::Error, _) => failed(String::from("the run failed on the server")),
            (RunStatus::Timeout, _) => failed(String::from("the run timed out on the server")),
            (RunStatus::Gone, _) => failed(String::from(
                "the run was deleted on the server before it finished",
            )),
            (RunStatus::Interrupted, _) => {
                let by = if stopped_by_user {
                    "interrupted"
                } else {
                    "cancelled on the server"
                };
                if emitter.emit(Event::Log(format!("run {by}"))).await.is_err() {
                    return Ok(RunOutcome::Cancelled);
                }
                RunOutcome::Interrupted(payload("interrupted", false, last_text))
            }
            (_, RunEnd::Interrupted(pending)) => {
                for interrupt in &pending {
                    let asked = interrupt.shown(pending.len() > 1);
                    last_text = Some(asked.clone());
                    if emitter.emit(Event::Text(asked)).await.is_err() {
                        return Ok(RunOutcome::Cancelled);
                    }
                }
                talk.questions = Questions {
                    pending,
                    answers: Vec::new(),
                };
                RunOutcome::Done(payload("awaiting_input", false, last_text))
            }
            (_, RunEnd::Completed) => {
                // A graph without messages says nothing: its output is its answer.
                if last_text.is_none()
                    && let Some(answer) = self.answer_from_state(thread).await?
                {
                    if emitter.emit(Event::Text(answer.clone())).await.is_err() {
                        return Ok(RunOutcome::Cancelled);
                    }
                    last_text = Some(answer);
                }
                RunOutcome::Done(payload("success", false, last_text))
            }
        };
        let result = match &outcome {
            RunOutcome::Done(r) | RunOutcome::Failed(_, r) | RunOutcome::Interrupted(r) => {
                r.clone()
            }
            RunOutcome::Cancelled => return Ok(outcome),
        };
        // A question waits for its answer; a message already queued is the next turn.
        let next = if talk.questions.waiting() {
            Next::Answer
        } else if talk.queue.is_empty() {
            Next::User
        } else {
            Next::Busy
        };
        if emitter
            .emit(Event::TurnEnded { result, next })
            .await
            .is_err()
        {
            return Ok(RunOutcome::Cancelled);
        }
        Ok(outcome)
    }
}

/// A new thread id for the driver (the server makes its own).
fn new_thread_id() -> String {
    let bytes = fastrand::u128(..).to_be_bytes();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

async fn next_input(inputs: &mut Inputs) -> Option<Input> {
    inputs.next().await
}

/// `work`, unless the session is cancelled first.
async fn until_cancelled<T>(
    cancel: &CancellationToken,
    work: impl std::future::Future<Output = T>,
) -> Option<T> {
    tokio::select! {
        biased;
        () = cancel.cancelled() => None,
        done = work => Some(done),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn interrupt(id: &str, question: &str) -> Interrupt {
        Interrupt {
            id: id.to_owned(),
            value: json!({ "question": question }),
        }
    }

    #[test]
    fn one_question_is_resumed_with_the_answer_itself() {
        let mut questions = Questions {
            pending: vec![interrupt("a", "Approve?")],
            answers: Vec::new(),
        };
        assert!(
            matches!(questions.answer("yes"), Answered::Resume(Value::String(s)) if s == "yes")
        );
        assert!(!questions.waiting());
    }

    #[test]
    fn several_questions_are_answered_in_turn_then_resumed_with_a_map() {
        let mut questions = Questions {
            pending: vec![interrupt("a", "x?"), interrupt("b", "y?")],
            answers: Vec::new(),
        };
        assert!(
            matches!(questions.answer("1"), Answered::Partly { next } if next == "y?\n(interrupt id: b)")
        );
        let Answered::Resume(map) = questions.answer(r#"{"n": 2}"#) else {
            panic!("expected a resume");
        };
        assert_eq!(map, json!({ "a": "1", "b": { "n": 2 } }));
        assert!(!questions.waiting());
    }

    #[test]
    fn a_map_keyed_by_every_id_answers_all_at_once() {
        let mut questions = Questions {
            pending: vec![interrupt("a", "x?"), interrupt("b", "y?")],
            answers: Vec::new(),
        };
        let Answered::Resume(map) = questions.answer(r#"{"a": 1, "b": 2}"#) else {
            panic!("expected a resume");
        };
        assert_eq!(map, json!({ "a": 1, "b": 2 }));
    }

    #[test]
    fn text_that_only_looks_like_json_stays_text() {
        assert_eq!(answer_value("{not json"), json!("{not json"));
        assert_eq!(answer_value("42"), json!("42"));
        assert_eq!(answer_value(" [1, 2] "), json!([1, 2]));
    }
}
