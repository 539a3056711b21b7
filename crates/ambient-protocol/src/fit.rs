//! Keeping frames under a size cap.
//!
//! The backend broadcasts every frame back to its sender, so a frame too large for the
//! runner's (or another client's) inbound limit would cut the connection it came from.
//! [`Outbound::fit`] turns an oversized frame into frames under the cap: long texts become
//! `partial` fragments (which the UI reassembles), and what cannot be split is shortened
//! with a note of how much was left out.

use serde_json::Value;

use crate::{Outbound, Partial, ToolResult};

/// The default cap on a frame's payload, in bytes of JSON.
pub const MAX_FRAME_BYTES: usize = 256 * 1024;

/// Room kept for the envelope and the JSON escaping of a fragment.
const OVERHEAD: usize = 1024;

impl Outbound {
    /// An upper bound of [`Outbound::payload_len`] that costs no serialising, for the
    /// kinds whose size is their texts' (JSON escaping at most sixfolds a character).
    pub(crate) fn size_bound(&self) -> Option<usize> {
        const FIXED: usize = 256;
        let text = |t: &str| t.len() * 6 + FIXED;
        Some(match self {
            Self::Lifecycle(_) | Self::Running | Self::Waiting => FIXED,
            Self::Log { message: t }
            | Self::Trace { trace_id: t }
            | Self::UserMessage { content: t }
            | Self::TextBlock { text: t } => text(t),
            Self::Partial(partial) => text(&partial.data) + partial.id.len() * 6,
            Self::ToolResult(ToolResult {
                tool_use_id,
                content: Value::String(content),
                ..
            }) => text(content) + tool_use_id.as_deref().map_or(0, str::len) * 6,
            Self::Subagent {
                parent_tool_use_id,
                body,
            } => body.size_bound()? + parent_tool_use_id.len() * 6 + FIXED,
            Self::ToolResult(_) | Self::ToolUse { .. } | Self::Result(_) => return None,
        })
    }

    /// Whether this frame's payload fits in `max_bytes` as it is (most do, and most are
    /// known to without serialising them).
    pub fn fits(&self, max_bytes: usize) -> bool {
        self.size_bound().is_some_and(|bound| bound <= max_bytes) || self.payload_len() <= max_bytes
    }

    /// This frame as frames whose payloads fit in `max_bytes`; `stream` names the partial
    /// stream that carries a split text (it must be unique to this frame).
    ///
    /// A text block becomes a complete partial stream (`total` set); a tool result keeps
    /// its frame, with its content shortened to a preview that names the stream carrying
    /// the whole content; logs, prompts, tool inputs and result texts are shortened.
    pub fn fit(self, max_bytes: usize, stream: &str) -> Vec<Outbound> {
        if self.fits(max_bytes) {
            return vec![self];
        }
        // JSON escaping can double a text's size (and `\u` escapes grow it sixfold, but
        // control characters are rare); half the budget is a safe fragment size.
        let budget = max_bytes.saturating_sub(OVERHEAD).max(64) / 2;
        match self {
            // The parent's id is kept on what is still a whole frame; a text split into a
            // partial stream goes without it.
            Self::Subagent {
                parent_tool_use_id,
                body,
            } => body
                .fit(
                    max_bytes.saturating_sub(parent_tool_use_id.len() * 6 + 64),
                    stream,
                )
                .into_iter()
                .map(|frame| match frame {
                    Self::Partial(_) => frame,
                    whole => Self::Subagent {
                        parent_tool_use_id: parent_tool_use_id.clone(),
                        body: Box::new(whole),
                    },
                })
                .collect(),
            Self::TextBlock { text } => fragments(stream, &text, budget),
            Self::Partial(partial) => {
                let pieces = split(&partial.data, budget);
                pieces
                    .into_iter()
                    .enumerate()
                    .map(|(i, data)| {
                        Self::Partial(Partial {
                            id: format!("{}.{i}", partial.id),
                            index: partial.index,
                            total: partial.total,
                            data: data.to_owned(),
                        })
                    })
                    .collect()
            }
            Self::ToolResult(result) => {
                let full = match &result.content {
                    Value::String(text) => text.clone(),
                    other => other.to_string(),
                };
                let mut frames = fragments(stream, &full, budget);
                frames.push(Self::ToolResult(ToolResult {
                    content: Value::String(format!(
                        "{}… [{} bytes in all; the whole content is in partial stream {stream}]",
                        prefix(&full, budget / 2),
                        full.len()
                    )),
                    ..result
                }));
                frames
            }
            Self::Log { message } => vec![Self::Log {
                message: shorten(&message, budget),
            }],
            // 32 hex digits: it fits any frame.
            Self::Trace { .. } => vec![self],
            Self::UserMessage { content } => vec![Self::UserMessage {
                content: shorten(&content, budget),
            }],
            Self::ToolUse { tool, input, id } => {
                let text = input.to_string();
                let mut preview = serde_json::Map::new();
                preview.insert(String::from("truncated"), Value::Bool(true));
                preview.insert(String::from("bytes"), Value::from(text.len()));
                preview.insert(
                    String::from("preview"),
                    Value::String(prefix(&text, budget / 2).to_owned()),
                );
                vec![Self::ToolUse {
                    tool,
                    input: Value::Object(preview),
                    id,
                }]
            }
            Self::Result(mut result) => {
                result.result = result.result.map(|text| shorten(&text, budget / 2));
                if result
                    .usage
                    .as_ref()
                    .is_some_and(|u| u.to_string().len() > budget / 2)
                {
                    result.usage = None;
                }
                vec![Self::Result(result)]
            }
            small @ (Self::Lifecycle(_) | Self::Running | Self::Waiting) => vec![small],
        }
    }
}

