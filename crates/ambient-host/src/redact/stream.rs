//! Redaction that holds on streams: a secret split across any number of text deltas never
//! leaves.
//!
//! Each stream keeps back the tail that could still be the start (or a part) of a
//! secret: the trailing run of characters a token is made of (every token shape is such a
//! run, with `Bearer ` before it at most), the longest tail that begins a secret's value
//! in one of its forms, and anything a match reaches into or ends on. The rest goes out,
//! scrubbed. The next delta, or the end of the stream, shows what the held tail was.

use super::Redactor;

/// The most bytes one stream holds back: a run of token characters longer than this goes
/// out (scrubbed as it stands), so that a stream of one endless word cannot fill memory.
pub const MAX_HELD_BYTES: usize = 64 * 1024;

/// What each open text stream holds back.
#[derive(Debug, Default)]
pub struct HeldStreams {
    /// Stream id and held text, in the order the streams opened (there are few).
    held: Vec<(String, String)>,
}

impl HeldStreams {
    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.held.is_empty()
    }
}

/// Whether `c` can be part of a token.
fn tokenish(c: char) -> bool {
    c.is_ascii_alphanumeric()
        || matches!(c, '_' | '-' | '.' | '/' | '+' | '=' | ':' | '@' | '%' | '~')
}

impl Redactor {
    /// The part of stream `stream`, with `data` appended, that can go out now, scrubbed;
    /// what could still be a secret is held for the next piece. Empty when all of it is
    /// held.
    pub fn stream(&self, streams: &mut HeldStreams, stream: &str, data: &str) -> String {
        let index = match streams.held.iter().position(|(id, _)| id == stream) {
            Some(index) => index,
            None => {
                streams.held.push((stream.to_owned(), String::new()));
                streams.held.len() - 1
            }
        };
        let buffer = &mut streams.held[index].1;
        buffer.push_str(data);
        let cut = self.safe_cut(buffer);
        let held = buffer.split_off(cut);
        let out = self.text(buffer).into_owned();
        *buffer = held;
        if buffer.is_empty() {
            streams.held.remove(index);
        }
        out
    }

    /// Everything held, scrubbed, stream by stream: the streams have ended (their whole
    /// text came, or another event did).
    pub fn release(&self, streams: &mut HeldStreams) -> Vec<(String, String)> {
        std::mem::take(&mut streams.held)
            .into_iter()
            .map(|(stream, held)| {
                let out = self.text(&held).into_owned();
                (stream, out)
            })
            .collect()
    }

    /// Where `buffer` can be cut so that no secret spans the cut: everything before it is
    /// safe to scrub and send.
    fn safe_cut(&self, buffer: &str) -> usize {
        let len = buffer.len();
        // The trailing run of token characters, and a `Bearer ` before it.
        let mut cut = buffer
            .char_indices()
            .rev()
            .take_while(|(_, c)| tokenish(*c))
            .last()
            .map_or(len, |(i, _)| i);
        let before = buffer[..cut].trim_end();
        if before.len() < cut && before.to_ascii_lowercase().ends_with("bearer") {
            cut = before.len() - "bearer".len();
        }
        // The longest tail that begins a secret: only forms with characters a token run
        // does not hold need it.
        for form in self.forms().iter() {
            if form.chars().all(tokenish) {
                continue;
            }
            let bytes = form.as_bytes();
            let longest = (1..bytes.len().min(len + 1))
                .rev()
                .find(|&k| buffer.as_bytes().ends_with(&bytes[..k]));
            if let Some(k) = longest {
                cut = cut.min(len - k);
            }
        }
        // A match that reaches past the cut, or ends where the buffer does (it may go on).
        for found in self.matcher().find_iter(buffer) {
            if found.start() < cut && (found.end() > cut || found.end() == len) {
                cut = found.start();
            }
        }
        if len - cut > MAX_HELD_BYTES {
            cut = len - MAX_HELD_BYTES;
        }
        while !buffer.is_char_boundary(cut) {
            cut -= 1;
        }
        cut
    }
}

#[cfg(test)]
mod tests {
    use ambient_protocol::Secret;

    use super::*;
    use crate::redact::REDACTED;

    const TOKEN: &str = "ghp_0123456789abcdefghijklmnopqrstuvwxyzAB";
    const HELD: &str = "bot-token-f00dfeed";

