//! The tests' mock of the Anthropic Messages API, as a process: for trying the Claude
//! runner on a machine without an API key. It prints the variables to export, then serves
//! until Ctrl-C. Its replies are canned (`Hello from mock (turn N).`; the words
//! `MOCK_TOOL_BASH`, `MOCK_SLOW`, `MOCK_ERR500` in a prompt choose others).
#![allow(clippy::print_stdout, reason = "it tells the user what to export")]

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let mock = ambient_test_support::anthropic::MockAnthropic::start().await;
    println!(
        "export ANTHROPIC_BASE_URL={} ANTHROPIC_API_KEY=mock",
        mock.url()
    );
    let _stopped = tokio::signal::ctrl_c().await;
}
