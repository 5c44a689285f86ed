//! How entries, payloads and tables look on a terminal.

use comfy_table::presets::UTF8_FULL_CONDENSED;
use comfy_table::{ContentArrangement, Table};
use event_backbone::{EntryId, Message, Metadata};

/// A table that fits the terminal's width, with plain ASCII borders when
/// `NO_COLOR` is set.
pub fn table(header: &[&str]) -> Table {
    let mut table = Table::new();
    if std::env::var_os("NO_COLOR").is_none() {
        table.load_preset(UTF8_FULL_CONDENSED);
    } else {
        table.load_preset(comfy_table::presets::ASCII_MARKDOWN);
    }
    table
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_header(header.iter().copied());
    table
}

/// Text from a stream made safe for a terminal: control characters (a
/// newline, an escape sequence) shown escaped, so that no entry can draw
/// lines of its own.
pub fn clean(text: &str) -> String {
    // Control characters, and the marks that turn text right to left.
    let unsafe_char = |c: char| {
        c.is_control()
            || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
    };
    if !text.chars().any(unsafe_char) {
        return text.to_owned();
    }
    text.chars()
        .map(|c| {
            if unsafe_char(c) {
                c.escape_unicode().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// One line for an entry: time, entry id, message id, operation and
/// version, segments (name and where), correlation id.
pub fn entry_line(id: &EntryId, metadata: &Metadata) -> String {
    let segments: Vec<&str> = metadata.segments.iter().map(|s| s.name.as_str()).collect();
    let mut line = format!(
        "{}  {}  {}  {} v{}  [{}]",
        utc_time(metadata.produced_at_ms),
        clean(id.as_str()),
        metadata.message_id,
        clean(&metadata.operation),
        metadata.version,
        clean(&segments.join(", "))
    );
    if let Some(correlation) = &metadata.correlation_id {
        line.push_str("  correlation ");
        line.push_str(&clean(correlation));
    }
    line
}

/// One line for a dead letter: its entry, operation, group, deliveries,
/// the entry it had, and the reason.
pub fn dead_letter_line(letter: &event_backbone::DeadLetter) -> String {
    let unknown = || "?".to_owned();
    let line = format!(
        "{}  {}  group {}  {} deliveries  was {}  {}",
        letter.entry,
        letter.operation().unwrap_or("(unreadable)"),
        letter.group.clone().unwrap_or_else(unknown),
        letter.deliveries.map_or_else(unknown, |d| d.to_string()),
        letter.original_entry.clone().unwrap_or_else(unknown),
        letter.reason
    );
    clean(&line)
}

/// The payload's lines, indented: each segment by its name, as JSON when
/// the message's codec is JSON, else as hex with its length; sealed
/// segments as sealed.
pub fn payload_lines(message: &Message) -> Vec<String> {
    let json = message.metadata().content_type.contains("json");
    let sealed = message.sealed_segments();
    let mut lines = Vec::new();
    for name in message.metadata().segments.iter().map(|s| s.name.as_str()) {
        let shown = if sealed.contains(&name) {
            ": sealed (personal data; --personal-data opens it with the key vault's secrets)"
                .to_owned()
        } else {
            match message.segments().bytes(name) {
                None => ": gone from the store (expired, or its data subject erased)".to_owned(),
                Some(bytes) => format!(" ({}): {}", size(bytes.len()), value(bytes, json)),
            }
        };
        lines.push(format!("    {}{shown}", clean(name)));
    }
    lines
}

/// A segment's value: JSON as it is when it parses, else hex.
fn value(bytes: &[u8], json: bool) -> String {
    match json_of(bytes, json) {
        Some(v) => clean(&v.to_string()),
        None => format!("hex {}", hex(bytes)),
    }
}

/// A segment's bytes as a JSON value, when its codec is JSON and they
/// parse (postcard is not self-describing).
pub fn json_of(bytes: &[u8], json: bool) -> Option<serde_json::Value> {
    json.then(|| serde_json::from_slice(bytes).ok()).flatten()
}

/// `1 byte`, `N bytes`.
fn size(bytes: usize) -> String {
    count(bytes, "byte")
}

/// `1 thing`, `N things`.
pub fn count(n: usize, thing: &str) -> String {
    match n {
        1 => format!("1 {thing}"),
        n => format!("{n} {thing}s"),
    }
}

/// Bytes in lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A duration in milliseconds, short: `350ms`, `12.3s`, `5m 2s`, `3h 4m`,
/// `2d 3h`.
pub fn duration(ms: u64) -> String {
    let s = ms / 1000;
    match ms {
        0..1_000 => format!("{ms}ms"),
        1_000..60_000 => format!("{}.{}s", s, ms % 1000 / 100),
        60_000..3_600_000 => format!("{}m {}s", s / 60, s % 60),
        3_600_000..86_400_000 => format!("{}h {}m", s / 3600, s / 60 % 60),
        _ => format!("{}d {}h", s / 86_400, s / 3600 % 24),
    }
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ` of milliseconds since the Unix epoch.
pub fn utc_time(ms: u64) -> String {
    let (days, ms_of_day) = ((ms / 86_400_000) as i64, ms % 86_400_000);
    let (y, m, d) = civil_from_days(days);
    let s = ms_of_day / 1000;
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        s / 3600,
        s / 60 % 60,
        s % 60,
        ms_of_day % 1000
    )
}

/// The proleptic Gregorian date of a day count since 1970-01-01.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let mp = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_utc_dates() {
        assert_eq!(utc_time(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(utc_time(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(utc_time(1_765_000_000_123), "2025-12-06T05:46:40.123Z");
    }

    #[test]
    fn durations_are_short() {
        assert_eq!(duration(350), "350ms");
        assert_eq!(duration(12_345), "12.3s");
        assert_eq!(duration(302_000), "5m 2s");
        assert_eq!(duration(11_040_000), "3h 4m");
        assert_eq!(duration(183_600_000), "2d 3h");
    }

    #[test]
    fn control_characters_are_shown_escaped() {
        assert_eq!(clean("plain"), "plain");
        assert_eq!(clean("a\nfake line\u{1b}[2J"), "a\\u{a}fake line\\u{1b}[2J");
        assert_eq!(clean("\u{202e}txt.exe"), "\\u{202e}txt.exe");
        assert_eq!(clean("\u{9b}31m"), "\\u{9b}31m");
    }

    #[test]
    fn values_are_json_when_they_parse_and_hex_otherwise() {
        assert_eq!(value(br#"{"a":1}"#, true), r#"{"a":1}"#);
        assert_eq!(value(&[0x2a, 0xff], true), "hex 2aff");
        assert_eq!(value(b"7", false), "hex 37");
        assert_eq!(
            (size(1), size(2)),
            ("1 byte".to_owned(), "2 bytes".to_owned())
        );
    }
}
