//! `lunabox fuzz TOOLKIT`: run a toolkit's hooks many times against
//! generated inputs and Run-call answers, and report their bugs (a thin
//! client of lunabox-fuzz).
//!
//! Exit status: 0 no bug found, 1 a bug was found, 2 bad usage.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use serde_json::Value;

use super::Context;
use lunabox_fuzz::{Options, Progress, percent};
use lunabox_sandbox::hook::HookId;
use lunabox_sandbox::{Limits, Runtime, RuntimeConfig};

#[derive(clap::Args)]
#[command(
    after_help = "Each hook (all of them by default) runs many times in the sandbox: its parameters, \
config and repository are generated from the toolkit's schemas (edge-case strings, bounds, enum \
values, canaries), and each Run call is answered with made-up exit codes, output and output \
documents (the outputSchema's shape, then mutated; invalid JSON; a call that hangs). Inputs that \
reach new lines of the hook are kept and mutated further.\n\n\
Bugs (runtime-error, bad-return, limit, injection) are deduplicated by kind and Lua location, \
minimized and written to --out as a context file and a responses file: \
`lunabox run-hook TOOLKIT HOOK --context C --responses R` replays each. A failed Run call that \
surfaces as the hook's fault is expected and only counted.\n\n\
--timeout (default 500ms) is each run's; without --runs or --time, 10000 runs.\n\n\
Exit status: 0 no bug found, 1 a bug was found, 2 bad usage."
)]
pub struct Args {
    /// A toolkit directory or a built toolkit .json file.
    pub toolkit: PathBuf,
    /// Fuzz this hook (e.g. `staged/status`); repeatable. Default: every hook
    /// the toolkit's author wrote.
    #[arg(long = "hook", value_name = "HOOK")]
    pub hooks: Vec<String>,
    /// A context file (as for run-hook): its parts are the first input, and
    /// its source and remote are used throughout.
    #[arg(long, value_name = "FILE.json")]
    pub context: Option<PathBuf>,
    /// Stop after N runs in all.
    #[arg(long, value_name = "N", conflicts_with = "time")]
    pub runs: Option<u64>,
    /// Stop after this long (e.g. 60s).
    #[arg(long, value_name = "DURATION", value_parser = lunabox_toolkit::units::parse_duration)]
    pub time: Option<Duration>,
    /// Seed of every choice: the same seed makes the same runs.
    #[arg(long, value_name = "S", default_value_t = 1)]
    pub seed: u64,
    /// Where the findings' context and responses files go.
    #[arg(long, value_name = "DIR", default_value = "lunabox-fuzz")]
    pub out: PathBuf,
    /// Print one JSON object: runs, runsPerSecond, coverage, findings, expectedFaults.
    #[arg(long)]
    pub json: bool,
    /// Write each hook's line coverage in lcov format.
    #[arg(long, value_name = "FILE")]
    pub lcov: Option<PathBuf>,
    /// Threads running hooks (default: one per core).
    #[arg(long, value_name = "N")]
    pub jobs: Option<usize>,
    /// Do not record coverage (no guidance; for comparison).
    #[arg(long)]
    pub no_coverage: bool,
    #[command(flatten)]
    pub limits: super::limits::LimitArgs,
}

fn usage(message: impl std::fmt::Display) -> anyhow::Result<ExitCode> {
    say_err!("error: {message}");
    Ok(ExitCode::from(super::EXIT_USAGE))
}

