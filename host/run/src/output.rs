//! What a finished call gives back: the exit-code rule, and reading
//! `$DLPX_OUTPUT_FILE` against the call's `outputSchema`.
//!
//! The exit code wins: a non-zero exit is a [`RunFailure::Exit`] whatever
//! the output file holds. After a zero exit, a call with an `outputSchema`
//! must have written exactly one JSON document (surrounding whitespace is
//! fine) that the draft-04 schema accepts; anything else is a
//! [`RunFailure::BadOutput`] that names the call, shows the offending text
//! (shortened) and lists each schema error with its JSON pointer.

use serde_json::Value;

use super::{RawResult, RunFailure};
use lunabox_toolkit::schema::{Budget, CheckError, Schema};
pub use lunabox_toolkit::text::{quote, tail};

/// Most characters of a stream or output file quoted in a message.
pub const QUOTE_LIMIT: usize = 2000;

/// Compile `schema` as a draft-04 JSON Schema (analysed for cost first,
/// then checked against the draft-04 meta-schema; no remote references are
/// fetched): see [`lunabox_toolkit::schema`].
pub fn compile_schema(schema: &Value) -> Result<Schema, String> {
    Schema::compile(schema).map_err(|e| e.to_string())
}

/// The failure for a call that exited non-zero: exit code, streams, and a
/// message naming the call (`label`, e.g. `RunBash (resource status.sh)`)
/// with the end of stderr (or of stdout when stderr is empty).
pub fn exit_failure(label: &str, raw: &RawResult) -> RunFailure {
    let status = match raw.signal {
        Some(sig) => format!("was killed by signal {sig} ({})", signal_name(sig)),
        None => format!("exited with status {}", raw.exit_code),
    };
    let detail = if !raw.stderr.trim().is_empty() {
        format!("; stderr: {}", tail(raw.stderr.trim_end(), QUOTE_LIMIT))
    } else if !raw.stdout.trim().is_empty() {
        format!("; stdout: {}", tail(raw.stdout.trim_end(), QUOTE_LIMIT))
    } else {
        " (no output on stdout or stderr)".to_string()
    };
    let cut = if raw.stdout_truncated || raw.stderr_truncated {
        " (output past the capture limit was dropped)"
    } else {
        ""
    };
    RunFailure::Exit {
        exit_code: raw.exit_code,
        stdout: raw.stdout.clone(),
        stderr: raw.stderr.clone(),
        message: format!("{label} {status}{detail}{cut}"),
    }
}

fn signal_name(sig: i32) -> &'static str {
    match sig {
        libc::SIGHUP => "SIGHUP",
        libc::SIGINT => "SIGINT",
        libc::SIGQUIT => "SIGQUIT",
        libc::SIGABRT => "SIGABRT",
        libc::SIGKILL => "SIGKILL",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGPIPE => "SIGPIPE",
        libc::SIGTERM => "SIGTERM",
        libc::SIGBUS => "SIGBUS",
        _ => "signal",
    }
}

/// Read the output document of a call that exited zero and has an
/// `outputSchema`. `Err` holds the whole `BadOutput` message.
pub fn check_output(
    label: &str,
    raw: &RawResult,
    schema: &Value,
    validator: &Schema,
    budget: &Budget,
) -> Result<Value, OutputError> {
    if raw.output_truncated {
        return Err(OutputError::Bad(format!(
            "{label} wrote more than {} bytes to $DLPX_OUTPUT_FILE; an output document must be smaller \
             (write large data to a file and return its path)",
            raw.output.len()
        )));
    }
    let text = String::from_utf8_lossy(&raw.output);
    if text.trim().is_empty() {
        return Err(OutputError::Bad(format!(
            "{label} wrote no output, but the call has an outputSchema ({}); the script must write one JSON \
             document to the file named by $DLPX_OUTPUT_FILE, e.g. echo '\"ok\"' > \"$DLPX_OUTPUT_FILE\"",
            quote(&schema.to_string(), 200)
        )));
    }
    let value: Value = match lunabox_toolkit::json::parse_slice(&raw.output) {
        Ok(v) => v,
        Err(lunabox_toolkit::json::JsonError::TooDeep) => {
            return Err(OutputError::Bad(format!(
                "{label} wrote an output document nested more than {} levels deep; lunabox reads JSON up to \
                 {} levels (flatten the document)",
                lunabox_toolkit::json::MAX_DEPTH,
                lunabox_toolkit::json::MAX_DEPTH
            )));
        }
        Err(e) => {
            let hint = if !text.trim_start().starts_with(['{', '[', '"']) {
                " (a string must be written with its JSON quotes, e.g. \"ACTIVE\")"
            } else {
                ""
            };
            return Err(OutputError::Bad(format!(
                "{label} wrote output that is not one JSON document ({e}){hint}; the output was: {}",
                quote(text.trim_end(), QUOTE_LIMIT)
            )));
        }
    };
    match validator.check(&value, budget) {
        Ok(()) => Ok(value),
        Err(CheckError::Invalid(v)) => Err(OutputError::Bad(format!(
            "{label} wrote output that does not match its outputSchema: {v}; the output was: {}",
            quote(text.trim(), QUOTE_LIMIT)
        ))),
        Err(CheckError::Exhausted(lunabox_toolkit::schema::Exhaustion::Deadline)) => {
            Err(OutputError::Deadline)
        }
        Err(e @ CheckError::Exhausted(_)) => Err(OutputError::Bad(format!(
            "{label}: {e}; the output was: {}",
            quote(text.trim(), 200)
        ))),
    }
}

