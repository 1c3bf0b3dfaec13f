//! Discovery: what to link, found on an environment by the toolkits' own
//! hooks.
//!
//! [`refresh`] runs, for the newest installed version of each toolkit that
//! has a `repositoryDiscovery` script, that hook on the environment (with
//! `remote` = the environment, its user and host), validates each item
//! against the toolkit's repository schema, then runs
//! `sourceConfigDiscovery` for each repository found and validates those
//! items against the source config schema. Items are stored keyed by their
//! identity fields (`repositoryIdentityFields`, `sourceConfigIdentityFields`;
//! the whole item when a toolkit names none), so a refresh updates, never
//! duplicates. An item a successful refresh no longer finds is marked
//! vanished (kept, so a dSource that uses it still shows where it came
//! from); one that comes back is live again. A discovery hook that fails
//! posts a fault against the environment, with its output, and leaves what
//! it would have refreshed as it was.

use std::sync::Arc;
use std::time::Instant;

use rusqlite::params;
use serde::Serialize;
use serde_json::{Value, json};

use super::Engine;
use super::environments::{Environment, EnvironmentRouter};
use super::error::{EngineError, Result};
use super::faults::{self, NewFault};
use super::link::check_against;
use super::state::{State, now_ms};
use super::toolkits;
use lunabox_sandbox::hook::{self as hooks, HookContext};
use lunabox_sandbox::{Limits, Outcome};
use lunabox_toolkit::{HookGroup, HookId, Toolkit};

/// One stored discovery item.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Item {
    /// The toolkit whose discovery hook found it.
    pub toolkit: String,
    /// `repository` or `sourceConfig`.
    pub kind: String,
    /// The value of the toolkit's name field (or the identity as text).
    pub name: String,
    /// For a source config: the name of its repository.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub repository: Option<String>,
    /// The item as the hook returned it (checked against its schema).
    pub value: Value,
    /// The last refresh did not find it (it is kept while a dSource may use it).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub vanished: bool,
    /// When it was first found (ms since the Unix epoch).
    pub found_ms: i64,
    /// When a refresh last found it (ms since the Unix epoch).
    pub seen_ms: i64,
    #[serde(skip)]
    identity: String,
    #[serde(skip)]
    repository_identity: String,
}

/// What one refresh did.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// The environment refreshed.
    pub environment: String,
    /// Items found for the first time (or back after vanishing).
    pub added: Vec<String>,
    /// Items found again whose contents changed.
    pub updated: Vec<String>,
    /// Items no longer found.
    pub vanished: Vec<String>,
    /// Discovery hooks that failed (each also a fault).
    pub failures: Vec<String>,
    /// Toolkits whose discovery ran.
    pub toolkits: Vec<String>,
}

/// The identity of `item`: its identity fields' values, as JSON text.
fn identity_of(item: &Value, fields: Option<&Value>) -> String {
    match fields.and_then(Value::as_array) {
        Some(f) if !f.is_empty() => {
            let vals: Vec<Value> = f
                .iter()
                .map(|k| {
                    k.as_str()
                        .and_then(|k| item.get(k))
                        .cloned()
                        .unwrap_or(Value::Null)
                })
                .collect();
            Value::Array(vals).to_string()
        }
        _ => item.to_string(),
    }
}

fn name_of(item: &Value, field: Option<&Value>, identity: &str) -> String {
    match field.and_then(Value::as_str).and_then(|f| item.get(f)) {
        Some(Value::String(s)) => s.clone(),
        Some(v) => v.to_string(),
        None => identity.to_string(),
    }
}

