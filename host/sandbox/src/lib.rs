//! lunabox-sandbox: every hook runs Lua 5.4 in a fresh WebAssembly instance.
//!
//! One [`Runtime`] per process holds the wasmtime `Engine` and the guest
//! component (compiled once, cached on disk), the instance slots, the
//! tenants and the metrics. Each [`HookRequest`] gets a fresh `Store` and
//! instance, runs under its [`Limits`] (and its tenant's [`Quota`]), and
//! ends as a [`HookOutcome`]: one [`Outcome`] (a value, a Lua error, a failed
//! Run call, a limit, a cancellation, a quota, a host error), the hook's log,
//! its Run-call transcript and stats, with secrets masked.
//!
//! A request grants nothing it was not given (see [`HookRequest`]): no Run
//! calls without an executor, no resources, no data directory.
//!
//! [`Runtime::run_hook_async`] is the API for embedders on tokio: hooks run
//! on fibers and yield to the executor at every epoch tick, Run calls wait on
//! the blocking pool, and dropping the future cancels the hook and kills its
//! Run call. [`Runtime::run_hook`] is the same, blocking.
//!
//! ```
//! use lunabox_sandbox::{HookRequest, Outcome, Quota, Runtime, RuntimeConfig};
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let runtime = Runtime::new(RuntimeConfig::default())?;
//! let acme = runtime.tenant("acme", Quota { max_in_flight: 4, ..Quota::default() });
//! let request = HookRequest::new("return 6 * 7", "answer.lua").with_tenant(&acme);
//! let outcome = runtime.run_hook_async(request).await;
//! assert_eq!(outcome.result, Outcome::Value(42.into()));
//! assert_eq!(acme.metrics().hooks_run, 1);
//! # Ok::<(), anyhow::Error>(())
//! # }).unwrap();
//! ```

#![warn(missing_docs)]

mod bindings;
mod cache;
pub mod hook;
mod limits;
pub mod metrics;
pub mod outcome;
mod request;
mod scratch;
mod scratch_quota;
mod state;
pub mod tenant;
mod wasm;

pub use limits::{LimitKind, Limits};
pub use lunabox_run::CancelToken;
pub use lunabox_toolkit::validate::SyntaxError;
pub use metrics::MetricsSnapshot;
pub use outcome::{
    Coverage, HookOutcome, HostError, HostErrorKind, LimitStop, LogLine, Outcome, QuotaStop,
    RunFault, ScriptError, ScriptErrorKind, Stats,
};
pub use request::{DenyRunCalls, HookRequest, ValueCheck};
pub use tenant::{CpuShare, Quota, QuotaKind, Tenant};

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use limits::{CancelledHit, LimitHit};

/// How the process-wide runtime is set up.
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// Where the compiled component is cached. `None`: the user's cache dir.
    pub cache_dir: Option<PathBuf>,
    /// Most hooks running at once, over all tenants (sizes the pooling
    /// allocator; further hooks wait for a slot, fairly across tenants).
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

/// Turn off the Rust backtraces that library errors capture when
/// `RUST_BACKTRACE` is set (unless `RUST_LIB_BACKTRACE` says otherwise).
///
/// Every Lua `error` that unwinds through the guest is an error inside
/// wasmtime; with backtraces captured, each costs 15-20 times as much, and
/// lunabox never shows them. Panics still honour `RUST_BACKTRACE`. The
/// `lunabox` command calls this first thing; an embedder that runs many
/// failing hooks should too.
///
/// # Safety
///
/// It sets an environment variable: call it before any other thread of the
/// process exists (first thing in `main`), as for [`std::env::set_var`].
pub unsafe fn quiet_library_backtraces() {
    if std::env::var_os("RUST_LIB_BACKTRACE").is_none() {
        // SAFETY: the caller guarantees no other thread exists yet.
        unsafe { std::env::set_var("RUST_LIB_BACKTRACE", "0") };
    }
}

/// The guest component, built from `guest-lua/` (see `cargo xtask guest`).
pub static GUEST_COMPONENT: &[u8] = include_bytes!("../../../guest-lua/lunabox-guest.wasm");

