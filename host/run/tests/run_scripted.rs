//! The scripted executor (`--responses`): it simulates the commands of a
//! toolkit from a response file, so nothing here runs a process. These
//! tests check its matching rules and that `run::perform` applies the same
//! rules to scripted results as to real ones.

use std::collections::BTreeMap;
use std::sync::Arc;

use lunabox_run::executors::ScriptedExecutor;
use lunabox_run::{self, RunContext, RunFailure, RunFunction};
use serde_json::{Value, json};

fn ctx() -> RunContext {
    RunContext {
        resources: Arc::new(BTreeMap::from([
            ("status.sh".to_string(), "query_status\n".to_string()),
            (
                "start.sh".to_string(),
                "start_db --port \"$PORT\"\n".to_string(),
            ),
            ("login.exp".to_string(), "spawn db_login\n".to_string()),
        ])),
        ..RunContext::default()
    }
}

fn call(
    exec: &ScriptedExecutor,
    function: RunFunction,
    call: Value,
) -> Result<Option<Value>, RunFailure> {
    lunabox_run::perform(function, &call.to_string(), exec, &ctx()).0
}

fn responses() -> ScriptedExecutor {
    ScriptedExecutor::from_json(&json!({
        "calls": [
            {"match": {"function": "RunBash", "resource": "status.sh", "user": "staging"}, "output": "ACTIVE"},
            {"match": {"resource": "status.sh"}, "output": "INACTIVE", "stdout": "second rule"},
            {"match": {"commandContains": "start_db", "environment": "ENV-2"}, "exitCode": 3, "stdout": "o", "stderr": "port in use"},
            {"match": {"function": "RunExpect"}, "output": {"ok": true, "n": [1, 2.5, null]}},
            {"match": {"function": "RunSync", "host": "H1"}, "exitCode": 0},
            {"match": {"commandContains": "raw"}, "outputText": "not json"},
            {"match": {"commandContains": "empty"}}
        ],
        "default": {"output": "DEFAULT"}
    }))
    .unwrap()
}

#[test]
fn the_first_matching_entry_answers() {
    let s = responses();
    let status =
        json!({"command": "query_status\n", "user": "staging", "outputSchema": {"type": "string"}});
    assert_eq!(
        call(&s, RunFunction::RunBash, status),
        Ok(Some(json!("ACTIVE")))
    );
    // Same resource, other user: the second entry.
    let status =
        json!({"command": "query_status\n", "user": "other", "outputSchema": {"type": "string"}});
    assert_eq!(
        call(&s, RunFunction::RunBash, status.clone()),
        Ok(Some(json!("INACTIVE")))
    );
    // Same resource, other function: still the second entry (no function in its match).
    assert_eq!(
        call(&s, RunFunction::RunCommand, status),
        Ok(Some(json!("INACTIVE")))
    );
}

#[test]
fn a_non_zero_exit_code_is_a_failed_call_with_its_streams() {
    let s = responses();
    let r = call(
        &s,
        RunFunction::RunBash,
        json!({"command": "start_db --port \"$PORT\"\n", "environment": "ENV-2"}),
    );
    assert_eq!(
        r,
        Err(RunFailure::Exit {
            exit_code: 3,
            stdout: "o".into(),
            stderr: "port in use".into(),
            message: "RunBash (resource start.sh) exited with status 3; stderr: port in use".into()
        })
    );
    // Another environment: no entry but the default.
    let r = call(
        &s,
        RunFunction::RunBash,
        json!({"command": "start_db\n", "environment": "ENV-1", "outputSchema": {"type": "string"}}),
    );
    assert_eq!(r, Ok(Some(json!("DEFAULT"))));
}

#[test]
fn output_goes_through_the_schema_like_a_real_call() {
    let s = responses();
    let r = call(
        &s,
        RunFunction::RunExpect,
        json!({"command": "spawn db_login\n", "outputSchema": {"type": "object"}}),
    );
    assert_eq!(r, Ok(Some(json!({"ok": true, "n": [1, 2.5, null]}))));
    let r = call(
        &s,
        RunFunction::RunExpect,
        json!({"command": "spawn db_login\n", "outputSchema": {"type": "string"}}),
    );
    assert!(
        matches!(&r, Err(RunFailure::BadOutput(m)) if m.contains("RunExpect (resource login.exp)") && m.contains("is not of type \"string\"")),
        "{r:?}"
    );
    let r = call(
        &s,
        RunFunction::RunBash,
        json!({"command": "raw", "outputSchema": {}}),
    );
    assert!(
        matches!(&r, Err(RunFailure::BadOutput(m)) if m.contains("`not json`")),
        "{r:?}"
    );
    let r = call(
        &s,
        RunFunction::RunBash,
        json!({"command": "empty", "outputSchema": {}}),
    );
    assert!(
        matches!(&r, Err(RunFailure::BadOutput(m)) if m.contains("wrote no output")),
        "{r:?}"
    );
    let r = call(
        &s,
        RunFunction::RunSync,
        json!({"sourceDirectory": "/data", "host": "H1"}),
    );
    assert_eq!(r, Ok(None));
}

