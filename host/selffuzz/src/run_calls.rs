//! Target (c): Run-call tables, as the host parses them.
//!
//! - [`target_host`]: a call-shaped JSON value (the fields the spec names,
//!   with values of every type, variable names good and bad, paths with
//!   `..` and `/`, schemas from [`crate::output_schema::schema`]) is parsed
//!   for every Run function, as a value and as text. A parsed call must
//!   obey the spec's rules (a command for the command functions, a source
//!   directory for `RunSync`, variable names that are environment names
//!   with NUL-free text, normalized relative paths, a schema that compiles);
//!   a refused one must name its function, and its field must be one the
//!   table has. Arbitrary text must parse or be refused, never panic.
//! - [`target_guest`]: the same value is given to a hook as a global and
//!   passed to a Run function from Lua. The call the executor receives must
//!   be exactly what the host parser makes of the value's trip through Lua
//!   ([`crate::lua_json::through_lua`]), and a refused table must fail the
//!   hook with the parser's message; never a host failure.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use arbitrary::Unstructured;
use lunabox_run::call::{self, RunCall, RunFunction};
use lunabox_run::{ExecError, Executor, RawResult, RunContext};
use lunabox_sandbox::{HookRequest, Limits, Outcome};
use serde_json::{Map, Value};

use crate::make;

/// Variable names: valid, invalid and reserved.
const VAR_NAMES: &[&str] = &[
    "PORT",
    "_x",
    "a1",
    "DLPX_OUTPUT_FILE",
    "1A",
    "A-B",
    "",
    "A B",
    "\u{e9}",
    "PATH",
    "X=Y",
];

/// Paths for `sourceDirectory`, `excludePaths` and `followSymlinkPaths`.
const PATHS: &[&str] = &[
    "logs", "a/b", "./a//b/", "/abs", "..", "a/../b", ".", "", "a/..", "x\0y", "~/x", "a/./b", " ",
];

fn field_value(u: &mut Unstructured, key: &str) -> Value {
    if make::chance(u, 1, 5) {
        return make::json(u, 2, 3);
    }
    match key {
        "command" | "environment" | "user" | "host" => Value::String(make::string(u)),
        "sourceDirectory" => Value::String(make::pick(u, PATHS).to_string()),
        "variables" => {
            let n = u.int_in_range(0..=4usize).unwrap_or(0);
            let mut m = Map::new();
            for _ in 0..n {
                let name = if make::chance(u, 3, 4) {
                    make::pick(u, VAR_NAMES).to_string()
                } else {
                    make::short_text(u, 6)
                };
                let v = match u.int_in_range(0..=5u8).unwrap_or(0) {
                    0 => Value::String(make::string(u)),
                    1 => make::number(u),
                    2 => Value::Bool(u.arbitrary().unwrap_or(false)),
                    3 => Value::Null,
                    4 => Value::String("a\0b".into()),
                    _ => make::json(u, 2, 2),
                };
                m.insert(name, v);
            }
            Value::Object(m)
        }
        "excludePaths" | "followSymlinkPaths" => {
            let n = u.int_in_range(0..=4usize).unwrap_or(0);
            Value::Array(
                (0..n)
                    .map(|_| {
                        if make::chance(u, 1, 6) {
                            make::json(u, 1, 2)
                        } else {
                            Value::String(make::pick(u, PATHS).to_string())
                        }
                    })
                    .collect(),
            )
        }
        "outputSchema" => crate::output_schema::schema(u, 3),
        _ => make::json(u, 2, 3),
    }
}

/// A call table: some of the known fields (and an unknown one), or rarely
/// not a table at all.
pub fn call_value(u: &mut Unstructured) -> Value {
    if make::chance(u, 1, 12) {
        return make::json(u, 2, 3);
    }
    const KEYS: &[&str] = &[
        "command",
        "variables",
        "outputSchema",
        "environment",
        "user",
        "host",
        "sourceDirectory",
        "excludePaths",
        "followSymlinkPaths",
        "unknownField",
    ];
    let mut m = Map::new();
    for key in KEYS {
        let p = if *key == "command" || *key == "sourceDirectory" {
            4
        } else {
            2
        };
        if make::chance(u, p, 5) {
            let v = field_value(u, key);
            m.insert(key.to_string(), v);
        }
    }
    Value::Object(m)
}