/// Why an output document was not accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutputError {
    /// The whole `BadOutput` message.
    Bad(String),
    /// The hook's deadline passed while checking it.
    Deadline,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn raw(output: &str) -> RawResult {
        RawResult {
            output: output.as_bytes().to_vec(),
            ..RawResult::default()
        }
    }

    fn check(schema: Value, output: &str) -> Result<Value, String> {
        let v = compile_schema(&schema).unwrap();
        check_output(
            "RunBash (resource s.sh)",
            &raw(output),
            &schema,
            &v,
            &Budget::default(),
        )
        .map_err(|e| match e {
            OutputError::Bad(m) => m,
            OutputError::Deadline => "deadline".into(),
        })
    }

    #[test]
    fn one_document_with_whitespace() {
        assert_eq!(
            check(json!({"type": "string"}), "\"ok\"\n\n").unwrap(),
            json!("ok")
        );
        assert_eq!(
            check(json!({}), "  {\"a\": [1, null]}  ").unwrap(),
            json!({"a": [1, null]})
        );
    }

    #[test]
    fn empty_invalid_and_two_documents() {
        let e = check(json!({"type": "string"}), " \n").unwrap_err();
        assert!(
            e.starts_with("RunBash (resource s.sh) wrote no output"),
            "{e}"
        );
        let e = check(json!({"type": "string"}), "INACTIVE\n").unwrap_err();
        assert!(
            e.contains("not one JSON document")
                && e.contains("`INACTIVE`")
                && e.contains("JSON quotes"),
            "{e}"
        );
        let e = check(json!({}), "1 2").unwrap_err();
        assert!(e.contains("trailing characters"), "{e}");
    }

    #[test]
    fn schema_errors_have_pointers() {
        let schema = json!({"type": "object", "properties": {"a": {"type": "string"}, "b": {"type": "array", "items": {"type": "integer"}}}, "required": ["c"]});
        let e = check(schema, r#"{"a": 1, "b": [1, "x"]}"#).unwrap_err();
        assert!(e.contains("/a: 1 is not of type \"string\""), "{e}");
        assert!(e.contains("/b/1: \"x\" is not of type \"integer\""), "{e}");
        assert!(e.contains("/: \"c\" is a required property"), "{e}");
        assert!(
            e.contains(r#"the output was: `{"a": 1, "b": [1, "x"]}`"#),
            "{e}"
        );
    }

    #[test]
    fn long_text_is_cut_in_messages() {
        let long = "x".repeat(10_000);
        let q = quote(&long, 100);
        assert!(q.len() < 200 && q.ends_with("(10000 bytes in all)"), "{q}");
        let t = tail(&format!("{long}END"), 10);
        assert_eq!(t, "...xxxxxxxEND");
        let r = RawResult {
            exit_code: 2,
            stderr: format!("{long}\nfatal: it broke\n"),
            ..RawResult::default()
        };
        let RunFailure::Exit {
            message, stderr, ..
        } = exit_failure("RunBash (resource q.sh)", &r)
        else {
            panic!()
        };
        assert!(
            message.starts_with("RunBash (resource q.sh) exited with status 2; stderr: ..."),
            "{message}"
        );
        assert!(
            message.ends_with("fatal: it broke") && message.len() < 2100,
            "{message}"
        );
        assert_eq!(stderr.len(), 10_017);
    }

    #[test]
    fn signal_and_silent_exits() {
        let r = RawResult {
            exit_code: 137,
            signal: Some(9),
            ..RawResult::default()
        };
        let RunFailure::Exit { message, .. } = exit_failure("RunCommand (command `x`)", &r) else {
            panic!()
        };
        assert_eq!(
            message,
            "RunCommand (command `x`) was killed by signal 9 (SIGKILL) (no output on stdout or stderr)"
        );
        let r = RawResult {
            exit_code: 1,
            stdout: "only stdout\n".into(),
            ..RawResult::default()
        };
        let RunFailure::Exit { message, .. } = exit_failure("RunBash (command `x`)", &r) else {
            panic!()
        };
        assert_eq!(
            message,
            "RunBash (command `x`) exited with status 1; stdout: only stdout"
        );
    }
}
