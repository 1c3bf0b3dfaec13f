//! `lunabox fuzz`: on a toolkit planted with one bug of each kind
//! (tests/fixtures/fuzz/planted), every bug is found within 10,000 runs
//! with a fixed seed, the correct hooks and the hooks whose only failures
//! are expected faults give no finding, each written reproducer replays its
//! finding through `run-hook`, and the same seed gives the same report.

#[path = "common/toolkit.rs"]
mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;
use support::{json_of, lunabox, parts};

fn planted() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/fuzz/planted")
}

/// `lunabox fuzz planted ARGS... --json`: (exit status, report).
fn fuzz(out: &Path, args: &[&str]) -> (i32, Value) {
    let toolkit = planted();
    let mut all = vec![
        "fuzz",
        toolkit.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--json",
    ];
    all.extend(args);
    let o = lunabox(&all);
    let (code, _, stderr) = parts(&o);
    assert!(stderr.contains("runs ("), "no progress on stderr: {stderr}");
    (code, json_of(&o))
}

const BUGS: [(&str, &str); 4] = [
    ("staged/resync", "runtime-error"),
    ("staged/status", "bad-return"),
    ("staged/startStaging", "injection"),
    ("staged/stopStaging", "limit"),
];

#[test]
fn planted_bugs_are_found_and_their_reproducers_replay_them() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("findings");
    let (code, report) = fuzz(
        &out,
        &["--runs", "10000", "--seed", "7", "--max-calls", "50"],
    );
    assert_eq!(code, 1, "exit 1 when a bug was found: {report:#}");
    assert_eq!(report["runs"], 10000);
    assert!(report["runsPerSecond"].as_f64().unwrap() > 0.0);
    assert!(report["expectedFaults"].as_u64().unwrap() > 0);
    let findings = report["findings"].as_array().unwrap();
    let found: BTreeMap<(String, String), &Value> = findings
        .iter()
        .map(|f| {
            (
                (
                    f["hook"].as_str().unwrap().to_string(),
                    f["kind"].as_str().unwrap().to_string(),
                ),
                f,
            )
        })
        .collect();
    for (hook, kind) in BUGS {
        assert!(
            found.contains_key(&(hook.to_string(), kind.to_string())),
            "{kind} in {hook} not found: {report:#}"
        );
    }
    // Only the planted bugs: the correct hooks and those with only expected
    // faults give none.
    assert_eq!(findings.len(), BUGS.len(), "{report:#}");
    // Every line of every hook ran.
    for (hook, c) in report["coverage"].as_object().unwrap() {
        assert_eq!(c["covered"], c["lines"], "{hook}: {c}");
    }

    let f = found[&("staged/resync".to_string(), "runtime-error".to_string())];
    assert_eq!(f["location"], "planted/staged/resync.lua:8");
    let run = replay(f, &[]);
    assert_eq!(run["kind"], "runtime", "{run:#}");
    assert!(
        run["message"]
            .as_str()
            .unwrap()
            .contains("resync.lua:8: attempt to perform arithmetic on a nil value")
    );

    let f = found[&("staged/status".to_string(), "bad-return".to_string())];
    assert_eq!(f["location"], "planted/staged/status.lua:7");
    let run = replay(f, &[]);
    assert_eq!(run["kind"], "bad-result", "{run:#}");

    let f = found[&("staged/stopStaging".to_string(), "limit".to_string())];
    let run = replay(f, &["--max-calls", "50"]);
    assert_eq!(run["outcome"], "limit", "{run:#}");
    assert_eq!(run["limit"], "calls", "{run:#}");

    let f = found[&("staged/startStaging".to_string(), "injection".to_string())];
    assert_eq!(f["location"], "planted/staged/startStaging.lua:3");
    assert!(f["message"].as_str().unwrap().contains("parameters.dbName"));
    // The replayed call's command text holds the parameter's value.
    let context: Value =
        serde_json::from_str(&std::fs::read_to_string(f["context"].as_str().unwrap()).unwrap())
            .unwrap();
    let name = context["parameters"]["dbName"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        name.contains("cnry"),
        "the minimized value keeps its canary: {name}"
    );
    let transcript = dir.path().join("transcript.json");
    let run = replay(f, &["--transcript", transcript.to_str().unwrap()]);
    assert_eq!(run["outcome"], "ok", "{run:#}");
    let t: Value = serde_json::from_str(&std::fs::read_to_string(&transcript).unwrap()).unwrap();
    assert!(t[0]["command"].as_str().unwrap().contains(&name), "{t:#}");

    // Minimized: one answer or none, and the default.
    for f in findings {
        let r: Value = serde_json::from_str(
            &std::fs::read_to_string(f["responses"].as_str().unwrap()).unwrap(),
        )
        .unwrap();
        assert!(r["calls"].as_array().unwrap().len() <= 1, "{f}: {r:#}");
    }
}

