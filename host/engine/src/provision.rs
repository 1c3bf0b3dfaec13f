//! Virtual copies (VDBs): provisioning one from a dSource's snapshot, and
//! its life after: start, stop, status, refresh, snapshots, removal. Each
//! operation is a job of the VDB's name whose steps are the toolkit's
//! virtual hooks and the storage work between them.
//!
//! * provision: clone the snapshot (the storage driver's writable copy: a
//!   btrfs snapshot, file clones, or a copy), record the VDB, then
//!   `configure` (with `snapshotJson`, the snapshot's metadata; it returns
//!   the VDB's source config) and `start`. If configure fails the clone is
//!   deleted and no VDB is left; if start fails the VDB stays, stopped.
//! * refresh: clone the newer snapshot aside first (nothing changes if that
//!   fails), then stop, unconfigure, swap the data, configure, start.
//! * rm: stop, unconfigure, delete the clone and the VDB's own snapshots.
//! * snapshot: virtual preSnapshot, the snapshot of the VDB's data (the
//!   same store and drivers as a dSource's), postSnapshot (always).
//!
//! Locks: an operation holds the VDB's lock; while it reads a dSource's
//! snapshot (the clone) it also holds the dSource's, taken after the VDB's,
//! so that `snapshot rm` and retention, which refuse snapshots VDBs were
//! provisioned from, never race a clone.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::{Map, Value, json};

use super::Engine;
use super::catalog::{self, SnapshotRow};
use super::dsources::{self, DSource};
use super::environments::{self, check_name};
use super::error::{EngineError, Result};
use super::faults::{self, NewFault};
use super::hookrun::{HookRunner, HookSubject, StepResult, has_script, record_step};
use super::jobs::{self, Job, Outcome};
use super::progress::Progress;
use super::snapshots::{ExportStats, force_remove};
use super::state::now_ms;
use super::storage::Usage;
use super::toolkits;
use super::vdbs::{self, Vdb, VdbState};
use lunabox_toolkit::hook::params;
use lunabox_toolkit::{HookGroup, HookId, Toolkit};

/// Most status jobs kept per VDB.
const KEEP_STATUS_JOBS: usize = 20;
/// Where a refresh builds the new clone before swapping it in.
const REFRESH_DIR: &str = ".refresh-data";

/// What to provision.
#[derive(Debug, Clone, Default)]
pub struct ProvisionRequest {
    /// The VDB's name (unique among dSources and VDBs).
    pub name: String,
    /// `DSOURCE` (its newest snapshot) or `DSOURCE@SNAPSHOT`.
    pub from: String,
    /// The environment it runs on.
    pub environment: String,
    /// The environment user its hooks run as (default: the environment's).
    pub user: Option<String>,
    /// Provisioning parameters as given (before defaults).
    pub parameters: Map<String, Value>,
    /// How long to wait for another operation on the same dSource or VDB.
    pub lock_timeout: Duration,
}

/// What a VDB operation did.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VdbReport {
    /// The VDB as it is now (password parameters masked); absent when it
    /// does not exist (provisioning failed, or it was removed).
    pub vdb: Option<Value>,
    /// The job that recorded the operation's steps.
    pub job: Job,
    /// The clone of the snapshot (provision, refresh).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub clone: Option<ExportStats>,
    /// The VDB's snapshot taken (`vdb snapshot`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<SnapshotRow>,
}

impl VdbReport {
    /// Whether the job succeeded.
    pub fn ok(&self) -> bool {
        self.job.state == jobs::JobState::Succeeded
    }
}

/// A VDB as JSON with its password parameters masked.
pub fn public_vdb(v: &Vdb, tk: Option<&Toolkit>) -> Value {
    let mut out = serde_json::to_value(v).unwrap_or(Value::Null);
    let schema = tk
        .and_then(|t| t.virtual_parameters_schema())
        .cloned()
        .unwrap_or(Value::Null);
    let secrets = params::collect_secrets(&schema, &v.parameters);
    out["parameters"] = params::mask_json(&v.parameters, &secrets);
    out
}

fn load_toolkit(engine: &Engine, v: &Vdb) -> Result<Toolkit> {
    toolkits::load_installed(&toolkits::get(
        engine.state(),
        &v.toolkit,
        &v.toolkit_version,
    )?)
}

