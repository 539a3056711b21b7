//! The LangGraph adapter.
//!
//! A LangGraph run, whether on a LangGraph Server or in the pod, is a stream of events in
//! the server's vocabulary (`metadata`, `values`, `updates`, `messages`, `custom`,
//! `error`, …). This crate turns that stream into runner [`Event`](ambient_adapter::Event)s
//! with one mapping for both sources:
//!
//! - `ambient_sse` decodes the server's `text/event-stream` framing incrementally;
//! - [`GraphEvent`] is one event of the stream, with its subgraph namespace;
//! - [`StreamMapper`] maps events to runner events and remembers what the run's end needs
//!   (the pending interrupts, an error).
//!
//! [`LangGraphClient`] talks to a LangGraph Server (threads, streamed runs that rejoin
//! when the connection drops, cancel), and [`LangGraphAdapter`] runs a session's
//! conversation as runs on one server thread, or in the pod with [`GraphDriver`].

mod adapter;
mod client;
pub mod config;
pub mod driver;
mod mapping;

pub use adapter::{LangGraphAdapter, LangGraphError, THREAD_ANNOTATION};
pub use ambient_process::{OutputLimits, RunAs};
pub use client::{
    ClientError, DEFAULT_MAX_EVENT_BYTES, DEFAULT_RESPONSE_TIMEOUT, LangGraphClient, RunStatus,
    RunStream, ThreadState,
};
pub use config::{Engine, LangGraphSettings, WorkflowConfig};
pub use driver::{DriverSettings, GraphDriver};
pub use mapping::{GraphEvent, Interrupt, RunEnd, StreamMapper};

#[cfg(test)]
mod tests;
