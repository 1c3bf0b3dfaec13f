//! Linking: check everything the user gave (toolkit, environments, users,
//! config, repository, parameters with defaults applied) before creating
//! anything; then provide the dSource's storage, honour a staged
//! `mountSpec` hook, create the dSource enabled, and run the initial
//! SnapSync (unless `--no-sync`), all in one `link` job.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;
use serde_json::{Map, Value, json};

use super::Engine;
use super::catalog::SnapshotRow;
use super::dsources::{self, DSource, SourceKind};
use super::environments::{self, check_name};
use super::error::{EngineError, Result};
use super::hookrun::{HookRunner, has_script};
use super::jobs::{self, Job, Outcome};
use super::progress::Progress;
use super::snapshots::force_remove;
use super::snapsync;
use super::state::now_ms;
use super::toolkits;
use lunabox_toolkit::hook::params;
use lunabox_toolkit::{HookGroup, HookId, LinkedKind, Toolkit};

/// What to link.
#[derive(Debug, Clone, Default)]
pub struct LinkRequest {
    /// The new dSource's name.
    pub name: String,
    /// Toolkit name, optionally `name@version` (default: newest installed).
    pub toolkit: String,
    /// The source environment's name.
    pub environment: String,
    /// The staging environment's name (default: the source environment; staged
    /// sources only).
    pub staging_environment: Option<String>,
    /// The user on the source environment (default: the environment's user).
    pub user: Option<String>,
    /// The user on the staging environment (default: that environment's user).
    pub staging_user: Option<String>,
    /// The source config (`null`: `{}`); checked against the toolkit's schema.
    pub config: Value,
    /// The repository (`null`: `{}`); checked against the toolkit's schema.
    pub repository: Value,
    /// A source config discovered on the environment, by its name (the
    /// config and its repository come from discovery; `config` and
    /// `repository` must then be null).
    pub source_config: Option<String>,
    /// Parameters as given (before defaults).
    pub parameters: Map<String, Value>,
    /// Skip the initial SnapSync.
    pub no_sync: bool,
    /// How often the daemon runs SnapSync (`None`: no schedule).
    pub sync_every: Option<Duration>,
    /// Keep at most this many snapshots (`None`: no limit).
    pub keep: Option<u32>,
    /// How long to wait for the dSource's lock if another operation holds it.
    pub lock_timeout: Duration,
}

/// What linking did.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LinkReport {
    /// The new dSource (password parameters masked); absent when linking
    /// failed before it was created.
    pub dsource: Option<Value>,
    /// The `link` job (with its steps).
    pub job: Job,
    /// The snapshot the initial SnapSync took, if it ran and succeeded.
    pub snapshot: Option<SnapshotRow>,
}

impl LinkReport {
    /// Whether linking (and the initial SnapSync) succeeded.
    pub fn ok(&self) -> bool {
        self.job.state == jobs::JobState::Succeeded
    }
}

/// A dSource as JSON with its password parameters masked.
pub fn public_dsource(ds: &DSource, tk: Option<&Toolkit>) -> Value {
    let mut v = serde_json::to_value(ds).unwrap_or(Value::Null);
    let schema = tk
        .and_then(|t| t.linked_parameters_schema())
        .cloned()
        .unwrap_or(Value::Null);
    let secrets = params::collect_secrets(&schema, &ds.parameters);
    v["parameters"] = params::mask_json(&ds.parameters, &secrets);
    v
}

/// Validate `value` against `schema` (draft-04); one message naming every
/// offending field.
pub fn check_against(schema: &Value, value: &Value, what: &str) -> std::result::Result<(), String> {
    let secrets = params::collect_secrets(schema, value);
    params::schema_violations(schema, value, &secrets, &Default::default()).map_err(|v| {
        format!(
            "the {what} does not match the toolkit's schema: {}",
            v.join("; ")
        )
    })
}

/// The linking parameters with defaults filled in, valid against the
/// toolkit's `linkedSourceDefinition.parameters`; an error naming each
/// offending field otherwise.
pub fn prepare_parameters(tk: &Toolkit, given: &Value) -> std::result::Result<Value, String> {
    let schema = tk
        .linked_parameters_schema()
        .cloned()
        .unwrap_or_else(|| json!({"type": "object"}));
    let mut v = if given.is_null() {
        json!({})
    } else {
        given.clone()
    };
    params::apply_defaults(&schema, &mut v);
    check_against(&schema, &v, "parameters")?;
    Ok(v)
}

/// Turn `--param KEY=TEXT` into a JSON value of the type the schema gives
/// KEY (integer, number, boolean, object, array; text otherwise).
pub fn parse_param(tk: &Toolkit, key: &str, text: &str) -> Result<Value> {
    parse_param_in(tk.linked_parameters_schema(), key, text)
}

