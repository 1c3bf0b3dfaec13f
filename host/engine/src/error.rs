//! The engine's error type: every failure names what it was working on
//! (file, dSource, toolkit, hook) and says what to do next.

use std::path::{Path, PathBuf};

/// Why an engine operation could not be carried out.
///
/// A hook that *ran* and failed is not an `EngineError`: it is recorded in
/// the job and posted as a fault, and the operation reports a failed job.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The state database refused an operation.
    #[error("state database: {what}: {source}")]
    Db {
        /// What the engine was doing (`posting a fault`, ...).
        what: String,
        #[source]
        /// SQLite's error.
        source: rusqlite::Error,
    },
    /// A file operation failed.
    #[error("{action} `{}`: {source}", path.display())]
    Io {
        /// What failed (`cannot open the lock file`, ...).
        action: String,
        /// The file or directory concerned.
        path: PathBuf,
        #[source]
        /// The OS error.
        source: std::io::Error,
    },
    /// Something named does not exist (the message says how to list what does).
    #[error("{0}")]
    NotFound(String),
    /// The operation conflicts with what exists (a name taken, an
    /// environment still used, a dSource disabled).
    #[error("{0}")]
    Conflict(String),
    /// The user's input is not acceptable (the message names the field).
    #[error("{0}")]
    Invalid(String),
    /// Another operation holds the dSource and did not finish in time.
    #[error("{0}")]
    Busy(String),
    /// A toolkit could not be loaded: its files or built JSON are wrong.
    #[error("{source}")]
    ToolkitLoad {
        /// What was being loaded (a path, or `<installed NAME VERSION>`).
        toolkit: String,
        /// Why, naming the file and field.
        #[source]
        source: lunabox_toolkit::load::LoadError,
    },
    /// A toolkit loaded but cannot be used for this (not valid, no linked
    /// source kind, damaged in the state database).
    #[error("{0}")]
    Toolkit(String),
    /// The sandbox runtime could not be set up.
    #[error("the hook sandbox could not start: {0:#}")]
    Sandbox(#[source] anyhow::Error),
    /// A snapshot could not be built, read or removed.
    #[error(transparent)]
    Snapshot(#[from] crate::snapshots::SnapshotError),
}

impl EngineError {
    /// An [`EngineError::Io`] for `action` on `path`.
    pub fn io(action: impl Into<String>, path: &Path, source: std::io::Error) -> Self {
        EngineError::Io {
            action: action.into(),
            path: path.to_path_buf(),
            source,
        }
    }

    /// An [`EngineError::Db`] for `what`.
    pub fn db(what: impl Into<String>) -> impl FnOnce(rusqlite::Error) -> EngineError {
        let what = what.into();
        move |source| EngineError::Db { what, source }
    }
}

/// Result of engine operations.
pub type Result<T, E = EngineError> = std::result::Result<T, E>;
