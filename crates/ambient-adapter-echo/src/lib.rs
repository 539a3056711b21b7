//! The echo adapter: the reference for adapter authors and the workload for tests and
//! benchmarks.
//!
//! Each prompt becomes one turn: `agent.running`, a text block that repeats the prompt,
//! optionally a burst of filler text blocks of a chosen size, a tool use of the `echo` tool
//! and its result, and a result. An interrupt stops the burst at once; messages that
//! arrive during a turn are answered after it, in order.
//!
//! It talks to no framework and does no IO.

use std::{collections::VecDeque, time::Instant};

use ambient_adapter::{
    Adapter, Event, Input, Mode, Outcome, ResultPayload, Session, SessionClosed,
};
use serde_json::json;

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
}

impl EchoAdapter {
    /// An echo adapter with this burst configuration.
    pub fn new(config: EchoConfig) -> Self {
        Self { config, turns: 0 }
    }
}

/// How a turn ended.
enum TurnEnd {
    Finished(ResultPayload),
    Interrupted(ResultPayload),
    Cancelled,
}

/// The echo adapter never fails on its own; it only stops when the session closes.
pub type EchoError = SessionClosed;

impl Adapter for EchoAdapter {
    type Error = EchoError;

    async fn run(&mut self, session: &mut Session) -> Result<Outcome, Self::Error> {
        let mut pending: VecDeque<String> = VecDeque::new();
        let mut last = None;
        let prompt = session.info().prompt.clone();
        if !prompt.is_empty() && !session.info().is_continuation {
            pending.push_back(prompt);
        }
        let mode = session.info().mode;
        let mut ending = false;
        loop {
            let Some(text) = pending.pop_front() else {
                if mode == Mode::Batch || ending {
                    break;
                }
                let cancel = session.cancellation().clone();
                let input = tokio::select! {
                    () = cancel.cancelled() => break,
                    input = session.next_input() => input,
                };
                match input {
                    Some(Input::Message(text)) => pending.push_back(text),
                    // Nothing is running, so there is nothing to interrupt; and the echo
                    // works in no folder.
                    Some(Input::Interrupt | Input::WorkspaceChanged(_)) => {}
                    Some(Input::EndSession) | None => break,
                }
                continue;
            };
            match self.turn(session, &text, &mut pending, &mut ending).await? {
                TurnEnd::Finished(result) | TurnEnd::Interrupted(result) => last = Some(result),
                TurnEnd::Cancelled => break,
            }
        }
        Ok(Outcome::Completed { result: last })
    }
}

impl EchoAdapter {
    async fn turn(
        &mut self,
        session: &mut Session,
        text: &str,
        pending: &mut VecDeque<String>,
        ending: &mut bool,
    ) -> Result<TurnEnd, SessionClosed> {
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
        let events = [Event::TurnStarted, Event::Text(text.to_owned())]
            .into_iter()
            .chain(burst)
            .chain([
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
            ]);
        let session_id = session.info().session_id.clone();
        let result = |subtype: &str, is_error| ResultPayload {
            subtype: Some(subtype.to_owned()),
            duration_ms: Some(u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX)),
            duration_api_ms: Some(0),
            is_error: Some(is_error),
            num_turns: Some(turn),
            session_id: Some(session_id.clone()),
            total_cost_usd: Some(0.0),
            usage: Some(json!({ "input_tokens": 0, "output_tokens": 0 })),
            result: Some(text.to_owned()),
        };
        let cancel = session.cancellation().clone();
        let (emitter, inputs) = session.io();
        for event in events {
            // Input is watched while emitting so that an interrupt acts at once, not after
            // the burst.
            let mut event = Some(event);
            while let Some(next) = event.take() {
                tokio::select! {
                    biased;
                    () = cancel.cancelled() => return Ok(TurnEnd::Cancelled),
                    input = inputs.next(), if !*ending => match input {
                        Some(Input::Interrupt) => {
                            let interrupted = result("interrupted", false);
                            emitter.emit(Event::Log(String::from("interrupted"))).await?;
                            emitter.emit(Event::Result(interrupted.clone())).await?;
                            return Ok(TurnEnd::Interrupted(interrupted));
                        }
                        Some(Input::Message(text)) => { pending.push_back(text); event = Some(next); }
                        Some(Input::WorkspaceChanged(_)) => event = Some(next),
                        Some(Input::EndSession) | None => { *ending = true; event = Some(next); }
                    },
                    sent = emitter.emit(next.clone()) => sent?,
                }
            }
        }
        let finished = result("success", false);
        emitter.emit(Event::Result(finished.clone())).await?;
        Ok(TurnEnd::Finished(finished))
    }
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
