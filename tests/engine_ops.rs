//! Engine operations through the `lunabox` binary: environments, snapshot
//! contents and sharing, retention, export and removal, enable/disable and
//! status, the per-dSource lock, direct sources (RunSync), mountSpec,
//! toolkit upgrades and the daemon.

#[path = "common/engine.rs"]
mod engine_common;

use std::os::unix::fs::MetadataExt;
use std::time::{Duration, Instant};

use engine_common::*;
use serde_json::Value;

fn read(p: &std::path::Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

#[test]
fn environments_add_list_and_rm_refused_while_used() {
    let lab = Lab::new();
    lab.linked_efix("db");
    lab.ok(&["env", "add", "spare", "--local"]);
    let (_, l) = lab.json(&["env", "list"]);
    let names: Vec<&str> = l
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["local", "spare"]);
    let o = lab.run(&["env", "rm", "local"]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("used by dSource(s) db"));
    lab.ok(&["env", "rm", "spare"]);
    let o = lab.run(&["env", "add", "x", "--local", "--user", "no-such-user-zz"]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("no user `no-such-user-zz`"));
}

#[test]
fn snapshots_are_immutable_point_in_time_copies_that_share_unchanged_files() {
    let lab = Lab::new();
    let link = lab.linked_efix("db");
    assert_eq!(link["snapshot"]["id"], 1);
    assert_eq!(
        link["snapshot"]["metadata"],
        serde_json::json!({"generation": 1, "label": "efix"})
    );
    // Change one file, add one, remove one.
    write(&lab.src().join("a.txt"), "alpha v2\n");
    write(&lab.src().join("new/c.txt"), "gamma\n");
    std::fs::remove_file(lab.src().join("sub/b.txt")).unwrap();
    settle();
    let (ok, r) = lab.json(&["sync", "db"]);
    assert!(ok, "{r:#}");
    let s1 = lab.snapshot_files("db", 1);
    let s2 = lab.snapshot_files("db", 2);
    assert_eq!(read(&s1.join("a.txt")), "alpha\n", "snapshot 1 unchanged");
    assert_eq!(read(&s1.join("sub/b.txt")), "beta\n");
    assert!(!s1.join("new/c.txt").exists());
    assert_eq!(read(&s2.join("a.txt")), "alpha v2\n");
    assert_eq!(read(&s2.join("new/c.txt")), "gamma\n");
    assert!(!s2.join("sub/b.txt").exists());

    // Snapshots with no change in between share their files. (Snapshot 3
    // may copy a file written just before snapshot 2 started: a file that
    // recent is never trusted by its timestamps; snapshot 4 shares all.)
    settle();
    let (ok, r) = lab.json(&["sync", "db"]);
    assert!(ok);
    let stats = &r["snapshot"]["stats"];
    assert_eq!(stats["files"], 2, "{stats:#}");
    assert!(stats["copiedBytes"].as_u64().unwrap() <= "alpha v2\ngamma\n".len() as u64);
    settle();
    let (ok, r) = lab.json(&["sync", "db"]);
    assert!(ok);
    let stats = &r["snapshot"]["stats"];
    assert_eq!(stats["copiedFiles"], 0, "{stats:#}");
    assert_eq!(stats["linkedFiles"], 2);
    let s3 = lab.snapshot_files("db", 4);
    let ino = |p: &std::path::Path| std::fs::metadata(p).unwrap().ino();
    assert_eq!(ino(&s2.join("a.txt")), ino(&s3.join("a.txt")));
    let live = lab.storage("db").join("data");
    assert_ne!(
        ino(&live.join("a.txt")),
        ino(&s3.join("a.txt")),
        "never linked to live data"
    );
    // Snapshot files are read-only.
    assert_eq!(
        std::fs::metadata(s3.join("a.txt")).unwrap().mode() & 0o222,
        0
    );
}