/// `DSOURCE[@SNAPSHOT]`.
fn parse_from(from: &str) -> Result<(&str, Option<u64>)> {
    match from.split_once('@') {
        None => Ok((from, None)),
        Some((ds, id)) => match id.trim().parse::<u64>() {
            Ok(id) => Ok((ds, Some(id))),
            Err(_) => Err(EngineError::Invalid(format!(
                "--from `{from}`: give DSOURCE or DSOURCE@SNAPSHOT, the snapshot as its id (from `lunabox snapshots {ds}`)"
            ))),
        },
    }
}

/// The snapshot `id` of `ds`, or its newest.
fn pick_snapshot(engine: &Engine, ds: &str, id: Option<u64>) -> Result<SnapshotRow> {
    match id {
        Some(id) => catalog::get(engine.state(), ds, id),
        None => catalog::latest(engine.state(), ds)?.ok_or_else(|| {
            EngineError::Conflict(format!(
                "dSource `{ds}` has no snapshot to provision from; `lunabox sync {ds}` takes one"
            ))
        }),
    }
}

/// The provisioning parameters with defaults, valid against the toolkit's
/// `virtualSourceDefinition.parameters`.
pub fn prepare_parameters(tk: &Toolkit, given: &Map<String, Value>) -> Result<Value> {
    let schema = tk
        .virtual_parameters_schema()
        .cloned()
        .unwrap_or_else(|| json!({"type": "object"}));
    let mut v = Value::Object(given.clone());
    params::apply_defaults(&schema, &mut v);
    super::link::check_against(&schema, &v, "provisioning parameters").map_err(|e| {
        EngineError::Invalid(format!(
            "{e} (toolkit `{}` {})",
            tk.name().unwrap_or_default(),
            tk.version().unwrap_or_default()
        ))
    })?;
    Ok(v)
}

/// Type `--param KEY=TEXT` by the toolkit's provisioning schema.
pub fn parse_param(tk: &Toolkit, key: &str, text: &str) -> Result<Value> {
    super::link::parse_param_in(tk.virtual_parameters_schema(), key, text)
}

/// The toolkit `ds` is linked with, refusing one that cannot provision.
pub fn toolkit_for(engine: &Engine, ds: &DSource) -> Result<Toolkit> {
    let tk = toolkits::load_for_dsource(engine.state(), ds)?;
    if tk.pointer("/virtualSourceDefinition").is_none() {
        return Err(EngineError::Toolkit(format!(
            "toolkit `{}` {} has no virtualSourceDefinition: it cannot provision VDBs",
            ds.toolkit, ds.toolkit_version
        )));
    }
    Ok(tk)
}

/// The subject of `v`'s virtual hooks: its parameters and source, the
/// dSource's repository, and `config` (the dSource's source config for
/// configure, the VDB's own after).
fn subject(v: &Vdb, ds: &DSource, config: Value, snapshot_json: Option<String>) -> HookSubject {
    HookSubject {
        name: v.name.clone(),
        group: HookGroup::Virtual,
        environments: vec![v.environment.clone()],
        parameters: v.parameters.clone(),
        config,
        repository: ds.repository.clone(),
        source: v.source_global(),
        timeouts: v.timeouts.clone(),
        data_directory: PathBuf::from(&v.data_directory),
        snapshot_json,
    }
}

/// Steps shown as `[i/n] name`.
struct Stages<'p> {
    progress: &'p dyn Progress,
    done: usize,
    total: usize,
}

impl Stages<'_> {
    fn start(&mut self, name: &str) {
        self.done += 1;
        self.progress
            .stage(self.done, self.total.max(self.done), name);
    }
}

/// Run virtual hook `hook` for `sub` as a step of `job`.
fn hook(
    engine: &Engine,
    sub: &HookSubject,
    tk: &Toolkit,
    job: i64,
    name: &str,
    stages: &mut Stages<'_>,
) -> Result<StepResult> {
    stages.start(name);
    let r =
        HookRunner::for_subject(engine, sub.clone(), tk, job)?.run(name, Some(stages.progress))?;
    stages.progress.stage_done(
        if r.ok { Outcome::Ok } else { Outcome::Failed },
        r.elapsed,
        r.message.as_deref(),
    );
    Ok(r)
}

