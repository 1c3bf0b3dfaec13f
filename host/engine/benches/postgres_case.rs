//! The real-PostgreSQL case of the snapshot benchmark (issue 12 part 4): a
//! cluster of about 1 GiB (`pgbench -i`, scale `LUNABOX_BENCH_PG_SCALE`,
//! default 68) runs in a dSource's live directory; after a first snapshot,
//! pgbench transactions change about 1% of its pages (one transaction per
//! 100 pages of pgbench_accounts: each updates one random account row, a
//! teller, a branch and adds a history row), a CHECKPOINT writes them out,
//! and the incremental snapshot is timed and its new space measured, against
//! a full copy (`cp -a --reflink=never`) of the same data on the same
//! filesystem. Per driver where it can run: `copy` in the bench directory,
//! `btrfs` and `reflink` on loop-mounted images (root only; 6 GiB sparse
//! unless `LUNABOX_BENCH_IMAGE_SIZE` says otherwise).
//!
//! Needs root (the cluster runs as the `postgres` account) and PostgreSQL
//! in /usr/lib/postgresql; elsewhere it says so loudly and is left out.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Instant;

use lunabox_engine::snapshots::SnapshotStore;
use lunabox_engine::storage::{self, DriverKind};

use super::database_case::{big_loop, syncfs, used};

const OS_USER: &str = "postgres";

fn human(b: u64) -> String {
    if b >= 1 << 30 {
        format!("{:.2} GiB", b as f64 / (1u64 << 30) as f64)
    } else {
        format!("{:.1} MiB", b as f64 / (1u64 << 20) as f64)
    }
}

fn as_pg(program: &Path, args: &[&str]) -> Output {
    let o = Command::new("runuser")
        .args(["-u", OS_USER, "--"])
        .arg(program)
        .args(args)
        .current_dir("/")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "{} {args:?} failed: {}{}",
        program.display(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

fn chown_pg(p: &Path) {
    let ok = Command::new("chown")
        .args(["-R", &format!("{OS_USER}:")])
        .arg(p)
        .status()
        .unwrap()
        .success();
    assert!(ok, "chown {}", p.display());
}

/// Let the postgres account reach `p` through every directory above it.
fn open_path(p: &Path) {
    use std::os::unix::fs::PermissionsExt;
    for a in p.ancestors().skip(1) {
        if let Ok(m) = std::fs::metadata(a)
            && m.permissions().mode() & 0o001 == 0
        {
            let mode = m.permissions().mode() | 0o011;
            let _ = std::fs::set_permissions(a, std::fs::Permissions::from_mode(mode));
        }
    }
}

/// A cluster under test: its bin directory, socket directory and port.
struct Cluster {
    bin: PathBuf,
    data: PathBuf,
    sock: PathBuf,
    port: u16,
}

impl Cluster {
    fn sql(&self, sql: &str) -> String {
        let port = self.port.to_string();
        let o = as_pg(
            &self.bin.join("psql"),
            &[
                "-X",
                "-A",
                "-t",
                "-q",
                "-h",
                self.sock.to_str().unwrap(),
                "-p",
                &port,
                "-U",
                OS_USER,
                "-d",
                "postgres",
                "-c",
                sql,
            ],
        );
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    }
    fn start(&self) {
        // A small WAL (checkpoints recycle it), so a copy is the data.
        let opts = format!(
            "-p {} -k {} -c listen_addresses='' -c fsync=off -c max_wal_size=256MB -c min_wal_size=32MB",
            self.port,
            self.sock.display()
        );
        as_pg(
            &self.bin.join("pg_ctl"),
            &[
                "-D",
                self.data.to_str().unwrap(),
                "-o",
                &opts,
                "-l",
                self.sock.join("log").to_str().unwrap(),
                "-w",
                "start",
            ],
        );
    }
    fn stop(&self) {
        let _ = Command::new("runuser")
            .args(["-u", OS_USER, "--"])
            .arg(self.bin.join("pg_ctl"))
            .args([
                "-D",
                self.data.to_str().unwrap(),
                "-m",
                "fast",
                "-w",
                "stop",
            ])
            .current_dir("/")
            .output();
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.stop();
    }
}

/// One driver's figures.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Figures {
    pub driver: DriverKind,
    pub filesystem: String,
    pub database_bytes: u64,
    pub transactions: u64,
    pub changed_pages_percent: f64,
    pub pgbench_ms: f64,
    pub snapshot_ms: f64,
    pub cp_synced_ms: f64,
    pub snapshot_new_bytes: u64,
    pub cp_bytes: u64,
    pub previous_exclusive_bytes: u64,
    pub provision_ms: f64,
}

fn pg_bin() -> Option<PathBuf> {
    let mut v: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| {
            let e = e.ok()?;
            Some((e.file_name().to_str()?.parse().ok()?, e.path().join("bin")))
        })
        .filter(|(_, b): &(u32, PathBuf)| b.join("pgbench").exists() && b.join("initdb").exists())
        .collect();
    v.sort();
    v.pop().map(|(_, b)| b)
}

