//! What a hostile toolkit or input could do to the host, one class per
//! section, each test named after what broke (issue "Hardening"). They drive
//! the `lunabox` binary as a user would, with real bash, SQLite and files.
//!
//! The classes: (1) schema checks outside every budget, (2) toolkit files
//! trusted too much, (3) the snapshot walk (see the `engine::snapshots`
//! tests), (4) host recursion on operator input, (5) host memory and state
//! growth from commands' output, (6) engine hooks' deadlines, (7) raw
//! control characters on the terminal, (8) messages that blame the wrong
//! party, (9) what outlives lunabox.
//!
//! Tests that need root (a small tmpfs for a full disk, cgroups for detached
//! processes) say `SKIPPED <test>: <why>` when they cannot run, and
//! `cargo xtask test` counts them as skipped, not passed (common/skip.rs).

#[path = "common/engine.rs"]
mod engine_common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use engine_common::*;
use serde_json::{Value, json};

fn lunabox(args: &[&str]) -> Output {
    Command::new(bin())
        .args(args)
        .env_remove("RUST_BACKTRACE")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Whether process `pid` is gone (a zombie waiting for a parent that is
/// itself dead counts as gone).
fn gone(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit(')')
            .next()
            .is_some_and(|rest| rest.trim_start().starts_with('Z')),
    }
}

#[path = "common/skip.rs"]
mod skip_log;

/// The running test (libtest names its thread for it) cannot run here.
fn skip(why: &str) {
    skip_log::skipped(std::thread::current().name().unwrap_or("hardening"), why);
}

/// `lunabox eval` of `script` (written to a file) with `args`.
fn eval(dir: &Path, script: &str, args: &[&str]) -> (Output, Duration) {
    let f = dir.join("hook.lua");
    std::fs::write(&f, script).unwrap();
    let mut a = vec!["eval", f.to_str().unwrap()];
    a.extend(args);
    let t = Instant::now();
    let o = lunabox(&a);
    (o, t.elapsed())
}

/// A copy of the efix toolkit with `edit` applied to its main.json.
fn efix_with(dir: &Path, edit: impl FnOnce(&mut Value)) -> PathBuf {
    let tk = dir.join("efix");
    copy_tree(&fixture("efix"), &tk);
    let mut m: Value =
        serde_json::from_str(&std::fs::read_to_string(tk.join("main.json")).unwrap()).unwrap();
    edit(&mut m);
    std::fs::write(tk.join("main.json"), m.to_string()).unwrap();
    tk
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let p = e.path();
        if p.is_dir() {
            copy_tree(&p, &to.join(e.file_name()));
        } else {
            std::fs::copy(&p, to.join(e.file_name())).unwrap();
        }
    }
}

/// JSON nested `depth` arrays deep.
fn nested(depth: usize, leaf: &str) -> String {
    format!("{}{leaf}{}", "[".repeat(depth), "]".repeat(depth))
}

// ---- 1. schema checks -------------------------------------------------

/// The pathological schemas of the corpus: each would take exponential time
/// (or never end) in a validator without bounds.
fn pathological_schemas() -> Vec<(&'static str, Value)> {
    let arr = json!({"type": "array", "items": {"$ref": "#"}});
    let mut chain = serde_json::Map::new();
    for i in 0..24 {
        let next = format!("#/definitions/d{}", i + 1);
        chain.insert(
            format!("d{i}"),
            json!({"allOf": [{"$ref": next}, {"$ref": next}]}),
        );
    }
    chain.insert("d24".into(), json!({"type": "integer"}));
    vec![
        ("anyOf", json!({"anyOf": [arr, arr]})),
        (
            "oneOf",
            json!({"oneOf": [arr, arr, {"type": "array", "items": {"$ref": "#"}}]}),
        ),
        (
            "nested-allOf",
            json!({"allOf": [{"allOf": [{"$ref": "#/definitions/n"}, {"$ref": "#/definitions/n"}]}],
                   "definitions": {"n": {"type": "array", "items": {"$ref": "#"}}}}),
        ),
        (
            "ref-dag",
            json!({"$ref": "#/definitions/d0", "definitions": chain}),
        ),
        (
            "ref-loop",
            json!({"definitions": {"a": {"$ref": "#/definitions/b"}, "b": {"allOf": [{"$ref": "#/definitions/a"}]}}, "$ref": "#/definitions/a"}),
        ),
        ("self", json!({"$ref": "#"})),
    ]
}

