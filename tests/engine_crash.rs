//! `kill -9` of lunabox in the middle of a SnapSync, then any command: the
//! state is consistent, the job is marked failed ("interrupted"), no partial
//! snapshot is left, the dSource lock is free and the next sync succeeds.

#[path = "common/engine.rs"]
mod engine_common;

use std::path::Path;
use std::time::{Duration, Instant};

use engine_common::*;

fn wait_for(path: &Path, limit: Duration) {
    let t = Instant::now();
    while !path.exists() {
        assert!(t.elapsed() < limit, "{} did not appear", path.display());
        std::thread::sleep(Duration::from_millis(20));
    }
    // Let the writer finish the file.
    std::thread::sleep(Duration::from_millis(50));
}

fn kill(pid: i32, sig: i32) {
    unsafe {
        libc::kill(pid, sig);
    }
}

/// The sleeping hook's own process (own process group): stop it too, as a
/// real crash of the machine would.
fn kill_hook(lab: &Lab, hook: &str) {
    let pid: i32 = std::fs::read_to_string(lab.ctl().join(format!("{hook}.pid")))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    kill(pid, libc::SIGKILL);
}

#[test]
fn kill_during_postsnapshot_leaves_no_partial_snapshot_and_next_sync_works() {
    let lab = Lab::new();
    lab.linked_efix("db");
    write(&lab.src().join("changed.txt"), "after snapshot 1\n");
    settle();
    lab.control("postSnapshot", "sleep 60");
    let mut child = lab.cmd(&["sync", "db"]).spawn().unwrap();
    wait_for(&lab.ctl().join("postSnapshot.pid"), Duration::from_secs(30));
    // The snapshot is built aside while postSnapshot runs.
    assert_eq!(lab.snapshot_dirs("db"), vec![".tmp-2", "1"]);

    kill(child.id() as i32, libc::SIGKILL);
    child.wait().unwrap();
    kill_hook(&lab, "postSnapshot");
    lab.clear("postSnapshot");

    // Any command recovers: the job is failed, the partial snapshot gone.
    let o = lab.ok(&["jobs", "db"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("was interrupted"),
        "recovery is reported: {err}"
    );
    let (_, jobs) = lab.json(&["jobs", "db"]);
    let sync = &jobs[0];
    assert_eq!(sync["kind"], "sync");
    assert_eq!(sync["state"], "failed");
    assert!(
        sync["error"].as_str().unwrap().contains("interrupted"),
        "{sync:#}"
    );
    assert!(sync["endedMs"].is_i64());
    assert_eq!(lab.snapshot_dirs("db"), vec!["1"], "no partial snapshot");
    assert_eq!(lab.snapshot_ids("db"), vec![1]);
    let (_, f) = lab.json(&["faults", "db"]);
    assert!(f[0]["message"].as_str().unwrap().contains("interrupted"));

    // The lock died with the process: the next sync runs at once.
    let t = Instant::now();
    let (ok, r) = lab.json(&["sync", "db", "--lock-timeout", "2s"]);
    assert!(ok, "{r:#}");
    assert!(t.elapsed() < Duration::from_secs(30));
    assert_eq!(r["snapshot"]["id"], 2);
    assert_eq!(
        std::fs::read_to_string(lab.snapshot_files("db", 2).join("changed.txt")).unwrap(),
        "after snapshot 1\n"
    );
    assert!(!lab.snapshot_files("db", 1).join("changed.txt").exists());
}

#[test]
fn kill_during_presnapshot_then_status_recovers_and_sync_succeeds() {
    let lab = Lab::new();
    lab.linked_efix("db");
    lab.control("preSnapshot", "sleep 60");
    let mut child = lab.cmd(&["sync", "db"]).spawn().unwrap();
    wait_for(&lab.ctl().join("preSnapshot.pid"), Duration::from_secs(30));
    // While the sync runs, status works (it takes no lock) and shows it.
    let (ok, st) = lab.json(&["status", "db"]);
    assert!(ok);
    assert_eq!(st["running"][0]["kind"], "sync", "{st:#}");

    kill(child.id() as i32, libc::SIGKILL);
    child.wait().unwrap();
    kill_hook(&lab, "preSnapshot");
    lab.clear("preSnapshot");

    let (ok, st) = lab.json(&["status", "db"]);
    assert!(ok);
    assert!(st["running"].as_array().unwrap().is_empty(), "{st:#}");
    assert_eq!(st["openFaults"], 1);
    let (ok, r) = lab.json(&["sync", "db", "--lock-timeout", "2s"]);
    assert!(ok, "{r:#}");
    assert_eq!(r["snapshot"]["id"], 2);
}
