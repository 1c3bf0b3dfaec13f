//! The per-hook store data: WASI context (no preopens: the scratch directory
//! is given on demand), the
//! memory limiter, and the host side of the WIT imports (Run calls,
//! resources, log), with their limits.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::bindings::host::{
    self, ExitFailure, LogLevel, RunFailure as WitRunFailure, RunFunction as WitRunFunction,
};
use super::limits::{CancelledHit, LimitHit, LimitKind, Limits, MemoryCap, QuotaHit};
use super::outcome::{LogLine, RunFault, nul_escaped};
use crate::tenant::Tenant;
use lunabox_run::{CancelToken, Executor, RunContext, RunFailure, RunFunction, TranscriptEntry};

/// Everything one hook's store holds.
pub struct HookState {
    pub wasi: WasiCtx,
    pub table: ResourceTable,
    pub memory: MemoryCap,
    pub limits: Limits,
    pub deadline: Instant,
    pub executor: Arc<dyn Executor>,
    pub resources: Arc<BTreeMap<String, String>>,
    pub data_directory: Option<PathBuf>,
    pub log: Vec<LogLine>,
    pub log_bytes: u64,
    pub transcript: Vec<TranscriptEntry>,
    /// Bytes of stdout and stderr kept in the transcript so far.
    pub transcript_bytes: u64,
    /// The last Run call that exited non-zero (for the fault).
    pub last_failed_call: Option<RunFault>,
    /// The hook's scratch directory (taken on its first file operation) and
    /// its space accounting.
    pub scratch: super::scratch_quota::HookScratch,
    /// Stops the hook and its Run calls.
    pub cancel: CancelToken,
    /// Whose quotas it runs on.
    pub tenant: Tenant,
    /// Run calls are carried out on this thread (the blocking API: nothing
    /// else runs here) instead of on the blocking pool.
    pub inline_calls: bool,
    /// Time spent paused for the tenant's CPU share.
    pub throttled: Duration,
    /// When the hook last resumed running (CPU share accounting).
    pub resumed: crate::RunClock,
    /// What the guest reported through `coverage` (requests with coverage).
    pub coverage: Option<crate::Coverage>,
}

impl WasiView for HookState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

fn function_of(f: WitRunFunction) -> RunFunction {
    match f {
        WitRunFunction::RunBash => RunFunction::RunBash,
        WitRunFunction::RunCommand => RunFunction::RunCommand,
        WitRunFunction::RunExpect => RunFunction::RunExpect,
        WitRunFunction::RunPowerShell => RunFunction::RunPowerShell,
        WitRunFunction::RunSync => RunFunction::RunSync,
    }
}

