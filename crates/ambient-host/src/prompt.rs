//! What a session runs first: the one rule for every front and every adapter.
//!
//! - A fresh session runs its prompt; a batch session with none runs
//!   [`DEFAULT_PROMPT`], as the platform's first runner did.
//! - A continuation runs its prompt unless it is the continued session's own, which the
//!   conversation already holds (a restart is a continuation of the session itself).
//!   So no continuation runs the same prompt twice.
//! - A batch continuation with nothing new to run waits for a message, as an interactive
//!   one does, and says so: no continuation finishes without doing anything
//!   (`platform-wire.md` §7 item 19).

use ambient_adapter::Mode;

use crate::config::DEFAULT_PROMPT;

/// What a session runs first, and how it goes on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FirstTurn {
    /// The prompt to deliver as the first message, if any.
    pub(crate) prompt: Option<String>,
    /// The mode the session runs in.
    pub(crate) mode: Mode,
    /// A line for the user about the choice, where it is not the obvious one.
    pub(crate) note: Option<String>,
}

/// The session's first turn. `parent` names the continued session (`None` for a fresh
/// one, or where the front cannot name it), `parent_prompt` is the prompt its
/// conversation already holds, when known.
pub(crate) fn first_turn(
    prompt: &str,
    mode: Mode,
    continuation: Option<Continued<'_>>,
) -> FirstTurn {
    let prompt = prompt.trim();
    let Some(continued) = continuation else {
        let prompt = match (prompt, mode) {
            ("", Mode::Batch) => Some(DEFAULT_PROMPT.to_owned()),
            ("", Mode::Interactive) => None,
            (prompt, _) => Some(prompt.to_owned()),
        };
        return FirstTurn {
            prompt,
            mode,
            note: None,
        };
    };
    let already_held = continued.prompt.map(str::trim) == Some(prompt);
    if !prompt.is_empty() && !already_held {
        return FirstTurn {
            prompt: Some(prompt.to_owned()),
            mode,
            note: None,
        };
    }
    let note = match mode {
        Mode::Interactive => None,
        Mode::Batch => {
            let parent = continued.name.map_or_else(
                || String::from("an earlier session"),
                |n| format!("session {n}"),
            );
            let why = if prompt.is_empty() {
                "was given no new prompt"
            } else {
                "was given the prompt that session already ran"
            };
            Some(format!(
                "This session continues {parent} and {why}: it waits for a message instead of finishing with nothing done."
            ))
        }
    };
    FirstTurn {
        prompt: None,
        mode: Mode::Interactive,
        note,
    }
}

/// The session a continuation continues, as far as the front knows it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Continued<'a> {
    /// Its name.
    pub(crate) name: Option<&'a str>,
    /// The prompt its conversation holds.
    pub(crate) prompt: Option<&'a str>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The first turn of a session with `prompt` in `mode`, continuing one whose prompt
    /// was `parent` (`Some(None)`: a continuation whose parent's prompt is unknown), as
    /// `prompt|mode|note?`.
    #[track_caller]
    fn check(prompt: &str, mode: Mode, parent: Option<Option<&str>>, expect: &str) {
        let continued = parent.map(|prompt| Continued {
            name: Some("s0"),
            prompt,
        });
        let turn = first_turn(prompt, mode, continued);
        let got = format!(
            "{}|{:?}|{}",
            turn.prompt.unwrap_or_default(),
            turn.mode,
            turn.note.map_or("", |_| "note")
        );
        assert_eq!(got, expect);
    }

    #[test]
    fn a_fresh_session_runs_its_prompt_and_a_batch_one_always_runs_something() {
        check("  fix it ", Mode::Batch, None, "fix it|Batch|");
        check("", Mode::Batch, None, &format!("{DEFAULT_PROMPT}|Batch|"));
        check("fix it", Mode::Interactive, None, "fix it|Interactive|");
        check(" ", Mode::Interactive, None, "|Interactive|");
    }

    #[test]
    fn a_continuation_runs_a_new_prompt_but_never_the_one_it_continues() {
        check(
            "and now the tests",
            Mode::Batch,
            Some(Some("fix it")),
            "and now the tests|Batch|",
        );
        check(
            "and now",
            Mode::Interactive,
            Some(Some("fix it")),
            "and now|Interactive|",
        );
        check("new", Mode::Batch, Some(None), "new|Batch|");
        check(
            "fix it",
            Mode::Interactive,
            Some(Some(" fix it\n")),
            "|Interactive|",
        );
        check("", Mode::Interactive, Some(Some("fix it")), "|Interactive|");
    }

    #[test]
    fn a_batch_continuation_with_nothing_new_waits_for_a_message_and_says_why() {
        check(
            "fix it",
            Mode::Batch,
            Some(Some("fix it")),
            "|Interactive|note",
        );
        check("", Mode::Batch, Some(None), "|Interactive|note");
        let turn = first_turn(
            "fix it",
            Mode::Batch,
            Some(Continued {
                name: Some("s0"),
                prompt: Some("fix it"),
            }),
        );
        assert_eq!(
            turn.note.as_deref(),
            Some(
                "This session continues session s0 and was given the prompt that session already ran: it waits for a message instead of finishing with nothing done."
            )
        );
    }
}
