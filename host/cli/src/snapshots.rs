//! `lunabox snapshots` and `lunabox snapshot export|rm`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use super::Context;
use super::jobs::{duration_arg, open_engine, print_json, print_table};
use lunabox_engine::progress::{Stderr, human};
use lunabox_engine::snapsync::human_bytes;
use lunabox_engine::state::format_ms;
use lunabox_engine::{catalog, dsources, retention, vdbs};

#[derive(clap::Args)]
#[command(after_help = "Example:\n  lunabox snapshots db1")]
pub struct ListArgs {
    /// The dSource.
    pub name: String,
    /// Print JSON on stdout (with each snapshot's metadata and stats).
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::Subcommand)]
pub enum Command {
    /// Write an independent, usable copy of a snapshot into DIR (new or empty).
    #[command(after_help = "Example:\n  lunabox snapshot export db1 2 /tmp/db1-at-2")]
    Export {
        /// The dSource.
        name: String,
        /// The snapshot id (from `lunabox snapshots NAME`).
        snapshot: u64,
        /// Destination directory (must not exist, or be empty).
        dir: PathBuf,
        /// How long to wait for another operation on this dSource.
        #[arg(long, value_parser = duration_arg, default_value = "10m", value_name = "DURATION")]
        lock_timeout: Duration,
        /// Print JSON on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Remove a snapshot (files shared with other snapshots stay with them).
    #[command(after_help = "Example:\n  lunabox snapshot rm db1 1")]
    Rm {
        /// The dSource.
        name: String,
        /// The snapshot id.
        snapshot: u64,
        /// How long to wait for another operation on this dSource.
        #[arg(long, value_parser = duration_arg, default_value = "10m", value_name = "DURATION")]
        lock_timeout: Duration,
        /// Print JSON on stdout.
        #[arg(long)]
        json: bool,
    },
}

/// A snapshot as `snapshots` shows it: its row, the VDBs provisioned from
/// it, and the space it holds now, from the filesystem.
#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct Listed {
    #[serde(flatten)]
    row: catalog::SnapshotRow,
    vdbs: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    usage: Option<lunabox_engine::storage::Usage>,
}

pub fn list(ctx: &Context, a: ListArgs) -> anyhow::Result<ExitCode> {
    let engine = open_engine(ctx)?;
    if vdbs::get_opt(engine.state(), &a.name)?.is_none() {
        dsources::get(engine.state(), &a.name)?;
    }
    let store = engine.store(&a.name);
    let mut listed = Vec::new();
    for row in catalog::list(engine.state(), &a.name)? {
        listed.push(Listed {
            vdbs: vdbs::of_snapshot(engine.state(), &a.name, row.id)?,
            usage: store.usage(row.id).ok(),
            row,
        });
    }
    if a.json {
        print_json(&listed)?;
        return Ok(ExitCode::SUCCESS);
    }
    let rows: Vec<_> = listed.iter().map(|l| &l.row).collect();
    if rows.is_empty() {
        say!(
            "dSource `{}` has no snapshots; `lunabox sync {}` takes one",
            a.name,
            a.name
        );
        return Ok(ExitCode::SUCCESS);
    }
    let table: Vec<Vec<String>> = listed
        .iter()
        .map(|l| {
            let (r, s) = (&l.row, &l.row.stats);
            let space = |f: fn(&lunabox_engine::storage::Usage) -> u64| {
                l.usage
                    .as_ref()
                    .map(|u| human_bytes(f(u)))
                    .unwrap_or_else(|| "-".into())
            };
            vec![
                r.id.to_string(),
                format_ms(r.created_ms),
                r.job_id.map(|j| j.to_string()).unwrap_or_default(),
                r.toolkit_version.clone(),
                s["files"].to_string(),
                human_bytes(s["bytes"].as_u64().unwrap_or(0)),
                space(|u| u.exclusive_bytes),
                space(|u| u.shared_bytes),
                human(Duration::from_millis(s["elapsedMs"].as_u64().unwrap_or(0))),
                if l.vdbs.is_empty() {
                    "-".into()
                } else {
                    l.vdbs.join(",")
                },
                r.metadata.to_string(),
            ]
        })
        .collect();
    print_table(
        &[
            "ID",
            "CREATED",
            "JOB",
            "TOOLKIT",
            "FILES",
            "SIZE",
            "EXCLUSIVE",
            "SHARED",
            "TOOK",
            "VDBS",
            "METADATA",
        ],
        &table,
    );
    say!(
        "EXCLUSIVE: blocks only this snapshot holds (freed when it is removed); SHARED: blocks it shares with other snapshots, VDBs or the live data ({} driver)",
        store.driver()
    );
    Ok(ExitCode::SUCCESS)
}

pub fn run(ctx: &Context, c: Command) -> anyhow::Result<ExitCode> {
    let mut engine = open_engine(ctx)?;
    match c {
        Command::Export {
            name,
            snapshot,
            dir,
            lock_timeout,
            json,
        } => {
            let st = retention::export(
                &engine,
                &name,
                snapshot,
                &dir,
                lock_timeout,
                &Stderr::new(None),
            )?;
            if json {
                print_json(&st)?;
            } else {
                say!(
                    "exported snapshot {snapshot} of `{name}` to {}: {} files, {} ({})",
                    dir.display(),
                    st.files,
                    human_bytes(st.bytes),
                    human(Duration::from_millis(st.elapsed_ms))
                );
            }
        }
        Command::Rm {
            name,
            snapshot,
            lock_timeout,
            json,
        } => {
            let r = retention::remove(
                &mut engine,
                &name,
                snapshot,
                lock_timeout,
                &Stderr::new(None),
            )?;
            if json {
                print_json(&r)?;
            } else {
                say!("removed snapshot {snapshot} of `{name}` (job {})", r.job);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