impl host::Host for HookState {
    async fn run(
        &mut self,
        function: WitRunFunction,
        call_json: String,
    ) -> wasmtime::Result<Result<Option<String>, WitRunFailure>> {
        let function = function_of(function);
        if self.transcript.len() as u64 >= u64::from(self.limits.max_run_calls) {
            return Err(wasmtime::Error::new(LimitHit(LimitKind::Calls)));
        }
        if self.cancel.is_cancelled() {
            return Err(wasmtime::Error::new(CancelledHit));
        }
        if Instant::now() >= self.deadline {
            return Err(wasmtime::Error::new(LimitHit(LimitKind::Time)));
        }
        self.tenant
            .take_run_call()
            .map_err(|q| wasmtime::Error::new(QuotaHit(q)))?;
        let ctx = RunContext {
            deadline: Some(self.deadline),
            data_directory: self.data_directory.clone(),
            capture_limit: usize::try_from(self.limits.max_capture_bytes).unwrap_or(usize::MAX),
            output_limit: self.limits.max_output_file_bytes,
            resources: self.resources.clone(),
            schema_steps: self.limits.max_schema_steps,
            cancel: Some(self.cancel.clone()),
        };
        let span = tracing::info_span!(
            "run_call",
            function = function.name(),
            exit_code = tracing::field::Empty,
            duration_ms = tracing::field::Empty
        );
        let started = Instant::now();
        let (result, mut entry) = if self.inline_calls {
            let _g = span.enter();
            lunabox_run::perform(function, &call_json, self.executor.as_ref(), &ctx)
        } else {
            // The call waits for its command: on the blocking pool, so the
            // executor thread runs other hooks meanwhile.
            let executor = self.executor.clone();
            let s = span.clone();
            tokio::task::spawn_blocking(move || {
                let _g = s.enter();
                lunabox_run::perform(function, &call_json, executor.as_ref(), &ctx)
            })
            .await
            .map_err(|e| wasmtime::Error::msg(format!("a Run call's thread failed: {e}")))?
        };
        span.record("duration_ms", started.elapsed().as_millis() as u64);
        // Waiting for the command is not running time of the hook.
        self.resumed.resume();
        if let Some(code) = entry.exit_code {
            span.record("exit_code", code);
        }
        self.keep_in_transcript(&mut entry);
        self.transcript.push(entry);
        match result {
            Ok(Some(value)) => Ok(Ok(Some(value.to_string()))),
            Ok(None) => Ok(Ok(None)),
            Err(RunFailure::Deadline { .. }) => {
                Err(wasmtime::Error::new(LimitHit(LimitKind::Time)))
            }
            Err(RunFailure::Cancelled { .. }) => Err(wasmtime::Error::new(CancelledHit)),
            Err(RunFailure::BadCall(m)) => Ok(Err(WitRunFailure::BadCall(nul_escaped(m)))),
            Err(RunFailure::BadOutput(m)) => Ok(Err(WitRunFailure::BadOutput(nul_escaped(m)))),
            Err(RunFailure::Unavailable(m)) => Ok(Err(WitRunFailure::Unavailable(nul_escaped(m)))),
            Err(RunFailure::Exit {
                exit_code,
                stdout,
                stderr,
                message,
            }) => {
                self.last_failed_call = Some(RunFault {
                    function: function.name().to_string(),
                    exit_code,
                    stdout: stdout.clone(),
                    stderr: stderr.clone(),
                    message: message.clone(),
                    traceback: None,
                });
                Ok(Err(WitRunFailure::Exit(ExitFailure {
                    exit_code,
                    stdout,
                    stderr,
                    message,
                })))
            }
        }
    }

    async fn coverage(&mut self, report: host::CoverageReport) -> wasmtime::Result<()> {
        self.coverage = Some(crate::Coverage {
            ran: report.ran,
            lines: report.lines,
            last_line: report.last_line,
            call_lines: report.call_lines,
        });
        Ok(())
    }

    async fn read_resource(&mut self, name: String) -> wasmtime::Result<Option<String>> {
        Ok(self.resources.get(&name).cloned())
    }

    async fn list_resources(&mut self) -> wasmtime::Result<Vec<String>> {
        Ok(self.resources.keys().cloned().collect())
    }

    async fn log(&mut self, level: LogLevel, message: String) -> wasmtime::Result<()> {
        self.log_bytes += message.len() as u64;
        if self.log_bytes > self.limits.max_log_bytes {
            return Err(wasmtime::Error::new(LimitHit(LimitKind::Output)));
        }
        let level = match level {
            LogLevel::Debug => "debug",
            LogLevel::Info => "info",
            LogLevel::Warn => "warn",
            LogLevel::Error => "error",
        };
        self.log.push(LogLine {
            level: level.to_string(),
            message,
        });
        Ok(())
    }
}

impl HookState {
    /// Keep `entry`'s streams within what is left of the hook's transcript
    /// budget ([`Limits::max_transcript_bytes`]); what does not fit is
    /// dropped and the entry says so.
    fn keep_in_transcript(&mut self, entry: &mut TranscriptEntry) {
        let mut left = self
            .limits
            .max_transcript_bytes
            .saturating_sub(self.transcript_bytes);
        for (text, truncated) in [
            (&mut entry.stdout, &mut entry.stdout_truncated),
            (&mut entry.stderr, &mut entry.stderr_truncated),
        ] {
            *truncated |= lunabox_run::cut_to(text, left);
            left -= text.len() as u64;
            self.transcript_bytes += text.len() as u64;
        }
    }
}
