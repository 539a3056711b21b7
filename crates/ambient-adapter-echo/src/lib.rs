//! The echo adapter: the reference for adapter authors and the workload for tests and
//! benchmarks.
//!
//! Each message becomes one turn: `agent.running`, a text block that repeats it, the
//! report of a "model call" (`echo`, a token per word, for the session's trace),
//! optionally a burst of filler text blocks of a chosen size, a tool use of the `echo` tool
//! and its result, and a result. A message `sleep <seconds>` makes a slow turn: it waits
//! that long after repeating the message, so that a test can interrupt or stop a turn
//! that is plainly under way. A message `stream <n> <text>` streams `<text>` as `n` deltas
//! before its whole text, as a model's streamed answer does. A message
//! `later <seconds> <text>` is answered at once, and `<seconds>` after its turn the agent
//! takes a turn on its own that echoes `<text>`, as a background task's report comes
//! when nobody asked. An interrupt stops the burst
//! or the wait at once; messages that arrive during a turn are answered after it, in
//! order.
//!
//! It talks to no framework and does no IO.

use std::{collections::VecDeque, time::Duration};

use ambient_adapter::{
    Adapter, Event, Input, Inputs, ModelCall, Outcome, ResultPayload, Session, SessionClosed,
    UserMessage,
};
use serde_json::json;
use tokio::time::Instant;

/// The model the echo's calls name.
pub const ECHO_MODEL: &str = "echo-1";

/// How much an echo turn emits beyond its fixed frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct EchoConfig {
    /// Filler text blocks per turn.
    pub burst_events: u64,
    /// Length of each filler text, in bytes.
    pub burst_bytes: usize,
    /// Start each filler text with `t=<wall-clock microseconds> `, the time it was
    /// emitted, so that a benchmark can measure latency to the backend.
    pub stamp_bursts: bool,
}

/// The echo adapter.
#[derive(Debug, Default)]
pub struct EchoAdapter {
    config: EchoConfig,
    turns: u64,
    /// A turn to take on its own, and when.
    later: Option<(Instant, String)>,
}

impl EchoAdapter {
    /// An echo adapter with this burst configuration.
    pub fn new(config: EchoConfig) -> Self {
        Self {
            config,
            turns: 0,
            later: None,
        }
    }
}

/// The echo adapter never fails on its own; it only stops when the session is over.
pub type EchoError = SessionClosed;

/// The input side of a session, as a turn watches it.
struct Listening {
    /// Messages to answer after the current turn.
    pending: VecDeque<UserMessage>,
    /// The session ends once `pending` is done.
    ending: bool,
    /// No more input can come.
    closed: bool,
}

impl Listening {
    /// Takes one input that came during a turn; `true` for an interrupt.
    fn take(&mut self, input: Option<Input>) -> bool {
        match input {
            Some(Input::Interrupt) => return true,
            Some(Input::Message(text)) => self.pending.push_back(text),
            Some(Input::EndSession) => self.ending = true,
            // The echo works in no folder, with no model, and starts no task.
            Some(Input::WorkspaceChanged(_) | Input::SetModel(_) | Input::StopTask(_)) => {}
            None => self.closed = true,
        }
        false
    }

    /// The next input, or never once none can come.
    async fn next(&self, inputs: &mut Inputs) -> Option<Input> {
        if self.closed {
            return std::future::pending().await;
        }
        inputs.next().await
    }
}

impl Adapter for EchoAdapter {
    type Error = EchoError;

    async fn run(&mut self, session: &mut Session) -> Result<Outcome, Self::Error> {
        let mut listening = Listening {
            pending: VecDeque::new(),
            ending: false,
            closed: false,
        };
        let mut last = None;
        loop {
            let Some(message) = listening.pending.pop_front() else {
                if listening.ending || listening.closed {
                    break;
                }
                let cancel = session.cancellation().clone();
                let (_, inputs) = session.io();
                let later_at = self.later.as_ref().map(|(at, _)| *at);
                tokio::select! {
                    () = cancel.cancelled() => break,
                    input = listening.next(inputs) => {
                        // Nothing is running, so there is nothing to interrupt.
                        let _interrupt = listening.take(input);
                    }
                    () = tokio::time::sleep_until(later_at.unwrap_or_else(Instant::now)), if later_at.is_some() => {
                        if let Some((_, text)) = self.later.take() {
                            last = Some(self.turn(session, &text, &mut listening).await?);
                        }
                    }
                }
                continue;
            };
            // Its turn starts: its bytes go back to the session's budget.
            let text = message.into_text();
            last = Some(self.turn(session, &text, &mut listening).await?);
            if let Some((pause, said)) = later_turn(&text) {
                self.later = Some((Instant::now() + pause, said));
            }
        }
        Ok(Outcome::Completed { result: last })
    }
}