/// Run discovery on `env` (see the module doc).
pub fn refresh(engine: &Engine, env: &Environment) -> Result<Report> {
    let mut report = Report {
        environment: env.name.clone(),
        ..Report::default()
    };
    let stamp = now_ms();
    let mut latest: Vec<toolkits::Installed> = Vec::new();
    for t in toolkits::list(engine.state())? {
        // `list` is sorted by name, then version: keep the last of each.
        if latest.last().is_some_and(|l| l.name == t.name) {
            latest.pop();
        }
        latest.push(t);
    }
    let executor: Arc<dyn lunabox_run::Executor> = Arc::new(EnvironmentRouter::new(
        std::slice::from_ref(env),
        &env.name,
        engine.config().executors.as_ref(),
    ));
    for inst in latest {
        let tk = toolkits::load_installed(&inst)?;
        let repo_hook = HookId::new(HookGroup::Discovery, "repositoryDiscovery");
        if !super::hookrun::has_script(&tk, &repo_hook) {
            continue;
        }
        report.toolkits.push(inst.name.clone());
        let remote =
            json!({"environment": env.name, "environmentUser": env.user, "host": env.host});
        let repos = match run_discovery(engine, &tk, &repo_hook, &remote, None, &executor) {
            Ok(v) => v,
            Err(m) => {
                fail(engine, env, &tk, &repo_hook, m, &mut report)?;
                continue;
            }
        };
        let disc = tk.discovery();
        let field = |k: &str| disc.and_then(|d| d.get(k));
        let mut repos_ok = Vec::new();
        for r in repos {
            if let Some(s) = tk.repository_schema()
                && let Err(m) = check_against(s, &r, "discovered repository")
            {
                fail(
                    engine,
                    env,
                    &tk,
                    &repo_hook,
                    (m, json!({"item": r})),
                    &mut report,
                )?;
                continue;
            }
            let id = identity_of(&r, field("repositoryIdentityFields"));
            let name = name_of(&r, field("repositoryNameField"), &id);
            store(
                engine.state(),
                env,
                &inst.name,
                "repository",
                "",
                &id,
                &name,
                &r,
                stamp,
                &mut report,
            )?;
            repos_ok.push((id, name, r));
        }
        // Repositories not seen now vanished (the hook succeeded).
        vanish(
            engine.state(),
            env,
            &inst.name,
            "repository",
            None,
            stamp,
            &mut report,
        )?;

        let sc_hook = HookId::new(HookGroup::Discovery, "sourceConfigDiscovery");
        if !super::hookrun::has_script(&tk, &sc_hook) {
            continue;
        }
        for (rid, rname, repo) in &repos_ok {
            let configs = match run_discovery(engine, &tk, &sc_hook, &remote, Some(repo), &executor)
            {
                Ok(v) => v,
                Err(m) => {
                    fail(engine, env, &tk, &sc_hook, m, &mut report)?;
                    continue;
                }
            };
            for c in configs {
                if let Some(s) = tk.source_config_schema()
                    && let Err(m) = check_against(s, &c, "discovered source config")
                {
                    fail(
                        engine,
                        env,
                        &tk,
                        &sc_hook,
                        (m, json!({"item": c, "repository": rname})),
                        &mut report,
                    )?;
                    continue;
                }
                let id = identity_of(&c, field("sourceConfigIdentityFields"));
                let name = name_of(&c, field("sourceConfigNameField"), &id);
                store(
                    engine.state(),
                    env,
                    &inst.name,
                    "sourceConfig",
                    rid,
                    &id,
                    &name,
                    &c,
                    stamp,
                    &mut report,
                )?;
            }
            vanish(
                engine.state(),
                env,
                &inst.name,
                "sourceConfig",
                Some(rid),
                stamp,
                &mut report,
            )?;
        }
        // Source configs of repositories that vanished vanish too.
        let gone: Vec<String> = list(engine.state(), &env.name)?
            .into_iter()
            .filter(|i| i.toolkit == inst.name && i.kind == "repository" && i.vanished)
            .map(|i| i.identity)
            .collect();
        for rid in gone {
            vanish(
                engine.state(),
                env,
                &inst.name,
                "sourceConfig",
                Some(&rid),
                stamp,
                &mut report,
            )?;
        }
    }
    super::environments::mark_refreshed(engine.state(), &env.name, stamp)?;
    Ok(report)
}

type Failure = (String, Value);