#[test]
fn validate_rejects_toolkits_whose_schemas_cannot_be_checked_in_bounded_time() {
    let dir = tempfile::tempdir().unwrap();
    for (name, schema) in pathological_schemas() {
        let sub = dir.path().join(name);
        let tk = efix_with(&sub, |m| {
            m["linkedSourceDefinition"]["parameters"] = schema.clone()
        });
        let t = Instant::now();
        let o = lunabox(&["validate", tk.to_str().unwrap(), "--json"]);
        assert_eq!(o.status.code(), Some(1), "{name}: {}", text(&o));
        let report: Value = serde_json::from_slice(&o.stdout).unwrap();
        let msgs = report.to_string();
        assert!(
            msgs.contains("/linkedSourceDefinition/parameters")
                && (msgs.contains("multiply") || msgs.contains("without descending")),
            "{name}: {msgs}"
        );
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "{name} took {:?}",
            t.elapsed()
        );
    }
}

#[test]
fn an_output_schema_that_multiplies_is_a_bad_call_not_an_hour_of_cpu() {
    let dir = tempfile::tempdir().unwrap();
    for (name, schema) in pathological_schemas() {
        let script = format!(
            "local ok, e = pcall(RunBash, {{ command = [==[echo '{}' > $DLPX_OUTPUT_FILE]==], outputSchema = json }})\n\
             return {{ ok = ok, e = tostring(e) }}",
            nested(20, "\"x\"")
        );
        std::fs::write(
            dir.path().join("g.json"),
            json!({"json": schema}).to_string(),
        )
        .unwrap();
        let g = dir.path().join("g.json");
        let (o, took) = eval(
            dir.path(),
            &script,
            &[
                "--timeout",
                "5s",
                "--globals",
                g.to_str().unwrap(),
                "--json",
            ],
        );
        let v: Value = serde_json::from_slice(&o.stdout).unwrap_or_else(|_| panic!("{}", text(&o)));
        assert_eq!(v["value"]["ok"], false, "{name}: {v}");
        assert!(
            v["value"]["e"].as_str().unwrap().contains("outputSchema"),
            "{name}: {v}"
        );
        assert!(took < Duration::from_secs(5), "{name}: {took:?}");
    }
}

#[test]
fn deep_and_huge_output_documents_end_within_the_deadline() {
    let dir = tempfile::tempdir().unwrap();
    // Linear schemas, hostile values: 100k-deep text, 150 levels, a wide
    // array of big strings against a pattern.
    let cases = [
        ("deep", nested(100_000, "1"), json!({"type": "array"})),
        (
            "depth-150",
            nested(150, "1"),
            json!({"type": "array", "items": {"$ref": "#"}}),
        ),
        (
            "wide",
            format!(
                "[{}]",
                vec![format!("\"{}\"", "a".repeat(200)); 10_000].join(",")
            ),
            json!({"type": "array", "items": {"pattern": "^(a+)+$"}}),
        ),
    ];
    for (name, doc, schema) in cases {
        std::fs::write(dir.path().join("doc.json"), &doc).unwrap();
        std::fs::write(
            dir.path().join("g.json"),
            json!({"json": schema, "doc": dir.path().join("doc.json")}).to_string(),
        )
        .unwrap();
        let g = dir.path().join("g.json");
        let script = "local ok, e = pcall(RunBash, { command = 'cat \"$DOC\" > $DLPX_OUTPUT_FILE', variables = { DOC = doc }, outputSchema = json })\n\
                      return { ok = ok, e = tostring(e):sub(1, 300) }";
        let (o, took) = eval(
            dir.path(),
            script,
            &[
                "--timeout",
                "10s",
                "--globals",
                g.to_str().unwrap(),
                "--json",
            ],
        );
        let v: Value =
            serde_json::from_slice(&o.stdout).unwrap_or_else(|_| panic!("{name}: {}", text(&o)));
        assert!(took < Duration::from_secs(10), "{name}: {took:?}");
        match name {
            "wide" => assert_eq!(v["value"]["ok"], true, "{name}: {v}"),
            _ => {
                assert_eq!(v["value"]["ok"], false, "{name}: {v}");
                assert!(
                    v["value"]["e"].as_str().unwrap().contains("levels"),
                    "{name}: {v}"
                );
            }
        }
    }
}

