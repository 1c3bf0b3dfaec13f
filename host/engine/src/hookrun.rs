//! Running one hook of a dSource inside a job: builds the hook's context
//! (parameters, config, repository, `source`), picks the executor through
//! the dSource's environments, runs it via [`lunabox_sandbox::hook::request`] and the runtime,
//! records the step (log, Run-call transcript, stats, value) and posts a
//! fault when it fails.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::Engine;
use super::dsources::{DSource, SourceKind};
use super::environments::{self, EnvironmentRouter};
use super::error::Result;
use super::faults::{self, NewFault};
use super::jobs::{self, Outcome, Step};
use super::progress::Progress;
use super::state::now_ms;
use lunabox_run::Executor;
use lunabox_sandbox::hook::{self as hooks, HookContext};
use lunabox_sandbox::{Limits, Outcome as HookEnd};
use lunabox_toolkit::{HookGroup, HookId, Toolkit};

/// How one hook step ended.
#[derive(Debug, Clone)]
pub struct StepResult {
    /// The sandbox's outcome, unchanged (a hook that could not be set up,
    /// e.g. parameters failing their schema, is a host outcome).
    pub outcome: HookEnd,
    /// Whether the hook returned a value that passed its kind's check.
    pub ok: bool,
    /// What the hook returned (after its kind's check), `null` on failure.
    pub value: Value,
    /// Why it failed.
    pub message: Option<String>,
    /// How long the hook ran (wall clock).
    pub elapsed: Duration,
}

/// What a hook runs for: a dSource, or a VDB (virtual hooks). Its
/// context, its environments and where its data is.
#[derive(Debug, Clone)]
pub struct HookSubject {
    /// The dSource's or VDB's name (jobs and faults are filed under it).
    pub name: String,
    /// The hooks' group: staged, direct or virtual.
    pub group: HookGroup,
    /// The environments its Run calls may name (the first is the default).
    pub environments: Vec<String>,
    /// The parameters its hooks get (`parameters`).
    pub parameters: Value,
    /// Its source config (`sourceConfig`/`config`).
    pub config: Value,
    /// Its repository (`repository`).
    pub repository: Value,
    /// The `source` global.
    pub source: Value,
    /// Its own hook deadlines (policy).
    pub timeouts: super::deadlines::HookTimeouts,
    /// Its live data (RunSync's target).
    pub data_directory: PathBuf,
    /// `snapshotJson` (virtual configure and reconfigure).
    pub snapshot_json: Option<String>,
}

impl HookSubject {
    /// The subject of dSource `ds`'s hooks.
    pub fn of_dsource(engine: &Engine, ds: &DSource) -> HookSubject {
        let mut environments = vec![if ds.kind == SourceKind::Staged {
            ds.staging_environment.clone()
        } else {
            ds.environment.clone()
        }];
        for e in [&ds.environment, &ds.staging_environment] {
            if !environments.contains(e) {
                environments.push(e.clone());
            }
        }
        HookSubject {
            name: ds.name.clone(),
            group: match ds.kind {
                SourceKind::Staged => HookGroup::Staged,
                SourceKind::Direct => HookGroup::Direct,
            },
            environments,
            parameters: ds.parameters.clone(),
            config: ds.config.clone(),
            repository: ds.repository.clone(),
            source: ds.source_global(),
            timeouts: ds.timeouts.clone(),
            data_directory: engine.paths().dsource_storage(&ds.name).join("data"),
            snapshot_json: None,
        }
    }
}

/// Runs the hooks of one dSource (or VDB) for one job.
pub struct HookRunner<'a> {
    engine: &'a Engine,
    subject: HookSubject,
    toolkit: &'a Toolkit,
    executor: Arc<dyn Executor>,
    job: i64,
    limits: Limits,
}

impl<'a> HookRunner<'a> {
    /// A runner for `ds` (linked with `toolkit`) recording into `job`.
    pub fn new(
        engine: &'a Engine,
        ds: &'a DSource,
        toolkit: &'a Toolkit,
        job: i64,
    ) -> Result<Self> {
        HookRunner::for_subject(engine, HookSubject::of_dsource(engine, ds), toolkit, job)
    }

    /// A runner for `subject` recording into `job`.
    pub fn for_subject(
        engine: &'a Engine,
        subject: HookSubject,
        toolkit: &'a Toolkit,
        job: i64,
    ) -> Result<Self> {
        let mut envs = Vec::new();
        for e in &subject.environments {
            envs.push(environments::get(engine.state(), e)?);
        }
        let default = subject.environments.first().cloned().unwrap_or_default();
        Ok(HookRunner {
            engine,
            executor: Arc::new(EnvironmentRouter::new(
                &envs,
                &default,
                engine.config().executors.as_ref(),
            )),
            subject,
            toolkit,
            job,
            limits: engine.config().limits.clone(),
        })
    }

    /// The id of hook `name` of this subject's group.
    pub fn hook_id(&self, name: &str) -> HookId {
        HookId::new(self.subject.group, name)
    }

    /// Whether the toolkit has a non-empty script for linked hook `name`.
    pub fn has(&self, name: &str) -> bool {
        has_script(self.toolkit, &self.hook_id(name))
    }

    /// Run hook `name` of the subject's group with its parameters.
    pub fn run(&self, name: &str, progress: Option<&dyn Progress>) -> Result<StepResult> {
        self.run_hook(
            self.hook_id(name),
            self.subject.parameters.clone(),
            progress,
        )
    }

