//! Failing hooks during SnapSync (spec section 3): a Lua error, a non-zero
//! exit and a postSnapshot result that violates the snapshotSchema each
//! leave a fault with the failure's output and no snapshot from that run;
//! postSnapshot still runs after a failed preSnapshot; a failed resync is
//! retried by the next SnapSync. Driven through the `lunabox` binary with
//! the efix fixture toolkit (real bash, rsync, SQLite).

#[path = "common/engine.rs"]
mod engine_common;

use engine_common::*;
use serde_json::Value;

fn faults(lab: &Lab, ds: &str) -> Vec<Value> {
    let (ok, v) = lab.json(&["faults", ds]);
    assert!(ok);
    v.as_array().unwrap().clone()
}

#[test]
fn lua_error_in_presnapshot_posts_a_fault_and_postsnapshot_still_runs() {
    let lab = Lab::new();
    lab.linked_efix("db");
    assert_eq!(lab.snapshot_ids("db"), vec![1]);
    write(&lab.src().join("new.txt"), "new\n");
    lab.control("preSnapshot", "lua");
    lab.reset_ran();

    let (ok, r) = lab.json(&["sync", "db"]);
    assert!(!ok, "a failed SnapSync exits non-zero");
    assert_eq!(r["job"]["state"], "failed");
    assert_eq!(
        steps(&r["job"]),
        pairs(&[
            ("preSnapshot", "failed"),
            ("snapshot", "skipped"),
            ("postSnapshot", "ok")
        ])
    );
    assert!(r["snapshot"].is_null());
    assert_eq!(
        lab.ran(),
        vec!["preSnapshot", "postSnapshot"],
        "postSnapshot ran after the failure"
    );

    let f = faults(&lab, "db");
    assert_eq!(f.len(), 1, "{f:#?}");
    assert_eq!(f[0]["hook"], "staged/preSnapshot");
    assert_eq!(f[0]["jobId"], r["job"]["id"]);
    let msg = f[0]["message"].as_str().unwrap();
    assert!(
        msg.contains("preSnapshot failed on purpose (Lua error)"),
        "{msg}"
    );
    let tb = f[0]["detail"]["traceback"].as_str().unwrap_or("");
    assert!(
        tb.contains("efix/staged/preSnapshot.lua"),
        "traceback names the script: {tb}"
    );
    assert_eq!(
        lab.snapshot_ids("db"),
        vec![1],
        "no snapshot from the failed run"
    );
    assert_eq!(
        lab.snapshot_dirs("db"),
        vec!["1"],
        "nothing partial left behind"
    );

    // The human view shows the failure too.
    let o = lab.run(&["faults", "db"]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("staged/preSnapshot failed"), "{text}");
    assert!(text.contains("traceback"), "{text}");
}

#[test]
fn nonzero_exit_posts_a_fault_with_exit_code_stdout_and_stderr() {
    let lab = Lab::new();
    lab.linked_efix("db");
    lab.control("preSnapshot", "exit 3");
    let (ok, r) = lab.json(&["sync", "db"]);
    assert!(!ok);
    assert_eq!(r["job"]["state"], "failed");
    let f = faults(&lab, "db");
    assert_eq!(f.len(), 1, "{f:#?}");
    let d = &f[0]["detail"];
    assert_eq!(d["exitCode"], 3, "{d:#}");
    assert_eq!(d["function"], "RunBash");
    assert!(
        d["stdout"]
            .as_str()
            .unwrap()
            .contains("out: preSnapshot is failing on purpose")
    );
    assert!(
        d["stderr"]
            .as_str()
            .unwrap()
            .contains("err: preSnapshot is failing on purpose")
    );
    assert_eq!(lab.snapshot_ids("db"), vec![1]);

    // The job records the failed call in its transcript.
    let id = r["job"]["id"].as_i64().unwrap().to_string();
    let (_, job) = lab.json(&["job", &id]);
    let pre = &job["steps"][0];
    assert_eq!(pre["transcript"][0]["exitCode"], 3, "{pre:#}");

    // Resolving the fault closes it.
    let fid = f[0]["id"].as_i64().unwrap().to_string();
    lab.ok(&["faults", "--resolve", &fid]);
    assert!(faults(&lab, "db").is_empty());
    let (_, all) = lab.json(&["faults", "db", "--all"]);
    assert_eq!(all.as_array().unwrap().len(), 1);
}

