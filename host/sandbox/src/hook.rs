//! [`run_hook`]: one hook of a toolkit run through the sandbox with the
//! engine's semantics: its globals built from a [`HookContext`] (parameters
//! with defaults, validated), a fresh instance, then its kind's return check.
//!
//! ```no_run
//! use std::sync::Arc;
//! use lunabox_sandbox::hook::{self as hooks, HookContext, Invocation};
//! use lunabox_run::executors::local::LocalExecutor;
//! use lunabox_sandbox::{Limits, Runtime, RuntimeConfig};
//! use serde_json::json;
//!
//! let runtime = Runtime::new(RuntimeConfig::default()).unwrap();
//! let loaded = lunabox_toolkit::load(std::path::Path::new("toolkits/delphixdb")).unwrap();
//! let run = hooks::run_hook(Invocation {
//!     runtime: &runtime,
//!     toolkit: &loaded.toolkit,
//!     hook: "staged/status".parse().unwrap(),
//!     context: HookContext {
//!         config: Some(json!({"dbName": "prod"})),
//!         repository: Some(json!({"installPath": "/opt/delphixdb/bin/delphixdb"})),
//!         source: Some(json!({"stagingEnvironment": "local", "stagingEnvironmentUser": "root"})),
//!         ..HookContext::default()
//!     },
//!     executor: Arc::new(LocalExecutor::new()),
//!     limits: Limits::default(),
//!     data_directory: None,
//! })
//! .unwrap();
//! println!("{:?}", run.value);
//! ```

use std::path::PathBuf;
use std::sync::Arc;

use crate::{
    ErrorKind, HookOutcome, HookRequest, HookResult, LimitKind, Limits, RunFault, Runtime,
};
use lunabox_run::Executor;
pub use lunabox_toolkit::hook::{HookContext, SetupError, resolve};
use lunabox_toolkit::hook::{catalog, globals, params, returns};
use lunabox_toolkit::model::lua_source;
pub use lunabox_toolkit::{HookGroup, HookId, Toolkit};

/// One hook to run.
pub struct Invocation<'a> {
    pub runtime: &'a Runtime,
    pub toolkit: &'a Toolkit,
    pub hook: HookId,
    pub context: HookContext,
    pub executor: Arc<dyn Executor>,
    pub limits: Limits,
    /// The dSource's storage (RunSync target; `source.dataDirectory` of
    /// staged and virtual hooks when the context's `source` lacks it).
    pub data_directory: Option<PathBuf>,
}

/// What running a hook gave: the sandbox's outcome, and the hook's value
/// after its kind's return check (or why it failed).
#[derive(Debug, Clone)]
pub struct HookRun {
    pub outcome: HookOutcome,
    pub value: Result<serde_json::Value, HookFailure>,
    /// The parameter values never to print (password parameters); the
    /// failure's texts are already masked, mask anything else you print
    /// with [`params::mask`] / [`params::mask_json`].
    pub secrets: Vec<String>,
}

/// How a hook failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FailureKind {
    /// The script does not compile.
    Syntax,
    /// A Lua runtime error.
    Runtime,
    /// An uncaught failed Run call (see [`HookFailure::fault`]).
    RunFailed,
    /// The value cannot be returned (not JSON-able, too large) or fails the
    /// hook kind's return check.
    BadResult,
    /// The Lua state ran out of memory.
    Memory,
    /// The guest trapped.
    Trap,
    /// The host could not start the hook (no free instance slot, ...).
    Host,
    /// A limit stopped the hook.
    Limit(LimitKind),
}

/// Why a hook failed, in the words a fault shows.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct HookFailure {
    pub kind: FailureKind,
    pub message: String,
    pub traceback: Option<String>,
    /// The failed Run call, when a non-zero exit ended the hook.
    pub fault: Option<Box<RunFault>>,
}

fn failure_kind(kind: ErrorKind) -> FailureKind {
    match kind {
        ErrorKind::Syntax => FailureKind::Syntax,
        ErrorKind::Runtime => FailureKind::Runtime,
        ErrorKind::RunFailed => FailureKind::RunFailed,
        ErrorKind::BadResult => FailureKind::BadResult,
        ErrorKind::Memory => FailureKind::Memory,
        ErrorKind::Trap => FailureKind::Trap,
        ErrorKind::Host => FailureKind::Host,
    }
}

/// Run one hook of a toolkit: build its globals from the context (defaults
/// applied to the parameters, which are validated; password values become
/// secrets), run it in a fresh sandbox, then apply its kind's return check.
pub fn run_hook(inv: Invocation<'_>) -> Result<HookRun, SetupError> {
    let deadline = std::time::Instant::now().checked_add(inv.limits.timeout);
    let (spec, script) = resolve(inv.toolkit, &inv.hook)?;
    let globals = globals::build(
        spec,
        inv.toolkit,
        &inv.context,
        inv.data_directory.as_deref(),
    )?;
    let chunk_name = inv.toolkit.chunk_name(&inv.hook);
    let secrets = globals.secrets;
    let request = HookRequest {
        script: lua_source(script).into_owned(),
        chunk_name: chunk_name.clone(),
        globals: globals.map,
        resources: Arc::new(inv.toolkit.resources.clone()),
        limits: inv.limits.clone(),
        executor: inv.executor,
        data_directory: inv.data_directory,
        secrets: secrets.clone(),
    };
    let _span = tracing::info_span!("hook", chunk = %chunk_name).entered();
    let outcome = inv.runtime.run_hook(request);
    let value = map_result(
        spec,
        inv.toolkit,
        &chunk_name,
        &outcome.result,
        &inv.limits,
        &secrets,
        &lunabox_toolkit::schema::Budget {
            steps: inv.limits.max_schema_steps,
            deadline,
        },
    );
    Ok(HookRun {
        outcome,
        value,
        secrets,
    })
}

fn map_result(
    spec: &catalog::HookSpec,
    toolkit: &Toolkit,
    chunk_name: &str,
    result: &HookResult,
    limits: &Limits,
    secrets: &[String],
    budget: &lunabox_toolkit::schema::Budget,
) -> Result<serde_json::Value, HookFailure> {
    use params::mask;
    match result {
        HookResult::Ok(v) => {
            returns::check_return_within(spec, toolkit, v.clone(), secrets, budget).map_err(|m| {
                HookFailure {
                    kind: FailureKind::BadResult,
                    message: mask(&format!("{chunk_name}: {m}"), secrets),
                    traceback: None,
                    fault: None,
                }
            })
        }
        HookResult::Error(e) => Err(HookFailure {
            kind: failure_kind(e.kind),
            message: mask(&e.message, secrets),
            traceback: e.traceback.as_ref().map(|t| mask(t, secrets)),
            fault: e.fault.as_ref().map(|f| {
                Box::new(RunFault {
                    function: f.function.clone(),
                    exit_code: f.exit_code,
                    stdout: mask(&f.stdout, secrets),
                    stderr: mask(&f.stderr, secrets),
                })
            }),
        }),
        HookResult::Limit(k) => Err(HookFailure {
            kind: FailureKind::Limit(*k),
            message: format!("{chunk_name} was stopped: {}", limit_words(*k, limits)),
            traceback: None,
            fault: None,
        }),
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
