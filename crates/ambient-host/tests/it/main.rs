//! The host against the real world: the crate map as `cargo metadata` reads it, and the
//! workspace prepared with real git.
#![allow(clippy::unwrap_used, reason = "a failed step is a failed test")]

mod architecture;
mod workspace;
