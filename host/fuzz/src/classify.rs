//! What one run says about the hook: bugs (a Lua runtime error that is not
//! a failed Run call, a return value its kind does not allow, a limit hit,
//! a canary value in a command's text) or an expected fault (a failed Run
//! call surfacing as the hook's fault, or the hook's own `error(...)`).

use lunabox_sandbox::{HookOutcome, Outcome, ScriptErrorKind};

use crate::exec::Executed;
use crate::values::Canaries;

/// The kind of a bug.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// A Lua runtime error that is not a failed Run call.
    RuntimeError,
    /// A value the hook kind does not allow.
    BadReturn,
    /// A limit stopped the hook.
    Limit,
    /// A parameter, config or repository value reached a command's text.
    Injection,
}

impl Kind {
    /// The `kind` field of a finding.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::RuntimeError => "runtime-error",
            Kind::BadReturn => "bad-return",
            Kind::Limit => "limit",
            Kind::Injection => "injection",
        }
    }
}

/// One bug seen in a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bug {
    /// Which kind of bug.
    pub kind: Kind,
    /// In words.
    pub message: String,
    /// `chunk:LINE`, or the chunk alone when no line is known.
    pub location: String,
}

impl Bug {
    /// What findings are deduplicated by.
    pub fn signature(&self) -> (Kind, String) {
        (self.kind, self.location.clone())
    }
}

/// What one run showed.
#[derive(Debug, Clone, Default)]
pub struct Verdict {
    /// The bugs found, deduplicated.
    pub bugs: Vec<Bug>,
    /// An expected fault, in words (a failed Run call surfaced as the
    /// hook's fault, a hanging call ended as a time limit, ...).
    pub expected: Option<&'static str>,
}

/// Lua's own error messages (the VM's and the standard library's): an
/// error with one of these is a bug in the script, not an `error(...)` it
/// raised on purpose.
const LUA_ERRORS: &[&str] = &[
    "attempt to ",
    "bad argument #",
    "number has no integer representation",
    "stack overflow",
    "'for' initial value",
    "'for' limit",
    "'for' step",
    "invalid value (at index",
    "table index is nil",
    "table index is NaN",
    "string length overflow",
    "wrong number of arguments",
    "invalid order function",
    "resulting string too large",
    "malformed pattern",
    "invalid capture index",
    "invalid pattern capture",
    "unfinished capture",
    "missing '[' ",
    "pattern too complex",
    "invalid conversion",
    "invalid option",
    "invalid key to 'next'",
    "cannot resume",
    "C stack overflow",
    "is read-only",
    "cannot assign",
];

const RUN_FUNCTIONS: [&str; 5] = [
    "RunBash",
    "RunCommand",
    "RunExpect",
    "RunPowerShell",
    "RunSync",
];

/// `chunk:LINE` from the first `chunk:LINE:` in `text`.
pub fn location_in(text: &str, chunk: &str) -> Option<String> {
    let mut rest = text;
    while let Some(i) = rest.find(chunk) {
        let after = &rest[i + chunk.len()..];
        if let Some(tail) = after.strip_prefix(':') {
            let digits: String = tail.chars().take_while(char::is_ascii_digit).collect();
            if !digits.is_empty() {
                return Some(format!("{chunk}:{digits}"));
            }
        }
        rest = after;
    }
    None
}

/// The message with its leading `chunk:LINE: ` taken off.
fn without_position<'a>(message: &'a str, chunk: &str) -> &'a str {
    if let Some(rest) = message.strip_prefix(chunk)
        && let Some(rest) = rest.strip_prefix(':')
    {
        let digits = rest.chars().take_while(char::is_ascii_digit).count();
        if digits > 0 {
            return rest[digits..].strip_prefix(": ").unwrap_or(&rest[digits..]);
        }
    }
    message
}

fn at_line(chunk: &str, line: u32) -> String {
    if line == 0 {
        chunk.to_string()
    } else {
        format!("{chunk}:{line}")
    }
}

