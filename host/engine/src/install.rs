//! `toolkit install`: load a toolkit (directory or built JSON), validate it
//! (every rule, Lua syntax compiled in the sandbox), store its built form as
//! a new version, and upgrade the dSources linked with older versions: the
//! new version's `upgradeLinkedSource` script runs over each one's
//! parameters, the result must be valid against the new parameters schema,
//! and only then the dSource moves to the new version. A dSource whose
//! upgrade fails stays on its version, with a fault.

use std::cmp::Ordering;
use std::path::Path;
use std::time::Duration;

use serde::Serialize;
use serde_json::json;

use super::Engine;
use super::dsources;
use super::error::{EngineError, Result};
use super::faults::{self, NewFault};
use super::hookrun::{HookRunner, has_script};
use super::jobs;
use super::link::prepare_parameters;
use super::progress::Progress;
use super::toolkits::{self, StoreOutcome, compare_versions};
use lunabox_toolkit::{self, HookGroup, HookId};

/// What installing did.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InstallReport {
    /// The toolkit's name.
    pub name: String,
    /// The toolkit's version.
    pub version: String,
    /// `installed` or `unchanged` (identical version already installed).
    pub outcome: String,
    /// The validation warnings, as text.
    pub warnings: Vec<String>,
    /// One per dSource that was on an older version: its upgrade to this one.
    pub upgrades: Vec<UpgradeResult>,
}

/// The upgrade of one dSource.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UpgradeResult {
    /// The dSource.
    pub dsource: String,
    /// The toolkit version it was on.
    pub from: String,
    /// The toolkit version it was to move to.
    pub to: String,
    /// Whether it moved (`false`: it stays on `from`).
    pub ok: bool,
    /// The id of the `upgrade` job.
    pub job: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    /// Why it failed, when it did.
    pub error: Option<String>,
}

/// Install the toolkit at `path`.
pub fn install(
    engine: &mut Engine,
    path: &Path,
    lock_timeout: Duration,
    progress: &dyn Progress,
) -> Result<InstallReport> {
    let loaded = lunabox_toolkit::load(path).map_err(|source| EngineError::ToolkitLoad {
        toolkit: path.display().to_string(),
        source,
    })?;
    let runtime = engine.runtime()?;
    let report = lunabox_toolkit::validate::validate(&loaded, Some(&*runtime));
    if !report.ok() {
        let errs: Vec<String> = report.errors().map(|d| format!("  {d}")).collect();
        return Err(EngineError::Toolkit(format!(
            "`{}` is not a valid toolkit, nothing was installed:\n{}\n(`lunabox validate {}` shows the same report)",
            path.display(),
            errs.join("\n"),
            path.display()
        )));
    }
    let tk = &loaded.toolkit;
    let name = tk.name().unwrap_or_default().to_string();
    let version = tk.version().unwrap_or_default().to_string();
    let built = lunabox_toolkit::build::to_built_text(tk);
    let outcome = toolkits::store(
        engine.state(),
        &name,
        &version,
        tk.pretty_name().unwrap_or(&name),
        &built,
    )?;
    let mut out = InstallReport {
        name: name.clone(),
        version: version.clone(),
        outcome: match outcome {
            StoreOutcome::New => "installed".into(),
            StoreOutcome::Unchanged => "unchanged".into(),
        },
        warnings: report.warnings().map(|d| d.to_string()).collect(),
        upgrades: Vec::new(),
    };
    // Re-loading the stored form is what dSources will run.
    let stored = toolkits::load_installed(&toolkits::get(engine.state(), &name, &version)?)?;
    for ds in dsources::of_toolkit(engine.state(), &name)? {
        if compare_versions(&version, &ds.toolkit_version) != Ordering::Greater {
            continue;
        }
        out.upgrades.push(upgrade_dsource(
            engine,
            &ds.name,
            &stored,
            lock_timeout,
            progress,
        )?);
    }
    Ok(out)
}

/// Move dSource `name` to toolkit version `new` (caller checked it is newer).
fn upgrade_dsource(
    engine: &mut Engine,
    name: &str,
    new: &lunabox_toolkit::Toolkit,
    lock_timeout: Duration,
    progress: &dyn Progress,
) -> Result<UpgradeResult> {
    let _lock = engine.lock(name, "upgrade", lock_timeout, progress)?;
    let ds = dsources::get(engine.state(), name)?;
    let to = new.version().unwrap_or_default().to_string();
    let job = jobs::start(engine.state(), "upgrade", Some(name))?;
    jobs::set_detail(
        engine.state(),
        job,
        &json!({"from": ds.toolkit_version, "to": to}),
    )?;
    let hook = HookId::new(HookGroup::Upgrade, "upgradeLinkedSource");
    progress.note(&format!(
        "upgrading dSource `{name}` from {} {} to {to}",
        ds.toolkit, ds.toolkit_version
    ));
    let mut params = ds.parameters.clone();
    if has_script(new, &hook) {
        let runner = HookRunner::new(engine, &ds, new, job)?;
        let r = runner.run_hook(hook.clone(), params.clone(), Some(progress))?;
        if !r.ok {
            let msg = format!(
                "upgradeLinkedSource failed: {}; `{name}` stays on version {}",
                r.message.unwrap_or_default(),
                ds.toolkit_version
            );
            jobs::finish(engine.state(), job, false, Some(&msg), None)?;
            progress.note(&msg);
            return Ok(UpgradeResult {
                dsource: name.into(),
                from: ds.toolkit_version,
                to,
                ok: false,
                job,
                error: Some(msg),
            });
        }
        params = r.value;
    }
    match prepare_parameters(new, &params) {
        Ok(p) => {
            dsources::set_toolkit_version(engine.state(), name, &to, &p)?;
            jobs::finish(engine.state(), job, true, None, None)?;
            Ok(UpgradeResult {
                dsource: name.into(),
                from: ds.toolkit_version,
                to,
                ok: true,
                job,
                error: None,
            })
        }
        Err(e) => {
            let msg = format!(
                "after the upgrade, the parameters of `{name}` are not valid for version {to}: {e}; it stays on version {}",
                ds.toolkit_version
            );
            faults::post(
                engine.state(),
                &NewFault {
                    dsource: Some(name.into()),
                    job_id: Some(job),
                    hook: Some(hook.to_string()),
                    message: msg.clone(),
                    detail: serde_json::Value::Null,
                },
            )?;
            jobs::finish(engine.state(), job, false, Some(&msg), None)?;
            progress.note(&msg);
            Ok(UpgradeResult {
                dsource: name.into(),
                from: ds.toolkit_version,
                to,
                ok: false,
                job,
                error: Some(msg),
            })
        }
    }
}
