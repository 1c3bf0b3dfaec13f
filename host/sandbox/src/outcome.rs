//! How a hook ended: one type, [`Outcome`], from the guest's WIT result to
//! the engine's faults and the CLI's JSON.
//!
//! The guest's `hook-error`, a trap, a limit, a cancellation and a failed
//! return check all become an [`Outcome`] here (`from_guest`,
//! `from_trap`), and nowhere else; the hook, engine and CLI layers carry it
//! unchanged. Its JSON ([`Outcome::json_fields`]) is the shape `eval
//! --json`, `run-hook --json` and stored faults have always had.
//!
//! This module is also the one place where secrets are masked: the text a
//! hook's run produces (its log, its Run calls' transcript, its error
//! messages and tracebacks, the failed call's output) leaves the sandbox
//! through [`HookOutcome::finish`], which replaces every secret by
//! [`MASK`]. The returned value is data and
//! stays as it is; [`HookOutcome::value_for_display`] masks a copy of it
//! for printing or storing where people read it.

use serde::Serialize;
use serde_json::{Value, json};

use crate::limits::{LimitKind, Limits};
use lunabox_run::TranscriptEntry;
use lunabox_toolkit::text::{MASK, mask_secrets};

/// How a hook ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// It returned this value (JSON `null` for nothing); when run as a
    /// toolkit hook, the value passed its kind's return check.
    Value(Value),
    /// The script failed: it does not compile, raised a Lua error, or
    /// returned a value that cannot be returned or its kind does not allow.
    Error(ScriptError),
    /// An uncaught failed Run call (a non-zero exit) ended it.
    RunFailed(RunFault),
    /// A limit stopped it.
    Limit(LimitStop),
    /// It was cancelled (a cancel token, or its future dropped).
    Cancelled,
    /// A tenant's quota refused it (see [`crate::tenant`]).
    Quota(QuotaStop),
    /// The host could not run it, or the guest trapped: lunabox's fault,
    /// not the script's.
    Host(HostError),
}

/// A script's own failure.
#[derive(Debug, Clone, PartialEq)]
pub struct ScriptError {
    /// Which failure.
    pub kind: ScriptErrorKind,
    /// What went wrong, in words.
    pub message: String,
    /// The Lua traceback, when there is one.
    pub traceback: Option<String>,
}

/// Which kind of script failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ScriptErrorKind {
    /// The chunk does not compile.
    Syntax,
    /// A Lua runtime error.
    Runtime,
    /// The value cannot be returned (not JSON-able, too deep) or fails the
    /// hook kind's return check.
    BadResult,
}

/// The failed Run call that ended a hook.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunFault {
    /// `RunBash`, ...
    pub function: String,
    /// The command's exit status.
    #[serde(rename = "exitCode")]
    pub exit_code: i32,
    /// What it printed (capped).
    pub stdout: String,
    /// What it printed on stderr (capped).
    pub stderr: String,
    /// The Lua error's message (names the call, its status and output).
    #[serde(skip)]
    pub message: String,
    /// The Lua traceback, when there is one.
    #[serde(skip)]
    pub traceback: Option<String>,
}

/// A limit that stopped a hook, and what it was.
#[derive(Debug, Clone, PartialEq)]
pub struct LimitStop {
    /// Which limit.
    pub kind: LimitKind,
    /// In words, with the value that was hit.
    pub message: String,
}

/// A quota that refused a hook.
#[derive(Debug, Clone, PartialEq)]
pub struct QuotaStop {
    /// Which quota.
    pub kind: crate::tenant::QuotaKind,
    /// What went wrong, in words.
    pub message: String,
}

/// The host's failure.
#[derive(Debug, Clone, PartialEq)]
pub struct HostError {
    /// Which failure.
    pub kind: HostErrorKind,
    /// What went wrong, in words.
    pub message: String,
}

/// Which kind of host failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum HostErrorKind {
    /// The guest trapped (a bug in the guest, not in the script).
    Trap,
    /// The host could not start the hook (bad limits, no scratch directory).
    Host,
}

impl Outcome {
    /// The value, when the hook returned one.
    pub fn value(&self) -> Option<&Value> {
        match self {
            Outcome::Value(v) => Some(v),
            _ => None,
        }
    }

    /// Whether the hook returned a value.
    pub fn is_ok(&self) -> bool {
        matches!(self, Outcome::Value(_))
    }

