//! lunabox-sandbox: every hook runs Lua 5.4 in a fresh WebAssembly instance.
//!
//! One [`Runtime`] per process holds the wasmtime `Engine` and the guest
//! component (compiled once, cached on disk). [`Runtime::run_hook`] makes a
//! fresh `Store` and instance for each [`HookRequest`], applies its
//! [`Limits`], and returns a [`HookOutcome`]: the value, a Lua error, or the
//! limit that stopped it, with the hook's log, Run-call transcript and stats.

mod bindings;
mod cache;
pub mod hook;
mod limits;
mod scratch;
mod scratch_quota;
mod state;
mod wasm;

pub use limits::{LimitHit, LimitKind, Limits};

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use lunabox_run::{Executor, TranscriptEntry};

/// How the process-wide runtime is set up.
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// Where the compiled component is cached. `None`: the user's cache dir.
    pub cache_dir: Option<PathBuf>,
    /// Most hooks running at once (sizes the pooling allocator).
    pub max_concurrent_hooks: u32,
    /// Most linear memory any hook may be given (pool slot size).
    pub max_memory: u64,
    /// Use wasmtime's pooling allocator (fast instantiation; reserves
    /// address space up front). Off: instances are allocated on demand.
    pub pooling: bool,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        RuntimeConfig {
            cache_dir: None,
            max_concurrent_hooks: 64,
            max_memory: 1 << 30,
            pooling: true,
        }
    }
}

/// One hook to run.
#[derive(Clone)]
pub struct HookRequest {
    /// Lua source text.
    pub script: String,
    /// Name in error messages and tracebacks, e.g. `delphixdb/staged/resync.lua`.
    pub chunk_name: String,
    /// Engine globals (each key becomes a read-only global).
    pub globals: serde_json::Map<String, serde_json::Value>,
    /// The toolkit's resources: path -> text (the `resources` global).
    pub resources: Arc<BTreeMap<String, String>>,
    pub limits: Limits,
    /// Who carries out the hook's Run calls.
    pub executor: Arc<dyn Executor>,
    /// The dSource's storage (`RunSync` target), if any.
    pub data_directory: Option<PathBuf>,
    /// Values never to print (password parameters): masked in logs and the
    /// transcript.
    pub secrets: Vec<String>,
}

/// How a hook ended.
#[derive(Debug, Clone, PartialEq)]
pub enum HookResult {
    /// It returned this value (JSON `null` for nothing).
    Ok(serde_json::Value),
    /// A Lua error, a syntax error, a failed Run call or a bad result.
    Error(HookError),
    /// A limit stopped it.
    Limit(LimitKind),
}

/// Error kinds, as the guest reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ErrorKind {
    Syntax,
    Runtime,
    RunFailed,
    BadResult,
    Memory,
    /// The guest trapped (a bug in the guest, not in the script).
    Trap,
    /// The host could not start the hook (no free instance slot, no
    /// scratch directory, ...).
    Host,
}

/// A hook that ended in an error.
#[derive(Debug, Clone, PartialEq)]
pub struct HookError {
    pub kind: ErrorKind,
    pub message: String,
    pub traceback: Option<String>,
    /// For [`ErrorKind::RunFailed`]: the failed call.
    pub fault: Option<RunFault>,
}

/// The failed Run call that ended a hook.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct RunFault {
    pub function: String,
    #[serde(rename = "exitCode")]
    pub exit_code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// One line of a hook's log.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LogLine {
    pub level: String,
    pub message: String,
}

/// Measurements of one hook run.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Stats {
    #[serde(rename = "wallMs")]
    pub wall: f64,
    #[serde(rename = "fuelUsed", skip_serializing_if = "Option::is_none")]
    pub fuel_used: Option<u64>,
    #[serde(rename = "peakMemoryBytes")]
    pub peak_memory: u64,
    #[serde(rename = "runCalls")]
    pub run_calls: u32,
}

/// Everything a hook run produced.
#[derive(Debug, Clone)]
pub struct HookOutcome {
    pub result: HookResult,
    pub log: Vec<LogLine>,
    pub transcript: Vec<TranscriptEntry>,
    pub stats: Stats,
}

pub use lunabox_toolkit::validate::SyntaxError;

/// The guest component, built from `guest-lua/` (see `cargo xtask guest`).
pub static GUEST_COMPONENT: &[u8] = include_bytes!("../../../guest-lua/lunabox-guest.wasm");