#[test]
fn retention_export_and_rm() {
    let lab = Lab::new();
    lab.linked_efix("db");
    for i in 0..3 {
        write(&lab.src().join(format!("f{i}.txt")), &format!("{i}\n"));
        settle();
        lab.ok(&["sync", "db"]);
    }
    assert_eq!(lab.snapshot_ids("db"), vec![1, 2, 3, 4]);
    let (ok, p) = lab.json(&["policy", "db", "--keep", "2", "--sync-every", "1h"]);
    assert!(ok);
    assert_eq!(p["keep"], 2);
    assert_eq!(p["syncEveryMs"], 3_600_000);
    assert_eq!(lab.snapshot_ids("db"), vec![3, 4], "policy applies at once");
    assert_eq!(lab.snapshot_dirs("db"), vec!["3", "4"]);
    write(&lab.src().join("f9.txt"), "9\n");
    settle();
    let (ok, r) = lab.json(&["sync", "db"]);
    assert!(ok);
    assert_eq!(r["expired"], serde_json::json!([3]));
    assert_eq!(lab.snapshot_ids("db"), vec![4, 5]);
    // Files shared with removed snapshots are intact.
    assert_eq!(read(&lab.snapshot_files("db", 4).join("a.txt")), "alpha\n");

    // Export: a usable, independent, writable copy with the original modes.
    let out = lab.path("export4");
    lab.ok(&["snapshot", "export", "db", "4", out.to_str().unwrap()]);
    assert_eq!(read(&out.join("f2.txt")), "2\n");
    assert!(!out.join("f9.txt").exists());
    let md = std::fs::metadata(out.join("a.txt")).unwrap();
    assert_ne!(md.mode() & 0o200, 0, "export restores the write bit");
    std::fs::write(out.join("a.txt"), "edited").unwrap();
    assert_eq!(read(&lab.snapshot_files("db", 4).join("a.txt")), "alpha\n");
    let o = lab.run(&["snapshot", "export", "db", "4", out.to_str().unwrap()]);
    assert!(!o.status.success(), "refuses a non-empty destination");

    lab.ok(&["snapshot", "rm", "db", "4"]);
    assert_eq!(lab.snapshot_ids("db"), vec![5]);
    assert_eq!(read(&lab.snapshot_files("db", 5).join("a.txt")), "alpha\n");
    let o = lab.run(&["snapshot", "rm", "db", "4"]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("has no snapshot 4"));
    let (_, p) = lab.json(&["policy", "db", "--keep", "none", "--sync-every", "never"]);
    assert!(p["keep"].is_null() && p["syncEveryMs"].is_null());
}

#[test]
fn enable_disable_and_status() {
    let lab = Lab::new();
    lab.linked_efix("db");
    let (_, st) = lab.json(&["status", "db"]);
    assert_eq!(st["status"], "ACTIVE");
    assert_eq!(st["statusFrom"], "hook");
    assert_eq!(st["lastSnapshot"]["id"], 1);

    lab.reset_ran();
    let (ok, r) = lab.json(&["disable", "db"]);
    assert!(ok, "{r:#}");
    assert_eq!(lab.ran(), vec!["stopStaging"]);
    let (_, st) = lab.json(&["status", "db"]);
    assert_eq!(st["status"], "INACTIVE");
    assert_eq!(st["statusFrom"], "disabled");
    assert_eq!(
        lab.ran(),
        vec!["stopStaging"],
        "no status hook for a disabled dSource"
    );
    let o = lab.run(&["sync", "db"]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("is disabled"));
    let (ok, r) = lab.json(&["disable", "db"]);
    assert!(ok);
    assert_eq!(r["changed"], false);

    let (ok, _) = lab.json(&["enable", "db"]);
    assert!(ok);
    assert_eq!(lab.ran(), vec!["stopStaging", "startStaging"]);
    let (_, st) = lab.json(&["status", "db"]);
    assert_eq!(st["status"], "ACTIVE");

    // A failing startStaging leaves it disabled, with a fault.
    lab.ok(&["disable", "db"]);
    lab.control("startStaging", "exit 4");
    let (ok, r) = lab.json(&["enable", "db"]);
    assert!(!ok);
    assert_eq!(r["enabled"], false);
    let (_, st) = lab.json(&["status", "db"]);
    assert_eq!(st["enabled"], false);
    assert_eq!(st["openFaults"], 1);
}

