//! Snapshot store benchmark, three cases
//! (`LUNABOX_BENCH_CASE=files|database|postgres`, default all):
//!
//! * **files**: an incremental snapshot of a data directory with 1% of its
//!   files changed, against a full copy (`cp -a`) of the same directory in
//!   the same run (issue 4 target: under 10% of the copy's time and bytes);
//! * **database**: big files with 1% of their 8 KiB pages rewritten in
//!   place, for each storage driver on a filesystem of its kind (see
//!   `database_case.rs`; issue 12);
//! * **postgres**: a real ~1 GiB PostgreSQL cluster (pgbench) in the live
//!   directory, pgbench changing about 1% of its pages between snapshots
//!   (`postgres_case.rs`; root only; `LUNABOX_BENCH_PG_SCALE`, default 68).
//!
//! Reports time and bytes stored (new disk blocks) as tables on stdout and
//! one JSON line per case.
//!
//! ```text
//! cargo bench -p lunabox-engine --bench snapshots                  # 1 GiB
//! LUNABOX_BENCH_SIZE=64MiB cargo bench -p lunabox-engine --bench snapshots
//! LUNABOX_BENCH_CASE=database LUNABOX_BENCH_DB_SIZE=256MiB LUNABOX_BENCH_IMAGE_SIZE=1GiB \
//!     cargo bench -p lunabox-engine --bench snapshots
//! ```
//! Env: `LUNABOX_BENCH_SIZE` (default 1GiB), `LUNABOX_BENCH_FILE_SIZE`
//! (default 256KiB), `LUNABOX_BENCH_ROUNDS` (default 3),
//! `LUNABOX_BENCH_DIR` (default: cargo's target tmp dir); for the database
//! case `LUNABOX_BENCH_DB_SIZE` (default 1GiB), `LUNABOX_BENCH_DB_FILE_SIZE`
//! (default 256MiB), `LUNABOX_BENCH_IMAGE_SIZE` (default 3.5 GiB sparse).
//!
//! Both sides read from the page cache (the data was just written). The
//! snapshot fsyncs what it copies (it must survive a crash); `cp -a` does
//! not, so the comparison favours the copy.

use std::collections::HashSet;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

mod database_case;
mod postgres_case;

use lunabox_engine::snapshots::SnapshotStore;
use lunabox_toolkit::units::parse_size;
use rand::RngCore;

fn env_size(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(v) => parse_size(&v).unwrap_or_else(|e| panic!("{name}: {e}")),
        Err(_) => default,
    }
}

/// Disk bytes of the files under `dir` whose inodes are not in `exclude`
/// (each inode once).
fn new_bytes(dir: &Path, exclude: &HashSet<(u64, u64)>) -> u64 {
    let mut seen = HashSet::new();
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let md = std::fs::symlink_metadata(e.path()).unwrap();
            let key = (md.dev(), md.ino());
            if md.is_dir() {
                stack.push(e.path());
            }
            if !exclude.contains(&key) && seen.insert(key) {
                total += md.blocks() * 512;
            }
        }
    }
    total
}

fn inodes(dir: &Path) -> HashSet<(u64, u64)> {
    let mut out = HashSet::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let md = std::fs::symlink_metadata(e.path()).unwrap();
            if md.is_dir() {
                stack.push(e.path());
            }
            out.insert((md.dev(), md.ino()));
        }
    }
    out
}

fn write_random(path: &Path, size: usize, rng: &mut impl RngCore) {
    let mut buf = vec![0u8; size];
    rng.fill_bytes(&mut buf);
    std::fs::write(path, buf).unwrap();
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn human(b: u64) -> String {
    if b >= 1 << 30 {
        format!("{:.2} GiB", b as f64 / (1u64 << 30) as f64)
    } else if b >= 1 << 20 {
        format!("{:.1} MiB", b as f64 / (1u64 << 20) as f64)
    } else {
        format!("{:.1} KiB", b as f64 / 1024.0)
    }
}

fn main() {
    // `cargo bench` passes `--bench`; ignore arguments.
    let which = std::env::var("LUNABOX_BENCH_CASE").unwrap_or_default();
    let rounds = std::env::var("LUNABOX_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3usize)
        .max(1);
    let base: PathBuf = std::env::var_os("LUNABOX_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_TARGET_TMPDIR")));
    std::fs::create_dir_all(&base).unwrap();
    if which.is_empty() || which == "files" {
        files_case();
    }
    if which.is_empty() || which == "database" {
        let total = env_size("LUNABOX_BENCH_DB_SIZE", 1 << 30);
        let file = env_size("LUNABOX_BENCH_DB_FILE_SIZE", 256 << 20).min(total);
        let image = env_size("LUNABOX_BENCH_IMAGE_SIZE", 7 << 29);
        let figs = database_case::run(&base, total, file, rounds, image);
        database_case::report(&figs, rounds);
    }
    if which.is_empty() || which == "postgres" {
        let image = env_size("LUNABOX_BENCH_IMAGE_SIZE", 6 << 30);
        postgres_case::run(&base, image);
    }
}

