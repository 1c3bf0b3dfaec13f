//! One hook to run: [`HookRequest`], built like wasmtime-wasi's
//! `WasiCtxBuilder`: deny by default. A request made with
//! [`HookRequest::new`] has no Run calls (each fails with an error naming
//! what to grant), no resources, no globals, no data directory, no tenant,
//! and default limits; the embedder grants each explicitly.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use serde_json::{Map, Value};

use crate::limits::Limits;
use crate::tenant::Tenant;
use lunabox_run::{CancelToken, ExecError, Executor, RawResult, RunCall, RunContext};

/// A check of the value a hook returns (a toolkit hook kind's return rule):
/// the value to keep, or what is wrong with it. Its schema checks run within
/// the budget given (the hook's schema steps, and its deadline).
pub type ValueCheck =
    Arc<dyn Fn(Value, lunabox_toolkit::schema::Budget) -> Result<Value, String> + Send + Sync>;

/// One hook to run.
///
/// ```
/// use std::sync::Arc;
/// use lunabox_run::executors::scripted::ScriptedExecutor;
/// use lunabox_sandbox::{HookRequest, Limits, Outcome, Runtime, RuntimeConfig};
///
/// let runtime = Runtime::new(RuntimeConfig::default())?;
/// // Nothing granted: the script runs, a Run call does not.
/// let denied = runtime.run_hook(HookRequest::new("return RunBash{ command = 'true' }", "denied.lua"));
/// assert!(denied.result.message().unwrap().contains("no executor"));
///
/// // Granted: scripted responses answer its Run calls.
/// let responses = ScriptedExecutor::from_json(&serde_json::json!({"default": {"output": "ACTIVE"}}))?;
/// let request = HookRequest::new(
///         "return RunBash{ command = 'status', outputSchema = { type = 'string' } }",
///         "status.lua",
///     )
///     .with_executor(Arc::new(responses))
///     .with_limits(Limits { timeout: std::time::Duration::from_secs(5), ..Limits::default() });
/// assert_eq!(runtime.run_hook(request).result, Outcome::Value("ACTIVE".into()));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct HookRequest {
    pub(crate) script: String,
    pub(crate) chunk_name: String,
    pub(crate) globals: Map<String, Value>,
    pub(crate) resources: Arc<BTreeMap<String, String>>,
    pub(crate) limits: Limits,
    pub(crate) executor: Arc<dyn Executor>,
    pub(crate) data_directory: Option<PathBuf>,
    pub(crate) secrets: Vec<String>,
    pub(crate) tenant: Option<Tenant>,
    pub(crate) cancel: Option<CancelToken>,
    pub(crate) check: Option<ValueCheck>,
    pub(crate) label: Label,
    pub(crate) coverage: bool,
}

/// What tracing spans and metrics call the hook.
#[derive(Debug, Clone, Default)]
pub(crate) struct Label {
    pub toolkit: String,
    pub hook: String,
}

impl HookRequest {
    /// Run `script` (Lua source text) as chunk `chunk_name`, with nothing
    /// granted.
    pub fn new(script: impl Into<String>, chunk_name: impl Into<String>) -> HookRequest {
        let chunk_name = chunk_name.into();
        HookRequest {
            script: script.into(),
            label: Label {
                toolkit: String::new(),
                hook: chunk_name.clone(),
            },
            chunk_name,
            globals: Map::new(),
            resources: Arc::default(),
            limits: Limits::default(),
            executor: Arc::new(DenyRunCalls),
            data_directory: None,
            secrets: Vec::new(),
            tenant: None,
            cancel: None,
            check: None,
            coverage: false,
        }
    }

    /// Let the hook's Run calls be carried out by `executor`.
    pub fn with_executor(mut self, executor: Arc<dyn Executor>) -> HookRequest {
        self.executor = executor;
        self
    }

    /// Give the hook these read-only globals (each key becomes one).
    pub fn with_globals(mut self, globals: Map<String, Value>) -> HookRequest {
        self.globals = globals;
        self
    }

    /// Give the hook one more read-only global.
    pub fn with_global(mut self, name: impl Into<String>, value: Value) -> HookRequest {
        self.globals.insert(name.into(), value);
        self
    }

    /// Give the hook a toolkit's resources (the `resources` global), shared.
    pub fn with_resources(mut self, resources: Arc<BTreeMap<String, String>>) -> HookRequest {
        self.resources = resources;
        self
    }

    /// Run the hook under these limits.
    pub fn with_limits(mut self, limits: Limits) -> HookRequest {
        self.limits = limits;
        self
    }

    /// The dSource's storage, where `RunSync` copies to.
    pub fn with_data_directory(mut self, dir: impl Into<PathBuf>) -> HookRequest {
        self.data_directory = Some(dir.into());
        self
    }

    /// Values never to show (password parameters): masked in everything
    /// that leaves the sandbox.
    pub fn with_secrets(mut self, secrets: Vec<String>) -> HookRequest {
        self.secrets = secrets;
        self
    }

    /// Run the hook on `tenant`'s quotas.
    pub fn with_tenant(mut self, tenant: &Tenant) -> HookRequest {
        self.tenant = Some(tenant.clone());
        self
    }

    /// Stop the hook when `token` is cancelled (outcome
    /// [`Outcome::Cancelled`](crate::Outcome::Cancelled)).
    pub fn with_cancel(mut self, token: CancelToken) -> HookRequest {
        self.cancel = Some(token);
        self
    }

    /// Check the returned value before the outcome is made (a hook kind's
    /// return rule); a failed check is a bad result.
    pub fn with_value_check(mut self, check: ValueCheck) -> HookRequest {
        self.check = Some(check);
        self
    }

    /// Name the toolkit and hook in tracing spans and metrics.
    pub fn with_label(mut self, toolkit: &str, hook: &str) -> HookRequest {
        self.label = Label {
            toolkit: toolkit.to_string(),
            hook: hook.to_string(),
        };
        self
    }

    /// Record which lines of the chunk run, for
    /// [`HookOutcome::coverage`](crate::HookOutcome::coverage) (fuzzing).
    /// Off by default: the guest then sets no line hook.
    pub fn with_coverage(mut self, on: bool) -> HookRequest {
        self.coverage = on;
        self
    }

    /// The limits it runs under.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Its chunk name.
    pub fn chunk_name(&self) -> &str {
        &self.chunk_name
    }
}

/// The executor of a request that was granted none: every Run call fails,
/// saying what to grant.
#[derive(Debug, Clone, Copy, Default)]
pub struct DenyRunCalls;

impl Executor for DenyRunCalls {
    fn execute(&self, call: &RunCall, _ctx: &RunContext) -> Result<RawResult, ExecError> {
        Err(ExecError::Unavailable(format!(
            "{}: this hook was given no executor, so it cannot make Run calls; the embedder grants one \
             with HookRequest::with_executor (e.g. LocalExecutor to run them on this machine, or \
             ScriptedExecutor for scripted responses)",
            call.function
        )))
    }
}
