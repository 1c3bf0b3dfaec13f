//! [`EngineBuilder`]: an engine configured from code. The state directory,
//! the sandbox runtime (its config, or one shared by several engines), the
//! limits every hook runs under, the default deadline of each hook kind,
//! who carries out Run calls, and the tenant whose quotas the hooks use.
//! Nothing is granted that the builder was not given beyond the documented
//! defaults ([`StandardExecutors`], [`crate::deadlines`]).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::Engine;
use crate::deadlines::HookTimeouts;
use crate::environments::{ExecutorFactory, StandardExecutors};
use crate::error::{EngineError, Result};
use crate::paths::StatePaths;
use lunabox_sandbox::{Limits, Runtime, RuntimeConfig, Tenant};
use lunabox_toolkit::HookId;

/// How an engine runs hooks; shared by an engine and its worker
/// connections ([`Engine::reopen`]).
pub(crate) struct EngineConfig {
    pub(crate) runtime_config: RuntimeConfig,
    pub(crate) runtime: Option<Arc<Runtime>>,
    pub(crate) limits: Limits,
    pub(crate) hook_defaults: HookTimeouts,
    pub(crate) executors: Arc<dyn ExecutorFactory>,
    pub(crate) tenant: Option<Tenant>,
    pub(crate) storage_driver: Option<crate::storage::DriverKind>,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            runtime_config: RuntimeConfig::default(),
            runtime: None,
            limits: Limits::default(),
            hook_defaults: HookTimeouts::none(),
            executors: Arc::new(StandardExecutors),
            tenant: None,
            storage_driver: None,
        }
    }
}

impl EngineConfig {
    /// The deadline of `hook` when neither the command nor the dSource sets
    /// one: the builder's, else the built-in default.
    pub(crate) fn default_timeout(&self, hook: &HookId) -> Duration {
        self.hook_defaults
            .get(hook)
            .unwrap_or_else(|| crate::deadlines::default_for(hook))
    }
}

/// Builds an [`Engine`].
///
/// ```
/// use std::sync::Arc;
/// use std::time::Duration;
/// use lunabox_engine::EngineBuilder;
/// use lunabox_sandbox::{Limits, Quota, Runtime, RuntimeConfig};
///
/// let state = tempfile::tempdir()?;
/// // One runtime for every tenant's engine in this process.
/// let runtime = Arc::new(Runtime::new(RuntimeConfig::default())?);
/// let tenant = runtime.tenant("acme", Quota { max_in_flight: 8, ..Quota::default() });
/// let engine = EngineBuilder::new()
///     .state_dir(state.path())
///     .runtime(runtime.clone())
///     .tenant(tenant)
///     .limits(Limits { memory: 128 << 20, ..Limits::default() })
///     .hook_timeout("status", Duration::from_secs(5))?
///     .open()?;
/// assert!(engine.paths().db().exists());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[must_use]
pub struct EngineBuilder {
    state_dir: Option<PathBuf>,
    config: EngineConfig,
}

impl Default for EngineBuilder {
    fn default() -> Self {
        EngineBuilder::new()
    }
}

impl EngineBuilder {
    /// The defaults: the state directory from `LUNABOX_STATE` or the user's
    /// data directory, a runtime built on first use with
    /// [`RuntimeConfig::default`], [`Limits::default`] (the deadline per
    /// hook kind from [`crate::deadlines`]), local environments run on this
    /// machine, no tenant quotas.
    pub fn new() -> EngineBuilder {
        EngineBuilder {
            state_dir: None,
            config: EngineConfig::default(),
        }
    }

    /// Keep the state (database, storage, snapshots) in `dir`.
    pub fn state_dir(mut self, dir: impl Into<PathBuf>) -> EngineBuilder {
        self.state_dir = Some(dir.into());
        self
    }

    /// Build the sandbox runtime with `config` when a hook first runs.
    pub fn runtime_config(mut self, config: RuntimeConfig) -> EngineBuilder {
        self.config.runtime_config = config;
        self
    }

    /// Run hooks on `runtime` (shared with other engines: its slots and
    /// tenants are the process's).
    pub fn runtime(mut self, runtime: Arc<Runtime>) -> EngineBuilder {
        self.config.runtime = Some(runtime);
        self
    }

    /// The limits every hook runs under. Their `timeout` is not used: each
    /// hook kind has its own deadline (see [`EngineBuilder::hook_timeout`]).
    pub fn limits(mut self, limits: Limits) -> EngineBuilder {
        self.config.limits = limits;
        self
    }

    /// The default deadline of the hooks `key` names: `status` (every
    /// kind), `staged/status` (one kind) or `*` (every hook). A dSource's
    /// policy and a command's `--timeout` still win over it.
    pub fn hook_timeout(mut self, key: &str, timeout: Duration) -> Result<EngineBuilder> {
        self.config
            .hook_defaults
            .set(key, Some(timeout))
            .map_err(EngineError::Invalid)?;
        Ok(self)
    }

    /// Who carries out Run calls on each environment (default:
    /// [`StandardExecutors`]).
    pub fn executors(mut self, factory: Arc<dyn ExecutorFactory>) -> EngineBuilder {
        self.config.executors = factory;
        self
    }

    /// Run every hook on `tenant`'s quotas (a tenant of the runtime given
    /// to [`EngineBuilder::runtime`]).
    pub fn tenant(mut self, tenant: Tenant) -> EngineBuilder {
        self.config.tenant = Some(tenant);
        self
    }

    /// Use this storage driver for a new state directory (an existing one
    /// keeps the driver recorded in it; asking for another is an error).
    /// Default: detected from the storage directory's filesystem.
    pub fn storage_driver(mut self, driver: crate::storage::DriverKind) -> EngineBuilder {
        self.config.storage_driver = Some(driver);
        self
    }

    /// Open (creating if needed) the state directory and run startup
    /// recovery.
    pub fn open(self) -> Result<Engine> {
        let paths = StatePaths::resolve(self.state_dir.as_deref())?;
        Engine::open_with(paths, Arc::new(self.config))
    }
}