/// `run-hook` with a finding's files.
fn replay(finding: &Value, extra: &[&str]) -> Value {
    let toolkit = planted();
    let mut args = vec![
        "run-hook",
        toolkit.to_str().unwrap(),
        finding["hook"].as_str().unwrap(),
        "--context",
        finding["context"].as_str().unwrap(),
        "--responses",
        finding["responses"].as_str().unwrap(),
        "--json",
    ];
    args.extend(extra);
    json_of(&lunabox(&args))
}

#[test]
fn correct_hooks_give_no_finding() {
    let dir = tempfile::tempdir().unwrap();
    let mut args = vec!["--runs", "3000", "--seed", "11"];
    for h in [
        "staged/preSnapshot",
        "staged/postSnapshot",
        "virtual/status",
        "virtual/configure",
        "virtual/reconfigure",
        "virtual/start",
        "virtual/stop",
        "discovery/repositoryDiscovery",
        "discovery/sourceConfigDiscovery",
    ] {
        args.extend(["--hook", h]);
    }
    let (code, report) = fuzz(&dir.path().join("out"), &args);
    assert_eq!(report["findings"], serde_json::json!([]), "{report:#}");
    assert_eq!(code, 0);
    // virtual/start and virtual/stop fail only when their call does.
    assert!(report["expectedFaults"].as_u64().unwrap() > 0);
    assert!(
        !dir.path().join("out").exists(),
        "nothing written without a finding"
    );
}

#[test]
fn the_same_seed_gives_the_same_report_and_lcov() {
    let dir = tempfile::tempdir().unwrap();
    let lcov = dir.path().join("cov.info");
    let run = |n: &str, lcov: Option<&Path>| {
        let out = dir.path().join(n);
        let mut args = vec![
            "--runs",
            "1500",
            "--seed",
            "3",
            "--max-calls",
            "50",
            "--jobs",
            "2",
        ];
        if let Some(l) = lcov {
            args.extend(["--lcov", l.to_str().unwrap()]);
        }
        let (_, mut report) = fuzz(&out, &args);
        report["runsPerSecond"] = Value::Null;
        // Paths differ by --out only.
        let text = report.to_string().replace(out.to_str().unwrap(), "OUT");
        let files: Vec<String> = std::fs::read_dir(&out)
            .map(|d| {
                let mut v: Vec<String> = d
                    .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
                    .collect();
                v.sort();
                v
            })
            .unwrap_or_default();
        (text, files)
    };
    let a = run("a", Some(&lcov));
    let b = run("b", None);
    assert_eq!(a, b);
    let info = std::fs::read_to_string(&lcov).unwrap();
    assert!(
        info.contains("SF:") && info.contains("staged/resync.lua"),
        "{info}"
    );
    assert!(info.contains("DA:8,1"), "{info}");
    assert!(info.contains("end_of_record"));
}

#[test]
fn usage_errors_exit_2() {
    let toolkit = planted();
    let o = lunabox(&[
        "fuzz",
        toolkit.to_str().unwrap(),
        "--hook",
        "staged/nope",
        "--runs",
        "1",
    ]);
    assert_eq!(parts(&o).0, 2);
    let o = lunabox(&["fuzz", "/no/such/toolkit"]);
    assert_eq!(parts(&o).0, 2);
}
