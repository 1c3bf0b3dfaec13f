//! lunabox-run: Run calls, what a hook asks the host to run (`RunBash`,
//! `RunCommand`, `RunExpect`, `RunPowerShell`, `RunSync`), and who carries
//! them out.
//!
//! The sandbox hands each call to [`perform`], which parses the call's table
//! ([`call`]), passes it to an [`Executor`] (the local machine, a scripted
//! responder, ...; see [`executors`]), then applies the spec's rules to what
//! came back: a non-zero exit is a failure that carries stdout and stderr, and
//! with an `outputSchema` the output file must hold one JSON document valid
//! against it ([`output`]). Every call leaves a [`TranscriptEntry`].

#![warn(missing_docs)]

pub mod call;
pub mod cancel;
pub mod executors;
pub mod output;
mod perform;

/// How a unit test that cannot run here says so (counted as skipped by
/// `cargo xtask test`).
#[cfg(test)]
#[path = "../../../tests/common/skip.rs"]
pub(crate) mod test_skip;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use call::{CallError, RunCall, RunFunction};
pub use cancel::CancelToken;
pub use lunabox_toolkit::text::{MASK, mask_secrets};
pub use perform::{call_label, resource_of};

/// The output file limit of a [`RunContext`] made with `default()` (a
/// hook's own comes from its limits).
pub const DEFAULT_OUTPUT_LIMIT: u64 = 4 << 20;

/// Where a call runs: the opaque references a hook got in `source` or
/// `remote` and passed back in its Run call.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Target {
    /// The environment reference (`None`: not given).
    pub environment: Option<String>,
    /// The environment user reference (`None`: not given).
    pub user: Option<String>,
    /// The host reference (`None`: not given).
    pub host: Option<String>,
}

/// What an executor needs besides the call itself.
#[derive(Debug, Clone)]
pub struct RunContext {
    /// When the hook's time is up. The executor kills the call's whole
    /// process group at this instant and reports [`ExecError::Deadline`].
    pub deadline: Option<Instant>,
    /// The dSource's storage, where `RunSync` copies data to.
    pub data_directory: Option<PathBuf>,
    /// Most bytes of stdout, and of stderr, kept (the rest is read and dropped).
    pub capture_limit: usize,
    /// Most bytes the call's output file may grow to: an executor stops a
    /// command whose file grows past it, and reads no more than this.
    pub output_limit: u64,
    /// The toolkit's resources (path -> text), to name the resource a command
    /// came from in the transcript.
    pub resources: Arc<BTreeMap<String, String>>,
    /// Steps the `outputSchema` check may take (see
    /// [`lunabox_toolkit::schema`]).
    pub schema_steps: u64,
    /// Cancels the call: the executor kills it and reports
    /// [`ExecError::Cancelled`].
    pub cancel: Option<CancelToken>,
}

impl Default for RunContext {
    fn default() -> Self {
        RunContext {
            deadline: None,
            data_directory: None,
            capture_limit: 1 << 20,
            output_limit: DEFAULT_OUTPUT_LIMIT,
            resources: Arc::default(),
            schema_steps: lunabox_toolkit::schema::DEFAULT_STEPS,
            cancel: None,
        }
    }
}

/// What an executor saw: the exit code, captured streams and the bytes left
/// in the call's output file.
#[derive(Debug, Clone, Default)]
pub struct RawResult {
    /// The exit status; `128 + n` when the process was killed by signal `n`.
    pub exit_code: i32,
    /// The signal that killed the process, if one did.
    pub signal: Option<i32>,
    /// The stdout captured (see [`RunContext::capture_limit`]).
    pub stdout: String,
    /// The stderr captured (see [`RunContext::capture_limit`]).
    pub stderr: String,
    /// More stdout than [`RunContext::capture_limit`] was written; the rest
    /// was read and dropped.
    pub stdout_truncated: bool,
    /// As `stdout_truncated`, for stderr.
    pub stderr_truncated: bool,
    /// The contents of `$DLPX_OUTPUT_FILE` after the command ended.
    pub output: Vec<u8>,
    /// The output file was larger than the executor reads; `output` holds
    /// its beginning only.
    pub output_truncated: bool,
    /// How long the command ran (wall clock).
    pub duration: Duration,
}

/// Why an executor produced no [`RawResult`].
#[derive(Debug, Clone, thiserror::Error)]
pub enum ExecError {
    /// The environment, user or program cannot be used; says what to do.
    #[error("{0}")]
    Unavailable(String),
    /// The call cannot be carried out as written (found only when running
    /// it, e.g. a `followSymlinkPaths` entry inside a preserved symlink).
    #[error("{0}")]
    BadCall(String),
    /// The hook's deadline passed; the process group was killed.
    #[error("the hook's deadline passed while the command ran; its process group was killed")]
    Deadline {
        /// The stdout captured before it was killed.
        stdout: String,
        /// The stderr captured before it was killed.
        stderr: String,
    },
    /// The call was cancelled ([`RunContext::cancel`]); its process group
    /// was killed.
    #[error("the call was cancelled; its process group was killed")]
    Cancelled {
        /// The stdout captured before it was killed.
        stdout: String,
        /// The stderr captured before it was killed.
        stderr: String,
    },
    /// The command's output file grew past the limit; it was killed.
    #[error("the command wrote more than {limit} bytes to $DLPX_OUTPUT_FILE and was stopped")]
    OutputTooLarge {
        /// The output file limit ([`RunContext::output_limit`]), in bytes.
        limit: u64,
        /// The stdout captured before it was stopped.
        stdout: String,
        /// The stderr captured before it was stopped.
        stderr: String,
    },
}

