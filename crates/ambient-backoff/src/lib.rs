//! Delays between attempts: capped exponential backoff with jitter, the one policy every
//! client of the runner retries with (the WebSocket's reconnects, the backend's status
//! calls, a LangGraph Server's dropped streams).
//!
//! The jitter spreads retries: many runners cut off by the same outage do not all come
//! back in the same instant. This crate only computes delays; it neither sleeps nor
//! counts attempts, which is each caller's business.

use std::time::Duration;

/// How delays grow.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BackoffPolicy {
    /// The first delay.
    pub initial: Duration,
    /// The largest delay.
    pub max: Duration,
    /// Growth per attempt.
    pub factor: f64,
    /// A connection that lasted this long starts the next sequence from `initial` again
    /// (for callers that keep a connection, such as the WebSocket).
    pub reset_after: Duration,
}

impl Default for BackoffPolicy {
    /// kube-runtime's defaults: 0.8 s doubling to 30 s, reset after 120 s of stability.
    fn default() -> Self {
        Self {
            initial: Duration::from_millis(800),
            max: Duration::from_secs(30),
            factor: 2.0,
            reset_after: Duration::from_secs(120),
        }
    }
}

impl BackoffPolicy {
    /// A policy from `initial`, doubling up to `max`.
    pub const fn doubling(initial: Duration, max: Duration) -> Self {
        Self {
            initial,
            max,
            factor: 2.0,
            reset_after: Duration::from_secs(120),
        }
    }
}

/// One sequence of delays under a policy.
#[derive(Debug, Clone)]
pub struct Backoff {
    policy: BackoffPolicy,
    next: Duration,
}

impl Backoff {
    /// A sequence at its first step.
    pub fn new(policy: BackoffPolicy) -> Self {
        Self {
            policy,
            next: policy.initial,
        }
    }

    /// The delay before the next attempt: between half and all of the current step, which
    /// then grows by the policy's factor up to its cap.
    pub fn next_delay(&mut self) -> Duration {
        let step = self.next;
        self.next = step.mul_f64(self.policy.factor).min(self.policy.max);
        step.mul_f64(0.5 + fastrand::f64() * 0.5)
    }

    /// Back to the first step.
    pub fn reset(&mut self) {
        self.next = self.policy.initial;
    }

    /// The policy in use.
    pub fn policy(&self) -> &BackoffPolicy {
        &self.policy
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_to_the_cap_with_jitter_and_reset() {
        let mut backoff = Backoff::new(BackoffPolicy::doubling(
            Duration::from_secs(1),
            Duration::from_secs(8),
        ));
        for step in [1, 2, 4, 8, 8, 8] {
            let delay = backoff.next_delay();
            let step = Duration::from_secs(step);
            assert!(
                delay <= step && delay >= step / 2,
                "{delay:?} outside [{:?}, {step:?}]",
                step / 2
            );
        }
        backoff.reset();
        assert!(backoff.next_delay() <= Duration::from_secs(1));
    }

    #[test]
    fn jitter_spreads_the_same_step() {
        let policy = BackoffPolicy::doubling(Duration::from_secs(10), Duration::from_secs(10));
        let delays: std::collections::HashSet<Duration> =
            (0..20).map(|_| Backoff::new(policy).next_delay()).collect();
        assert!(delays.len() > 1, "twenty runners would come back together");
    }
}