fn run_discovery(
    engine: &Engine,
    tk: &Toolkit,
    hook: &HookId,
    remote: &Value,
    repository: Option<&Value>,
    executor: &Arc<dyn lunabox_run::Executor>,
) -> std::result::Result<Vec<Value>, Failure> {
    let runtime = engine.runtime().map_err(|e| (e.to_string(), Value::Null))?;
    let t0 = Instant::now();
    let context = HookContext {
        remote: Some(remote.clone()),
        repository: repository.cloned(),
        ..HookContext::default()
    };
    let limits = Limits {
        timeout: engine
            .hook_timeouts()
            .get(hook)
            .unwrap_or_else(|| engine.config().default_timeout(hook)),
        ..engine.config().limits.clone()
    };
    let request = hooks::request(tk, hook, &context, None)
        .map_err(|e| (e.to_string(), Value::Null))?
        .with_executor(executor.clone())
        .with_limits(limits);
    let request = match &engine.config().tenant {
        Some(t) => request.with_tenant(t),
        None => request,
    };
    let run = runtime.run_hook(request);
    tracing::debug!(hook = %hook, elapsed = ?t0.elapsed(), "discovery hook ran");
    match &run.result {
        Outcome::Value(Value::Array(items)) => Ok(items.clone()),
        Outcome::Value(Value::Null) => Ok(Vec::new()),
        Outcome::Value(other) => Err((
            format!(
                "returned {}, not an array of items",
                lunabox_toolkit::text::quote(&other.to_string(), 200)
            ),
            Value::Null,
        )),
        end => {
            let mut detail = json!({"kind": end.kind_json()});
            if let Some(rf) = end.fault() {
                detail["function"] = json!(rf.function);
                detail["exitCode"] = json!(rf.exit_code);
                detail["stdout"] = json!(rf.stdout);
                detail["stderr"] = json!(rf.stderr);
            }
            if let Some(tb) = end.traceback() {
                detail["traceback"] = json!(tb);
            }
            detail["log"] = serde_json::to_value(&run.log).unwrap_or(Value::Null);
            Err((end.message().unwrap_or("failed").to_string(), detail))
        }
    }
}