/// The process-wide sandbox runtime. Cheap to share (`&Runtime` is `Sync`):
/// every [`Runtime::run_hook`] gets its own store and instance.
///
/// ```
/// use std::sync::Arc;
/// use lunabox_run::executors::local::LocalExecutor;
/// use lunabox_sandbox::{HookRequest, HookResult, Limits, Runtime, RuntimeConfig};
///
/// let runtime = Runtime::new(RuntimeConfig::default())?;
/// let outcome = runtime.run_hook(HookRequest::new(
///     "return { answer = 6 * 7 }",
///     "example.lua",
///     Arc::new(LocalExecutor::default()),
/// ));
/// assert_eq!(outcome.result, HookResult::Ok(serde_json::json!({"answer": 42})));
/// # Ok::<(), anyhow::Error>(())
/// ```
pub struct Runtime {
    config: RuntimeConfig,
    cache_dir: Option<PathBuf>,
    plain: wasm::Flavor,
    metered: OnceLock<Result<wasm::Flavor, String>>,
    scratch: scratch::ScratchPool,
}

impl HookRequest {
    /// A request with default limits, no globals and no resources.
    pub fn new(
        script: impl Into<String>,
        chunk_name: impl Into<String>,
        executor: Arc<dyn Executor>,
    ) -> Self {
        HookRequest {
            script: script.into(),
            chunk_name: chunk_name.into(),
            globals: serde_json::Map::new(),
            resources: Arc::default(),
            limits: Limits::default(),
            executor,
            data_directory: None,
            secrets: Vec::new(),
        }
    }
}

impl HookOutcome {
    fn host_error(message: String, started: Instant) -> HookOutcome {
        HookOutcome {
            result: HookResult::Error(HookError {
                kind: ErrorKind::Host,
                message,
                traceback: None,
                fault: None,
            }),
            log: Vec::new(),
            transcript: Vec::new(),
            stats: Stats {
                wall: started.elapsed().as_secs_f64() * 1e3,
                ..Stats::default()
            },
        }
    }
}

impl Runtime {
    /// Build the runtime: load (or compile and cache) the guest component.
    pub fn new(config: RuntimeConfig) -> anyhow::Result<Runtime> {
        let cache_dir = config.cache_dir.clone().or_else(cache::default_dir);
        let plain = wasm::Flavor::new(&config, false, GUEST_COMPONENT, cache_dir.as_deref())?;
        let scratch = scratch::ScratchPool::new().map_err(|e| {
            anyhow::anyhow!(
                "cannot make a directory for hooks' scratch space under the temp dir: {e}"
            )
        })?;
        Ok(Runtime {
            config,
            cache_dir,
            plain,
            metered: OnceLock::new(),
            scratch,
        })
    }

    /// The engine and the compiled guest component (for tests that look at
    /// what the guest imports).
    #[cfg(test)]
    pub(crate) fn guest(&self) -> (&wasmtime::Engine, &wasmtime::component::Component) {
        (
            &self.plain.engine,
            self.plain.pre.instance_pre().component(),
        )
    }

    fn flavor(&self, metered: bool) -> Result<&wasm::Flavor, String> {
        if !metered {
            return Ok(&self.plain);
        }
        self.metered
            .get_or_init(|| {
                wasm::Flavor::new(
                    &self.config,
                    true,
                    GUEST_COMPONENT,
                    self.cache_dir.as_deref(),
                )
                .map_err(|e| format!("{e:#}"))
            })
            .as_ref()
            .map_err(|e| e.clone())
    }

    /// Run one hook in a fresh instance. Never panics on guest behaviour.
    pub fn run_hook(&self, request: HookRequest) -> HookOutcome {
        let started = Instant::now();
        let _span = tracing::info_span!("hook", chunk = %request.chunk_name).entered();
        if let Err(m) = request.limits.check() {
            return HookOutcome::host_error(m, started);
        }
        let options = options_for(&request.limits, false);
        match self.run_inner(request, options, started) {
            Ok(outcome) => outcome,
            Err(message) => HookOutcome::host_error(message, started),
        }
    }