#[test]
fn no_match_and_no_default_says_what_to_add() {
    let s = ScriptedExecutor::from_json(&json!({"calls": [{"match": {"function": "RunSync"}}]}))
        .unwrap();
    let (r, entry) = lunabox_run::perform(
        RunFunction::RunBash,
        &json!({"command": "query_status\n", "environment": "E", "user": "U", "host": "H"})
            .to_string(),
        &s,
        &ctx(),
    );
    assert_eq!(
        r,
        Err(RunFailure::Unavailable(
            "no scripted response matches RunBash (resource status.sh, environment E, \
             user U, host H); add a `calls` entry or a `default` to responses"
                .into()
        ))
    );
    assert_eq!(entry.exit_code, None);
    assert_eq!(entry.resource.as_deref(), Some("status.sh"));
}

#[test]
fn responses_file_errors_name_the_file_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("responses.json");
    let cases = [
        (
            json!({"calls": [{"match": {"function": "RunBsh"}}]}),
            "calls[0].match.function` is `RunBsh`; it must be one of RunBash, RunCommand, RunExpect, RunPowerShell, RunSync",
        ),
        (
            json!({"calls": [{}, {"exitcode": 1}]}),
            "unknown field `calls[1].exitcode`",
        ),
        (
            json!({"default": {"exitCode": "1"}}),
            "`default.exitCode` must be an integer exit status",
        ),
        (
            json!({"calls": [{"match": {"cmd": "x"}}]}),
            "unknown field `calls[0].match.cmd`",
        ),
        (json!({"calls": {}}), "`calls` must be a list"),
        (json!({"defaults": {}}), "unknown field `defaults`"),
        (
            json!({"calls": [{"output": 1, "outputText": "x"}]}),
            "`calls[0]` has both `output` and `outputText`",
        ),
        (json!([]), "must be a JSON object"),
    ];
    for (value, want) in cases {
        std::fs::write(&path, value.to_string()).unwrap();
        let e = ScriptedExecutor::from_file(&path).unwrap_err().to_string();
        assert!(e.starts_with(&format!("{}: ", path.display())), "{e}");
        assert!(e.contains(want), "{e}\n  wanted: {want}");
    }
    std::fs::write(&path, "{not json").unwrap();
    let e = ScriptedExecutor::from_file(&path).unwrap_err().to_string();
    assert!(e.contains("not valid JSON"), "{e}");
    let e = ScriptedExecutor::from_file(&dir.path().join("missing.json"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("missing.json: could not read"), "{e}");

    std::fs::write(&path, r#"{"default": {"output": null}}"#).unwrap();
    let s = ScriptedExecutor::from_file(&path).unwrap();
    assert_eq!(s.source_name(), path.display().to_string());
    let r = lunabox_run::perform(
        RunFunction::RunBash,
        r#"{"command": "x", "outputSchema": {"type": "null"}}"#,
        &s,
        &RunContext::default(),
    )
    .0;
    assert_eq!(
        r,
        Ok(Some(Value::Null)),
        "`output: null` writes the document null"
    );
}

#[test]
fn a_hanging_response_waits_for_the_deadline() {
    let exec = ScriptedExecutor::from_json(&json!({"default": {"hang": true}})).unwrap();
    let started = std::time::Instant::now();
    let ctx = RunContext {
        deadline: Some(started + std::time::Duration::from_millis(60)),
        ..ctx()
    };
    let (r, entry) = lunabox_run::perform(
        RunFunction::RunBash,
        &json!({"command": "sleep 1000"}).to_string(),
        &exec,
        &ctx,
    );
    assert!(matches!(r, Err(RunFailure::Deadline { .. })), "{r:?}");
    assert!(started.elapsed() >= std::time::Duration::from_millis(60));
    assert_eq!(entry.exit_code, None);
    // An inline command's text is in the transcript entry.
    assert_eq!(entry.command.as_deref(), Some("sleep 1000"));
    let err = ScriptedExecutor::from_json(&json!({"default": {"hang": 1}})).unwrap_err();
    assert!(err.to_string().contains("default.hang"), "{err}");
}

#[test]
fn a_responses_file_written_back_reads_the_same() {
    let exec = responses();
    let again = ScriptedExecutor::from_json(&exec.to_json()).unwrap();
    assert_eq!(again.to_json(), exec.to_json());
    for (function, c) in [
        (
            RunFunction::RunBash,
            json!({"command": "query_status\n", "user": "staging", "outputSchema": {"type": "string"}}),
        ),
        (
            RunFunction::RunExpect,
            json!({"command": "x", "outputSchema": {}}),
        ),
        (
            RunFunction::RunBash,
            json!({"command": "raw", "outputSchema": {}}),
        ),
        (
            RunFunction::RunBash,
            json!({"command": "start_db", "environment": "ENV-2"}),
        ),
    ] {
        assert_eq!(call(&exec, function, c.clone()), call(&again, function, c));
    }
    // `output` when the bytes are one compact JSON document, else `outputText`.
    let t = exec.to_json();
    assert_eq!(
        t["calls"][3]["output"],
        json!({"ok": true, "n": [1, 2.5, null]})
    );
    assert_eq!(t["calls"][5]["outputText"], "not json");
}
