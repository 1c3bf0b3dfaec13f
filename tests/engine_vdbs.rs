//! VDBs through the `lunabox` binary, with the efix fixture's virtual hooks
//! (resources/vhook.sh: each appends `VDB:hook` to ctl/vran and fails on
//! demand through ctl/v-<hook>): provisioning, start/stop/status, refresh,
//! VDB snapshots, removal, and the snapshots VDBs depend on. On the default
//! temporary directory these run with the `copy` driver; the btrfs and
//! reflink drivers run the same operations in tests/storage_drivers.rs.

#[path = "common/engine.rs"]
mod engine_common;

use engine_common::*;
use serde_json::Value;

fn vran(lab: &Lab) -> Vec<String> {
    std::fs::read_to_string(lab.ctl().join("vran"))
        .unwrap_or_default()
        .lines()
        .map(String::from)
        .collect()
}

fn provision(lab: &Lab, name: &str, from: &str, extra: &[&str]) -> (bool, Value) {
    let mut a = vec!["provision", name, "--from", from, "--environment", "local"];
    a.extend_from_slice(extra);
    lab.json(&a)
}

fn vdb(lab: &Lab, name: &str) -> Value {
    let (ok, l) = lab.json(&["vdb", "list"]);
    assert!(ok);
    l.as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == name)
        .cloned()
        .unwrap_or(Value::Null)
}

#[test]
fn provision_start_stop_status_refresh_and_rm_run_the_virtual_hooks() {
    let lab = Lab::new();
    lab.linked_efix("db1");
    let (ok, r) = provision(&lab, "dev1", "db1", &["--param", "port=7001"]);
    assert!(ok, "{r:#}");
    assert_eq!(
        steps(&r["job"]),
        pairs(&[("clone", "ok"), ("configure", "ok"), ("start", "ok")])
    );
    let v = vdb(&lab, "dev1");
    assert_eq!(v["state"], "running");
    assert_eq!(v["dsource"], "db1");
    assert_eq!(v["snapshot"], 1);
    assert_eq!(v["parameters"]["port"], 7001);
    // The source config configure returned is recorded.
    assert_eq!(v["config"]["name"], "dev1");
    assert_eq!(v["config"]["port"], 7001);
    let data = lab.storage("dev1").join("data");
    assert_eq!(
        std::fs::read_to_string(data.join("a.txt")).unwrap(),
        "alpha\n"
    );
    // configure saw the snapshot's metadata as snapshotJson.
    let seen: Value =
        serde_json::from_str(&std::fs::read_to_string(data.join(".configured-from")).unwrap())
            .unwrap();
    assert_eq!(seen["generation"], 1);

    let (_, s) = lab.json(&["vdb", "status", "dev1"]);
    assert_eq!(
        (s["status"].as_str(), s["statusFrom"].as_str()),
        (Some("ACTIVE"), Some("hook"))
    );
    lab.ok(&["vdb", "stop", "dev1"]);
    let (_, s) = lab.json(&["vdb", "status", "dev1"]);
    assert_eq!(s["status"], "INACTIVE");
    assert_eq!(s["state"], "stopped");
    lab.ok(&["vdb", "start", "dev1"]);
    assert_eq!(vdb(&lab, "dev1")["state"], "running");

    // Writing to the VDB changes neither the dSource nor its snapshot.
    std::fs::write(data.join("a.txt"), "changed in the VDB\n").unwrap();
    assert_eq!(
        std::fs::read_to_string(lab.snapshot_files("db1", 1).join("a.txt")).unwrap(),
        "alpha\n"
    );

    // Refresh to a newer snapshot: the VDB's changes are gone.
    write(&lab.src().join("c.txt"), "gamma\n");
    settle();
    lab.ok(&["sync", "db1"]);
    let (ok, r) = lab.json(&["vdb", "refresh", "dev1"]);
    assert!(ok, "{r:#}");
    assert_eq!(
        steps(&r["job"]),
        pairs(&[
            ("clone", "ok"),
            ("stop", "ok"),
            ("unconfigure", "ok"),
            ("configure", "ok"),
            ("start", "ok")
        ])
    );
    assert_eq!(vdb(&lab, "dev1")["snapshot"], 2);
    assert_eq!(
        std::fs::read_to_string(data.join("a.txt")).unwrap(),
        "alpha\n"
    );
    assert_eq!(
        std::fs::read_to_string(data.join("c.txt")).unwrap(),
        "gamma\n"
    );

    lab.ok(&["vdb", "rm", "dev1"]);
    assert_eq!(vdb(&lab, "dev1"), Value::Null);
    assert!(!lab.storage("dev1").exists());
    assert_eq!(
        vran(&lab),
        [
            "configure",
            "start",
            "status",
            "stop",
            "start",
            "stop",
            "unconfigure",
            "configure",
            "start",
            "stop",
            "unconfigure"
        ]
        .iter()
        .map(|h| format!("dev1:{h}"))
        .collect::<Vec<_>>()
    );
}

