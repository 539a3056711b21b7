//! The served session's figures in Prometheus' text format (`GET /metrics`, behind the
//! token like every route but `/health`): runs by outcome and their duration, turns,
//! tool calls, tokens, cost, events sent and their relay latency, runs waiting and
//! listeners. Counted with
//! atomics where the hub already is; nothing is allocated until the page is asked for.

use std::{
    fmt::Write as _,
    sync::atomic::{AtomicU64, Ordering},
    time::Duration,
};

use ambient_protocol::ResultPayload;

/// The upper bounds of the run-duration histogram, in seconds.
const DURATION_BUCKETS: [f64; 10] = [0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0];
/// The upper bounds of the relay-latency histogram, in seconds.
const RELAY_BUCKETS: [f64; 10] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 0.5, 1.0, 5.0,
];

/// How a run ended, for the runs counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// It completed.
    Success,
    /// It stopped to ask (an interrupt outcome).
    Interrupt,
    /// Whoever ran it stopped it.
    Cancelled,
    /// It failed (`RUN_ERROR`).
    Error,
}

const OUTCOMES: [(Outcome, &str); 4] = [
    (Outcome::Success, "success"),
    (Outcome::Interrupt, "interrupt"),
    (Outcome::Cancelled, "cancelled"),
    (Outcome::Error, "error"),
];

/// The figures.
#[derive(Debug, Default)]
pub struct Metrics {
    runs: [AtomicU64; 4],
    duration_buckets: [AtomicU64; DURATION_BUCKETS.len()],
    duration_micros: AtomicU64,
    durations: AtomicU64,
    relay_buckets: [AtomicU64; RELAY_BUCKETS.len()],
    relay_micros: AtomicU64,
    relays: AtomicU64,
    turns: AtomicU64,
    tool_calls: AtomicU64,
    input_tokens: AtomicU64,
    output_tokens: AtomicU64,
    /// Micro-dollars, so that a counter of integers holds it.
    cost_micro_usd: AtomicU64,
    events: AtomicU64,
    waiting: AtomicU64,
    listeners: AtomicU64,
}

impl Metrics {
    /// A run ended, after `took`.
    pub fn run_ended(&self, outcome: Outcome, took: Duration) {
        let index = OUTCOMES
            .iter()
            .position(|(known, _)| *known == outcome)
            .unwrap_or(0);
        self.runs[index].fetch_add(1, Ordering::Relaxed);
        observe(
            &DURATION_BUCKETS,
            &self.duration_buckets,
            &self.duration_micros,
            &self.durations,
            took,
        );
    }

    /// A turn of the agent ended with `result`: its tokens and cost are counted.
    pub fn turn_ended(&self, result: &ResultPayload) {
        self.turns.fetch_add(1, Ordering::Relaxed);
        let tokens = result.tokens();
        self.input_tokens
            .fetch_add(tokens.input.unwrap_or(0), Ordering::Relaxed);
        self.output_tokens
            .fetch_add(tokens.output.unwrap_or(0), Ordering::Relaxed);
        if let Some(cost) = result
            .total_cost_usd
            .filter(|cost| cost.is_finite() && *cost > 0.0)
        {
            // A cost is well under 2^53 micro-dollars; the cast keeps what fits.
            #[allow(
                clippy::cast_possible_truncation,
                clippy::cast_sign_loss,
                reason = "a positive, finite cost in micro-dollars"
            )]
            let micro = (cost * 1e6).round() as u64;
            self.cost_micro_usd.fetch_add(micro, Ordering::Relaxed);
        }
    }

    /// The agent called a tool.
    pub fn tool_called(&self) {
        self.tool_calls.fetch_add(1, Ordering::Relaxed);
    }

    /// A batch of events reached the client that started its run, `took` after the hub
    /// had it.
    pub fn relayed(&self, took: Duration) {
        observe(
            &RELAY_BUCKETS,
            &self.relay_buckets,
            &self.relay_micros,
            &self.relays,
            took,
        );
    }

    /// `count` AG-UI events were made for clients.
    pub fn events_sent(&self, count: usize) {
        self.events
            .fetch_add(u64::try_from(count).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    /// Runs waiting for the open one now.
    pub fn set_waiting(&self, waiting: usize) {
        self.waiting.store(
            u64::try_from(waiting).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
    }

    /// A listener connected (`true`) or left.
    pub fn listener(&self, connected: bool) {
        if connected {
            self.listeners.fetch_add(1, Ordering::Relaxed);
        } else {
            // Never below zero, whatever the order of the calls.
            let _ = self
                .listeners
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                    Some(n.saturating_sub(1))
                });
        }
    }

    /// The page, in Prometheus' text format.
    pub fn render(&self) -> String {
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        let mut page = String::with_capacity(2048);
        let metric = |page: &mut String, name: &str, kind: &str, help: &str| {
            let _ = writeln!(page, "# HELP {name} {help}\n# TYPE {name} {kind}");
        };
        metric(
            &mut page,
            "ambient_runs_total",
            "counter",
            "Runs that ended, by outcome.",
        );
        for ((_, label), count) in OUTCOMES.iter().zip(&self.runs) {
            let _ = writeln!(
                page,
                "ambient_runs_total{{outcome=\"{label}\"}} {}",
                load(count)
            );
        }
        histogram(
            &mut page,
            "ambient_run_duration_seconds",
            "How long runs took, from their request to their end.",
            (&DURATION_BUCKETS, &self.duration_buckets),
            &self.duration_micros,
            &self.durations,
        );
        histogram(
            &mut page,
            "ambient_relay_latency_seconds",
            "From a batch of events reaching the hub to the run's client taking it.",
            (&RELAY_BUCKETS, &self.relay_buckets),
            &self.relay_micros,
            &self.relays,
        );
        for (name, kind, help, value) in [
            (
                "ambient_turns_total",
                "counter",
                "Turns of the agent that ended.",
                load(&self.turns),
            ),
            (
                "ambient_tool_calls_total",
                "counter",
                "Tool calls the agent made.",
                load(&self.tool_calls),
            ),
            (
                "ambient_events_sent_total",
                "counter",
                "AG-UI events made for clients.",
                load(&self.events),
            ),
            (
                "ambient_runs_waiting",
                "gauge",
                "Runs waiting for the open run to end.",
                load(&self.waiting),
            ),
            (
                "ambient_listeners",
                "gauge",
                "Between-run listeners connected.",
                load(&self.listeners),
            ),
        ] {
            metric(&mut page, name, kind, help);
            let _ = writeln!(page, "{name} {value}");
        }
        metric(
            &mut page,
            "ambient_tokens_total",
            "counter",
            "Model tokens the agent's turns reported, input (cache reads and writes included) and output.",
        );
        let _ = writeln!(
            page,
            "ambient_tokens_total{{direction=\"input\"}} {}\nambient_tokens_total{{direction=\"output\"}} {}",
            load(&self.input_tokens),
            load(&self.output_tokens)
        );
        metric(
            &mut page,
            "ambient_cost_usd_total",
            "counter",
            "What the agent's turns reported they cost, in US dollars.",
        );
        #[allow(clippy::cast_precision_loss, reason = "micro-dollars shown as dollars")]
        let dollars = load(&self.cost_micro_usd) as f64 / 1e6;
        let _ = writeln!(page, "ambient_cost_usd_total {dollars}");
        page
    }
}

