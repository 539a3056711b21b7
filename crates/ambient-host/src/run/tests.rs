//! The host's rules, behind a front that records what it is told: what the user is asked
//! and when, the prompt, the stop in each phase, the drain.

use std::{path::PathBuf, sync::Arc, time::Duration};

use ambient_adapter::{Adapter, Outcome, ResultPayload, Session, SessionClosed};
use ambient_adapter_echo::EchoAdapter;
use ambient_protocol::Secret;
use tokio::sync::{Mutex, mpsc};

use super::*;
use crate::{
    config::{AgentSettings, WorkspaceSettings},
    front::Opening,
};

/// How the test front opens its session.
#[derive(Debug, Clone)]
enum Open {
    Fresh,
    Continuing(Option<&'static str>),
    Hang,
}

/// A front that sends everything it is told to the test, and takes the input the test
/// gives it as the platform's requests.
struct Recorder {
    open: Open,
    told: mpsc::UnboundedSender<Relayed>,
    requests: mpsc::UnboundedReceiver<Input>,
    ending: Arc<Mutex<Option<Ending>>>,
}

impl Front for Recorder {
    type Request = Input;

    async fn open(&mut self) -> Result<Opening, SessionEnd> {
        match self.open {
            Open::Fresh => Ok(Opening::default()),
            Open::Continuing(parent_prompt) => Ok(Opening {
                is_continuation: true,
                parent_prompt: parent_prompt.map(str::to_owned),
                ..Opening::default()
            }),
            Open::Hang => std::future::pending().await,
        }
    }

    fn relay(&mut self, item: Relayed) {
        let _told = self.told.send(item);
    }

    fn is_backlogged(&self) -> bool {
        false
    }

    async fn next(&mut self) -> Step<Input> {
        match self.requests.recv().await {
            Some(input) => Step::Request(input),
            None => std::future::pending().await,
        }
    }

    async fn send_backlog(&mut self) {
        std::future::pending().await
    }

    fn handle(&mut self, input: Input, control: &mut Control<'_>) {
        control.deliver(input);
    }

    async fn finish(self, ending: Ending) -> bool {
        *self.ending.lock().await = Some(ending);
        true
    }
}

/// A session under test: what its front is told, the platform's side, and its end.
struct Test {
    told: mpsc::UnboundedReceiver<Relayed>,
    say: mpsc::UnboundedSender<Input>,
    ending: Arc<Mutex<Option<Ending>>>,
    shutdown: CancellationToken,
    running: tokio::task::JoinHandle<SessionReport>,
    _workspace: tempfile::TempDir,
}

const PLANTED: &str = "planted-secret-4242";

fn config(prompt: &str, mode: Mode, timeout: Option<Duration>) -> HostConfig {
    HostConfig {
        session_id: String::from("s1"),
        prompt: prompt.to_owned(),
        mode,
        // Set by `start`, in a folder of the test's own.
        workspace: PathBuf::new(),
        timeout,
        parent_session_id: Some(String::from("parent-1")),
        redactor: Redactor::new([&Secret::new(PLANTED)]),
        github_token: None,
        gitlab_token: None,
        workspace_settings: WorkspaceSettings::default(),
        agent: AgentSettings::default(),
        limits: crate::Limits::default(),
        trace_identity: crate::trace::TraceIdentity::default(),
    }
}

fn start(mut config: HostConfig, open: Open, adapter: impl Adapter + 'static) -> Test {
    let workspace = tempfile::tempdir().unwrap();
    config.workspace = workspace.path().to_owned();
    let (told_tx, told) = mpsc::unbounded_channel();
    let (say, requests) = mpsc::unbounded_channel();
    let ending = Arc::new(Mutex::new(None));
    let shutdown = CancellationToken::new();
    let front = Recorder {
        open,
        told: told_tx,
        requests,
        ending: Arc::clone(&ending),
    };
    let running = tokio::spawn(run(config, front, adapter, shutdown.clone()));
    Test {
        told,
        say,
        ending,
        shutdown,
        running,
        _workspace: workspace,
    }
}

/// One line per item the front was told.
fn show(item: &Relayed) -> String {
    match item {
        Relayed::Event(Event::TurnEnded { result, next }) => format!(
            "result {} {next:?}",
            result.result.as_deref().unwrap_or_default()
        ),
        Relayed::Event(Event::Text(text)) => format!("text {text}"),
        Relayed::Event(Event::Log(line)) => format!("log {line}"),
        Relayed::Event(Event::TurnStarted) => String::from("running"),
        Relayed::Event(Event::ToolUse { .. } | Event::ToolResult { .. }) => String::from("tool"),
        Relayed::Event(Event::ModelCall(_)) => String::from("model"),
        Relayed::Event(other) => format!("{other:?}"),
        Relayed::Waiting => String::from("waiting"),
        Relayed::Prompt(prompt) => format!("prompt {prompt}"),
        Relayed::Store(stored) => format!("store {}", stored.key),
    }
}

impl Test {
    /// Everything told until (and with) the first item `stop` matches.
    async fn told_until(&mut self, stop: &str) -> Vec<String> {
        let mut lines = Vec::new();
        while let Some(item) = self.told.recv().await {
            let line = show(&item);
            let done = line == stop;
            lines.push(line);
            if done {
                return lines;
            }
        }
        panic!("`{stop}` was never told: {lines:#?}");
    }

