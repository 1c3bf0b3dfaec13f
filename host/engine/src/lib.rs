//! The engine: state, environments, installed toolkits, dSources, SnapSync,
//! snapshots, faults, jobs and the daemon.
//!
//! [`EngineBuilder`] configures an engine from code (state directory,
//! sandbox runtime, limits, deadlines per hook kind, executors, tenant);
//! [`Engine::open`] is the builder's defaults. Opening runs startup
//! [`recovery`]; the operations live in their modules:
//! [`environments`], [`toolkits`] (install, upgrade), [`link`],
//! [`snapsync`], [`staging`] (enable, disable, status, worker),
//! [`retention`] (policy, snapshot removal and export), [`provision`]
//! (virtual copies: [`vdbs`]), [`daemon`]. Snapshots and VDBs are made by
//! the state's [`storage`] driver.
//! Everything a hook does is recorded as a [`jobs`] step; failures become
//! [`faults`].

#![warn(missing_docs)]

mod builder;
pub mod catalog;
pub mod daemon;
pub mod deadlines;
pub mod discovery;
pub mod dsources;
pub mod environments;
pub mod error;
pub mod faults;
pub mod hookrun;
pub mod install;
pub mod jobs;
pub mod link;
pub mod locks;
pub mod paths;
pub mod progress;
pub mod provision;
pub mod recovery;
pub mod retention;
pub mod snapshots;
pub mod snapsync;
pub mod space;
pub mod staging;
pub mod state;
pub mod storage;
pub mod toolkits;
pub mod vdbs;

pub use builder::EngineBuilder;
pub use error::{EngineError, Result};

use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use locks::DsourceLock;
use lunabox_sandbox::Runtime;
use paths::StatePaths;
use progress::Progress;
use state::State;

/// How long an operation waits for another one on the same dSource by
/// default (`--lock-timeout`).
pub const DEFAULT_LOCK_TIMEOUT: Duration = Duration::from_secs(600);

/// An open state directory.
pub struct Engine {
    paths: StatePaths,
    state: State,
    storage: storage::Choice,
    driver: storage::Driver,
    runtime: OnceLock<Arc<Runtime>>,
    recovered: recovery::Report,
    /// Hook deadlines set by the running command (`--timeout`).
    hook_timeouts: deadlines::HookTimeouts,
    /// How hooks run (from the builder).
    config: Arc<builder::EngineConfig>,
}

impl Engine {
    /// Open the state directory `explicit` (else `LUNABOX_STATE`, else the
    /// default), creating it if needed, and recover from interrupted jobs.
    pub fn open(explicit: Option<&Path>) -> Result<Engine> {
        Engine::open_at(StatePaths::resolve(explicit)?)
    }

    /// Open the state directory at `paths`, with the builder's defaults.
    pub fn open_at(paths: StatePaths) -> Result<Engine> {
        Engine::open_with(paths, Arc::default())
    }

    pub(crate) fn open_with(
        paths: StatePaths,
        config: Arc<builder::EngineConfig>,
    ) -> Result<Engine> {
        paths.create()?;
        let root = paths.root().to_path_buf();
        let mut state = match State::open(&paths.db()) {
            Ok(s) => s,
            // A full disk: release the reserve and try again; say so if
            // that is not enough.
            Err(EngineError::Db { source, .. })
                if space::db_full(&source, &root) && space::release_reserve(&root) =>
            {
                State::open(&paths.db())?
            }
            Err(EngineError::Db { what, source }) if space::db_full(&source, &root) => {
                return Err(EngineError::Invalid(format!(
                    "cannot open the state database ({what}: {source}): {}",
                    space::no_space_hint(&root)
                )));
            }
            Err(e) => return Err(e),
        };
        let recovered = recovery::recover(&paths, &mut state)?;
        space::ensure_reserve(&root);
        let storage = storage::resolve(&state, &paths.storage_root(), config.storage_driver)?;
        let driver = storage::driver(storage.driver);
        if let Err(e) = driver.prepare_dir(&paths.storage_root()) {
            tracing::debug!(error = %e, "cannot prepare the storage directory");
        }
        Ok(Engine {
            paths,
            state,
            storage,
            driver,
            runtime: OnceLock::new(),
            recovered,
            hook_timeouts: deadlines::HookTimeouts::none(),
            config,
        })
    }

    /// Another connection to the same state (for a worker thread), sharing
    /// the sandbox runtime. Does not run recovery again.
    pub fn reopen(&self) -> Result<Engine> {
        let state = State::open(&self.paths.db())?;
        let runtime = OnceLock::new();
        if let Some(rt) = self.runtime.get() {
            let _ = runtime.set(rt.clone());
        }
        Ok(Engine {
            paths: self.paths.clone(),
            state,
            storage: self.storage.clone(),
            driver: self.driver.clone(),
            runtime,
            recovered: recovery::Report::default(),
            hook_timeouts: self.hook_timeouts.clone(),
            config: self.config.clone(),
        })
    }

    /// The state directory layout.
    pub fn paths(&self) -> &StatePaths {
        &self.paths
    }

    /// The storage driver of this state, and why it was chosen.
    pub fn storage(&self) -> &storage::Choice {
        &self.storage
    }

    /// The snapshot store of dSource (or VDB) `name`, with this state's
    /// storage driver.
    pub fn store(&self, name: &str) -> snapshots::SnapshotStore {
        snapshots::SnapshotStore::with_driver(
            &self.paths.dsource_storage(name),
            self.driver.clone(),
        )
    }

    /// The state database.
    pub fn state(&self) -> &State {
        &self.state
    }

    /// The state database, for transactions.
    pub fn state_mut(&mut self) -> &mut State {
        &mut self.state
    }

    /// Set the deadlines of the hooks this engine runs from now on (a
    /// command's `--timeout`); they win over each dSource's own.
    pub fn set_hook_timeouts(&mut self, t: deadlines::HookTimeouts) {
        self.hook_timeouts = t;
    }

    /// The deadlines set with [`Self::set_hook_timeouts`].
    pub fn hook_timeouts(&self) -> &deadlines::HookTimeouts {
        &self.hook_timeouts
    }

    /// How this engine runs hooks.
    pub(crate) fn config(&self) -> &builder::EngineConfig {
        &self.config
    }

    /// What startup recovery did.
    pub fn recovered(&self) -> &recovery::Report {
        &self.recovered
    }

    /// The sandbox runtime, built on first use.
    pub fn runtime(&self) -> Result<Arc<Runtime>> {
        if let Some(rt) = self.runtime.get() {
            return Ok(rt.clone());
        }
        if let Some(rt) = &self.config.runtime {
            return Ok(rt.clone());
        }
        let rt = Runtime::new(self.config.runtime_config.clone()).map_err(EngineError::Sandbox)?;
        let rt = Arc::new(rt);
        let _ = self.runtime.set(rt.clone());
        Ok(self.runtime.get().cloned().unwrap_or(rt))
    }

    /// Take the operation lock of `dsource`, telling `progress` if it has
    /// to wait.
    pub fn lock(
        &self,
        dsource: &str,
        operation: &str,
        timeout: Duration,
        progress: &dyn Progress,
    ) -> Result<DsourceLock> {
        DsourceLock::acquire(
            &self.paths.lock_file(dsource),
            dsource,
            operation,
            timeout,
            &mut |m| progress.note(m),
        )
    }
}