#[test]
fn operations_on_one_dsource_never_overlap() {
    let lab = Lab::new();
    lab.linked_efix("db");
    lab.control("preSnapshot", "sleep 3");
    let first = lab.cmd(&["sync", "db"]).spawn().unwrap();
    let pid = lab.ctl().join("preSnapshot.pid");
    let t = Instant::now();
    while !pid.exists() {
        assert!(t.elapsed() < Duration::from_secs(30));
        std::thread::sleep(Duration::from_millis(20));
    }
    // A second operation gives up with a clear message...
    let o = lab.run(&["disable", "db", "--lock-timeout", "500ms"]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("is busy with sync (pid"), "{err}");
    assert!(err.contains("--lock-timeout"), "{err}");
    // ...or waits, saying so, and then runs.
    let o = lab.run(&["disable", "db", "--lock-timeout", "60s"]);
    assert!(o.status.success(), "{}", show(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("waiting up to"));
    let out = first.wait_with_output().unwrap();
    assert!(out.status.success());
    // The disable ran after the sync finished, never inside it.
    let ran = lab.ran();
    let pos = |h: &str| ran.iter().rposition(|r| r == h).unwrap();
    assert!(pos("postSnapshot") < pos("stopStaging"), "{ran:?}");
}

#[test]
fn direct_source_syncs_with_runsync() {
    let lab = Lab::new();
    lab.ok(&["env", "add", "local", "--local"]);
    lab.ok(&["toolkit", "install", fixture("dfix").to_str().unwrap()]);
    write(&lab.src().join("one.txt"), "1\n");
    write(&lab.src().join("skip-me/x.txt"), "x\n");
    std::os::unix::fs::symlink("one.txt", lab.src().join("link")).unwrap();
    let (ok, r) = lab.link_json("files", "dfix", &[]);
    assert!(ok, "{r:#}");
    assert_eq!(
        steps(&r["job"]),
        pairs(&[
            ("preSnapshot", "ok"),
            ("snapshot", "ok"),
            ("postSnapshot", "ok")
        ])
    );
    assert_eq!(
        r["dsource"]["dataDirectory"],
        lab.src().to_str().unwrap(),
        "direct: source.dataDirectory is config.path"
    );
    assert_eq!(r["snapshot"]["metadata"]["files"], 2);
    let s1 = lab.snapshot_files("files", 1);
    assert_eq!(read(&s1.join("one.txt")), "1\n");
    assert!(!s1.join("skip-me").exists(), "excludePaths honoured");
    assert_eq!(
        std::fs::read_link(s1.join("link")).unwrap().to_str(),
        Some("one.txt")
    );
    write(&lab.src().join("one.txt"), "1 changed\n");
    let (ok, _) = lab.json(&["sync", "files"]);
    assert!(ok);
    assert_eq!(
        read(&lab.snapshot_files("files", 2).join("one.txt")),
        "1 changed\n"
    );
    assert_eq!(read(&s1.join("one.txt")), "1\n");
    // Direct sources have no staging.
    let o = lab.link("x", "dfix", &["--staging-environment", "local"]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("no staging environment"));
}

/// A copy of efix with `edit` applied, in the lab (at `<name>/efix`: the
/// directory must keep the toolkit's name).
fn efix_variant(lab: &Lab, name: &str, edit: impl FnOnce(&std::path::Path)) -> std::path::PathBuf {
    std::fs::create_dir_all(lab.path(name)).unwrap();
    let dst = lab.path(name).join("efix");
    let st = std::process::Command::new("cp")
        .args([
            "-a",
            fixture("efix").to_str().unwrap(),
            dst.to_str().unwrap(),
        ])
        .status()
        .unwrap();
    assert!(st.success());
    edit(&dst);
    dst
}

#[test]
fn mountspec_places_the_storage() {
    let lab = Lab::new();
    let mnt = lab.path("mnt/staging");
    let tk = efix_variant(&lab, "efix-mount", |d| {
        write(
            &d.join("staged/mountSpec.lua"),
            &format!("return \"{}\"\n", mnt.display()),
        );
    });
    lab.ok(&["env", "add", "local", "--local"]);
    lab.ok(&["toolkit", "install", tk.to_str().unwrap()]);
    write(&lab.src().join("a.txt"), "alpha\n");
    let (ok, r) = lab.link_json("db", "efix", &[]);
    assert!(ok, "{r:#}");
    assert_eq!(
        steps(&r["job"])[0],
        ("mountSpec".to_string(), "ok".to_string())
    );
    assert_eq!(r["dsource"]["dataDirectory"], mnt.to_str().unwrap());
    // The hooks wrote through the mount path into the engine's storage.
    let resync = &r["job"]["steps"][1];
    assert_eq!(
        resync["transcript"][0]["variables"]["DATA"],
        mnt.to_str().unwrap()
    );
    assert_eq!(read(&mnt.join("a.txt")), "alpha\n");
    assert_eq!(read(&lab.snapshot_files("db", 1).join("a.txt")), "alpha\n");
}

#[test]
fn installing_a_newer_toolkit_upgrades_linked_dsources() {
    let lab = Lab::new();
    lab.linked_efix("db");
    let v2 = efix_variant(&lab, "efix-v2", |d| {
        let main = d.join("main.json");
        let mut m: Value = serde_json::from_str(&read(&main)).unwrap();
        m["version"] = "1.1.0".into();
        m["linkedSourceDefinition"]["parameters"]["properties"]["tier"] =
            serde_json::json!({"type": "string"});
        m["linkedSourceDefinition"]["parameters"]["required"] = serde_json::json!(["tier"]);
        std::fs::write(&main, m.to_string()).unwrap();
        write(
            &d.join("upgrade/1.0/upgradeLinkedSource.lua"),
            "local p = {}\nfor k, v in pairs(parameters) do p[k] = v end\np.tier = \"gold\"\np.label = parameters.label .. \"-upgraded\"\nreturn p\n",
        );
        write(
            &d.join("upgrade/1.0/upgradeSnapshot.lua"),
            "return parameters\n",
        );
        write(
            &d.join("upgrade/1.0/upgradeVirtualSource.lua"),
            "return parameters\n",
        );
    });
    let (ok, r) = lab.json(&["toolkit", "install", v2.to_str().unwrap()]);
    assert!(ok, "{r:#}");
    assert_eq!(r["upgrades"][0]["dsource"], "db");
    assert_eq!(r["upgrades"][0]["ok"], true, "{r:#}");
    let (_, tl) = lab.json(&["toolkit", "list"]);
    let versions: Vec<&str> = tl
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["version"].as_str().unwrap())
        .collect();
    assert_eq!(versions, vec!["1.0.0", "1.1.0"], "each version is kept");
    let (_, st) = lab.json(&["status", "db"]);
    assert_eq!(st["toolkitVersion"], "1.1.0");
    // The next snapshot is taken with the upgraded parameters.
    let (ok, r) = lab.json(&["sync", "db"]);
    assert!(ok, "{r:#}");
    assert_eq!(r["snapshot"]["metadata"]["label"], "efix-upgraded");
    assert_eq!(r["snapshot"]["toolkitVersion"], "1.1.0");
    // Re-installing the same version is a no-op.
    let (ok, r) = lab.json(&["toolkit", "install", v2.to_str().unwrap()]);
    assert!(ok);
    assert_eq!(r["outcome"], "unchanged");
}