/// [`parse_param`] against the parameters schema `schema` (linking or
/// provisioning).
pub fn parse_param_in(schema: Option<&Value>, key: &str, text: &str) -> Result<Value> {
    let ty = schema
        .and_then(|s| {
            s.pointer(&format!(
                "/properties/{}/type",
                key.replace('~', "~0").replace('/', "~1")
            ))
        })
        .and_then(Value::as_str)
        .unwrap_or("string");
    let bad = |what: &str| {
        EngineError::Invalid(format!(
            "--param {key}={text}: `{key}` is {what} in the toolkit's parameters schema, and `{text}` is not one"
        ))
    };
    Ok(match ty {
        "integer" => json!(text.trim().parse::<i64>().map_err(|_| bad("an integer"))?),
        "number" => json!(text.trim().parse::<f64>().map_err(|_| bad("a number"))?),
        "boolean" => match text.trim() {
            "true" | "yes" | "1" => json!(true),
            "false" | "no" | "0" => json!(false),
            _ => return Err(bad("a boolean (true/false)")),
        },
        "object" | "array" => {
            lunabox_toolkit::json::parse(text).map_err(|_| bad(&format!("an {ty} (JSON)")))?
        }
        _ => json!(text),
    })
}

/// Link a dSource (see the module doc).
pub fn link(engine: &mut Engine, req: &LinkRequest, progress: &dyn Progress) -> Result<LinkReport> {
    // 1. Check everything; create nothing.
    check_name("dSource", &req.name)?;
    if dsources::get_opt(engine.state(), &req.name)?.is_some() {
        return Err(EngineError::Conflict(format!(
            "a dSource named `{}` already exists; `lunabox status {}` shows it",
            req.name, req.name
        )));
    }
    if super::vdbs::get_opt(engine.state(), &req.name)?.is_some() {
        return Err(EngineError::Conflict(format!(
            "`{}` is the name of a VDB (dSources and VDBs share names); pick another",
            req.name
        )));
    }
    let inst = match req.toolkit.split_once('@') {
        Some((n, v)) => toolkits::get(engine.state(), n, v)?,
        None => toolkits::latest(engine.state(), &req.toolkit)?,
    };
    let tk = toolkits::load_installed(&inst)?;
    let kind = match tk.linked_kind() {
        Some(LinkedKind::Staged) => SourceKind::Staged,
        Some(LinkedKind::Direct) => SourceKind::Direct,
        None => {
            return Err(EngineError::Toolkit(format!(
                "toolkit `{}` {} has no linkedSourceDefinition.type; it cannot link data sources",
                inst.name, inst.version
            )));
        }
    };
    let env = environments::get(engine.state(), &req.environment)?;
    let staging = match &req.staging_environment {
        Some(s) => environments::get(engine.state(), s)?,
        None => env.clone(),
    };
    if kind == SourceKind::Direct && req.staging_environment.is_some() {
        return Err(EngineError::Invalid(format!(
            "toolkit `{}` links direct sources, which have no staging environment; leave out --staging-environment",
            inst.name
        )));
    }
    let (discovered_config, discovered_repo) = match &req.source_config {
        Some(sc) => {
            if !req.config.is_null() || !req.repository.is_null() {
                return Err(EngineError::Invalid(
                    "--source-config takes the config and its repository from discovery; leave out --config and --repository".into(),
                ));
            }
            let (c, r) =
                super::discovery::source_config(engine.state(), &env.name, &inst.name, sc)?;
            (c, r)
        }
        None => (req.config.clone(), req.repository.clone()),
    };
    let req = &LinkRequest {
        config: discovered_config,
        repository: discovered_repo,
        ..req.clone()
    };
    let config = if req.config.is_null() {
        json!({})
    } else {
        req.config.clone()
    };
    let repository = if req.repository.is_null() {
        json!({})
    } else {
        req.repository.clone()
    };
    if let Some(s) = tk.source_config_schema() {
        check_against(s, &config, "source config").map_err(EngineError::Invalid)?;
    }
    if let Some(s) = tk.repository_schema() {
        check_against(s, &repository, "repository").map_err(EngineError::Invalid)?;
    }
    let parameters =
        prepare_parameters(&tk, &Value::Object(req.parameters.clone())).map_err(|e| {
            EngineError::Invalid(format!("{e} (toolkit `{}` {})", inst.name, inst.version))
        })?;
    let live = engine.store(&req.name).live_dir();
    let data_directory = match kind {
        SourceKind::Staged => live.display().to_string(),
        SourceKind::Direct => match config.get("path").and_then(Value::as_str) {
            Some(p) => p.to_string(),
            None => {
                return Err(EngineError::Invalid(format!(
                    "toolkit `{}` links direct sources: the source config needs a `path` (the data to sync), e.g. --config FILE.json with {{\"path\": \"/data\"}}",
                    inst.name
                )));
            }
        },
    };

    // 2. Storage, mountSpec, the dSource.
    let _lock = engine.lock(&req.name, "link", req.lock_timeout, progress)?;
    let storage = engine.paths().dsource_storage(&req.name);
    // Debris of an earlier link of this name that never created the dSource.
    force_remove(&storage).map_err(|e| EngineError::io("cannot clear old storage", &storage, e))?;
    let store = engine.store(&req.name);
    store.create()?;
    if kind == SourceKind::Staged
        && staging.kind != environments::EnvKind::Local
        && let Err(m) = storage_reachable(
            engine.config().executors.as_ref(),
            &staging,
            &storage,
            req.staging_user.as_deref(),
        )
    {
        let _ = force_remove(&storage);
        return Err(EngineError::Invalid(m));
    }
    if engine.storage().driver == super::storage::DriverKind::Copy {
        progress.note(&super::storage::copy_warning(&engine.storage().filesystem));
    }
    let mut ds = DSource {
        name: req.name.clone(),
        guid: dsources::new_guid(),
        toolkit: inst.name.clone(),
        toolkit_version: inst.version.clone(),
        kind,
        environment: env.name.clone(),
        environment_user: req.user.clone().unwrap_or(env.user.clone()),
        staging_environment: staging.name.clone(),
        staging_user: req.staging_user.clone().unwrap_or(staging.user.clone()),
        config,
        repository,
        parameters,
        data_directory,
        mount_path: None,
        enabled: true,
        needs_resync: kind == SourceKind::Staged,
        next_snapshot: 1,
        sync_every_ms: req.sync_every.map(|d| d.as_millis() as i64),
        keep: req.keep,
        last_sync_ms: None,
        last_status: None,
        last_status_ms: None,
        created_ms: now_ms(),
        timeouts: super::deadlines::HookTimeouts::none(),
    };
    if kind == SourceKind::Staged
        && staging.kind == environments::EnvKind::Local
        && let Err(m) = give_to_staging_user(&live, &ds.staging_user)
    {
        let _ = force_remove(&storage);
        return Err(EngineError::Invalid(m));
    }
    let job = jobs::start(engine.state(), "link", Some(&req.name))?;
    let mount_hook = HookId::new(HookGroup::Staged, "mountSpec");
    let mut done = 0;
    if kind == SourceKind::Staged && has_script(&tk, &mount_hook) {
        let total = if req.no_sync { 1 } else { 5 };
        progress.stage(1, total, "mountSpec");
        done = 1;
        let r = HookRunner::new(engine, &ds, &tk, job)?.run("mountSpec", Some(progress))?;
        let mounted = if r.ok {
            mount(&live, r.value.as_str().unwrap_or_default())
        } else {
            Err(r.message.clone().unwrap_or_default())
        };
        match mounted {
            Ok(path) => {
                progress.stage_done(
                    Outcome::Ok,
                    r.elapsed,
                    Some(&format!("storage at {}", path.display())),
                );
                ds.mount_path = Some(path.display().to_string());
                ds.data_directory = path.display().to_string();
            }
            Err(msg) => {
                progress.stage_done(Outcome::Failed, r.elapsed, Some(&msg));
                let msg = format!(
                    "mountSpec failed: {msg}; dSource `{}` was not created",
                    req.name
                );
                jobs::finish(engine.state(), job, false, Some(&msg), None)?;
                let _ = force_remove(&storage);
                return Ok(LinkReport {
                    dsource: None,
                    job: jobs::get(engine.state(), job)?,
                    snapshot: None,
                });
            }
        }
    }
    dsources::insert(engine.state(), &ds)?;
    progress.note(&format!(
        "linked dSource `{}` ({} source, toolkit {} {}, guid {})",
        ds.name,
        ds.kind.as_str(),
        ds.toolkit,
        ds.toolkit_version,
        ds.guid
    ));
    let (job_out, snapshot) = if req.no_sync {
        jobs::finish(engine.state(), job, true, None, None)?;
        (jobs::get(engine.state(), job)?, None)
    } else {
        let r = snapsync::run_locked(engine, &ds, &tk, job, false, done, progress)?;
        (r.job, r.snapshot)
    };
    let ds = dsources::get(engine.state(), &ds.name)?;
    Ok(LinkReport {
        dsource: Some(public_dsource(&ds, Some(&tk))),
        job: job_out,
        snapshot,
    })
}