/// Clone snapshot `snap` of `ds` to `dest` as step `clone` of `job`; on
/// failure the step and a fault are recorded and the message returned.
fn clone_step(
    engine: &Engine,
    vdb: &str,
    ds: &str,
    snap: u64,
    dest: &Path,
    job: i64,
    stages: &mut Stages<'_>,
) -> Result<std::result::Result<ExportStats, String>> {
    stages.start("clone");
    let t0 = Instant::now();
    let store = engine.store(ds);
    let _ = force_remove(dest);
    match store.clone_to(snap, dest) {
        Ok(st) => {
            let note = format!(
                "snapshot {snap} of `{ds}`: {} files, {} ({} driver)",
                st.files,
                super::snapsync::human_bytes(st.bytes),
                store.driver()
            );
            stages
                .progress
                .stage_done(Outcome::Ok, t0.elapsed(), Some(&note));
            let mut stats = serde_json::to_value(&st).unwrap_or(Value::Null);
            stats["driver"] = json!(store.driver());
            stats["snapshot"] = json!(snap);
            stats["dsource"] = json!(ds);
            record_step(engine, job, "clone", Outcome::Ok, t0.elapsed(), None, stats)?;
            Ok(Ok(st))
        }
        Err(e) => {
            let _ = force_remove(dest);
            let msg = format!("cannot clone snapshot {snap} of `{ds}`: {e}");
            stages
                .progress
                .stage_done(Outcome::Failed, t0.elapsed(), Some(&msg));
            record_step(
                engine,
                job,
                "clone",
                Outcome::Failed,
                t0.elapsed(),
                Some(msg.clone()),
                Value::Null,
            )?;
            faults::post(
                engine.state(),
                &NewFault {
                    dsource: Some(vdb.to_string()),
                    job_id: Some(job),
                    hook: Some("clone".into()),
                    message: msg.clone(),
                    detail: Value::Null,
                },
            )?;
            Ok(Err(msg))
        }
    }
}

fn report(
    engine: &Engine,
    name: &str,
    job: i64,
    clone: Option<ExportStats>,
    tk: Option<&Toolkit>,
) -> Result<VdbReport> {
    Ok(VdbReport {
        vdb: vdbs::get_opt(engine.state(), name)?.map(|v| public_vdb(&v, tk)),
        job: jobs::get(engine.state(), job)?,
        clone,
        snapshot: None,
    })
}

