//! Delays between connection attempts.

use std::time::Duration;

/// Capped exponential backoff with jitter, reset once a connection has been stable.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BackoffPolicy {
    /// The first delay.
    pub initial: Duration,
    /// The largest delay.
    pub max: Duration,
    /// Growth per attempt.
    pub factor: f64,
    /// A connection that lasted this long resets the delay to `initial`.
    pub reset_after: Duration,
}

impl Default for BackoffPolicy {
    fn default() -> Self {
        Self {
            initial: Duration::from_millis(800),
            max: Duration::from_secs(30),
            factor: 2.0,
            reset_after: Duration::from_secs(120),
        }
    }
}

/// The state of one backoff sequence.
#[derive(Debug)]
pub(crate) struct Backoff {
    policy: BackoffPolicy,
    next: Duration,
}

impl Backoff {
    pub(crate) fn new(policy: BackoffPolicy) -> Self {
        Self {
            policy,
            next: policy.initial,
        }
    }

    /// The delay before the next attempt: between half and all of the current step, so
    /// that many runners cut off together do not return together.
    pub(crate) fn next_delay(&mut self) -> Duration {
        let step = self.next;
        self.next = step.mul_f64(self.policy.factor).min(self.policy.max);
        step.mul_f64(0.5 + fastrand::f64() * 0.5)
    }

    /// Back to the first step.
    pub(crate) fn reset(&mut self) {
        self.next = self.policy.initial;
    }

    pub(crate) fn reset_after(&self) -> Duration {
        self.policy.reset_after
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_to_the_cap_with_jitter_and_reset() {
        let policy = BackoffPolicy {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(8),
            factor: 2.0,
            reset_after: Duration::from_secs(60),
        };
        let mut backoff = Backoff::new(policy);
        let steps = [1, 2, 4, 8, 8, 8];
        for step in steps {
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
}