#[test]
fn schema_violating_postsnapshot_keeps_no_snapshot() {
    let lab = Lab::new();
    lab.linked_efix("db");
    write(&lab.src().join("c.txt"), "gamma\n");
    lab.control("postSnapshot", "badpost");
    let (ok, r) = lab.json(&["sync", "db"]);
    assert!(!ok);
    assert_eq!(
        steps(&r["job"]),
        pairs(&[
            ("preSnapshot", "ok"),
            ("snapshot", "ok"),
            ("postSnapshot", "failed")
        ])
    );
    let f = faults(&lab, "db");
    assert_eq!(f.len(), 1);
    assert_eq!(f[0]["hook"], "staged/postSnapshot");
    let msg = f[0]["message"].as_str().unwrap();
    assert!(
        msg.contains("generation") || msg.contains("snapshotSchema"),
        "{msg}"
    );
    // The snapshot that was built is thrown away, on disk and in the state.
    assert_eq!(lab.snapshot_ids("db"), vec![1]);
    assert_eq!(lab.snapshot_dirs("db"), vec!["1"]);

    // Fixed: the next SnapSync takes snapshot 2 (ids have no gap).
    lab.clear("postSnapshot");
    let (ok, r) = lab.json(&["sync", "db"]);
    assert!(ok, "{r:#}");
    assert_eq!(r["snapshot"]["id"], 2);
    assert_eq!(
        std::fs::read_to_string(lab.snapshot_files("db", 2).join("c.txt")).unwrap(),
        "gamma\n"
    );
}

#[test]
fn failed_resync_at_link_is_retried_by_the_next_sync() {
    let lab = Lab::new();
    lab.ok(&["env", "add", "local", "--local"]);
    lab.ok(&["toolkit", "install", fixture("efix").to_str().unwrap()]);
    write(&lab.src().join("a.txt"), "alpha\n");
    lab.control("resync", "exit 7");
    let (ok, r) = lab.link_json("db", "efix", &[]);
    assert!(!ok, "link reports the failed initial SnapSync");
    assert_eq!(
        steps(&r["job"]),
        pairs(&[
            ("resync", "failed"),
            ("preSnapshot", "skipped"),
            ("snapshot", "skipped"),
            ("postSnapshot", "ok"),
        ])
    );
    assert_eq!(lab.ran(), vec!["resync", "postSnapshot"]);
    assert!(lab.snapshot_ids("db").is_empty());
    assert_eq!(faults(&lab, "db")[0]["detail"]["exitCode"], 7);

    // The dSource exists; another SnapSync retries the resync.
    lab.clear("resync");
    let (ok, r) = lab.json(&["sync", "db"]);
    assert!(ok, "{r:#}");
    assert_eq!(
        steps(&r["job"]),
        pairs(&[
            ("resync", "ok"),
            ("preSnapshot", "ok"),
            ("snapshot", "ok"),
            ("postSnapshot", "ok")
        ])
    );
    assert_eq!(r["snapshot"]["id"], 1);
    // Then incremental: no resync.
    let (ok, r) = lab.json(&["sync", "db"]);
    assert!(ok);
    assert_eq!(steps(&r["job"]).len(), 3);
    // --resync forces it.
    let (ok, r) = lab.json(&["sync", "db", "--resync"]);
    assert!(ok);
    assert_eq!(
        steps(&r["job"])[0],
        ("resync".to_string(), "ok".to_string())
    );
}

#[test]
fn bad_parameters_are_refused_before_anything_is_created() {
    let lab = Lab::new();
    lab.ok(&["env", "add", "local", "--local"]);
    lab.ok(&["toolkit", "install", fixture("efix").to_str().unwrap()]);
    let o = lab.link("db", "efix", &["--param", "nosuch=1"]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("nosuch"), "the error names the field: {err}");
    assert!(!lab.storage("db").exists(), "no storage was created");
    let (_, st) = lab.json(&["status"]);
    assert!(st.as_array().unwrap().is_empty(), "no dSource was created");
    assert!(lab.ran().is_empty(), "no hook ran");
}

#[test]
fn password_parameters_are_masked_in_output() {
    let lab = Lab::new();
    let v = lab.linked_efix("db");
    assert_eq!(v["dsource"]["parameters"]["password"], "********");
    let text = v.to_string();
    assert!(!text.contains("fixture-secret"), "{text}");
}