impl EchoAdapter {
    /// One turn; its result.
    async fn turn(
        &mut self,
        session: &mut Session,
        text: &str,
        listening: &mut Listening,
    ) -> Result<ResultPayload, SessionClosed> {
        let started = Instant::now();
        self.turns += 1;
        let turn = self.turns;
        let tool_id = format!("toolu_echo_{turn}");
        let filler = "x".repeat(self.config.burst_bytes);
        let stamp = self.config.stamp_bursts;
        let burst = (0..self.config.burst_events).map(move |_| {
            Event::Text(if stamp {
                stamped(&filler)
            } else {
                filler.clone()
            })
        });
        // A word is a token here: the call it reports is the echo's, not a model's.
        let words = u64::try_from(text.split_whitespace().count()).unwrap_or(u64::MAX);
        let opening = std::iter::once(Event::TurnStarted)
            .chain(streamed(text, turn))
            .chain([
                Event::Text(text.to_owned()),
                Event::ModelCall(ModelCall {
                    system: String::from("echo"),
                    model: Some(String::from(ECHO_MODEL)),
                    input_tokens: Some(words),
                    output_tokens: Some(words),
                }),
            ]);
        let closing = [
            Event::ToolUse {
                name: String::from("echo"),
                input: json!({ "text": text }),
                id: Some(tool_id.clone()),
            },
            Event::ToolResult {
                tool_use_id: Some(tool_id),
                content: json!(text),
                is_error: Some(false),
            },
        ];
        let session_id = session.info().session_id.clone();
        let result = |subtype: &str| ResultPayload {
            subtype: Some(subtype.to_owned()),
            duration_ms: Some(u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX)),
            duration_api_ms: Some(0),
            is_error: Some(false),
            num_turns: Some(turn),
            session_id: Some(session_id.clone()),
            total_cost_usd: Some(0.0),
            usage: Some(json!({ "input_tokens": words, "output_tokens": words })),
            result: Some(text.to_owned()),
        };
        let pause = slow_turn(text);
        let cancel = session.cancellation().clone();
        let (emitter, inputs) = session.io();
        let interrupted = 'turn: {
            for event in opening.chain(burst).chain(closing) {
                let repeats_the_message = matches!(&event, Event::Text(said) if said == text);
                // Input is watched while emitting so that an interrupt acts at once, not
                // after the burst.
                loop {
                    tokio::select! {
                        biased;
                        input = listening.next(inputs) => if listening.take(input) {
                            break 'turn true;
                        },
                        sent = emitter.emit(event.clone()) => {
                            sent?;
                            break;
                        }
                    }
                }
                if repeats_the_message && let Some(pause) = pause {
                    let until = Instant::now() + pause;
                    loop {
                        tokio::select! {
                            biased;
                            () = cancel.cancelled() => return Err(SessionClosed),
                            input = listening.next(inputs) => if listening.take(input) {
                                break 'turn true;
                            },
                            () = tokio::time::sleep_until(until) => break,
                        }
                    }
                }
            }
            false
        };
        let result = if interrupted {
            emitter
                .emit(Event::Log(String::from("interrupted")))
                .await?;
            result("interrupted")
        } else {
            result("success")
        };
        emitter.emit(Event::turn_ended(result.clone())).await?;
        Ok(result)
    }
}

/// The deltas of a message `stream <n> <text>`: `<text>` in `n` pieces of near equal size.
fn streamed(message: &str, turn: u64) -> Vec<Event> {
    let Some((count, text)) = message
        .strip_prefix("stream ")
        .and_then(|rest| rest.split_once(' '))
        .and_then(|(count, text)| Some((count.parse::<usize>().ok()?, text)))
    else {
        return Vec::new();
    };
    let chars: Vec<char> = text.chars().collect();
    let size = chars.len().div_ceil(count.max(1)).max(1);
    chars
        .chunks(size)
        .map(|piece| Event::TextDelta {
            stream: format!("echo-{turn}"),
            data: piece.iter().collect(),
        })
        .collect()
}

/// The turn a message `later <seconds> <text>` asks for: when, and what it says.
fn later_turn(text: &str) -> Option<(Duration, String)> {
    let (seconds, said) = text.trim().strip_prefix("later ")?.split_once(' ')?;
    let pause = Duration::try_from_secs_f64(seconds.parse::<f64>().ok()?).ok()?;
    Some((pause, said.to_owned()))
}

/// The wait of a slow turn: a message `sleep <seconds>`.
fn slow_turn(text: &str) -> Option<Duration> {
    let seconds = text
        .trim()
        .strip_prefix("sleep ")?
        .trim()
        .parse::<f64>()
        .ok()?;
    Duration::try_from_secs_f64(seconds).ok()
}

/// `filler` with its start replaced by the current wall-clock time in microseconds.
fn stamped(filler: &str) -> String {
    let micros = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros());
    let mut text = format!("t={micros} ");
    let rest = filler.len().saturating_sub(text.len());
    text.push_str(&filler[..rest]);
    text
}

#[cfg(test)]
mod tests;
