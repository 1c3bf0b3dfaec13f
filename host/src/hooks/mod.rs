//! The hook catalog: every hook kind, the globals it sees and the check on
//! what it returns; and [`run_hook`], which runs one hook of a toolkit
//! through the sandbox with the engine's semantics.

use std::path::PathBuf;
use std::sync::Arc;

use crate::run::Executor;
use crate::sandbox::{HookOutcome, Limits, Runtime};
use crate::toolkit::Toolkit;

/// Which part of a toolkit a hook belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HookGroup {
    Discovery,
    Staged,
    Direct,
    Virtual,
    Upgrade,
}

/// A hook, written as its path in a toolkit: `staged/resync`,
/// `discovery/repositoryDiscovery`, `virtual/configure`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HookId {
    pub group: HookGroup,
    pub name: String,
}

/// What the engine knows when it runs a hook; each hook kind takes the
/// parts it needs (a missing needed part is an error naming it).
#[derive(Debug, Clone, Default)]
pub struct HookContext {
    pub parameters: Option<serde_json::Value>,
    pub config: Option<serde_json::Value>,
    pub repository: Option<serde_json::Value>,
    pub source: Option<serde_json::Value>,
    pub remote: Option<serde_json::Value>,
    pub snapshot_json: Option<String>,
}

/// One hook to run.
pub struct Invocation<'a> {
    pub runtime: &'a Runtime,
    pub toolkit: &'a Toolkit,
    pub hook: HookId,
    pub context: HookContext,
    pub executor: Arc<dyn Executor>,
    pub limits: Limits,
    /// The dSource's storage (RunSync target, `source.dataDirectory`).
    pub data_directory: Option<PathBuf>,
}

/// What running a hook gave: the sandbox's outcome, and the hook's value
/// after its kind's return check (or why it failed).
#[derive(Debug, Clone)]
pub struct HookRun {
    pub outcome: HookOutcome,
    pub value: Result<serde_json::Value, HookFailure>,
}

/// Why a hook failed, in the words a fault shows.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct HookFailure {
    pub message: String,
    pub traceback: Option<String>,
    /// The failed Run call, when a non-zero exit ended the hook.
    pub fault: Option<crate::sandbox::RunFault>,
}

/// Why a hook could not be started (unknown hook, missing context part,
/// parameters invalid against the schema).
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct SetupError(pub String);

/// Run one hook of a toolkit.
pub fn run_hook(inv: Invocation<'_>) -> Result<HookRun, SetupError> {
    let _ = inv;
    todo!("hooks::run_hook")
}
