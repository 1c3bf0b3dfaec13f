//! The seed's Delphix DB story end to end through the `lunabox` binary,
//! with the delphixdb toolkit and its simulated `delphixdb` program: link
//! (initial SnapSync), a change on the primary, incremental SnapSync,
//! status, disable, enable; the snapshots hold the data as it was: the
//! first one unchanged after the change, the second one with it.

#[path = "common/engine.rs"]
mod engine_common;

use std::path::{Path, PathBuf};
use std::process::Command;

use engine_common::*;

/// A private copy of the simulated delphixdb program (its registry lives
/// next to it, so tests do not share databases).
fn delphixdb(lab: &Lab) -> PathBuf {
    let dir = lab.path("delphixdb-install");
    std::fs::create_dir_all(&dir).unwrap();
    let prog = dir.join("delphixdb");
    std::fs::copy(repo().join("toolkits/delphixdb/sim/delphixdb"), &prog).unwrap();
    db(
        &prog,
        &[
            "config",
            "backup-dir",
            lab.path("backups").to_str().unwrap(),
        ],
    );
    prog
}

fn db(prog: &Path, args: &[&str]) -> String {
    let o = Command::new(prog).args(args).output().unwrap();
    assert!(o.status.success(), "delphixdb {args:?}: {}", show(&o));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

#[test]
fn delphixdb_walkthrough_link_sync_status_disable_enable() {
    let lab = Lab::new();
    let prog = delphixdb(&lab);
    // The primary database.
    db(&prog, &["new", "prod", "--port=5000"]);
    db(&prog, &["start", "prod"]);
    db(&prog, &["write", "prod", "greeting", "hello"]);
    db(&prog, &["write", "prod", "answer", "42"]);

    lab.ok(&["env", "add", "local", "--local"]);
    lab.ok(&[
        "toolkit",
        "install",
        repo().join("toolkits/delphixdb").to_str().unwrap(),
    ]);
    write(&lab.path("config.json"), r#"{"dbName": "prod"}"#);
    write(
        &lab.path("repository.json"),
        &serde_json::json!({"installPath": prog}).to_string(),
    );
    let (ok, link) = lab.json(&[
        "link",
        "prod-ds",
        "--toolkit",
        "delphixdb",
        "--environment",
        "local",
        "--config",
        lab.path("config.json").to_str().unwrap(),
        "--repository",
        lab.path("repository.json").to_str().unwrap(),
        "--param",
        "stagingPort=5433",
    ]);
    assert!(ok, "{link:#}");
    assert_eq!(
        steps(&link["job"]),
        pairs(&[
            ("resync", "ok"),
            ("preSnapshot", "ok"),
            ("snapshot", "ok"),
            ("postSnapshot", "ok")
        ])
    );
    assert_eq!(
        link["dsource"]["parameters"]["stagingDbName"], "stagingDB",
        "default applied"
    );
    assert_eq!(link["dsource"]["parameters"]["stagingPort"], 5433);
    let s1 = lab.snapshot_files("prod-ds", 1);
    assert_eq!(read(&s1.join("data/greeting")), "hello\n");
    assert_eq!(read(&s1.join("data/answer")), "42\n");

    // Replication runs: the staging database follows the primary.
    let (_, st) = lab.json(&["status", "prod-ds"]);
    assert_eq!(st["status"], "ACTIVE");
    assert_eq!(st["statusFrom"], "hook");

    // A change on the primary, then an incremental SnapSync.
    db(&prog, &["write", "prod", "greeting", "bonjour"]);
    db(&prog, &["write", "prod", "colour", "blue"]);
    let (ok, sync) = lab.json(&["sync", "prod-ds"]);
    assert!(ok, "{sync:#}");
    assert_eq!(
        steps(&sync["job"]),
        pairs(&[
            ("preSnapshot", "ok"),
            ("snapshot", "ok"),
            ("postSnapshot", "ok")
        ]),
        "incremental: no resync"
    );
    let s2 = lab.snapshot_files("prod-ds", 2);
    assert_eq!(read(&s2.join("data/greeting")), "bonjour\n");
    assert_eq!(read(&s2.join("data/colour")), "blue\n");
    assert_eq!(
        read(&s1.join("data/greeting")),
        "hello\n",
        "snapshot 1 unchanged"
    );
    assert!(!s1.join("data/colour").exists());
    // Unchanged data files are shared, not copied again.
    let stats = &sync["snapshot"]["stats"];
    assert!(stats["linkedFiles"].as_u64().unwrap() >= 1, "{stats:#}");
    // postSnapshot restarted replication.
    assert!(db(&prog, &["status", "stagingDB"]).contains("replication-running"));

    // Disable: stopStaging stops replication and the staging database.
    let (ok, _) = lab.json(&["disable", "prod-ds"]);
    assert!(ok);
    let (_, st) = lab.json(&["status", "prod-ds"]);
    assert_eq!(st["status"], "INACTIVE");
    assert!(db(&prog, &["status", "stagingDB"]).contains("state=stopped"));
    db(&prog, &["write", "prod", "greeting", "hola"]);
    let staged = lab.storage("prod-ds").join("data/data/greeting");
    assert_eq!(read(&staged), "bonjour\n", "no replication while disabled");

    // Enable: startStaging restarts it; the pending change arrives.
    let (ok, _) = lab.json(&["enable", "prod-ds"]);
    assert!(ok);
    let (_, st) = lab.json(&["status", "prod-ds"]);
    assert_eq!(st["status"], "ACTIVE");
    assert_eq!(read(&staged), "hola\n");
    assert_eq!(
        read(&s2.join("data/greeting")),
        "bonjour\n",
        "snapshot 2 unchanged"
    );

    let (_, snaps) = lab.json(&["snapshots", "prod-ds"]);
    assert_eq!(snaps.as_array().unwrap().len(), 2);

    // An exported snapshot is a usable database of its own.
    let out = lab.path("vdb");
    lab.ok(&["snapshot", "export", "prod-ds", "1", out.to_str().unwrap()]);
    db(
        &prog,
        &["attach", "vdb", &format!("--dataDir={}", out.display())],
    );
    assert_eq!(db(&prog, &["read", "vdb", "greeting"]).trim(), "hello");

    // Every operation is a job; none failed.
    let (_, jobs) = lab.json(&["jobs", "prod-ds"]);
    let kinds: Vec<&str> = jobs
        .as_array()
        .unwrap()
        .iter()
        .filter(|j| j["kind"] != "status")
        .map(|j| j["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, vec!["enable", "disable", "sync", "link"]);
    assert!(
        jobs.as_array()
            .unwrap()
            .iter()
            .all(|j| j["state"] == "succeeded")
    );
    let (_, faults) = lab.json(&["faults"]);
    assert!(faults.as_array().unwrap().is_empty(), "{faults:#}");
    db(&prog, &["stop", "stagingDB"]);
    db(&prog, &["stop", "prod"]);
}