fn fail(
    engine: &Engine,
    env: &Environment,
    tk: &Toolkit,
    hook: &HookId,
    (message, mut detail): Failure,
    report: &mut Report,
) -> Result<()> {
    let msg = format!(
        "discovery on environment `{}`: {} {} {hook} failed: {message}",
        env.name,
        tk.name().unwrap_or_default(),
        tk.version().unwrap_or_default()
    );
    if !detail.is_object() {
        detail = json!({});
    }
    detail["environment"] = json!(env.name);
    detail["toolkit"] = json!(tk.name());
    detail["version"] = json!(tk.version());
    faults::post(
        engine.state(),
        &NewFault {
            dsource: None,
            job_id: None,
            hook: Some(hook.to_string()),
            message: msg.clone(),
            detail,
        },
    )?;
    report.failures.push(msg);
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn store(
    state: &State,
    env: &Environment,
    toolkit: &str,
    kind: &str,
    repository: &str,
    identity: &str,
    name: &str,
    value: &Value,
    stamp: i64,
    report: &mut Report,
) -> Result<()> {
    let db = EngineError::db("storing a discovered item");
    let old: Option<(String, Option<i64>)> = state
        .conn()
        .query_row(
            "SELECT value, vanished_ms FROM discovered WHERE environment = ?1 AND toolkit = ?2 AND kind = ?3 AND repository = ?4 AND identity = ?5",
            params![env.name, toolkit, kind, repository, identity],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .map(Some)
        .or_else(|e| match e {
            rusqlite::Error::QueryReturnedNoRows => Ok(None),
            e => Err(e),
        })
        .map_err(EngineError::db("reading a discovered item"))?;
    let text = value.to_string();
    let label = format!("{toolkit} {kind} {name}");
    match &old {
        None => {
            state
                .conn()
                .execute(
                    "INSERT INTO discovered (environment, toolkit, kind, repository, identity, name, value, found_ms, seen_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8)",
                    params![env.name, toolkit, kind, repository, identity, name, text, stamp],
                )
                .map_err(db)?;
            report.added.push(label);
        }
        Some((v, vanished)) => {
            state
                .conn()
                .execute(
                    "UPDATE discovered SET name = ?6, value = ?7, seen_ms = ?8, vanished_ms = NULL WHERE environment = ?1 AND toolkit = ?2 AND kind = ?3 AND repository = ?4 AND identity = ?5",
                    params![env.name, toolkit, kind, repository, identity, name, text, stamp],
                )
                .map_err(db)?;
            if vanished.is_some() {
                report.added.push(label);
            } else if *v != text {
                report.updated.push(label);
            }
        }
    }
    Ok(())
}

fn vanish(
    state: &State,
    env: &Environment,
    toolkit: &str,
    kind: &str,
    repository: Option<&str>,
    stamp: i64,
    report: &mut Report,
) -> Result<()> {
    let db = EngineError::db("marking vanished items");
    let mut st = state
        .conn()
        .prepare(
            "SELECT name FROM discovered WHERE environment = ?1 AND toolkit = ?2 AND kind = ?3 AND (?4 IS NULL OR repository = ?4) AND seen_ms < ?5 AND vanished_ms IS NULL",
        )
        .map_err(EngineError::db("marking vanished items"))?;
    let names: Vec<String> = st
        .query_map(params![env.name, toolkit, kind, repository, stamp], |r| {
            r.get(0)
        })
        .map_err(EngineError::db("marking vanished items"))?
        .collect::<rusqlite::Result<_>>()
        .map_err(EngineError::db("marking vanished items"))?;
    state
        .conn()
        .execute(
            "UPDATE discovered SET vanished_ms = ?5 WHERE environment = ?1 AND toolkit = ?2 AND kind = ?3 AND (?4 IS NULL OR repository = ?4) AND seen_ms < ?5 AND vanished_ms IS NULL",
            params![env.name, toolkit, kind, repository, stamp],
        )
        .map_err(db)?;
    report
        .vanished
        .extend(names.into_iter().map(|n| format!("{toolkit} {kind} {n}")));
    Ok(())
}

/// Everything discovered on environment `env`, repositories first.
pub fn list(state: &State, env: &str) -> Result<Vec<Item>> {
    let mut st = state
        .conn()
        .prepare(
            "SELECT d.toolkit, d.kind, d.name, d.value, d.vanished_ms, d.found_ms, d.seen_ms, d.identity, d.repository, r.name \
             FROM discovered d LEFT JOIN discovered r ON r.environment = d.environment AND r.toolkit = d.toolkit \
             AND r.kind = 'repository' AND r.identity = d.repository AND d.kind = 'sourceConfig' \
             WHERE d.environment = ?1 ORDER BY d.toolkit, d.kind DESC, d.name",
        )
        .map_err(EngineError::db("listing discovered items"))?;
    st.query_map([env], |r| {
        let value: String = r.get(3)?;
        let vanished: Option<i64> = r.get(4)?;
        Ok(Item {
            toolkit: r.get(0)?,
            kind: r.get(1)?,
            name: r.get(2)?,
            value: serde_json::from_str(&value).unwrap_or(Value::Null),
            vanished: vanished.is_some(),
            found_ms: r.get(5)?,
            seen_ms: r.get(6)?,
            identity: r.get(7)?,
            repository_identity: r.get(8)?,
            repository: r.get(9)?,
        })
    })
    .map_err(EngineError::db("listing discovered items"))?
    .collect::<rusqlite::Result<Vec<_>>>()
    .map_err(EngineError::db("listing discovered items"))
}

/// The discovered source config named `name` of `toolkit` on `env`, and
/// its repository: `(config, repository)`. `name` may be `REPO/NAME` when
/// two repositories have a source config of that name.
pub fn source_config(
    state: &State,
    env: &str,
    toolkit: &str,
    name: &str,
) -> Result<(Value, Value)> {
    let items = list(state, env)?;
    let (repo_name, sc_name) = match name.rsplit_once('/') {
        Some((r, n)) if items.iter().any(|i| i.kind == "repository" && i.name == r) => (Some(r), n),
        _ => (None, name),
    };
    let found: Vec<&Item> = items
        .iter()
        .filter(|i| {
            i.toolkit == toolkit
                && i.kind == "sourceConfig"
                && i.name == sc_name
                && repo_name.is_none_or(|r| i.repository.as_deref() == Some(r))
        })
        .collect();
    let known = || {
        let names: Vec<String> = items
            .iter()
            .filter(|i| i.toolkit == toolkit && i.kind == "sourceConfig" && !i.vanished)
            .map(|i| i.name.clone())
            .collect();
        if names.is_empty() {
            format!(
                "discovery found no source configs of toolkit `{toolkit}` there (`lunabox env refresh {env}` runs it again)"
            )
        } else {
            format!("discovered: {}", names.join(", "))
        }
    };
    let sc = match found.as_slice() {
        [] => {
            return Err(EngineError::NotFound(format!(
                "environment `{env}` has no discovered source config `{name}` of toolkit `{toolkit}`; {}",
                known()
            )));
        }
        [one] => *one,
        many => {
            return Err(EngineError::Invalid(format!(
                "source config `{name}` was discovered under several repositories ({}); name it as REPOSITORY/{name}",
                many.iter()
                    .filter_map(|i| i.repository.clone())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
    };
    if sc.vanished {
        return Err(EngineError::Invalid(format!(
            "source config `{name}` of toolkit `{toolkit}` on environment `{env}` vanished (the last discovery no longer found it); {}",
            known()
        )));
    }
    let repo = items
        .iter()
        .find(|i| {
            i.toolkit == toolkit && i.kind == "repository" && i.identity == sc.repository_identity
        })
        .map(|i| i.value.clone())
        .unwrap_or(Value::Null);
    Ok((sc.value.clone(), repo))
}
