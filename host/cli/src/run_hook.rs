//! `lunabox run-hook TOOLKIT HOOK`: run one hook of a toolkit with the
//! engine's semantics (globals of its kind, parameters with defaults and
//! validated, return check), for real on this machine or against scripted
//! responses.
//!
//! Exit status: 0 the hook succeeded, 1 it failed, 2 bad usage (including a
//! missing context part or invalid parameters), 3 a limit stopped it.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use serde_json::{Value, json};

use super::Context;
use lunabox_run::Executor;
use lunabox_run::executors::local::LocalExecutor;
use lunabox_run::executors::scripted::ScriptedExecutor;
use lunabox_sandbox::hook::{self as hooks, HookContext, HookId};
use lunabox_sandbox::{HookOutcome, Limits, Outcome, Runtime, RuntimeConfig};

#[derive(clap::Args)]
#[command(
    after_help = "HOOK is the hook's path in the toolkit: staged/resync, staged/status, \
direct/preSnapshot, discovery/repositoryDiscovery, virtual/configure, upgrade/upgradeSnapshot, ...\n\n\
The context file is a JSON object with what the hook sees: \"parameters\", \"config\", \
\"repository\", \"source\" (environment, environmentUser, host, stagingEnvironment, \
stagingEnvironmentUser, stagingHost, dataDirectory, guid), \"remote\" (discovery) and \
\"snapshotJson\" (configure/reconfigure). Parameters get their schema defaults and are \
validated; password-format values are masked in everything printed.\n\n\
Without --responses, Run calls run on this machine as the environment user (which must be \
you unless lunabox runs as root).\n\n\
Exit status: 0 ok, 1 the hook failed, 2 bad usage (unknown hook, missing context, invalid \
parameters), 3 a limit stopped it."
)]
pub struct Args {
    /// A toolkit directory or a built toolkit .json file.
    pub toolkit: PathBuf,
    /// The hook, e.g. `staged/resync`.
    pub hook: String,
    /// JSON file with parameters, config, repository, source, remote, snapshotJson.
    #[arg(long, value_name = "FILE.json")]
    pub context: Option<PathBuf>,
    /// Set a parameter (VALUE is JSON when it parses, else text; a dotted
    /// K like `a.b` sets a nested field); repeatable.
    #[arg(long = "param", value_name = "K=V")]
    pub params: Vec<String>,
    /// Answer Run calls from this file instead of running them:
    /// {"default": RESPONSE, "calls": [{"match": {...}, ...RESPONSE}]}.
    #[arg(long, value_name = "FILE.json")]
    pub responses: Option<PathBuf>,
    /// Carry out Run calls on the environments in the state: each call goes
    /// to the environment it names (`environment`, else `host`), and to
    /// this one when it names none.
    #[arg(long, value_name = "NAME", conflicts_with = "responses")]
    pub environment: Option<String>,
    /// Write the Run calls made (function, target, resource, variables, exit code) as a JSON array.
    #[arg(long, value_name = "FILE.json")]
    pub transcript: Option<PathBuf>,
    /// Print one JSON object: outcome, value, message, fault, stats, log.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub limits: super::limits::LimitArgs,
    /// The dSource's storage: RunSync's target, and `source.dataDirectory`
    /// when the context's source has none.
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
}

fn usage(message: impl std::fmt::Display) -> anyhow::Result<ExitCode> {
    say_err!("error: {message}");
    Ok(ExitCode::from(super::EXIT_USAGE))
}

fn read_context(path: &Path) -> Result<HookContext, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let value: Value = lunabox_toolkit::json::parse(&text)
        .map_err(|e| format!("{}: not valid JSON ({e}); fix the file", path.display()))?;
    HookContext::from_json(value).map_err(|e| format!("{}: {e}", path.display()))
}

