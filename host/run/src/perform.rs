//! [`perform`]: one Run call from parse to transcript entry.

use std::collections::BTreeMap;
use std::time::Instant;

use serde_json::Value;

use super::call::{self, RunCall, RunFunction};
use super::output;
use super::{CancelToken, ExecError, Executor, RunContext, RunFailure, Target, TranscriptEntry};

pub(super) fn perform(
    function: RunFunction,
    call_json: &str,
    executor: &dyn Executor,
    ctx: &RunContext,
) -> (Result<Option<Value>, RunFailure>, TranscriptEntry) {
    let started = Instant::now();
    let (call, validator) = match call::parse_with_validator(function, call_json) {
        Ok(parsed) => parsed,
        Err(e) => {
            let target = best_effort_target(call_json);
            let entry = TranscriptEntry {
                function: function.name().to_string(),
                environment: target.environment,
                user: target.user,
                host: target.host,
                resource: None,
                command: None,
                variables: BTreeMap::new(),
                exit_code: None,
                stdout: String::new(),
                stderr: String::new(),
                stdout_truncated: false,
                stderr_truncated: false,
                duration_ms: 0,
            };
            return (Err(RunFailure::BadCall(e.to_string())), entry);
        }
    };
    let resource = call
        .command
        .as_deref()
        .and_then(|c| resource_of(c, &ctx.resources));
    let label = call_label(&call, resource.as_deref());
    let mut entry = TranscriptEntry {
        function: function.name().to_string(),
        environment: call.target.environment.clone(),
        user: call.target.user.clone(),
        host: call.target.host.clone(),
        command: match resource {
            Some(_) => None,
            None => call.command.clone(),
        },
        resource,
        variables: call.variables.clone(),
        exit_code: None,
        stdout: String::new(),
        stderr: String::new(),
        stdout_truncated: false,
        stderr_truncated: false,
        duration_ms: 0,
    };
    // The label may quote an inline command: the span names the function
    // and resource only (secrets are masked once, in the sandbox).
    let _span = tracing::debug_span!(
        "run",
        function = function.name(),
        resource = entry.resource.as_deref().unwrap_or("-")
    )
    .entered();

    if ctx.cancel.as_ref().is_some_and(CancelToken::is_cancelled) {
        return (Err(RunFailure::Cancelled { function: label }), entry);
    }
    if ctx.deadline.is_some_and(|d| Instant::now() >= d) {
        return (Err(RunFailure::Deadline { function: label }), entry);
    }
    let result = executor.execute(&call, ctx);
    entry.duration_ms = started.elapsed().as_millis().try_into().unwrap_or(u64::MAX);
    let mut raw = match result {
        Ok(raw) => raw,
        Err(ExecError::Unavailable(m)) => {
            tracing::debug!("unavailable: {m}");
            // Name the call unless the executor's message already does.
            let m = if m.contains(function.name()) {
                m
            } else {
                format!("{label}: {m}")
            };
            return (Err(RunFailure::Unavailable(m.clone())), entry);
        }
        Err(ExecError::BadCall(m)) => {
            return (Err(RunFailure::BadCall(format!("{label}: {m}"))), entry);
        }
        Err(ExecError::OutputTooLarge {
            limit,
            mut stdout,
            mut stderr,
        }) => {
            entry.stdout_truncated = super::cut_to(&mut stdout, ctx.capture_limit as u64);
            entry.stderr_truncated = super::cut_to(&mut stderr, ctx.capture_limit as u64);
            entry.stdout = stdout.clone();
            entry.stderr = stderr.clone();
            return (
                Err(RunFailure::BadOutput(format!(
                    "{label} wrote more than {limit} bytes to $DLPX_OUTPUT_FILE and was stopped while it \
                     wrote; an output document must be smaller (write large data to a file and return \
                     its path)"
                ))),
                entry,
            );
        }
        Err(ExecError::Deadline {
            mut stdout,
            mut stderr,
        }) => {
            entry.stdout_truncated = super::cut_to(&mut stdout, ctx.capture_limit as u64);
            entry.stderr_truncated = super::cut_to(&mut stderr, ctx.capture_limit as u64);
            entry.stdout = stdout.clone();
            entry.stderr = stderr.clone();
            tracing::debug!("killed at the hook's deadline");
            return (Err(RunFailure::Deadline { function: label }), entry);
        }
        Err(ExecError::Cancelled {
            mut stdout,
            mut stderr,
        }) => {
            entry.stdout_truncated = super::cut_to(&mut stdout, ctx.capture_limit as u64);
            entry.stderr_truncated = super::cut_to(&mut stderr, ctx.capture_limit as u64);
            entry.stdout = stdout;
            entry.stderr = stderr;
            return (Err(RunFailure::Cancelled { function: label }), entry);
        }
    };
    // The capture limits, whatever the executor did.
    raw.stdout_truncated |= super::cut_to(&mut raw.stdout, ctx.capture_limit as u64);
    raw.stderr_truncated |= super::cut_to(&mut raw.stderr, ctx.capture_limit as u64);
    if raw.output.len() as u64 > ctx.output_limit {
        raw.output
            .truncate(usize::try_from(ctx.output_limit).unwrap_or(usize::MAX));
        raw.output_truncated = true;
    }
    entry.exit_code = Some(raw.exit_code);
    entry.stdout = raw.stdout.clone();
    entry.stderr = raw.stderr.clone();
    entry.stdout_truncated = raw.stdout_truncated;
    entry.stderr_truncated = raw.stderr_truncated;
    tracing::debug!(
        exit_code = raw.exit_code,
        output_bytes = raw.output.len(),
        "finished"
    );

    if raw.exit_code != 0 {
        let failure = match output::exit_failure(&label, &raw) {
            RunFailure::Exit {
                exit_code,
                stdout,
                stderr,
                message,
            } => RunFailure::Exit {
                exit_code,
                stdout,
                stderr,
                message: message.clone(),
            },
            other => other,
        };
        return (Err(failure), entry);
    }
    let (Some(schema), Some(validator)) = (call.output_schema.as_ref(), validator.as_ref()) else {
        if !raw.output.is_empty() {
            tracing::debug!(
                bytes = raw.output.len(),
                "the call wrote to its output file but has no outputSchema; the output is ignored"
            );
        }
        return (Ok(None), entry);
    };
    let budget = lunabox_toolkit::schema::Budget {
        steps: ctx.schema_steps,
        deadline: ctx.deadline,
    };
    match output::check_output(&label, &raw, schema, validator, &budget) {
        Ok(value) => (Ok(Some(value)), entry),
        Err(output::OutputError::Bad(m)) => (Err(RunFailure::BadOutput(m.clone())), entry),
        Err(output::OutputError::Deadline) => {
            (Err(RunFailure::Deadline { function: label }), entry)
        }
    }
}