/// Classify one run of the hook whose chunk is `chunk`. `coverage`: the
/// run was asked for coverage (without a report it was stopped by a trap,
/// and an injection in it, whose line is then unknown, is left to the runs
/// that tell its line).
pub fn classify(
    run: &HookOutcome,
    executed: &[Executed],
    canaries: &Canaries,
    chunk: &str,
    coverage: bool,
) -> Verdict {
    let mut v = Verdict::default();
    let last_line = run.coverage.as_ref().map_or(0, |c| c.last_line);

    // Injection: a canary in the text of a command that ran. The n-th
    // executed call is the n-th transcript entry that reached the executor.
    let reached: Vec<usize> = run
        .transcript
        .iter()
        .enumerate()
        .filter(|(i, e)| {
            e.exit_code.is_some()
                || (*i + 1 == run.transcript.len() && run.result.limit().is_some())
        })
        .map(|(i, _)| i)
        .collect();
    for (n, call) in executed.iter().enumerate() {
        if coverage && run.coverage.is_none() {
            break;
        }
        let Some(command) = &call.command else {
            continue;
        };
        let paths = canaries.found_in(command);
        if paths.is_empty() {
            continue;
        }
        let line = reached
            .get(n)
            .and_then(|i| run.coverage.as_ref()?.call_lines.get(*i).copied())
            .unwrap_or(0);
        let what = match &call.key.resource {
            Some(r) => format!("{} (resource {r} with text added)", call.key.function),
            None => format!("{} (inline command)", call.key.function),
        };
        v.bugs.push(Bug {
            kind: Kind::Injection,
            message: format!(
                "{} reached the command text of {what}; a value the user or a discovery gives must be \
                 passed in the call's `variables` (and quoted in the script: \"$NAME\"), never put into \
                 the command",
                paths.join(", ")
            ),
            location: at_line(chunk, line),
        });
    }

    let any_failing = executed.iter().any(Executed::may_fail);
    match &run.result {
        Outcome::Value(_) => {}
        Outcome::RunFailed(_) => v.expected = Some("an uncaught failed Run call"),
        Outcome::Error(e) => {
            let location = location_in(&e.message, chunk)
                .or_else(|| e.traceback.as_deref().and_then(|t| location_in(t, chunk)))
                .unwrap_or_else(|| at_line(chunk, last_line));
            let text = without_position(&e.message, chunk);
            match e.kind {
                ScriptErrorKind::BadResult => {
                    let location = if last_line > 0 {
                        at_line(chunk, last_line)
                    } else {
                        location
                    };
                    v.bugs.push(Bug {
                        kind: Kind::BadReturn,
                        message: e.message.clone(),
                        location,
                    });
                }
                ScriptErrorKind::Syntax => v.bugs.push(Bug {
                    kind: Kind::RuntimeError,
                    message: e.message.clone(),
                    location,
                }),
                ScriptErrorKind::Runtime => {
                    let from_run_call = RUN_FUNCTIONS.iter().any(|f| text.starts_with(f));
                    // A call that never reached the executor failed as a
                    // malformed call: the hook's bug.
                    let last_reached = run.transcript.last().is_none_or(|e| e.exit_code.is_some());
                    if from_run_call && last_reached && !run.transcript.is_empty() {
                        v.expected = Some("a failed Run call raised as an error");
                    } else if from_run_call && !run.transcript.is_empty() {
                        v.bugs.push(Bug {
                            kind: Kind::RuntimeError,
                            message: format!("a malformed Run call: {}", e.message),
                            location,
                        });
                    } else if LUA_ERRORS.iter().any(|p| text.contains(p)) {
                        v.bugs.push(Bug {
                            kind: Kind::RuntimeError,
                            message: e.message.clone(),
                            location,
                        });
                    } else if any_failing {
                        v.expected = Some("the hook's own error after a failed Run call");
                    } else {
                        v.expected = Some("the hook's own error");
                    }
                }
            }
        }
        Outcome::Limit(l) => {
            let hung = executed.last().is_some_and(|c| c.response.hang);
            if hung && l.kind == lunabox_sandbox::LimitKind::Time {
                v.expected = Some("a hanging Run call ended as a time limit");
            } else {
                v.bugs.push(Bug {
                    kind: Kind::Limit,
                    message: l.message.clone(),
                    location: format!("{} ({} limit)", at_line(chunk, last_line), l.kind),
                });
            }
        }
        Outcome::Host(h) => v.bugs.push(Bug {
            kind: Kind::RuntimeError,
            message: format!(
                "lunabox's sandbox failed (a lunabox bug, not the toolkit's): {}",
                h.message
            ),
            location: chunk.to_string(),
        }),
        Outcome::Cancelled | Outcome::Quota(_) => {}
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_and_positions() {
        assert_eq!(
            location_in(
                "tk/staged/status.lua:12: attempt to index",
                "tk/staged/status.lua"
            ),
            Some("tk/staged/status.lua:12".to_string())
        );
        assert_eq!(location_in("no position", "c.lua"), None);
        assert_eq!(
            without_position("c.lua:3: attempt to index a nil value", "c.lua"),
            "attempt to index a nil value"
        );
    }
}