/// Provision VDB `req.name` (see the module doc).
pub fn provision(
    engine: &mut Engine,
    req: &ProvisionRequest,
    progress: &dyn Progress,
) -> Result<VdbReport> {
    // 1. Check everything; create nothing.
    check_name("VDB", &req.name)?;
    if let Some(what) = vdbs::name_taken(engine.state(), &req.name)? {
        return Err(EngineError::Conflict(format!(
            "`{}` is already the name of a {what} (dSources and VDBs share names); pick another",
            req.name
        )));
    }
    let (ds_name, snap_id) = parse_from(&req.from)?;
    let ds = dsources::get(engine.state(), ds_name)?;
    let tk = toolkit_for(engine, &ds)?;
    let env = environments::get(engine.state(), &req.environment)?;
    let parameters = prepare_parameters(&tk, &req.parameters)?;

    // 2. The clone, under both locks.
    let _vdb_lock = engine.lock(&req.name, "provision", req.lock_timeout, progress)?;
    let ds_lock = engine.lock(&ds.name, "provision", req.lock_timeout, progress)?;
    let snap = pick_snapshot(engine, &ds.name, snap_id)?;
    let storage = engine.paths().dsource_storage(&req.name);
    // Debris of an earlier provision of this name that never finished.
    force_remove(&storage).map_err(|e| EngineError::io("cannot clear old storage", &storage, e))?;
    let store = engine.store(&req.name);
    std::fs::create_dir_all(store.snapshots_dir())
        .map_err(|e| EngineError::io("cannot create the VDB's storage", &storage, e))?;
    let job = jobs::start(engine.state(), "provision", Some(&req.name))?;
    jobs::set_detail(
        engine.state(),
        job,
        &json!({"dsource": ds.name, "snapshot": snap.id, "toolkit": ds.toolkit,
                "toolkitVersion": ds.toolkit_version, "driver": engine.storage().driver}),
    )?;
    let mut stages = Stages {
        progress,
        done: 0,
        total: 3,
    };
    let live = store.live_dir();
    let cloned = match clone_step(
        engine,
        &req.name,
        &ds.name,
        snap.id,
        &live,
        job,
        &mut stages,
    )? {
        Ok(st) => st,
        Err(msg) => {
            let _ = force_remove(&storage);
            let msg = format!("{msg}; VDB `{}` was not created", req.name);
            jobs::finish(engine.state(), job, false, Some(&msg), None)?;
            return report(engine, &req.name, job, None, Some(&tk));
        }
    };
    let mut v = Vdb {
        name: req.name.clone(),
        guid: dsources::new_guid(),
        dsource: ds.name.clone(),
        snapshot: snap.id,
        toolkit: ds.toolkit.clone(),
        toolkit_version: ds.toolkit_version.clone(),
        environment: env.name.clone(),
        environment_user: req.user.clone().unwrap_or(env.user.clone()),
        parameters,
        config: json!({}),
        data_directory: live.display().to_string(),
        state: VdbState::Configuring,
        next_snapshot: 1,
        last_status: None,
        last_status_ms: None,
        created_ms: now_ms(),
        refreshed_ms: None,
        timeouts: super::deadlines::HookTimeouts::none(),
    };
    vdbs::insert(engine.state(), &v)?;
    // From here the VDB row protects the snapshot.
    drop(ds_lock);

    // 3. configure, start.
    let sub = subject(&v, &ds, ds.config.clone(), Some(snap.metadata.to_string()));
    let r = hook(engine, &sub, &tk, job, "configure", &mut stages)?;
    if !r.ok {
        let _ = force_remove(&storage);
        vdbs::delete(engine.state_mut(), &req.name)?;
        let msg = format!(
            "configure failed; VDB `{}` was not created (`lunabox faults {}` shows why)",
            req.name, req.name
        );
        jobs::finish(engine.state(), job, false, Some(&msg), None)?;
        return report(engine, &req.name, job, Some(cloned), Some(&tk));
    }
    v.config = r.value.clone();
    vdbs::set_config(engine.state(), &v.name, &v.config)?;
    vdbs::set_state(engine.state(), &v.name, VdbState::Stopped)?;
    let ok = start_step(engine, &v, &ds, &tk, job, &mut stages)?;
    if ok {
        progress.note(&format!(
            "provisioned VDB `{}` from snapshot {} of `{}` on environment `{}`",
            v.name, snap.id, ds.name, v.environment
        ));
        jobs::finish(engine.state(), job, true, None, Some(snap.id))?;
    } else {
        let msg = format!(
            "VDB `{}` is configured but start failed; it stays, stopped (`lunabox vdb start {}` retries, `lunabox vdb rm {}` removes it)",
            v.name, v.name, v.name
        );
        jobs::finish(engine.state(), job, false, Some(&msg), Some(snap.id))?;
    }
    report(engine, &v.name, job, Some(cloned), Some(&tk))
}

/// Run start; record the VDB running (or stopped when it failed).
fn start_step(
    engine: &Engine,
    v: &Vdb,
    ds: &DSource,
    tk: &Toolkit,
    job: i64,
    stages: &mut Stages<'_>,
) -> Result<bool> {
    let sub = subject(v, ds, v_config(engine, &v.name)?, None);
    let r = hook(engine, &sub, tk, job, "start", stages)?;
    vdbs::set_state(
        engine.state(),
        &v.name,
        if r.ok {
            VdbState::Running
        } else {
            VdbState::Stopped
        },
    )?;
    Ok(r.ok)
}

/// The source config recorded for VDB `name` now.
fn v_config(engine: &Engine, name: &str) -> Result<Value> {
    Ok(vdbs::get(engine.state(), name)?.config)
}

/// Refuse to run hooks that need a configured VDB on one that is not.
fn must_be_configured(v: &Vdb) -> Result<()> {
    if v.state == VdbState::Configuring {
        return Err(EngineError::Conflict(format!(
            "VDB `{}` is not configured (its provisioning or refresh was interrupted, or configure failed); \
             `lunabox vdb refresh {}` configures it again, `lunabox vdb rm {}` removes it",
            v.name, v.name, v.name
        )));
    }
    Ok(())
}