pub fn run(ctx: &Context, args: Args) -> anyhow::Result<ExitCode> {
    let loaded = match lunabox_toolkit::load(&args.toolkit) {
        Ok(l) => l,
        Err(e) => return usage(e),
    };
    let hook: HookId = match args.hook.parse() {
        Ok(h) => h,
        Err(e) => return usage(e),
    };
    let mut context = match &args.context {
        Some(path) => match read_context(path) {
            Ok(c) => c,
            Err(e) => return usage(e),
        },
        None => HookContext::default(),
    };
    for p in &args.params {
        if let Err(e) = context.set_param(p) {
            return usage(e);
        }
    }
    let executor: Arc<dyn Executor> = match &args.responses {
        Some(path) => match ScriptedExecutor::from_file(path) {
            Ok(x) => Arc::new(x),
            Err(e) => return usage(e),
        },
        None => match &args.environment {
            Some(name) => {
                let engine = super::jobs::open_engine(ctx)?;
                let all = lunabox_engine::environments::list(engine.state())?;
                if !all.iter().any(|e| &e.name == name) {
                    return usage(format!(
                        "there is no environment `{name}`; `lunabox env list` shows them"
                    ));
                }
                Arc::new(lunabox_engine::environments::EnvironmentRouter::new(
                    &all,
                    name,
                    &lunabox_engine::environments::StandardExecutors,
                ))
            }
            None => Arc::new(LocalExecutor::new()),
        },
    };
    // Check what can be checked before starting the sandbox.
    if let Err(e) = hooks::resolve(&loaded.toolkit, &hook) {
        return usage(e);
    }
    let data_directory = args.data_dir.clone().or_else(|| {
        context
            .source
            .as_ref()
            .and_then(|s| s.get("dataDirectory"))
            .and_then(Value::as_str)
            .filter(|_| hook.group != lunabox_toolkit::HookGroup::Direct)
            .map(PathBuf::from)
    });
    let runtime = Runtime::new(RuntimeConfig {
        max_concurrent_hooks: 2,
        ..RuntimeConfig::default()
    })?;
    // Without --timeout: the engine's default for this kind of hook.
    let limits = match args.limits.limits(Limits {
        timeout: lunabox_engine::deadlines::default_for(&hook),
        ..Limits::default()
    }) {
        Ok(l) => l,
        Err(m) => return usage(m),
    };
    let chunk = loaded.toolkit.chunk_name(&hook);
    if !args.json {
        say_err!(
            "running {chunk}{}...",
            if args.responses.is_some() {
                " (scripted responses)"
            } else {
                ""
            }
        );
    }
    let request = match hooks::request(&loaded.toolkit, &hook, &context, data_directory.as_deref())
    {
        Ok(r) => r.with_executor(executor).with_limits(limits),
        Err(e) => return usage(e),
    };
    let run = runtime.run_hook(request);

    if let Some(path) = &args.transcript {
        let entries = serde_json::to_value(&run.transcript)?;
        std::fs::write(path, serde_json::to_string_pretty(&entries)? + "\n")
            .with_context(|| format!("cannot write the transcript to {}", path.display()))?;
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&run_json(&hook, &run))?);
    } else {
        print_human(&run);
    }
    Ok(ExitCode::from(run.result.exit_status()))
}

/// The `--json` object of a hook run: `outcome`, `hook`, `kind`, `value`
/// (secrets masked), `message`, `fault`, `limit` and `traceback` when there
/// is one, `stats`, `log`.
pub fn run_json(hook: &HookId, run: &HookOutcome) -> Value {
    let mut fields = run.result.json_fields();
    fields.insert("hook".into(), json!(hook.to_string()));
    fields.insert("value".into(), run.value_for_display());
    fields.entry("message").or_insert(Value::Null);
    fields.entry("fault").or_insert(Value::Null);
    let mut out = Value::Object(fields);
    out["stats"] = json!(run.stats);
    out["log"] = json!(run.log);
    out
}

/// A failed outcome in words on stderr: the message, the failed call and
/// its output, the traceback.
pub fn print_failure(result: &Outcome) {
    say_err!("error: {}", result.message().unwrap_or("the hook failed"));
    if let Some(fault) = result.fault() {
        say_err!(
            "  failed call: {} exited with status {}",
            fault.function,
            fault.exit_code
        );
        if !fault.stdout.is_empty() {
            say_err!("  stdout: {}", fault.stdout.trim_end());
        }
        if !fault.stderr.is_empty() {
            say_err!("  stderr: {}", fault.stderr.trim_end());
        }
    }
    if let Some(tb) = result.traceback() {
        say_err!("{tb}");
    }
}

fn print_human(run: &HookOutcome) {
    for line in &run.log {
        say_err!("[{}] {}", line.level, line.message);
    }
    match &run.result {
        Outcome::Value(_) => say!(
            "{}",
            serde_json::to_string_pretty(&run.value_for_display()).unwrap_or_default()
        ),
        other => print_failure(other),
    }
    let st = &run.stats;
    say_err!("({:.1} ms, {} Run calls)", st.wall, st.run_calls);
}
