//! Text for people and logs: making command output safe to print
//! ([`for_person`]), quoting and shortening long text ([`quote`], [`tail`]),
//! and masking secrets ([`mask_secrets`]).

use std::borrow::Cow;

/// What replaces a secret in the transcript and in messages.
pub const MASK: &str = "********";

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

/// `text` in backquotes, shortened to its first `limit` characters.
pub fn quote(text: &str, limit: usize) -> String {
    match text.char_indices().nth(limit) {
        None => format!("`{text}`"),
        Some((cut, _)) => format!("`{}`... ({} bytes in all)", &text[..cut], text.len()),
    }
}

/// The last `limit` characters of `text`, with `...` in front when cut.
pub fn tail(text: &str, limit: usize) -> String {
    let n = text.chars().count();
    if n <= limit {
        text.to_string()
    } else {
        let skip = text.char_indices().nth(n - limit).map_or(0, |(i, _)| i);
        format!("...{}", &text[skip..])
    }
}

/// Replace every occurrence of every (non-empty) secret in `text` by
/// `********`; longer secrets first so a secret containing another is
/// masked whole.
pub fn mask_secrets(text: &str, secrets: &[String]) -> String {
    let mut sorted: Vec<&String> = secrets.iter().filter(|s| !s.is_empty()).collect();
    if sorted.is_empty() {
        return text.to_string();
    }
    sorted.sort_by_key(|s| std::cmp::Reverse(s.len()));
    let mut out = text.to_string();
    for s in sorted {
        if out.contains(s.as_str()) {
            out = out.replace(s.as_str(), MASK);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_shown_not_obeyed() {
        assert_eq!(for_person("ok\tline\n"), "ok\tline\n");
        assert_eq!(
            for_person("\x1b[2K\rfake ok\x07\u{9b}x\u{202e}"),
            "\\x1b[2K\\rfake ok\\x07\\x9bx\\u{202e}"
        );
    }

    #[test]
    fn masks_longest_first() {
        let secrets = vec!["pw".to_string(), "pw123".to_string(), String::new()];
        assert_eq!(
            mask_secrets("x pw123 y pw", &secrets),
            "x ******** y ********"
        );
    }
}