/// The process-wide sandbox runtime. Share it (`Arc<Runtime>`, or `&Runtime`:
/// it is `Sync`); every hook gets its own store and instance.
///
/// ```
/// use lunabox_sandbox::{HookRequest, Outcome, Runtime, RuntimeConfig};
///
/// let runtime = Runtime::new(RuntimeConfig::default())?;
/// let outcome = runtime.run_hook(HookRequest::new("return { answer = 6 * 7 }", "example.lua"));
/// assert_eq!(outcome.result, Outcome::Value(serde_json::json!({"answer": 42})));
/// # Ok::<(), anyhow::Error>(())
/// ```
pub struct Runtime {
    config: RuntimeConfig,
    cache_dir: Option<PathBuf>,
    plain: wasm::Flavor,
    metered: OnceLock<Result<wasm::Flavor, String>>,
    scratch: scratch::ScratchPool,
    admission: Arc<tenant::Admission>,
    default_tenant: Tenant,
    metrics: metrics::Metrics,
}

/// Cancels a hook's token when its run is dropped before it finished (the
/// embedder dropped the future): its Run call's process group is killed.
struct CancelOnDrop(Option<CancelToken>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if let Some(t) = self.0.take() {
            t.cancel();
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
        let admission = tenant::Admission::new(config.max_concurrent_hooks.max(1));
        let default_tenant = admission.tenant("default", Quota::default());
        Ok(Runtime {
            config,
            cache_dir,
            plain,
            metered: OnceLock::new(),
            scratch,
            admission,
            default_tenant,
            metrics: metrics::Metrics::default(),
        })
    }

    /// The tenant called `name`, registered now with `quota` if it is new,
    /// else given `quota`. Hooks of a request without a tenant run on the
    /// `default` tenant, which has no quotas.
    ///
    /// ```
    /// use lunabox_sandbox::{Quota, Runtime, RuntimeConfig};
    ///
    /// let runtime = Runtime::new(RuntimeConfig::default())?;
    /// let t = runtime.tenant("acme", Quota { max_in_flight: 2, ..Quota::default() });
    /// assert_eq!(t.quota().max_in_flight, 2);
    /// assert!(runtime.tenants().iter().any(|t| t.name() == "acme"));
    /// # Ok::<(), anyhow::Error>(())
    /// ```
    pub fn tenant(&self, name: &str, quota: Quota) -> Tenant {
        self.admission.tenant(name, quota)
    }

    /// Every registered tenant (the `default` one first).
    pub fn tenants(&self) -> Vec<Tenant> {
        self.admission.tenants()
    }

    /// Counters over every hook this runtime ran.
    pub fn metrics(&self) -> MetricsSnapshot {
        self.metrics.snapshot()
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

    /// Run one hook in a fresh instance, blocking this thread until it ends.
    /// Never panics on guest behaviour. Inside a tokio runtime, prefer
    /// [`Runtime::run_hook_async`] (this one then needs a multi-threaded
    /// runtime).
    pub fn run_hook(&self, request: HookRequest) -> HookOutcome {
        wasmtime_wasi::runtime::in_tokio(self.run(request, false, true))
    }

    /// Run one hook in a fresh instance. The future yields at every epoch
    /// tick, so many hooks share the executor's threads; its Run calls wait
    /// on tokio's blocking pool. Dropping the future cancels the hook (its
    /// Run call's process group is killed). Never panics on guest behaviour.
    ///
    /// ```
    /// use std::time::Duration;
    /// use lunabox_sandbox::{CancelToken, HookRequest, Outcome, Runtime, RuntimeConfig};
    ///
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let runtime = Runtime::new(RuntimeConfig::default())?;
    /// let token = CancelToken::new();
    /// let spin = HookRequest::new("while true do end", "spin.lua").with_cancel(token.clone());
    /// let canceller = token.clone();
    /// tokio::spawn(async move {
    ///     tokio::time::sleep(Duration::from_millis(50)).await;
    ///     canceller.cancel();
    /// });
    /// assert_eq!(runtime.run_hook_async(spin).await.result, Outcome::Cancelled);
    /// # Ok::<(), anyhow::Error>(())
    /// # }).unwrap();
    /// ```
    pub async fn run_hook_async(&self, request: HookRequest) -> HookOutcome {
        self.run(request, false, false).await
    }

    /// Compile `script` in the sandbox without running it.
    pub fn check_syntax(&self, script: &str, chunk_name: &str) -> Result<(), SyntaxError> {
        let request = HookRequest::new(script, chunk_name);
        let outcome = wasmtime_wasi::runtime::in_tokio(self.run(request, true, true));
        match outcome.result {
            Outcome::Value(_) => Ok(()),
            Outcome::Error(e) => Err(SyntaxError {
                line: syntax_error_line(&e.message, chunk_name),
                message: e.message,
            }),
            Outcome::Limit(l) => Err(SyntaxError {
                line: None,
                message: format!("compiling {chunk_name} hit the {} limit", l.kind),
            }),
            other => Err(SyntaxError {
                line: None,
                message: other.message().unwrap_or("cannot compile").to_string(),
            }),
        }
    }

    async fn run(&self, request: HookRequest, compile_only: bool, inline: bool) -> HookOutcome {
        let started = Instant::now();
        let tenant = request
            .tenant
            .clone()
            .unwrap_or_else(|| self.default_tenant.clone());
        let span = tracing::info_span!(
            "hook",
            toolkit = %request.label.toolkit,
            hook = %request.label.hook,
            tenant = %tenant.name(),
            outcome = tracing::field::Empty,
            duration_ms = tracing::field::Empty,
        );
        let outcome = tracing::Instrument::instrument(
            self.admit_and_run(request, &tenant, compile_only, inline, started),
            span.clone(),
        )
        .await;
        let took = started.elapsed();
        span.record("outcome", outcome.result.word());
        span.record("duration_ms", took.as_millis() as u64);
        if !compile_only {
            self.metrics.record(&outcome.result, took);
            tenant.0.metrics.record(&outcome.result, took);
        }
        outcome
    }

    async fn admit_and_run(
        &self,
        request: HookRequest,
        tenant: &Tenant,
        compile_only: bool,
        inline: bool,
        started: Instant,
    ) -> HookOutcome {
        let ms = |s: Instant| s.elapsed().as_secs_f64() * 1e3;
        if let Err(m) = request.limits.check() {
            return HookOutcome::without_run(Outcome::host(m), ms(started));
        }
        let cancel = match &request.cancel {
            Some(t) => t.child(),
            None => CancelToken::new(),
        };
        let mut guard = CancelOnDrop(Some(cancel.clone()));
        let permit = {
            let admit = self.admission.admit(tenant, request.limits.memory);
            tokio::pin!(admit);
            loop {
                tokio::select! {
                    // The admission first: a hook admitted at once (the usual
                    // case) never polls the timer, which would register it
                    // with tokio's time driver (a few microseconds a hook).
                    biased;
                    r = &mut admit => break r,
                    _ = tokio::time::sleep(Duration::from_millis(5)) => {
                        if cancel.is_cancelled() {
                            return HookOutcome::without_run(Outcome::Cancelled, ms(started));
                        }
                    }
                }
            }
        };
        let permit = match permit {
            Ok(p) => p,
            Err(q) => return HookOutcome::without_run(Outcome::Quota(q), ms(started)),
        };
        let secrets = request.secrets.clone();
        let outcome = match self
            .run_admitted(
                request,
                tenant,
                cancel.clone(),
                compile_only,
                inline,
                started,
            )
            .await
        {
            Ok(o) => o,
            Err(message) => HookOutcome::without_run(Outcome::host(message), ms(started)),
        };
        drop(permit);
        // Finished: nothing left to cancel.
        guard.0 = None;
        let HookOutcome {
            result,
            log,
            transcript,
            stats,
            coverage,
            ..
        } = outcome;
        let mut finished = HookOutcome::finish(result, log, transcript, stats, &secrets);
        finished.coverage = coverage;
        finished
    }

    async fn run_admitted(
        &self,
        request: HookRequest,
        tenant: &Tenant,
        cancel: CancelToken,
        compile_only: bool,
        inline: bool,
        started: Instant,
    ) -> Result<HookOutcome, String> {
        let flavor = self.flavor(request.limits.fuel.is_some())?;
        // No preopens: the scratch directory is given when the guest first
        // asks for its directories (scratch_quota).
        let mut wasi = wasmtime_wasi::WasiCtxBuilder::new();
        wasi.allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false);
        let limits = request.limits.clone();
        // The deadline runs from admission (waiting for a slot is bounded by
        // the tenant's max_wait instead). A timeout too large to add to now
        // means "no practical deadline".
        let admitted = Instant::now();
        let deadline = admitted
            .checked_add(limits.timeout)
            .unwrap_or_else(|| admitted + Duration::from_secs(100 * 365 * 24 * 3600));
        let clock = RunClock::new(started);
        let state = state::HookState {
            wasi: wasi.build(),
            table: wasmtime::component::ResourceTable::new(),
            memory: limits::MemoryCap::new(limits.memory),
            limits: limits.clone(),
            deadline,
            executor: request.executor.clone(),
            resources: request.resources.clone(),
            data_directory: request.data_directory.clone(),
            log: Vec::new(),
            log_bytes: 0,
            transcript: Vec::new(),
            transcript_bytes: 0,
            last_failed_call: None,
            scratch: scratch_quota::HookScratch::new(
                self.scratch.source(),
                limits.max_scratch_bytes,
            ),
            cancel: cancel.clone(),
            tenant: tenant.clone(),
            inline_calls: inline,
            throttled: Duration::ZERO,
            resumed: clock.clone(),
            coverage: None,
        };
        let mut store = wasmtime::Store::new(&flavor.engine, state);
        store.limiter(|s| &mut s.memory);
        if let Some(fuel) = limits.fuel {
            store.set_fuel(fuel).map_err(|e| e.to_string())?;
            // Metered hooks also yield by fuel, so a tight loop between
            // epoch checks cannot hold the thread.
            store
                .fuel_async_yield_interval(Some(1 << 24))
                .map_err(|e| e.to_string())?;
        }
        store.set_epoch_deadline(1);
        let throttle_metrics = tenant.clone();
        store.epoch_deadline_callback(move |mut ctx| {
            let now = Instant::now();
            let state = ctx.data_mut();
            if state.cancel.is_cancelled() {
                return Err(wasmtime::Error::new(CancelledHit));
            }
            if now >= deadline {
                return Err(wasmtime::Error::new(LimitHit(LimitKind::Time)));
            }
            let ran = state.resumed.ran_until(now);
            match throttle_metrics.charge_cpu(ran) {
                None => {
                    let clock = state.resumed.clone();
                    Ok(wasmtime::UpdateDeadline::YieldCustom(
                        1,
                        Box::pin(async move {
                            tokio::task::yield_now().await;
                            clock.resume();
                        }),
                    ))
                }
                Some(next_window) => {
                    // Over the tenant's CPU share: pause until its next
                    // window (in short naps, so a cancel or the deadline is
                    // seen promptly).
                    let until = next_window
                        .min(deadline)
                        .min(now + Duration::from_millis(20));
                    state.throttled += until.saturating_duration_since(now);
                    let clock = state.resumed.clone();
                    Ok(wasmtime::UpdateDeadline::YieldCustom(
                        1,
                        Box::pin(async move {
                            tokio::time::sleep_until(until.into()).await;
                            clock.resume();
                        }),
                    ))
                }
            }
        });

        let globals = serde_json::Value::Object(request.globals).to_string();
        let options = options_for(&limits, compile_only, request.coverage);
        let call = async {
            let hook = flavor.pre.instantiate_async(&mut store).await?;
            hook.lunabox_hook_runner()
                .call_run_hook(
                    &mut store,
                    &request.script,
                    &request.chunk_name,
                    &globals,
                    options,
                )
                .await
        }
        .await;
        let fuel_used = limits
            .fuel
            .map(|f| f.saturating_sub(store.get_fuel().unwrap_or(0)));
        let chunk = &request.chunk_name;
        let result = match call {
            Ok(Ok(json)) => outcome::from_value_text(
                &json,
                request.check.as_ref(),
                lunabox_toolkit::schema::Budget {
                    steps: limits.max_schema_steps,
                    deadline: Some(deadline),
                },
            ),
            Ok(Err(err)) => {
                outcome::from_guest(err, store.data().last_failed_call.clone(), chunk, &limits)
            }
            Err(trap) => outcome::from_trap(&trap, chunk, &limits),
        };
        // The WASI context and the hook's open descriptors close here, before
        // the scratch directory (if it took one) goes back to the pool.
        let state::HookState {
            memory,
            log,
            transcript,
            throttled,
            coverage,
            scratch,
            ..
        } = store.into_data();
        drop(scratch);
        if !throttled.is_zero() {
            self.metrics.throttled(throttled);
            tenant.0.metrics.throttled(throttled);
        }
        let run_calls = transcript.len() as u32;
        let mut outcome = HookOutcome::finish(
            result,
            log,
            transcript,
            Stats {
                wall: started.elapsed().as_secs_f64() * 1e3,
                fuel_used,
                peak_memory: memory.peak,
                run_calls,
            },
            &[],
        );
        outcome.coverage = coverage;
        Ok(outcome)
    }
}

