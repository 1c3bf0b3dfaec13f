//! Lua semantics stay intact inside the sandbox: errors, pcall/xpcall,
//! coroutines, the standard libraries, JSON conversion of globals and
//! results, and the sandbox rules of the toolkit format (spec section 6).

#[path = "common/mod.rs"]
mod sandbox_common;

use lunabox_sandbox::{Limits, Outcome, ScriptErrorKind};
use sandbox_common::*;
use serde_json::json;

#[test]
fn returns_values_as_json() {
    assert_eq!(ok("return 1"), json!(1));
    assert_eq!(ok("return 2.5"), json!(2.5));
    assert_eq!(ok("return 'hi'"), json!("hi"));
    assert_eq!(ok("return true"), json!(true));
    assert_eq!(ok("return nil"), json!(null));
    assert_eq!(ok(""), json!(null));
    assert_eq!(ok("return {1, 2, 3}"), json!([1, 2, 3]));
    assert_eq!(
        ok("return {a = 1, b = {c = 'x'}}"),
        json!({"a": 1, "b": {"c": "x"}})
    );
    assert_eq!(ok("return {}"), json!({}));
    assert_eq!(ok("return 'caf\\u{e9} \\u{1F600}'"), json!("café 😀"));
}

#[test]
fn integers_and_floats_stay_apart() {
    // A float with an integral value keeps its float-ness through JSON.
    let v = ok("return {i = 3, f = 3.0, big = math.maxinteger}");
    assert!(v["i"].is_i64());
    assert!(v["f"].is_f64());
    assert_eq!(v["big"], json!(i64::MAX));
}

#[test]
fn unconvertible_results_are_clear_errors() {
    for (script, needle) in [
        ("return 0/0", "NaN"),
        ("return 1/0", "inf"),
        ("local t = {} t.self = t return t", "cycle"),
        ("return {print}", "function"),
        ("return {1, 2, x = 3}", "mixes"),
        ("return {[1] = 1, [3] = 3}", "sparse"),
        ("return {[true] = 1}", "key"),
    ] {
        match run(script).result {
            Outcome::Error(e) => {
                assert_eq!(e.kind, ScriptErrorKind::BadResult, "{script}");
                assert!(
                    e.message.to_lowercase().contains(&needle.to_lowercase()),
                    "{script}: {}",
                    e.message
                );
            }
            other => panic!("{script}: {other:?}"),
        }
    }
}

#[test]
fn globals_arrive_and_are_read_only() {
    let out = run_globals(
        "return { parameters.port + 1, math.type(parameters.port), math.type(parameters.ratio), config.dbName, sourceConfig.dbName, #source.list }",
        json!({"parameters": {"port": 1234, "ratio": 0.5}, "config": {"dbName": "db1"}, "source": {"list": [1, 2, 3]}}),
    );
    assert_eq!(
        out.result,
        Outcome::Value(json!([1235, "integer", "float", "db1", "db1", 3]))
    );
    let out = run_globals("parameters = {}", json!({"parameters": {}}));
    match out.result {
        Outcome::Error(e) => assert!(e.message.contains("read-only"), "{}", e.message),
        other => panic!("{other:?}"),
    }
    // The tables themselves stay mutable (upgrade hooks edit parameters).
    let out = run_globals(
        "parameters.x = 2 return parameters",
        json!({"parameters": {"y": 1}}),
    );
    assert_eq!(out.result, Outcome::Value(json!({"y": 1, "x": 2})));
    // Plain globals of the script's own are fine.
    assert_eq!(ok("envMap = {A = 1} return envMap.A"), json!(1));
}

#[test]
fn pcall_error_with_tables_and_xpcall_traceback() {
    assert_eq!(
        ok("local ok, e = pcall(error, {code = 7}) return {ok, e.code}"),
        json!([false, 7])
    );
    assert_eq!(
        ok("local ok, e = pcall(function() local x = nil; return x.y end) return {ok, type(e)}"),
        json!([false, "string"])
    );
    let tb = ok("local ok, tb = xpcall(function() error('deep') end, debug.traceback) return tb");
    let tb = tb.as_str().unwrap();
    assert!(
        tb.contains("deep") && tb.contains("stack traceback"),
        "{tb}"
    );
    // error() with a level points at the caller's line.
    let msg = err("local function f() error('bad arg', 2) end\nf()");
    assert!(msg.starts_with("test.lua:2:"), "{msg}");
}