    /// Compile `script` in the sandbox without running it.
    pub fn check_syntax(&self, script: &str, chunk_name: &str) -> Result<(), SyntaxError> {
        let started = Instant::now();
        let request = HookRequest::new(script, chunk_name, Arc::new(NoRunCalls));
        let options = bindings::runner::HookOptions {
            max_result_bytes: 1024,
            random_seed: 0,
            ..options_for(&Limits::default(), true)
        };
        let outcome = match self.run_inner(request, options, started) {
            Ok(o) => o,
            Err(message) => {
                return Err(SyntaxError {
                    line: None,
                    message,
                });
            }
        };
        match outcome.result {
            HookResult::Ok(_) => Ok(()),
            HookResult::Error(e) => Err(SyntaxError {
                line: syntax_error_line(&e.message, chunk_name),
                message: e.message,
            }),
            HookResult::Limit(kind) => Err(SyntaxError {
                line: None,
                message: format!("compiling {chunk_name} hit the {kind} limit"),
            }),
        }
    }

    fn run_inner(
        &self,
        request: HookRequest,
        options: bindings::runner::HookOptions,
        started: Instant,
    ) -> Result<HookOutcome, String> {
        let flavor = self.flavor(request.limits.fuel.is_some())?;
        let scratch = self
            .scratch
            .take()
            .map_err(|e| format!("cannot make the hook's scratch directory: {e}"))?;
        let mut wasi = wasmtime_wasi::WasiCtxBuilder::new();
        wasi.allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .preopened_dir(scratch.path(), "/", wasmtime_wasi::FsPerms::ReadWrite)
            .map_err(|e| format!("cannot open the hook's scratch directory: {e}"))?;
        let limits = request.limits.clone();
        // A timeout too large to add to now means "no practical deadline".
        let deadline = started
            .checked_add(limits.timeout)
            .unwrap_or_else(|| started + Duration::from_secs(100 * 365 * 24 * 3600));
        let state = state::HookState {
            wasi: wasi.build(),
            table: wasmtime::component::ResourceTable::new(),
            memory: limits::MemoryCap::new(limits.memory),
            limits: limits.clone(),
            deadline,
            executor: request.executor.clone(),
            resources: request.resources.clone(),
            data_directory: request.data_directory.clone(),
            secrets: request.secrets.clone(),
            log: Vec::new(),
            log_bytes: 0,
            transcript: Vec::new(),
            transcript_bytes: 0,
            last_failed_call: None,
            scratch: scratch_quota::ScratchMeter::new(scratch.path(), limits.max_scratch_bytes),
        };
        let mut store = wasmtime::Store::new(&flavor.engine, state);
        store.limiter(|s| &mut s.memory);
        if let Some(fuel) = limits.fuel {
            store.set_fuel(fuel).map_err(|e| e.to_string())?;
        }
        let tick = wasm::EPOCH_TICK.as_nanos().max(1);
        // wasmtime adds the ticks to the engine's current epoch: keep the
        // sum far from overflowing (2^62 ticks of 2 ms is no deadline at all).
        let ticks = (limits.timeout.as_nanos() / tick).clamp(1, 1 << 62) as u64;
        store.set_epoch_deadline(ticks);
        store.epoch_deadline_callback(move |_ctx| {
            if Instant::now() >= deadline {
                Err(wasmtime::Error::new(LimitHit(LimitKind::Time)))
            } else {
                Ok(wasmtime::UpdateDeadline::Continue(1))
            }
        });

        let globals = serde_json::Value::Object(request.globals).to_string();
        let call = flavor.pre.instantiate(&mut store).and_then(|hook| {
            hook.lunabox_hook_runner().call_run_hook(
                &mut store,
                &request.script,
                &request.chunk_name,
                &globals,
                options,
            )
        });
        let fuel_used = limits
            .fuel
            .map(|f| f.saturating_sub(store.get_fuel().unwrap_or(0)));
        let result = match call {
            Ok(Ok(json)) => match lunabox_toolkit::json::parse(&json) {
                Ok(v) => HookResult::Ok(v),
                Err(e @ lunabox_toolkit::json::JsonError::TooDeep) => {
                    HookResult::Error(HookError {
                        kind: ErrorKind::BadResult,
                        message: format!(
                            "the hook's result cannot be returned: {e}; return a flatter value"
                        ),
                        traceback: None,
                        fault: None,
                    })
                }
                Err(e) => HookResult::Error(HookError {
                    kind: ErrorKind::BadResult,
                    message: format!(
                        "the hook's result is not valid JSON ({e}); this is a lunabox bug"
                    ),
                    traceback: None,
                    fault: None,
                }),
            },
            Ok(Err(err)) => hook_error(err, store.data().last_failed_call.clone()),
            Err(trap) => trap_result(&trap),
        };
        // The WASI context and the hook's open descriptors close here, before
        // the scratch directory goes back to the pool.
        let state::HookState {
            memory,
            log,
            transcript,
            ..
        } = store.into_data();
        drop(scratch);
        Ok(HookOutcome {
            result,
            stats: Stats {
                wall: started.elapsed().as_secs_f64() * 1e3,
                fuel_used,
                peak_memory: memory.peak,
                run_calls: transcript.len() as u32,
            },
            log,
            transcript,
        })
    }
}

