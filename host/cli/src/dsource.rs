//! `lunabox link|sync|enable|disable|status|policy`: dSources.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context as _, bail};
use serde_json::{Map, Value};

use super::Context;
use super::jobs::{duration_arg, job_exit, open_engine, print_job, print_json, print_table};
use lunabox_engine::link::{self, LinkRequest};
use lunabox_engine::progress::{Stderr, human};
use lunabox_engine::snapsync::{self, SyncOptions};
use lunabox_engine::state::format_ms;
use lunabox_engine::{retention, staging, toolkits};

pub(super) fn read_json_file(path: &Path, what: &str) -> anyhow::Result<Value> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the {what} file `{}`", path.display()))?;
    lunabox_toolkit::json::parse(&text).with_context(|| {
        format!(
            "the {what} file `{}` is not valid JSON; it must hold one JSON object",
            path.display()
        )
    })
}

/// `--timeout`, shared by the commands that run hooks.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct TimeoutArgs {
    /// Deadline of the hooks this command runs: DURATION for every hook, or
    /// HOOK=DURATION (`status=5s`, `resync=2h`, `virtual/status=10s`);
    /// repeatable. Without it: the dSource's own (`lunabox policy
    /// --timeout`), else the hook kind's default (status 30s, worker 60s,
    /// start/stop 30m, pre/postSnapshot 1h, resync 12h).
    #[arg(long = "timeout", value_name = "[HOOK=]DURATION")]
    pub timeout: Vec<String>,
}

impl TimeoutArgs {
    /// Make the engine run hooks with these deadlines.
    pub fn apply(&self, engine: &mut lunabox_engine::Engine) -> anyhow::Result<()> {
        let t = lunabox_engine::deadlines::HookTimeouts::parse(&self.timeout)
            .map_err(anyhow::Error::msg)?;
        engine.set_hook_timeouts(t);
        Ok(())
    }
}