    /// What went wrong, in words a fault shows (`None` for a value).
    pub fn message(&self) -> Option<&str> {
        match self {
            Outcome::Value(_) => None,
            Outcome::Error(e) => Some(&e.message),
            Outcome::RunFailed(f) => Some(&f.message),
            Outcome::Limit(l) => Some(&l.message),
            Outcome::Cancelled => Some("the hook was cancelled"),
            Outcome::Quota(q) => Some(&q.message),
            Outcome::Host(h) => Some(&h.message),
        }
    }

    /// The Lua traceback, when there is one.
    pub fn traceback(&self) -> Option<&str> {
        match self {
            Outcome::Error(e) => e.traceback.as_deref(),
            Outcome::RunFailed(f) => f.traceback.as_deref(),
            _ => None,
        }
    }

    /// The failed Run call, when one ended the hook.
    pub fn fault(&self) -> Option<&RunFault> {
        match self {
            Outcome::RunFailed(f) => Some(f),
            _ => None,
        }
    }

    /// The limit that stopped the hook, if one did.
    pub fn limit(&self) -> Option<LimitKind> {
        match self {
            Outcome::Limit(l) => Some(l.kind),
            _ => None,
        }
    }

    /// `ok`, `error`, `limit`, `cancelled` or `quota` (the `outcome` field).
    pub fn word(&self) -> &'static str {
        match self {
            Outcome::Value(_) => "ok",
            Outcome::Limit(_) => "limit",
            Outcome::Cancelled => "cancelled",
            Outcome::Quota(_) => "quota",
            _ => "error",
        }
    }

    /// The `kind` field: `syntax`, `runtime`, `run-failed`, `bad-result`,
    /// `trap`, `host`, `cancelled`, `{"limit": "time"}` or
    /// `{"quota": "hooks"}`; `null` for a value.
    pub fn kind_json(&self) -> Value {
        match self {
            Outcome::Value(_) => Value::Null,
            Outcome::Error(e) => json!(e.kind),
            Outcome::RunFailed(_) => json!("run-failed"),
            Outcome::Limit(l) => json!({"limit": l.kind.as_str()}),
            Outcome::Cancelled => json!("cancelled"),
            Outcome::Quota(q) => json!({"quota": q.kind.as_str()}),
            Outcome::Host(h) => json!(h.kind),
        }
    }

    /// The fields every JSON report of an outcome has: `outcome`, and for a
    /// failure `kind`, `message`, `fault` (the failed call or `null`),
    /// `limit` (for a limit) and `traceback` (when there is one).
    pub fn json_fields(&self) -> serde_json::Map<String, Value> {
        let mut m = serde_json::Map::new();
        m.insert("outcome".into(), json!(self.word()));
        if self.is_ok() {
            return m;
        }
        m.insert("kind".into(), self.kind_json());
        m.insert("message".into(), json!(self.message()));
        m.insert("fault".into(), json!(self.fault()));
        if let Some(k) = self.limit() {
            m.insert("limit".into(), json!(k.as_str()));
        }
        if let Some(tb) = self.traceback() {
            m.insert("traceback".into(), json!(tb));
        }
        m
    }

    /// The exit status a command reports for it: 0 a value, 1 an error,
    /// 3 a limit, 4 cancelled or refused by a quota.
    pub fn exit_status(&self) -> u8 {
        match self {
            Outcome::Value(_) => 0,
            Outcome::Limit(_) => 3,
            Outcome::Cancelled | Outcome::Quota(_) => 4,
            _ => 1,
        }
    }

    /// A limit outcome with its words.
    pub fn limit_hit(kind: LimitKind, chunk: &str, limits: &Limits) -> Outcome {
        Outcome::Limit(LimitStop {
            kind,
            message: format!("{chunk} was stopped: {}", limit_words(kind, limits)),
        })
    }

    /// A host failure.
    pub fn host(message: impl Into<String>) -> Outcome {
        Outcome::Host(HostError {
            kind: HostErrorKind::Host,
            message: message.into(),
        })
    }

    /// A script failure without a traceback.
    pub fn script(kind: ScriptErrorKind, message: impl Into<String>) -> Outcome {
        Outcome::Error(ScriptError {
            kind,
            message: message.into(),
            traceback: None,
        })
    }
}

