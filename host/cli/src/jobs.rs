//! `lunabox faults`, `lunabox jobs`, `lunabox job`; and the helpers every
//! engine command shares (opening the state, tables, JSON output).

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use serde_json::Value;

use super::Context;
use lunabox_engine::jobs::{self, Job, JobState};
use lunabox_engine::progress::human;
use lunabox_engine::state::format_ms;
use lunabox_engine::{Engine, faults};

// ---- shared by the engine commands ------------------------------------

/// Open the state directory of `ctx` (running startup recovery, whose
/// findings go to stderr).
pub(super) fn open_engine(ctx: &Context) -> anyhow::Result<Engine> {
    let mut limits = lunabox_sandbox::Limits::default();
    let mut runtime = lunabox_sandbox::RuntimeConfig {
        max_concurrent_hooks: ctx.max_concurrent_hooks,
        ..lunabox_sandbox::RuntimeConfig::default()
    };
    if let Some(m) = ctx.hook_memory {
        limits.memory = m;
        runtime.max_memory = runtime.max_memory.max(m);
    }
    let mut builder = lunabox_engine::EngineBuilder::new()
        .runtime_config(runtime)
        .limits(limits);
    if let Some(dir) = &ctx.state {
        builder = builder.state_dir(dir);
    }
    if let Some(driver) = ctx.storage_driver {
        builder = builder.storage_driver(driver);
    }
    let engine = builder.open().context("cannot open the lunabox state")?;
    for line in engine.recovered().lines() {
        say_err!("{line}");
    }
    Ok(engine)
}

/// Print `value` as one JSON document on stdout.
pub(super) fn print_json(value: &impl serde::Serialize) -> anyhow::Result<()> {
    use std::io::Write;
    let text = serde_json::to_string_pretty(value)?;
    match writeln!(std::io::stdout().lock(), "{text}") {
        // A reader that stopped early (`| head`) is not an error.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => Ok(other?),
    }
}

/// Print rows under headers, columns aligned.
pub(super) fn print_table(headers: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            if i < widths.len() {
                widths[i] = widths[i].max(c.chars().count());
            }
        }
    }
    let line = |cells: Vec<&str>| {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                s.push_str(c);
            } else {
                s.push_str(&format!("{c:<w$}  ", w = widths[i]));
            }
        }
        use std::io::Write;
        let _ = writeln!(
            std::io::stdout().lock(),
            "{}",
            lunabox_toolkit::text::for_person(s.trim_end())
        );
    };
    line(headers.to_vec());
    for r in rows {
        line(r.iter().map(String::as_str).collect());
    }
}

/// Parse a `--lock-timeout` style duration.
pub(super) fn duration_arg(text: &str) -> Result<Duration, String> {
    lunabox_toolkit::units::parse_duration(text)
}

/// A job's duration, or `running`.
pub(super) fn job_duration(j: &Job) -> String {
    match j.ended_ms {
        Some(e) => human(Duration::from_millis((e - j.started_ms).max(0) as u64)),
        None => "running".into(),
    }
}