/// The resource whose text is `command`: an exact match first, then one
/// equal up to surrounding whitespace. `None` for an inline command.
pub fn resource_of(command: &str, resources: &BTreeMap<String, String>) -> Option<String> {
    resources
        .iter()
        .find(|(_, text)| text.as_str() == command)
        .or_else(|| {
            let c = command.trim();
            resources.iter().find(|(_, text)| text.trim() == c)
        })
        .map(|(name, _)| name.clone())
}

/// How messages name a call: `RunBash (resource status.sh)`,
/// `RunCommand (command `echo hi`)`, `RunSync (sourceDirectory /data)`.
pub fn call_label(call: &RunCall, resource: Option<&str>) -> String {
    let f = call.function.name();
    if let Some(r) = resource {
        return format!("{f} (resource {r})");
    }
    if let Some(dir) = &call.source_directory {
        return format!("{f} (sourceDirectory {dir})");
    }
    let command = call.command.as_deref().unwrap_or("");
    let first = command.trim().lines().next().unwrap_or("").trim();
    let multi = command.trim().lines().nth(1).is_some();
    let short = match first.char_indices().nth(60) {
        Some((cut, _)) => format!("{}...", &first[..cut]),
        None if multi => format!("{first} ..."),
        None => first.to_string(),
    };
    format!("{f} (command `{short}`)")
}

/// `environment`/`user`/`host` of a call that failed to parse, for its
/// transcript entry.
fn best_effort_target(call_json: &str) -> Target {
    let v: Value = serde_json::from_str(call_json).unwrap_or(Value::Null);
    let get = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
    Target {
        environment: get("environment"),
        user: get("user"),
        host: get("host"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels() {
        let mut c = RunCall::new(RunFunction::RunBash, "\n  echo one\necho two\n");
        assert_eq!(call_label(&c, None), "RunBash (command `echo one ...`)");
        assert_eq!(call_label(&c, Some("a.sh")), "RunBash (resource a.sh)");
        c.command = Some("y".repeat(100));
        assert_eq!(
            call_label(&c, None),
            format!("RunBash (command `{}...`)", "y".repeat(60))
        );
    }

    #[test]
    fn resource_lookup() {
        let r = BTreeMap::from([
            ("a.sh".to_string(), "echo a\n".to_string()),
            ("b.sh".to_string(), "echo b\n".to_string()),
        ]);
        assert_eq!(resource_of("echo b\n", &r).as_deref(), Some("b.sh"));
        assert_eq!(resource_of("echo b", &r).as_deref(), Some("b.sh"));
        assert_eq!(resource_of("echo c", &r), None);
    }
}
