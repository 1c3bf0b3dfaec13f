//! SnapSync: the order of spec section 3.
//!
//! * staged, initial (or a failed resync, or `--resync`):
//!   resync, preSnapshot, snapshot, postSnapshot
//! * staged, incremental: preSnapshot, snapshot, postSnapshot
//! * direct: preSnapshot (it calls `RunSync` into the storage), snapshot,
//!   postSnapshot
//!
//! postSnapshot always runs, even after a failed resync, preSnapshot or
//! snapshot; what it returns (checked against `snapshotSchema` by the hooks
//! layer) is stored with the snapshot. If any step failed, the snapshot
//! built in this run is thrown away, the job fails and the failed step has
//! posted a fault. The snapshot is committed (directory renamed into place,
//! then one transaction inserting the row and advancing the dSource) only
//! after postSnapshot succeeded.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::{Value, json};

use super::catalog::{self, SnapshotRow};
use super::dsources::{self, DSource, SourceKind};
use super::error::{EngineError, Result};
use super::faults::{self, NewFault};
use super::hookrun::{HookRunner, record_step};
use super::jobs::{self, Job, Outcome};
use super::progress::Progress;
use super::snapshots::SnapshotStats;
use super::space;
use super::state::now_ms;
use super::{Engine, retention, toolkits};
use lunabox_toolkit::Toolkit;

/// Options of one SnapSync.
#[derive(Debug, Clone)]
pub struct SyncOptions {
    /// Force a (hard) resync first (staged sources).
    pub resync: bool,
    /// How long to wait for another operation on the dSource.
    pub lock_timeout: Duration,
}

/// What a SnapSync (or link) did.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SyncReport {
    /// The job, with its steps.
    pub job: Job,
    /// The snapshot taken, when the job succeeded.
    pub snapshot: Option<SnapshotRow>,
    /// Snapshots removed by the retention policy afterwards.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub expired: Vec<u64>,
}

impl SyncReport {
    /// Whether the job succeeded.
    pub fn ok(&self) -> bool {
        self.job.state == jobs::JobState::Succeeded
    }
}

/// SnapSync dSource `name`: take its lock, run the steps, record the job.
pub fn sync(
    engine: &mut Engine,
    name: &str,
    opts: &SyncOptions,
    progress: &dyn Progress,
) -> Result<SyncReport> {
    let _lock = engine.lock(name, "sync", opts.lock_timeout, progress)?;
    let ds = dsources::get(engine.state(), name)?;
    if !ds.enabled {
        return Err(EngineError::Conflict(format!(
            "dSource `{name}` is disabled; enable it with `lunabox enable {name}` before a SnapSync"
        )));
    }
    let tk = toolkits::load_for_dsource(engine.state(), &ds)?;
    clean_storage(engine, &ds)?;
    let job = jobs::start(engine.state(), "sync", Some(name))?;
    run_locked(engine, &ds, &tk, job, opts.resync, 0, progress)
}

/// Remove debris of interrupted builds of `ds` (caller holds the lock).
pub(crate) fn clean_storage(engine: &Engine, ds: &DSource) -> Result<()> {
    let known: HashSet<u64> = catalog::list(engine.state(), &ds.name)?
        .into_iter()
        .map(|r| r.id)
        .collect();
    engine.store(&ds.name).recover(&known)?;
    Ok(())
}