/// Start (`true`) or stop VDB `name`.
pub fn set_running(
    engine: &mut Engine,
    name: &str,
    run: bool,
    lock_timeout: Duration,
    progress: &dyn Progress,
) -> Result<VdbReport> {
    let op = if run { "start" } else { "stop" };
    let _lock = engine.lock(name, op, lock_timeout, progress)?;
    let v = vdbs::get(engine.state(), name)?;
    must_be_configured(&v)?;
    let ds = dsources::get(engine.state(), &v.dsource)?;
    let tk = load_toolkit(engine, &v)?;
    let job = jobs::start(engine.state(), &format!("vdb-{op}"), Some(name))?;
    let want = if run {
        VdbState::Running
    } else {
        VdbState::Stopped
    };
    if v.state == want {
        progress.note(&format!("VDB `{name}` is already {}", want.as_str()));
        jobs::finish(engine.state(), job, true, None, None)?;
        return report(engine, name, job, None, Some(&tk));
    }
    let mut stages = Stages {
        progress,
        done: 0,
        total: 1,
    };
    let ok = if run {
        start_step(engine, &v, &ds, &tk, job, &mut stages)?
    } else {
        let r = hook(
            engine,
            &subject(&v, &ds, v.config.clone(), None),
            &tk,
            job,
            "stop",
            &mut stages,
        )?;
        if r.ok {
            vdbs::set_state(engine.state(), name, VdbState::Stopped)?;
        }
        r.ok
    };
    let msg = (!ok).then(|| format!("{op} failed; `lunabox faults {name}` shows why"));
    jobs::finish(engine.state(), job, ok, msg.as_deref(), None)?;
    report(engine, name, job, None, Some(&tk))
}

/// What `vdb status` shows.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VdbStatus {
    /// The VDB's name.
    pub vdb: String,
    /// The dSource it was provisioned from.
    pub dsource: String,
    /// The snapshot id its clone was made from.
    pub snapshot: u64,
    /// The environment it runs on.
    pub environment: String,
    /// Whether it is running, stopped, ...
    pub state: VdbState,
    /// `ACTIVE`, `INACTIVE` or `UNKNOWN`.
    pub status: String,
    /// `hook`, `default` (no status hook), `stopped`, `configuring` or
    /// `failed` (the hook failed: see the faults).
    pub status_from: String,
    /// The job of its last status check, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status_job: Option<i64>,
    /// Faults posted against it and not resolved.
    pub open_faults: i64,
}

/// Status of VDB `name`, or of every VDB.
pub fn status(engine: &mut Engine, name: Option<&str>) -> Result<Vec<VdbStatus>> {
    let list = match name {
        Some(n) => vec![vdbs::get(engine.state(), n)?],
        None => vdbs::list(engine.state())?,
    };
    let mut out = Vec::new();
    for v in list {
        out.push(status_of(engine, &v)?);
    }
    Ok(out)
}

/// Run the virtual status hook of `v` (when it runs) and record it. Takes
/// no lock: it may run while another operation runs.
pub fn status_of(engine: &mut Engine, v: &Vdb) -> Result<VdbStatus> {
    let (status, from, job) = match v.state {
        VdbState::Configuring => ("UNKNOWN".to_string(), "configuring", None),
        VdbState::Stopped => ("INACTIVE".to_string(), "stopped", None),
        VdbState::Running => {
            let ds = dsources::get(engine.state(), &v.dsource)?;
            let tk = load_toolkit(engine, v)?;
            let job = jobs::start(engine.state(), "vdb-status", Some(&v.name))?;
            let sub = subject(v, &ds, v.config.clone(), None);
            let runner = HookRunner::for_subject(engine, sub, &tk, job)?;
            let res = if has_script(&tk, &HookId::new(HookGroup::Virtual, "status")) {
                let r = runner.run("status", None)?;
                jobs::finish(engine.state(), job, r.ok, r.message.as_deref(), None)?;
                match r.value {
                    Value::String(s) if r.ok => (s, "hook", Some(job)),
                    _ => ("UNKNOWN".to_string(), "failed", Some(job)),
                }
            } else {
                jobs::finish(engine.state(), job, true, None, None)?;
                ("ACTIVE".to_string(), "default", Some(job))
            };
            jobs::prune(engine.state(), &v.name, "vdb-status", KEEP_STATUS_JOBS)?;
            res
        }
    };
    vdbs::set_status(engine.state(), &v.name, &status, now_ms())?;
    Ok(VdbStatus {
        vdb: v.name.clone(),
        dsource: v.dsource.clone(),
        snapshot: v.snapshot,
        environment: v.environment.clone(),
        state: v.state,
        status,
        status_from: from.to_string(),
        status_job: job,
        open_faults: faults::open_count(engine.state(), &v.name)?,
    })
}

