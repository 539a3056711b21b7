//! The shared end-to-end harness, pointed at this binary.

pub(crate) use ambient_test_support::harness::{Backend, PROJECT, SESSION, TOKEN, WAIT, finish};

pub(crate) async fn backend(seed: ambient_local_backend::SessionSeed) -> Backend {
    Backend::start(env!("CARGO_BIN_EXE_echo-runner"), seed).await
}
