//! The conversation as the platform's UI shows it, one line per stored message.
//!
//! Local mode prints these lines; they follow what the UI renders from the message
//! history: user and assistant bubbles, tool calls with their results, the result summary
//! and system lines. Partial fragments and `agent.running` are not shown, as the UI folds
//! them into other elements.

use ambient_protocol::{MessageType, Outbound, Partial, SessionMessage, ToolResult};
use serde_json::Value;

/// The line a message becomes, or `None` for messages the UI does not show as a line.
pub fn render(message: &SessionMessage) -> Option<String> {
    if matches!(message.kind.as_str(), "user_message") {
        return user_line(&message.payload);
    }
    let kind = MessageType::from_wire(&message.kind)?;
    // A runner frame with a non-object payload is stored as the whole envelope.
    let (payload, partial) = match message.payload.get("payload") {
        Some(inner) if message.payload.get("seq").is_some() => {
            let partial: Option<Partial> = message
                .payload
                .get("partial")
                .and_then(|p| serde_json::from_value(p.clone()).ok());
            (inner, partial)
        }
        _ => (&message.payload, None),
    };
    let body = match Outbound::from_wire(kind, payload, partial.as_ref()) {
        Ok(body) => body,
        Err(_) if kind == MessageType::UserMessage => return user_line(payload),
        Err(_) => return Some(format!("· {} {}", message.kind, compact(payload))),
    };
    body_line(body)
}

/// The line a frame's body becomes.
fn body_line(body: Outbound) -> Option<String> {
    Some(match body {
        // Indented under the call that started the subagent.
        Outbound::Subagent {
            parent_tool_use_id,
            body,
        } => format!(
            "    [{parent_tool_use_id}] {}",
            body_line(*body)?.trim_start()
        ),
        Outbound::Lifecycle(event) => format!(
            "· {}",
            compact(&serde_json::to_value(event).ok()?).trim_matches('"')
        ),
        Outbound::Log { message } => format!("· {message}"),
        Outbound::Trace { trace_id } => format!("· trace {trace_id}"),
        Outbound::UserMessage { content } => format!("you: {content}"),
        Outbound::TextBlock { text } => format!("agent: {text}"),
        Outbound::ToolUse { tool, input, .. } => format!("  ⚙ {tool} {}", compact(&input)),
        Outbound::ToolResult(ToolResult {
            content, is_error, ..
        }) => {
            let mark = if is_error == Some(true) { "✗" } else { "↳" };
            let content = match content {
                Value::String(text) => text,
                other => compact(&other),
            };
            format!("  {mark} {content}")
        }
        Outbound::Waiting => String::from("(waiting for you)"),
        Outbound::Result(result) => {
            let subtype = result.subtype.as_deref().unwrap_or("done");
            let turns = result
                .num_turns
                .map(|n| format!(", {n} turns"))
                .unwrap_or_default();
            let cost = result
                .total_cost_usd
                .map(|c| format!(", ${c:.4}"))
                .unwrap_or_default();
            format!("result: {subtype}{turns}{cost}")
        }
        Outbound::Running | Outbound::Partial(_) => return None,
    })
}

fn user_line(payload: &Value) -> Option<String> {
    let content = payload
        .get("content")
        .or_else(|| payload.get("text"))
        .and_then(Value::as_str)?;
    Some(format!("you: {content}"))
}

fn compact(value: &Value) -> String {
    let text = value.to_string();
    const MAX: usize = 160;
    if text.chars().count() <= MAX {
        return text;
    }
    let mut short: String = text.chars().take(MAX).collect();
    short.push('…');
    short
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[track_caller]
    fn check(kind: &str, payload: Value, expect: Option<&str>) {
        let message = SessionMessage {
            session_id: String::from("s"),
            kind: kind.to_owned(),
            timestamp: String::from("t"),
            payload,
            partial: None,
        };
        assert_eq!(render(&message).as_deref(), expect);
    }

    #[test]
    fn lines_as_the_ui_shows_them() {
        check("user_message", json!({"content": "hi"}), Some("you: hi"));
        check(
            "user.message",
            json!({"content": "hi", "frame_id": "a-1"}),
            Some("you: hi"),
        );
        check(
            "system.message",
            json!({"seq": 1, "type": "system.message", "timestamp": "t", "payload": "session.started", "partial": null}),
            Some("· session.started"),
        );
        check(
            "system.message",
            json!({"message": "Cloning"}),
            Some("· Cloning"),
        );
        check(
            "agent.message",
            json!({"type": "agent_message", "content": {"type": "text_block", "text": "hello"}}),
            Some("agent: hello"),
        );
        check(
            "agent.message",
            json!({"tool": "echo", "input": {"text": "x"}, "id": "t1"}),
            Some(r#"  ⚙ echo {"text":"x"}"#),
        );
        check(
            "agent.message",
            json!({"tool_result": {"tool_use_id": "t1", "content": "x", "is_error": false}}),
            Some("  ↳ x"),
        );
        check(
            "agent.message",
            json!({"type": "result.message", "payload": {"subtype": "success", "num_turns": 1, "total_cost_usd": 0.0}}),
            Some("result: success, 1 turns, $0.0000"),
        );
        check("agent.running", json!({}), None);
        check("agent.waiting", json!({}), Some("(waiting for you)"));
        check("interrupt", json!({}), None);
    }
}