    /// The report, and everything told that was not read yet.
    async fn end(mut self) -> (SessionReport, Vec<String>, Ending) {
        let report = self.running.await.unwrap();
        let mut rest = Vec::new();
        while let Ok(item) = self.told.try_recv() {
            rest.push(show(&item));
        }
        let ending = self.ending.lock().await.clone().unwrap();
        (report, rest, ending)
    }
}

#[tokio::test]
async fn a_batch_session_runs_its_prompt_once_and_never_asks_the_user() {
    let test = start(
        config("hi", Mode::Batch, None),
        Open::Fresh,
        EchoAdapter::default(),
    );
    // A batch session takes no messages.
    test.say.send(Input::Message("ignored".into())).unwrap();
    let (report, told, ending) = test.end().await;
    assert_eq!(
        told,
        [
            "prompt hi",
            "running",
            "text hi",
            "model",
            "tool",
            "tool",
            "result hi User"
        ]
    );
    assert_eq!(report.end, SessionEnd::Completed);
    assert_eq!(ending.result.unwrap().result.as_deref(), Some("hi"));
}

#[tokio::test]
async fn an_interactive_session_waits_after_each_turn_until_it_is_ending() {
    let mut test = start(
        config("a", Mode::Interactive, None),
        Open::Fresh,
        EchoAdapter::default(),
    );
    test.told_until("waiting").await;
    // Empty messages are not turns.
    test.say.send(Input::Message("  ".into())).unwrap();
    test.say.send(Input::Message("b".into())).unwrap();
    let told = test.told_until("waiting").await;
    assert_eq!(told.first().map(String::as_str), Some("running"));
    assert!(told.contains(&String::from("text b")), "{told:?}");
    // A turn that ends after the session was ended does not ask the user.
    test.say.send(Input::Message("sleep 0.01".into())).unwrap();
    test.say.send(Input::EndSession).unwrap();
    let (report, rest, _) = test.end().await;
    assert_eq!(
        rest.last().map(String::as_str),
        Some("result sleep 0.01 User")
    );
    assert!(!rest.contains(&String::from("waiting")), "{rest:?}");
    assert_eq!(report.end, SessionEnd::Completed);
}

#[tokio::test]
async fn a_continuation_never_runs_the_prompt_its_parent_ran() {
    let mut test = start(
        config("fix it", Mode::Batch, None),
        Open::Continuing(Some("fix it")),
        EchoAdapter::default(),
    );
    let told = test
        .told_until("log ♻️ Reusing workspace from session parent-1")
        .await;
    assert_eq!(told.len(), 1);
    let note = test.told.recv().await.map(|item| show(&item)).unwrap();
    assert!(note.contains("waits for a message"), "{note}");
    test.say.send(Input::Message("next".into())).unwrap();
    let told = test.told_until("waiting").await;
    assert!(told.contains(&String::from("text next")), "{told:?}");
    test.say.send(Input::EndSession).unwrap();
    let (report, rest, _) = test.end().await;
    assert!(!rest.iter().any(|l| l.contains("fix it")), "{rest:?}");
    assert_eq!(report.end, SessionEnd::Completed);
}

#[tokio::test(start_paused = true)]
async fn a_signal_while_the_front_opens_stops_the_session_before_the_adapter() {
    let test = start(
        config("hi", Mode::Batch, None),
        Open::Hang,
        EchoAdapter::default(),
    );
    tokio::task::yield_now().await;
    test.shutdown.cancel();
    let (report, told, ending) = test.end().await;
    assert_eq!(report.end, SessionEnd::Stopped);
    assert!(told.is_empty(), "{told:?}");
    assert!(ending.stopping);
}

#[tokio::test(start_paused = true)]
async fn the_timeout_counts_from_the_start_of_the_session() {
    let started = Instant::now();
    let test = start(
        config("hi", Mode::Batch, Some(Duration::from_secs(90))),
        Open::Hang,
        EchoAdapter::default(),
    );
    let (report, _, ending) = test.end().await;
    assert_eq!(report.end, SessionEnd::TimedOut);
    assert_eq!(started.elapsed(), Duration::from_secs(90));
    assert!(!ending.stopping, "a timeout is no stop signal");
}

#[tokio::test(start_paused = true)]
async fn a_stop_mid_turn_reports_the_last_turn_that_ended() {
    let mut test = start(
        config("first", Mode::Interactive, None),
        Open::Fresh,
        EchoAdapter::default(),
    );
    test.told_until("waiting").await;
    test.say.send(Input::Message("sleep 30".into())).unwrap();
    test.told_until("text sleep 30").await;
    test.shutdown.cancel();
    let (report, rest, ending) = test.end().await;
    assert_eq!(report.end, SessionEnd::Stopped);
    assert!(rest.is_empty(), "told after the stop: {rest:?}");
    // The echo returned at the failed emit, without a result: the host kept the last.
    assert_eq!(report.result.unwrap().result.as_deref(), Some("first"));
    assert!(ending.stopping);
}

/// An adapter that leaves a task behind, holding its emitter and emitting now and then.
struct Leaky;

impl Adapter for Leaky {
    type Error = SessionClosed;