#[test]
fn a_failed_configure_leaves_no_vdb_and_a_failed_start_leaves_it_stopped() {
    let lab = Lab::new();
    lab.linked_efix("db1");
    std::fs::write(lab.ctl().join("v-configure"), "exit 3").unwrap();
    let (ok, r) = provision(&lab, "dev1", "db1", &[]);
    assert!(!ok);
    assert_eq!(r["vdb"], Value::Null, "{r:#}");
    assert!(!lab.storage("dev1").exists());
    let (_, f) = lab.json(&["faults", "dev1"]);
    assert!(
        f.as_array()
            .unwrap()
            .iter()
            .any(|f| f["hook"] == "virtual/configure"),
        "{f:#}"
    );
    std::fs::remove_file(lab.ctl().join("v-configure")).unwrap();

    std::fs::write(lab.ctl().join("v-start"), "exit 4").unwrap();
    let (ok, r) = provision(&lab, "dev1", "db1", &[]);
    assert!(!ok);
    assert_eq!(r["vdb"]["state"], "stopped", "{r:#}");
    std::fs::remove_file(lab.ctl().join("v-start")).unwrap();
    lab.ok(&["vdb", "start", "dev1"]);
    assert_eq!(vdb(&lab, "dev1")["state"], "running");

    // rm stops at a failing unconfigure, unless forced.
    std::fs::write(lab.ctl().join("v-unconfigure"), "exit 5").unwrap();
    let o = lab.run(&["vdb", "rm", "dev1"]);
    assert!(!o.status.success());
    assert_ne!(vdb(&lab, "dev1"), Value::Null);
    lab.ok(&["vdb", "rm", "dev1", "--force"]);
    assert_eq!(vdb(&lab, "dev1"), Value::Null);
}

#[test]
fn snapshots_with_vdbs_are_kept_by_rm_and_retention() {
    let lab = Lab::new();
    lab.linked_efix("db1");
    let (ok, r) = provision(&lab, "dev1", "db1@1", &[]);
    assert!(ok, "{r:#}");
    for i in 0..2 {
        write(&lab.src().join(format!("n{i}.txt")), "x\n");
        settle();
        lab.ok(&["sync", "db1"]);
    }
    let o = lab.run(&["snapshot", "rm", "db1", "1"]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("VDB(s) dev1"), "{err}");
    lab.ok(&["policy", "db1", "--keep", "1"]);
    assert_eq!(lab.snapshot_ids("db1"), vec![1, 3]);
    let (_, list) = lab.json(&["snapshots", "db1"]);
    assert_eq!(list[0]["vdbs"], serde_json::json!(["dev1"]));
    // Once the VDB moves on, its old snapshot can go.
    lab.ok(&["vdb", "refresh", "dev1"]);
    lab.ok(&["snapshot", "rm", "db1", "1"]);
    assert_eq!(lab.snapshot_ids("db1"), vec![3]);
}

#[test]
fn vdb_snapshots_run_the_virtual_snapshot_hooks() {
    let lab = Lab::new();
    lab.linked_efix("db1");
    assert!(provision(&lab, "dev1", "db1", &[]).0);
    let (ok, r) = lab.json(&["vdb", "snapshot", "dev1"]);
    assert!(ok, "{r:#}");
    assert_eq!(
        steps(&r["job"]),
        pairs(&[
            ("preSnapshot", "ok"),
            ("snapshot", "ok"),
            ("postSnapshot", "ok")
        ])
    );
    let (_, list) = lab.json(&["snapshots", "dev1"]);
    assert_eq!(list[0]["metadata"]["label"], "vdb-dev1");
    assert_eq!(list[0]["stats"]["driver"], "copy");
    // A failed preSnapshot keeps nothing; postSnapshot still runs.
    std::fs::write(lab.ctl().join("v-preSnapshot"), "exit 2").unwrap();
    let (ok, r) = lab.json(&["vdb", "snapshot", "dev1"]);
    assert!(!ok);
    assert_eq!(
        steps(&r["job"]),
        pairs(&[
            ("preSnapshot", "failed"),
            ("snapshot", "skipped"),
            ("postSnapshot", "ok")
        ])
    );
    assert_eq!(lab.snapshot_ids("dev1"), vec![1]);
    // Removing the VDB removes its snapshots.
    lab.ok(&["vdb", "rm", "dev1"]);
    assert!(!lab.storage("dev1").exists());
}

#[test]
fn dsources_and_vdbs_share_names_and_bad_requests_are_refused() {
    let lab = Lab::new();
    lab.linked_efix("db1");
    let o = lab.run(&[
        "provision",
        "db1",
        "--from",
        "db1",
        "--environment",
        "local",
    ]);
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("dSource"),
        "{}",
        show(&o)
    );
    let o = lab.run(&[
        "provision",
        "dev1",
        "--from",
        "db1@9",
        "--environment",
        "local",
    ]);
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("no snapshot 9"),
        "{}",
        show(&o)
    );
    let o = lab.run(&[
        "provision",
        "dev1",
        "--from",
        "db1",
        "--environment",
        "local",
        "--param",
        "nope=1",
    ]);
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("nope"),
        "{}",
        show(&o)
    );
    assert!(provision(&lab, "dev1", "db1", &[]).0);
    let o = lab.link("dev1", "efix", &[]);
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("VDB"),
        "{}",
        show(&o)
    );
    // The environment a VDB runs on cannot be removed.
    let o = lab.run(&["env", "rm", "local"]);
    assert!(!o.status.success());
}

#[test]
fn the_daemon_runs_the_status_of_running_vdbs() {
    let lab = Lab::new();
    lab.linked_efix("db1");
    assert!(provision(&lab, "dev1", "db1", &[]).0);
    lab.reset_ran();
    let (ok, s) = lab.json(&["daemon", "--once"]);
    assert!(ok, "{s:#}");
    assert_eq!(s["vdbStatusRuns"], 1, "{s:#}");
    assert_eq!(vran(&lab).last().map(String::as_str), Some("dev1:status"));
    assert_eq!(vdb(&lab, "dev1")["lastStatus"], "ACTIVE");
}
