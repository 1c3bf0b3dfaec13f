//! Pins the JSON a script reads: `eval --json`, `run-hook --json` and the
//! detail of stored faults keep their field names, kinds and nesting for
//! every way a hook ends (value, Lua error, failed Run call, limit). A
//! change here breaks users' scripts: make it on purpose, never by accident.

#[path = "common/engine.rs"]
mod engine_common;

use std::collections::BTreeSet;
use std::process::Command;

use engine_common::*;
use serde_json::{Value, json};

fn keys(v: &Value) -> BTreeSet<String> {
    v.as_object()
        .unwrap_or_else(|| panic!("not an object: {v}"))
        .keys()
        .cloned()
        .collect()
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| s.to_string()).collect()
}

fn eval(script: &str, extra: &[&str]) -> (i32, Value) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("pin.lua");
    std::fs::write(&file, script).unwrap();
    let out = Command::new(bin())
        .arg("eval")
        .arg(&file)
        .arg("--json")
        .args(extra)
        .output()
        .unwrap();
    let v = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("eval --json printed no JSON ({e}): {}", show(&out)));
    (out.status.code().unwrap_or(-1), v)
}

#[test]
fn eval_json_keeps_its_shape() {
    let (code, v) = eval("print('hi') return {n = 1}", &[]);
    assert_eq!(code, 0);
    assert_eq!(
        keys(&v),
        set(&["outcome", "value", "stats", "log", "runCalls"])
    );
    assert_eq!(v["outcome"], "ok");
    assert_eq!(keys(&v["log"][0]), set(&["level", "message"]));
    assert_eq!(
        keys(&v["stats"]),
        set(&["wallMs", "peakMemoryBytes", "runCalls"])
    );

    let (code, v) = eval("error('nope')", &[]);
    assert_eq!(code, 1);
    assert_eq!(
        keys(&v),
        set(&[
            "outcome",
            "kind",
            "message",
            "traceback",
            "stats",
            "log",
            "runCalls"
        ])
    );
    assert_eq!(
        (v["outcome"].clone(), v["kind"].clone()),
        (json!("error"), json!("runtime"))
    );

    let (code, v) = eval("return (", &[]);
    assert_eq!(code, 1);
    assert_eq!(v["kind"], "syntax");

    let (code, v) = eval("RunBash{ command = 'echo out; echo err >&2; exit 3' }", &[]);
    assert_eq!(code, 1);
    assert_eq!(v["kind"], "run-failed");
    assert_eq!(
        v["fault"],
        json!({"function": "RunBash", "exitCode": 3, "stdout": "out\n", "stderr": "err\n"})
    );
    let call = &v["runCalls"][0];
    assert_eq!(call["function"], "RunBash");
    assert_eq!(call["exitCode"], 3);

    let (code, v) = eval("while true do end", &["--timeout", "200ms"]);
    assert_eq!(code, 3);
    assert_eq!(
        keys(&v),
        set(&["outcome", "limit", "message", "stats", "log", "runCalls"])
    );
    assert_eq!(
        (v["outcome"].clone(), v["limit"].clone()),
        (json!("limit"), json!("time"))
    );
    assert!(v["message"].as_str().unwrap().contains("--timeout"));
}

fn pin_toolkit(dir: &std::path::Path) -> std::path::PathBuf {
    let built = json!({
        "type": "Toolkit", "name": "pin", "prettyName": "Pin", "version": "1.0.0",
        "hostTypes": ["UNIX"], "defaultLocale": "en-us",
        "linkedSourceDefinition": {
            "type": "ToolkitLinkedStagedSource",
            "parameters": {"type": "object", "properties": {
                "pw": {"type": "string", "format": "password", "default": "hunter2"}}},
            "resync": "",
            "status": "return parameters.pw == 'hunter2' and 'ACTIVE' or 'INACTIVE'",
            "preSnapshot": "RunBash{ command = 'echo out; exit 4' }",
            "postSnapshot": "return { word = parameters.pw }",
            "worker": "while true do end",
            "startStaging": "error('no ' .. parameters.pw)"
        },
        "virtualSourceDefinition": {"type": "ToolkitVirtualSource", "parameters": {"type": "object"}},
        "snapshotSchema": {"type": "object", "properties": {"word": {"type": "string"}}}
    });
    let path = dir.join("pin.json");
    std::fs::write(&path, built.to_string()).unwrap();
    path
}

