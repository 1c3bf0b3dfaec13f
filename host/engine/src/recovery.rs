//! Startup recovery, run by every command before it does anything: jobs
//! whose process died are marked failed ("interrupted"), and the storage of
//! every dSource and VDB not busy right now loses its partial (`.tmp-*`) and orphan
//! snapshot directories. After it, the state is as if the interrupted
//! operations had never started, except for the failed job and its fault.

use std::collections::HashSet;
use std::path::PathBuf;

use super::catalog;
use super::dsources;
use super::error::Result;
use super::jobs::{self, Job};
use super::locks::DsourceLock;
use super::paths::StatePaths;
use super::snapshots::SnapshotStore;
use super::state::State;

/// What recovery did (printed by the CLI on stderr when not empty).
#[derive(Debug, Default)]
pub struct Report {
    /// Jobs whose process had died, now marked failed.
    pub interrupted: Vec<Job>,
    /// Partial and orphan snapshot directories removed.
    pub removed: Vec<PathBuf>,
}

impl Report {
    /// Nothing was found.
    pub fn is_empty(&self) -> bool {
        self.interrupted.is_empty() && self.removed.is_empty()
    }

    /// One line per thing done.
    pub fn lines(&self) -> Vec<String> {
        let mut out = Vec::new();
        for j in &self.interrupted {
            out.push(format!(
                "recovered: {} job {}{} was interrupted (process {} is gone); marked failed",
                j.kind,
                j.id,
                j.dsource
                    .as_deref()
                    .map(|d| format!(" of `{d}`"))
                    .unwrap_or_default(),
                j.pid
            ));
        }
        for p in &self.removed {
            out.push(format!(
                "recovered: removed incomplete snapshot directory `{}`",
                p.display()
            ));
        }
        out
    }
}

/// Recover `state` at `paths`.
pub fn recover(paths: &StatePaths, state: &mut State) -> Result<Report> {
    let mut report = Report {
        interrupted: jobs::recover_interrupted(state)?,
        ..Default::default()
    };
    let names: Vec<String> = dsources::list(state)?
        .into_iter()
        .map(|d| d.name)
        .chain(super::vdbs::list(state)?.into_iter().map(|v| v.name))
        .collect();
    for name in names {
        // A dSource being synced right now holds its lock: its .tmp
        // directory is work in progress, not debris.
        let Some(_lock) = DsourceLock::try_acquire(&paths.lock_file(&name), &name)? else {
            continue;
        };
        let known: HashSet<u64> = catalog::list(state, &name)?
            .into_iter()
            .map(|r| r.id)
            .collect();
        let store = SnapshotStore::new(&paths.dsource_storage(&name));
        let r = store.recover(&known)?;
        // An interrupted VDB refresh: its clone in the making.
        for debris in [".refresh-data", ".refresh-old"] {
            let p = paths.dsource_storage(&name).join(debris);
            if std::fs::symlink_metadata(&p).is_ok() {
                super::snapshots::force_remove(&p)
                    .map_err(|e| super::error::EngineError::io("cannot remove", &p, e))?;
                report.removed.push(p);
            }
        }
        report.removed.extend(r.partial);
        report.removed.extend(r.orphans);
    }
    Ok(report)
}