// ---- 2. toolkit files ---------------------------------------------------

#[test]
fn a_resource_symlinked_outside_the_toolkit_is_an_error_and_never_read() {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("HOSTSECRET.txt");
    std::fs::write(&secret, "root:the-host-secret\n").unwrap();
    let tk = efix_with(dir.path(), |_| {});
    std::os::unix::fs::symlink(&secret, tk.join("resources/shadow")).unwrap();
    std::os::unix::fs::symlink("../../HOSTSECRET.txt", tk.join("resources/rel")).unwrap();
    std::os::unix::fs::symlink("/dev/zero", tk.join("resources/zero")).unwrap();
    let o = lunabox(&["validate", tk.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let t = text(&o);
    for name in ["resources/shadow", "resources/rel", "resources/zero"] {
        assert!(
            t.contains(name) && t.contains("outside the toolkit"),
            "{name}: {t}"
        );
    }
    let built = dir.path().join("built.json");
    let o = lunabox(&["build", tk.to_str().unwrap(), "-o", built.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        !built.exists()
            || !std::fs::read_to_string(&built)
                .unwrap()
                .contains("the-host-secret")
    );
}

#[test]
fn symlinks_to_folders_fan_out_no_more_and_validate_ends_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let tk = efix_with(dir.path(), |_| {});
    std::os::unix::fs::symlink(".", tk.join("resources/a")).unwrap();
    std::os::unix::fs::symlink(".", tk.join("resources/b")).unwrap();
    let t = Instant::now();
    let o = lunabox(&["validate", tk.to_str().unwrap(), "--json"]);
    assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        text(&o).contains("symlinks to folders are not followed"),
        "{}",
        text(&o)
    );
}

#[test]
fn a_hook_file_that_is_a_fifo_does_not_hang_validate_or_run_hook() {
    let dir = tempfile::tempdir().unwrap();
    let tk = efix_with(dir.path(), |_| {});
    let status = tk.join("staged/status.lua");
    std::fs::remove_file(&status).unwrap();
    let c = std::ffi::CString::new(status.to_str().unwrap()).unwrap();
    // SAFETY: c is a valid path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
    let t = Instant::now();
    let o = lunabox(&["validate", tk.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("FIFO"), "{}", text(&o));
    let o = lunabox(&["run-hook", tk.to_str().unwrap(), "staged/status"]);
    assert_ne!(o.status.code(), Some(0), "{}", text(&o));
    assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
}

#[test]
fn an_oversized_resource_is_refused_not_read_to_the_end() {
    let dir = tempfile::tempdir().unwrap();
    let tk = efix_with(dir.path(), |_| {});
    let f = std::fs::File::create(tk.join("resources/huge.txt")).unwrap();
    f.set_len(20 << 20).unwrap();
    let o = lunabox(&["validate", tk.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        text(&o).contains("resources/huge.txt") && text(&o).contains("larger than"),
        "{}",
        text(&o)
    );
}

// ---- 4. host recursion ----------------------------------------------------

#[test]
fn a_60000_deep_dotted_param_is_an_error_not_a_stack_overflow() {
    let dir = tempfile::tempdir().unwrap();
    let tk = efix_with(dir.path(), |_| {});
    let key = vec!["a"; 60_000].join(".");
    let p = format!("{key}=1");
    let o = lunabox(&[
        "run-hook",
        tk.to_str().unwrap(),
        "staged/status",
        "--param",
        &p,
    ]);
    assert_eq!(
        o.status.code(),
        Some(2),
        "{}",
        &text(&o)[..2000.min(text(&o).len())]
    );
    assert!(text(&o).contains("levels deep"), "{}", &text(&o)[..500]);
    // A deep context file and deep --globals too.
    let ctx = dir.path().join("ctx.json");
    std::fs::write(&ctx, format!("{{\"parameters\": {}}}", nested(60_000, "1"))).unwrap();
    let o = lunabox(&[
        "run-hook",
        tk.to_str().unwrap(),
        "staged/status",
        "--context",
        ctx.to_str().unwrap(),
    ]);
    assert_eq!(
        o.status.code(),
        Some(2),
        "{}",
        &text(&o)[..500.min(text(&o).len())]
    );
    let (o, _) = eval(
        dir.path(),
        "return 1",
        &["--globals", ctx.to_str().unwrap()],
    );
    assert_eq!(
        o.status.code(),
        Some(2),
        "{}",
        &text(&o)[..500.min(text(&o).len())]
    );
}

// ---- 5. memory and state growth ---------------------------------------------

/// Run `cmd` and return its output and peak resident memory (KiB).
fn run_measured(mut cmd: Command) -> (Output, u64) {
    let child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id() as libc::pid_t;
    let out = child.wait_with_output().unwrap();
    let _ = pid;
    // wait_with_output reaped the child: its rusage is in RUSAGE_CHILDREN,
    // which holds the largest of this process' children so far; run this
    // first in its own process (see the caller).
    // SAFETY: rusage is plain data; getrusage fills it.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut ru) };
    (out, ru.ru_maxrss as u64)
}

#[test]
fn a_thousand_calls_printing_a_mebibyte_each_keep_host_memory_bounded() {
    // Measured in a child test process of its own, so that RUSAGE_CHILDREN
    // holds lunabox's peak and nothing else.
    if std::env::var_os("LUNABOX_MEASURE_CHILD").is_none() {
        let exe = std::env::current_exe().unwrap();
        let o = Command::new(exe)
            .args([
                "--exact",
                "a_thousand_calls_printing_a_mebibyte_each_keep_host_memory_bounded",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("LUNABOX_MEASURE_CHILD", "1")
            .output()
            .unwrap();
        print!("{}", String::from_utf8_lossy(&o.stdout));
        assert!(o.status.success(), "{}", text(&o));
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let script = "for i = 1, 1000 do RunBash { command = \"head -c 1048576 /dev/zero | tr '\\\\0' x; head -c 1048576 /dev/zero | tr '\\\\0' y >&2\" } end\nreturn 'done'";
    let f = dir.path().join("flood.lua");
    std::fs::write(&f, script).unwrap();
    let mut cmd = Command::new(bin());
    cmd.args(["eval", f.to_str().unwrap(), "--timeout", "600s", "--json"])
        .env_remove("RUST_BACKTRACE");
    let (o, peak_kib) = run_measured(cmd);
    let v: Value = serde_json::from_slice(&o.stdout).unwrap_or_else(|_| panic!("{}", text(&o)));
    assert_eq!(v["value"], "done", "{v}");
    let transcript = v["runCalls"].to_string().len();
    println!(
        "hardening: 1000 RunBash calls x (1 MiB stdout + 1 MiB stderr): peak RSS {} MiB, transcript {} KiB, JSON {} KiB",
        peak_kib / 1024,
        transcript / 1024,
        o.stdout.len() / 1024
    );
    assert!(peak_kib < 256 * 1024, "peak RSS {peak_kib} KiB");
    assert!(
        o.stdout.len() < 16 << 20,
        "the JSON output is {} bytes",
        o.stdout.len()
    );
}

#[test]
fn scripted_stdout_is_capped_like_real_output() {
    let dir = tempfile::tempdir().unwrap();
    let responses = dir.path().join("r.json");
    let big = "z".repeat(20 << 20);
    std::fs::write(
        &responses,
        json!({"default": {"exitCode": 3, "stdout": big}}).to_string(),
    )
    .unwrap();
    let tk = efix_with(dir.path(), |_| {});
    let ctx = dir.path().join("ctx.json");
    std::fs::write(&ctx, json!({"config": {"path": "/x", "control": "/y"}, "repository": {}, "source": {"stagingEnvironment": "e", "stagingEnvironmentUser": "u", "stagingHost": "h", "dataDirectory": "/d"}}).to_string()).unwrap();
    let o = lunabox(&[
        "run-hook",
        tk.to_str().unwrap(),
        "staged/status",
        "--context",
        ctx.to_str().unwrap(),
        "--responses",
        responses.to_str().unwrap(),
        "--json",
    ]);
    let v: Value = serde_json::from_slice(&o.stdout).unwrap_or_else(|_| panic!("{}", text(&o)));
    assert_eq!(v["outcome"], "error", "{}", &v.to_string()[..300]);
    assert!(o.stdout.len() < 4 << 20, "{} bytes of JSON", o.stdout.len());
}

#[test]
fn a_runaway_output_file_is_stopped_while_it_grows() {
    let dir = tempfile::tempdir().unwrap();
    let script = "local ok, e = pcall(RunBash, { command = 'head -c 4G /dev/zero > $DLPX_OUTPUT_FILE' })\nreturn tostring(e)";
    let (o, took) = eval(dir.path(), script, &["--timeout", "60s", "--json"]);
    let v: Value = serde_json::from_slice(&o.stdout).unwrap_or_else(|_| panic!("{}", text(&o)));
    let m = v["value"].as_str().unwrap_or_default();
    assert!(m.contains("was stopped while it wrote"), "{v}");
    assert!(took < Duration::from_secs(20), "{took:?}");
}

#[test]
fn a_huge_error_message_is_cut_not_passed_through() {
    let dir = tempfile::tempdir().unwrap();
    let (o, _) = eval(
        dir.path(),
        "error(string.rep('x', 100 * 1024 * 1024))",
        &["--memory", "512MiB", "--json"],
    );
    assert!(o.stdout.len() < 1 << 20, "{} bytes", o.stdout.len());
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    let m = v["message"].as_str().unwrap();
    assert!(
        m.len() <= 64 << 10 && m.ends_with("(cut: 104857612 bytes in all)"),
        "{}",
        &m[m.len().saturating_sub(100)..]
    );
}

#[test]
fn state_database_growth_per_status_run_is_bounded() {
    let lab = Lab::new();
    lab.linked_efix("db");
    lab.control("status", "flood 100");
    let size = || {
        ["state.db", "state.db-wal"]
            .iter()
            .map(|f| std::fs::metadata(lab.state().join(f)).map_or(0, |m| m.len()))
            .sum::<u64>()
    };
    let (ok, v) = lab.json(&["status", "db"]);
    assert!(ok, "{v}");
    let before = size();
    for _ in 0..3 {
        let (ok, v) = lab.json(&["status", "db"]);
        assert!(ok && v["status"] == "ACTIVE", "{v}");
    }
    let growth = size().saturating_sub(before) / 3;
    println!(
        "hardening: state.db growth per status run of a 100-call status hook printing 2 MiB per call: {} KiB",
        growth / 1024
    );
    assert!(growth < 2 << 20, "{growth} bytes per status run");
}

// ---- 6. deadlines --------------------------------------------------------

#[test]
fn a_looping_status_hook_ends_at_its_deadline() {
    let lab = Lab::new();
    lab.linked_efix("db");
    lab.control("status", "spin");
    let t = Instant::now();
    let (_, v) = lab.json(&["status", "db", "--timeout", "status=2s"]);
    assert_eq!(v["status"], "UNKNOWN", "{v}");
    assert!(t.elapsed() < Duration::from_secs(15), "{:?}", t.elapsed());
    // Kept with the dSource.
    lab.ok(&["policy", "db", "--timeout", "status=1s"]);
    let t = Instant::now();
    let (_, v) = lab.json(&["status", "db"]);
    assert_eq!(v["status"], "UNKNOWN", "{v}");
    assert!(t.elapsed() < Duration::from_secs(15), "{:?}", t.elapsed());
    let (_, f) = lab.json(&["faults", "db"]);
    assert!(f.to_string().contains("deadline of 1s"), "{f}");
}

// ---- 7. terminal output -----------------------------------------------------

#[test]
fn control_characters_from_commands_never_reach_the_terminal_raw() {
    let lab = Lab::new();
    lab.linked_efix("db");
    lab.control("preSnapshot", "noise");
    let o = lab.run(&["sync", "db"]);
    let human = [o.stdout.clone(), o.stderr.clone()].concat();
    let o2 = lab.run(&["faults", "db"]);
    let o3 = lab.run(&["job", "2"]);
    for out in [
        human,
        [o2.stdout, o2.stderr].concat(),
        [o3.stdout, o3.stderr].concat(),
    ] {
        let t = String::from_utf8_lossy(&out);
        assert!(
            !out.iter().any(|&b| b == 0x1b || b == 0x07 || b == b'\r'),
            "{t:?}"
        );
    }
    let (_, f) = lab.json(&["faults", "db"]);
    assert!(
        f.to_string().contains("\\u001b[2K\\rok: all good\\u0007"),
        "{f}"
    );
}

// ---- 8. messages --------------------------------------------------------------

#[test]
fn messages_blame_the_hook_and_say_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let (o, _) = eval(
        dir.path(),
        "error(setmetatable({}, {__tostring = function() error('boom') end}))",
        &["--json"],
    );
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .contains("__tostring metamethod failed"),
        "{v}"
    );
    let (o, _) = eval(
        dir.path(),
        "local t = {} local c = t for i = 1, 150 do c[1] = {} c = c[1] end return t",
        &["--json"],
    );
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(!v.to_string().contains("lunabox bug"), "{v}");
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .contains("nested deeper than 100 levels"),
        "{v}"
    );
    let (o, _) = eval(
        dir.path(),
        "return RunBash { command = string.rep('x', 128 * 1024 * 1024) }",
        &["--memory", "1GiB", "--json"],
    );
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["kind"], "runtime", "{v}");
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .contains("call table is larger than"),
        "{v}"
    );
    let (o, _) = eval(dir.path(), "return 1", &["--max-result", "0"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        text(&o).contains("0 does not mean unlimited"),
        "{}",
        text(&o)
    );
}

#[test]
fn a_full_disk_is_recorded_as_no_space_left() {
    if !is_root() {
        return skip("a full disk needs a small tmpfs, and mounting one needs root");
    }
    let lab = Lab::new();
    let mnt = lab.path("small");
    std::fs::create_dir_all(&mnt).unwrap();
    let ok = Command::new("mount")
        .args([
            "-t",
            "tmpfs",
            "-o",
            "size=40m",
            "tmpfs",
            mnt.to_str().unwrap(),
        ])
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        return skip("cannot mount a tmpfs here");
    }
    struct Unmount(PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(&self.0).status();
        }
    }
    let _u = Unmount(mnt.clone());
    let state = mnt.join("state");
    let run = |args: &[&str]| lab.cmd(args).env("LUNABOX_STATE", &state).output().unwrap();
    assert!(run(&["env", "add", "local", "--local"]).status.success());
    assert!(
        run(&["toolkit", "install", fixture("efix").to_str().unwrap()])
            .status
            .success()
    );
    write(&lab.src().join("a.txt"), "alpha\n");
    let config = lab.path("config.json");
    let o = run(&[
        "link",
        "db",
        "--toolkit",
        "efix",
        "--environment",
        "local",
        "--config",
        config.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    // The hook fills the disk (as a database writing its files would) and
    // leaves it full: the snapshot cannot be built, and the record of that
    // must still be written.
    lab.control("preSnapshot", "fill");
    let o = run(&["sync", "db"]);
    assert!(!o.status.success(), "{}", text(&o));
    let o = run(&["jobs", "db", "--json"]);
    let jobs: Value = serde_json::from_slice(&o.stdout).unwrap_or_else(|_| panic!("{}", text(&o)));
    let last = jobs
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["kind"] == "sync")
        .unwrap()
        .clone();
    let err = last["error"].as_str().unwrap_or_default().to_lowercase();
    assert!(
        err.contains("no space left") || err.contains("full"),
        "{last}"
    );
    assert!(!err.contains("interrupted"), "{last}");
}

// ---- 9. what outlives lunabox ---------------------------------------------------

/// The private directories of Run calls that exist now.
fn call_dirs() -> Vec<PathBuf> {
    ["/dev/shm".into(), std::env::temp_dir()]
        .iter()
        .filter_map(|d: &PathBuf| std::fs::read_dir(d).ok())
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("lunabox-run-"))
        })
        .collect()
}

