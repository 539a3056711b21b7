//! The message history read as it streams: the backend sends a session's whole history in
//! one body (`{"sessionId": …, "messages": [ … ]}`), which holds every frame the runner
//! sent and every message peers posted, so it is never held whole. The body is split into
//! its messages as bytes arrive; a message larger than the cap is skipped without being
//! held, and the caller keeps only what it needs.

/// What the splitter found.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Piece {
    /// One message's JSON.
    Message(Vec<u8>),
    /// A message larger than the cap, skipped; its size.
    TooLarge(usize),
}

/// How deep the body may nest.
const MAX_DEPTH: usize = 128;

/// Splits the history body into its messages.
#[derive(Debug)]
pub(crate) struct MessageSplitter {
    /// The open objects (`{`) and arrays (`[`).
    stack: Vec<u8>,
    in_string: bool,
    escaped: bool,
    /// The message being read, while it is within the cap.
    message: Vec<u8>,
    /// Whether a message is being read, and its size so far.
    reading: Option<usize>,
    max_message_bytes: usize,
}

impl MessageSplitter {
    pub(crate) fn new(max_message_bytes: usize) -> Self {
        Self {
            stack: Vec::new(),
            in_string: false,
            escaped: false,
            message: Vec::new(),
            reading: None,
            max_message_bytes,
        }
    }

    /// Whether an element starting now is a message: an object in the array that is a
    /// member of the top object.
    fn at_message_level(&self) -> bool {
        self.stack.as_slice() == b"{["
    }

    /// Takes the next bytes of the body, handing each message to `found` as it ends.
    pub(crate) fn feed(
        &mut self,
        mut bytes: &[u8],
        found: &mut impl FnMut(Piece),
    ) -> Result<(), String> {
        while !bytes.is_empty() {
            if self.in_string {
                // The common case inside a string: nothing to look at up to a quote or a
                // backslash.
                let end = if self.escaped {
                    self.escaped = false;
                    1
                } else {
                    match bytes.iter().position(|&b| b == b'"' || b == b'\\') {
                        Some(at) => {
                            if bytes[at] == b'"' {
                                self.in_string = false;
                            } else {
                                self.escaped = true;
                            }
                            at + 1
                        }
                        None => bytes.len(),
                    }
                };
                self.take(&bytes[..end]);
                bytes = &bytes[end..];
                continue;
            }
            let byte = bytes[0];
            match byte {
                b'"' => self.in_string = true,
                b'{' | b'[' => {
                    if byte == b'{' && self.at_message_level() {
                        self.reading = Some(0);
                        self.message.clear();
                    }
                    if self.stack.len() == MAX_DEPTH {
                        return Err(format!("the history nests deeper than {MAX_DEPTH}"));
                    }
                    self.stack.push(byte);
                }
                b'}' | b']' => {
                    let open = if byte == b'}' { b'{' } else { b'[' };
                    if self.stack.pop() != Some(open) {
                        return Err(String::from("the history is not well-formed JSON"));
                    }
                    if self.at_message_level()
                        && let Some(size) = self.reading.take()
                    {
                        let size = size + 1;
                        if size > self.max_message_bytes {
                            found(Piece::TooLarge(size));
                        } else {
                            self.message.push(byte);
                            found(Piece::Message(std::mem::take(&mut self.message)));
                        }
                        bytes = &bytes[1..];
                        continue;
                    }
                }
                _ => {}
            }
            self.take(&bytes[..1]);
            bytes = &bytes[1..];
        }
        Ok(())
    }

    /// Keeps `bytes` of the message being read, within the cap.
    fn take(&mut self, bytes: &[u8]) {
        if let Some(size) = &mut self.reading {
            *size += bytes.len();
            if *size <= self.max_message_bytes {
                self.message.extend_from_slice(bytes);
            } else if !self.message.is_empty() {
                self.message = Vec::new();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(body: &str, max: usize, piece_size: usize) -> Vec<Piece> {
        let mut splitter = MessageSplitter::new(max);
        let mut pieces = Vec::new();
        for chunk in body.as_bytes().chunks(piece_size) {
            splitter
                .feed(chunk, &mut |piece| pieces.push(piece))
                .unwrap();
        }
        pieces
    }

    #[test]
    fn messages_are_split_out_whatever_the_chunks_and_large_ones_skipped() {
        let body = r#"{"sessionId":"s","messages":[{"type":"a","payload":{"content":"x}\"]{"}},{"type":"b","payload":{"content":"0123456789012345678901234567890123456789"}},{"type":"c","payload":[1,{"n":2}]}]}"#;
        for piece_size in [1, 2, 7, 1000] {
            let pieces = split(body, 60, piece_size);
            assert_eq!(pieces.len(), 3, "{piece_size}");
            let Piece::Message(first) = &pieces[0] else {
                panic!("{pieces:?}");
            };
            let first: serde_json::Value = serde_json::from_slice(first).unwrap();
            assert_eq!(first["payload"]["content"], "x}\"]{");
            assert!(matches!(pieces[1], Piece::TooLarge(77)), "{pieces:?}");
            let Piece::Message(third) = &pieces[2] else {
                panic!("{pieces:?}");
            };
            let third: serde_json::Value = serde_json::from_slice(third).unwrap();
            assert_eq!(third["payload"][1]["n"], 2);
        }
    }

    #[test]
    fn a_body_that_is_not_json_or_nests_too_deep_is_an_error() {
        let mut splitter = MessageSplitter::new(100);
        assert!(splitter.feed(b"{]", &mut |_| {}).is_err());
        let mut splitter = MessageSplitter::new(100);
        let deep = "[".repeat(200);
        assert!(
            splitter
                .feed(deep.as_bytes(), &mut |_| {})
                .unwrap_err()
                .contains("deeper")
        );
    }
}
