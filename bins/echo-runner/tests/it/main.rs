//! The echo-runner binary end to end against the local backend.
#![allow(clippy::unwrap_used, reason = "a failed step is a failed test")]

mod bounds;
mod contract;
mod dockerfiles;
mod lifecycle;
mod secrets;
mod serve;
mod session;
mod stops;
mod support;
mod tracing;