/// A limit in words, with the value that was hit.
pub fn limit_words(kind: LimitKind, limits: &Limits) -> String {
    match kind {
        LimitKind::Time => format!(
            "it ran past its deadline of {} (the Run call's whole process group was killed)",
            humantime::format_duration(limits.timeout)
        ),
        LimitKind::Fuel => format!(
            "it used up its instruction budget ({} fuel)",
            limits
                .fuel
                .map(|f| f.to_string())
                .unwrap_or_else(|| "unmetered".into())
        ),
        LimitKind::Memory => format!(
            "it needed more than its memory limit of {} bytes",
            limits.memory
        ),
        LimitKind::Output => format!(
            "its result or log was larger than allowed ({} bytes result, {} bytes log)",
            limits.max_result_bytes, limits.max_log_bytes
        ),
        LimitKind::Calls => format!("it made more than {} Run calls", limits.max_run_calls),
        LimitKind::Scratch => format!(
            "its scratch directory would have held more than {} bytes",
            limits.max_scratch_bytes
        ),
    }
}

/// One line of a hook's log.
#[derive(Debug, Clone, Serialize)]
pub struct LogLine {
    /// `debug`, `info`, `warn` or `error`.
    pub level: String,
    /// What went wrong, in words.
    pub message: String,
}

/// Measurements of one hook run.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Stats {
    /// Wall-clock milliseconds, admission wait included.
    #[serde(rename = "wallMs")]
    pub wall: f64,
    /// Fuel used, for a metered hook.
    #[serde(rename = "fuelUsed", skip_serializing_if = "Option::is_none")]
    pub fuel_used: Option<u64>,
    /// Most linear memory the instance had.
    #[serde(rename = "peakMemoryBytes")]
    pub peak_memory: u64,
    /// Run calls made.
    #[serde(rename = "runCalls")]
    pub run_calls: u32,
}

/// Which lines of a hook's chunk ran: only for a request made with
/// [`HookRequest::with_coverage`](crate::HookRequest::with_coverage), and
/// only when the hook ended in the guest (a value or an error; a limit, a
/// cancellation or a trap stops it before it can report).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Coverage {
    /// The lines that ran, ascending.
    pub ran: Vec<u32>,
    /// The lines that have code (in the chunk and every function in it),
    /// ascending.
    pub lines: Vec<u32>,
    /// The line that ran last (0: none did).
    #[serde(rename = "lastLine")]
    pub last_line: u32,
    /// For each Run call, in the transcript's order, the chunk's line it
    /// was made from (0: before any line ran).
    #[serde(rename = "callLines")]
    pub call_lines: Vec<u32>,
}

/// Everything a hook run produced.
#[derive(Debug, Clone)]
pub struct HookOutcome {
    /// How it ended.
    pub result: Outcome,
    /// What it printed (secrets masked).
    pub log: Vec<LogLine>,
    /// Its Run calls (secrets masked).
    pub transcript: Vec<TranscriptEntry>,
    /// What it measured.
    pub stats: Stats,
    /// Which lines of its chunk ran, when the request asked
    /// ([`HookRequest::with_coverage`](crate::HookRequest::with_coverage))
    /// and the hook ended in the guest.
    pub coverage: Option<Coverage>,
    /// The values masked in the texts above.
    secrets: Vec<String>,
}

/// Variable names whose values are always masked in the transcript, even
/// when they are not among the known secrets (upper-cased substrings).
const SECRET_NAME_PARTS: &[&str] = &["PASSWORD", "PASSWD", "SECRET"];

impl HookOutcome {
    /// An outcome with no log, transcript or stats (the hook never ran).
    pub fn without_run(result: Outcome, wall_ms: f64) -> HookOutcome {
        HookOutcome {
            result,
            log: Vec::new(),
            transcript: Vec::new(),
            stats: Stats {
                wall: wall_ms,
                ..Stats::default()
            },
            coverage: None,
            secrets: Vec::new(),
        }
    }

