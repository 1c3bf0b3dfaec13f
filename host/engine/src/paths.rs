//! Where the state lives: resolution of the state directory (`--state`,
//! `LUNABOX_STATE`, default `<data dir>/lunabox`) and the layout inside it.
//!
//! ```text
//! <state>/state.db                      SQLite (WAL)
//! <state>/locks/<dsource>.lock          per-dSource operation lock
//! <state>/storage/<dsource>/data/       live data (staged: source.dataDirectory)
//! <state>/storage/<dsource>/snapshots/<id>/         committed snapshot
//! <state>/storage/<dsource>/snapshots/.tmp-<id>/    snapshot being built
//! <state>/storage/<vdb>/data/           a VDB's data (a clone of a snapshot)
//! <state>/storage/<vdb>/snapshots/...   the VDB's own snapshots
//! ```
//!
//! dSources and VDBs share one name space, so each name has one storage
//! directory and one lock file. With the btrfs driver `data/` and each
//! snapshot's `files/` are subvolumes (see [`crate::storage`]).

use std::path::{Path, PathBuf};

use super::error::{EngineError, Result};

/// Environment variable naming the state directory.
pub const STATE_ENV: &str = "LUNABOX_STATE";

/// The paths of one state directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatePaths {
    root: PathBuf,
}

impl StatePaths {
    /// Resolve the state directory: `explicit` (from `--state`), else
    /// `LUNABOX_STATE`, else `dirs::data_dir()/lunabox`.
    pub fn resolve(explicit: Option<&Path>) -> Result<StatePaths> {
        if let Some(p) = explicit {
            return Ok(StatePaths::at(p));
        }
        if let Some(p) = std::env::var_os(STATE_ENV).filter(|v| !v.is_empty()) {
            return Ok(StatePaths::at(Path::new(&p)));
        }
        match dirs::data_dir() {
            Some(d) => Ok(StatePaths::at(&d.join("lunabox"))),
            None => Err(EngineError::Invalid(
                "no state directory: this system has no user data directory; pass --state DIR or set LUNABOX_STATE".into(),
            )),
        }
    }

    /// The layout rooted at `root` (made absolute against the current
    /// directory, so hooks get absolute paths).
    pub fn at(root: &Path) -> StatePaths {
        let root = if root.is_absolute() {
            root.to_path_buf()
        } else {
            std::env::current_dir()
                .map(|c| c.join(root))
                .unwrap_or_else(|_| root.to_path_buf())
        };
        StatePaths { root }
    }

    /// Create the directories of the layout that must exist.
    pub fn create(&self) -> Result<()> {
        for d in [self.root.clone(), self.locks_dir(), self.storage_root()] {
            std::fs::create_dir_all(&d)
                .map_err(|e| EngineError::io("cannot create the state directory", &d, e))?;
        }
        Ok(())
    }

    /// The state directory itself.
    pub fn root(&self) -> &Path {
        &self.root
    }
    /// The SQLite database.
    pub fn db(&self) -> PathBuf {
        self.root.join("state.db")
    }
    /// Directory of per-dSource lock files.
    pub fn locks_dir(&self) -> PathBuf {
        self.root.join("locks")
    }
    /// Lock file of one dSource.
    pub fn lock_file(&self, dsource: &str) -> PathBuf {
        self.locks_dir().join(format!("{dsource}.lock"))
    }
    /// Parent of every dSource's storage.
    pub fn storage_root(&self) -> PathBuf {
        self.root.join("storage")
    }
    /// Storage of one dSource (live data and snapshots).
    pub fn dsource_storage(&self, dsource: &str) -> PathBuf {
        self.storage_root().join(dsource)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explicit_state_wins_and_is_absolute() {
        let p = StatePaths::resolve(Some(Path::new("rel/state"))).unwrap();
        assert!(p.root().is_absolute());
        assert!(p.root().ends_with("rel/state"));
        assert_eq!(p.db(), p.root().join("state.db"));
        assert_eq!(
            p.dsource_storage("db1"),
            p.root().join("storage").join("db1")
        );
    }
}
