//! Enable, disable, status and worker of dSources.
//!
//! * enable runs startStaging, disable runs stopStaging (staged sources;
//!   a direct source just changes state), each under the dSource lock, so
//!   they never overlap a SnapSync.
//! * status runs the status hook without the lock (it may run while another
//!   hook runs); without one, a staged source is ACTIVE while enabled; a
//!   disabled one is INACTIVE without running anything.
//! * worker runs the worker hook (daemon, every 10 s while enabled).

use std::time::Duration;

use serde::Serialize;
use serde_json::Value;

use super::Engine;
use super::catalog::{self, SnapshotRow};
use super::dsources::{self, DSource, SourceKind};
use super::error::Result;
use super::faults;
use super::hookrun::HookRunner;
use super::jobs::{self, Job, Outcome};
use super::progress::Progress;
use super::toolkits;

/// Most status (and worker) jobs kept per dSource.
const KEEP_PERIODIC_JOBS: usize = 20;

/// What enable or disable did.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ToggleReport {
    /// The dSource.
    pub dsource: String,
    /// Whether it is enabled now.
    pub enabled: bool,
    /// False when the dSource already was in the asked state.
    pub changed: bool,
    /// The `enable` or `disable` job (`None` when nothing had to change).
    pub job: Option<Job>,
}

impl ToggleReport {
    /// Whether the dSource is now in the asked state.
    pub fn ok(&self) -> bool {
        self.job
            .as_ref()
            .is_none_or(|j| j.state == jobs::JobState::Succeeded)
    }
}

/// Enable (`true`: startStaging) or disable (`false`: stopStaging) `name`.
pub fn set_enabled(
    engine: &mut Engine,
    name: &str,
    enable: bool,
    lock_timeout: Duration,
    progress: &dyn Progress,
) -> Result<ToggleReport> {
    let op = if enable { "enable" } else { "disable" };
    let _lock = engine.lock(name, op, lock_timeout, progress)?;
    let ds = dsources::get(engine.state(), name)?;
    if ds.enabled == enable {
        progress.note(&format!("dSource `{name}` is already {op}d"));
        return Ok(ToggleReport {
            dsource: name.into(),
            enabled: enable,
            changed: false,
            job: None,
        });
    }
    let tk = toolkits::load_for_dsource(engine.state(), &ds)?;
    let job = jobs::start(engine.state(), op, Some(name))?;
    let hook = if enable {
        "startStaging"
    } else {
        "stopStaging"
    };
    let ok = if ds.kind == SourceKind::Staged {
        progress.stage(1, 1, hook);
        let r = HookRunner::new(engine, &ds, &tk, job)?.run(hook, Some(progress))?;
        progress.stage_done(
            if r.ok { Outcome::Ok } else { Outcome::Failed },
            r.elapsed,
            r.message.as_deref(),
        );
        r.ok
    } else {
        true
    };
    if ok {
        dsources::set_enabled(engine.state(), name, enable)?;
        jobs::finish(engine.state(), job, true, None, None)?;
    } else {
        let msg = format!(
            "{hook} failed; `{name}` stays {} (`lunabox faults {name}` shows why)",
            if enable { "disabled" } else { "enabled" }
        );
        jobs::finish(engine.state(), job, false, Some(&msg), None)?;
    }
    Ok(ToggleReport {
        dsource: name.into(),
        enabled: if ok { enable } else { ds.enabled },
        changed: ok,
        job: Some(jobs::get(engine.state(), job)?),
    })
}

