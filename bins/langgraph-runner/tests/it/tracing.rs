//! A LangGraph session's trace (in the pod) at a real OTLP/HTTP receiver: a tool call and
//! the model call after it, with the GenAI attributes LangChain reports.

use ambient_test_support::otlp::{Behaviour, OtlpReceiver, tree};

use crate::{Mode, start};

#[tokio::test]
async fn a_graphs_trace_has_its_tool_call_and_model_call_with_their_tokens() {
    let receiver = OtlpReceiver::start(Behaviour::Accept).await;
    let env = start(Mode::Driver).await;
    let endpoint = receiver.endpoint();
    let finished = env
        .run(
            "traced",
            &[
                ("PROMPT", "Paris"),
                ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
            ],
        )
        .await;
    assert_eq!(finished.code, Some(0), "stderr:\n{}", finished.stderr);
    let spans = receiver.spans();
    assert_eq!(
        tree(&spans),
        [
            "session",
            "  status.write",
            "  workspace.prepare",
            "  turn",
            "    execute_tool weather",
            "    chat fake-weather-1",
            "  status.write",
        ],
        "{spans:#?}"
    );
    let session = spans.iter().find(|span| span.name == "session").unwrap();
    assert_eq!(
        session.text("ambient.runner.type"),
        Some("langgraph-runner")
    );
    assert_eq!(session.text("gen_ai.agent.name"), Some("langgraph"));
    let tool = spans
        .iter()
        .find(|span| span.name == "execute_tool weather")
        .unwrap();
    assert_eq!(tool.text("gen_ai.tool.call.id"), Some("call_weather_1"));
    let chat = spans
        .iter()
        .find(|span| span.name == "chat fake-weather-1")
        .unwrap();
    assert_eq!(chat.text("gen_ai.system"), Some("fake"));
    // In: "Paris", the empty call, "sunny in Paris"; out: "The weather tool says: sunny
    // in Paris."
    assert_eq!(chat.int("gen_ai.usage.input_tokens"), Some(4));
    assert_eq!(chat.int("gen_ai.usage.output_tokens"), Some(7));
    // The model's call starts when the tool's result is in.
    assert!(chat.start_ns >= tool.end_ns, "{chat:#?} {tool:#?}");
}
