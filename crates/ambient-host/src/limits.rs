//! The byte budgets a deployment may set: how much the platform's messages and the
//! agent's processes can make the runner hold. The rest of the bounds are fixed; the
//! whole table is in `docs/architecture.md`.

/// The largest message taken from the platform by default.
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 8 << 20;
/// The user messages held for the agent by default.
pub const DEFAULT_INPUT_BUDGET_BYTES: usize = 16 << 20;
/// The longest line read from the agent's processes and servers by default.
pub const DEFAULT_MAX_LINE_BYTES: usize = 8 << 20;
/// The smallest budget taken: below it, ordinary sessions would fail.
const MIN_BYTES: usize = 64 << 10;
/// The largest budget taken.
const MAX_BYTES: usize = 1 << 30;

/// The budgets, each backed by its variable.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct LimitArgs {
    /// The largest message taken from the platform (a user message over the WebSocket, a
    /// run request): bytes, or with KiB / MiB / GiB [default: 8 MiB].
    #[arg(long, env = "RUNNER_MAX_MESSAGE_BYTES", value_parser = parse_bytes)]
    pub max_message_bytes: Option<usize>,
    /// The user messages received and not yet taken up by the agent, in bytes (and at
    /// most 256 of them, each counting for at least 1/256 of it); past it, more are
    /// dropped and the user is told [default: 16 MiB].
    #[arg(long, env = "RUNNER_INPUT_BUDGET_BYTES", value_parser = parse_bytes)]
    pub input_budget_bytes: Option<usize>,
    /// The longest line read from the agent's processes and servers (a CLI's output, a
    /// LangGraph event stream) [default: 8 MiB].
    #[arg(long, env = "RUNNER_MAX_LINE_BYTES", value_parser = parse_bytes)]
    pub max_line_bytes: Option<usize>,
}

/// The budgets in force.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The largest message taken from the platform.
    pub max_message_bytes: usize,
    /// The user messages held for the agent.
    pub input_budget_bytes: usize,
    /// The longest line read from the agent's processes and servers.
    pub max_line_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
            input_budget_bytes: DEFAULT_INPUT_BUDGET_BYTES,
            max_line_bytes: DEFAULT_MAX_LINE_BYTES,
        }
    }
}

impl LimitArgs {
    /// The budgets, the defaults where unset. A budget for held messages smaller than
    /// one message would refuse messages the platform may send: it is raised to one.
    pub fn limits(&self) -> Limits {
        let defaults = Limits::default();
        let max_message_bytes = self.max_message_bytes.unwrap_or(defaults.max_message_bytes);
        Limits {
            max_message_bytes,
            input_budget_bytes: self
                .input_budget_bytes
                .unwrap_or(defaults.input_budget_bytes)
                .max(max_message_bytes),
            max_line_bytes: self.max_line_bytes.unwrap_or(defaults.max_line_bytes),
        }
    }
}

/// A size in bytes: a number, or a number with `KiB`, `MiB` or `GiB` (also `K`, `M`,
/// `G`), between 64 KiB and 1 GiB.
fn parse_bytes(text: &str) -> Result<usize, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    if number.is_empty() {
        return Err(format!(
            "expected a size like 8388608 or 8MiB, got {text:?}"
        ));
    }
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kib" => 10,
        "m" | "mib" => 20,
        "g" | "gib" => 30,
        other => return Err(format!("unknown unit {other:?}; use KiB, MiB or GiB")),
    };
    let bytes = number
        .parse::<usize>()
        .ok()
        .and_then(|n| n.checked_mul(1 << shift))
        .ok_or_else(|| format!("expected a size like 8388608 or 8MiB, got {text:?}"))?;
    if !(MIN_BYTES..=MAX_BYTES).contains(&bytes) {
        return Err(format!(
            "{bytes} bytes is outside {MIN_BYTES} (64 KiB) to {MAX_BYTES} (1 GiB)"
        ));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_read_with_their_units_and_bounded() {
        assert_eq!(parse_bytes("8388608"), Ok(8 << 20));
        assert_eq!(parse_bytes("8MiB"), Ok(8 << 20));
        assert_eq!(parse_bytes(" 512 KiB "), Ok(512 << 10));
        assert_eq!(parse_bytes("1g"), Ok(1 << 30));
        assert!(parse_bytes("1KiB").unwrap_err().contains("outside"));
        assert!(parse_bytes("2GiB").unwrap_err().contains("outside"));
        assert!(parse_bytes("8 MB").unwrap_err().contains("unknown unit"));
        assert!(parse_bytes("lots").unwrap_err().contains("expected a size"));
    }

    #[test]
    fn the_budget_for_held_messages_holds_at_least_one_message() {
        let args = LimitArgs {
            max_message_bytes: Some(32 << 20),
            input_budget_bytes: Some(1 << 20),
            max_line_bytes: None,
        };
        let limits = args.limits();
        assert_eq!(limits.input_budget_bytes, 32 << 20);
        assert_eq!(limits.max_line_bytes, DEFAULT_MAX_LINE_BYTES);
    }
}