/// Counts `took` into a histogram: its buckets (cumulative), its sum and its count.
fn observe(
    bounds: &[f64],
    buckets: &[AtomicU64],
    micros: &AtomicU64,
    count: &AtomicU64,
    took: Duration,
) {
    let seconds = took.as_secs_f64();
    for (bound, bucket) in bounds.iter().zip(buckets) {
        if seconds <= *bound {
            bucket.fetch_add(1, Ordering::Relaxed);
        }
    }
    micros.fetch_add(
        u64::try_from(took.as_micros()).unwrap_or(u64::MAX),
        Ordering::Relaxed,
    );
    count.fetch_add(1, Ordering::Relaxed);
}

/// Writes a histogram in Prometheus' text format.
fn histogram(
    page: &mut String,
    name: &str,
    help: &str,
    (bounds, buckets): (&[f64], &[AtomicU64]),
    micros: &AtomicU64,
    count: &AtomicU64,
) {
    let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
    let _ = writeln!(page, "# HELP {name} {help}\n# TYPE {name} histogram");
    for (bound, bucket) in bounds.iter().zip(buckets) {
        let _ = writeln!(page, "{name}_bucket{{le=\"{bound}\"}} {}", load(bucket));
    }
    let total = load(count);
    #[allow(
        clippy::cast_precision_loss,
        reason = "a sum of microseconds shown as seconds"
    )]
    let seconds = load(micros) as f64 / 1e6;
    let _ = writeln!(
        page,
        "{name}_bucket{{le=\"+Inf\"}} {total}\n{name}_sum {seconds}\n{name}_count {total}"
    );
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "a failed step is a failed test")]

    use super::*;

    #[test]
    fn the_page_counts_runs_tokens_and_cost_in_prometheus_text() {
        let metrics = Metrics::default();
        metrics.run_ended(Outcome::Success, Duration::from_millis(300));
        metrics.run_ended(Outcome::Error, Duration::from_secs(40));
        metrics.turn_ended(&ResultPayload {
            usage: Some(serde_json::json!({"input_tokens": 10, "cache_read_input_tokens": 90, "output_tokens": 7})),
            total_cost_usd: Some(0.0125),
            ..ResultPayload::default()
        });
        metrics.tool_called();
        metrics.listener(true);
        metrics.listener(false);
        metrics.listener(false);
        let page = metrics.render();
        for line in [
            "ambient_runs_total{outcome=\"success\"} 1",
            "ambient_runs_total{outcome=\"error\"} 1",
            "ambient_run_duration_seconds_bucket{le=\"0.5\"} 1",
            "ambient_run_duration_seconds_bucket{le=\"60\"} 2",
            "ambient_run_duration_seconds_count 2",
            "ambient_tokens_total{direction=\"input\"} 100",
            "ambient_tokens_total{direction=\"output\"} 7",
            "ambient_cost_usd_total 0.0125",
            "ambient_tool_calls_total 1",
            "ambient_listeners 0",
        ] {
            assert!(page.lines().any(|l| l == line), "no `{line}` in:\n{page}");
        }
        // Every sample line is a name, optional labels, and a number.
        for line in page.lines().filter(|l| !l.starts_with('#')) {
            let (_, value) = line.rsplit_once(' ').unwrap();
            assert!(value.parse::<f64>().is_ok(), "{line}");
        }
    }
}
