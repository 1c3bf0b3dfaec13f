//! `--storage-driver` and `lunabox storage`.

use std::process::ExitCode;

use super::Context;
use super::jobs::{open_engine, print_json, print_table};
use lunabox_engine::snapsync::human_bytes;
use lunabox_engine::storage::DriverKind;
use lunabox_engine::{catalog, dsources, vdbs};

/// A `--storage-driver` value: a driver, or `None` for `auto`.
#[derive(Debug, Clone, Copy)]
pub struct Requested(pub Option<DriverKind>);

pub fn driver_arg(text: &str) -> Result<Requested, String> {
    if text.trim().eq_ignore_ascii_case("auto") {
        return Ok(Requested(None));
    }
    text.parse().map(|k| Requested(Some(k)))
}

#[derive(clap::Args)]
#[command(
    after_help = "Shows the storage driver the state directory records, the filesystem of its storage, and what each dSource and VDB holds there (measured from the filesystem: exclusive blocks are freed when the thing goes, shared blocks are also someone else's).\n\nExample:\n  lunabox storage --json"
)]
pub struct Args {
    /// Print JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

pub fn run(ctx: &Context, a: Args) -> anyhow::Result<ExitCode> {
    let engine = open_engine(ctx)?;
    let choice = engine.storage().clone();
    let root = engine.paths().storage_root();
    let now_fs = lunabox_engine::storage::filesystem_of(&root).unwrap_or_else(|e| e.to_string());
    let mut rows = Vec::new();
    let names: Vec<(String, &str)> = dsources::list(engine.state())?
        .into_iter()
        .map(|d| (d.name, "dSource"))
        .chain(
            vdbs::list(engine.state())?
                .into_iter()
                .map(|v| (v.name, "VDB")),
        )
        .collect();
    for (name, kind) in &names {
        let store = engine.store(name);
        let live = store.live_usage().ok();
        let mut snaps = lunabox_engine::storage::Usage::default();
        for r in catalog::list(engine.state(), name)? {
            if let Ok(u) = store.usage(r.id) {
                snaps.exclusive_bytes += u.exclusive_bytes;
                snaps.shared_bytes += u.shared_bytes;
            }
        }
        rows.push(serde_json::json!({
            "name": name, "kind": kind, "live": live,
            "snapshotsExclusiveBytes": snaps.exclusive_bytes,
        }));
    }
    if a.json {
        print_json(&serde_json::json!({
            "driver": choice.driver,
            "filesystem": choice.filesystem,
            "filesystemNow": now_fs,
            "reason": choice.reason,
            "storage": root,
            "sources": rows,
        }))?;
        return Ok(ExitCode::SUCCESS);
    }
    say!(
        "storage driver `{}` ({}), storage {} on {}",
        choice.driver,
        choice.reason,
        root.display(),
        now_fs
    );
    if choice.driver == DriverKind::Copy {
        say!(
            "{}",
            lunabox_engine::storage::copy_warning(&choice.filesystem)
        );
    }
    if !rows.is_empty() {
        let table: Vec<Vec<String>> = rows
            .iter()
            .map(|r| {
                let b = |v: &serde_json::Value| human_bytes(v.as_u64().unwrap_or(0));
                vec![
                    r["name"].as_str().unwrap_or_default().to_string(),
                    r["kind"].as_str().unwrap_or_default().to_string(),
                    b(&r["live"]["exclusiveBytes"]),
                    b(&r["live"]["sharedBytes"]),
                    b(&r["snapshotsExclusiveBytes"]),
                ]
            })
            .collect();
        print_table(
            &[
                "NAME",
                "KIND",
                "DATA ONLY ITS OWN",
                "DATA SHARED",
                "SNAPSHOTS ONLY THEIR OWN",
            ],
            &table,
        );
    }
    Ok(ExitCode::SUCCESS)
}
