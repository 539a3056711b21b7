//! How a session is stopped, the same behind every front: on the shutdown signal or at
//! the session's timeout its adapter's session is cancelled, and if the adapter has not
//! returned [`CANCEL_GRACE`] later it is abandoned. From the signal, all that is left of
//! the session runs within [`STOP_BUDGET`].

use std::{pin::Pin, time::Duration};

use ambient_adapter::{CancellationToken, Outcome};
use ambient_protocol::{ResultPayload, error_chain as chain};
use tokio::time::{Instant, Sleep};
use tracing::{info, warn};

use crate::exit::SessionEnd;

/// How long an adapter has to return once its session is cancelled.
pub const CANCEL_GRACE: Duration = Duration::from_secs(3);

/// From a stop signal to the end of the session, whatever phase it was in: the platform
/// kills the pod after its grace period (30 s by default), and the runner promises to
/// exit within 10 s.
pub const STOP_BUDGET: Duration = Duration::from_secs(8);

/// Why a session is stopping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopCause {
    /// The process's stop signal.
    Signal,
    /// The session's timeout.
    Timeout,
}

/// What [`Stopping::next`] saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopStep {
    /// The adapter's session has just been cancelled, for this cause.
    Cancelled(StopCause),
    /// The adapter did not return within [`CANCEL_GRACE`] of the cancellation: abandon it.
    Abandon,
}

/// Watches the stop signal and the timeout for one run of an adapter, and cancels its
/// session when either comes.
#[derive(Debug)]
pub struct Stopping {
    shutdown: CancellationToken,
    cancel: CancellationToken,
    timeout: Option<Duration>,
    deadline: Pin<Box<Sleep>>,
    grace: Pin<Box<Sleep>>,
    cause: Option<StopCause>,
}

impl Stopping {
    /// Starts the clock: the session times out `timeout` from now (never when it is
    /// `None` or zero). `cancel` is the token the adapter's session was given.
    pub fn new(
        shutdown: CancellationToken,
        cancel: CancellationToken,
        timeout: Option<Duration>,
    ) -> Self {
        let timeout = timeout.filter(|t| !t.is_zero());
        Self {
            shutdown,
            cancel,
            deadline: Box::pin(tokio::time::sleep(timeout.unwrap_or(Duration::MAX))),
            timeout,
            grace: Box::pin(tokio::time::sleep(Duration::MAX)),
            cause: None,
        }
    }

    /// Why the session is stopping, once it is.
    pub fn cause(&self) -> Option<StopCause> {
        self.cause
    }

    /// Resolves when the session is cancelled (once: on the stop signal or at the timeout,
    /// the signal first) or, after that, when the adapter is to be abandoned.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: a call dropped before it resolves has changed nothing.
    pub async fn next(&mut self) -> StopStep {
        let cause = tokio::select! {
            biased;
            () = self.shutdown.cancelled(), if self.cause.is_none() => StopCause::Signal,
            () = &mut self.deadline, if self.cause.is_none() && self.timeout.is_some() => StopCause::Timeout,
            () = &mut self.grace, if self.cause.is_some() => {
                warn!("the adapter did not return after cancellation; abandoning it");
                return StopStep::Abandon;
            }
        };
        match cause {
            StopCause::Signal => info!("stopping: cancelling the adapter"),
            StopCause::Timeout => {
                warn!(timeout = ?self.timeout, "the session timed out: cancelling the adapter");
            }
        }
        self.cause = Some(cause);
        self.cancel.cancel();
        self.grace.as_mut().reset(Instant::now() + CANCEL_GRACE);
        StopStep::Cancelled(cause)
    }