    /// The text of a finished run leaving the sandbox: every secret in the
    /// log, the transcript and the outcome's messages, tracebacks and
    /// failed-call output is masked (the one place this happens).
    pub fn finish(
        result: Outcome,
        log: Vec<LogLine>,
        transcript: Vec<TranscriptEntry>,
        stats: Stats,
        secrets: &[String],
    ) -> HookOutcome {
        let mut o = HookOutcome {
            result,
            log,
            transcript,
            stats,
            coverage: None,
            secrets: secrets.iter().filter(|s| !s.is_empty()).cloned().collect(),
        };
        let s = &o.secrets;
        let m = |t: &mut String| {
            if !s.is_empty() {
                *t = mask_secrets(t, s);
            }
        };
        for l in &mut o.log {
            m(&mut l.message);
        }
        for e in &mut o.transcript {
            if let Some(c) = &mut e.command {
                m(c);
            }
            m(&mut e.stdout);
            m(&mut e.stderr);
            for (k, v) in e.variables.iter_mut() {
                let upper = k.to_ascii_uppercase();
                if SECRET_NAME_PARTS.iter().any(|p| upper.contains(p)) || s.iter().any(|x| x == v) {
                    *v = MASK.to_string();
                } else {
                    m(v);
                }
            }
        }
        match &mut o.result {
            Outcome::Error(e) => {
                m(&mut e.message);
                if let Some(tb) = &mut e.traceback {
                    m(tb);
                }
            }
            Outcome::RunFailed(f) => {
                m(&mut f.message);
                m(&mut f.stdout);
                m(&mut f.stderr);
                if let Some(tb) = &mut f.traceback {
                    m(tb);
                }
            }
            Outcome::Limit(l) => m(&mut l.message),
            Outcome::Host(h) => m(&mut h.message),
            Outcome::Value(_) | Outcome::Cancelled | Outcome::Quota(_) => {}
        }
        o
    }

    /// The returned value with secrets masked, for printing or storing
    /// where people read it (`null` when the hook returned none).
    pub fn value_for_display(&self) -> Value {
        match &self.result {
            Outcome::Value(v) => lunabox_toolkit::hook::params::mask_json(v, &self.secrets),
            _ => Value::Null,
        }
    }

    /// The values this outcome's texts were masked for.
    pub fn secrets(&self) -> &[String] {
        &self.secrets
    }
}

/// A message with its NUL bytes written `\0`, as every message the guest
/// sends is shown: a raw NUL (from `error("a\0b")`, or quoted from a call
/// table, e.g. a path `x\0y`) would end the text early in a terminal or a C
/// string, and with it the part that says what is wrong.
pub(crate) fn nul_escaped(m: String) -> String {
    if m.contains('\0') {
        m.replace('\0', "\\0")
    } else {
        m
    }
}

/// The guest's `hook-error` as an outcome (the one mapping from the WIT
/// error type). `last_failed` is the host's record of the failed Run call,
/// which names the function.
pub(crate) fn from_guest(
    err: crate::bindings::runner::HookError,
    last_failed: Option<RunFault>,
    chunk: &str,
    limits: &Limits,
) -> Outcome {
    use crate::bindings::runner::ErrorKind as K;
    let kind = match err.kind {
        K::Syntax => ScriptErrorKind::Syntax,
        K::Runtime => ScriptErrorKind::Runtime,
        K::BadResult => ScriptErrorKind::BadResult,
        K::RunFailed => {
            let (function, exit_code, stdout, stderr) = match (err.exit, last_failed) {
                (Some(x), f) => (
                    f.map(|f| f.function).unwrap_or_else(|| "Run".to_string()),
                    x.exit_code,
                    x.stdout,
                    x.stderr,
                ),
                (None, Some(f)) => (f.function, f.exit_code, f.stdout, f.stderr),
                (None, None) => ("Run".to_string(), -1, String::new(), String::new()),
            };
            return Outcome::RunFailed(RunFault {
                function,
                exit_code,
                stdout,
                stderr,
                message: nul_escaped(err.message),
                traceback: err.traceback,
            });
        }
        K::ResultTooLarge => return Outcome::limit_hit(LimitKind::Output, chunk, limits),
        K::Memory => return Outcome::limit_hit(LimitKind::Memory, chunk, limits),
    };
    Outcome::Error(ScriptError {
        kind,
        message: nul_escaped(err.message),
        traceback: err.traceback,
    })
}

/// A trap out of the guest as an outcome: a limit, a cancellation or a
/// quota raised by the host, or a fault of the guest.
pub(crate) fn from_trap(err: &wasmtime::Error, chunk: &str, limits: &Limits) -> Outcome {
    use crate::limits::{CancelledHit, LimitHit, QuotaHit};
    if let Some(LimitHit(kind)) = err.downcast_ref::<LimitHit>() {
        return Outcome::limit_hit(*kind, chunk, limits);
    }
    if err.downcast_ref::<CancelledHit>().is_some() {
        return Outcome::Cancelled;
    }
    if let Some(QuotaHit(q)) = err.downcast_ref::<QuotaHit>() {
        return Outcome::Quota(q.clone());
    }
    if let Some(trap) = err.downcast_ref::<wasmtime::Trap>() {
        match trap {
            wasmtime::Trap::OutOfFuel => return Outcome::limit_hit(LimitKind::Fuel, chunk, limits),
            wasmtime::Trap::Interrupt => return Outcome::limit_hit(LimitKind::Time, chunk, limits),
            _ => {}
        }
    }
    // The wasm backtrace means nothing to a toolkit author: say what
    // stopped the hook (the root cause), and that it is lunabox's to fix.
    let cause = match err.downcast_ref::<wasmtime::Trap>() {
        Some(trap) => trap.to_string(),
        None => err.root_cause().to_string(),
    };
    Outcome::Host(HostError {
        kind: HostErrorKind::Trap,
        message: format!(
            "the sandbox stopped the hook: {cause}; this is a fault of lunabox's guest, not of the \
             script: please report it with the script that caused it"
        ),
    })
}