/// The files case (issue 4).
fn files_case() {
    let total = env_size("LUNABOX_BENCH_SIZE", 1 << 30);
    let file_size = env_size("LUNABOX_BENCH_FILE_SIZE", 256 << 10) as usize;
    let rounds = std::env::var("LUNABOX_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3usize)
        .max(1);
    let base: PathBuf = std::env::var_os("LUNABOX_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_TARGET_TMPDIR")));
    std::fs::create_dir_all(&base).unwrap();
    let tmp = tempfile::tempdir_in(&base).unwrap();
    let store = SnapshotStore::new(&tmp.path().join("ds"));
    store.create().unwrap();
    let live = store.live_dir();

    let files = (total / file_size as u64).max(100) as usize;
    let dirs = (files / 64).max(1);
    let changed = (files / 100).max(1);
    eprintln!(
        "writing {} in {files} files of {} ({dirs} directories) under {}",
        human(files as u64 * file_size as u64),
        human(file_size as u64),
        tmp.path().display()
    );
    let mut rng = rand::rng();
    let paths: Vec<PathBuf> = (0..files)
        .map(|i| {
            live.join(format!("d{:03}", i % dirs))
                .join(format!("f{i:06}.dat"))
        })
        .collect();
    for p in &paths {
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        write_random(p, file_size, &mut rng);
    }
    // Real data is older than the store's racy-file window.
    std::thread::sleep(Duration::from_millis(100));

    let t = Instant::now();
    let b = store.build(1, None).unwrap();
    store.commit(b).unwrap();
    let full_snapshot = t.elapsed();
    eprintln!(
        "initial snapshot (full copy, fsynced): {:.0} ms",
        ms(full_snapshot)
    );

    let mut cp_ms = Vec::new();
    let mut cp_bytes = 0;
    let mut inc_ms = Vec::new();
    let mut inc_bytes = Vec::new();
    let mut prev = 1u64;
    for round in 0..rounds {
        // Change 1% of the files (rewritten with new content).
        for k in 0..changed {
            let idx = (round * 7919 + k * (files / changed)) % files;
            write_random(&paths[idx], file_size, &mut rng);
        }
        std::thread::sleep(Duration::from_millis(50));

        let copy = tmp.path().join(format!("cp-{round}"));
        let t = Instant::now();
        let st = Command::new("cp")
            .arg("-a")
            .arg(&live)
            .arg(&copy)
            .status()
            .unwrap();
        cp_ms.push(ms(t.elapsed()));
        assert!(st.success(), "cp -a failed");
        cp_bytes = new_bytes(&copy, &HashSet::new());
        std::fs::remove_dir_all(&copy).unwrap();

        let before = inodes(&store.snapshot_dir(prev));
        let id = prev + 1;
        let t = Instant::now();
        let b = store.build(id, Some(prev)).unwrap();
        let stats = store.commit(b).unwrap();
        inc_ms.push(ms(t.elapsed()));
        let stored = new_bytes(&store.snapshot_dir(id), &before);
        inc_bytes.push(stored);
        assert_eq!(stats.copied_files as usize, changed, "{stats:?}");
        eprintln!(
            "round {}: cp -a {:.0} ms; incremental snapshot {:.1} ms, {} files copied, {} stored",
            round + 1,
            cp_ms.last().unwrap(),
            inc_ms.last().unwrap(),
            stats.copied_files,
            human(stored)
        );
        prev = id;
    }
    let cp_t = median(cp_ms.clone());
    let inc_t = median(inc_ms.clone());
    let inc_b = median(inc_bytes.iter().map(|&b| b as f64).collect()) as u64;
    let time_pct = 100.0 * inc_t / cp_t;
    let bytes_pct = 100.0 * inc_b as f64 / cp_bytes as f64;
    let pass = time_pct < 10.0 && bytes_pct < 10.0;

    println!();
    println!(
        "snapshot benchmark: {} in {files} files, {changed} changed (1%), median of {rounds} round(s)",
        human(files as u64 * file_size as u64)
    );
    println!("{:<28} {:>12} {:>14}", "", "time", "bytes stored");
    println!(
        "{:<28} {:>9.0} ms {:>14}",
        "full copy (cp -a)",
        cp_t,
        human(cp_bytes)
    );
    println!(
        "{:<28} {:>9.1} ms {:>14}",
        "incremental snapshot",
        inc_t,
        human(inc_b)
    );
    println!(
        "{:<28} {:>11.2}% {:>13.2}%",
        "incremental / full", time_pct, bytes_pct
    );
    println!(
        "target: under 10% of the full copy's time and bytes: {}",
        if pass { "MET" } else { "NOT MET" }
    );
    println!(
        "{}",
        serde_json::json!({
            "bench": "snapshots",
            "bytes": files as u64 * file_size as u64,
            "files": files,
            "changedFiles": changed,
            "rounds": rounds,
            "cpMs": cp_t,
            "cpBytes": cp_bytes,
            "incrementalMs": inc_t,
            "incrementalBytes": inc_b,
            "initialSnapshotMs": ms(full_snapshot),
            "timePercent": time_pct,
            "bytesPercent": bytes_pct,
            "targetMet": pass,
        })
    );
}
