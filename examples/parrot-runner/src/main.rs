//! A runner for Parrot, a made-up agent framework: the whole of what a framework needs to
//! run on the platform. Parrot answers a prompt by repeating it word by word, after
//! "looking it up" with its one tool.
//!
//! `cargo run -p parrot-runner -- --local --prompt "hello there"`

use std::{convert::Infallible, time::Instant};

use ambient_adapter::{Adapter, Event, Input, Outcome, ResultPayload, Session, SessionClosed};
use serde_json::json;

/// The framework: what a third party already has. Here, one call that yields steps.
mod parrot {
    /// One step of Parrot's work.
    pub(crate) enum Step {
        Lookup(String),
        Found(String),
        Word(String),
    }

    /// Parrot's answer to a prompt, step by step.
    pub(crate) fn answer(prompt: &str) -> Vec<Step> {
        let mut steps = vec![
            Step::Lookup(prompt.to_owned()),
            Step::Found(prompt.len().to_string()),
        ];
        steps.extend(
            prompt
                .split_inclusive(' ')
                .map(|w| Step::Word(w.to_owned())),
        );
        steps
    }
}

/// The adapter: Parrot's steps as runner events, one turn per prompt.
struct ParrotAdapter;

impl Adapter for ParrotAdapter {
    type Error = SessionClosed;

    async fn run(&mut self, session: &mut Session) -> Result<Outcome, SessionClosed> {
        let mut last = None;
        let mut turns = 0;
        // Each message is a turn; the host sends the prompt first where it is to run, and
        // ends a batch session's input after it.
        loop {
            let cancel = session.cancellation().clone();
            let text = match tokio::select! {
                () = cancel.cancelled() => None,
                input = session.next_input() => input,
            } {
                Some(Input::Message(message)) => message.into_text(),
                Some(
                    Input::Interrupt
                    | Input::WorkspaceChanged(_)
                    | Input::SetModel(_)
                    | Input::StopTask(_),
                ) => {
                    continue;
                }
                Some(Input::EndSession) | None => break,
            };
            turns += 1;
            let started = Instant::now();
            session.emit(Event::TurnStarted).await?;
            let stream = format!("parrot-{turns}");
            for step in parrot::answer(&text) {
                let event = match step {
                    parrot::Step::Lookup(query) => Event::ToolUse {
                        name: String::from("lookup"),
                        input: json!({ "query": query }),
                        id: Some(format!("lookup-{turns}")),
                    },
                    parrot::Step::Found(length) => Event::ToolResult {
                        tool_use_id: Some(format!("lookup-{turns}")),
                        content: json!(format!("{length} characters")),
                        is_error: Some(false),
                    },
                    parrot::Step::Word(word) => Event::TextDelta {
                        stream: stream.clone(),
                        data: word,
                    },
                };
                session.emit(event).await?;
            }
            session.emit(Event::Text(text.clone())).await?;
            let result = ResultPayload {
                subtype: Some(String::from("success")),
                num_turns: Some(turns),
                duration_ms: u64::try_from(started.elapsed().as_millis()).ok(),
                result: Some(text),
                ..ResultPayload::default()
            };
            session.emit(Event::turn_ended(result.clone())).await?;
            last = Some(result);
        }
        Ok(Outcome::Completed { result: last })
    }
}

/// Runs an Ambient Code Platform session with Parrot.
#[derive(Debug, clap::Parser)]
#[command(name = "parrot-runner", version, about)]
struct Cli {
    #[command(flatten)]
    common: ambient_cli::CommonArgs,
}

fn main() -> std::process::ExitCode {
    let cli: Cli = match ambient_cli::parse() {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    ambient_cli::execute(cli.common, Ok::<_, Infallible>(ParrotAdapter))
}
