//! The hook limits as command-line flags, shared by `eval` and `run-hook`
//! (the engine's commands take `--timeout` per hook kind instead; see
//! `engine::deadlines`). Every flag's default is [`Limits::default`]'s.

use std::time::Duration;

use lunabox_sandbox::Limits;
use lunabox_toolkit::units::{parse_duration, parse_size};

/// Flags for every limit of one hook.
#[derive(clap::Args, Debug, Clone)]
pub struct LimitArgs {
    /// Wall-clock limit for the hook, Run calls included (e.g. `2s`, `10m`).
    #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
    pub timeout: Option<Duration>,
    /// Instruction budget (wasmtime fuel); unmetered when absent.
    #[arg(long, value_name = "N")]
    pub fuel: Option<u64>,
    /// Linear-memory cap (default 256MiB).
    #[arg(long, value_parser = parse_size, value_name = "SIZE")]
    pub memory: Option<u64>,
    /// Largest returned value, as JSON text (default 16MiB).
    #[arg(long, value_parser = parse_size, value_name = "SIZE")]
    pub max_result: Option<u64>,
    /// Most log (print) bytes (default 16MiB).
    #[arg(long, value_parser = parse_size, value_name = "SIZE")]
    pub max_log: Option<u64>,
    /// Most Run calls (default 10000).
    #[arg(long, value_name = "N")]
    pub max_calls: Option<u32>,
    /// Most space the hook's files may take in its scratch directory (the `/`
    /// that `io` sees; each file counts its blocks plus 4 KiB; default 64MiB).
    #[arg(long, value_parser = parse_size, value_name = "SIZE")]
    pub max_scratch: Option<u64>,
    /// Most bytes of a Run call's stdout, and of its stderr, kept (default 1MiB).
    #[arg(long, value_parser = parse_size, value_name = "SIZE")]
    pub max_capture: Option<u64>,
    /// Most bytes of stdout and stderr kept in the transcript over all Run
    /// calls (default 4MiB).
    #[arg(long, value_parser = parse_size, value_name = "SIZE")]
    pub max_transcript: Option<u64>,
    /// Largest $DLPX_OUTPUT_FILE a Run call may write; a command writing more
    /// is stopped (default 4MiB).
    #[arg(long, value_parser = parse_size, value_name = "SIZE")]
    pub max_output_file: Option<u64>,
    /// Largest Run call table, as JSON (default 16MiB, at most 64MiB).
    #[arg(long, value_parser = parse_size, value_name = "SIZE")]
    pub max_call: Option<u64>,
    /// Longest error message or traceback kept (default 64KiB).
    #[arg(long, value_parser = parse_size, value_name = "SIZE")]
    pub max_message: Option<u64>,
    /// Steps one JSON Schema check may take (default 20000000).
    #[arg(long, value_name = "N")]
    pub max_schema_steps: Option<u64>,
}

impl LimitArgs {
    /// The limits: `base` with every flag given applied, checked.
    pub fn limits(&self, base: Limits) -> Result<Limits, String> {
        let u32_of = |name: &str, v: u64| {
            u32::try_from(v)
                .map_err(|_| format!("--{name} {v} is too large (at most {})", u32::MAX))
        };
        let mut l = base;
        if let Some(t) = self.timeout {
            l.timeout = t;
        }
        if self.fuel.is_some() {
            l.fuel = self.fuel;
        }
        if let Some(v) = self.memory {
            l.memory = v;
        }
        if let Some(v) = self.max_result {
            l.max_result_bytes = u32_of("max-result", v)?;
        }
        if let Some(v) = self.max_log {
            l.max_log_bytes = v;
        }
        if let Some(v) = self.max_calls {
            l.max_run_calls = v;
        }
        if let Some(v) = self.max_scratch {
            l.max_scratch_bytes = v;
        }
        if let Some(v) = self.max_capture {
            l.max_capture_bytes = v;
        }
        if let Some(v) = self.max_transcript {
            l.max_transcript_bytes = v;
        }
        if let Some(v) = self.max_output_file {
            l.max_output_file_bytes = v;
        }
        if let Some(v) = self.max_call {
            l.max_call_bytes = u32_of("max-call", v)?;
        }
        if let Some(v) = self.max_message {
            l.max_message_bytes = u32_of("max-message", v)?;
        }
        if let Some(v) = self.max_schema_steps {
            l.max_schema_steps = v;
        }
        l.check()?;
        Ok(l)
    }
}