fn run_hook(
    tk: &std::path::Path,
    ctx: &std::path::Path,
    hook: &str,
    extra: &[&str],
) -> (i32, Value) {
    let out = Command::new(bin())
        .arg("run-hook")
        .arg(tk)
        .arg(hook)
        .arg("--context")
        .arg(ctx)
        .arg("--json")
        .args(extra)
        .output()
        .unwrap();
    let v = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("run-hook --json printed no JSON ({e}): {}", show(&out)));
    (out.status.code().unwrap_or(-1), v)
}

#[test]
fn run_hook_json_keeps_its_shape_and_masks_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let tk = pin_toolkit(dir.path());
    let ctx = dir.path().join("ctx.json");
    std::fs::write(
        &ctx,
        json!({"config": {}, "repository": {}, "source": {}}).to_string(),
    )
    .unwrap();

    let (code, v) = run_hook(&tk, &ctx, "staged/status", &[]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(
        keys(&v),
        set(&[
            "outcome", "hook", "value", "message", "fault", "stats", "log"
        ])
    );
    assert_eq!(v["value"], "ACTIVE");
    assert_eq!(
        (v["message"].clone(), v["fault"].clone()),
        (Value::Null, Value::Null)
    );

    let (code, v) = run_hook(&tk, &ctx, "staged/postSnapshot", &[]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(
        v["value"],
        json!({"word": "********"}),
        "a secret in the value is masked"
    );

    let (code, v) = run_hook(&tk, &ctx, "staged/startStaging", &[]);
    assert_eq!(code, 1);
    assert_eq!(
        keys(&v),
        set(&[
            "outcome",
            "hook",
            "kind",
            "value",
            "message",
            "fault",
            "traceback",
            "stats",
            "log"
        ])
    );
    assert_eq!(v["kind"], "runtime");
    assert!(
        v["message"].as_str().unwrap().contains("no ********"),
        "{v}"
    );
    assert!(!v.to_string().contains("hunter2"), "{v}");

    let (code, v) = run_hook(&tk, &ctx, "staged/preSnapshot", &[]);
    assert_eq!(code, 1);
    assert_eq!(v["kind"], "run-failed");
    assert_eq!(
        v["fault"],
        json!({"function": "RunBash", "exitCode": 4, "stdout": "out\n", "stderr": ""})
    );

    let (code, v) = run_hook(&tk, &ctx, "staged/worker", &["--timeout", "200ms"]);
    assert_eq!(code, 3);
    assert_eq!(
        keys(&v),
        set(&[
            "outcome", "hook", "kind", "value", "message", "fault", "limit", "stats", "log"
        ])
    );
    assert_eq!(v["kind"], json!({"limit": "time"}));
    assert_eq!(v["limit"], "time");
}

#[test]
fn stored_faults_keep_their_shape() {
    let lab = Lab::new();
    lab.linked_efix("db");
    lab.control("preSnapshot", "exit 3");
    let (ok, _) = lab.json(&["sync", "db"]);
    assert!(!ok);
    lab.clear("preSnapshot");
    lab.control("postSnapshot", "lua");
    let (ok, _) = lab.json(&["sync", "db"]);
    assert!(!ok);
    let (ok, faults) = lab.json(&["faults", "db"]);
    assert!(ok);
    let faults = faults.as_array().unwrap();
    let by_hook = |h: &str| {
        faults
            .iter()
            .find(|f| f["hook"] == h)
            .unwrap_or_else(|| panic!("no fault for {h}: {faults:#?}"))
            .clone()
    };
    let exit = by_hook("staged/preSnapshot");
    assert_eq!(
        keys(&exit["detail"]),
        set(&[
            "toolkit",
            "version",
            "script",
            "kind",
            "function",
            "exitCode",
            "stdout",
            "stderr",
            "traceback"
        ])
    );
    assert_eq!(exit["detail"]["kind"], "run-failed");
    let lua = by_hook("staged/postSnapshot");
    assert_eq!(
        keys(&lua["detail"]),
        set(&["toolkit", "version", "script", "kind", "traceback"])
    );
    assert_eq!(lua["detail"]["kind"], "runtime");
}