/// When the hook last resumed running (after a yield, a pause or a Run
/// call), so the time charged to its tenant is time it ran.
#[derive(Clone)]
pub(crate) struct RunClock {
    origin: Instant,
    resumed_ns: Arc<AtomicU64>,
}

impl RunClock {
    fn new(origin: Instant) -> RunClock {
        RunClock {
            origin,
            resumed_ns: Arc::new(AtomicU64::new(0)),
        }
    }

    /// It runs again from now.
    pub(crate) fn resume(&self) {
        let ns = self.origin.elapsed().as_nanos() as u64;
        self.resumed_ns.store(ns, Ordering::Relaxed);
    }

    /// How long it has run since it last resumed, up to `now`; it is then
    /// counted as resumed at `now`.
    fn ran_until(&self, now: Instant) -> Duration {
        let now_ns = now.saturating_duration_since(self.origin).as_nanos() as u64;
        let was = self.resumed_ns.swap(now_ns, Ordering::Relaxed);
        Duration::from_nanos(now_ns.saturating_sub(was))
    }
}

/// The guest's options for a hook with `limits`: the guest enforces the
/// host's numbers (nesting depth, call table, message length). `coverage`:
/// the guest records the lines that run (fuzzing only; off, it sets no line
/// hook).
fn options_for(
    limits: &Limits,
    compile_only: bool,
    coverage: bool,
) -> bindings::runner::HookOptions {
    bindings::runner::HookOptions {
        compile_only,
        max_result_bytes: if compile_only {
            1024
        } else {
            limits.max_result_bytes
        },
        max_depth: lunabox_toolkit::json::MAX_DEPTH as u32,
        max_call_bytes: limits.max_call_bytes,
        max_message_bytes: limits.max_message_bytes,
        random_seed: if compile_only { 0 } else { rand::random() },
        coverage: coverage && !compile_only,
    }
}

/// `chunk:LINE: message` -> LINE.
fn syntax_error_line(message: &str, chunk_name: &str) -> Option<u32> {
    let rest = message.strip_prefix(chunk_name)?.strip_prefix(':')?;
    rest.split(':').next()?.parse().ok()
}

impl lunabox_toolkit::validate::SyntaxCheck for Runtime {
    fn check_syntax(&self, script: &str, chunk_name: &str) -> Result<(), SyntaxError> {
        Runtime::check_syntax(self, script, chunk_name)
    }
}