/// Refresh VDB `name` to snapshot `to` of its dSource (default: the
/// newest): its data becomes a fresh clone of it (see the module doc).
pub fn refresh(
    engine: &mut Engine,
    name: &str,
    to: Option<u64>,
    lock_timeout: Duration,
    progress: &dyn Progress,
) -> Result<VdbReport> {
    let _lock = engine.lock(name, "refresh", lock_timeout, progress)?;
    let v = vdbs::get(engine.state(), name)?;
    let ds = dsources::get(engine.state(), &v.dsource)?;
    let tk = load_toolkit(engine, &v)?;
    // Held to the end: the snapshot being cloned, and the one the VDB
    // leaves, stay put until the VDB row says which it uses.
    let _ds_lock = engine.lock(&ds.name, "refresh", lock_timeout, progress)?;
    let snap = pick_snapshot(engine, &ds.name, to)?;
    let job = jobs::start(engine.state(), "refresh", Some(name))?;
    jobs::set_detail(
        engine.state(),
        job,
        &json!({"dsource": ds.name, "from": v.snapshot, "snapshot": snap.id}),
    )?;
    let configured = v.state != VdbState::Configuring;
    let mut stages = Stages {
        progress,
        done: 0,
        total: 3 + usize::from(configured) + usize::from(v.state == VdbState::Running),
    };
    let storage = engine.paths().dsource_storage(name);
    let fresh = storage.join(REFRESH_DIR);
    let cloned = match clone_step(engine, name, &ds.name, snap.id, &fresh, job, &mut stages)? {
        Ok(st) => st,
        Err(msg) => {
            let msg = format!("{msg}; VDB `{name}` is unchanged");
            jobs::finish(engine.state(), job, false, Some(&msg), None)?;
            return report(engine, name, job, None, Some(&tk));
        }
    };
    let fail = |engine: &Engine, msg: String| -> Result<VdbReport> {
        let _ = force_remove(&fresh);
        jobs::finish(engine.state(), job, false, Some(&msg), None)?;
        report(engine, name, job, None, Some(&tk))
    };
    let own = subject(&v, &ds, v.config.clone(), None);
    if v.state == VdbState::Running {
        let r = hook(engine, &own, &tk, job, "stop", &mut stages)?;
        if !r.ok {
            return fail(
                engine,
                format!("stop failed; VDB `{name}` is unchanged and still running"),
            );
        }
        vdbs::set_state(engine.state(), name, VdbState::Stopped)?;
    }
    if configured {
        let r = hook(engine, &own, &tk, job, "unconfigure", &mut stages)?;
        if !r.ok {
            return fail(
                engine,
                format!(
                    "unconfigure failed; VDB `{name}` keeps its data, stopped (`lunabox vdb start {name}` brings it back)"
                ),
            );
        }
    }
    // Swap the data: the old clone out of the way, the new one in.
    vdbs::set_state(engine.state(), name, VdbState::Configuring)?;
    let live = engine.store(name).live_dir();
    let old = storage.join(".refresh-old");
    let _ = force_remove(&old);
    let swapped = (|| -> std::io::Result<()> {
        if live.exists() {
            std::fs::rename(&live, &old)?;
        }
        std::fs::rename(&fresh, &live)?;
        std::fs::File::open(&storage)?.sync_all()
    })();
    if let Err(e) = swapped {
        return fail(
            engine,
            format!(
                "cannot put the new clone in place at `{}`: {e}",
                live.display()
            ),
        );
    }
    vdbs::set_snapshot(engine.state(), name, snap.id, now_ms())?;
    let _ = force_remove(&old);
    let v = vdbs::get(engine.state(), name)?;
    let r = hook(
        engine,
        &subject(&v, &ds, ds.config.clone(), Some(snap.metadata.to_string())),
        &tk,
        job,
        "configure",
        &mut stages,
    )?;
    if !r.ok {
        let msg = format!(
            "configure failed after the refresh to snapshot {}; VDB `{name}` is not configured (`lunabox vdb refresh {name}` retries, `lunabox vdb rm {name}` removes it)",
            snap.id
        );
        jobs::finish(engine.state(), job, false, Some(&msg), Some(snap.id))?;
        return report(engine, name, job, Some(cloned), Some(&tk));
    }
    vdbs::set_config(engine.state(), name, &r.value)?;
    vdbs::set_state(engine.state(), name, VdbState::Stopped)?;
    let v = vdbs::get(engine.state(), name)?;
    let ok = start_step(engine, &v, &ds, &tk, job, &mut stages)?;
    let msg = (!ok).then(|| {
        format!(
            "VDB `{name}` was refreshed to snapshot {} but start failed; it stays stopped",
            snap.id
        )
    });
    jobs::finish(engine.state(), job, ok, msg.as_deref(), Some(snap.id))?;
    report(engine, name, job, Some(cloned), Some(&tk))
}

