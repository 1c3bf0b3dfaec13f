//! The postgres toolkit end to end against real PostgreSQL, through the
//! `lunabox` binary: a primary made with initdb on a loopback port and
//! loaded with `pgbench -i`; discovery finds it; it is linked (a streaming
//! standby in the dSource's storage); pgbench writes; SnapSync; more writes;
//! SnapSync; then a third SnapSync while a writer commits one row per
//! transaction. A VDB from each snapshot shows exactly that snapshot's rows
//! (counts and md5 of the ordered rows of every pgbench table; for the
//! third, exactly the rows committed before the snapshot's LSN), passes
//! `pg_amcheck --heapallindexed`, and writing to one changes neither the
//! primary, the staging standby nor the other VDBs. A VDB snapshot is
//! taken (a clean shutdown) and a copy of it starts with the VDB's rows.
//! The staging standby's lifecycle: status, disable and enable, the worker
//! restarting it after it stopped, a forced resync.
//!
//! The clusters run as the Debian `postgres` account, the environment user
//! (PostgreSQL refuses to run as root); lunabox runs as root and switches to
//! it for every Run call. Every cluster the test started is stopped by a
//! guard, even when the test fails. Without root, PostgreSQL or the
//! `postgres` account the test says SKIPPED (common/skip.rs) and returns
//! without checking anything. `the_toolkit_validates_without_warnings` runs
//! anywhere.

#[path = "common/engine.rs"]
mod engine_common;

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use engine_common::*;
use serde_json::{Value, json};

const OS_USER: &str = "postgres";
/// Has a quote, a colon, a backslash and shell syntax: it must reach
/// pg_basebackup and the standby intact and never be printed.
const PASSWORD: &str = "s3cr'et:\\\"$(touch /tmp/pwned)`id`";
const TABLES: &[&str] = &[
    "pgbench_accounts",
    "pgbench_branches",
    "pgbench_tellers",
    "pgbench_history",
];

#[path = "common/skip.rs"]
mod skip;

fn skipped(why: &str) {
    skip::skipped("postgres_e2e", why);
}

/// The newest PostgreSQL bin directory with every program the test uses.
fn pg_bin() -> Option<PathBuf> {
    let mut dirs: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| {
            let e = e.ok()?;
            let major: u32 = e.file_name().to_str()?.parse().ok()?;
            Some((major, e.path().join("bin")))
        })
        .filter(|(_, bin)| {
            [
                "initdb",
                "pg_ctl",
                "postgres",
                "psql",
                "pgbench",
                "pg_amcheck",
            ]
            .iter()
            .all(|p| bin.join(p).exists())
        })
        .collect();
    dirs.sort();
    dirs.pop().map(|(_, b)| b)
}

fn home_of(user: &str) -> Option<PathBuf> {
    let o = Command::new("getent")
        .args(["passwd", user])
        .output()
        .ok()?;
    let line = String::from_utf8_lossy(&o.stdout).into_owned();
    line.trim()
        .split(':')
        .nth(5)
        .map(PathBuf::from)
        .filter(|h| h.is_dir())
}

