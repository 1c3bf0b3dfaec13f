//! Snapshot lifecycle after commit: the retention policy (`--keep N`: the
//! newest N, and any older one a VDB was provisioned from), the
//! SnapSync schedule (`--sync-every`), removing one snapshot and exporting
//! one as an independent copy.
//!
//! Removal forgets the row first and deletes the files after, so a crash in
//! between leaves an orphan directory that recovery deletes, never a row
//! without files.

use std::path::Path;
use std::time::Duration;

use serde::Serialize;

use super::Engine;
use super::catalog;
use super::dsources;
use super::error::{EngineError, Result};
use super::jobs;
use super::progress::Progress;
use super::snapshots::ExportStats;
use super::vdbs;

/// Delete the oldest snapshots of `name` beyond its `keep` policy (caller
/// holds the lock). Returns the ids removed.
pub fn apply(engine: &mut Engine, name: &str, progress: &dyn Progress) -> Result<Vec<u64>> {
    let ds = dsources::get(engine.state(), name)?;
    let Some(keep) = ds.keep else {
        return Ok(Vec::new());
    };
    let rows = catalog::list(engine.state(), name)?;
    let excess = rows.len().saturating_sub(keep as usize);
    let store = engine.store(name);
    let mut removed = Vec::new();
    let mut kept = Vec::new();
    // The newest `keep` stay; of the older ones, those VDBs were
    // provisioned from stay too.
    for r in rows.into_iter().take(excess) {
        let users = vdbs::of_snapshot(engine.state(), name, r.id)?;
        if !users.is_empty() {
            kept.push(format!("{} (VDB {})", r.id, users.join(", ")));
            continue;
        }
        catalog::delete(engine.state(), name, r.id)?;
        store.remove(r.id)?;
        removed.push(r.id);
    }
    if !kept.is_empty() {
        progress.note(&format!(
            "retention (keep {keep}): kept snapshot(s) {} that VDBs were provisioned from",
            kept.join(", ")
        ));
    }
    if !removed.is_empty() {
        progress.note(&format!(
            "retention (keep {keep}): removed snapshot(s) {}",
            removed
                .iter()
                .map(u64::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    Ok(removed)
}

/// Set the schedule and retention of `name`; applies the retention now.
pub fn set_policy(
    engine: &mut Engine,
    name: &str,
    change: &PolicyChange,
    lock_timeout: Duration,
    progress: &dyn Progress,
) -> Result<dsources::DSource> {
    let (sync_every, keep) = (change.sync_every, change.keep);
    if keep == Some(Some(0)) {
        return Err(EngineError::Invalid(
            "--keep 0 would delete every snapshot; keep at least 1 (or `--keep none` for no limit)"
                .into(),
        ));
    }
    if let Some(Some(d)) = sync_every
        && d < Duration::from_secs(1)
    {
        return Err(EngineError::Invalid(
            "--sync-every must be at least 1s".into(),
        ));
    }
    if let Some((hook, _)) = change
        .timeouts
        .iter()
        .find(|(_, d)| d.is_some_and(|d| d.is_zero()))
    {
        return Err(EngineError::Invalid(format!(
            "--timeout {hook}=0s: a hook needs some time; give a duration above zero"
        )));
    }
    let _lock = engine.lock(name, "policy", lock_timeout, progress)?;
    let ds = dsources::get(engine.state(), name)?;
    dsources::set_policy(
        engine.state(),
        name,
        sync_every.map(|o| o.map(|d| d.as_millis() as i64)),
        keep,
    )?;
    if !change.timeouts.is_empty() {
        let mut t = ds.timeouts.clone();
        for (hook, d) in &change.timeouts {
            t.set(hook, *d)
                .map_err(|m| EngineError::Invalid(format!("--timeout {hook}: {m}")))?;
        }
        dsources::set_timeouts(engine.state(), name, &t)?;
    }
    apply(engine, name, progress)?;
    dsources::get(engine.state(), name)
}

/// What `lunabox policy` changes (`None`: leave as it is).
#[derive(Debug, Clone, Default)]
pub struct PolicyChange {
    /// `Some(None)` clears the schedule.
    pub sync_every: Option<Option<Duration>>,
    /// `Some(None)` clears the retention.
    pub keep: Option<Option<u32>>,
    /// Hook deadlines to set (`Some`) or clear (`None`).
    pub timeouts: Vec<(String, Option<Duration>)>,
}

/// What `snapshot rm` did.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Removed {
    /// The dSource.
    pub dsource: String,
    /// The id of the snapshot removed.
    pub snapshot: u64,
    /// The id of the `snapshot-rm` job.
    pub job: i64,
}

/// Remove snapshot `id` of `name` (a job of kind `snapshot-rm`).
pub fn remove(
    engine: &mut Engine,
    name: &str,
    id: u64,
    lock_timeout: Duration,
    progress: &dyn Progress,
) -> Result<Removed> {
    let _lock = engine.lock(name, "snapshot rm", lock_timeout, progress)?;
    catalog::get(engine.state(), name, id)?;
    let users = vdbs::of_snapshot(engine.state(), name, id)?;
    if !users.is_empty() {
        return Err(EngineError::Conflict(format!(
            "snapshot {id} of `{name}` cannot be removed: VDB(s) {} were provisioned from it; \
             `lunabox vdb refresh VDB` moves a VDB to a newer snapshot, `lunabox vdb rm VDB` removes it",
            users.join(", ")
        )));
    }
    let job = jobs::start(engine.state(), "snapshot-rm", Some(name))?;
    jobs::set_detail(engine.state(), job, &serde_json::json!({"snapshot": id}))?;
    catalog::delete(engine.state(), name, id)?;
    let store = engine.store(name);
    match store.remove(id) {
        Ok(()) => jobs::finish(engine.state(), job, true, None, Some(id))?,
        Err(e) => {
            // The row is gone; recovery will remove the files later.
            jobs::finish(engine.state(), job, false, Some(&e.to_string()), Some(id))?;
            return Err(e.into());
        }
    }
    Ok(Removed {
        dsource: name.to_string(),
        snapshot: id,
        job,
    })
}

/// Export snapshot `id` of `name` to `dest` as an independent copy.
/// An export target inside the state directory would be taken for debris
/// (and deleted) by recovery, or would add files to an immutable snapshot:
/// refuse it. `dest` need not exist; its deepest existing ancestor is
/// resolved (symlinks included) and what follows is appended.
fn refuse_inside_state(engine: &Engine, dest: &Path) -> Result<()> {
    let absolute = if dest.is_absolute() {
        dest.to_path_buf()
    } else {
        std::env::current_dir()
            .map_err(|e| EngineError::io("cannot resolve the export target", dest, e))?
            .join(dest)
    };
    let mut existing = absolute.as_path();
    let mut rest = Vec::new();
    let resolved = loop {
        match existing.canonicalize() {
            Ok(p) => break p,
            Err(_) => match (existing.parent(), existing.file_name()) {
                (Some(parent), Some(name)) => {
                    rest.push(name.to_os_string());
                    existing = parent;
                }
                _ => break absolute.clone(),
            },
        }
    };
    let resolved = rest.iter().rev().fold(resolved, |p, n| p.join(n));
    let state = engine
        .paths()
        .root()
        .canonicalize()
        .unwrap_or_else(|_| engine.paths().root().to_path_buf());
    if resolved.starts_with(&state) {
        return Err(EngineError::Invalid(format!(
            "`{}` is inside the state directory `{}`, where lunabox keeps its own files (an export there \
             would be removed as debris, or change a snapshot); export somewhere outside it",
            dest.display(),
            state.display()
        )));
    }
    Ok(())
}

/// Write an independent copy of snapshot `id` of dSource `name` to `dest`
/// (which must not exist or be an empty directory, outside the state
/// directory), holding the dSource's lock meanwhile.
///
/// # Errors
///
/// [`EngineError::Invalid`] when `dest` is inside the state directory,
/// [`EngineError::Busy`] when the lock is not free within `lock_timeout`,
/// [`EngineError::NotFound`] when there is no such snapshot, and the store's
/// errors.
pub fn export(
    engine: &Engine,
    name: &str,
    id: u64,
    dest: &Path,
    lock_timeout: Duration,
    progress: &dyn Progress,
) -> Result<ExportStats> {
    refuse_inside_state(engine, dest)?;
    // Held so that retention or `snapshot rm` cannot delete it midway.
    let _lock = engine.lock(name, "snapshot export", lock_timeout, progress)?;
    catalog::get(engine.state(), name, id)?;
    let store = engine.store(name);
    Ok(store.export(id, dest)?)
}