/// Remove VDB `name`: stop, unconfigure, delete its data and snapshots.
/// A failing hook stops the removal unless `force`.
pub fn remove(
    engine: &mut Engine,
    name: &str,
    force: bool,
    lock_timeout: Duration,
    progress: &dyn Progress,
) -> Result<VdbReport> {
    let _lock = engine.lock(name, "vdb rm", lock_timeout, progress)?;
    let v = vdbs::get(engine.state(), name)?;
    let ds = dsources::get(engine.state(), &v.dsource)?;
    let tk = load_toolkit(engine, &v);
    let job = jobs::start(engine.state(), "vdb-rm", Some(name))?;
    let mut stages = Stages {
        progress,
        done: 0,
        total: 1
            + usize::from(v.state != VdbState::Configuring)
            + usize::from(v.state == VdbState::Running),
    };
    match &tk {
        Ok(tk) => {
            let own = subject(&v, &ds, v.config.clone(), None);
            let mut steps = Vec::new();
            if v.state == VdbState::Running {
                steps.push("stop");
            }
            if v.state != VdbState::Configuring {
                steps.push("unconfigure");
            }
            for step in steps {
                let r = hook(engine, &own, tk, job, step, &mut stages)?;
                if !r.ok && !force {
                    let msg = format!(
                        "{step} failed; VDB `{name}` stays (`lunabox faults {name}` shows why; `lunabox vdb rm {name} --force` removes it anyway)"
                    );
                    jobs::finish(engine.state(), job, false, Some(&msg), None)?;
                    return report(engine, name, job, None, Some(tk));
                }
                if r.ok && step == "stop" {
                    vdbs::set_state(engine.state(), name, VdbState::Stopped)?;
                }
            }
        }
        Err(e) if !force => {
            return Err(EngineError::Toolkit(format!(
                "{e}; `lunabox vdb rm {name} --force` removes the VDB without running its hooks"
            )));
        }
        Err(_) => {}
    }
    stages.start("remove");
    let t0 = Instant::now();
    let storage = engine.paths().dsource_storage(name);
    if let Err(e) = force_remove(&storage) {
        let msg = format!("cannot delete `{}`: {e}", storage.display());
        stages
            .progress
            .stage_done(Outcome::Failed, t0.elapsed(), Some(&msg));
        jobs::finish(engine.state(), job, false, Some(&msg), None)?;
        return Err(EngineError::io("cannot delete the VDB's data", &storage, e));
    }
    vdbs::delete(engine.state_mut(), name)?;
    stages.progress.stage_done(Outcome::Ok, t0.elapsed(), None);
    record_step(
        engine,
        job,
        "remove",
        Outcome::Ok,
        t0.elapsed(),
        None,
        Value::Null,
    )?;
    jobs::finish(engine.state(), job, true, None, None)?;
    Ok(VdbReport {
        vdb: None,
        job: jobs::get(engine.state(), job)?,
        clone: None,
        snapshot: None,
    })
}