    /// Streams `text` cut into `pieces` parts of near equal size, and returns what went
    /// out, piece by piece, then at the end.
    fn streamed(redactor: &Redactor, text: &str, pieces: usize) -> Vec<String> {
        let chars: Vec<char> = text.chars().collect();
        let size = chars.len().div_ceil(pieces);
        let mut streams = HeldStreams::default();
        let mut out: Vec<String> = chars
            .chunks(size)
            .map(|piece| redactor.stream(&mut streams, "m1", &piece.iter().collect::<String>()))
            .collect();
        out.extend(
            redactor
                .release(&mut streams)
                .into_iter()
                .map(|(_, text)| text),
        );
        out
    }

    #[track_caller]
    fn check(redactor: &Redactor, text: &str, expect: &str) {
        for pieces in [1, 2, 3, 7, 30, text.chars().count()] {
            let out = streamed(redactor, text, pieces);
            // No piece holds any 8 characters of a secret the text holds.
            for (index, piece) in out.iter().enumerate() {
                for secret in [TOKEN, HELD].into_iter().filter(|s| text.contains(s)) {
                    for part in secret.as_bytes().windows(8) {
                        let part = std::str::from_utf8(part).unwrap();
                        assert!(
                            !piece.contains(part),
                            "{pieces} pieces: piece {index} leaks {part:?}: {out:?}"
                        );
                    }
                }
            }
            assert_eq!(out.concat(), expect, "{pieces} pieces: {out:?}");
        }
    }

    #[test]
    fn a_secret_split_across_deltas_never_goes_out() {
        let redactor = Redactor::new([&Secret::new(HELD)]);
        check(
            &redactor,
            &format!("the token is {TOKEN}, and the bot's is {HELD}. Done."),
            &format!("the token is {REDACTED}, and the bot's is {REDACTED}. Done."),
        );
        check(
            &redactor,
            &format!("Authorization: Bearer {HELD}x plus more"),
            &format!("Authorization: Bearer {REDACTED} plus more"),
        );
    }

    #[test]
    fn text_that_only_looks_like_a_secret_comes_whole_and_in_order() {
        let redactor = Redactor::new([&Secret::new(HELD)]);
        let text = "ghp_ is a prefix, bot-token is a word, and AKIA alone is nothing.";
        check(&redactor, text, text);
        let mut streams = HeldStreams::default();
        // A word in the making is held until the next piece says where it ends.
        assert_eq!(redactor.stream(&mut streams, "m", "hello wor"), "hello ");
        assert_eq!(redactor.stream(&mut streams, "m", "ld! next"), "world! ");
        assert_eq!(
            redactor.release(&mut streams),
            [(String::from("m"), String::from("next"))]
        );
        assert!(streams.is_empty());
    }

    #[test]
    fn a_secret_with_characters_a_token_lacks_is_held_from_its_first_character() {
        let spaced = "open sesame 42 please";
        let redactor = Redactor::new([&Secret::new(spaced)]);
        let mut streams = HeldStreams::default();
        assert_eq!(redactor.stream(&mut streams, "m", "say: open ses"), "say: ");
        assert_eq!(
            redactor.stream(&mut streams, "m", "ame 42 please now"),
            format!("{REDACTED} ")
        );
    }

    #[test]
    fn a_secret_learned_mid_stream_is_caught_in_what_is_held() {
        let redactor = Redactor::default();
        let mut streams = HeldStreams::default();
        let minted = "m1nted-t0ken-value-99";
        let out = redactor.stream(&mut streams, "m", &format!("cloned with {}", &minted[..9]));
        assert_eq!(out, "cloned with ");
        redactor.learn(&Secret::new(minted)).unwrap();
        let mut out = redactor.stream(&mut streams, "m", &format!("{} ok", &minted[9..]));
        out.extend(redactor.release(&mut streams).into_iter().map(|(_, t)| t));
        assert_eq!(out, format!("{REDACTED} ok"));
    }

    #[test]
    fn an_endless_word_is_bounded() {
        let redactor = Redactor::default();
        let mut streams = HeldStreams::default();
        let mut out = 0;
        for _ in 0..100 {
            out += redactor.stream(&mut streams, "m", &"a".repeat(4096)).len();
        }
        assert_eq!(out, 100 * 4096 - MAX_HELD_BYTES);
    }
}
