//! The Claude session's trace at a real OTLP/HTTP receiver: the real CLI against the mock
//! API, a tool call between two model calls, and the GenAI attributes the CLI reports.

use ambient_test_support::{
    harness::TOKEN,
    otlp::{Behaviour, OtlpReceiver, tree},
};

use crate::{API_KEY, start};

#[tokio::test]
async fn a_tool_turns_trace_has_its_model_calls_and_tool_call_with_their_tokens() {
    let receiver = OtlpReceiver::start(Behaviour::Accept).await;
    let env = start().await;
    let endpoint = receiver.endpoint();
    let finished = env
        .run(&[
            ("PROMPT", "MOCK_TOOL_BASH please"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
        ])
        .await;
    assert_eq!(finished.code, Some(0), "stderr:\n{}", finished.stderr);
    let spans = receiver.spans();
    let model = env.mock.requests()[0]["model"].as_str().unwrap().to_owned();
    let chat = format!("chat {model}");
    assert_eq!(
        tree(&spans),
        [
            "session".to_owned(),
            "  status.write".to_owned(),
            "  workspace.prepare".to_owned(),
            "  turn".to_owned(),
            format!("    {chat}"),
            "    execute_tool Bash".to_owned(),
            format!("    {chat}"),
            "  status.write".to_owned(),
        ],
        "{spans:#?}"
    );
    let session = spans.iter().find(|span| span.name == "session").unwrap();
    assert_eq!(session.text("ambient.runner.type"), Some("claude-runner"));
    assert_eq!(session.text("gen_ai.agent.name"), Some("claude-agent-sdk"));
    // The mock answers every call with 12 tokens in, 12 out.
    for call in spans.iter().filter(|span| span.name == chat) {
        assert_eq!(call.text("gen_ai.system"), Some("anthropic"));
        assert_eq!(call.text("gen_ai.response.model"), Some(model.as_str()));
        assert_eq!(call.int("gen_ai.usage.input_tokens"), Some(12));
        assert_eq!(call.int("gen_ai.usage.output_tokens"), Some(12));
    }
    let turn = spans.iter().find(|span| span.name == "turn").unwrap();
    assert_eq!(turn.text("gen_ai.system"), Some("anthropic"));
    assert_eq!(turn.int("gen_ai.usage.input_tokens"), Some(24));
    assert_eq!(turn.int("gen_ai.usage.output_tokens"), Some(24));
    assert!(turn.attributes.contains_key("ambient.turn.cost_usd"));
    let tool = spans
        .iter()
        .find(|span| span.name == "execute_tool Bash")
        .unwrap();
    assert_eq!(tool.text("gen_ai.tool.name"), Some("Bash"));
    assert!(!tool.failed);
    // The same figures as OTLP metrics, with the cost the CLI reported.
    let input = receiver
        .metric(
            "gen_ai.client.token.usage",
            Some(("gen_ai.token.type", "input")),
        )
        .unwrap();
    assert_eq!(input.value, 24.0);
    assert!(receiver.metric("ambient.cost", None).unwrap().value > 0.0);
    assert_eq!(
        receiver.metric("ambient.tool_calls", None).unwrap().value,
        1.0
    );
    let exported = String::from_utf8_lossy(&receiver.bytes()).into_owned();
    assert!(!exported.contains(API_KEY), "the API key was exported");
    assert!(!exported.contains(TOKEN), "the bot token was exported");
}
