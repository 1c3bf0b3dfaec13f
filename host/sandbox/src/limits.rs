//! Per-hook limits, the outcome kinds they produce when hit, and the memory
//! limiter that enforces the linear-memory cap.

use std::time::Duration;

/// Limits for one hook. Every one is enforced by the host; when one is hit
/// the hook stops and its outcome is [`LimitKind`].
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    /// Wall-clock deadline for the whole hook, Run calls included.
    pub timeout: Duration,
    /// Instruction budget (wasmtime fuel); `None`: not metered.
    pub fuel: Option<u64>,
    /// Most linear memory the hook's instance may have, in bytes.
    pub memory: u64,
    /// Largest returned value, as JSON text, in bytes.
    pub max_result_bytes: u32,
    /// Most bytes the hook may write to its log.
    pub max_log_bytes: u64,
    /// Most Run calls the hook may make.
    pub max_run_calls: u32,
    /// Most space the hook's scratch directory may hold, in bytes (each
    /// file counts its blocks on disk plus 4 KiB).
    pub max_scratch_bytes: u64,
    /// Most bytes of a Run call's stdout, and of its stderr, the host keeps
    /// (the rest is read and dropped; the transcript says so).
    pub max_capture_bytes: u64,
    /// Most bytes of stdout and stderr, over all the hook's Run calls,
    /// kept in its transcript (later output is dropped; the entries say so).
    pub max_transcript_bytes: u64,
    /// Largest `$DLPX_OUTPUT_FILE` a Run call may write: a command whose
    /// file grows past it is stopped and the call fails, saying so.
    pub max_output_file_bytes: u64,
    /// Steps one JSON Schema check made for the hook may take (see
    /// [`lunabox_toolkit::schema`]); the hook's deadline bounds it too.
    pub max_schema_steps: u64,
    /// Longest error message (and traceback) a hook's failure carries; the
    /// rest is cut, with a note.
    pub max_message_bytes: u32,
    /// Largest Run call table (its JSON text); a larger one is a Lua error
    /// in the hook. At most `MAX_CALL_BYTES` (64 MiB).
    pub max_call_bytes: u32,
}

/// The largest `max_call_bytes` allowed: what crosses from the guest to the
/// host in one call stays well inside what wasmtime copies per host call.
pub const MAX_CALL_BYTES: u32 = 64 << 20;

impl Limits {
    /// Check the limits make sense: every size at least 1 (a limit of 0 is
    /// never "unlimited"), a deadline above zero, the call table within
    /// `MAX_CALL_BYTES` (64 MiB). The message names the setting and what to do.
    pub fn check(&self) -> Result<(), String> {
        if self.timeout.is_zero() {
            return Err("the hook's timeout is 0; give it some time (e.g. 30s)".into());
        }
        let sizes: [(&str, u64); 10] = [
            ("memory", self.memory),
            ("max-result", u64::from(self.max_result_bytes)),
            ("max-log", self.max_log_bytes),
            ("max-calls", u64::from(self.max_run_calls)),
            ("max-scratch", self.max_scratch_bytes),
            ("max-capture", self.max_capture_bytes),
            ("max-output-file", self.max_output_file_bytes),
            ("max-schema-steps", self.max_schema_steps),
            ("max-message", u64::from(self.max_message_bytes)),
            ("max-call", u64::from(self.max_call_bytes)),
        ];
        if let Some((name, _)) = sizes.iter().find(|(_, v)| *v == 0) {
            return Err(format!(
                "the {name} limit is 0, which would stop every hook; 0 does not mean unlimited: give a \
                 positive value (or leave it at its default)"
            ));
        }
        if self.max_call_bytes > MAX_CALL_BYTES {
            return Err(format!(
                "the max-call limit is {} bytes; it can be at most {MAX_CALL_BYTES} bytes",
                self.max_call_bytes
            ));
        }
        Ok(())
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            timeout: Duration::from_secs(3600),
            fuel: None,
            memory: 256 << 20,
            max_result_bytes: 16 << 20,
            max_log_bytes: 16 << 20,
            max_run_calls: 10_000,
            max_scratch_bytes: 64 << 20,
            max_capture_bytes: 1 << 20,
            max_transcript_bytes: 4 << 20,
            max_output_file_bytes: 4 << 20,
            max_schema_steps: lunabox_toolkit::schema::DEFAULT_STEPS,
            max_message_bytes: 64 << 10,
            max_call_bytes: 16 << 20,
        }
    }
}

/// Which limit stopped a hook.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LimitKind {
    /// The wall-clock deadline passed (in Lua or in a Run call).
    Time,
    /// The fuel budget ran out.
    Fuel,
    /// The hook tried to grow its memory past the cap.
    Memory,
    /// The returned value or the log was larger than allowed.
    Output,
    /// The hook made more Run calls than allowed.
    Calls,
    /// The hook's scratch directory would hold more than allowed.
    Scratch,
}

impl LimitKind {
    /// The name used in `--json` output (`time`, `fuel`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            LimitKind::Time => "time",
            LimitKind::Fuel => "fuel",
            LimitKind::Memory => "memory",
            LimitKind::Output => "output",
            LimitKind::Calls => "calls",
            LimitKind::Scratch => "scratch",
        }
    }
}

impl std::fmt::Display for LimitKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The error a host function or the limiter raises to stop a hook; it
/// travels through the guest as a trap and is recognised on the way out.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("hook stopped: {0} limit reached")]
pub struct LimitHit(pub LimitKind);

/// The error that stops a cancelled hook (recognised on the way out as
/// [`Outcome::Cancelled`](crate::Outcome::Cancelled)).
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("hook stopped: cancelled")]
pub struct CancelledHit;

/// The error that stops a hook its tenant's quota refused mid-run.
#[derive(Debug, Clone, thiserror::Error)]
#[error("hook stopped: {}", .0.message)]
pub struct QuotaHit(pub crate::outcome::QuotaStop);

/// Caps the total linear memory of one instance and records its peak.
#[derive(Debug)]
pub struct MemoryCap {
    pub cap: u64,
    pub peak: u64,
    /// Bytes of all the instance's memories together.
    current_total: u64,
}

impl MemoryCap {
    pub fn new(cap: u64) -> Self {
        MemoryCap {
            cap,
            peak: 0,
            current_total: 0,
        }
    }
}

impl wasmtime::ResourceLimiter for MemoryCap {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        // Each memory reports its own sizes (creation counts as growing from
        // zero), so the instance's total moves by what this one grows.
        let total = self.current_total + (desired as u64).saturating_sub(current as u64);
        if total > self.cap {
            return Err(wasmtime::Error::new(LimitHit(LimitKind::Memory)));
        }
        self.current_total = total;
        self.peak = self.peak.max(total);
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        // Tables hold function references; Lua never grows them much.
        Ok(desired <= 1 << 20)
    }
}