/// The rules a parsed call obeys (see the module doc).
pub fn check_call(f: RunFunction, table: &Value, c: &RunCall) {
    assert_eq!(c.function, f);
    if f.takes_command() {
        assert!(c.command.is_some(), "{f} without a command: {table}");
        assert!(c.source_directory.is_none());
        assert!(c.exclude_paths.is_empty() && c.follow_symlink_paths.is_empty());
    } else {
        assert!(c.command.is_none() && c.variables.is_empty() && c.output_schema.is_none());
        let dir = c
            .source_directory
            .as_deref()
            .expect("RunSync has a source directory");
        assert!(
            !dir.trim().is_empty(),
            "an empty sourceDirectory was accepted: {table}"
        );
    }
    let given = table.get("variables").and_then(Value::as_object);
    for (name, text) in &c.variables {
        assert!(
            call::is_env_name(name),
            "variable `{name}` accepted: {table}"
        );
        assert_ne!(
            name, "DLPX_OUTPUT_FILE",
            "the reserved variable was accepted"
        );
        assert!(
            !text.contains('\0'),
            "a NUL in variables.{name} was accepted"
        );
        let v = given
            .and_then(|g| g.get(name))
            .expect("a variable the table has");
        match v {
            Value::String(s) => assert_eq!(s, text),
            Value::Bool(b) => assert_eq!(&b.to_string(), text),
            Value::Number(n) if n.is_i64() || n.is_u64() => assert_eq!(&n.to_string(), text),
            Value::Number(n) => {
                let back: f64 = text.parse().unwrap_or(f64::NAN);
                let x = n.as_f64().unwrap_or(0.0);
                // %.14g: 14 significant digits.
                assert!(
                    (back - x).abs() <= x.abs() * 1e-13,
                    "variables.{name} = {n} became `{text}`"
                );
            }
            other => panic!("variables.{name} = {other} was accepted"),
        }
    }
    if let Some(g) = given.filter(|_| f.takes_command()) {
        let kept = g.iter().filter(|(_, v)| !v.is_null()).count();
        assert_eq!(
            kept,
            c.variables.len(),
            "variables dropped or invented: {table}"
        );
    }
    for p in c.exclude_paths.iter().chain(&c.follow_symlink_paths) {
        assert!(
            !p.is_empty() && !p.starts_with('/') && !p.ends_with('/'),
            "path `{p}`"
        );
        assert!(
            p.split('/').all(|s| !s.is_empty() && s != "." && s != ".."),
            "path `{p}`"
        );
    }
    if let Some(s) = &c.output_schema {
        assert!(lunabox_run::output::compile_schema(s).is_ok());
        assert_eq!(Some(s), table.get("outputSchema"));
    }
}

/// Target (c), host side: see the module doc.
pub fn target_host(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let u = &mut u;
    if make::chance(u, 1, 10) {
        let text = {
            let n = u.len();
            String::from_utf8_lossy(u.bytes(n).unwrap_or_default()).into_owned()
        };
        for f in RunFunction::ALL {
            if let Err(e) = call::parse(f, &text) {
                assert_eq!(e.function, f);
            }
        }
        return;
    }
    let table = call_value(u);
    let text = table.to_string();
    for f in RunFunction::ALL {
        let parsed = call::parse_value(f, &table);
        assert_eq!(
            parsed,
            call::parse(f, &text),
            "value and text parse differently"
        );
        match parsed {
            Ok(c) => check_call(f, &table, &c),
            Err(e) => {
                assert_eq!(e.function, f);
                assert!(e.to_string().starts_with(f.name()));
                assert!(!e.message.is_empty());
                if let Some(field) = &e.field {
                    let top = field.split(['.', '[']).next().unwrap_or(field);
                    assert!(
                        table.get(top).is_some()
                            || !table.is_object()
                            || e.message.contains("missing"),
                        "error names field `{field}` the table does not have: {table}"
                    );
                }
            }
        }
    }
}

/// An executor that records each call and answers "exit 0".
#[derive(Default)]
struct Recorder {
    calls: Mutex<Vec<RunCall>>,
}

impl Executor for Recorder {
    fn execute(&self, call: &RunCall, _ctx: &RunContext) -> Result<RawResult, ExecError> {
        self.calls.lock().expect("not poisoned").push(call.clone());
        Ok(RawResult {
            stdout: "ok\n".into(),
            output: b"\"ok\"".to_vec(),
            ..RawResult::default()
        })
    }
}

/// Target (c), from a hook: see the module doc.
pub fn target_guest(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let u = &mut u;
    let f = RunFunction::ALL[u.choose_index(RunFunction::ALL.len()).unwrap_or(0)];
    let table = call_value(u);
    let recorder = Arc::new(Recorder::default());
    let tmp = tempfile::tempdir().expect("a temporary directory");
    let request = HookRequest::new(format!("return {f}(t)"), "calls.lua")
        .with_global("t", table.clone())
        .with_executor(recorder.clone())
        .with_data_directory(tmp.path())
        .with_limits(Limits {
            timeout: Duration::from_secs(10),
            memory: 64 << 20,
            ..Limits::default()
        });
    let outcome = crate::runtime().run_hook(request);
    if let Outcome::Host(e) = &outcome.result {
        panic!("{f}(t) with t = {table}: host failure {e:?}");
    }
    let calls = recorder.calls.lock().expect("not poisoned");
    let Ok(Some(seen)) = crate::lua_json::through_lua(&table) else {
        // nil or a table that cannot cross: the hook fails, no call is made.
        assert!(calls.is_empty(), "a call was made from {table}");
        assert!(outcome.result.message().is_some(), "{:?}", outcome.result);
        return;
    };
    if !(seen.is_object() || seen.is_array()) {
        // Not a table: the guest refuses it before the host sees it.
        assert!(calls.is_empty(), "a call was made from {table}");
        let msg = outcome.result.message().unwrap_or_default();
        assert!(
            msg.contains(f.name()) && msg.contains("table"),
            "{f}(t), t = {table}: {msg}"
        );
        return;
    }
    match call::parse_value(f, &seen) {
        Ok(want) => {
            if f.takes_command() {
                assert_eq!(calls.len(), 1, "{f}(t), t = {table}: {:?}", outcome.result);
                assert_eq!(calls[0], want, "t = {table}");
            } else if let Some(got) = calls.first() {
                assert_eq!(got, &want, "t = {table}");
            }
        }
        Err(e) => {
            assert!(
                calls.is_empty(),
                "a refused table reached the executor: {table}"
            );
            let msg = outcome.result.message().unwrap_or_default();
            // The hook sees NUL bytes written `\0` (see lunabox-sandbox).
            assert!(
                msg.contains(&e.message.replace('\0', "\\0")),
                "{f}(t), t = {table}: the hook's error does not carry the parser's:\n {msg}\n {e}"
            );
        }
    }
}
