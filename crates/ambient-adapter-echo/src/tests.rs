//! The echo adapter driven through a real session's channels.

use std::time::Duration;

use ambient_adapter::{
    CancellationToken, Continuation, Input, Mode, Session, SessionInfo, SessionOutput, Workspace,
};
use tokio::sync::mpsc;

use super::*;

struct Harness {
    output: mpsc::Receiver<SessionOutput>,
    input: mpsc::UnboundedSender<Input>,
    cancel: CancellationToken,
    session: Session,
}

/// A session as the host starts it: the prompt as the first message, and a batch
/// session's input ended after it.
fn harness(prompt: &str, mode: Mode) -> Harness {
    let (output_tx, output) = mpsc::channel(4);
    let (input, input_rx) = mpsc::unbounded_channel();
    if !prompt.is_empty() {
        input.send(Input::Message(prompt.into())).unwrap();
    }
    if mode == Mode::Batch {
        input.send(Input::EndSession).unwrap();
    }
    let cancel = CancellationToken::new();
    let info = SessionInfo {
        session_id: String::from("s1"),
        mode,
        is_continuation: false,
        workspace: Workspace {
            main: std::env::temp_dir(),
            extra: Vec::new(),
            artifacts: std::env::temp_dir(),
        },
    };
    let session = Session::new(
        info,
        output_tx,
        input_rx,
        cancel.clone(),
        Continuation::default(),
    );
    Harness {
        output,
        input,
        cancel,
        session,
    }
}

/// A one-line name per event, so that tests read as data.
fn name(output: &SessionOutput) -> String {
    match output {
        SessionOutput::Event(Event::TurnStarted) => String::from("running"),
        SessionOutput::Event(Event::Text(text)) => format!("text {text}"),
        SessionOutput::Event(Event::ToolUse { name, .. }) => format!("tool_use {name}"),
        SessionOutput::Event(Event::ToolResult { content, .. }) => format!("tool_result {content}"),
        SessionOutput::Event(Event::TurnEnded { result, .. }) => {
            format!("result {}", result.subtype.as_deref().unwrap_or("-"))
        }
        SessionOutput::Event(Event::Log(line)) => format!("log {line}"),
        SessionOutput::Event(Event::ModelCall(call)) => format!(
            "model {} {:?}/{:?}",
            call.model.as_deref().unwrap_or("-"),
            call.input_tokens,
            call.output_tokens
        ),
        other => format!("{other:?}"),
    }
}

/// Collects the names of what the adapter emits, in a task of its own, and does `act` once
/// when `when` says so (given how many came before and the name).
fn reader(
    mut output: mpsc::Receiver<SessionOutput>,
    when: impl Fn(usize, &str) -> bool + Send + 'static,
    act: impl FnOnce() + Send + 'static,
) -> tokio::task::JoinHandle<Vec<String>> {
    tokio::spawn(async move {
        let mut act = Some(act);
        let mut names = Vec::new();
        while let Some(event) = output.recv().await {
            let name = name(&event);
            if when(names.len(), &name)
                && let Some(act) = act.take()
            {
                act();
            }
            names.push(name);
        }
        names
    })
}

/// Runs the adapter to its end while collecting what it emitted.
async fn run_to_end(mut h: Harness, config: EchoConfig) -> (Outcome, Vec<String>) {
    let mut adapter = EchoAdapter::new(config);
    let collect = tokio::spawn(async move {
        let mut names = Vec::new();
        while let Some(output) = h.output.recv().await {
            names.push(name(&output));
        }
        names
    });
    let outcome = adapter.run(&mut h.session).await.unwrap();
    drop(h.session);
    (outcome, collect.await.unwrap())
}

#[tokio::test]
async fn a_batch_session_is_one_turn() {
    let h = harness("hello", Mode::Batch);
    let (outcome, names) = run_to_end(h, EchoConfig::default()).await;
    assert_eq!(
        names,
        [
            "running",
            "text hello",
            "model echo-1 Some(1)/Some(1)",
            "tool_use echo",
            r#"tool_result "hello""#,
            "result success"
        ]
    );
    let Outcome::Completed {
        result: Some(result),
    } = outcome
    else {
        panic!("expected a completed outcome with a result, got {outcome:?}");
    };
    assert_eq!(result.result.as_deref(), Some("hello"));
    assert_eq!(result.num_turns, Some(1));
}