/// Whether `staging` (a remote host) sees the dSource's storage at the
/// same path (as when it mounts the engine's storage over NFS): a marker
/// file made here must be visible there.
fn storage_reachable(
    factory: &dyn environments::ExecutorFactory,
    staging: &environments::Environment,
    storage: &Path,
    user: Option<&str>,
) -> std::result::Result<(), String> {
    let marker = storage.join(format!(".reachable-{}", dsources::new_guid()));
    std::fs::write(&marker, b"").map_err(|e| format!("cannot write {}: {e}", marker.display()))?;
    let mut call = lunabox_run::RunCall::new(
        lunabox_run::RunFunction::RunBash,
        "test -e \"$LUNABOX_MARKER\"",
    );
    call.target.user = user.map(str::to_string);
    call.variables
        .insert("LUNABOX_MARKER".into(), marker.display().to_string());
    let ctx = lunabox_run::RunContext {
        deadline: Some(std::time::Instant::now() + Duration::from_secs(60)),
        ..Default::default()
    };
    let r = factory.executor_for(staging).execute(&call, &ctx);
    let _ = std::fs::remove_file(&marker);
    match r {
        Ok(raw) if raw.exit_code == 0 => Ok(()),
        Ok(_) => Err(format!(
            "the staging environment `{}` ({}) does not see the dSource's storage at {}: a staged source's storage must be \
             reachable on its staging host at the same path (mount the engine's storage there, e.g. over NFS, \
             or stage on this machine); nothing was linked",
            staging.name,
            staging.host,
            storage.display()
        )),
        Err(e) => Err(format!(
            "cannot check that the staging environment `{}` sees the dSource's storage: {e}; nothing was linked",
            staging.name
        )),
    }
}