    /// How the session ended, given what the adapter's run returned (`None`: it was
    /// abandoned), and its last result. A stop decides the end whatever the adapter said.
    pub fn end<E>(&self, outcome: Option<Result<Outcome, E>>) -> (SessionEnd, Option<ResultPayload>)
    where
        E: std::error::Error + 'static,
    {
        let result_of = |outcome: Outcome| match outcome {
            Outcome::Completed { result } | Outcome::Failed { result, .. } => result,
        };
        match (self.cause, outcome) {
            (Some(cause), outcome) => {
                let end = match cause {
                    StopCause::Signal => SessionEnd::Stopped,
                    StopCause::Timeout => SessionEnd::TimedOut,
                };
                (end, outcome.and_then(Result::ok).and_then(result_of))
            }
            (None, Some(Ok(Outcome::Completed { result }))) => (SessionEnd::Completed, result),
            (None, Some(Ok(Outcome::Failed { reason, result }))) => {
                (SessionEnd::Failed { reason }, result)
            }
            (None, Some(Err(error))) => (
                SessionEnd::Failed {
                    reason: chain(&error),
                },
                None,
            ),
            // The grace period starts only once stopping, so this is never reached; it
            // still reads as what it would mean.
            (None, None) => (
                SessionEnd::Failed {
                    reason: String::from("the adapter was abandoned"),
                },
                None,
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "a failed step is a failed test")]

    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("the graph is gone")]
    struct Gone;

    fn completed(text: &str) -> Option<Result<Outcome, Gone>> {
        let result = ResultPayload {
            result: Some(String::from(text)),
            ..ResultPayload::default()
        };
        Some(Ok(Outcome::Completed {
            result: Some(result),
        }))
    }

    #[tokio::test(start_paused = true)]
    async fn the_signal_cancels_the_session_and_the_grace_period_then_abandons_it() {
        let (shutdown, cancel) = (CancellationToken::new(), CancellationToken::new());
        let mut stopping = Stopping::new(shutdown.clone(), cancel.clone(), None);
        shutdown.cancel();
        assert_eq!(
            stopping.next().await,
            StopStep::Cancelled(StopCause::Signal)
        );
        assert!(cancel.is_cancelled());
        let cancelled_at = Instant::now();
        assert_eq!(stopping.next().await, StopStep::Abandon);
        assert_eq!(cancelled_at.elapsed(), CANCEL_GRACE);
        let (end, result) = stopping.end(completed("partial"));
        assert_eq!(end, SessionEnd::Stopped);
        assert_eq!(result.unwrap().result.as_deref(), Some("partial"));
    }

    #[tokio::test(start_paused = true)]
    async fn the_timeout_cancels_the_session_once_it_has_run_out() {
        let (shutdown, cancel) = (CancellationToken::new(), CancellationToken::new());
        let started = Instant::now();
        let timeout = Duration::from_secs(90);
        let mut stopping = Stopping::new(shutdown.clone(), cancel.clone(), Some(timeout));
        assert_eq!(
            stopping.next().await,
            StopStep::Cancelled(StopCause::Timeout)
        );
        assert_eq!(started.elapsed(), timeout);
        assert!(cancel.is_cancelled());
        // A signal after the timeout changes neither the cause nor the end.
        shutdown.cancel();
        assert_eq!(stopping.next().await, StopStep::Abandon);
        assert_eq!(stopping.cause(), Some(StopCause::Timeout));
        assert_eq!(stopping.end(completed("late")).0, SessionEnd::TimedOut);
    }

    #[tokio::test(start_paused = true)]
    async fn a_zero_timeout_is_none_and_without_a_stop_the_adapter_decides_the_end() {
        let (shutdown, cancel) = (CancellationToken::new(), CancellationToken::new());
        let mut stopping = Stopping::new(shutdown, cancel.clone(), Some(Duration::ZERO));
        let waited = tokio::time::timeout(Duration::from_secs(86_400), stopping.next()).await;
        assert!(waited.is_err(), "stopped without a cause: {waited:?}");
        assert!(!cancel.is_cancelled());
        assert_eq!(stopping.cause(), None);
        assert_eq!(stopping.end(completed("done")).0, SessionEnd::Completed);
        let failed = Some(Ok::<_, Gone>(Outcome::Failed {
            reason: String::from("the tool broke"),
            result: None,
        }));
        assert_eq!(
            stopping.end(failed).0,
            SessionEnd::Failed {
                reason: String::from("the tool broke")
            }
        );
        assert_eq!(
            stopping.end(Some(Err(Gone))).0,
            SessionEnd::Failed {
                reason: String::from("the graph is gone")
            }
        );
    }
}