/// A whole text as a complete partial stream.
fn fragments(stream: &str, text: &str, budget: usize) -> Vec<Outbound> {
    let pieces = split(text, budget);
    let total = u32::try_from(pieces.len()).unwrap_or(u32::MAX);
    pieces
        .into_iter()
        .enumerate()
        .map(|(index, data)| {
            Outbound::Partial(Partial {
                id: stream.to_owned(),
                index: u32::try_from(index).unwrap_or(u32::MAX),
                total,
                data: data.to_owned(),
            })
        })
        .collect()
}

/// `text` in pieces of at most `budget` bytes, cut at character boundaries.
fn split(text: &str, budget: usize) -> Vec<&str> {
    let budget = budget.max(4);
    let mut pieces = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        let piece = prefix(rest, budget);
        pieces.push(piece);
        rest = &rest[piece.len()..];
    }
    pieces
}

/// The longest prefix of `text` of at most `max` bytes that ends at a character boundary
/// (at least one character, so that splitting always advances).
fn prefix(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while end > 0 && !text.is_char_boundary(end) {
        end -= 1;
    }
    if end == 0 {
        end = text.chars().next().map_or(0, char::len_utf8);
    }
    &text[..end]
}

fn shorten(text: &str, budget: usize) -> String {
    let kept = prefix(text, budget);
    format!("{kept}… [{} more bytes left out]", text.len() - kept.len())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const MAX: usize = 4096;

    /// Fits `body` and checks every resulting frame is under the cap, returning them.
    #[track_caller]
    fn check(body: Outbound) -> Vec<Outbound> {
        let frames = body.fit(MAX, "s1");
        for frame in &frames {
            assert!(
                frame.payload_len() <= MAX,
                "{} bytes: {frame:?}",
                frame.payload_len()
            );
        }
        frames
    }

    #[test]
    fn small_frames_are_left_alone() {
        let body = Outbound::TextBlock {
            text: String::from("hi"),
        };
        assert_eq!(check(body.clone()), vec![body]);
    }

    #[test]
    fn a_long_text_becomes_a_complete_partial_stream_that_reassembles() {
        let text: String = "héllo wörld ✓ ".repeat(2000);
        let frames = check(Outbound::TextBlock { text: text.clone() });
        assert!(frames.len() > 1);
        let mut joined = String::new();
        for (i, frame) in frames.iter().enumerate() {
            let Outbound::Partial(partial) = frame else {
                panic!("{frame:?}")
            };
            assert_eq!(
                (
                    partial.id.as_str(),
                    partial.index as usize,
                    partial.total as usize
                ),
                ("s1", i, frames.len())
            );
            joined.push_str(&partial.data);
        }
        assert_eq!(joined, text);
    }

    #[test]
    fn a_huge_tool_result_keeps_its_frame_with_a_preview_after_the_whole_content() {
        let content = "x".repeat(50_000);
        let frames = check(Outbound::ToolResult(ToolResult {
            tool_use_id: Some(String::from("toolu_1")),
            content: json!(content),
            is_error: Some(false),
        }));
        let Some(Outbound::ToolResult(result)) = frames.last() else {
            panic!("{frames:?}")
        };
        assert_eq!(result.tool_use_id.as_deref(), Some("toolu_1"));
        let preview = result.content.as_str().unwrap();
        assert!(
            preview.ends_with("[50000 bytes in all; the whole content is in partial stream s1]"),
            "{preview}"
        );
        let whole: String = frames[..frames.len() - 1]
            .iter()
            .map(|f| match f {
                Outbound::Partial(p) => p.data.clone(),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(whole, content);
    }

    #[test]
    fn what_cannot_be_split_is_shortened_and_says_so() {
        let long = "y".repeat(20_000);
        let log = check(Outbound::Log {
            message: long.clone(),
        });
        assert!(
            matches!(&log[..], [Outbound::Log { message }] if message.ends_with("more bytes left out]"))
        );
        let tool = check(Outbound::ToolUse {
            tool: String::from("Write"),
            input: json!({"content": long}),
            id: None,
        });
        assert!(
            matches!(&tool[..], [Outbound::ToolUse { input, .. }] if input["truncated"] == json!(true))
        );
    }
}