/// The guest's returned JSON text as an outcome, after the request's value
/// check.
pub(crate) fn from_value_text(
    json: &str,
    check: Option<&crate::request::ValueCheck>,
    budget: lunabox_toolkit::schema::Budget,
) -> Outcome {
    use lunabox_toolkit::json::{JsonError, parse};
    let value = match parse(json) {
        Ok(v) => v,
        Err(e @ JsonError::TooDeep) => {
            return Outcome::script(
                ScriptErrorKind::BadResult,
                format!("the hook's result cannot be returned: {e}; return a flatter value"),
            );
        }
        Err(e) => {
            return Outcome::script(
                ScriptErrorKind::BadResult,
                format!("the hook's result is not valid JSON ({e}); this is a lunabox bug"),
            );
        }
    };
    match check {
        None => Outcome::Value(value),
        Some(check) => match check(value, budget) {
            Ok(v) => Outcome::Value(v),
            Err(m) => Outcome::script(ScriptErrorKind::BadResult, m),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_fields_keep_their_shape() {
        let limit = Outcome::limit_hit(LimitKind::Time, "x.lua", &Limits::default());
        let f = limit.json_fields();
        assert_eq!(f["outcome"], "limit");
        assert_eq!(f["kind"], json!({"limit": "time"}));
        assert_eq!(f["limit"], "time");
        assert_eq!(f["fault"], Value::Null);
        let ok = Outcome::Value(json!(1)).json_fields();
        assert_eq!(ok.len(), 1);
        let rf = Outcome::RunFailed(RunFault {
            function: "RunBash".into(),
            exit_code: 2,
            stdout: "o".into(),
            stderr: "e".into(),
            message: "m".into(),
            traceback: Some("tb".into()),
        });
        let f = rf.json_fields();
        assert_eq!(f["kind"], "run-failed");
        assert_eq!(
            f["fault"],
            json!({"function": "RunBash", "exitCode": 2, "stdout": "o", "stderr": "e"})
        );
        assert_eq!(f["traceback"], "tb");
    }

    #[test]
    fn finish_masks_every_text_once_and_keeps_the_value() {
        let secrets = vec!["hunter2".to_string()];
        let entry = TranscriptEntry {
            function: "RunBash".into(),
            environment: None,
            user: None,
            host: None,
            resource: None,
            command: Some("echo hunter2".into()),
            variables: [
                ("PW".to_string(), "hunter2".to_string()),
                ("DB_PASSWORD".to_string(), "x".to_string()),
            ]
            .into(),
            exit_code: Some(0),
            stdout: "pw is hunter2".into(),
            stderr: String::new(),
            stdout_truncated: false,
            stderr_truncated: false,
            duration_ms: 0,
        };
        let o = HookOutcome::finish(
            Outcome::script(ScriptErrorKind::Runtime, "bad hunter2"),
            vec![LogLine {
                level: "info".into(),
                message: "hunter2!".into(),
            }],
            vec![entry],
            Stats::default(),
            &secrets,
        );
        assert_eq!(o.log[0].message, "********!");
        assert_eq!(o.transcript[0].stdout, "pw is ********");
        assert_eq!(o.transcript[0].command.as_deref(), Some("echo ********"));
        assert_eq!(o.transcript[0].variables["PW"], MASK);
        assert_eq!(o.transcript[0].variables["DB_PASSWORD"], MASK);
        assert_eq!(o.result.message(), Some("bad ********"));
        let v = HookOutcome::finish(
            Outcome::Value(json!({"p": "hunter2"})),
            vec![],
            vec![],
            Stats::default(),
            &secrets,
        );
        assert_eq!(v.result.value(), Some(&json!({"p": "hunter2"})));
        assert_eq!(v.value_for_display(), json!({"p": "********"}));
    }
}
