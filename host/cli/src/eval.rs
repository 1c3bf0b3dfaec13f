//! `lunabox eval FILE.lua`: run one chunk in the sandbox as a hook would run.
//!
//! Exit status: 0 ok, 1 Lua error, 3 limit hit, 2 bad usage.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use serde_json::json;

use super::Context;
use lunabox_run::executors::local::LocalExecutor;
use lunabox_sandbox::{HookOutcome, HookRequest, Limits, Outcome, Runtime, RuntimeConfig};

#[derive(clap::Args)]
#[command(
    after_help = "Exit status: 0 the chunk returned, 1 Lua error, 3 a limit stopped it, 2 bad usage.\n\
Run calls (RunBash, ...) run on this machine as the current user."
)]
pub struct Args {
    /// The Lua chunk to run (`-` reads standard input).
    pub file: PathBuf,
    /// A JSON object whose keys become read-only globals (like a hook's
    /// `parameters`, `source`, ...).
    #[arg(long, value_name = "FILE.json")]
    pub globals: Option<PathBuf>,
    #[command(flatten)]
    pub limits: super::limits::LimitArgs,
    /// Print one JSON object: outcome, value | message+traceback | limit, stats, log.
    #[arg(long)]
    pub json: bool,
    /// Carry out Run calls on this environment of the state (and on the
    /// environment a call names), instead of on this machine.
    #[arg(long, value_name = "NAME")]
    pub environment: Option<String>,
}

pub fn run(ctx: &Context, args: Args) -> anyhow::Result<ExitCode> {
    let script = if args.file.as_os_str() == "-" {
        std::io::read_to_string(std::io::stdin())
            .context("cannot read the chunk from standard input")
    } else {
        std::fs::read_to_string(&args.file)
            .with_context(|| format!("cannot read {}", args.file.display()))
    };
    let script = match script {
        Ok(s) => s,
        Err(e) => return Ok(usage_error(&format!("{e:#}"))),
    };
    let globals = match &args.globals {
        None => serde_json::Map::new(),
        Some(path) => match read_globals(path) {
            Ok(g) => g,
            Err(e) => return Ok(usage_error(&format!("{e:#}"))),
        },
    };
    // eval's own default deadline is short: it runs a chunk, not a hook.
    let base = Limits {
        timeout: std::time::Duration::from_secs(30),
        ..Limits::default()
    };
    let limits = match args.limits.limits(base) {
        Ok(l) => l,
        Err(m) => return Ok(usage_error(&m)),
    };
    let runtime = Runtime::new(RuntimeConfig {
        max_concurrent_hooks: 2,
        max_memory: limits.memory.max(64 << 20),
        ..RuntimeConfig::default()
    })?;
    let chunk_name = args
        .file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "stdin".into());
    let executor: Arc<dyn lunabox_run::Executor> = match &args.environment {
        Some(name) => {
            let engine = super::jobs::open_engine(ctx)?;
            let all = lunabox_engine::environments::list(engine.state())?;
            if !all.iter().any(|e| &e.name == name) {
                return Ok(usage_error(&format!(
                    "there is no environment `{name}`; `lunabox env list` shows them"
                )));
            }
            Arc::new(lunabox_engine::environments::EnvironmentRouter::new(
                &all,
                name,
                &lunabox_engine::environments::StandardExecutors,
            ))
        }
        None => Arc::new(LocalExecutor::new()),
    };
    let request = HookRequest::new(script, chunk_name)
        .with_executor(executor)
        .with_globals(globals)
        .with_limits(limits);
    let outcome = runtime.run_hook(request);
    if args.json {
        println!("{}", outcome_json(&outcome));
    } else {
        print_human(&outcome);
    }
    Ok(ExitCode::from(exit_status(&outcome.result)))
}

fn usage_error(message: &str) -> ExitCode {
    say_err!("error: {message}");
    ExitCode::from(super::EXIT_USAGE)
}

fn read_globals(
    path: &std::path::Path,
) -> anyhow::Result<serde_json::Map<String, serde_json::Value>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    match lunabox_toolkit::json::parse(&text) {
        Ok(serde_json::Value::Object(m)) => Ok(m),
        Ok(_) => anyhow::bail!(
            "{}: --globals must hold a JSON object (name -> value)",
            path.display()
        ),
        Err(e) => anyhow::bail!("{}: not valid JSON: {e}", path.display()),
    }
}

/// 0 ok, 1 error, 3 limit, 4 cancelled.
pub fn exit_status(result: &Outcome) -> u8 {
    result.exit_status()
}

/// The `--json` object for an outcome: the outcome's fields, except that a
/// limit carries no `kind` and says which option raises it, and `fault` is
/// there only for a failed Run call (eval's shape since its first release).
pub fn outcome_json(outcome: &HookOutcome) -> serde_json::Value {
    let r = &outcome.result;
    let mut fields = r.json_fields();
    match r {
        Outcome::Value(v) => {
            fields.insert("value".into(), v.clone());
        }
        Outcome::Limit(l) => {
            fields.remove("kind");
            fields.remove("fault");
            fields.insert("message".into(), json!(limit_message(l.kind)));
        }
        _ => {
            if r.fault().is_none() {
                fields.remove("fault");
            }
        }
    }
    let mut out = serde_json::Value::Object(fields);
    out["stats"] = json!(outcome.stats);
    out["log"] = json!(outcome.log);
    out["runCalls"] = json!(outcome.transcript);
    out
}

/// What a person is told when a limit stopped a hook.
pub fn limit_message(kind: lunabox_sandbox::LimitKind) -> &'static str {
    use lunabox_sandbox::LimitKind::*;
    match kind {
        Time => {
            "the hook ran past its time limit and was stopped (raise --timeout if it needs longer)"
        }
        Fuel => "the hook used up its fuel (instruction budget) and was stopped (raise --fuel)",
        Memory => "the hook tried to use more memory than allowed and was stopped (raise --memory)",
        Output => {
            "the hook's returned value or log was larger than allowed (raise --max-result / --max-log)"
        }
        Calls => "the hook made more Run calls than allowed (raise --max-calls)",
        Scratch => {
            "the hook's files in its scratch directory would have taken more space than allowed (raise --max-scratch)"
        }
    }
}

fn print_human(outcome: &HookOutcome) {
    for line in &outcome.log {
        say_err!("[{}] {}", line.level, line.message);
    }
    match &outcome.result {
        Outcome::Value(v) => println!("{}", serde_json::to_string_pretty(v).unwrap_or_default()),
        Outcome::Limit(l) => say_err!("limit ({}): {}", l.kind, limit_message(l.kind)),
        other => super::run_hook::print_failure(other),
    }
    let s = &outcome.stats;
    let fuel = s
        .fuel_used
        .map(|f| format!(", fuel {f}"))
        .unwrap_or_default();
    say_err!(
        "({:.1} ms, peak memory {} KiB, {} Run calls{fuel})",
        s.wall,
        s.peak_memory / 1024,
        s.run_calls
    );
}
