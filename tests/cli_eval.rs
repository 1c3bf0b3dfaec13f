//! `lunabox eval` as a user runs it: JSON output, exit statuses, limits.

use std::io::Write;
use std::process::Command;

use serde_json::{Value, json};

fn eval(script: &str, args: &[&str]) -> (i32, Value, String) {
    let mut f = tempfile::Builder::new().suffix(".lua").tempfile().unwrap();
    f.write_all(script.as_bytes()).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_lunabox"))
        .arg("eval")
        .arg(f.path())
        .args(args)
        .arg("--json")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let v = serde_json::from_str(&stdout).unwrap_or(Value::Null);
    (
        out.status.code().unwrap_or(-1),
        v,
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

#[test]
fn ok_prints_the_value_and_stats() {
    let (code, v, _) = eval("print('hi') return {n = 42}", &[]);
    assert_eq!(code, 0);
    assert_eq!(v["outcome"], "ok");
    assert_eq!(v["value"], json!({"n": 42}));
    assert!(v["stats"]["wallMs"].as_f64().unwrap() > 0.0);
    assert!(v["stats"]["peakMemoryBytes"].as_u64().unwrap() > 0);
    assert_eq!(v["log"][0]["message"], "hi");
}

#[test]
fn errors_exit_1_with_message_and_traceback() {
    let (code, v, _) = eval("local function f() error('nope') end\nf()", &[]);
    assert_eq!(code, 1);
    assert_eq!(v["outcome"], "error");
    assert!(v["message"].as_str().unwrap().contains(":1: nope"), "{v}");
    assert!(
        v["traceback"].as_str().unwrap().contains("stack traceback"),
        "{v}"
    );
}

#[test]
fn limits_exit_3_and_name_the_limit() {
    let (code, v, _) = eval("while true do end", &["--timeout", "300ms"]);
    assert_eq!(
        (code, v["outcome"].as_str(), v["limit"].as_str()),
        (3, Some("limit"), Some("time"))
    );
    let (code, v, _) = eval("while true do end", &["--fuel", "100000"]);
    assert_eq!((code, v["limit"].as_str()), (3, Some("fuel")));
    assert!(v["stats"]["fuelUsed"].as_u64().unwrap() >= 100000);
    let (code, v, _) = eval(
        "local t = {} for i = 1, 1e9 do t[i] = i end",
        &["--memory", "16MiB"],
    );
    assert_eq!((code, v["limit"].as_str()), (3, Some("memory")));
}

#[test]
fn globals_file_and_usage_errors() {
    let mut g = tempfile::Builder::new().suffix(".json").tempfile().unwrap();
    g.write_all(br#"{"parameters": {"port": 5432}}"#).unwrap();
    let (code, v, _) = eval(
        "return parameters.port",
        &["--globals", g.path().to_str().unwrap()],
    );
    assert_eq!((code, v["value"].clone()), (0, json!(5432)));

    let out = Command::new(env!("CARGO_BIN_EXE_lunabox"))
        .args(["eval", "/nonexistent/x.lua"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/x.lua"));
    let (code, _, stderr) = eval("return 1", &["--timeout", "soon"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("500ms"), "{stderr}");
}