/// The state of one dSource.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusReport {
    /// The dSource.
    pub dsource: String,
    /// Staged or direct.
    pub kind: SourceKind,
    /// The toolkit's name.
    pub toolkit: String,
    /// The toolkit version it runs.
    pub toolkit_version: String,
    /// Whether it is enabled.
    pub enabled: bool,
    /// `ACTIVE`, `INACTIVE` or `UNKNOWN`.
    pub status: String,
    /// Where the status came from: `hook`, `default` (no status hook),
    /// `disabled`, or `failed` (the hook failed: see the faults).
    pub status_from: String,
    /// How many snapshots it has.
    pub snapshots: usize,
    /// Its newest snapshot, if any.
    pub last_snapshot: Option<SnapshotRow>,
    /// How many of its faults are open.
    pub open_faults: i64,
    /// A sync/enable/disable running right now.
    pub running: Vec<Job>,
    /// The SnapSync schedule, in milliseconds (`None`: none).
    pub sync_every_ms: Option<i64>,
    /// Keep at most this many snapshots (`None`: no limit).
    pub keep: Option<u32>,
    /// When the latest SnapSync started, in milliseconds since the Unix epoch.
    pub last_sync_ms: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    /// The `status` job that ran the status hook (`None` when disabled).
    pub status_job: Option<i64>,
}

/// Status of `name`, or of every dSource.
pub fn status(engine: &mut Engine, name: Option<&str>) -> Result<Vec<StatusReport>> {
    let list = match name {
        Some(n) => vec![dsources::get(engine.state(), n)?],
        None => dsources::list(engine.state())?,
    };
    let mut out = Vec::new();
    for ds in list {
        out.push(status_of(engine, &ds)?);
    }
    Ok(out)
}

/// Run status for one dSource and record it.
pub fn status_of(engine: &mut Engine, ds: &DSource) -> Result<StatusReport> {
    let (status, from, job) = if !ds.enabled {
        ("INACTIVE".to_string(), "disabled", None)
    } else {
        let tk = toolkits::load_for_dsource(engine.state(), ds)?;
        let job = jobs::start(engine.state(), "status", Some(&ds.name))?;
        let runner = HookRunner::new(engine, ds, &tk, job)?;
        if runner.has("status") {
            let r = runner.run("status", None)?;
            jobs::finish(engine.state(), job, r.ok, r.message.as_deref(), None)?;
            jobs::prune(engine.state(), &ds.name, "status", KEEP_PERIODIC_JOBS)?;
            match r.value {
                Value::String(s) if r.ok => (s, "hook", Some(job)),
                _ => ("UNKNOWN".to_string(), "failed", Some(job)),
            }
        } else {
            jobs::finish(engine.state(), job, true, None, None)?;
            jobs::prune(engine.state(), &ds.name, "status", KEEP_PERIODIC_JOBS)?;
            ("ACTIVE".to_string(), "default", Some(job))
        }
    };
    dsources::set_status(engine.state(), &ds.name, &status)?;
    let snaps = catalog::list(engine.state(), &ds.name)?;
    Ok(StatusReport {
        dsource: ds.name.clone(),
        kind: ds.kind,
        toolkit: ds.toolkit.clone(),
        toolkit_version: ds.toolkit_version.clone(),
        enabled: ds.enabled,
        status,
        status_from: from.to_string(),
        snapshots: snaps.len(),
        last_snapshot: snaps.last().cloned(),
        open_faults: faults::open_count(engine.state(), &ds.name)?,
        running: jobs::running(engine.state(), &ds.name)?
            .into_iter()
            .filter(|j| j.kind != "status" && j.kind != "worker")
            .collect(),
        sync_every_ms: ds.sync_every_ms,
        keep: ds.keep,
        last_sync_ms: ds.last_sync_ms,
        status_job: job,
    })
}

/// Run the worker hook of `ds` if it has one; the job, if one ran.
pub fn worker(engine: &mut Engine, ds: &DSource) -> Result<Option<Job>> {
    if !ds.enabled {
        return Ok(None);
    }
    let tk = toolkits::load_for_dsource(engine.state(), ds)?;
    let has = {
        let probe = HookRunner::new(engine, ds, &tk, 0)?;
        probe.has("worker")
    };
    if !has {
        return Ok(None);
    }
    let job = jobs::start(engine.state(), "worker", Some(&ds.name))?;
    let r = HookRunner::new(engine, ds, &tk, job)?.run("worker", None)?;
    jobs::finish(engine.state(), job, r.ok, r.message.as_deref(), None)?;
    jobs::prune(engine.state(), &ds.name, "worker", KEEP_PERIODIC_JOBS)?;
    Ok(Some(jobs::get(engine.state(), job)?))
}
