//! Frames written as JSON by hand, for the kinds a runner sends by the thousand (texts,
//! fragments, logs, the turn markers): byte for byte what serde writes (a test holds
//! the two to that), without serde's generic machinery or its byte-at-a-time escaping
//! of texts that need none. The other kinds go through serde.

use crate::{Frame, Lifecycle, Outbound, Partial};

/// Whether a byte must be escaped inside a JSON string.
fn needs_escape(byte: u8) -> bool {
    byte < 0x20 || byte == b'"' || byte == b'\\'
}

/// `text` as a JSON string: quoted, escaped as serde_json escapes.
pub(crate) fn write_str(out: &mut String, text: &str) {
    out.push('"');
    let bytes = text.as_bytes();
    // Most texts need no escape: checked a block at a time, without a branch per byte,
    // and copied whole.
    let clean = bytes
        .chunks(32)
        .all(|chunk| !chunk.iter().fold(false, |any, &b| any | needs_escape(b)));
    if clean {
        out.push_str(text);
    } else {
        let mut start = 0;
        for (at, &byte) in bytes.iter().enumerate() {
            if !needs_escape(byte) {
                continue;
            }
            // Escapes are ASCII: `at` is a character boundary.
            out.push_str(&text[start..at]);
            start = at + 1;
            match byte {
                b'"' => out.push_str("\\\""),
                b'\\' => out.push_str("\\\\"),
                b'\n' => out.push_str("\\n"),
                b'\r' => out.push_str("\\r"),
                b'\t' => out.push_str("\\t"),
                0x08 => out.push_str("\\b"),
                0x0c => out.push_str("\\f"),
                control => {
                    const HEX: &[u8; 16] = b"0123456789abcdef";
                    out.push_str("\\u00");
                    out.push(char::from(HEX[usize::from(control >> 4)]));
                    out.push(char::from(HEX[usize::from(control & 0xf)]));
                }
            }
        }
        out.push_str(&text[start..]);
    }
    out.push('"');
}

/// A number in decimal.
pub(crate) fn write_u64(out: &mut String, number: u64) {
    let mut digits = [0_u8; 20];
    let mut start = digits.len();
    let mut rest = number;
    loop {
        start -= 1;
        digits[start] = b'0' + u8::try_from(rest % 10).unwrap_or(0);
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    for &digit in &digits[start..] {
        out.push(char::from(digit));
    }
}

fn lifecycle_name(event: Lifecycle) -> &'static str {
    match event {
        Lifecycle::SessionStarted => "session.started",
        Lifecycle::SessionCompleted => "session.completed",
        Lifecycle::SessionFailed => "session.failed",
    }
}

/// The frame as JSON, by hand where it is one of the common kinds; `false` (with
/// nothing written) for the kinds serde writes.
pub(crate) fn write_frame(out: &mut String, frame: &Frame) -> bool {
    // What follows "payload": for each kind.
    let id = frame.id.as_str();
    let tagged = |out: &mut String| {
        out.push_str("\"frame_id\":");
        write_str(out, id);
        out.push('}');
    };
    let head = |out: &mut String| {
        out.push_str("{\"seq\":");
        write_u64(out, frame.seq);
        out.push_str(",\"type\":");
        write_str(out, frame.body.message_type().as_str());
        out.push_str(",\"timestamp\":");
        write_str(out, &frame.timestamp);
        out.push_str(",\"payload\":");
    };
    match &frame.body {
        Outbound::TextBlock { text } => {
            head(out);
            out.push_str(
                "{\"type\":\"agent_message\",\"content\":{\"type\":\"text_block\",\"text\":",
            );
            write_str(out, text);
            out.push_str("},");
            tagged(out);
        }
        Outbound::Log { message } => {
            head(out);
            out.push_str("{\"message\":");
            write_str(out, message);
            out.push(',');
            tagged(out);
        }
        Outbound::UserMessage { content } => {
            head(out);
            out.push_str("{\"content\":");
            write_str(out, content);
            out.push(',');
            tagged(out);
        }
        Outbound::Running | Outbound::Waiting => {
            head(out);
            out.push('{');
            tagged(out);
        }
        Outbound::Lifecycle(event) => {
            head(out);
            write_str(out, lifecycle_name(*event));
            out.push_str(",\"partial\":null,\"frame_id\":");
            write_str(out, id);
            out.push('}');
            return true;
        }
        Outbound::Partial(Partial {
            id: stream,
            index,
            total,
            data,
        }) => {
            head(out);
            out.push_str("\"\",\"partial\":{\"id\":");
            write_str(out, stream);
            out.push_str(",\"index\":");
            write_u64(out, u64::from(*index));
            out.push_str(",\"total\":");
            write_u64(out, u64::from(*total));
            out.push_str(",\"data\":");
            write_str(out, data);
            out.push_str("},\"frame_id\":");
            write_str(out, id);
            out.push('}');
            return true;
        }
        Outbound::ToolUse { .. }
        | Outbound::ToolResult(_)
        | Outbound::Result(_)
        | Outbound::Trace { .. }
        | Outbound::Subagent { .. } => return false,
    }
    out.push_str(",\"partial\":null}");
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::FrameId;

    /// Texts that exercise every escape, and none.
    fn texts() -> Vec<String> {
        let mut texts = vec![
            String::new(),
            String::from("plain text of some length, more than one block of thirty-two bytes"),
            String::from("quote \" backslash \\ slash / newline \n return \r tab \t"),
            String::from("\u{8}\u{c}\u{0}\u{1f}\u{7f} controls"),
            String::from("unicode: é ü 日本 🚀 and \u{2028}"),
        ];
        texts.push((0_u8..=127).map(char::from).collect());
        texts.push(format!("{}\"", "x".repeat(95)));
        texts
    }

    #[test]
    fn frames_written_by_hand_are_what_serde_writes() {
        let mut bodies = vec![
            Outbound::Running,
            Outbound::Waiting,
            Outbound::Lifecycle(Lifecycle::SessionStarted),
            Outbound::Lifecycle(Lifecycle::SessionCompleted),
            Outbound::Lifecycle(Lifecycle::SessionFailed),
        ];
        for text in texts() {
            bodies.push(Outbound::TextBlock { text: text.clone() });
            bodies.push(Outbound::Log {
                message: text.clone(),
            });
            bodies.push(Outbound::UserMessage {
                content: text.clone(),
            });
            bodies.push(Outbound::Partial(Partial {
                id: format!("stream-{text}"),
                index: 3,
                total: u32::MAX,
                data: text,
            }));
        }
        for (seq, body) in bodies.into_iter().enumerate() {
            let frame = Frame {
                seq: u64::MAX - seq as u64,
                id: FrameId::new("abc\"d", seq as u64),
                timestamp: String::from("2025-10-31T20:02:41.123456"),
                body,
            };
            let mut by_hand = String::new();
            assert!(write_frame(&mut by_hand, &frame), "{frame:?}");
            let by_serde = serde_json::to_string(&frame).unwrap_or_default();
            assert_eq!(by_hand, by_serde);
        }
    }
}