/// `program args` run as the postgres account from `/`.
fn as_pg(program: &Path, args: &[&str]) -> Output {
    Command::new("runuser")
        .args(["-u", OS_USER, "--"])
        .arg(program)
        .args(args)
        .current_dir("/")
        .env_remove("PGPASSWORD")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// `pg_ctl -D DIR ARGS... -w ACTION` as the clusters' OS user: waits
/// until the action is done.
fn pg_ctl(bin: &Path, dir: &Path, args: &[&str], action: &str) -> Output {
    let mut all = vec!["-D", dir.to_str().unwrap()];
    all.extend_from_slice(args);
    all.extend(["-w", action]);
    as_pg(&bin.join("pg_ctl"), &all)
}

fn must(o: Output, what: &str) -> String {
    assert!(o.status.success(), "{what} failed:\n{}", show(&o));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// `n` distinct free loopback ports.
fn free_ports(n: usize) -> Vec<u16> {
    let ls: Vec<_> = (0..n)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    ls.iter().map(|l| l.local_addr().unwrap().port()).collect()
}

/// A cluster to query: where its socket is and its port.
#[derive(Clone)]
struct Db {
    bin: PathBuf,
    socket: PathBuf,
    port: u16,
}

impl Db {
    fn sql(&self, sql: &str) -> String {
        let o = self.try_sql(sql);
        must(o, &format!("psql on port {}: {sql}", self.port))
            .trim()
            .to_string()
    }
    /// Each statement of `sql` in its own transaction (one `-c` each).
    fn try_sql_each(&self, sql: &[&str]) -> Output {
        let port = self.port.to_string();
        let mut a = vec![
            "-X",
            "-A",
            "-t",
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            "-h",
            self.socket.to_str().unwrap(),
            "-p",
            &port,
            "-U",
            "postgres",
            "-d",
            "postgres",
        ];
        for q in sql {
            a.extend(["-c", q]);
        }
        as_pg(&self.bin.join("psql"), &a)
    }
    fn try_sql(&self, sql: &str) -> Output {
        as_pg(
            &self.bin.join("psql"),
            &[
                "-X",
                "-A",
                "-t",
                "-q",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                self.socket.to_str().unwrap(),
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
                "-d",
                "postgres",
                "-c",
                sql,
            ],
        )
    }
    /// Row count and md5 of the ordered rows of each pgbench table.
    fn sums(&self) -> Vec<String> {
        TABLES
            .iter()
            .map(|t| {
                format!(
                    "{t}: {}",
                    self.sql(&format!(
                        "SELECT count(*) || ' ' || md5(coalesce(string_agg(r::text, E'\\n' ORDER BY r::text), '')) FROM {t} r"
                    ))
                )
            })
            .collect()
    }
    fn amcheck(&self) {
        must(
            as_pg(
                &self.bin.join("pg_amcheck"),
                &[
                    "-h",
                    self.socket.to_str().unwrap(),
                    "-p",
                    &self.port.to_string(),
                    "-U",
                    "postgres",
                    "--all",
                    "--install-missing",
                    "--heapallindexed",
                ],
            ),
            &format!("pg_amcheck on port {}", self.port),
        );
    }
}

/// Stops every cluster the test may have started (by data directory),
/// whatever happened, and removes the toolkit's files of this test's
/// dSource and VDBs from the postgres account's home.
struct Clusters {
    bin: PathBuf,
    dirs: Vec<PathBuf>,
    guids: Vec<String>,
    toolkit_dir: PathBuf,
}

impl Drop for Clusters {
    fn drop(&mut self) {
        for d in &self.dirs {
            let pidfile = d.join("postmaster.pid");
            let Ok(text) = std::fs::read_to_string(&pidfile) else {
                continue;
            };
            // A copy's postmaster.pid names the cluster it was copied from.
            let owner = text.lines().nth(1).map(PathBuf::from);
            if owner.as_deref() != Some(d.as_path())
                && owner.and_then(|o| std::fs::canonicalize(o).ok())
                    != std::fs::canonicalize(d).ok()
            {
                continue;
            }
            let _ = pg_ctl(&self.bin, d, &["-m", "immediate", "-t", "30"], "stop");
            if let Some(pid) = text
                .lines()
                .next()
                .and_then(|p| p.trim().parse::<i32>().ok())
                && std::path::Path::new(&format!("/proc/{pid}")).exists()
                && pidfile.exists()
            {
                // SAFETY: kill has no memory preconditions.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
        for g in &self.guids {
            for f in [
                format!("log/{g}.log"),
                format!("{g}.pgpass"),
                format!("{g}.restart-after-snapshot"),
            ] {
                let _ = std::fs::remove_file(self.toolkit_dir.join(f));
            }
        }
    }
}

/// Wait until the staging standby has replayed everything the primary wrote
/// up to now.
fn wait_caught_up(primary: &Db) {
    let lsn = primary.sql("SELECT pg_current_wal_lsn()");
    let t = Instant::now();
    loop {
        let done = primary.sql(&format!(
            "SELECT coalesce(bool_and(replay_lsn >= '{lsn}'), false) FROM pg_stat_replication WHERE application_name LIKE 'lunabox%'"
        ));
        if done == "t" {
            return;
        }
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "the staging standby did not replay up to {lsn} within a minute"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn pgbench(primary: &Db, args: &[&str]) {
    let port = primary.port.to_string();
    let mut a = vec![
        "-h",
        primary.socket.to_str().unwrap(),
        "-p",
        &port,
        "-U",
        "postgres",
    ];
    a.extend_from_slice(args);
    a.push("postgres");
    must(as_pg(&primary.bin.join("pgbench"), &a), "pgbench");
}

fn lsn_value(lsn: &str) -> u64 {
    let (hi, lo) = lsn.split_once('/').unwrap();
    (u64::from_str_radix(hi, 16).unwrap() << 32) | u64::from_str_radix(lo, 16).unwrap()
}

fn provision(lab: &Lab, name: &str, from: &str, port: u16) -> Value {
    let (ok, v) = lab.json(&[
        "provision",
        name,
        "--from",
        from,
        "--environment",
        "local",
        "--param",
        &format!("port={port}"),
    ]);
    assert!(ok, "provision {name} from {from} failed: {v:#}");
    v
}

fn vdb_guid(lab: &Lab, name: &str) -> String {
    let (_, l) = lab.json(&["vdb", "list"]);
    l.as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == name)
        .and_then(|v| v["guid"].as_str())
        .unwrap_or_default()
        .to_string()
}

#[test]
fn pgbench_snapshots_provision_exact_independent_vdbs() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return skipped("needs root (the clusters run as the postgres account)");
    }
    let Some(bin) = pg_bin() else {
        return skipped(
            "no PostgreSQL with initdb, pgbench and pg_amcheck in /usr/lib/postgresql (apt-get install postgresql)",
        );
    };
    let Some(home) = home_of(OS_USER) else {
        return skipped("no `postgres` account with a home directory");
    };
    let started = Instant::now();
    let lab = Lab::new();
    // The postgres account must reach the storage under the lab.
    std::fs::set_permissions(lab.dir.path(), std::fs::Permissions::from_mode(0o711)).unwrap();
    let primary_dir = lab.path("primary");
    let sock = lab.path("sock");
    for d in [&primary_dir, &sock] {
        std::fs::create_dir(d).unwrap();
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o700)).unwrap();
        must(
            Command::new("chown")
                .arg(format!("{OS_USER}:"))
                .arg(d)
                .output()
                .unwrap(),
            "chown",
        );
    }
    let ports = free_ports(6);
    let (p_primary, p_staging) = (ports[0], ports[1]);
    let mut clusters = Clusters {
        bin: bin.clone(),
        dirs: vec![primary_dir.clone(), lab.storage("pg1").join("data")],
        guids: Vec::new(),
        toolkit_dir: home.join(".lunabox-postgres"),
    };
    for v in ["dev1", "dev2", "dev3"] {
        clusters.dirs.push(lab.storage(v).join("data"));
    }

    // The primary: initdb, a replication role with a password, pgbench -i.
    must(
        as_pg(
            &bin.join("initdb"),
            &[
                "-D",
                primary_dir.to_str().unwrap(),
                "-U",
                "postgres",
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                "-N",
            ],
        ),
        "initdb",
    );
    let mut conf = std::fs::OpenOptions::new()
        .append(true)
        .open(primary_dir.join("postgresql.conf"))
        .unwrap();
    writeln!(
        conf,
        "port = {p_primary}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{}'\n\
         wal_level = replica\nmax_wal_senders = 5\nfsync = off",
        sock.display()
    )
    .unwrap();
    let mut hba = std::fs::OpenOptions::new()
        .append(true)
        .open(primary_dir.join("pg_hba.conf"))
        .unwrap();
    writeln!(
        hba,
        "host replication replicator 127.0.0.1/32 scram-sha-256"
    )
    .unwrap();
    must(
        pg_ctl(
            &bin,
            &primary_dir,
            &["-l", sock.join("primary.log").to_str().unwrap()],
            "start",
        ),
        "starting the primary",
    );
    let primary = Db {
        bin: bin.clone(),
        socket: sock.clone(),
        port: p_primary,
    };
    primary.sql(&format!(
        "CREATE ROLE replicator REPLICATION LOGIN PASSWORD '{}'",
        PASSWORD.replace('\'', "''")
    ));
    pgbench(&primary, &["-i", "-s", "2", "-q"]);

    // lunabox: the local environment as the postgres account; discovery.
    lab.ok(&[
        "env",
        "add",
        "local",
        "--local",
        "--user",
        OS_USER,
        "--no-discovery",
    ]);
    lab.ok(&[
        "toolkit",
        "install",
        repo().join("toolkits/postgres").to_str().unwrap(),
    ]);
    lab.ok(&["env", "refresh", "local"]);
    let (_, shown) = lab.json(&["env", "show", "local"]);
    let bin_real = std::fs::canonicalize(&bin).unwrap();
    assert!(
        shown["repositories"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["value"]["installPath"] == bin_real.to_str().unwrap()),
        "discovery found no repository {}: {shown:#}",
        bin_real.display()
    );
    let primary_real = std::fs::canonicalize(&primary_dir).unwrap();
    let found = shown["sourceConfigs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["value"]["dataDirectory"] == primary_real.to_str().unwrap())
        .unwrap_or_else(|| panic!("discovery did not find the primary: {shown:#}"))
        .clone();
    assert_eq!(found["value"]["port"], p_primary, "{found:#}");
    assert_eq!(found["value"]["host"], "127.0.0.1", "{found:#}");

    // Link (resync: pg_basebackup, a standby; the initial SnapSync).
    let sums1 = primary.sums();
    let params = lab.path("params.json");
    std::fs::write(
        &params,
        json!({"stagingPort": p_staging, "replicationUser": "replicator", "replicationPassword": PASSWORD})
            .to_string(),
    )
    .unwrap();
    let t = Instant::now();
    let o = lab.run(&[
        "link",
        "pg1",
        "--toolkit",
        "postgres",
        "--environment",
        "local",
        "--source-config",
        primary_real.to_str().unwrap(),
        "--params",
        params.to_str().unwrap(),
        "--json",
    ]);
    let link_ms = t.elapsed().as_millis();
    let all = show(&o);
    assert!(o.status.success(), "link failed:\n{all}");
    let linked: Value = serde_json::from_slice(&o.stdout).unwrap();
    clusters
        .guids
        .push(linked["dsource"]["guid"].as_str().unwrap().to_string());
    let staging = Db {
        bin: bin.clone(),
        socket: home.join(".lunabox-postgres"),
        port: p_staging,
    };
    assert_eq!(staging.sql("SELECT pg_is_in_recovery()"), "t");
    assert_eq!(
        staging.sql("SELECT status FROM pg_stat_wal_receiver"),
        "streaming"
    );

    // pgbench writes; SnapSync 2.
    pgbench(&primary, &["-c", "2", "-t", "300", "-n"]);
    let sums2 = primary.sums();
    assert_ne!(sums1, sums2);
    wait_caught_up(&primary);
    let t = Instant::now();
    let (ok, r) = lab.json(&["sync", "pg1"]);
    let sync_ms = t.elapsed().as_millis();
    assert!(ok, "sync failed: {r:#}");

    // SnapSync 3 while a writer commits one row per transaction, noting the
    // WAL insert position before and after each.
    primary.sql("CREATE TABLE ticks (i int PRIMARY KEY)");
    wait_caught_up(&primary);
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (stop, primary) = (stop.clone(), primary.clone());
        std::thread::spawn(move || {
            let mut marks = Vec::new();
            let mut i = 0u32;
            while !stop.load(Ordering::SeqCst) || i < 20 {
                i += 1;
                let insert = format!("INSERT INTO ticks VALUES ({i})");
                let lsn = "SELECT pg_current_wal_insert_lsn()";
                let out = must(primary.try_sql_each(&[lsn, &insert, lsn]), "a tick");
                let l: Vec<&str> = out.lines().collect();
                marks.push((i, lsn_value(l[0]), lsn_value(l[l.len() - 1])));
            }
            marks
        })
    };
    std::thread::sleep(Duration::from_millis(500));
    let (ok, r3) = lab.json(&["sync", "pg1"]);
    stop.store(true, Ordering::SeqCst);
    let marks = writer.join().unwrap();
    assert!(ok, "sync during writes failed: {r3:#}");
    let (_, snaps) = lab.json(&["snapshots", "pg1"]);
    let snaps = snaps.as_array().unwrap().clone();
    assert_eq!(snaps.len(), 3, "{snaps:#?}");
    for s in &snaps {
        let m = &s["metadata"];
        assert_eq!(m["origin"], "staging", "{s:#}");
        assert_eq!(m["port"], p_staging, "{s:#}");
        assert!(m["lsn"].is_string() && m["timeline"] == 1, "{s:#}");
    }
    let target3 = lsn_value(snaps[2]["metadata"]["lsn"].as_str().unwrap());

    // The password never shows: not in lunabox's output, the jobs' records
    // or any file of the storage (snapshots included).
    let (_, jobs) = lab.json(&["jobs", "pg1"]);
    for text in [all.clone(), jobs.to_string()] {
        assert!(!text.contains("s3cr"), "the password was printed:\n{text}");
    }
    let grep = Command::new("grep")
        .args(["-rlF", "s3cr"])
        .arg(lab.state().join("storage"))
        .output()
        .unwrap();
    assert!(
        grep.stdout.is_empty(),
        "the password is in the state: {}",
        String::from_utf8_lossy(&grep.stdout)
    );
    assert!(!Path::new("/tmp/pwned").exists());

    // A VDB from each snapshot.
    let t = Instant::now();
    provision(&lab, "dev1", "pg1@1", ports[2]);
    let prov_ms = t.elapsed().as_millis();
    provision(&lab, "dev2", "pg1@2", ports[3]);
    provision(&lab, "dev3", "pg1@3", ports[4]);
    for v in ["dev1", "dev2", "dev3"] {
        clusters.guids.push(vdb_guid(&lab, v));
    }
    let vdb = |port| Db {
        bin: bin.clone(),
        socket: home.join(".lunabox-postgres"),
        port,
    };
    let (dev1, dev2, dev3) = (vdb(ports[2]), vdb(ports[3]), vdb(ports[4]));
    assert_eq!(dev1.sums(), sums1, "VDB from snapshot 1");
    assert_eq!(dev2.sums(), sums2, "VDB from snapshot 2");
    for d in [&dev1, &dev2, &dev3] {
        assert_eq!(d.sql("SELECT pg_is_in_recovery()"), "f");
        assert_eq!(d.sql("SHOW primary_conninfo"), "");
        assert_eq!(d.sql("SHOW archive_mode"), "off");
        d.amcheck();
    }
    // The third holds exactly the rows committed before its LSN.
    let in_vdb: u32 = dev3.sql("SELECT count(*) FROM ticks").parse().unwrap();
    let max: u32 = dev3
        .sql("SELECT coalesce(max(i), 0) FROM ticks")
        .parse()
        .unwrap();
    assert_eq!(in_vdb, max, "the ticks in the VDB are a prefix");
    for &(i, before, after) in &marks {
        if after <= target3 {
            assert!(i <= max, "tick {i} committed before {target3:X} is missing");
        }
        if before >= target3 {
            assert!(i > max, "tick {i} written after {target3:X} is in the VDB");
        }
    }
    let written = marks.len();
    assert!(
        (max as usize) < written,
        "the writer went on after the snapshot ({max} of {written})"
    );
    let (_, s) = lab.json(&["vdb", "status", "dev1"]);
    assert_eq!(s["status"], "ACTIVE", "{s:#}");

    // Writing to one VDB changes neither the primary, the standby nor
    // another VDB.
    dev1.sql(
        "UPDATE pgbench_accounts SET abalance = abalance + 7 WHERE aid <= 1000; \
         INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES (1, 1, 1, 7, now()); \
         DELETE FROM pgbench_tellers WHERE tid = 1",
    );
    assert_ne!(dev1.sums(), sums1);
    assert_eq!(dev2.sums(), sums2);
    wait_caught_up(&primary);
    assert_eq!(staging.sums(), primary.sums());
    assert_eq!(
        primary.sums()[..3],
        sums2[..3],
        "primary's pgbench tables (no pgbench ran since snapshot 2)"
    );

    // A snapshot of a VDB: taken shut down (postSnapshot starts it again);
    // a copy of its files starts without recovery and holds its rows.
    let dev1_sums = dev1.sums();
    let (ok, vs) = lab.json(&["vdb", "snapshot", "dev1"]);
    assert!(ok, "VDB snapshot failed: {vs:#}");
    assert_eq!(dev1.sums(), dev1_sums, "dev1 runs again, unchanged");
    let (_, vsnaps) = lab.json(&["snapshots", "dev1"]);
    assert_eq!(vsnaps[0]["metadata"]["origin"], "vdb", "{vsnaps:#}");
    assert_eq!(vsnaps[0]["metadata"]["consistency"], "shutdown");
    let vcopy = lab.path("vsnap");
    must(
        Command::new("cp")
            .arg("-a")
            .arg(lab.snapshot_files("dev1", 1))
            .arg(&vcopy)
            .output()
            .unwrap(),
        "copying the VDB snapshot",
    );
    // Snapshot files are read-only; a copy is writable again.
    for (cmd, arg) in [("chown", format!("{OS_USER}:")), ("chmod", "u+rwX".into())] {
        must(
            Command::new(cmd)
                .arg("-R")
                .arg(arg)
                .arg(&vcopy)
                .output()
                .unwrap(),
            cmd,
        );
    }
    let control = must(
        as_pg(&bin.join("pg_controldata"), &[vcopy.to_str().unwrap()]),
        "pg_controldata",
    );
    assert!(
        control.contains("Database cluster state:               shut down\n"),
        "{control}"
    );
    std::fs::set_permissions(&vcopy, std::fs::Permissions::from_mode(0o700)).unwrap();
    let _ = std::fs::remove_file(vcopy.join("postmaster.pid"));
    clusters.dirs.push(vcopy.clone());
    let opts = format!(
        "-p {} -k {} -c listen_addresses=''",
        ports[5],
        sock.display()
    );
    must(
        pg_ctl(
            &bin,
            &vcopy,
            &["-o", &opts, "-l", sock.join("vsnap.log").to_str().unwrap()],
            "start",
        ),
        "starting a copy of the VDB snapshot",
    );
    let vsnap = Db {
        bin: bin.clone(),
        socket: sock.clone(),
        port: ports[5],
    };
    assert_eq!(vsnap.sums(), dev1_sums);
    vsnap.amcheck();

    // Stop, start, status; rm stops and unconfigures.
    lab.ok(&["vdb", "stop", "dev2"]);
    let (_, s) = lab.json(&["vdb", "status", "dev2"]);
    assert_eq!(s["status"], "INACTIVE", "{s:#}");
    lab.ok(&["vdb", "start", "dev2"]);
    assert_eq!(dev2.sums(), sums2);

    // The staging standby: status, disable (stopStaging), enable
    // (startStaging), the worker restarting it, a forced resync.
    let staging_data = lab.storage("pg1").join("data");
    let (ok, st) = lab.json(&["status", "pg1"]);
    assert!(ok && st["status"] == "ACTIVE", "{st:#}");
    lab.ok(&["disable", "pg1"]);
    assert!(staging.try_sql("SELECT 1").status.code() != Some(0));
    let (_, st) = lab.json(&["status", "pg1"]);
    assert_eq!(st["enabled"], false, "{st:#}");
    lab.ok(&["enable", "pg1"]);
    assert_eq!(staging.sql("SELECT pg_is_in_recovery()"), "t");
    must(
        pg_ctl(&bin, &staging_data, &["-m", "fast"], "stop"),
        "stopping the staging standby behind lunabox's back",
    );
    let (_, st) = lab.json(&["status", "pg1"]);
    assert_eq!(st["status"], "INACTIVE", "{st:#}");
    lab.ok(&["daemon", "--once"]);
    assert_eq!(
        staging.sql("SELECT pg_is_in_recovery()"),
        "t",
        "the worker restarted it"
    );
    wait_caught_up(&primary);
    let (ok, r) = lab.json(&["sync", "pg1", "--resync"]);
    assert!(ok, "forced resync failed: {r:#}");
    assert_eq!(
        staging.sql("SELECT status FROM pg_stat_wal_receiver"),
        "streaming"
    );
    assert_eq!(staging.sums()[..3], primary.sums()[..3]);
    for v in ["dev1", "dev2", "dev3"] {
        lab.ok(&["vdb", "rm", v]);
    }
    assert!(dev2.try_sql("SELECT 1").status.code() != Some(0));
    println!(
        "postgres_e2e: link (pg_basebackup + standby + SnapSync) {link_ms} ms, SnapSync {sync_ms} ms, \
         provision {prov_ms} ms, {} ticks in snapshot 3 of {written} written, {:.1} s in all",
        max,
        started.elapsed().as_secs_f64()
    );
}

#[test]
fn the_toolkit_validates_without_warnings() {
    let o = Command::new(bin())
        .args(["validate"])
        .arg(repo().join("toolkits/postgres"))
        .arg("--json")
        .env_remove("RUST_BACKTRACE")
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("validate printed no JSON ({e}):\n{}", show(&o)));
    assert_eq!(v, json!({"ok": true, "errors": [], "warnings": []}));
}