/// The guest's options for a hook with `limits`: the guest enforces the
/// host's numbers (nesting depth, call table, message length).
fn options_for(limits: &Limits, compile_only: bool) -> bindings::runner::HookOptions {
    bindings::runner::HookOptions {
        compile_only,
        max_result_bytes: limits.max_result_bytes,
        max_depth: lunabox_toolkit::json::MAX_DEPTH as u32,
        max_call_bytes: limits.max_call_bytes,
        max_message_bytes: limits.max_message_bytes,
        random_seed: rand::random(),
    }
}

fn hook_error(err: bindings::runner::HookError, last_failed: Option<RunFault>) -> HookResult {
    use bindings::runner::ErrorKind as K;
    let kind = match err.kind {
        K::Syntax => ErrorKind::Syntax,
        K::Runtime => ErrorKind::Runtime,
        K::RunFailed => ErrorKind::RunFailed,
        K::BadResult => ErrorKind::BadResult,
        K::ResultTooLarge => return HookResult::Limit(LimitKind::Output),
        K::Memory => return HookResult::Limit(LimitKind::Memory),
    };
    let fault = err.exit.map(|x| RunFault {
        function: last_failed
            .map(|f| f.function)
            .unwrap_or_else(|| "Run".to_string()),
        exit_code: x.exit_code,
        stdout: x.stdout,
        stderr: x.stderr,
    });
    HookResult::Error(HookError {
        kind,
        message: err.message,
        traceback: err.traceback,
        fault,
    })
}

fn trap_result(err: &wasmtime::Error) -> HookResult {
    if let Some(LimitHit(kind)) = err.downcast_ref::<LimitHit>() {
        return HookResult::Limit(*kind);
    }
    if let Some(trap) = err.downcast_ref::<wasmtime::Trap>() {
        match trap {
            wasmtime::Trap::OutOfFuel => return HookResult::Limit(LimitKind::Fuel),
            wasmtime::Trap::Interrupt => return HookResult::Limit(LimitKind::Time),
            _ => {}
        }
    }
    // The wasm backtrace means nothing to a toolkit author: say what
    // stopped the hook (the root cause), and that it is lunabox's to fix.
    let cause = match err.downcast_ref::<wasmtime::Trap>() {
        Some(trap) => trap.to_string(),
        None => err.root_cause().to_string(),
    };
    HookResult::Error(HookError {
        kind: ErrorKind::Trap,
        message: format!(
            "the sandbox stopped the hook: {cause}; this is a fault of lunabox's guest, not of the \
             script: please report it with the script that caused it"
        ),
        traceback: None,
        fault: None,
    })
}

/// `chunk:LINE: message` -> LINE.
fn syntax_error_line(message: &str, chunk_name: &str) -> Option<u32> {
    let rest = message.strip_prefix(chunk_name)?.strip_prefix(':')?;
    rest.split(':').next()?.parse().ok()
}

/// The executor for syntax checks: a compile never makes Run calls.
struct NoRunCalls;

impl Executor for NoRunCalls {
    fn execute(
        &self,
        _call: &lunabox_run::RunCall,
        _ctx: &lunabox_run::RunContext,
    ) -> Result<lunabox_run::RawResult, lunabox_run::ExecError> {
        Err(lunabox_run::ExecError::Unavailable(
            "no Run calls while checking syntax".into(),
        ))
    }
}

impl lunabox_toolkit::validate::SyntaxCheck for Runtime {
    fn check_syntax(&self, script: &str, chunk_name: &str) -> Result<(), SyntaxError> {
        Runtime::check_syntax(self, script, chunk_name)
    }
}