fn case(kind: DriverKind, base: &Path, master: &Path, bin: &Path, port: u16) -> Figures {
    let tmp = tempfile::tempdir_in(base).unwrap();
    let store = SnapshotStore::with_driver(&tmp.path().join("ds"), storage::driver(kind));
    store.create().unwrap();
    let live = store.live_dir();
    open_path(&live);
    let sock = tmp.path().join("sock");
    std::fs::create_dir(&sock).unwrap();
    chown_pg(&sock);
    let ok = Command::new("cp")
        .args(["-a", "--reflink=never"])
        .arg(format!("{}/.", master.display()))
        .arg(&live)
        .status()
        .unwrap()
        .success();
    assert!(ok, "copying the cluster into the live directory");
    chown_pg(&live);
    let pg = Cluster {
        bin: bin.to_path_buf(),
        data: live.clone(),
        sock,
        port,
    };
    pg.start();
    pg.sql("CHECKPOINT");
    std::thread::sleep(std::time::Duration::from_millis(100));
    store.commit(store.build(1, None).unwrap()).unwrap();

    let database_bytes: u64 = pg
        .sql("SELECT pg_database_size('postgres')")
        .parse()
        .unwrap();
    let pages: u64 = pg
        .sql("SELECT pg_relation_size('pgbench_accounts') / 8192")
        .parse()
        .unwrap();
    let transactions = (pages / 100).max(1);
    pg.sql("CREATE EXTENSION IF NOT EXISTS pageinspect");
    let lsn1 = pg.sql("SELECT pg_current_wal_lsn()");
    let t = Instant::now();
    let port_s = port.to_string();
    as_pg(
        &bin.join("pgbench"),
        &[
            "-h",
            pg.sock.to_str().unwrap(),
            "-p",
            &port_s,
            "-U",
            OS_USER,
            "-n",
            "-t",
            &transactions.to_string(),
            "postgres",
        ],
    );
    pg.sql("CHECKPOINT");
    let pgbench_ms = t.elapsed().as_secs_f64() * 1000.0;
    // Pages of pgbench_accounts whose LSN moved past the first snapshot.
    let changed: u64 = pg
        .sql(&format!(
            "SELECT count(*) FROM generate_series(0, {pages} - 1) b \
             WHERE (page_header(get_raw_page('pgbench_accounts', b::int))).lsn > '{lsn1}'"
        ))
        .parse()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(100));
    let before = used(base);
    let t = Instant::now();
    let stats = store.commit(store.build(2, Some(1)).unwrap()).unwrap();
    let snapshot_ms = t.elapsed().as_secs_f64() * 1000.0;
    eprintln!(
        "postgres case, {}: snapshot of {} files: {} copied ({} MiB, {} cloned), {} linked",
        kind,
        stats.files,
        stats.copied_files,
        stats.copied_bytes >> 20,
        stats.reflinked_files,
        stats.linked_files
    );
    let snapshot_new_bytes = used(base).saturating_sub(before);
    let prev = store.usage(1).unwrap();

    let before = used(base);
    let copy = tmp.path().join("cp");
    let t = Instant::now();
    let ok = Command::new("cp")
        .args(["-a", "--reflink=never"])
        .arg(&live)
        .arg(&copy)
        .status()
        .unwrap()
        .success();
    assert!(ok);
    syncfs(base);
    let cp_synced_ms = t.elapsed().as_secs_f64() * 1000.0;
    let cp_bytes = used(base).saturating_sub(before);
    std::fs::remove_dir_all(&copy).unwrap();

    let vdb = tmp.path().join("vdb");
    std::fs::create_dir(&vdb).unwrap();
    let t = Instant::now();
    store.clone_to(2, &vdb.join("data")).unwrap();
    let provision_ms = t.elapsed().as_secs_f64() * 1000.0;
    drop(pg);
    lunabox_engine::snapshots::force_remove(&vdb).unwrap();
    for id in 1..=2 {
        store.remove(id).unwrap();
    }
    lunabox_engine::snapshots::force_remove(&live).unwrap();
    Figures {
        driver: kind,
        filesystem: storage::filesystem_of(base).unwrap_or_default(),
        database_bytes,
        transactions,
        changed_pages_percent: 100.0 * changed as f64 / pages.max(1) as f64,
        pgbench_ms,
        snapshot_ms,
        cp_synced_ms,
        snapshot_new_bytes,
        cp_bytes,
        previous_exclusive_bytes: prev.exclusive_bytes,
        provision_ms,
    }
}

