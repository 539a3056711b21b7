//! The adapter: one CLI process per session, user messages and interrupts written to it
//! as they arrive, its output relayed.

use std::{collections::VecDeque, path::PathBuf, time::Duration};

use ambient_adapter::{
    Adapter, CancellationToken, Event, Input, Mode, Next, Outcome, ResultPayload, Session,
    SessionClosed,
};
use ambient_process::Launch;
use serde_json::{Value, json};
use tracing::{debug, info, warn};

use crate::{
    ClaudeSettings, CliMapper, Conversation, ProcessError, SESSION_ANNOTATION, Signal,
    process::CliProcess, settings::new_session_id,
};

/// What stops a Claude session.
#[derive(Debug, thiserror::Error)]
pub enum ClaudeError {
    /// The process could not be run or read.
    #[error(transparent)]
    Process(#[from] ProcessError),
    /// The CLI is not the version the settings pin.
    #[error("the Claude Code CLI at {binary} is version {found}, not the pinned {expected}")]
    Version {
        /// The binary.
        binary: String,
        /// What it says.
        found: String,
        /// What was asked for.
        expected: String,
    },
    /// The CLI ended (or would not start) with a turn still open.
    #[error("the Claude Code CLI {what} ({status}){}", ambient_process::stderr_suffix(.stderr))]
    Ended {
        /// What happened.
        what: String,
        /// Its exit status.
        status: String,
        /// The end of its stderr.
        stderr: String,
    },
    /// The CLI did not answer in time.
    #[error("the Claude Code CLI did not answer {what} within {seconds} s")]
    NoAnswer {
        /// The request.
        what: &'static str,
        /// The bound.
        seconds: u64,
    },
    /// The CLI has no conversation with the id to resume (its history is gone).
    #[error("the Claude Code CLI has no conversation {id} to resume")]
    NotResumable {
        /// The id.
        id: String,
    },
    /// The `.mcp.json` could not be read.
    #[error("the MCP configuration {path} could not be used: {reason}")]
    Mcp {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
    /// The shell stopped reading.
    #[error(transparent)]
    Closed(#[from] SessionClosed),
}

/// Drives the Claude Code CLI for a session.
#[derive(Debug)]
pub struct ClaudeAdapter {
    settings: ClaudeSettings,
}

impl ClaudeAdapter {
    /// An adapter with these settings.
    pub fn new(settings: ClaudeSettings) -> Self {
        Self { settings }
    }
}

/// How long an accepted interrupt may leave its turn running before it is sent again.
const INTERRUPT_RESEND: Duration = Duration::from_secs(1);
/// How many times an accepted interrupt is sent again before the turn is left to end.
const INTERRUPT_RESENDS: u32 = 5;
/// How many times in a row the CLI may run an interrupted message again before its runs
/// are relayed as turns of their own.
const INTERRUPTED_RERUNS: u32 = 3;

/// What the session loop keeps.
struct Turns {
    /// User messages written whose turns have not ended.
    open: u64,
    /// The model has begun answering the current turn (the turn's first streamed or whole
    /// message), and the turn has not ended. An interrupt the CLI gets before this ends
    /// the turn and then runs its message again (`system/init` is too early).
    started: bool,
    /// The user interrupted before the model began answering: sent once it does.
    interrupt_held: bool,
    /// The interrupt sent and not yet answered, by request id.
    interrupt: Option<String>,
    /// The CLI accepted an interrupt of the current turn.
    interrupt_accepted: bool,
    /// When the accepted interrupt is sent again if the turn still runs, and how many
    /// times it has been.
    resend: Option<(tokio::time::Instant, u32)>,
    /// Interrupted early in its turn, the CLI can run the same message again on its own
    /// (the conversation rolled back, the request sent anew): that many such runs, after an
    /// interrupted turn and before the user's next message, are interrupted and not relayed.
    reruns_to_absorb: u32,
    /// The current turn is such a run.
    absorbing: bool,
    /// The tool calls waiting for the user's approval.
    approvals: Approvals,
    /// The session ends once the CLI is idle (the end of the session, or of its input).
    ending: bool,
    last: Option<(ResultPayload, Option<String>)>,
}

/// The most `can_use_tool` requests that wait for the user at once; a CLI that asks for
/// more is answered no at once.
const MAX_PENDING_APPROVALS: usize = 16;

/// A `can_use_tool` request.
struct Approval {
    request_id: String,
    tool_call_id: String,
    tool: String,
    input: Value,
    question: String,
}

impl Approval {
    fn event(&self) -> Event {
        Event::ToolApproval {
            tool_call_id: self.tool_call_id.clone(),
            tool: self.tool.clone(),
            input: self.input.clone(),
            question: self.question.clone(),
        }
    }
}

/// The `can_use_tool` requests waiting for the user. The CLI may ask about several tool
/// calls at once: the first is asked, and each of the rest when the one before it is
/// answered, so that every request gets its own answer.
#[derive(Default)]
struct Approvals {
    queue: VecDeque<Approval>,
    /// When the one asked is denied unanswered.
    deadline: Option<tokio::time::Instant>,
}

impl Approvals {
    fn waiting(&self) -> bool {
        !self.queue.is_empty()
    }

    /// Queues `approval`: the question to ask now when it is the only one, or the
    /// approval back when too many wait already.
    fn push(
        &mut self,
        approval: Approval,
        timeout: Duration,
    ) -> Result<Option<Event>, Box<Approval>> {
        if self.queue.len() >= MAX_PENDING_APPROVALS {
            return Err(Box::new(approval));
        }
        self.queue.push_back(approval);
        Ok((self.queue.len() == 1).then(|| self.ask(timeout)).flatten())
    }

    /// The one asked, now answered (or given up).
    fn take_asked(&mut self) -> Option<Approval> {
        self.deadline = None;
        self.queue.pop_front()
    }

    /// The question of the next one waiting, which is asked now.
    fn ask(&mut self, timeout: Duration) -> Option<Event> {
        let next = self.queue.front()?;
        self.deadline = Some(tokio::time::Instant::now() + timeout);
        Some(next.event())
    }

    /// All of them, for answering no.
    fn drain(&mut self) -> Vec<Approval> {
        self.deadline = None;
        self.queue.drain(..).collect()
    }
}

/// The user's answer to a tool approval: an object `{"approved", "reason"}` (the AG-UI
/// response schema), or words; anything but a yes is a no, with the words as its reason.
fn approval_answer(answer: &str) -> Result<(), String> {
    let answer = answer.trim();
    if let Ok(Value::Object(object)) = serde_json::from_str::<Value>(answer) {
        return match object.get("approved").and_then(Value::as_bool) {
            Some(true) => Ok(()),
            _ => Err(match object.get("reason").and_then(Value::as_str) {
                Some(reason) if !reason.trim().is_empty() => {
                    format!("the user denied it: {}", reason.trim())
                }
                _ => String::from("the user denied it"),
            }),
        };
    }
    let lower = answer.to_lowercase();
    let first = lower
        .split(|c: char| !c.is_alphanumeric())
        .next()
        .unwrap_or_default();
    if matches!(first, "allow" | "yes" | "y" | "ok" | "approve" | "approved") {
        return Ok(());
    }
    let reason = if matches!(first, "deny" | "no" | "n") {
        answer
            .get(first.len()..)
            .unwrap_or_default()
            .trim_start_matches([':', ',', '-', '.', ' '])
            .trim()
    } else {
        answer
    };
    Err(if reason.is_empty() {
        String::from("the user denied it")
    } else {
        format!("the user denied it: {reason}")
    })
}

impl Adapter for ClaudeAdapter {
    type Error = ClaudeError;

    async fn run(&mut self, session: &mut Session) -> Result<Outcome, Self::Error> {
        let cancel = session.cancellation().clone();
        self.check_version().await?;
        // For the operator, who set them, not for the user's conversation.
        for note in self.settings.unsupported() {
            info!("{note}");
        }
        let info = session.info().clone();
        let mcp = self.mcp_servers(&info.workspace.main)?;
        let mut conversation = match session.continuation().get(SESSION_ANNOTATION) {
            Some(id) if info.is_continuation => Conversation::Resume(id.to_owned()),
            _ => Conversation::New(new_session_id()),
        };
        // Kept before the first turn, so that a crash mid-turn can still be resumed.
        session
            .store(SESSION_ANNOTATION, conversation.id().to_owned())
            .await?;
        let mut turns = Turns {
            open: 0,
            started: false,
            interrupt_held: false,
            interrupt: None,
            interrupt_accepted: false,
            resend: None,
            reruns_to_absorb: 0,
            absorbing: false,
            approvals: Approvals::default(),
            ending: false,
            last: None,
        };
        let mut watching_input = true;
        // A conversation the CLI cannot resume ends its start at once; a new one replaces it.
        let mut process = loop {
            match self
                .start(
                    &info.workspace.main,
                    &info.workspace.extra,
                    mcp.as_ref(),
                    &conversation,
                    &cancel,
                )
                .await
            {
                Err(ClaudeError::NotResumable { id }) => {
                    warn!(earlier = %id, "the earlier CLI conversation cannot be resumed");
                    conversation = self.start_over(session).await?;
                }
                Ok(Some(process)) => break process,
                Ok(None) => return Ok(Outcome::Completed { result: None }),
                Err(error) => return Err(error),
            }
        };
        let mut mapper = CliMapper::with_task_folders(self.settings.task_folders());
        let mut interrupt_deadline: Option<tokio::time::Instant> = None;
        let mut end_deadline: Option<tokio::time::Instant> = None;
        let (emitter, inputs) = session.io();
        loop {
            let line = tokio::select! {
                biased;
                () = cancel.cancelled() => {
                    if turns.open > 0 {
                        process.request(&json!({"subtype": "interrupt"}));
                    }
                    process.finish(self.settings.exit_timeout).await;
                    return Ok(Outcome::from_last_turn(turns.last));
                }
                () = sleep_until(interrupt_deadline) => {
                    process.finish(Duration::ZERO).await;
                    return Err(ClaudeError::NoAnswer {
                        what: "an interrupt",
                        seconds: self.settings.control_timeout.as_secs(),
                    });
                }
                () = sleep_until(turns.resend.map(|(at, _)| at)) => {
                    let sent = turns.resend.map_or(0, |(_, sent)| sent);
                    turns.resend = None;
                    if turns.open > 0 && turns.interrupt.is_none() && sent < INTERRUPT_RESENDS {
                        debug!(times = sent + 1, "the interrupted turn still runs; interrupting again");
                        turns.interrupt = Some(process.request(&json!({"subtype": "interrupt"})));
                        interrupt_deadline = Some(tokio::time::Instant::now() + self.settings.control_timeout);
                        turns.resend = Some((tokio::time::Instant::now() + INTERRUPT_RESEND, sent + 1));
                    }
                    continue;
                }
                () = sleep_until(turns.approvals.deadline) => {
                    if let Some(approval) = turns.approvals.take_asked() {
                        let seconds = self.settings.approval_timeout.as_secs();
                        process.answer(&approval.request_id, &json!({
                            "behavior": "deny",
                            "message": format!("nobody approved it within {seconds} s"),
                        }));
                        let note = format!("{} was denied: nobody answered within {seconds} s", approval.tool);
                        if emitter.emit(Event::Log(note)).await.is_err() {
                            continue;
                        }
                    }
                    if let Some(next) = turns.approvals.ask(self.settings.approval_timeout) {
                        let _asked = emitter.emit(next).await;
                    }
                    continue;
                }
                () = sleep_until(end_deadline) => {
                    warn!("the CLI's turn outlasted the end of the session; stopping it");
                    process.finish(Duration::ZERO).await;
                    return Ok(Outcome::from_last_turn(turns.last));
                }
                input = inputs.next(), if watching_input => {
                    match input {
                        Some(Input::Message(text)) if turns.approvals.waiting() => {
                            let Some(approval) = turns.approvals.take_asked() else { continue };
                            let (response, note) = match approval_answer(&text) {
                                Ok(()) => (
                                    json!({"behavior": "allow", "updatedInput": approval.input}),
                                    format!("{} allowed once", approval.tool),
                                ),
                                Err(reason) => (
                                    json!({"behavior": "deny", "message": reason}),
                                    format!("{} denied", approval.tool),
                                ),
                            };
                            process.answer(&approval.request_id, &response);
                            if emitter.emit(Event::Log(note)).await.is_err() {
                                continue;
                            }
                            if let Some(next) = turns.approvals.ask(self.settings.approval_timeout) {
                                let _asked = emitter.emit(next).await;
                            }
                        }
                        Some(Input::Message(text)) => {
                            turns.reruns_to_absorb = 0;
                            // Written at once, even mid-turn: the CLI queues it.
                            process.send_user(&text);
                            if turns.open == 0 && emitter.emit(Event::TurnStarted).await.is_err() {
                                continue;
                            }
                            turns.open += 1;
                        }
                        Some(Input::Interrupt) if turns.open > 0 => {
                            // The questions pending are answered no, and the turn stops.
                            for approval in turns.approvals.drain() {
                                process.answer(&approval.request_id, &json!({
                                    "behavior": "deny",
                                    "message": "the user interrupted",
                                    "interrupt": true,
                                }));
                            }
                            if !turns.started {
                                // The CLI would acknowledge it and run the turn anyway.
                                turns.interrupt_held = true;
                            } else if turns.interrupt.is_none() {
                                turns.interrupt = Some(process.request(&json!({"subtype": "interrupt"})));
                                interrupt_deadline = Some(tokio::time::Instant::now() + self.settings.control_timeout);
                            }
                        }
                        Some(Input::Interrupt) => {}
                        None => {
                            // No more input can come; a batch turn runs to its end.
                            watching_input = false;
                            turns.ending = true;
                        }
                        // A batch session's input ends with its prompt: its turn runs to
                        // the end, and can still be interrupted.
                        Some(Input::EndSession) if info.mode == Mode::Batch => turns.ending = true,
                        Some(Input::EndSession) => {
                            watching_input = false;
                            turns.ending = true;
                            for approval in turns.approvals.drain() {
                                process.answer(&approval.request_id, &json!({
                                    "behavior": "deny",
                                    "message": "the session ended before anyone answered",
                                }));
                            }
                            if turns.open > 0 || mapper.tasks_running() {
                                // The CLI finishes its turn (and its background tasks),
                                // then exits at the end of its input; it gets a bounded
                                // time for that.
                                process.close_input();
                                end_deadline = Some(tokio::time::Instant::now() + self.settings.end_timeout);
                            }
                        }
                        Some(Input::SetModel(model)) => {
                            // The CLI switches at once, and a CLI started again later is
                            // started with it.
                            let _request = process.request(&json!({"subtype": "set_model", "model": model}));
                            let note = format!("the model is now {model}");
                            self.settings.model = Some(model);
                            if emitter.emit(Event::Log(note)).await.is_err() {
                                continue;
                            }
                        }
                        Some(Input::StopTask(id)) => {
                            // Asked of the CLI even for a task no longer followed here (one
                            // of too many); it answers at once, and a task already ended is
                            // no error.
                            let _request = process.request(&json!({"subtype": "stop_task", "task_id": id}));
                            let stopped = mapper.task_stopped(&id);
                            for event in stopped {
                                if emitter.emit(event).await.is_err() {
                                    break;
                                }
                            }
                        }
                        Some(Input::WorkspaceChanged(_)) => {
                            let note = "the workspace changed; the CLI sees the new folders from the next session on";
                            if emitter.emit(Event::Log(String::from(note))).await.is_err() {
                                continue;
                            }
                        }
                    }
                    if turns.ending && turns.open == 0 && !mapper.tasks_running() {
                        break;
                    }
                    continue;
                }
                line = process.next_line() => line,
            };
            let Some(line) = line else {
                // The CLI closed its output: it exited.
                let status = process.finish(self.settings.exit_timeout).await;
                if turns.open == 0 && turns.ending {
                    return Ok(Outcome::from_last_turn(turns.last));
                }
                return Err(ClaudeError::Ended {
                    what: String::from("exited with a turn still open"),
                    status: describe(status),
                    stderr: process.stderr_tail(),
                });
            };
            let line = match line {
                Ok(line) => line,
                Err(error) => {
                    process.finish(Duration::ZERO).await;
                    return Err(error.into());
                }
            };
            let (events, signal) = mapper.map(&line);
            if !turns.started && turns.open > 0 && answering(&line) {
                turns.started = true;
                if std::mem::take(&mut turns.interrupt_held) && turns.interrupt.is_none() {
                    turns.interrupt = Some(process.request(&json!({"subtype": "interrupt"})));
                    interrupt_deadline =
                        Some(tokio::time::Instant::now() + self.settings.control_timeout);
                }
            }
            for event in events {
                if turns.absorbing {
                    break;
                }
                // Over when it fails: the next turn of the loop sees the cancellation.
                if emitter.emit(event).await.is_err() {
                    break;
                }
            }
            match signal {
                Signal::TurnStarted { session_id } => {
                    if turns.open == 0 && turns.reruns_to_absorb > 0 && !mapper.tasks_running() {
                        info!("the CLI runs the interrupted message again; it is interrupted too");
                        turns.reruns_to_absorb -= 1;
                        turns.absorbing = true;
                        turns.interrupt_held = true;
                        turns.open += 1;
                    } else if turns.open == 0 {
                        // A turn the CLI started on its own (a background subagent finished).
                        turns.open += 1;
                        if emitter.emit(Event::TurnStarted).await.is_err() {
                            continue;
                        }
                    }
                    if let Some(id) = session_id.filter(|id| id != conversation.id()) {
                        warn!(expected = %conversation.id(), actual = %id, "the CLI runs another session than asked");
                    }
                }
                Signal::TurnEnded {
                    mut result,
                    error,
                    aborted,
                } => {
                    turns.open = turns.open.saturating_sub(1);
                    // An interrupt the user asked for is not a failure: a turn the CLI
                    // aborted, or one that ended in error after it accepted the interrupt.
                    let interrupted = aborted
                        || (turns.interrupt_accepted
                            && result.subtype.as_deref() == Some("error_during_execution"));
                    turns.started = false;
                    turns.interrupt_held = false;
                    turns.interrupt = None;
                    turns.interrupt_accepted = false;
                    turns.resend = None;
                    interrupt_deadline = None;
                    let busy = turns.open > 0 || mapper.tasks_running();
                    turns.reruns_to_absorb = if !interrupted {
                        0
                    } else if turns.absorbing {
                        turns.reruns_to_absorb
                    } else {
                        INTERRUPTED_RERUNS
                    };
                    if std::mem::take(&mut turns.absorbing) {
                        // The user's turn already ended, interrupted, and was reported.
                        if turns.ending && !busy {
                            break;
                        }
                        continue;
                    }
                    let error = if interrupted {
                        result.subtype = Some(String::from("interrupted"));
                        result.is_error = Some(false);
                        None
                    } else {
                        error
                    };
                    let next = if busy { Next::Busy } else { Next::User };
                    turns.last = Some((result.clone(), error));
                    if emitter
                        .emit(Event::TurnEnded { result, next })
                        .await
                        .is_err()
                    {
                        continue;
                    }
                    if turns.ending && !busy {
                        break;
                    }
                }
                Signal::Request {
                    request_id,
                    subtype,
                    request,
                } if subtype == "can_use_tool" && self.settings.permission_prompts => {
                    let tool = request
                        .get("tool_name")
                        .and_then(Value::as_str)
                        .unwrap_or("a tool")
                        .to_owned();
                    let input = request.get("input").cloned().unwrap_or(Value::Null);
                    if info.mode == Mode::Batch || !watching_input {
                        // Nobody is there to answer.
                        process.answer(
                            &request_id,
                            &json!({
                                "behavior": "deny",
                                "message": "no one can approve a tool call in a batch session",
                            }),
                        );
                        let note = format!("{tool} was denied: a batch session has no one to ask");
                        if emitter.emit(Event::Log(note)).await.is_err() {
                            continue;
                        }
                        continue;
                    }
                    let tool_call_id = request
                        .get("tool_use_id")
                        .and_then(Value::as_str)
                        .unwrap_or(&request_id)
                        .to_owned();
                    let shown: String = input.to_string().chars().take(2_000).collect();
                    let question = format!(
                        "{tool} asks to run with {shown}. Allow it once? Answer \"allow\", or \"deny\" with a reason."
                    );
                    let approval = Approval {
                        request_id,
                        tool_call_id,
                        tool,
                        input,
                        question,
                    };
                    match turns
                        .approvals
                        .push(approval, self.settings.approval_timeout)
                    {
                        Ok(Some(asked)) => {
                            if emitter.emit(asked).await.is_err() {
                                continue;
                            }
                        }
                        // Asked once the ones before it are answered.
                        Ok(None) => {}
                        Err(refused) => {
                            process.answer(&refused.request_id, &json!({
                                "behavior": "deny",
                                "message": format!("more than {MAX_PENDING_APPROVALS} tool calls wait for approval"),
                            }));
                            warn!(tool = %refused.tool, "a tool approval past the bound was denied");
                        }
                    }
                }
                Signal::Request {
                    request_id,
                    subtype,
                    ..
                } => {
                    // No permission prompt tool, hooks or SDK MCP servers are registered, so
                    // none of these is expected; an answer keeps the CLI from waiting.
                    warn!(%subtype, "the CLI asked something the runner does not handle");
                    process.refuse(&request_id, "unsupported by the runner");
                }
                Signal::Response { request_id, error } => {
                    if let Some(error) = &error {
                        warn!(%request_id, %error, "the CLI refused a request");
                    }
                    if turns.interrupt.as_deref() == Some(request_id.as_str()) {
                        interrupt_deadline = None;
                        // Answered either way: a later interrupt is sent, never swallowed.
                        turns.interrupt = None;
                        if error.is_none() {
                            turns.interrupt_accepted = true;
                            // An acknowledgement is no proof the turn stops: it is sent
                            // again while the turn runs on.
                            if turns.resend.is_none() {
                                turns.resend =
                                    Some((tokio::time::Instant::now() + INTERRUPT_RESEND, 0));
                            }
                        }
                    }
                }
                Signal::None => {}
            }
            // The session is ending and nothing is left to wait for (the last background
            // task ended without a turn of its own): the CLI's input is closed, and it
            // gets a bounded time to finish.
            if turns.ending && turns.open == 0 && !mapper.tasks_running() && end_deadline.is_none()
            {
                process.close_input();
                end_deadline = Some(tokio::time::Instant::now() + self.settings.end_timeout);
            }
        }
        let status = process.finish(self.settings.exit_timeout).await;
        info!(status = %describe(status), "the CLI finished");
        Ok(Outcome::from_last_turn(turns.last))
    }
}

impl ClaudeAdapter {
    /// A new conversation in place of one that cannot be resumed; the user is told, and
    /// the new id is kept.
    async fn start_over(&self, session: &mut Session) -> Result<Conversation, ClaudeError> {
        let conversation = Conversation::New(new_session_id());
        session
            .emit(Event::Log(String::from(
                "the earlier Claude conversation could not be resumed (its history is gone); starting a new one",
            )))
            .await?;
        session
            .store(SESSION_ANNOTATION, conversation.id().to_owned())
            .await?;
        Ok(conversation)
    }

    /// Logs the CLI's version, and fails when it is not the pinned one.
    async fn check_version(&self) -> Result<(), ClaudeError> {
        let binary = self.settings.binary.display().to_string();
        let mut command = tokio::process::Command::new(&self.settings.binary);
        if let Some(run_as) = self.settings.run_as {
            run_as.apply(&mut command);
        }
        let spawned = command
            .arg("--version")
            .env_clear()
            .envs(self.settings.env.iter().map(|(k, v)| (k, v)))
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn();
        let spawn_failed = |source| ProcessError::Spawn {
            binary: binary.clone(),
            source,
        };
        let mut child = spawned.map_err(spawn_failed)?;
        // A version is a few bytes; whatever else the binary prints is not kept.
        let output = tokio::time::timeout(
            Duration::from_secs(30),
            ambient_process::collect(&mut child, 256, |line| {
                debug!(line = %line, "claude --version stderr");
            }),
        )
        .await
        .map_err(|_| ClaudeError::NoAnswer {
            what: "--version",
            seconds: 30,
        })?
        .map_err(spawn_failed)?;
        let found: String = String::from_utf8_lossy(&output.stdout)
            .split_whitespace()
            .next()
            .unwrap_or("unknown")
            .chars()
            .take(64)
            .collect();
        info!(%binary, version = %found, "Claude Code CLI");
        match &self.settings.expected_version {
            Some(expected) if *expected != found => Err(ClaudeError::Version {
                binary,
                found,
                expected: expected.clone(),
            }),
            _ => Ok(()),
        }
    }

    /// The MCP servers of the explicit `.mcp.json`, or of the one in the working
    /// directory when searching is on.
    fn mcp_servers(&self, main: &std::path::Path) -> Result<Option<Value>, ClaudeError> {
        let path = match &self.settings.mcp_config_path {
            Some(path) => path.clone(),
            None if self.settings.mcp_search => main.join(".mcp.json"),
            None => return Ok(None),
        };
        let text = match read_mcp_config(&path) {
            Ok(text) => text,
            Err(error)
                if error.kind() == std::io::ErrorKind::NotFound
                    && self.settings.mcp_config_path.is_none() =>
            {
                return Ok(None);
            }
            Err(error) => {
                return Err(ClaudeError::Mcp {
                    path: path.display().to_string(),
                    reason: error.to_string(),
                });
            }
        };
        let config: Value = serde_json::from_str(&text).map_err(|error| ClaudeError::Mcp {
            path: path.display().to_string(),
            reason: error.to_string(),
        })?;
        Ok(config.get("mcpServers").cloned())
    }

    /// Starts the CLI and waits for its answer to `initialize`, so that one that cannot
    /// start fails before the first turn. `None` when the session was cancelled meanwhile.
    async fn start(
        &self,
        cwd: &std::path::Path,
        extra: &[PathBuf],
        mcp: Option<&Value>,
        conversation: &Conversation,
        cancel: &CancellationToken,
    ) -> Result<Option<CliProcess>, ClaudeError> {
        let argv = self.settings.argv(extra, mcp, conversation);
        let env = self.settings.child_env(extra);
        let mut process = CliProcess::spawn(Launch {
            binary: &self.settings.binary,
            argv: &argv,
            cwd,
            env: &env,
            run_as: self.settings.run_as,
            limits: self.settings.output_limits,
        })?;
        info!(pid = ?process.id(), "Claude Code CLI started");
        let request = process.request(&json!({"subtype": "initialize", "hooks": null}));
        let answered = tokio::time::timeout(self.settings.initialize_timeout, async {
            loop {
                match process.next_line().await {
                    Some(Ok(line)) => {
                        // A resume of a conversation the CLI does not have ends at once.
                        if line.get("type").and_then(Value::as_str) == Some("result")
                            && line.get("num_turns").and_then(Value::as_u64) == Some(0)
                            && line.to_string().contains("No conversation found")
                        {
                            return Err(Startup::NotResumable);
                        }
                        let is_answer = line.get("type").and_then(Value::as_str)
                            == Some("control_response")
                            && line.pointer("/response/request_id").and_then(Value::as_str)
                                == Some(request.as_str());
                        if is_answer {
                            return Ok(line);
                        }
                    }
                    Some(Err(error)) => return Err(Startup::Failed(error)),
                    None => return Err(Startup::Exited),
                }
            }
        });
        let answer = tokio::select! {
            () = cancel.cancelled() => {
                process.finish(Duration::ZERO).await;
                return Ok(None);
            }
            answer = answered => answer,
        };
        match answer {
            Ok(Ok(line)) => {
                if line.pointer("/response/subtype").and_then(Value::as_str) == Some("error") {
                    let status = process.finish(self.settings.exit_timeout).await;
                    return Err(ClaudeError::Ended {
                        what: String::from("refused to initialize"),
                        status: describe(status),
                        stderr: process.stderr_tail(),
                    });
                }
                Ok(Some(process))
            }
            Ok(Err(Startup::NotResumable)) => {
                process.finish(self.settings.exit_timeout).await;
                Err(ClaudeError::NotResumable {
                    id: conversation.id().to_owned(),
                })
            }
            Ok(Err(Startup::Failed(error))) => {
                process.finish(Duration::ZERO).await;
                Err(error.into())
            }
            Ok(Err(Startup::Exited)) => {
                let status = process.finish(self.settings.exit_timeout).await;
                Err(ClaudeError::Ended {
                    what: String::from("exited before it was ready"),
                    status: describe(status),
                    stderr: process.stderr_tail(),
                })
            }
            Err(_) => {
                process.finish(Duration::ZERO).await;
                Err(ClaudeError::NoAnswer {
                    what: "initialize",
                    seconds: self.settings.initialize_timeout.as_secs(),
                })
            }
        }
    }
}

/// How waiting for the CLI to start can end, short of its answer.
enum Startup {
    /// It has no conversation to resume.
    NotResumable,
    /// Its output could not be read.
    Failed(ProcessError),
    /// It exited.
    Exited,
}

/// Whether a line shows the model answering: a streamed delta, or a whole message.
fn answering(line: &Value) -> bool {
    match line.get("type").and_then(Value::as_str) {
        Some("assistant" | "user") => true,
        Some("stream_event") => {
            line.pointer("/event/type").and_then(Value::as_str) == Some("content_block_delta")
        }
        _ => false,
    }
}

fn describe(status: Option<std::process::ExitStatus>) -> String {
    status.map_or_else(|| String::from("exit status unknown"), |s| s.to_string())
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// The longest `.mcp.json` read.
const MAX_MCP_CONFIG_BYTES: u64 = 1 << 20;

/// The text of an `.mcp.json`: in a checkout the agent (or the repository's author)
/// controls, so a link is not followed, a FIFO is not waited on, and a file over
/// [`MAX_MCP_CONFIG_BYTES`] is refused rather than read.
pub(crate) fn read_mcp_config(path: &std::path::Path) -> std::io::Result<String> {
    use std::{io::Read as _, os::unix::fs::OpenOptionsExt as _};

    use nix::fcntl::OFlag;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags((OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK).bits())
        .open(path)
        .map_err(|error| {
            if error.raw_os_error() == Some(nix::errno::Errno::ELOOP as i32) {
                std::io::Error::other("a symbolic link, which the runner does not follow")
            } else {
                error
            }
        })?;
    let metadata = file.metadata()?;
    if !metadata.is_file() {
        return Err(std::io::Error::other("not a regular file"));
    }
    if metadata.len() > MAX_MCP_CONFIG_BYTES {
        return Err(std::io::Error::other(format!(
            "{} bytes, more than the {MAX_MCP_CONFIG_BYTES} read",
            metadata.len()
        )));
    }
    let mut text = String::new();
    file.take(MAX_MCP_CONFIG_BYTES).read_to_string(&mut text)?;
    Ok(text)
}

#[cfg(test)]
mod approval_tests {
    use super::approval_answer;

    #[test]
    fn an_answer_is_a_yes_or_a_no_with_its_reason() {
        for yes in [
            "allow",
            "Allow once",
            "yes",
            "y",
            "OK",
            r#"{"approved": true}"#,
        ] {
            assert_eq!(approval_answer(yes), Ok(()), "{yes}");
        }
        for (no, reason) in [
            ("deny", "the user denied it"),
            ("Deny: not there", "the user denied it: not there"),
            (
                "no, use the other folder",
                "the user denied it: use the other folder",
            ),
            ("maybe later", "the user denied it: maybe later"),
            (r#"{"approved": false}"#, "the user denied it"),
            (
                r#"{"approved": false, "reason": "why?"}"#,
                "the user denied it: why?",
            ),
            (r#"{"reason": "no flag"}"#, "the user denied it: no flag"),
        ] {
            assert_eq!(approval_answer(no), Err(String::from(reason)), "{no}");
        }
    }
}
