//! The two timestamp forms on the wire.

use time::{OffsetDateTime, macros::format_description};

/// The runner's envelope timestamp: naive UTC as Python's `datetime.utcnow().isoformat()`
/// prints it, with no zone suffix and microseconds only when they are not zero
/// (`2025-10-31T20:02:41.123456`, `2025-10-31T20:02:41`).
pub fn runner_timestamp(at: OffsetDateTime) -> String {
    let at = at.to_offset(time::UtcOffset::UTC);
    let seconds = format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]");
    // Formatting into a String cannot fail for a well-formed description and a UTC time;
    // an empty string would still be a valid (if useless) field, never a panic.
    let mut out = at.format(seconds).unwrap_or_default();
    let micros = at.microsecond();
    if micros != 0 {
        out.push_str(&format!(".{micros:06}"));
    }
    out
}

/// The backend's timestamp: RFC 3339 UTC at second precision (`2025-10-31T20:02:41Z`), as
/// Go's `time.RFC3339` prints a UTC time.
pub fn backend_timestamp(at: OffsetDateTime) -> String {
    let at = at.to_offset(time::UtcOffset::UTC);
    let form = format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");
    at.format(form).unwrap_or_default()
}

/// Runner timestamps for a stream of frames: the same as [`runner_timestamp`] of the
/// current time, with the date and time of day formatted once a second.
#[derive(Debug, Default)]
pub struct RunnerClock {
    /// The second formatted, and its text.
    second: Option<(i64, String)>,
}

impl RunnerClock {
    /// The current time as a runner timestamp.
    pub fn now(&mut self) -> String {
        self.at(OffsetDateTime::now_utc())
    }

    /// `at` as a runner timestamp.
    pub fn at(&mut self, at: OffsetDateTime) -> String {
        let at = at.to_offset(time::UtcOffset::UTC);
        let second = at.unix_timestamp();
        let prefix = match &self.second {
            Some((cached, prefix)) if *cached == second => prefix,
            _ => {
                let whole = at.replace_nanosecond(0).unwrap_or(at);
                &self.second.insert((second, runner_timestamp(whole))).1
            }
        };
        let mut out = String::with_capacity(prefix.len() + 7);
        out.push_str(prefix);
        let micros = at.microsecond();
        if micros != 0 {
            out.push('.');
            let mut digits = [b'0'; 6];
            let mut rest = micros;
            for digit in digits.iter_mut().rev() {
                *digit = b'0' + u8::try_from(rest % 10).unwrap_or(0);
                rest /= 10;
            }
            out.push_str(std::str::from_utf8(&digits).unwrap_or("000000"));
        }
        out
    }
}