#[test]
fn uncaught_errors_carry_a_traceback_and_line() {
    let out = run("local x = 1\nlocal function boom() error('kaput') end\nboom()");
    match out.result {
        Outcome::Error(e) => {
            assert_eq!(e.kind, ScriptErrorKind::Runtime);
            assert!(e.message.contains("test.lua:2: kaput"), "{}", e.message);
            assert!(e.traceback.unwrap_or_default().contains("boom"));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn coroutines_including_yield_inside_pcall() {
    let v = ok(r#"
        local co = coroutine.wrap(function()
            local ok, err = pcall(function()
                coroutine.yield(1)
                coroutine.yield(2)
                error("inner")
            end)
            coroutine.yield(ok and "ok" or "caught")
            return "done"
        end)
        return { co(), co(), co(), co() }
    "#);
    assert_eq!(v, json!([1, 2, "caught", "done"]));
    let v = ok(r#"
        local co = coroutine.create(function() error({why = "x"}) end)
        local ok, e = coroutine.resume(co)
        local co2 = coroutine.create(function() coroutine.yield() end)
        coroutine.resume(co2)
        return { ok, e.why, coroutine.status(co), coroutine.close(co2) }
    "#);
    assert_eq!(v, json!([false, "x", "dead", true]));
}

#[test]
fn standard_libraries() {
    assert_eq!(
        ok("return string.format('%05.1f|%s|%d', 3.14159, 'x', 42)"),
        json!("003.1|x|42")
    );
    assert_eq!(
        ok("return (string.gsub('hello world', 'o', '0'))"),
        json!("hell0 w0rld")
    );
    assert_eq!(
        ok("return {string.find('key=value', '(%w+)=(%w+)')}"),
        json!([1, 9, "key", "value"])
    );
    assert_eq!(
        ok("local t = {3, 1, 2} table.sort(t) return table.concat(t, ',')"),
        json!("1,2,3")
    );
    assert_eq!(
        ok("local t = {5, 2, 8} table.sort(t, function(a, b) return a > b end) return t"),
        json!([8, 5, 2])
    );
    assert_eq!(
        ok("return {math.floor(3.7), math.max(1, 9, 4), math.tointeger(8.0)}"),
        json!([3, 9, 8])
    );
    assert_eq!(
        ok("return {utf8.len('café'), utf8.char(72, 228)}"),
        json!([4, "Hä"])
    );
    assert_eq!(ok("return string.rep('ab', 3, '-')"), json!("ab-ab-ab"));
    assert_eq!(ok("return select('#', table.unpack({1, 2, 3}))"), json!(3));
    // 5.1-style helpers real toolkits use.
    assert_eq!(ok("return unpack({4, 5})"), json!(4));
    assert_eq!(ok("return loadstring('return 6 * 7')()"), json!(42));
    // os.time is a real clock (after 2024-01-01).
    assert_eq!(ok("return os.time() > 1704067200"), json!(true));
    assert_eq!(ok("return os.date('!%Y-%m-%d', 0)"), json!("1970-01-01"));
    assert_eq!(ok("return os.difftime(10, 4)"), json!(6.0));
    assert_eq!(ok("return math.random(1, 1)"), json!(1));
}

#[test]
fn math_random_is_reseeded_for_every_hook() {
    let a = ok("return {math.random(1 << 40), math.random(1 << 40)}");
    let b = ok("return {math.random(1 << 40), math.random(1 << 40)}");
    assert_ne!(a, b, "two hooks drew the same random numbers");
}

#[test]
fn stack_overflow_is_a_lua_error() {
    // Lua's own stack limit (a million slots, ~40 MB with call frames) must
    // be reachable under the memory cap for the overflow to be Lua's error.
    let roomy = Limits {
        memory: 256 << 20,
        ..limits()
    };
    let value = |script: &str| match run_with(script, roomy.clone()).result {
        Outcome::Value(v) => v,
        other => panic!("{script}: {other:?}"),
    };
    match run_with(
        "local function f(n) return 1 + f(n + 1) end return f(1)",
        roomy.clone(),
    )
    .result
    {
        Outcome::Error(e) => assert!(e.message.contains("stack overflow"), "{}", e.message),
        other => panic!("{other:?}"),
    }
    let v = value(
        "local function f() return f() + 1 end local ok, e = pcall(f) return {ok, (tostring(e):find('stack overflow')) ~= nil}",
    );
    assert_eq!(v, json!([false, true]));
    // Deep recursion through C (string.gsub with a Lua callback) too.
    let v = value(
        "local function g(s) return (s:gsub('.', function(c) return g(c) end)) end local ok, e = pcall(g, 'ab') return {ok, tostring(e)}",
    );
    assert_eq!(v[0], json!(false));
    assert!(v[1].as_str().unwrap().contains("stack overflow"), "{v}");
}

#[test]
fn syntax_errors_name_the_line() {
    let out = run("local x = 1\nlocal y = = 2\n");
    match out.result {
        Outcome::Error(e) => {
            assert_eq!(e.kind, ScriptErrorKind::Syntax);
            assert!(e.message.starts_with("test.lua:2:"), "{}", e.message);
        }
        other => panic!("{other:?}"),
    }
    let err = runtime()
        .check_syntax("return 1 +", "tk/staged/resync.lua")
        .unwrap_err();
    assert_eq!(err.line, Some(1));
    assert!(runtime().check_syntax("return 1", "x.lua").is_ok());
}

#[test]
fn a_leading_hash_line_is_skipped_and_lines_stay_right() {
    assert_eq!(ok("#!/usr/bin/env lua\nreturn 5"), json!(5));
    let msg = err("# comment line\n\nerror('here')");
    assert!(msg.starts_with("test.lua:3:"), "{msg}");
}

#[test]
fn print_goes_to_the_log() {
    let out = run("print('hello', 42, nil, true) print('second')");
    assert_eq!(out.result, Outcome::Value(json!(null)));
    let lines: Vec<_> = out.log.iter().map(|l| l.message.as_str()).collect();
    assert_eq!(lines, ["hello\t42\tnil\ttrue", "second"]);
}

#[test]
fn error_objects_that_are_tables_get_a_message() {
    let msg = err("error({code = 3, why = 'no'})");
    assert!(msg.contains("code") && msg.contains("no"), "{msg}");
    let msg = err("error(setmetatable({}, {__tostring = function() return 'custom text' end}))");
    assert!(msg.contains("custom text"), "{msg}");
}

#[test]
fn secrets_are_masked_whole_in_the_log() {
    // Regression: the sandbox masked secrets in the given order, so a secret
    // that contains another ("s3cret" in "s3cret-long") left a tail showing.
    let req = lunabox_sandbox::HookRequest::new("print('pw=s3cret-long and s3cret')", "test.lua")
        .with_secrets(vec!["s3cret".into(), "s3cret-long".into()]);
    let out = runtime().run_hook(req);
    assert_eq!(out.log[0].message, "pw=******** and ********");
}

#[test]
fn coverage_is_reported_only_when_asked() {
    use lunabox_sandbox::{Coverage, HookRequest};
    let script =
        "local x = 1\nif x == 2 then\n  x = 3\nend\nlocal t = nil\nreturn x + (t and 1 or 0)\n";
    let plain = runtime().run_hook(HookRequest::new(script, "c.lua"));
    assert_eq!(plain.result, lunabox_sandbox::Outcome::Value(1.into()));
    assert_eq!(plain.coverage, None);
    let covered = runtime().run_hook(HookRequest::new(script, "c.lua").with_coverage(true));
    assert_eq!(
        covered.coverage,
        Some(Coverage {
            ran: vec![1, 2, 5, 6],
            lines: vec![1, 2, 3, 5, 6],
            last_line: 6,
            call_lines: vec![],
        })
    );
    // On an error too, up to the failing line.
    let failed = runtime().run_hook(
        HookRequest::new("local a = 1\nlocal b = a.x.y\nreturn b\n", "e.lua").with_coverage(true),
    );
    assert!(!failed.result.is_ok());
    let c = failed.coverage.unwrap();
    assert_eq!((c.ran, c.last_line), (vec![1, 2], 2));
}
