//! Small shared helpers: logging set-up, parsing of human-written sizes
//! and durations (`64MiB`, `500ms`), and making text safe to show a person
//! ([`for_person`]).

use std::borrow::Cow;
use std::time::Duration;

/// Start `tracing` output on stderr, filtered by `RUST_LOG` (default: warn).
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// `text` made safe to print on a person's terminal: every control
/// character but newline and tab (C0, DEL, C1: ESC, BEL, CR, backspace,
/// ...) and the bidirectional-override characters are shown escaped
/// (`\x1b`, `\r`, `\u{202e}`), so text from a hook's commands can never
/// move the cursor, rewrite a line or recolour the screen. `--json` output
/// is not passed through this: JSON escapes control characters itself.
pub fn for_person(text: &str) -> Cow<'_, str> {
    fn unsafe_char(c: char) -> bool {
        (c.is_control() && c != '\n' && c != '\t')
            || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
    }
    if !text.chars().any(unsafe_char) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if !unsafe_char(c) {
            out.push(c);
            continue;
        }
        match c {
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x100 => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
        }
    }
    Cow::Owned(out)
}

/// Parse a duration such as `2s`, `500ms`, `1m30s` or `1.5s`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    if let Some(secs) = t.strip_suffix('s').filter(|s| s.contains('.'))
        && let Ok(v) = secs.parse::<f64>()
        && v.is_finite()
        && v >= 0.0
    {
        return Ok(Duration::from_secs_f64(v));
    }
    humantime::parse_duration(t).map_err(|e| {
        format!("`{text}` is not a duration ({e}); write it like `2s`, `500ms` or `1m30s`")
    })
}

/// Parse a size such as `64MiB`, `512KiB`, `1GiB`, `1048576` or `10MB`.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let unit = unit.trim();
    let mult: u64 = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kib" => 1 << 10,
        "m" | "mib" => 1 << 20,
        "g" | "gib" => 1 << 30,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        _ => {
            return Err(format!(
                "`{text}` has an unknown unit `{unit}`; write a size like `64MiB`, `512KiB` or `1GiB`"
            ));
        }
    };
    let value: f64 = num
        .parse()
        .map_err(|_| format!("`{text}` is not a size; write it like `64MiB`"))?;
    let bytes = value * mult as f64;
    if !bytes.is_finite() || bytes < 0.0 || bytes > u64::MAX as f64 {
        return Err(format!("`{text}` is out of range"));
    }
    Ok(bytes as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("2s").unwrap(), Duration::from_secs(2));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert!(parse_duration("soon").unwrap_err().contains("500ms"));
    }

    #[test]
    fn control_characters_are_shown_not_obeyed() {
        assert_eq!(for_person("ok\tline\n"), "ok\tline\n");
        assert_eq!(
            for_person("\x1b[2K\rfake ok\x07\u{9b}x\u{202e}"),
            "\\x1b[2K\\rfake ok\\x07\\x9bx\\u{202e}"
        );
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("64MiB").unwrap(), 64 << 20);
        assert_eq!(parse_size("1048576").unwrap(), 1 << 20);
        assert_eq!(parse_size("10MB").unwrap(), 10_000_000);
        assert!(
            parse_size("12 parsecs")
                .unwrap_err()
                .contains("unknown unit")
        );
    }
}
