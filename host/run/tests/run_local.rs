//! Run-call semantics on this machine: `run::perform` with the real
//! `LocalExecutor` (real bash, sh and expect). No sandbox involved.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use lunabox_run::executors::LocalExecutor;
use lunabox_run::{self, Executor, RunCall, RunContext, RunFailure, RunFunction, TranscriptEntry};
use serde_json::{Value, json};

#[path = "../../../tests/common/skip.rs"]
mod skip;

type Outcome = (Result<Option<Value>, RunFailure>, TranscriptEntry);

fn ctx() -> RunContext {
    RunContext {
        deadline: Some(Instant::now() + Duration::from_secs(60)),
        ..RunContext::default()
    }
}

fn with_resources(resources: &[(&str, &str)]) -> RunContext {
    RunContext {
        resources: Arc::new(
            resources
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>(),
        ),
        ..ctx()
    }
}

fn perform_in(function: RunFunction, call: Value, ctx: &RunContext) -> Outcome {
    lunabox_run::perform(function, &call.to_string(), &LocalExecutor::new(), ctx)
}

fn bash(call: Value) -> Outcome {
    perform_in(RunFunction::RunBash, call, &ctx())
}

/// The value of a call expected to succeed with an outputSchema.
fn value(o: Outcome) -> Value {
    match o.0 {
        Ok(Some(v)) => v,
        other => panic!("expected a value, got {other:?}"),
    }
}

fn failure(o: Outcome) -> RunFailure {
    match o.0 {
        Err(f) => f,
        other => panic!("expected a failure, got {other:?}"),
    }
}

/// Whether process `pid` is gone (or a zombie waiting for init).
fn dead(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit(')')
            .next()
            .is_some_and(|rest| rest.trim_start().starts_with('Z')),
    }
}