/// Something that carries out Run calls. Implementations: the local machine
/// ([`executors::local::LocalExecutor`]) and scripted responses for tests
/// ([`executors::scripted::ScriptedExecutor`]).
pub trait Executor: Send + Sync {
    /// Run `call` under `ctx` (deadline, cancel, limits) and report what it
    /// saw; a non-zero exit is an `Ok` [`RawResult`], not an error.
    ///
    /// # Errors
    ///
    /// [`ExecError`] when the call could not run or was stopped.
    fn execute(&self, call: &RunCall, ctx: &RunContext) -> Result<RawResult, ExecError>;
}

/// Why a Run call gave the hook no value (mirrors the WIT `run-failure`).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RunFailure {
    #[error("{0}")]
    /// The call table is malformed, or cannot be carried out as written; names
    /// the call.
    BadCall(String),
    #[error("{message}")]
    /// The command exited non-zero or was killed by a signal.
    Exit {
        /// The exit status (`128 + n` for signal `n`).
        exit_code: i32,
        /// The captured stdout.
        stdout: String,
        /// The captured stderr.
        stderr: String,
        /// Names the call, its status and the end of stderr (or stdout).
        message: String,
    },
    #[error("{0}")]
    /// The output file is not what the call's `outputSchema` asks for (not one
    /// JSON document, invalid, too large).
    BadOutput(String),
    #[error("{0}")]
    /// The environment, user or program cannot be used; says what to do.
    Unavailable(String),
    /// The hook's deadline passed during the call: the hook is stopped as a
    /// time limit, not given a Lua error.
    #[error("the hook's deadline passed during {function}")]
    Deadline {
        /// The call's label ([`call_label`]), e.g. `RunBash (resource
        /// status.sh)`.
        function: String,
    },
    /// The call was cancelled: the hook is stopped as cancelled.
    #[error("{function} was cancelled")]
    Cancelled {
        /// The call's label ([`call_label`]), e.g. `RunBash (resource
        /// status.sh)`.
        function: String,
    },
}

/// One Run call as the transcript records it (`--transcript`).
#[derive(Debug, Clone, serde::Serialize)]
pub struct TranscriptEntry {
    /// The Run function's name (`RunBash`, ...).
    pub function: String,
    /// The target environment reference, as the call gave it.
    pub environment: Option<String>,
    /// The target user reference, as the call gave it.
    pub user: Option<String>,
    /// The target host reference, as the call gave it.
    pub host: Option<String>,
    /// The resource whose text is the command, when it is one.
    pub resource: Option<String>,
    /// The command's text when it is not a resource's (an inline command,
    /// or a resource's text with something added), so that what reached
    /// the shell can be read (the sandbox masks secrets in it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    /// The call's variables as text (the sandbox masks secrets in them).
    pub variables: BTreeMap<String, String>,
    /// `null` when the call did not run (bad call, unavailable, deadline).
    #[serde(rename = "exitCode")]
    pub exit_code: Option<i32>,
    #[serde(skip_serializing_if = "String::is_empty")]
    /// The captured stdout (empty when the call did not run; left out of the
    /// JSON when empty).
    pub stdout: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    /// The captured stderr (empty when the call did not run; left out of the
    /// JSON when empty).
    pub stderr: String,
    /// Some of stdout was dropped (past the call's capture limit or the
    /// hook's transcript budget).
    #[serde(rename = "stdoutTruncated", skip_serializing_if = "std::ops::Not::not")]
    pub stdout_truncated: bool,
    /// As `stdout_truncated`, for stderr.
    #[serde(rename = "stderrTruncated", skip_serializing_if = "std::ops::Not::not")]
    pub stderr_truncated: bool,
    #[serde(rename = "durationMs")]
    /// How long the call took, in milliseconds (0 when it did not run).
    pub duration_ms: u64,
}

/// Cut `text` to its last `max` bytes at most (at a character boundary,
/// with `...` in front when cut); whether anything was cut.
pub fn keep_tail(text: &mut String, max: usize) -> bool {
    if text.len() <= max {
        return false;
    }
    let mut start = text.len() - max;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    *text = format!("...{}", &text[start..]);
    true
}

/// Cut `text` to at most `max` bytes (at a character boundary, keeping the
/// beginning); whether anything was cut.
pub fn cut_to(text: &mut String, max: u64) -> bool {
    let max = usize::try_from(max).unwrap_or(usize::MAX);
    if text.len() <= max {
        return false;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.truncate(end);
    // What was cut must not stay allocated (a transcript holds many).
    text.shrink_to_fit();
    true
}

/// Carry out one Run call from the guest: parse `call_json` for `function`,
/// run it with `executor`, apply the exit-code and output-file rules.
/// Returns the output document (with an `outputSchema`) and the transcript
/// entry. Nothing is masked here: the sandbox masks secrets in everything
/// that leaves it, in one place.
pub fn perform(
    function: RunFunction,
    call_json: &str,
    executor: &dyn Executor,
    ctx: &RunContext,
) -> (
    Result<Option<serde_json::Value>, RunFailure>,
    TranscriptEntry,
) {
    perform::perform(function, call_json, executor, ctx)
}