/// On this machine, the staged source's storage is the staging user's, as
/// an NFS export is its mounting user's: when lunabox runs as root and the
/// staging user is another account, the (empty, new) live directory is
/// given to that user, so the staging database can write into it (e.g.
/// PostgreSQL, which refuses to run as root). Its parents stay root's.
fn give_to_staging_user(live: &Path, user: &str) -> std::result::Result<(), String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Ok(());
    }
    let account = match lunabox_run::executors::account::by_name(user) {
        Ok(Some(a)) => a,
        Ok(None) => {
            return Err(format!(
                "there is no user `{user}` on this machine to give the dSource's storage to; pass an existing user to --staging-user"
            ));
        }
        Err(e) => return Err(format!("cannot look up user `{user}`: {e}")),
    };
    if account.uid == 0 {
        return Ok(());
    }
    std::os::unix::fs::chown(live, Some(account.uid), Some(account.gid)).map_err(|e| {
        format!(
            "cannot give the dSource's storage {} to the staging user `{user}`: {e}; nothing was linked",
            live.display()
        )
    })
}

/// Make the live storage appear at `path` (what mountSpec returned): a
/// symlink, the local stand-in for an NFS mount.
fn mount(live: &Path, path: &str) -> std::result::Result<PathBuf, String> {
    let p = PathBuf::from(path);
    if !p.is_absolute() {
        return Err(format!(
            "mountSpec returned `{path}`, which is not an absolute path"
        ));
    }
    match std::fs::symlink_metadata(&p) {
        Ok(m)
            if m.file_type().is_symlink()
                && std::fs::read_link(&p).ok().as_deref() == Some(live) =>
        {
            return Ok(p);
        }
        Ok(m)
            if m.is_dir()
                && std::fs::read_dir(&p)
                    .map(|mut d| d.next().is_none())
                    .unwrap_or(false) =>
        {
            std::fs::remove_dir(&p).map_err(|e| format!("cannot use `{path}`: {e}"))?;
        }
        Ok(_) => {
            return Err(format!(
                "mountSpec returned `{path}`, which already exists and is not empty; the storage is mounted only at a free path"
            ));
        }
        Err(_) => {}
    }
    if let Some(parent) = p.parent() {
        std::fs::create_dir_all(parent)
            .map_err(|e| format!("cannot create `{}`: {e}", parent.display()))?;
    }
    std::os::unix::fs::symlink(live, &p)
        .map_err(|e| format!("cannot mount the storage at `{path}`: {e}"))?;
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_against_names_every_field() {
        let schema = json!({"type": "object", "properties": {
            "port": {"type": "integer", "default": 1234},
            "name": {"type": "string"}
        }, "required": ["name"], "additionalProperties": false});
        let err = check_against(&schema, &json!({"port": "no"}), "parameters").unwrap_err();
        assert!(err.contains("port"), "{err}");
        assert!(err.contains("name"), "{err}");
        assert!(check_against(&schema, &json!({"name": "x"}), "parameters").is_ok());
    }
}