    async fn run(&mut self, session: &mut Session) -> Result<Outcome, SessionClosed> {
        let (emitter, _) = session.io();
        let emitter = emitter.clone();
        session.emit(Event::Text(format!("echo {PLANTED}"))).await?;
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                if emitter
                    .emit(Event::Log(String::from("tick")))
                    .await
                    .is_err()
                {
                    return;
                }
            }
        });
        Ok(Outcome::Completed {
            result: Some(ResultPayload::default()),
        })
    }
}

#[tokio::test(start_paused = true)]
async fn what_an_adapter_leaves_behind_is_relayed_for_a_grace_period_then_left() {
    let started = Instant::now();
    let test = start(config("", Mode::Interactive, None), Open::Fresh, Leaky);
    let (report, told, _) = test.end().await;
    assert_eq!(report.end, SessionEnd::Completed);
    assert!(started.elapsed() <= CANCEL_GRACE + Duration::from_secs(1));
    assert_eq!(
        told.first().map(String::as_str),
        Some("text echo ***REDACTED***")
    );
    assert!(told.contains(&String::from("log tick")), "{told:?}");
}

#[tokio::test]
async fn a_secret_streamed_in_pieces_reaches_no_front() {
    for pieces in [2, 3, 30] {
        let message = format!("stream {pieces} the token is {PLANTED}, keep it");
        let test = start(
            config(&message, Mode::Batch, None),
            Open::Fresh,
            EchoAdapter::default(),
        );
        let (_, told, _) = test.end().await;
        let deltas: String = told
            .iter()
            .filter_map(|line| line.strip_prefix("TextDelta { stream: \"echo-1\", data: \""))
            .map(|rest| rest.trim_end_matches("\" }"))
            .collect();
        assert_eq!(deltas, "the token is ***REDACTED***, keep it", "{told:#?}");
        for part in PLANTED.as_bytes().windows(6) {
            let part = std::str::from_utf8(part).unwrap();
            assert!(
                !told.iter().any(|line| line.contains(part)),
                "{pieces} pieces: {part:?} went out: {told:#?}"
            );
        }
    }
}