pub fn run(_ctx: &Context, args: Args) -> anyhow::Result<ExitCode> {
    let loaded = match lunabox_toolkit::load(&args.toolkit) {
        Ok(l) => l,
        Err(e) => return usage(e),
    };
    let mut hooks = Vec::new();
    for h in &args.hooks {
        match h.parse::<HookId>() {
            Ok(h) => hooks.push(h),
            Err(e) => return usage(e),
        }
    }
    if hooks.is_empty() {
        // Every hook the author wrote (not the ones the builder filled in).
        hooks = lunabox_fuzz::hooks_of(&loaded.toolkit)
            .into_iter()
            .filter(|h| !loaded.origin.defaulted.contains(h))
            .collect();
        if hooks.is_empty() {
            return usage(format!(
                "{} has no hook with a script to fuzz",
                args.toolkit.display()
            ));
        }
    }
    let context = match &args.context {
        None => serde_json::Map::new(),
        Some(path) => {
            let parsed = std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))
                .and_then(|t| {
                    lunabox_toolkit::json::parse(&t)
                        .map_err(|e| format!("{}: not valid JSON ({e})", path.display()))
                });
            match parsed {
                Ok(Value::Object(m)) => {
                    if let Err(e) =
                        lunabox_sandbox::hook::HookContext::from_json(Value::Object(m.clone()))
                    {
                        return usage(format!("{}: {e}", path.display()));
                    }
                    m
                }
                Ok(_) => {
                    return usage(format!(
                        "{}: the context must be a JSON object",
                        path.display()
                    ));
                }
                Err(e) => return usage(e),
            }
        }
    };
    let limits = match args.limits.limits(Limits {
        timeout: Duration::from_millis(500),
        ..Limits::default()
    }) {
        Ok(l) => l,
        Err(m) => return usage(m),
    };
    let defaults = Options::default();
    let options = Options {
        hooks,
        context,
        runs: match (args.runs, args.time) {
            (None, None) => Some(10_000),
            (r, _) => r,
        },
        time: args.time,
        seed: args.seed,
        out: args.out.clone(),
        limits,
        threads: args.jobs.unwrap_or(defaults.threads).max(1),
        coverage: !args.no_coverage,
        ..defaults
    };
    let runtime = Runtime::new(RuntimeConfig {
        max_concurrent_hooks: options.threads as u32 + 1,
        ..RuntimeConfig::default()
    })?;
    let name = loaded.toolkit.name().unwrap_or("toolkit").to_string();
    say_err!("fuzzing {name} (seed {})...", options.seed);
    let mut show = |p: &Progress| {
        say_err!(
            "fuzz: {} runs ({:.0}/s), {} findings, {} expected faults, coverage {}/{} lines ({:.1}%), {:.1}s",
            p.runs,
            p.runs_per_second,
            p.findings,
            p.expected_faults,
            p.covered,
            p.lines,
            percent(p.covered, p.lines),
            p.elapsed
        );
    };
    let report = match lunabox_fuzz::fuzz(&runtime, &loaded.toolkit, &options, &mut show) {
        Ok(r) => r,
        Err(e @ (lunabox_fuzz::FuzzError::Hook(_) | lunabox_fuzz::FuzzError::NoHooks(_))) => {
            return usage(e);
        }
        Err(e) => return Err(e.into()),
    };
    if let Some(path) = &args.lcov {
        let dir = &loaded.origin.path;
        let lcov = report.to_lcov(&|hook: &str| {
            let id: HookId = hook.parse().ok()?;
            let (file, pointer) = loaded.origin.script_location(&loaded.toolkit, &id);
            Some(match pointer {
                None => dir.join(file).display().to_string(),
                Some(_) => file,
            })
        });
        if let Err(e) = std::fs::write(path, lcov) {
            say_err!("error: cannot write {}: {e}", path.display());
            return Ok(ExitCode::from(1));
        }
    }
    for f in report.findings.iter().filter(|f| !f.reproduced) {
        say_err!(
            "warning: the files written for {} {} at {} did not replay it (a nondeterministic hook?)",
            f.hook,
            f.kind.as_str(),
            f.location
        );
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report.to_json())?);
    } else {
        print_human(&report, &args.toolkit);
    }
    Ok(ExitCode::from(u8::from(!report.findings.is_empty())))
}

fn print_human(report: &lunabox_fuzz::Report, toolkit: &std::path::Path) {
    say!(
        "{} runs, {:.0} runs/s, {} expected faults{}",
        report.runs,
        report.runs_per_second,
        report.expected_faults,
        if report.rejected > 0 {
            format!(
                ", {} inputs refused by the parameter schema",
                report.rejected
            )
        } else {
            String::new()
        }
    );
    for (hook, c) in &report.coverage {
        say!(
            "  {hook}: {}/{} lines ({:.1}%)",
            c.covered.len(),
            c.lines.len(),
            percent(c.covered.len(), c.lines.len())
        );
    }
    if report.findings.is_empty() {
        say!("no bugs found");
        return;
    }
    say!("{} bugs found:", report.findings.len());
    for f in &report.findings {
        say!(
            "- {} {} at {} ({} runs): {}",
            f.hook,
            f.kind.as_str(),
            f.location,
            f.hits,
            f.message
        );
        say!(
            "  replay: lunabox run-hook {} {} --context {} --responses {}",
            toolkit.display(),
            f.hook,
            f.context.display(),
            f.responses.display()
        );
    }
}
