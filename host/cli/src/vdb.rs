//! `lunabox provision` and `lunabox vdb list|status|start|stop|refresh|snapshot|rm`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::bail;
use serde_json::{Map, Value};

use super::Context;
use super::dsource::{TimeoutArgs, read_json_file};
use super::jobs::{duration_arg, job_exit, open_engine, print_job, print_json, print_table};
use lunabox_engine::progress::Stderr;
use lunabox_engine::provision::{self, ProvisionRequest, VdbReport};
use lunabox_engine::snapsync::{human_bytes, snapshot_note};
use lunabox_engine::state::format_ms;
use lunabox_engine::{dsources, vdbs};

#[derive(clap::Args)]
#[command(
    after_help = "Makes a writable clone of the snapshot with the state's storage driver (a btrfs snapshot, file clones, or a full copy on the copy driver), runs the toolkit's virtual configure (it sees the snapshot's metadata as snapshotJson and returns the VDB's source config) and start.\n\nExample:\n  lunabox provision dev1 --from db1@3 --environment local --param port=6543"
)]
pub struct ProvisionArgs {
    /// Name of the new VDB (dSources and VDBs share names).
    pub name: String,
    /// The dSource and snapshot: DSOURCE (its newest) or DSOURCE@SNAPSHOT.
    #[arg(long, value_name = "DSOURCE[@SNAPSHOT]")]
    pub from: String,
    /// The environment the VDB runs on.
    #[arg(long)]
    pub environment: String,
    /// User on the environment (default: the environment's user).
    #[arg(long)]
    pub user: Option<String>,
    /// A provisioning parameter, typed by the toolkit's virtual parameters
    /// schema. Repeatable.
    #[arg(long = "param", value_name = "KEY=VALUE")]
    pub params: Vec<String>,
    /// Provisioning parameters from a JSON object (--param entries win).
    #[arg(long = "params", value_name = "FILE.json")]
    pub params_file: Option<PathBuf>,
    /// How long to wait for another operation on the VDB or the dSource.
    #[arg(long, value_parser = duration_arg, default_value = "10m", value_name = "DURATION")]
    pub lock_timeout: Duration,
    #[command(flatten)]
    pub timeouts: TimeoutArgs,
    /// Print the result as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::Args)]
pub struct NameArgs {
    /// The VDB.
    pub name: String,
    /// How long to wait for another operation on this VDB.
    #[arg(long, value_parser = duration_arg, default_value = "10m", value_name = "DURATION")]
    pub lock_timeout: Duration,
    #[command(flatten)]
    pub timeouts: TimeoutArgs,
    /// Print the result as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::Subcommand)]
pub enum Command {
    /// List VDBs, with the space their data holds of its own.
    List {
        /// Print JSON on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Run VDBs' virtual status hooks (all, or one).
    Status {
        /// Only this VDB.
        name: Option<String>,
        #[command(flatten)]
        timeouts: TimeoutArgs,
        /// Print JSON on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Start a VDB (virtual start).
    Start(NameArgs),
    /// Stop a VDB (virtual stop).
    Stop(NameArgs),
    /// Move a VDB to another snapshot of its dSource: stop, unconfigure,
    /// clone the snapshot, configure, start. Its changes are discarded.
    #[command(
        after_help = "Example:\n  lunabox vdb refresh dev1            # to the dSource's newest snapshot"
    )]
    Refresh {
        #[command(flatten)]
        args: NameArgs,
        /// The snapshot of the dSource (default: its newest).
        #[arg(long, value_name = "SNAPSHOT")]
        to: Option<u64>,
    },
    /// Snapshot a VDB (virtual preSnapshot, snapshot, postSnapshot); list
    /// them with `lunabox snapshots VDB`.
    Snapshot(NameArgs),
    /// Remove a VDB: stop, unconfigure, delete its data and snapshots.
    Rm {
        #[command(flatten)]
        args: NameArgs,
        /// Remove it even when its hooks fail (or its toolkit is gone).
        #[arg(long)]
        force: bool,
    },
}

pub fn provision(ctx: &Context, a: ProvisionArgs) -> anyhow::Result<ExitCode> {
    let mut engine = open_engine(ctx)?;
    let mut params = match &a.params_file {
        Some(p) => match read_json_file(p, "--params")? {
            Value::Object(m) => m,
            _ => bail!("--params `{}` must hold a JSON object", p.display()),
        },
        None => Map::new(),
    };
    if !a.params.is_empty() {
        let ds_name = a.from.split('@').next().unwrap_or_default();
        let ds = dsources::get(engine.state(), ds_name)?;
        let tk = provision::toolkit_for(&engine, &ds)?;
        for p in &a.params {
            let Some((k, v)) = p.split_once('=') else {
                bail!("--param `{p}` must be KEY=VALUE");
            };
            params.insert(k.to_string(), provision::parse_param(&tk, k, v)?);
        }
    }
    let req = ProvisionRequest {
        name: a.name.clone(),
        from: a.from,
        environment: a.environment,
        user: a.user,
        parameters: params,
        lock_timeout: a.lock_timeout,
    };
    a.timeouts.apply(&mut engine)?;
    let r = provision::provision(&mut engine, &req, &Stderr::new(None))?;
    finish(&r, a.json, &a.name)
}

fn finish(r: &VdbReport, json: bool, name: &str) -> anyhow::Result<ExitCode> {
    if json {
        print_json(r)?;
    } else if r.ok() {
        match (&r.vdb, &r.snapshot) {
            (_, Some(s)) => {
                let stats: lunabox_engine::snapshots::SnapshotStats =
                    serde_json::from_value(s.stats.clone()).unwrap_or_default();
                say!(
                    "snapshot {} of VDB `{name}` taken (job {}): {}",
                    s.id,
                    r.job.id,
                    snapshot_note(&stats)
                );
            }
            (Some(v), None) => say!(
                "VDB `{name}` {} (job {}): from snapshot {} of `{}`, data at {}",
                v["state"].as_str().unwrap_or_default(),
                r.job.id,
                v["snapshot"],
                v["dsource"].as_str().unwrap_or_default(),
                v["dataDirectory"].as_str().unwrap_or_default()
            ),
            (None, None) => say!("VDB `{name}` removed (job {})", r.job.id),
        }
    } else {
        print_job(&r.job, false);
        say_err!(
            "`lunabox faults {name}` shows the failures' output; `lunabox job {}` the whole job",
            r.job.id
        );
    }
    Ok(job_exit(r.ok()))
}

pub fn run(ctx: &Context, c: Command) -> anyhow::Result<ExitCode> {
    let mut engine = open_engine(ctx)?;
    let progress = Stderr::new(None);
    match c {
        Command::List { json } => {
            let list = provision::list(&engine)?;
            if json {
                print_json(&list)?;
                return Ok(ExitCode::SUCCESS);
            }
            if list.is_empty() {
                say!("no VDBs; `lunabox provision NAME --from DSOURCE --environment E` makes one");
                return Ok(ExitCode::SUCCESS);
            }
            let rows: Vec<Vec<String>> = list
                .iter()
                .map(|l| {
                    let v = &l.vdb;
                    vec![
                        v["name"].as_str().unwrap_or_default().to_string(),
                        format!(
                            "{}@{}",
                            v["dsource"].as_str().unwrap_or_default(),
                            v["snapshot"]
                        ),
                        v["environment"].as_str().unwrap_or_default().to_string(),
                        v["state"].as_str().unwrap_or_default().to_string(),
                        v["lastStatus"].as_str().unwrap_or("-").to_string(),
                        l.usage
                            .map(|u| human_bytes(u.exclusive_bytes))
                            .unwrap_or_else(|| "-".into()),
                        l.usage
                            .map(|u| human_bytes(u.shared_bytes))
                            .unwrap_or_else(|| "-".into()),
                        format_ms(v["createdMs"].as_i64().unwrap_or(0)),
                    ]
                })
                .collect();
            print_table(
                &[
                    "VDB",
                    "FROM",
                    "ENVIRONMENT",
                    "STATE",
                    "STATUS",
                    "OWN",
                    "SHARED",
                    "CREATED",
                ],
                &rows,
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Status {
            name,
            timeouts,
            json,
        } => {
            timeouts.apply(&mut engine)?;
            let list = provision::status(&mut engine, name.as_deref())?;
            if json {
                if name.is_some() {
                    print_json(&list[0])?;
                } else {
                    print_json(&list)?;
                }
                return Ok(ExitCode::SUCCESS);
            }
            if list.is_empty() {
                say!("no VDBs");
                return Ok(ExitCode::SUCCESS);
            }
            let rows: Vec<Vec<String>> = list
                .iter()
                .map(|s| {
                    vec![
                        s.vdb.clone(),
                        format!("{}@{}", s.dsource, s.snapshot),
                        s.state.as_str().to_string(),
                        format!("{} ({})", s.status, s.status_from),
                        s.open_faults.to_string(),
                    ]
                })
                .collect();
            print_table(&["VDB", "FROM", "STATE", "STATUS", "FAULTS"], &rows);
            Ok(ExitCode::SUCCESS)
        }
        Command::Start(a) => {
            a.timeouts.apply(&mut engine)?;
            let r = provision::set_running(&mut engine, &a.name, true, a.lock_timeout, &progress)?;
            finish(&r, a.json, &a.name)
        }
        Command::Stop(a) => {
            a.timeouts.apply(&mut engine)?;
            let r = provision::set_running(&mut engine, &a.name, false, a.lock_timeout, &progress)?;
            finish(&r, a.json, &a.name)
        }
        Command::Refresh { args: a, to } => {
            a.timeouts.apply(&mut engine)?;
            let r = provision::refresh(&mut engine, &a.name, to, a.lock_timeout, &progress)?;
            finish(&r, a.json, &a.name)
        }
        Command::Snapshot(a) => {
            a.timeouts.apply(&mut engine)?;
            let r = provision::snapshot(&mut engine, &a.name, a.lock_timeout, &progress)?;
            finish(&r, a.json, &a.name)
        }
        Command::Rm { args: a, force } => {
            a.timeouts.apply(&mut engine)?;
            vdbs::get(engine.state(), &a.name)?;
            let r = provision::remove(&mut engine, &a.name, force, a.lock_timeout, &progress)?;
            finish(&r, a.json, &a.name)
        }
    }
}
