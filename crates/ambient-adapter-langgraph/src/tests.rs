//! The mapping, on streams recorded from a real `langgraph dev` server.

use ambient_adapter::Event;

use ambient_sse::SseDecoder;

use crate::{GraphEvent, StreamMapper};

/// Decodes a recorded stream in awkward pieces, maps it, and describes every runner
/// event and the run's end on one line each.
fn replay(name: &str) -> Vec<String> {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    let bytes = std::fs::read(path).unwrap();
    let mut decoder = SseDecoder::new();
    let mut mapper = StreamMapper::new();
    let mut lines = Vec::new();
    // Seven-byte reads split lines, CRLFs and UTF-8 sequences alike.
    for piece in bytes.chunks(7) {
        for sse in decoder.push(piece).unwrap() {
            let event = GraphEvent::from_sse(&sse).unwrap();
            for mapped in mapper.map(&event) {
                lines.push(describe(&mapped));
            }
        }
    }
    lines.push(format!("end: {:?}", mapper.end()));
    lines
}

fn describe(event: &Event) -> String {
    match event {
        Event::TextDelta { data, .. } => format!("delta {data:?}"),
        Event::Text(text) => format!("text {text:?}"),
        Event::Log(line) => format!("log {line}"),
        Event::ToolUse { name, input, .. } => format!("tool_use {name} {input}"),
        Event::ToolResult { content, .. } => format!("tool_result {content}"),
        other => format!("{other:?}"),
    }
}

#[test]
fn streamed_tokens_become_deltas_then_the_whole_text() {
    insta::assert_json_snapshot!(replay("03-chat-messages-tuple.sse"));
}

#[test]
fn an_interrupt_becomes_a_question_and_ends_the_run_waiting() {
    insta::assert_json_snapshot!(replay("04-hitl-1-interrupt.sse"));
}

#[test]
fn several_interrupts_are_all_kept_for_the_resume() {
    let path = format!(
        "{}/tests/fixtures/15-multi-interrupt-1.sse",
        env!("CARGO_MANIFEST_DIR")
    );
    let mut mapper = StreamMapper::new();
    for sse in SseDecoder::new()
        .push(&std::fs::read(path).unwrap())
        .unwrap()
    {
        // The questions are asked once the run ends, not as they stream.
        assert!(
            !mapper
                .map(&GraphEvent::from_sse(&sse).unwrap())
                .iter()
                .any(|e| matches!(e, Event::Text(_))),
            "a question was asked mid-run"
        );
    }
    let crate::RunEnd::Interrupted(pending) = mapper.end() else {
        panic!("the run did not end at its questions");
    };
    // Each shows its id, since an answer may name them.
    let shown: Vec<String> = pending.iter().map(|i| i.shown(pending.len() > 1)).collect();
    assert_eq!(
        shown,
        [
            "value for x?\n(interrupt id: f4a65d3743660a00cccd393ae108ae42)",
            "value for y?\n(interrupt id: 7022fd51692b57277e6335b51a31867e)"
        ]
    );
}

#[test]
fn custom_events_and_node_updates_are_logged_and_errors_fail_the_run() {
    insta::assert_json_snapshot!(replay("06-custom.sse"));
    let error = replay("05-error-threaded.sse");
    assert_eq!(
        error.last().map(String::as_str),
        Some(r#"end: Failed("ValueError: boom: deliberate failure in node 'boom'")"#)
    );
}

#[test]
fn heartbeats_ids_and_subgraph_namespaces_are_read() {
    assert_eq!(
        replay("18-heartbeat.sse").last().map(String::as_str),
        Some("end: Completed")
    );
    let bytes = std::fs::read(format!(
        "{}/tests/fixtures/08-join-replay-all.sse",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    let mut decoder = SseDecoder::new();
    let events = decoder.push(&bytes).unwrap();
    assert!(events.iter().any(|e| e.id.is_some()));
    assert_eq!(
        decoder.last_event_id(),
        events.iter().rev().find_map(|e| e.id.as_deref())
    );
    let bytes = std::fs::read(format!(
        "{}/tests/fixtures/13-subgraphs.sse",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    let nested = SseDecoder::new()
        .push(&bytes)
        .unwrap()
        .iter()
        .map(|e| GraphEvent::from_sse(e).unwrap())
        .find(|e| !e.ns.is_empty());
    assert!(nested.is_some_and(|e| e.ns[0].starts_with("inner:")));
}

#[test]
fn data_that_is_not_json_is_named() {
    let mut decoder = SseDecoder::new();
    let event = decoder
        .push(b"event: updates\r\ndata: {not json\r\n\r\n")
        .unwrap()
        .remove(0);
    let error = GraphEvent::from_sse(&event).unwrap_err();
    assert!(
        error.starts_with("the data of a `updates` event is not JSON"),
        "{error}"
    );
}

#[test]
fn a_token_event_maps_the_same_read_in_part_or_whole() {
    let path = format!(
        "{}/tests/fixtures/03-chat-messages-tuple.sse",
        env!("CARGO_MANIFEST_DIR")
    );
    let bytes = std::fs::read(path).unwrap();
    let events = SseDecoder::new().push(&bytes).unwrap();
    let (mut in_part, mut whole) = (StreamMapper::new(), StreamMapper::new());
    let mut tokens = 0;
    let mut calls = Vec::new();
    for sse in &events {
        let read = GraphEvent::from_sse(sse).unwrap();
        let full = GraphEvent {
            data: serde_json::from_str(&sse.data).unwrap(),
            ..read.clone()
        };
        if read.name == "messages" {
            tokens += 1;
            assert_ne!(read.data, full.data, "the metadata was read");
        }
        let mapped = in_part.map(&read);
        assert_eq!(mapped, whole.map(&full));
        calls.extend(
            mapped
                .into_iter()
                .filter(|event| matches!(event, Event::ModelCall(_))),
        );
    }
    assert!(tokens > 3, "the capture has tokens");
    // The model's last chunk ends its one call.
    assert_eq!(
        calls,
        [Event::ModelCall(ambient_adapter::ModelCall {
            system: String::from("genericfakechatmodel"),
            ..Default::default()
        })]
    );
    assert_eq!(in_part.end(), whole.end());
}