/// Snapshot VDB `name`: virtual preSnapshot, the snapshot of its data,
/// postSnapshot (always); committed only when all three succeeded.
pub fn snapshot(
    engine: &mut Engine,
    name: &str,
    lock_timeout: Duration,
    progress: &dyn Progress,
) -> Result<VdbReport> {
    let _lock = engine.lock(name, "vdb snapshot", lock_timeout, progress)?;
    let v = vdbs::get(engine.state(), name)?;
    must_be_configured(&v)?;
    let ds = dsources::get(engine.state(), &v.dsource)?;
    let tk = load_toolkit(engine, &v)?;
    let store = engine.store(name);
    let known = catalog::list(engine.state(), name)?
        .into_iter()
        .map(|r| r.id)
        .collect();
    store.recover(&known)?;
    let job = jobs::start(engine.state(), "vdb-snapshot", Some(name))?;
    let mut stages = Stages {
        progress,
        done: 0,
        total: 3,
    };
    let own = subject(&v, &ds, v.config.clone(), None);
    let pre = hook(engine, &own, &tk, job, "preSnapshot", &mut stages)?;
    let mut failed = Vec::new();
    let id = v.next_snapshot;
    stages.start("snapshot");
    let built = if pre.ok {
        let t0 = Instant::now();
        let previous = catalog::latest(engine.state(), name)?.map(|r| r.id);
        match store.build(id, previous) {
            Ok(mut b) => {
                b.stats.usage = store_usage(&store, &b);
                let note = super::snapsync::snapshot_note(&b.stats);
                stages
                    .progress
                    .stage_done(Outcome::Ok, t0.elapsed(), Some(&note));
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
                let msg = e.to_string();
                stages
                    .progress
                    .stage_done(Outcome::Failed, t0.elapsed(), Some(&msg));
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
                        dsource: Some(name.to_string()),
                        job_id: Some(job),
                        hook: Some("snapshot".into()),
                        message: format!("the snapshot of VDB `{name}` failed: {msg}"),
                        detail: Value::Null,
                    },
                )?;
                failed.push("snapshot");
                None
            }
        }
    } else {
        failed.push("preSnapshot");
        stages
            .progress
            .stage_done(Outcome::Skipped, Duration::ZERO, Some("preSnapshot failed"));
        record_step(
            engine,
            job,
            "snapshot",
            Outcome::Skipped,
            Duration::ZERO,
            Some("preSnapshot failed".into()),
            Value::Null,
        )?;
        None
    };
    let post = hook(engine, &own, &tk, job, "postSnapshot", &mut stages)?;
    if !post.ok {
        failed.push("postSnapshot");
    }
    if !failed.is_empty() {
        if let Some(b) = built {
            store.discard(b)?;
        }
        let msg = format!(
            "snapshot of VDB `{name}` failed in {}; no snapshot was kept (`lunabox faults {name}` shows why)",
            failed.join(", ")
        );
        jobs::finish(engine.state(), job, false, Some(&msg), None)?;
        return report(engine, name, job, None, Some(&tk));
    }
    let built = built.expect("no step failed, so the snapshot was built");
    let stats = store.commit(built)?;
    let row = SnapshotRow {
        dsource: name.to_string(),
        id,
        job_id: Some(job),
        created_ms: now_ms(),
        toolkit_version: v.toolkit_version.clone(),
        metadata: post.value.clone(),
        stats: serde_json::to_value(&stats).unwrap_or(Value::Null),
    };
    engine.state_mut().write("committing a VDB snapshot", |tx| {
        tx.execute(
            "INSERT INTO snapshots (dsource, id, job_id, created_ms, toolkit_version, metadata, stats) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            rusqlite::params![row.dsource, row.id as i64, row.job_id, row.created_ms, row.toolkit_version, row.metadata.to_string(), row.stats.to_string()],
        )
        .map_err(EngineError::db("recording a snapshot"))?;
        tx.execute(
            "UPDATE vdbs SET next_snapshot = ?2 WHERE name = ?1",
            rusqlite::params![name, (id + 1) as i64],
        )
        .map_err(EngineError::db("advancing the snapshot id"))?;
        Ok(())
    })?;
    jobs::finish(engine.state(), job, true, None, Some(id))?;
    let mut r = report(engine, name, job, None, Some(&tk))?;
    r.snapshot = Some(row);
    Ok(r)
}

/// The usage of a built snapshot, or `None` (with a log line) when the
/// filesystem cannot say.
pub(crate) fn store_usage(
    store: &super::snapshots::SnapshotStore,
    b: &super::snapshots::Built,
) -> Option<Usage> {
    match super::storage::measure(&store.built_tree(b)) {
        Ok(u) => Some(u),
        Err(e) => {
            tracing::warn!(error = %e, "cannot measure the snapshot's space");
            None
        }
    }
}

/// One line of `vdb list`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VdbListing {
    /// The VDB record as JSON.
    #[serde(flatten)]
    pub vdb: Value,
    /// The space of its data now: exclusive (what it wrote since it was
    /// cloned) and shared with the snapshot.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
}

/// Every VDB, with the space its data uses.
pub fn list(engine: &Engine) -> Result<Vec<VdbListing>> {
    let mut out = Vec::new();
    for v in vdbs::list(engine.state())? {
        let tk = load_toolkit(engine, &v).ok();
        let usage = engine.store(&v.name).live_usage().ok();
        out.push(VdbListing {
            vdb: public_vdb(&v, tk.as_ref()),
            usage,
        });
    }
    Ok(out)
}