    /// Run `hook` with `parameters` (upgrade scripts get other parameters
    /// than the dSource's).
    pub fn run_hook(
        &self,
        hook: HookId,
        parameters: Value,
        _progress: Option<&dyn Progress>,
    ) -> Result<StepResult> {
        let started_ms = now_ms();
        let t0 = Instant::now();
        let step_name = hook.name.clone();
        let runtime = match self.engine.runtime() {
            Ok(rt) => rt,
            Err(e) => {
                return self.failed_setup(&hook, &step_name, started_ms, t0, e.to_string());
            }
        };
        let data_directory: PathBuf = self.subject.data_directory.clone();
        let context = HookContext {
            parameters: Some(parameters),
            config: Some(self.subject.config.clone()),
            repository: Some(self.subject.repository.clone()),
            source: Some(self.subject.source.clone()),
            remote: None,
            snapshot_json: self.subject.snapshot_json.clone(),
        };
        let limits = Limits {
            timeout: self
                .engine
                .hook_timeouts()
                .get(&hook)
                .or_else(|| self.subject.timeouts.get(&hook))
                .unwrap_or_else(|| self.engine.config().default_timeout(&hook)),
            ..self.limits.clone()
        };
        let span =
            tracing::info_span!("hook", dsource = %self.subject.name, hook = %hook, job = self.job);
        let _g = span.enter();
        let request = match hooks::request(self.toolkit, &hook, &context, Some(&data_directory)) {
            Ok(r) => r.with_executor(self.executor.clone()).with_limits(limits),
            Err(e) => return self.failed_setup(&hook, &step_name, started_ms, t0, e.to_string()),
        };
        let o = runtime.run_hook(request);
        let elapsed = t0.elapsed();
        let mut step = Step {
            seq: 0,
            step: step_name,
            outcome: Outcome::Ok,
            started_ms,
            duration_ms: elapsed.as_millis() as i64,
            message: None,
            log: serde_json::to_value(&o.log).unwrap_or(Value::Null),
            transcript: serde_json::to_value(&o.transcript).unwrap_or(Value::Null),
            stats: serde_json::to_value(&o.stats).unwrap_or(Value::Null),
            value: o.value_for_display(),
        };
        match &o.result {
            HookEnd::Value(v) => {
                jobs::add_step(self.engine.state(), self.job, &step)?;
                Ok(StepResult {
                    outcome: o.result.clone(),
                    ok: true,
                    value: v.clone(),
                    message: None,
                    elapsed,
                })
            }
            end => {
                let message = end.message().unwrap_or("failed").to_string();
                step.outcome = Outcome::Failed;
                step.message = Some(message.clone());
                jobs::add_step(self.engine.state(), self.job, &step)?;
                let mut detail = json!({
                    "toolkit": self.toolkit.name(),
                    "version": self.toolkit.version(),
                    "script": self.toolkit.chunk_name(&hook),
                    "kind": end.kind_json(),
                });
                if let Some(tb) = end.traceback() {
                    detail["traceback"] = json!(tb);
                }
                if let Some(rf) = end.fault() {
                    detail["function"] = json!(rf.function);
                    detail["exitCode"] = json!(rf.exit_code);
                    detail["stdout"] = json!(rf.stdout);
                    detail["stderr"] = json!(rf.stderr);
                }
                faults::post(
                    self.engine.state(),
                    &NewFault {
                        dsource: Some(self.subject.name.clone()),
                        job_id: Some(self.job),
                        hook: Some(hook.to_string()),
                        message: format!("{hook} failed: {message}"),
                        detail,
                    },
                )?;
                Ok(StepResult {
                    outcome: end.clone(),
                    ok: false,
                    value: Value::Null,
                    message: Some(message),
                    elapsed,
                })
            }
        }
    }

    fn failed_setup(
        &self,
        hook: &HookId,
        step_name: &str,
        started_ms: i64,
        t0: Instant,
        message: String,
    ) -> Result<StepResult> {
        let elapsed = t0.elapsed();
        jobs::add_step(
            self.engine.state(),
            self.job,
            &Step {
                seq: 0,
                step: step_name.to_string(),
                outcome: Outcome::Failed,
                started_ms,
                duration_ms: elapsed.as_millis() as i64,
                message: Some(message.clone()),
                log: Value::Null,
                transcript: Value::Null,
                stats: Value::Null,
                value: Value::Null,
            },
        )?;
        faults::post(
            self.engine.state(),
            &NewFault {
                dsource: Some(self.subject.name.clone()),
                job_id: Some(self.job),
                hook: Some(hook.to_string()),
                message: format!("{hook} could not run: {message}"),
                detail: json!({"toolkit": self.toolkit.name(), "version": self.toolkit.version()}),
            },
        )?;
        Ok(StepResult {
            outcome: HookEnd::host(message.clone()),
            ok: false,
            value: Value::Null,
            message: Some(message),
            elapsed,
        })
    }
}

/// Whether `toolkit` has a script with code for `hook` (an absent or
/// blank script means the engine does without it).
pub fn has_script(toolkit: &Toolkit, hook: &HookId) -> bool {
    toolkit.script(hook).is_some_and(|s| {
        s.lines().any(|l| {
            let l = l.trim();
            !l.is_empty() && !l.starts_with("--") && !l.starts_with('#')
        })
    })
}

/// Record a step that is not a hook (the snapshot) or was skipped.
pub fn record_step(
    engine: &Engine,
    job: i64,
    name: &str,
    outcome: Outcome,
    elapsed: Duration,
    message: Option<String>,
    stats: Value,
) -> Result<()> {
    jobs::add_step(
        engine.state(),
        job,
        &Step {
            seq: 0,
            step: name.to_string(),
            outcome,
            started_ms: now_ms() - elapsed.as_millis() as i64,
            duration_ms: elapsed.as_millis() as i64,
            message,
            log: Value::Null,
            transcript: Value::Null,
            stats,
            value: Value::Null,
        },
    )
}