/// The SnapSync steps for `ds` in `job`, with the lock held. `done_before`
/// steps of the job came before (link's mountSpec), for the progress count.
pub(crate) fn run_locked(
    engine: &mut Engine,
    ds: &DSource,
    tk: &Toolkit,
    job: i64,
    force_resync: bool,
    done_before: usize,
    progress: &dyn Progress,
) -> Result<SyncReport> {
    let do_resync = ds.kind == SourceKind::Staged && (force_resync || ds.needs_resync);
    let total = done_before + if do_resync { 4 } else { 3 };
    let mut idx = done_before;
    let mut stage = |name: &str| {
        idx += 1;
        progress.stage(idx, total, name);
    };
    jobs::set_detail(
        engine.state(),
        job,
        &json!({"toolkit": ds.toolkit, "toolkitVersion": ds.toolkit_version, "kind": ds.kind, "resync": do_resync}),
    )?;
    dsources::set_last_sync(engine.state(), &ds.name, now_ms())?;
    let mut failed: Vec<String> = Vec::new();

    // resync
    if do_resync {
        dsources::set_needs_resync(engine.state(), &ds.name, true)?;
        stage("resync");
        let runner = HookRunner::new(engine, ds, tk, job)?;
        let r = runner.run("resync", Some(progress))?;
        progress.stage_done(outcome(r.ok), r.elapsed, r.message.as_deref());
        if r.ok {
            dsources::set_needs_resync(engine.state(), &ds.name, false)?;
        } else {
            failed.push("resync".into());
        }
    }

    // preSnapshot
    stage("preSnapshot");
    let pre_ok = if failed.is_empty() {
        let runner = HookRunner::new(engine, ds, tk, job)?;
        let r = runner.run("preSnapshot", Some(progress))?;
        progress.stage_done(outcome(r.ok), r.elapsed, r.message.as_deref());
        if !r.ok {
            failed.push("preSnapshot".into());
        }
        r.ok
    } else {
        skip_step(engine, job, progress, "preSnapshot", &failed)?;
        false
    };

    // snapshot
    stage("snapshot");
    let store = engine.store(&ds.name);
    let id = dsources::get(engine.state(), &ds.name)?.next_snapshot;
    let built = if pre_ok {
        let t0 = Instant::now();
        let previous = catalog::latest(engine.state(), &ds.name)?.map(|r| r.id);
        match store.build(id, previous) {
            Ok(mut b) => {
                b.stats.usage = super::provision::store_usage(&store, &b);
                let note = snapshot_note(&b.stats);
                progress.stage_done(Outcome::Ok, t0.elapsed(), Some(&note));
                record_step(
                    engine,
                    job,
                    "snapshot",
                    Outcome::Ok,
                    t0.elapsed(),
                    None,
                    serde_json::to_value(&b.stats).unwrap_or(Value::Null),
                )?;
                Some(b)
            }
            Err(e) => {
                let mut msg = e.to_string();
                if let crate::snapshots::SnapshotError::Io { source, .. } = &e
                    && space::io_full(source)
                {
                    msg = format!("{msg}; {}", space::no_space_hint(&store.snapshots_dir()));
                }
                progress.stage_done(Outcome::Failed, t0.elapsed(), Some(&msg));
                record_step(
                    engine,
                    job,
                    "snapshot",
                    Outcome::Failed,
                    t0.elapsed(),
                    Some(msg.clone()),
                    Value::Null,
                )?;
                faults::post(
                    engine.state(),
                    &NewFault {
                        dsource: Some(ds.name.clone()),
                        job_id: Some(job),
                        hook: Some("snapshot".into()),
                        message: format!("the snapshot of `{}` failed: {msg}", ds.name),
                        detail: Value::Null,
                    },
                )?;
                failed.push("snapshot".into());
                None
            }
        }
    } else {
        skip_step(engine, job, progress, "snapshot", &failed)?;
        None
    };

    // postSnapshot: always.
    stage("postSnapshot");
    let post = {
        let runner = HookRunner::new(engine, ds, tk, job)?;
        runner.run("postSnapshot", Some(progress))?
    };
    progress.stage_done(outcome(post.ok), post.elapsed, post.message.as_deref());
    if !post.ok {
        failed.push("postSnapshot".into());
    }

    let mut snapshot = None;
    let mut expired = Vec::new();
    if failed.is_empty() {
        let built = built.expect("no step failed, so the snapshot was built");
        let stats = store.commit(built)?;
        let row = SnapshotRow {
            dsource: ds.name.clone(),
            id,
            job_id: Some(job),
            created_ms: now_ms(),
            toolkit_version: ds.toolkit_version.clone(),
            metadata: post.value.clone(),
            stats: serde_json::to_value(&stats).unwrap_or(Value::Null),
        };
        engine.state_mut().write("committing a snapshot", |tx| {
            tx.execute(
                "INSERT INTO snapshots (dsource, id, job_id, created_ms, toolkit_version, metadata, stats) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                rusqlite::params![row.dsource, row.id as i64, row.job_id, row.created_ms, row.toolkit_version, row.metadata.to_string(), row.stats.to_string()],
            )
            .map_err(EngineError::db("recording a snapshot"))?;
            tx.execute(
                "UPDATE dsources SET next_snapshot = ?2 WHERE name = ?1",
                rusqlite::params![ds.name, (id + 1) as i64],
            )
            .map_err(EngineError::db("advancing the snapshot id"))?;
            Ok(())
        })?;
        jobs::finish(engine.state(), job, true, None, Some(id))?;
        snapshot = Some(row);
        expired = retention::apply(engine, &ds.name, progress)?;
    } else {
        if let Some(b) = built {
            store.discard(b)?;
        }
        let msg = format!(
            "SnapSync of `{}` failed in {}; no snapshot was kept (`lunabox faults {}` shows why)",
            ds.name,
            failed.join(", "),
            ds.name
        );
        jobs::finish(engine.state(), job, false, Some(&msg), None)?;
    }
    Ok(SyncReport {
        job: jobs::get(engine.state(), job)?,
        snapshot,
        expired,
    })
}

/// Record and show `stage` as skipped because the stages in `failed` failed.
fn skip_step(
    engine: &Engine,
    job: i64,
    progress: &dyn Progress,
    stage: &str,
    failed: &[String],
) -> Result<()> {
    let why = format!("{} failed", failed.join(", "));
    progress.stage_done(Outcome::Skipped, Duration::ZERO, Some(&why));
    record_step(
        engine,
        job,
        stage,
        Outcome::Skipped,
        Duration::ZERO,
        Some(why),
        Value::Null,
    )
}

fn outcome(ok: bool) -> Outcome {
    if ok { Outcome::Ok } else { Outcome::Failed }
}

/// One line on what a snapshot build did and what it holds on disk.
pub fn snapshot_note(st: &SnapshotStats) -> String {
    let driver = st.driver.map(|d| d.as_str()).unwrap_or("copy");
    let how = if st.whole_tree {
        "a btrfs snapshot of the whole tree".to_string()
    } else {
        let mut parts = vec![format!("{} changed", st.copied_files)];
        if st.reflinked_files > 0 {
            parts.push(format!("{} cloned", human_bytes(st.reflinked_bytes)));
        }
        parts.push(format!("{} written", human_bytes(st.written_bytes)));
        parts.push(format!("{} unchanged (linked)", st.linked_files));
        parts.join(", ")
    };
    let space = match &st.usage {
        Some(u) => format!(
            "; on disk {} held only by it, {} shared",
            human_bytes(u.exclusive_bytes),
            human_bytes(u.shared_bytes)
        ),
        None => String::new(),
    };
    format!(
        "{} files ({}): {how}{space} [{driver} driver]",
        st.files,
        human_bytes(st.bytes)
    )
}

/// `1.5 MiB`.
pub fn human_bytes(b: u64) -> String {
    const U: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b as f64;
    let mut i = 0;
    while v >= 1024.0 && i < U.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{b} B")
    } else {
        format!("{v:.1} {}", U[i])
    }
}