/// Exit code of a finished job.
pub(super) fn job_exit(ok: bool) -> ExitCode {
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// Print a job's steps as the human view of `job ID` and failed syncs.
pub(super) fn print_job(j: &Job, verbose: bool) {
    say!(
        "job {}: {}{} {} (started {}, {})",
        j.id,
        j.kind,
        j.dsource
            .as_deref()
            .map(|d| format!(" of {d}"))
            .unwrap_or_default(),
        j.state.as_str(),
        format_ms(j.started_ms),
        job_duration(j)
    );
    if let Some(e) = &j.error {
        say!("  error: {e}");
    }
    if let Some(s) = j.snapshot_id {
        say!("  snapshot: {s}");
    }
    for s in &j.steps {
        say!(
            "  [{}] {:<13} {:<7} {}{}",
            s.seq,
            s.step,
            s.outcome.as_str(),
            human(Duration::from_millis(s.duration_ms.max(0) as u64)),
            s.message
                .as_deref()
                .map(|m| format!("  {}", m.lines().next().unwrap_or("")))
                .unwrap_or_default()
        );
        if !verbose {
            continue;
        }
        if let Some(lines) = s.log.as_array() {
            for l in lines {
                say!(
                    "      log {}: {}",
                    l["level"].as_str().unwrap_or("info"),
                    l["message"].as_str().unwrap_or("")
                );
            }
        }
        if let Some(calls) = s.transcript.as_array() {
            for c in calls {
                let what = c["resource"]
                    .as_str()
                    .map(|r| format!(" resources[{r}]"))
                    .unwrap_or_default();
                say!(
                    "      {}{} on {} as {} -> exit {} ({} ms)",
                    c["function"].as_str().unwrap_or("?"),
                    what,
                    c["environment"].as_str().unwrap_or("-"),
                    c["user"].as_str().unwrap_or("-"),
                    c["exitCode"]
                        .as_i64()
                        .map(|e| e.to_string())
                        .unwrap_or_else(|| "-".into()),
                    c["durationMs"].as_u64().unwrap_or(0)
                );
                for stream in ["stdout", "stderr"] {
                    if let Some(text) = c[stream].as_str().filter(|t| !t.trim().is_empty()) {
                        for l in text.lines().take(20) {
                            say!("          {stream}: {l}");
                        }
                    }
                }
            }
        }
        if !s.value.is_null() {
            say!("      returned: {}", s.value);
        }
        if !s.stats.is_null() && s.step == "snapshot" {
            say!("      stats: {}", s.stats);
        }
    }
}

// ---- faults ------------------------------------------------------------

#[derive(clap::Args)]
#[command(
    after_help = "Examples:\n  lunabox faults\n  lunabox faults db1 --all\n  lunabox faults --resolve 3"
)]
pub struct FaultsArgs {
    /// Only the faults of this dSource.
    pub name: Option<String>,
    /// Mark fault ID resolved.
    #[arg(long, value_name = "ID")]
    pub resolve: Option<i64>,
    /// Include resolved faults.
    #[arg(long)]
    pub all: bool,
    /// Print JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

pub fn faults(ctx: &Context, a: FaultsArgs) -> anyhow::Result<ExitCode> {
    let engine = open_engine(ctx)?;
    if let Some(id) = a.resolve {
        let f = faults::resolve(engine.state(), id)?;
        if a.json {
            print_json(&f)?;
        } else {
            say!("fault {id} resolved");
        }
        return Ok(ExitCode::SUCCESS);
    }
    let list = faults::list(engine.state(), a.name.as_deref(), a.all)?;
    // A name with faults (a dSource, a VDB, or one whose provisioning
    // failed) shows them; an unknown one says so.
    if let Some(n) = &a.name
        && list.is_empty()
        && lunabox_engine::vdbs::name_taken(engine.state(), n)?.is_none()
    {
        lunabox_engine::dsources::get(engine.state(), n)?;
    }
    if a.json {
        print_json(&list)?;
        return Ok(ExitCode::SUCCESS);
    }
    if list.is_empty() {
        say!("no {}faults", if a.all { "" } else { "open " });
        return Ok(ExitCode::SUCCESS);
    }
    for f in &list {
        say!(
            "fault {} [{}] {}{}{}",
            f.id,
            format_ms(f.created_ms),
            f.dsource.as_deref().unwrap_or("-"),
            f.job_id.map(|j| format!(" job {j}")).unwrap_or_default(),
            if f.resolved_ms.is_some() {
                " (resolved)"
            } else {
                ""
            }
        );
        say!("  {}", f.message);
        let d = &f.detail;
        if let Some(code) = d.get("exitCode").and_then(Value::as_i64) {
            say!(
                "  {} exited with {code}",
                d.get("function")
                    .and_then(Value::as_str)
                    .unwrap_or("the command")
            );
        }
        for key in ["stdout", "stderr", "traceback"] {
            if let Some(t) = d
                .get(key)
                .and_then(Value::as_str)
                .filter(|t| !t.trim().is_empty())
            {
                say!("  {key}:");
                for l in t.lines().take(40) {
                    say!("    {l}");
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

// ---- jobs --------------------------------------------------------------

#[derive(clap::Args)]
#[command(after_help = "Examples:\n  lunabox jobs\n  lunabox jobs db1 --limit 5 --json")]
pub struct JobsArgs {
    /// Only the jobs of this dSource.
    pub name: Option<String>,
    /// Most jobs shown (newest first).
    #[arg(long, default_value_t = 50)]
    pub limit: usize,
    /// Print JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

pub fn jobs(ctx: &Context, a: JobsArgs) -> anyhow::Result<ExitCode> {
    let engine = open_engine(ctx)?;
    let list = jobs::list(engine.state(), a.name.as_deref(), a.limit)?;
    if a.json {
        print_json(&list)?;
        return Ok(ExitCode::SUCCESS);
    }
    if list.is_empty() {
        say!("no jobs");
        return Ok(ExitCode::SUCCESS);
    }
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|j| {
            vec![
                j.id.to_string(),
                j.kind.clone(),
                j.dsource.clone().unwrap_or_else(|| "-".into()),
                j.state.as_str().to_string(),
                format_ms(j.started_ms),
                job_duration(j),
                j.snapshot_id.map(|s| s.to_string()).unwrap_or_default(),
                j.error
                    .as_deref()
                    .map(|e| e.lines().next().unwrap_or("").to_string())
                    .unwrap_or_default(),
            ]
        })
        .collect();
    print_table(
        &[
            "ID", "KIND", "DSOURCE", "STATE", "STARTED", "TOOK", "SNAPSHOT", "ERROR",
        ],
        &rows,
    );
    Ok(ExitCode::SUCCESS)
}

#[derive(clap::Args)]
#[command(after_help = "Example:\n  lunabox job 7")]
pub struct JobArgs {
    /// The job id (from `lunabox jobs`).
    pub id: i64,
    /// Print JSON on stdout (steps with logs, Run calls and stats).
    #[arg(long)]
    pub json: bool,
}

pub fn job(ctx: &Context, a: JobArgs) -> anyhow::Result<ExitCode> {
    let engine = open_engine(ctx)?;
    let j = jobs::get(engine.state(), a.id)?;
    if a.json {
        print_json(&j)?;
    } else {
        print_job(&j, true);
    }
    Ok(job_exit(j.state != JobState::Failed))
}
