//! The example runs a whole session against the local backend.
#![allow(clippy::unwrap_used, reason = "a failed step is a failed test")]

use ambient_local_backend::SessionSeed;
use ambient_test_support::harness::{Backend, PROJECT, SESSION, transcript};
use serde_json::json;

#[tokio::test]
async fn a_parrot_session_runs_end_to_end() {
    let env = Backend::start(
        env!("CARGO_BIN_EXE_parrot-runner"),
        SessionSeed::new(PROJECT, SESSION),
    )
    .await;
    let child = env.runner(&[("PROMPT", "hello there")]).spawn().unwrap();
    let finished = env.finish(child).await;
    assert_eq!(finished.code, Some(0), "stderr:\n{}", finished.stderr);
    assert_eq!(
        transcript(&env.backend).await,
        [
            "· session.started",
            "you: hello there",
            r#"  ⚙ lookup {"query":"hello there"}"#,
            "  ↳ 11 characters",
            "agent: hello there",
            "result: success, 1 turns",
            "· session.completed",
        ]
    );
    let status = env.backend.status(PROJECT, SESSION).unwrap();
    assert_eq!(status["phase"], json!("Completed"));
    assert_eq!(status["result"], json!("hello there"));
}

#[test]
fn every_option_of_the_help_names_its_environment_variable() {
    ambient_test_support::harness::help_names_every_variable(env!("CARGO_BIN_EXE_parrot-runner"));
}

#[tokio::test]
async fn a_continuation_runs_a_new_prompt_never_its_parents_and_never_does_nothing() {
    use ambient_test_support::continuation::{CASES, seeds};
    for case in CASES {
        let env = Backend::start_with(env!("CARGO_BIN_EXE_parrot-runner"), seeds()).await;
        let (finished, lines) = case
            .follow(&env, || env.runner(&case.vars()).spawn().unwrap())
            .await;
        case.check(&finished, &lines);
    }
}