#[derive(clap::Args)]
#[command(
    after_help = "Example:\n  lunabox link db1 --toolkit delphixdb --environment local \\\n      --config config.json --repository repository.json --param stagingPort=5433"
)]
pub struct LinkArgs {
    /// Name of the new dSource.
    pub name: String,
    /// Installed toolkit, as NAME or NAME@VERSION (default: newest version).
    #[arg(long)]
    pub toolkit: String,
    /// The primary environment (hosting the data source).
    #[arg(long)]
    pub environment: String,
    /// The staging environment (staged sources; default: the primary).
    #[arg(long)]
    pub staging_environment: Option<String>,
    /// User on the primary environment (default: the environment's user).
    #[arg(long)]
    pub user: Option<String>,
    /// User on the staging environment (default: its environment's user).
    #[arg(long)]
    pub staging_user: Option<String>,
    /// The source config (JSON object, e.g. {"dbName": "prod"}).
    #[arg(long, value_name = "FILE.json", conflicts_with = "source_config")]
    pub config: Option<PathBuf>,
    /// The repository (JSON object, e.g. {"installPath": "/opt/db/bin/db"}).
    #[arg(long, value_name = "FILE.json", conflicts_with = "source_config")]
    pub repository: Option<PathBuf>,
    /// A source config discovery found on --environment, by name (its
    /// repository comes with it; `lunabox env show ENV` lists them). Write
    /// REPOSITORY/NAME when several repositories have one of that name.
    #[arg(long, value_name = "NAME")]
    pub source_config: Option<String>,
    /// A linking parameter; typed by the toolkit's schema. Repeatable.
    #[arg(long = "param", value_name = "KEY=VALUE")]
    pub params: Vec<String>,
    /// Linking parameters from a JSON object (--param entries win).
    #[arg(long = "params", value_name = "FILE.json")]
    pub params_file: Option<PathBuf>,
    /// Create the dSource without running the initial SnapSync.
    #[arg(long)]
    pub no_sync: bool,
    /// Let the daemon SnapSync it this often (e.g. 1h).
    #[arg(long, value_parser = duration_arg, value_name = "DURATION")]
    pub sync_every: Option<Duration>,
    /// Keep at most N snapshots.
    #[arg(long, value_name = "N")]
    pub keep: Option<u32>,
    /// How long to wait for another operation on this dSource.
    #[arg(long, value_parser = duration_arg, default_value = "10m", value_name = "DURATION")]
    pub lock_timeout: Duration,
    #[command(flatten)]
    pub timeouts: TimeoutArgs,
    /// Print the job as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::Args)]
#[command(after_help = "Examples:\n  lunabox sync db1\n  lunabox sync db1 --resync --json")]
pub struct SyncArgs {
    /// The dSource.
    pub name: String,
    /// Force a (hard) resync before the snapshot (staged sources).
    #[arg(long)]
    pub resync: bool,
    /// How long to wait for another operation on this dSource.
    #[arg(long, value_parser = duration_arg, default_value = "10m", value_name = "DURATION")]
    pub lock_timeout: Duration,
    #[command(flatten)]
    pub timeouts: TimeoutArgs,
    /// Print the job as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::Args)]
pub struct NameArgs {
    /// The dSource.
    pub name: String,
    /// How long to wait for another operation on this dSource.
    #[arg(long, value_parser = duration_arg, default_value = "10m", value_name = "DURATION")]
    pub lock_timeout: Duration,
    #[command(flatten)]
    pub timeouts: TimeoutArgs,
    /// Print the result as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::Args)]
#[command(after_help = "Examples:\n  lunabox status\n  lunabox status db1 --json")]
pub struct StatusArgs {
    /// Only this dSource.
    pub name: Option<String>,
    #[command(flatten)]
    pub timeouts: TimeoutArgs,
    /// Print JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::Args)]
#[command(
    after_help = "Examples:\n  lunabox policy db1 --keep 7 --sync-every 1h\n  lunabox policy db1 --keep none --sync-every never"
)]
pub struct PolicyArgs {
    /// The dSource.
    pub name: String,
    /// Keep at most N snapshots (oldest removed first), or `none`.
    #[arg(long, value_name = "N|none")]
    pub keep: Option<String>,
    /// SnapSync this often when the daemon runs (e.g. 30m), or `never`.
    #[arg(long, value_name = "DURATION|never")]
    pub sync_every: Option<String>,
    /// Deadline of one of this dSource's hooks, kept with it: HOOK=DURATION
    /// (`status=10s`, `resync=6h`, `*=1h`), or HOOK=default to go back to the
    /// hook kind's default; repeatable. A command's own --timeout still wins.
    #[arg(long = "timeout", value_name = "HOOK=DURATION|default")]
    pub timeout: Vec<String>,
    /// How long to wait for another operation on this dSource.
    #[arg(long, value_parser = duration_arg, default_value = "10m", value_name = "DURATION")]
    pub lock_timeout: Duration,
    /// Print the dSource as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

pub fn link(ctx: &Context, a: LinkArgs) -> anyhow::Result<ExitCode> {
    let mut engine = open_engine(ctx)?;
    let config = match &a.config {
        Some(p) => read_json_file(p, "--config")?,
        None => Value::Null,
    };
    let repository = match &a.repository {
        Some(p) => read_json_file(p, "--repository")?,
        None => Value::Null,
    };
    let mut params = match &a.params_file {
        Some(p) => match read_json_file(p, "--params")? {
            Value::Object(m) => m,
            _ => bail!("--params `{}` must hold a JSON object", p.display()),
        },
        None => Map::new(),
    };
    if !a.params.is_empty() {
        // Type each --param by the toolkit's schema.
        let inst = match a.toolkit.split_once('@') {
            Some((n, v)) => toolkits::get(engine.state(), n, v)?,
            None => toolkits::latest(engine.state(), &a.toolkit)?,
        };
        let tk = toolkits::load_installed(&inst)?;
        for p in &a.params {
            let Some((k, v)) = p.split_once('=') else {
                bail!("--param `{p}` must be KEY=VALUE");
            };
            params.insert(k.to_string(), link::parse_param(&tk, k, v)?);
        }
    }
    let req = LinkRequest {
        name: a.name.clone(),
        toolkit: a.toolkit,
        environment: a.environment,
        staging_environment: a.staging_environment,
        user: a.user,
        staging_user: a.staging_user,
        config,
        repository,
        source_config: a.source_config,
        parameters: params,
        no_sync: a.no_sync,
        sync_every: a.sync_every,
        keep: a.keep,
        lock_timeout: a.lock_timeout,
    };
    a.timeouts.apply(&mut engine)?;
    let r = link::link(&mut engine, &req, &Stderr::new(None))?;
    if a.json {
        print_json(&r)?;
    } else {
        summarize(&r.job, r.snapshot.as_ref(), &a.name);
    }
    Ok(job_exit(r.ok()))
}

fn summarize(
    job: &lunabox_engine::jobs::Job,
    snapshot: Option<&lunabox_engine::catalog::SnapshotRow>,
    name: &str,
) {
    match snapshot {
        Some(s) => {
            let stats: lunabox_engine::snapshots::SnapshotStats =
                serde_json::from_value(s.stats.clone()).unwrap_or_default();
            say!(
                "snapshot {} of `{name}` taken (job {}): {}",
                s.id,
                job.id,
                snapsync::snapshot_note(&stats)
            );
        }
        None if job.state == lunabox_engine::jobs::JobState::Succeeded => {
            say!("job {} succeeded", job.id);
        }
        None => {
            print_job(job, false);
            say_err!(
                "`lunabox faults {name}` shows the failures' output; `lunabox job {}` the whole job",
                job.id
            );
        }
    }
}

pub fn sync(ctx: &Context, a: SyncArgs) -> anyhow::Result<ExitCode> {
    let mut engine = open_engine(ctx)?;
    let opts = SyncOptions {
        resync: a.resync,
        lock_timeout: a.lock_timeout,
    };
    a.timeouts.apply(&mut engine)?;
    let r = snapsync::sync(&mut engine, &a.name, &opts, &Stderr::new(None))?;
    if a.json {
        print_json(&r)?;
    } else {
        summarize(&r.job, r.snapshot.as_ref(), &a.name);
    }
    Ok(job_exit(r.ok()))
}

fn toggle(ctx: &Context, a: NameArgs, enable: bool) -> anyhow::Result<ExitCode> {
    let mut engine = open_engine(ctx)?;
    a.timeouts.apply(&mut engine)?;
    let r = staging::set_enabled(
        &mut engine,
        &a.name,
        enable,
        a.lock_timeout,
        &Stderr::new(None),
    )?;
    if a.json {
        print_json(&r)?;
    } else if r.changed {
        say!(
            "dSource `{}` {}",
            a.name,
            if enable { "enabled" } else { "disabled" }
        );
    } else if let Some(j) = &r.job {
        print_job(j, false);
    }
    Ok(job_exit(r.ok()))
}

pub fn enable(ctx: &Context, a: NameArgs) -> anyhow::Result<ExitCode> {
    toggle(ctx, a, true)
}

pub fn disable(ctx: &Context, a: NameArgs) -> anyhow::Result<ExitCode> {
    toggle(ctx, a, false)
}

pub fn status(ctx: &Context, a: StatusArgs) -> anyhow::Result<ExitCode> {
    let mut engine = open_engine(ctx)?;
    a.timeouts.apply(&mut engine)?;
    let list = staging::status(&mut engine, a.name.as_deref())?;
    if a.json {
        if a.name.is_some() {
            print_json(&list[0])?;
        } else {
            print_json(&list)?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    if list.is_empty() {
        say!("no dSources; `lunabox link NAME --toolkit T --environment E` links one");
        return Ok(ExitCode::SUCCESS);
    }
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|s| {
            vec![
                s.dsource.clone(),
                s.kind.as_str().to_string(),
                format!("{} {}", s.toolkit, s.toolkit_version),
                if s.enabled { "enabled" } else { "disabled" }.to_string(),
                s.status.clone(),
                s.snapshots.to_string(),
                s.last_snapshot
                    .as_ref()
                    .map(|l| format!("{} at {}", l.id, format_ms(l.created_ms)))
                    .unwrap_or_else(|| "-".into()),
                s.open_faults.to_string(),
                s.running
                    .iter()
                    .map(|j| format!("{} (job {})", j.kind, j.id))
                    .collect::<Vec<_>>()
                    .join(", "),
            ]
        })
        .collect();
    print_table(
        &[
            "DSOURCE",
            "KIND",
            "TOOLKIT",
            "STATE",
            "STATUS",
            "SNAPSHOTS",
            "LAST SNAPSHOT",
            "FAULTS",
            "RUNNING",
        ],
        &rows,
    );
    Ok(ExitCode::SUCCESS)
}

pub fn policy(ctx: &Context, a: PolicyArgs) -> anyhow::Result<ExitCode> {
    let mut engine = open_engine(ctx)?;
    let keep = match a.keep.as_deref() {
        None => None,
        Some("none") => Some(None),
        Some(n) => Some(Some(n.parse::<u32>().map_err(|_| {
            anyhow::anyhow!("--keep `{n}` must be a number of snapshots or `none`")
        })?)),
    };
    let every = match a.sync_every.as_deref() {
        None => None,
        Some("never") => Some(None),
        Some(d) => Some(Some(duration_arg(d).map_err(anyhow::Error::msg)?)),
    };
    let mut timeouts = Vec::new();
    for t in &a.timeout {
        let Some((hook, d)) = t.split_once('=') else {
            bail!("--timeout `{t}` must be HOOK=DURATION (e.g. status=10s) or HOOK=default");
        };
        let d = match d.trim() {
            "default" => None,
            d => Some(duration_arg(d).map_err(|m| anyhow::anyhow!("--timeout `{t}`: {m}"))?),
        };
        timeouts.push((hook.trim().to_string(), d));
    }
    if keep.is_none() && every.is_none() && timeouts.is_empty() {
        let ds = lunabox_engine::dsources::get(engine.state(), &a.name)?;
        print_policy(&ds, a.json)?;
        return Ok(ExitCode::SUCCESS);
    }
    let ds = retention::set_policy(
        &mut engine,
        &a.name,
        &retention::PolicyChange {
            sync_every: every,
            keep,
            timeouts,
        },
        a.lock_timeout,
        &Stderr::new(None),
    )?;
    print_policy(&ds, a.json)?;
    Ok(ExitCode::SUCCESS)
}

fn print_policy(ds: &lunabox_engine::dsources::DSource, json: bool) -> anyhow::Result<()> {
    if json {
        return print_json(&serde_json::json!({
            "dsource": ds.name, "keep": ds.keep, "syncEveryMs": ds.sync_every_ms,
            "timeoutsMs": ds.timeouts,
        }));
    }
    let deadlines: Vec<String> = ds
        .timeouts
        .iter()
        .map(|(k, d)| format!("{k} {}", human(d)))
        .collect();
    say!(
        "dSource `{}`: keep {}, SnapSync {}",
        ds.name,
        ds.keep
            .map(|k| format!("the newest {k} snapshot(s)"))
            .unwrap_or_else(|| "every snapshot".into()),
        ds.sync_every_ms
            .map(|m| format!(
                "every {} (when `lunabox daemon` runs)",
                human(Duration::from_millis(m as u64))
            ))
            .unwrap_or_else(|| "on demand only".into())
    );
    if !deadlines.is_empty() {
        say!("  hook deadlines: {}", deadlines.join(", "));
    }
    Ok(())
}