#[test]
fn sigterm_during_a_run_call_kills_the_command_and_removes_its_files() {
    let dir = tempfile::tempdir().unwrap();
    let pidf = dir.path().join("pid");
    let script = format!(
        "RunBash {{ command = 'echo $$ > {}; head -c 50M /dev/zero > $DLPX_OUTPUT_FILE.big; cp /dev/null $DLPX_OUTPUT_FILE; sleep 1000' }}",
        pidf.display()
    );
    let f = dir.path().join("hang.lua");
    std::fs::write(&f, script).unwrap();
    let before = call_dirs();
    let child = Command::new(bin())
        .args(["eval", f.to_str().unwrap(), "--timeout", "600s"])
        .env_remove("RUST_BACKTRACE")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let t = Instant::now();
    while !pidf.exists() || std::fs::read_to_string(&pidf).unwrap().trim().is_empty() {
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "the command never started"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(300));
    let pid: i32 = std::fs::read_to_string(&pidf)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // The call's private directory (holding the output file): the one made
    // since the command started.
    let files: Vec<PathBuf> = call_dirs()
        .into_iter()
        .filter(|d| !before.contains(d))
        .collect();
    // SAFETY: kill only sends a signal to our child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(128 + libc::SIGTERM),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::thread::sleep(Duration::from_millis(200));
    assert!(gone(pid), "the command (pid {pid}) outlived lunabox");
    assert!(!files.is_empty(), "found no call directory to check");
    let left: Vec<&PathBuf> = files
        .iter()
        .filter(|d| d.join("output-0.json.big").exists())
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

#[test]
fn snapshot_export_into_the_state_directory_is_refused() {
    let lab = Lab::new();
    lab.linked_efix("db");
    let inside = lab.storage("db").join("snapshots/1/files/new-dir");
    let o = lab.run(&["snapshot", "export", "db", "1", inside.to_str().unwrap()]);
    assert!(!o.status.success());
    assert!(
        text(&o).contains("inside the state directory"),
        "{}",
        text(&o)
    );
    assert!(!inside.exists());
    let o = lab.run(&[
        "snapshot",
        "export",
        "db",
        "1",
        lab.state().join("mine").to_str().unwrap(),
    ]);
    assert!(!o.status.success(), "{}", text(&o));
    let out = lab.path("export");
    lab.ok(&["snapshot", "export", "db", "1", out.to_str().unwrap()]);
    assert_eq!(
        std::fs::read_to_string(out.join("a.txt")).unwrap(),
        "alpha\n"
    );
}

#[test]
fn a_detached_process_is_killed_at_the_deadline_when_cgroups_allow() {
    if !is_root() {
        return skip("a cgroup per Run call needs root");
    }
    let has_cgroup2 = std::fs::read_to_string("/proc/self/mountinfo")
        .is_ok_and(|m| m.lines().any(|l| l.contains(" - cgroup2 ")));
    if !has_cgroup2 {
        return skip("no cgroup v2 hierarchy is mounted");
    }
    let dir = tempfile::tempdir().unwrap();
    let pidf = dir.path().join("pid");
    let script = format!(
        "RunBash {{ command = 'setsid bash -c \"echo \\\\$\\\\$ > {}; exec sleep 1000\" < /dev/null > /dev/null 2>&1 & sleep 1000' }}",
        pidf.display()
    );
    let (o, took) = eval(dir.path(), &script, &["--timeout", "2s", "--json"]);
    let v: Value = serde_json::from_slice(&o.stdout).unwrap_or_else(|_| panic!("{}", text(&o)));
    assert_eq!(v["outcome"], "limit", "{v}");
    assert!(took < Duration::from_secs(10));
    let pid: i32 = std::fs::read_to_string(&pidf)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        gone(pid),
        "the detached process {pid} outlived the deadline"
    );
}
