//! Integration tests: a real backend on `127.0.0.1:0`, driven by a real WebSocket client
//! (tokio-tungstenite) and a real HTTP client (reqwest). Nothing sleeps: every test awaits
//! a message, a response or a signal, bounded by a generous timeout.

mod auth;
mod github;
mod hub;
mod keepalive;
mod messages;
mod sessions;
mod support;