/// Run the case for every driver that can run here (see the module doc);
/// `image` sizes the sparse loop images (the cluster, its copy and the
/// changes must fit).
pub fn run(base: &Path, image: u64) {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("*** SKIPPED postgres case: needs root (the cluster runs as `postgres`) ***");
        return;
    }
    let Some(bin) = pg_bin() else {
        eprintln!("*** SKIPPED postgres case: no PostgreSQL in /usr/lib/postgresql ***");
        return;
    };
    let scale = std::env::var("LUNABOX_BENCH_PG_SCALE").unwrap_or_else(|_| "68".into());
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    // One pgbench -i, copied into each driver's live directory.
    let master_dir = tempfile::tempdir_in(base).unwrap();
    open_path(&master_dir.path().join("x"));
    let master = master_dir.path().join("cluster");
    let sock = master_dir.path().join("sock");
    for d in [&master, &sock] {
        std::fs::create_dir(d).unwrap();
        chown_pg(d);
    }
    let t = Instant::now();
    as_pg(
        &bin.join("initdb"),
        &[
            "-D",
            master.to_str().unwrap(),
            "-U",
            OS_USER,
            "--auth=trust",
            "-N",
        ],
    );
    {
        let pg = Cluster {
            bin: bin.clone(),
            data: master.clone(),
            sock: sock.clone(),
            port,
        };
        pg.start();
        as_pg(
            &bin.join("pgbench"),
            &[
                "-h",
                sock.to_str().unwrap(),
                "-p",
                &port.to_string(),
                "-U",
                OS_USER,
                "-i",
                "-q",
                "-s",
                &scale,
                "postgres",
            ],
        );
        pg.sql("CHECKPOINT");
    }
    eprintln!(
        "postgres case: pgbench -i -s {scale} in {:.0} s",
        t.elapsed().as_secs_f64()
    );
    let mut figs = vec![case(DriverKind::Copy, base, &master, &bin, port)];
    eprintln!("postgres case: {:?}", figs[0]);
    let image_mib = (image >> 20).min(1024 * 64);
    for (fs, kind) in [("btrfs", DriverKind::Btrfs), ("xfs", DriverKind::Reflink)] {
        match big_loop(fs, image_mib) {
            Some(m) => {
                open_path(&m.mnt.join("x"));
                figs.push(case(kind, &m.mnt, &master, &bin, port));
                eprintln!("postgres case: {:?}", figs[figs.len() - 1]);
            }
            None => eprintln!("*** {kind} driver left out: no {fs} filesystem ***"),
        }
    }
    report(&figs);
}

fn report(figs: &[Figures]) {
    let Some(first) = figs.first() else { return };
    println!();
    println!(
        "postgres benchmark: a {} database, {} pgbench transactions changed {:.2}% of pgbench_accounts' pages, then CHECKPOINT",
        human(first.database_bytes),
        first.transactions,
        first.changed_pages_percent
    );
    println!(
        "{:<18} {:>10} {:>12} {:>12} {:>12} {:>7} {:>12} {:>9}",
        "driver (fs)", "snapshot", "cp -a+sync", "snap new", "cp new", "space%", "prev excl", "VDB"
    );
    for f in figs {
        println!(
            "{:<18} {:>7.1} ms {:>9.0} ms {:>12} {:>12} {:>6.2}% {:>12} {:>6.1} ms",
            format!("{} ({})", f.driver, f.filesystem),
            f.snapshot_ms,
            f.cp_synced_ms,
            human(f.snapshot_new_bytes),
            human(f.cp_bytes),
            100.0 * f.snapshot_new_bytes as f64 / f.cp_bytes.max(1) as f64,
            human(f.previous_exclusive_bytes),
            f.provision_ms,
        );
    }
    println!(
        "{}",
        serde_json::json!({"bench": "snapshots-postgres", "drivers": figs})
    );
}
