//! Nested JSON the host holds: one nesting limit for all of it.
//!
//! The rule: **no JSON value the host builds, parses or walks is nested
//! deeper than [`MAX_DEPTH`]** (arrays and objects, the outermost counting
//! as 1). Text is parsed with [`parse`] (serde_json stops at 127 levels
//! with no recursion past that; [`parse`] then checks the shared limit);
//! values built from pieces (`--param a.b.c=...`) check their depth with
//! [`check_depth`] before they exist. The guest gets the same number for
//! the globals it decodes and the results it encodes (hook option
//! `max-depth`), so a hook's value the guest accepts is one the host
//! accepts. Because every value is this shallow, code that walks values by
//! recursion (defaults, secrets, masking, schema analysis, `Drop`) needs at
//! most [`MAX_DEPTH`] frames and can never overflow a stack.

use serde_json::Value;

/// Deepest nesting of arrays and objects in any JSON the host handles.
pub const MAX_DEPTH: usize = 100;

/// Nesting depth of `v` (a scalar is 0, `[]` is 1), found without recursion.
pub fn depth(v: &Value) -> usize {
    let mut deepest = 0;
    let mut stack = vec![(v, 0usize)];
    while let Some((v, d)) = stack.pop() {
        match v {
            Value::Array(a) => {
                deepest = deepest.max(d + 1);
                stack.extend(a.iter().map(|c| (c, d + 1)));
            }
            Value::Object(o) => {
                deepest = deepest.max(d + 1);
                stack.extend(o.values().map(|c| (c, d + 1)));
            }
            _ => {}
        }
    }
    deepest
}

/// JSON text that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JsonError {
    /// Not JSON (serde_json's message, with line and column).
    #[error("{message}")]
    Syntax {
        /// serde_json's message.
        message: String,
        /// The line of the error (1-based).
        line: usize,
        /// The column of the error (1-based).
        column: usize,
    },
    /// Nested deeper than [`MAX_DEPTH`].
    #[error(
        "it is nested more than {MAX_DEPTH} levels deep; lunabox handles JSON up to {MAX_DEPTH} levels"
    )]
    TooDeep,
}

/// Parse JSON text, refusing anything nested deeper than [`MAX_DEPTH`].
pub fn parse(text: &str) -> Result<Value, JsonError> {
    parse_slice(text.as_bytes())
}

/// [`parse`] for bytes.
pub fn parse_slice(bytes: &[u8]) -> Result<Value, JsonError> {
    match serde_json::from_slice::<Value>(bytes) {
        Ok(v) => {
            check_depth(&v)?;
            Ok(v)
        }
        Err(e) if e.to_string().starts_with("recursion limit exceeded") => Err(JsonError::TooDeep),
        Err(e) => Err(JsonError::Syntax {
            message: e.to_string(),
            line: e.line(),
            column: e.column(),
        }),
    }
}

/// `Err(TooDeep)` when `v` is nested deeper than [`MAX_DEPTH`].
pub fn check_depth(v: &Value) -> Result<(), JsonError> {
    if depth(v) > MAX_DEPTH {
        Err(JsonError::TooDeep)
    } else {
        Ok(())
    }
}

/// What kind of JSON value `v` is, for messages (`an object`, `a string`).
pub fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nested(d: usize) -> String {
        "[".repeat(d) + &"]".repeat(d)
    }

    #[test]
    fn the_limit_is_exact_and_deeper_text_is_refused_without_recursion() {
        assert_eq!(depth(&parse(&nested(MAX_DEPTH)).unwrap()), MAX_DEPTH);
        assert_eq!(parse(&nested(MAX_DEPTH + 1)), Err(JsonError::TooDeep));
        assert_eq!(parse(&nested(100_000)), Err(JsonError::TooDeep));
        assert!(matches!(parse("[1,"), Err(JsonError::Syntax { .. })));
        assert_eq!(depth(&Value::Null), 0);
    }
}