#[tokio::test]
async fn an_interactive_session_answers_each_message_until_it_is_ended() {
    let h = harness("", Mode::Interactive);
    // An interrupt while no turn runs has nothing to stop.
    h.input.send(Input::Interrupt).unwrap();
    h.input.send(Input::Message("a".into())).unwrap();
    h.input.send(Input::Message("b".into())).unwrap();
    h.input.send(Input::EndSession).unwrap();
    let (_, names) = run_to_end(h, EchoConfig::default()).await;
    let texts: Vec<_> = names.iter().filter(|n| n.starts_with("text")).collect();
    assert_eq!(texts, ["text a", "text b"]);
    assert_eq!(names.iter().filter(|n| *n == "result success").count(), 2);
}

#[tokio::test]
async fn an_interrupt_stops_a_burst_at_once() {
    let mut h = harness("go", Mode::Batch);
    let mut adapter = EchoAdapter::new(EchoConfig {
        burst_events: 1_000_000,
        burst_bytes: 8,
        stamp_bursts: false,
    });
    let input = h.input.clone();
    let reader = reader(
        h.output,
        |count, _| count == 10,
        move || input.send(Input::Interrupt).unwrap(),
    );
    adapter.run(&mut h.session).await.unwrap();
    drop(h.session);
    let names = reader.await.unwrap();
    assert!(
        names.len() < 1_000,
        "the burst went on after the interrupt: {} events",
        names.len()
    );
    assert_eq!(names.last().map(String::as_str), Some("result interrupted"));
}

#[tokio::test(start_paused = true)]
async fn a_slow_turn_waits_and_an_interrupt_cuts_it_short() {
    let h = harness("sleep 30", Mode::Batch);
    let started = tokio::time::Instant::now();
    let (_, names) = run_to_end(h, EchoConfig::default()).await;
    assert!(started.elapsed() >= Duration::from_secs(30));
    assert_eq!(names.last().map(String::as_str), Some("result success"));

    let mut h = harness("sleep 30", Mode::Batch);
    let input = h.input.clone();
    let reader = reader(
        h.output,
        |_, name| name == "text sleep 30",
        move || input.send(Input::Interrupt).unwrap(),
    );
    let started = tokio::time::Instant::now();
    EchoAdapter::default().run(&mut h.session).await.unwrap();
    drop(h.session);
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "the interrupt waited for the sleep"
    );
    let names = reader.await.unwrap();
    assert_eq!(
        names,
        [
            "running",
            "text sleep 30",
            "log interrupted",
            "result interrupted"
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn a_stop_mid_turn_returns_at_once_and_emits_nothing_more() {
    let h = harness("sleep 30", Mode::Interactive);
    let cancel = h.cancel.clone();
    let reader = reader(
        h.output,
        |_, name| name == "text sleep 30",
        move || cancel.cancel(),
    );
    let mut session = h.session;
    let started = tokio::time::Instant::now();
    assert_eq!(
        EchoAdapter::default().run(&mut session).await,
        Err(SessionClosed)
    );
    assert!(started.elapsed() < Duration::from_secs(30));
    drop(session);
    assert_eq!(reader.await.unwrap(), ["running", "text sleep 30"]);
}

#[tokio::test]
async fn cancellation_ends_the_session_without_more_events() {
    let h = harness("", Mode::Interactive);
    h.cancel.cancel();
    let (outcome, names) = run_to_end(h, EchoConfig::default()).await;
    assert!(names.is_empty(), "{names:?}");
    assert_eq!(outcome, Outcome::Completed { result: None });
}

#[tokio::test]
async fn a_message_during_a_turn_is_answered_after_it() {
    let h = harness("first", Mode::Interactive);
    h.input.send(Input::Message("second".into())).unwrap();
    h.input.send(Input::EndSession).unwrap();
    let (_, names) = run_to_end(
        h,
        EchoConfig {
            burst_events: 3,
            burst_bytes: 1,
            stamp_bursts: false,
        },
    )
    .await;
    let texts: Vec<_> = names
        .iter()
        .filter(|n| n.starts_with("text") && *n != "text x")
        .collect();
    assert_eq!(texts, ["text first", "text second"]);
}