fn read_pid(path: &Path) -> i32 {
    for _ in 0..100 {
        if let Some(p) = std::fs::read_to_string(path)
            .ok()
            .and_then(|t| t.trim().parse().ok())
        {
            return p;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("no pid in {}", path.display())
}

/// A context whose deadline is `ms` milliseconds from now.
fn deadline_in(ms: u64) -> RunContext {
    RunContext {
        deadline: Some(Instant::now() + Duration::from_millis(ms)),
        ..RunContext::default()
    }
}

/// Run the RunBash `command` in `ctx` with `$PIDF` naming a fresh pid file
/// that the command writes: the outcome, how long the call took and the pid.
fn bash_writing_pid(command: &str, ctx: &RunContext) -> (Outcome, Duration, i32) {
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("pid");
    let t = Instant::now();
    let outcome = perform_in(
        RunFunction::RunBash,
        json!({"command": command, "variables": {"PIDF": pidfile.to_str().unwrap()}}),
        ctx,
    );
    let elapsed = t.elapsed();
    (outcome, elapsed, read_pid(&pidfile))
}

#[test]
fn variables_are_converted_to_text_and_nil_dropped() {
    let v = value(bash(json!({
        "command": r#"printf '"%s|%s|%s|%s|%s|%s|%s|%s"' "$I" "$NEG" "$F" "$F2" "$BIG" "$T" "$FA" "${NILV-unset}" > "$DLPX_OUTPUT_FILE""#,
        "variables": {"I": 1234, "NEG": -7, "F": 2.0, "F2": 0.1, "BIG": 1e15, "T": true, "FA": false, "NILV": null},
        "outputSchema": {"type": "string"}
    })));
    assert_eq!(v, json!("1234|-7|2.0|0.1|1e+15|true|false|unset"));
}

#[test]
fn a_nested_table_variable_is_a_bad_call_naming_it() {
    let (r, entry) =
        bash(json!({"command": "true", "variables": {"OK": 1, "FOO": {"a": 1}}, "user": "u"}));
    assert_eq!(
        r.unwrap_err(),
        RunFailure::BadCall(
            "RunBash: variables.FOO is a table; Run variables must be strings, numbers or booleans"
                .into()
        )
    );
    assert_eq!(entry.exit_code, None);
    assert_eq!(entry.user.as_deref(), Some("u"));
}

#[test]
fn commands_get_a_clean_environment_from_home_with_no_stdin() {
    let v = value(bash(json!({
        "command": r#"
            lunabox_vars=$(env | grep -c -e CARGO -e RUST || true)
            stdin=$(readlink /proc/self/fd/0)
            printf '{"home":"%s","pwd":"%s","user":"%s","logname":"%s","lang":"%s","path":"%s","leaked":%s,"stdin":"%s","shell":"%s"}' \
              "$HOME" "$PWD" "$USER" "$LOGNAME" "$LANG" "$PATH" "$lunabox_vars" "$stdin" "$SHELL" > "$DLPX_OUTPUT_FILE"
        "#,
        "outputSchema": {"type": "object"}
    })));
    let me = lunabox_run::executors::account::current();
    assert_eq!(v["home"], json!(me.home.to_str().unwrap()));
    assert_eq!(v["pwd"], v["home"]);
    assert_eq!(v["user"], json!(me.name));
    assert_eq!(v["logname"], json!(me.name));
    assert_eq!(v["lang"], json!("C.UTF-8"));
    assert_eq!(
        v["path"],
        json!(lunabox_run::executors::local::DEFAULT_PATH)
    );
    assert_eq!(
        v["leaked"],
        json!(0),
        "lunabox's own environment leaked into the command"
    );
    assert_eq!(v["stdin"], json!("/dev/null"));
    assert_eq!(v["shell"], json!(me.shell.to_str().unwrap()));
}

#[test]
fn a_16_kb_variable_is_passed_whole_and_can_be_evaled() {
    let mut lib = String::from("lib_hello() { printf '\"hello %s\"' \"$1\"; }\n");
    while lib.len() < 16 * 1024 {
        lib.push_str(
            "# padding line to make the shell library as large as real ones are ........\n",
        );
    }
    lib.truncate(16 * 1024 - 1);
    lib.push('\n');
    assert_eq!(lib.len(), 16 * 1024);
    let v = value(bash(json!({
        "command": r#"eval "$LIB"; [ "${#LIB}" = 16384 ] || { echo "length ${#LIB}" >&2; exit 9; }; lib_hello world > "$DLPX_OUTPUT_FILE""#,
        "variables": {"LIB": lib},
        "outputSchema": {"type": "string"}
    })));
    assert_eq!(v, json!("hello world"));
}

#[test]
fn the_output_file_exists_empty_private_and_fresh_and_takes_gt_and_gtgt() {
    let check = r#"
        [ -f "$DLPX_OUTPUT_FILE" ] || { echo "missing" >&2; exit 3; }
        [ -s "$DLPX_OUTPUT_FILE" ] && { echo "not empty" >&2; exit 4; }
        [ "$(stat -c %a "$DLPX_OUTPUT_FILE")" = 600 ] || { echo "mode $(stat -c %a "$DLPX_OUTPUT_FILE")" >&2; exit 5; }
        echo '{"path": "'"$DLPX_OUTPUT_FILE"'",' > "$DLPX_OUTPUT_FILE"
        echo '"n": 1}' >> "$DLPX_OUTPUT_FILE"
    "#;
    let first = value(bash(
        json!({"command": check, "outputSchema": {"type": "object", "required": ["path", "n"]}}),
    ));
    let second = value(bash(
        json!({"command": check, "outputSchema": {"type": "object"}}),
    ));
    assert_eq!(first["n"], json!(1));
    assert_ne!(first["path"], second["path"], "each call gets its own file");
    let p = PathBuf::from(first["path"].as_str().unwrap());
    assert!(
        !p.exists() && !p.parent().unwrap().exists(),
        "the call's directory is removed after it"
    );
}

#[test]
fn every_json_type_comes_back_through_output_schema() {
    let cases = [
        (
            r#""text with \"quotes\" and é""#,
            json!({"type": "string"}),
            json!("text with \"quotes\" and é"),
        ),
        ("42", json!({"type": "integer"}), json!(42)),
        ("-1.5", json!({"type": "number"}), json!(-1.5)),
        ("true", json!({"type": "boolean"}), json!(true)),
        ("false", json!({"type": "boolean"}), json!(false)),
        ("null", json!({"type": "null"}), json!(null)),
        (
            "[1, \"a\", null, [true]]",
            json!({"type": "array"}),
            json!([1, "a", null, [true]]),
        ),
        (
            r#"{"name": "db1", "port": 5432, "tags": [], "nested": {"ok": true}}"#,
            json!({"type": "object", "properties": {"port": {"type": "integer"}, "nested": {"type": "object"}}}),
            json!({"name": "db1", "port": 5432, "tags": [], "nested": {"ok": true}}),
        ),
    ];
    for (text, schema, want) in cases {
        let got = value(bash(json!({
            "command": "cat > \"$DLPX_OUTPUT_FILE\" <<'EOF'\n".to_string() + text + "\nEOF\n",
            "outputSchema": schema
        })));
        assert_eq!(got, want, "for output {text}");
    }
}

#[test]
fn without_output_schema_the_call_returns_nothing() {
    let (r, entry) = bash(
        json!({"command": "echo '\"ignored\"' > \"$DLPX_OUTPUT_FILE\"; echo out; echo err >&2"}),
    );
    assert_eq!(r, Ok(None));
    assert_eq!(entry.exit_code, Some(0));
    assert_eq!(entry.stdout, "out\n");
    assert_eq!(entry.stderr, "err\n");
}

#[test]
fn empty_invalid_and_schema_violating_output_are_bad_output() {
    let ctx = with_resources(&[("status.sh", "echo -n > \"$DLPX_OUTPUT_FILE\"\n")]);
    let f = failure(perform_in(
        RunFunction::RunBash,
        json!({"command": "echo -n > \"$DLPX_OUTPUT_FILE\"\n", "outputSchema": {"type": "string"}}),
        &ctx,
    ));
    let RunFailure::BadOutput(m) = f else {
        panic!("{f:?}")
    };
    assert!(
        m.starts_with("RunBash (resource status.sh) wrote no output"),
        "{m}"
    );

    let f = failure(bash(
        json!({"command": "echo INACTIVE > \"$DLPX_OUTPUT_FILE\"", "outputSchema": {"type": "string"}}),
    ));
    let RunFailure::BadOutput(m) = f else {
        panic!("{f:?}")
    };
    assert!(
        m.contains("not one JSON document") && m.contains("`INACTIVE`"),
        "{m}"
    );

    let f = failure(bash(
        json!({"command": "echo '1 2' > \"$DLPX_OUTPUT_FILE\"", "outputSchema": {}}),
    ));
    assert!(
        matches!(&f, RunFailure::BadOutput(m) if m.contains("trailing characters")),
        "{f:?}"
    );

    let f = failure(bash(json!({
        "command": "echo '{\"status\": 5, \"list\": [1, \"x\"]}' > \"$DLPX_OUTPUT_FILE\"",
        "outputSchema": {"type": "object", "properties": {"status": {"type": "string"}, "list": {"items": {"type": "integer"}}}}
    })));
    let RunFailure::BadOutput(m) = f else {
        panic!("{f:?}")
    };
    assert!(m.contains("does not match its outputSchema"), "{m}");
    assert!(m.contains("/status: 5 is not of type \"string\""), "{m}");
    assert!(
        m.contains("/list/1: \"x\" is not of type \"integer\""),
        "{m}"
    );
    assert!(
        m.contains(r#"the output was: `{"status": 5, "list": [1, "x"]}`"#),
        "{m}"
    );
}

#[test]
fn the_exit_code_wins_over_the_output_file() {
    let script = "echo '\"INACTIVE\"' > \"$DLPX_OUTPUT_FILE\"\necho 'checking staging' \necho 'database is down' >&2\nexit 2\n";
    let ctx = with_resources(&[("query_staging_status.sh", script)]);
    let (r, entry) = perform_in(
        RunFunction::RunBash,
        json!({"command": script, "outputSchema": {"type": "string"}}),
        &ctx,
    );
    assert_eq!(
        r.unwrap_err(),
        RunFailure::Exit {
            exit_code: 2,
            stdout: "checking staging\n".into(),
            stderr: "database is down\n".into(),
            message: "RunBash (resource query_staging_status.sh) exited with status 2; stderr: database is down".into(),
        }
    );
    assert_eq!(entry.exit_code, Some(2));
    assert_eq!(entry.resource.as_deref(), Some("query_staging_status.sh"));
}

#[test]
fn bash_errors_name_the_resource_and_signals_are_reported() {
    let ctx = with_resources(&[("check.sh", "nosuchcommand_lunabox_xyz\n")]);
    let f = failure(perform_in(
        RunFunction::RunBash,
        json!({"command": "nosuchcommand_lunabox_xyz\n"}),
        &ctx,
    ));
    let RunFailure::Exit {
        exit_code, stderr, ..
    } = f
    else {
        panic!("{f:?}")
    };
    assert_eq!(exit_code, 127);
    assert!(
        stderr.contains("check.sh: line 1: nosuchcommand_lunabox_xyz: command not found"),
        "{stderr}"
    );

    let f = failure(bash(json!({"command": "kill -9 $$"})));
    let RunFailure::Exit {
        exit_code, message, ..
    } = f
    else {
        panic!("{f:?}")
    };
    assert_eq!(exit_code, 137);
    assert!(
        message.contains("was killed by signal 9 (SIGKILL)"),
        "{message}"
    );
}

#[test]
fn a_background_child_holding_stdout_blocks_the_call_until_it_closes() {
    let t = Instant::now();
    let (r, entry) = bash(json!({"command": "(sleep 1; echo late) & echo early"}));
    assert_eq!(r, Ok(None));
    assert!(
        t.elapsed() >= Duration::from_millis(950),
        "returned after {:?}",
        t.elapsed()
    );
    assert_eq!(entry.stdout, "early\nlate\n");
}

#[test]
fn a_background_child_with_its_own_output_does_not_block_and_is_left_running() {
    let ((r, _), elapsed, pid) = bash_writing_pid(
        "nohup sleep 30 >/dev/null 2>&1 & echo $! > \"$PIDF\"",
        &ctx(),
    );
    assert_eq!(r, Ok(None));
    assert!(elapsed < Duration::from_secs(5), "took {elapsed:?}");
    assert!(
        !dead(pid),
        "a daemon started by a call must survive the call"
    );
    // SAFETY: signalling the test's own stray process.
    unsafe { libc::kill(pid, libc::SIGKILL) };
}

#[test]
fn a_background_child_holding_stdout_is_killed_at_the_deadline() {
    let ((r, entry), elapsed, pid) = bash_writing_pid(
        "sleep 60 & echo $! > \"$PIDF\"; echo started",
        &deadline_in(700),
    );
    assert!(matches!(r, Err(RunFailure::Deadline { .. })), "{r:?}");
    assert!(elapsed < Duration::from_secs(3), "took {elapsed:?}");
    assert_eq!(entry.stdout, "started\n");
    assert_eq!(entry.exit_code, None);
    assert!(
        dead(pid),
        "the background sleep {pid} survived the deadline"
    );
}

#[test]
fn a_hang_is_killed_at_the_deadline_with_its_whole_process_group() {
    let dir = tempfile::tempdir().unwrap();
    let child = dir.path().join("child");
    let grandchild = dir.path().join("grandchild");
    let ctx = deadline_in(800);
    let t = Instant::now();
    let (r, entry) = perform_in(
        RunFunction::RunBash,
        json!({
            "command": r#"
                echo "$$" > "$CHILD"
                sh -c 'echo $$ > "$GRANDCHILD"; exec sleep 300' &
                echo waiting; echo on stderr >&2
                while true; do sleep 1; done
            "#,
            "variables": {"CHILD": child.to_str().unwrap(), "GRANDCHILD": grandchild.to_str().unwrap()}
        }),
        &ctx,
    );
    let elapsed = t.elapsed();
    assert!(
        matches!(&r, Err(RunFailure::Deadline { function }) if function.starts_with("RunBash (command")),
        "{r:?}"
    );
    assert!(
        elapsed >= Duration::from_millis(750) && elapsed < Duration::from_secs(3),
        "took {elapsed:?}"
    );
    assert_eq!(entry.stdout, "waiting\n");
    assert_eq!(entry.stderr, "on stderr\n");
    let (c, g) = (read_pid(&child), read_pid(&grandchild));
    assert!(dead(c), "the command {c} survived the deadline");
    assert!(dead(g), "the grandchild {g} survived the deadline");
}

#[test]
fn a_call_after_the_deadline_does_not_run() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("ran");
    let ctx = RunContext {
        deadline: Some(Instant::now() - Duration::from_millis(1)),
        ..RunContext::default()
    };
    let (r, _) = perform_in(
        RunFunction::RunBash,
        json!({"command": "touch \"$M\"", "variables": {"M": marker.to_str().unwrap()}}),
        &ctx,
    );
    assert!(matches!(r, Err(RunFailure::Deadline { .. })), "{r:?}");
    assert!(!marker.exists());
}

#[test]
fn stdout_is_capped_and_the_rest_drained() {
    let ctx = RunContext {
        capture_limit: 1000,
        ..ctx()
    };
    let call = RunCall::new(
        RunFunction::RunBash,
        "head -c 5000000 /dev/zero | tr '\\0' x; echo done >&2; head -c 3000 /dev/zero | tr '\\0' y >&2",
    );
    let raw = LocalExecutor::new().execute(&call, &ctx).unwrap();
    assert_eq!(raw.exit_code, 0);
    assert_eq!(raw.stdout, "x".repeat(1000));
    assert!(raw.stdout_truncated);
    assert!(
        raw.stderr.starts_with("done\nyyy") && raw.stderr.len() == 1000,
        "{}",
        raw.stderr.len()
    );
    assert!(raw.stderr_truncated);

    let f = failure(perform_in(
        RunFunction::RunBash,
        json!({"command": "head -c 100000 /dev/zero | tr '\\0' x; exit 1"}),
        &ctx,
    ));
    let RunFailure::Exit {
        stdout, message, ..
    } = f
    else {
        panic!("{f:?}")
    };
    assert_eq!(stdout.len(), 1000);
    assert!(
        message.ends_with("(output past the capture limit was dropped)"),
        "{message}"
    );
}

#[test]
fn a_script_longer_than_one_argument_still_runs() {
    let mut script = String::new();
    while script.len() < 200 * 1024 {
        script.push_str(
            ": this line only makes the script long ...........................................\n",
        );
    }
    script.push_str("echo '\"long ok\"' > \"$DLPX_OUTPUT_FILE\"\n");
    assert_eq!(
        value(bash(
            json!({"command": script, "outputSchema": {"type": "string"}})
        )),
        json!("long ok")
    );
}

#[test]
fn run_command_uses_bin_sh() {
    let v = value(perform_in(
        RunFunction::RunCommand,
        json!({"command": "printf '\"%s|%s\"' \"$0\" \"$(readlink /proc/$$/exe)\" > \"$DLPX_OUTPUT_FILE\"", "outputSchema": {"type": "string"}}),
        &ctx(),
    ));
    let sh = std::fs::canonicalize("/bin/sh").unwrap();
    assert_eq!(v, json!(format!("RunCommand|{}", sh.display())));
}

#[test]
fn run_expect_drives_a_real_prompt() {
    let script = r#"
        set timeout 10
        spawn sh -c {printf "Password: "; read pw; printf '"%s"' "$pw" > "$DLPX_OUTPUT_FILE"; echo; echo bye}
        expect "Password: "
        send "$env(DB_PASSWORD)\r"
        expect "bye"
        expect eof
    "#;
    let ctx = with_resources(&[("login.exp", script)]);
    let (r, entry) = lunabox_run::perform(
        RunFunction::RunExpect,
        &json!({"command": script, "variables": {"DB_PASSWORD": "s3cret-pw"}, "outputSchema": {"type": "string"}}).to_string(),
        &LocalExecutor::new(),
        &ctx);
    assert_eq!(r, Ok(Some(json!("s3cret-pw"))));
    assert_eq!(entry.resource.as_deref(), Some("login.exp"));
    // The transcript is raw here: the sandbox masks secrets when the text
    // leaves it (lunabox-sandbox `outcome`).
    assert_eq!(entry.variables["DB_PASSWORD"], "s3cret-pw");

    // A Tcl error is a failed call (expect -c would have exited 0).
    let f = failure(perform_in(
        RunFunction::RunExpect,
        json!({"command": "puts before\nerror boom\n"}),
        &ctx,
    ));
    let RunFailure::Exit {
        exit_code,
        stdout,
        stderr,
        ..
    } = f
    else {
        panic!("{f:?}")
    };
    assert_eq!(exit_code, 1);
    assert_eq!(stdout, "before\n");
    assert!(stderr.contains("boom"), "{stderr}");

    let f = failure(perform_in(
        RunFunction::RunExpect,
        json!({"command": "exit 4"}),
        &ctx,
    ));
    assert!(matches!(f, RunFailure::Exit { exit_code: 4, .. }), "{f:?}");
}

#[test]
fn run_power_shell_needs_pwsh() {
    let empty = tempfile::tempdir().unwrap();
    let exec = LocalExecutor::new().with_program_dirs([empty.path().to_path_buf()]);
    let (r, entry) = lunabox_run::perform(
        RunFunction::RunPowerShell,
        r#"{"command": "Get-Date"}"#,
        &exec,
        &ctx(),
    );
    assert_eq!(
        r.unwrap_err(),
        RunFailure::Unavailable(
            "RunPowerShell needs PowerShell (`pwsh`) on the host; install it or \
             run this hook on a Windows environment"
                .into()
        )
    );
    assert_eq!(entry.exit_code, None);

    let (r, _) = lunabox_run::perform(
        RunFunction::RunExpect,
        r#"{"command": "exit 0"}"#,
        &exec,
        &ctx(),
    );
    assert!(
        matches!(&r, Err(RunFailure::Unavailable(m)) if m.contains("needs `expect`")),
        "{r:?}"
    );
}

/// Simulates PowerShell with a shell script named `pwsh` (no PowerShell on
/// this machine) to check the arguments lunabox gives it.
#[test]
fn run_power_shell_passes_the_script_to_pwsh_command() {
    use std::os::unix::fs::PermissionsExt;
    let bin = tempfile::tempdir().unwrap();
    let fake = bin.path().join("pwsh");
    std::fs::write(
        &fake,
        "#!/bin/sh\n{ printf '['; sep=; for a in \"$@\"; do printf '%s\"%s\"' \"$sep\" \"$a\"; sep=,; done; printf ']'; } > \"$DLPX_OUTPUT_FILE\"\n",
    )
    .unwrap();
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    let exec = LocalExecutor::new().with_program_dirs([bin.path().to_path_buf()]);
    let (r, _) = lunabox_run::perform(
        RunFunction::RunPowerShell,
        r#"{"command": "Write-Output hi", "outputSchema": {"type": "array"}}"#,
        &exec,
        &ctx(),
    );
    assert_eq!(
        r,
        Ok(Some(json!([
            "-NoProfile",
            "-NonInteractive",
            "-Command",
            "Write-Output hi"
        ])))
    );
}

#[test]
fn the_transcript_names_the_call_and_masks_secrets() {
    let script = "echo \"user=$DB_USER pass=$PASS\"; echo '\"ok\"' > \"$DLPX_OUTPUT_FILE\"";
    let ctx = with_resources(&[("start.sh", script)]);
    let me = lunabox_run::executors::account::current();
    let (r, entry) = lunabox_run::perform(
        RunFunction::RunBash,
        &json!({
            "command": script,
            "environment": "ENV-1",
            "host": "HOST-1",
            "user": me.name,
            "variables": {"DB_USER": "admin", "PASS": "hunter22", "API_SECRET": "whatever", "PORT": 5432},
            "outputSchema": {"type": "string"}
        })
        .to_string(),
        &LocalExecutor::new(),
        &ctx);
    assert_eq!(r, Ok(Some(json!("ok"))));
    let t = serde_json::to_value(&entry).unwrap();
    assert_eq!(t["function"], "RunBash");
    assert_eq!(t["environment"], "ENV-1");
    assert_eq!(t["host"], "HOST-1");
    assert_eq!(t["user"], json!(me.name));
    assert_eq!(t["resource"], "start.sh");
    assert_eq!(
        t["variables"],
        json!({"API_SECRET": "whatever", "DB_USER": "admin", "PASS": "hunter22", "PORT": "5432"})
    );
    assert_eq!(t["exitCode"], 0);
    assert_eq!(t["stdout"], "user=admin pass=hunter22\n");
}

#[test]
fn an_unknown_user_is_unavailable_naming_it() {
    let (r, _) = bash(json!({"command": "true", "user": "no_such_user_lunabox"}));
    let RunFailure::Unavailable(m) = r.unwrap_err() else {
        panic!()
    };
    assert!(
        m.contains("the environment user `no_such_user_lunabox` does not exist on this machine"),
        "{m}"
    );
}

/// An unprivileged account to test user switching with, when lunabox's
/// tests run as root.
fn other_account() -> Option<lunabox_run::executors::account::Account> {
    ["cloudsdk", "nobody", "daemon"]
        .iter()
        .filter_map(|n| lunabox_run::executors::account::by_name(n).ok().flatten())
        .find(|a| a.uid != 0 && a.home.is_dir())
}

fn is_root() -> bool {
    // SAFETY: geteuid cannot fail.
    unsafe { libc::geteuid() == 0 }
}

#[test]
fn a_user_other_than_lunabox_s_is_refused_when_not_root() {
    if !is_root() {
        // Already unprivileged: ask for root.
        let (r, _) = bash(json!({"command": "true", "user": "root"}));
        let RunFailure::Unavailable(m) = r.unwrap_err() else {
            panic!()
        };
        assert!(
            m.contains("asks to run as `root`") && m.contains("is not root"),
            "{m}"
        );
        return;
    }
    // As root: run this test binary's inner check as an unprivileged user.
    let a = other_account()
        .expect("an unprivileged account with a home directory (e.g. cloudsdk) for this test");
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "inner_user_mismatch_check",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("LUNABOX_RUN_INNER", "1")
        .uid(a.uid)
        .gid(a.gid)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("INNER-CHECK-RAN"), "{text}");
}

use std::os::unix::process::CommandExt;

/// Run by `a_user_other_than_lunabox_s_is_refused_when_not_root` as an
/// unprivileged user; does nothing when run directly.
#[test]
fn inner_user_mismatch_check() {
    if std::env::var_os("LUNABOX_RUN_INNER").is_none() {
        return;
    }
    assert!(!is_root());
    let me = lunabox_run::executors::account::current();
    let (r, _) = bash(json!({"command": "true", "user": "root"}));
    let RunFailure::Unavailable(m) = r.unwrap_err() else {
        panic!()
    };
    assert_eq!(
        m,
        format!(
            "RunBash (command `true`): the call asks to run as `root`, but lunabox runs as `{0}` and is not root, \
             so it can only run commands as `{0}`; run lunabox as root, or make the environment user `{0}`",
            me.name
        )
    );
    // Its own name is fine.
    let (r, _) = bash(json!({"command": "true", "user": me.name}));
    assert_eq!(r, Ok(None));
    println!("INNER-CHECK-RAN");
}

#[test]
fn as_root_commands_run_as_the_environment_user_from_its_home() {
    if !is_root() {
        skip::skipped(
            "as_root_commands_run_as_the_environment_user_from_its_home",
            "needs root to switch users",
        );
        return;
    }
    let a = other_account()
        .expect("an unprivileged account with a home directory (e.g. cloudsdk) for this test");
    let v = value(bash(json!({
        "command": r#"
            rm -f "$DLPX_OUTPUT_FILE" 2>/dev/null && { echo "could replace the output file" >&2; exit 7; }
            ls "$(dirname "$DLPX_OUTPUT_FILE")" >/dev/null 2>&1 && { echo "could list the private dir" >&2; exit 8; }
            printf '{"id":"%s","uid":%s,"groups":"%s","pwd":"%s","home":"%s","user":"%s"}' \
              "$(id -un)" "$(id -u)" "$(id -G)" "$PWD" "$HOME" "$USER" > "$DLPX_OUTPUT_FILE"
        "#,
        "user": a.name,
        "outputSchema": {"type": "object"}
    })));
    assert_eq!(v["id"], json!(a.name));
    assert_eq!(v["uid"], json!(a.uid));
    assert_eq!(v["user"], json!(a.name));
    assert_eq!(v["pwd"], json!(a.home.to_str().unwrap()));
    assert_eq!(v["home"], json!(a.home.to_str().unwrap()));
    let groups: Vec<u32> = v["groups"]
        .as_str()
        .unwrap()
        .split_whitespace()
        .map(|g| g.parse().unwrap())
        .collect();
    assert!(!groups.contains(&0), "root's group leaked: {groups:?}");

    // Expect scripts (passed as a file) are readable by that user too.
    let v = value(perform_in(
        RunFunction::RunExpect,
        json!({"command": "set f [open $env(DLPX_OUTPUT_FILE) w]; puts $f \"\\\"[exec id -un]\\\"\"; close $f", "user": a.name, "outputSchema": {"type": "string"}}),
        &ctx(),
    ));
    assert_eq!(v, json!(a.name));
}

/// The path `$DLPX_OUTPUT_FILE` had in a call made with `exec`.
fn output_path_of(exec: &LocalExecutor) -> PathBuf {
    let (r, _) = lunabox_run::perform(
        RunFunction::RunBash,
        &json!({"command": "printf '\"%s\"' \"$DLPX_OUTPUT_FILE\" > \"$DLPX_OUTPUT_FILE\"", "outputSchema": {"type": "string"}})
            .to_string(),
        exec,
        &ctx());
    match r {
        Ok(Some(Value::String(p))) => PathBuf::from(p),
        other => panic!("{other:?}"),
    }
}

/// Call files live in one private directory per executor (mode 0700, made
/// on first use): each call's output file is new and is removed when the
/// call ends, also at the deadline; a directory that vanished meanwhile is
/// made again; the directory goes with the executor and its clones.
#[test]
fn one_executor_keeps_one_private_directory_and_removes_each_call_s_files() {
    use std::os::unix::fs::MetadataExt;
    let exec = LocalExecutor::new();
    let first = output_path_of(&exec);
    let second = output_path_of(&exec);
    assert_ne!(first, second, "each call gets its own file");
    assert!(
        !first.exists() && !second.exists(),
        "call files are removed after the call"
    );
    let dir = first.parent().unwrap().to_path_buf();
    assert_eq!(second.parent(), Some(dir.as_path()));
    let meta = std::fs::symlink_metadata(&dir).unwrap();
    assert!(meta.is_dir());
    assert_eq!(meta.mode() & 0o7777, 0o700, "{}", dir.display());
    // SAFETY: geteuid cannot fail.
    assert_eq!(meta.uid(), unsafe { libc::geteuid() });

    let record = tempfile::tempdir().unwrap();
    let rec = record.path().join("path");
    let deadline = deadline_in(500);
    let (r, _) = lunabox_run::perform(
        RunFunction::RunBash,
        &json!({"command": "printf '%s' \"$DLPX_OUTPUT_FILE\" > \"$REC\"; sleep 30", "variables": {"REC": rec.to_str().unwrap()}})
            .to_string(),
        &exec,
        &deadline,
    );
    assert!(matches!(r, Err(RunFailure::Deadline { .. })), "{r:?}");
    let killed = PathBuf::from(std::fs::read_to_string(&rec).unwrap());
    assert_eq!(killed.parent(), Some(dir.as_path()));
    assert!(!killed.exists(), "the killed call's file was left behind");

    std::fs::remove_dir_all(&dir).unwrap();
    let third = output_path_of(&exec);
    let new_dir = third.parent().unwrap().to_path_buf();
    assert_ne!(new_dir, dir);
    assert!(new_dir.is_dir());
    let clone = exec.clone();
    drop(exec);
    assert!(new_dir.is_dir(), "a clone still uses the directory");
    drop(clone);
    assert!(!new_dir.exists(), "the directory outlived its executor");
}

/// Simulates PowerShell with shell scripts named `pwsh`: the executor
/// remembers where a program is, and looks again when it has moved.
#[test]
fn a_program_that_moved_since_its_first_use_is_found_again() {
    use std::os::unix::fs::PermissionsExt;
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let fake = |dir: &Path, answer: &str| {
        let p = dir.join("pwsh");
        std::fs::write(
            &p,
            format!("#!/bin/sh\necho '\"{answer}\"' > \"$DLPX_OUTPUT_FILE\"\n"),
        )
        .unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        p
    };
    let exec =
        LocalExecutor::new().with_program_dirs([a.path().to_path_buf(), b.path().to_path_buf()]);
    let call = r#"{"command": "Write-Output hi", "outputSchema": {"type": "string"}}"#;
    let run = || lunabox_run::perform(RunFunction::RunPowerShell, call, &exec, &ctx()).0;
    let in_a = fake(a.path(), "a");
    assert_eq!(run(), Ok(Some(json!("a"))));
    std::fs::remove_file(&in_a).unwrap();
    let in_b = fake(b.path(), "b");
    assert_eq!(run(), Ok(Some(json!("b"))));
    std::fs::remove_file(&in_b).unwrap();
    assert!(
        matches!(run(), Err(RunFailure::Unavailable(m)) if m.contains("needs PowerShell")),
        "a removed program is reported as not installed"
    );
}

#[test]
fn a_command_that_closes_its_output_early_is_waited_for_until_the_deadline() {
    let t = Instant::now();
    let f = failure(bash(
        json!({"command": "echo bye; exec >&- 2>&-; sleep 0.3; exit 3"}),
    ));
    assert!(
        matches!(&f, RunFailure::Exit { exit_code: 3, stdout, .. } if stdout == "bye\n"),
        "{f:?}"
    );
    assert!(
        t.elapsed() >= Duration::from_millis(290),
        "returned after {:?}",
        t.elapsed()
    );

    let ((r, _), elapsed, pid) = bash_writing_pid(
        "exec >&- 2>&-; sleep 60 & echo $! > \"$PIDF\"; wait",
        &deadline_in(600),
    );
    assert!(matches!(r, Err(RunFailure::Deadline { .. })), "{r:?}");
    assert!(elapsed < Duration::from_secs(3), "took {elapsed:?}");
    assert!(dead(pid), "the sleep {pid} survived the deadline");
}

/// A process that left the process group (`setsid`) cannot be killed with
/// it: with a cgroup per call (root, cgroup v2) the deadline kills it
/// anyway; without, the call gives up on its pipe after the grace period.
#[test]
fn an_escaped_process_is_killed_by_its_cgroup_or_abandoned_after_the_grace() {
    let ((r, entry), elapsed, pid) = bash_writing_pid(
        "setsid sleep 30 & echo $! > \"$PIDF\"; echo started",
        &deadline_in(500),
    );
    assert!(matches!(r, Err(RunFailure::Deadline { .. })), "{r:?}");
    assert_eq!(entry.stdout, "started\n");
    if lunabox_run::executors::contain::cgroups_available() {
        assert!(elapsed < Duration::from_secs(3), "took {elapsed:?}");
        assert!(
            dead(pid),
            "the escaped sleep {pid} outlived the call's cgroup"
        );
    } else {
        eprintln!("no cgroup per call here (needs root and cgroup v2): checking the grace instead");
        assert!(
            elapsed >= Duration::from_millis(2400) && elapsed < Duration::from_secs(5),
            "took {elapsed:?}"
        );
        assert!(!dead(pid), "the escaped sleep is out of the group's reach");
        // SAFETY: signalling the test's own stray process.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
}

/// The cgroup v2 mount point, from /proc/self/mountinfo.
fn cgroup2_mount() -> PathBuf {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    info.lines()
        .find_map(|l| {
            let (left, right) = l.split_once(" - ")?;
            right
                .starts_with("cgroup2 ")
                .then(|| left.split_whitespace().nth(4))?
        })
        .map(PathBuf::from)
        .expect("a cgroup2 mount")
}

/// With a cgroup per call, a call's processes are in a call cgroup from
/// the start (its shell, a child, a child that left the process group).
/// When the call ends the cgroup holds nothing (it is kept, empty, for a
/// next call, or removed); one killed at a deadline is removed and never
/// used again (a child cloned into a cgroup once killed is killed at birth).
#[test]
fn a_call_s_processes_are_in_its_own_cgroup() {
    if !lunabox_run::executors::contain::cgroups_available() {
        skip::skipped(
            "a_call_s_processes_are_in_its_own_cgroup",
            "no cgroup per call here (needs root and cgroup v2)",
        );
        return;
    }
    // The cgroup v2 path of each `cat /proc/.../cgroup` line in `stdout`.
    let paths = |stdout: &str| -> Vec<String> {
        stdout
            .lines()
            .filter_map(|l| l.strip_prefix("0::/"))
            .map(str::to_string)
            .collect()
    };
    let is_call_cgroup = |path: &str| {
        let (parent, call) = path.rsplit_once('/').unwrap();
        parent.ends_with(&format!("lunabox-{}", std::process::id())) && call.starts_with("call-")
    };
    let command =
        "cat /proc/$$/cgroup; cat /proc/self/cgroup; setsid sh -c 'cat /proc/self/cgroup'";
    let cgroup_of_a_call = || {
        let (r, entry) = bash(json!({ "command": command }));
        assert_eq!(r, Ok(None));
        let lines = paths(&entry.stdout);
        assert_eq!(lines.len(), 3, "{}", entry.stdout);
        assert!(lines.iter().all(|l| *l == lines[0]), "{}", entry.stdout);
        assert!(is_call_cgroup(&lines[0]), "{}", lines[0]);
        lines[0].clone()
    };
    for path in [cgroup_of_a_call(), cgroup_of_a_call()] {
        let procs = cgroup2_mount().join(&path).join("cgroup.procs");
        let left = std::fs::read_to_string(&procs).unwrap_or_default();
        assert!(left.trim().is_empty(), "{path} still holds {left}");
    }

    let (r, entry) = perform_in(
        RunFunction::RunBash,
        json!({ "command": "cat /proc/self/cgroup; sleep 30" }),
        &deadline_in(300),
    );
    assert!(matches!(r, Err(RunFailure::Deadline { .. })), "{r:?}");
    let killed = paths(&entry.stdout)
        .pop()
        .expect("the killed call's cgroup");
    assert!(is_call_cgroup(&killed), "{killed}");
    assert!(
        !cgroup2_mount().join(&killed).exists(),
        "{killed} was not removed"
    );
    for _ in 0..3 {
        assert_ne!(cgroup_of_a_call(), killed);
    }
}

/// A command whose output file grows past the limit is stopped while it
/// writes, call after call on one thread (whose inotify instance is kept
/// from one call to the next).
#[test]
fn an_output_file_growing_past_the_limit_is_stopped_call_after_call() {
    let exec = LocalExecutor::new();
    let call = json!({"command": "while :; do echo 0123456789 >> \"$DLPX_OUTPUT_FILE\"; sleep 0.01; done"});
    for _ in 0..3 {
        let ctx = RunContext {
            output_limit: 200,
            ..ctx()
        };
        let t = Instant::now();
        let (r, _) = lunabox_run::perform(RunFunction::RunBash, &call.to_string(), &exec, &ctx);
        assert!(
            matches!(&r, Err(RunFailure::BadOutput(m)) if m.contains("more than 200 bytes")),
            "{r:?}"
        );
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "took {:?}",
            t.elapsed()
        );
    }
}

#[test]
fn commands_start_with_no_signal_blocked_whatever_lunabox_blocks() {
    // Regression: the CLI blocks SIGINT/SIGTERM for its signal thread and a
    // blocked mask is inherited across exec, so `kill -TERM $$` did nothing.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    unsafe {
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
    }
    let ex = lunabox_run::executors::local::LocalExecutor::new();
    let call = lunabox_run::RunCall::new(
        lunabox_run::RunFunction::RunBash,
        "grep SigBlk /proc/self/status",
    );
    let raw =
        lunabox_run::Executor::execute(&ex, &call, &lunabox_run::RunContext::default()).unwrap();
    unsafe { libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut()) };
    assert_eq!(raw.exit_code, 0, "{raw:?}");
    assert!(
        raw.stdout.trim().ends_with("0000000000000000"),
        "{}",
        raw.stdout
    );
}