#[test]
fn an_invalid_toolkit_is_not_installed() {
    let lab = Lab::new();
    let bad = efix_variant(&lab, "efix-bad", |d| {
        write(&d.join("staged/resync.lua"), "this is not lua (\n");
    });
    let o = lab.run(&["toolkit", "install", bad.to_str().unwrap()]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("resync"), "names the script: {err}");
    let (_, tl) = lab.json(&["toolkit", "list"]);
    assert!(tl.as_array().unwrap().is_empty());
}

#[test]
fn daemon_once_runs_status_worker_and_due_syncs() {
    let lab = Lab::new();
    lab.linked_efix("db");
    lab.ok(&["policy", "db", "--sync-every", "1s"]);
    std::thread::sleep(Duration::from_millis(1100));
    lab.reset_ran();
    let (ok, s) = lab.json(&["daemon", "--once"]);
    assert!(ok, "{s:#}");
    assert_eq!(s["statusRuns"], 1);
    assert_eq!(s["workerRuns"], 1);
    assert_eq!(s["syncsStarted"], 1);
    assert_eq!(s["syncsFailed"], 0);
    let ran = lab.ran();
    for h in ["status", "worker", "preSnapshot", "postSnapshot"] {
        assert!(ran.iter().any(|r| r == h), "{h} ran: {ran:?}");
    }
    assert_eq!(lab.snapshot_ids("db"), vec![1, 2]);
}

#[test]
fn daemon_stops_cleanly_on_sigint() {
    let lab = Lab::new();
    lab.linked_efix("db");
    let mut child = lab
        .cmd(&[
            "daemon",
            "--interval",
            "1s",
            "--worker-interval",
            "1s",
            "--json",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let t = Instant::now();
    while !lab.ran().iter().any(|h| h == "worker") {
        assert!(t.elapsed() < Duration::from_secs(30), "worker never ran");
        std::thread::sleep(Duration::from_millis(50));
    }
    unsafe {
        libc::kill(child.id() as i32, libc::SIGINT);
    }
    let t = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(20), "daemon did not stop");
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", show(&out));
    let s: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(s["statusRuns"].as_u64().unwrap() >= 1);
    assert!(String::from_utf8_lossy(&out.stderr).contains("daemon stopped"));
    // No job left running.
    let (_, jobs) = lab.json(&["jobs", "db"]);
    assert!(
        jobs.as_array()
            .unwrap()
            .iter()
            .all(|j| j["state"] != "running")
    );
}

#[test]
fn json_output_into_a_closed_pipe_is_not_a_panic() {
    // Regression: `lunabox jobs --json | head -c1` panicked with "failed
    // printing to stdout: Broken pipe".
    let lab = Lab::new();
    lab.linked_efix("db");
    let mut child = lab
        .cmd(&["jobs", "--json"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "{err}");
    assert!(out.status.success(), "{}", show(&out));
}

#[test]
fn link_takes_parameters_from_a_file() {
    let lab = Lab::new();
    lab.ok(&["env", "add", "local", "--local"]);
    lab.ok(&["toolkit", "install", fixture("efix").to_str().unwrap()]);
    write(&lab.src().join("a.txt"), "alpha\n");
    write(&lab.path("params.json"), r#"{"label": "from-file"}"#);
    let params = lab.path("params.json");
    let (ok, r) = lab.link_json("db", "efix", &["--params", params.to_str().unwrap()]);
    assert!(ok, "{r:#}");
    assert_eq!(r["snapshot"]["metadata"]["label"], "from-file");
}
