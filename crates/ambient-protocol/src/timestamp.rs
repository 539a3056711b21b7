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
