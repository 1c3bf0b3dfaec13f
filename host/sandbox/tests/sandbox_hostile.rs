//! Hostile scripts: each is contained (stopped by a limit or refused), and
//! the host stays alive and runs the next hook normally.

#[path = "common/mod.rs"]
mod sandbox_common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use lunabox_run::executors::local::LocalExecutor;
use lunabox_sandbox::{HookRequest, LimitKind, Limits, Outcome};
use sandbox_common::*;
use serde_json::json;

fn short() -> Limits {
    Limits {
        timeout: Duration::from_millis(700),
        ..limits()
    }
}

#[track_caller]
fn expect_limit(script: &str, limits: Limits, kind: LimitKind) {
    let started = Instant::now();
    let out = run_with(script, limits.clone());
    assert_eq!(out.result.limit(), Some(kind), "script: {script}");
    if kind == LimitKind::Time {
        let took = started.elapsed();
        assert!(
            took < limits.timeout + Duration::from_secs(2),
            "stopped only after {took:?}"
        );
    }
    // The host is alive and the next hook runs normally.
    assert_eq!(ok("return 1 + 1"), json!(2));
}

#[test]
fn infinite_loops_hit_the_deadline() {
    expect_limit("while true do end", short(), LimitKind::Time);
    expect_limit(
        "pcall(function() while true do end end) return 'escaped'",
        short(),
        LimitKind::Time,
    );
    expect_limit(
        "while true do pcall(function() while true do end end) end",
        short(),
        LimitKind::Time,
    );
    expect_limit(
        "local co = coroutine.wrap(function() while true do end end) co()",
        short(),
        LimitKind::Time,
    );
}

#[test]
fn a_loop_inside_a_c_function_hits_the_deadline() {
    // Exponential backtracking inside string.find (C code compiled to wasm).
    expect_limit(
        "return string.find(string.rep('a', 40), string.rep('a*', 40) .. 'b')",
        short(),
        LimitKind::Time,
    );
    // A comparator that never terminates, called from table.sort.
    expect_limit(
        "local t = {} for i = 1, 100 do t[i] = i end table.sort(t, function(a, b) while true do end end)",
        short(),
        LimitKind::Time,
    );
}

#[test]
fn fuel_stops_loops_deterministically() {
    let limits = Limits {
        fuel: Some(5_000_000),
        ..limits()
    };
    expect_limit("while true do end", limits.clone(), LimitKind::Fuel);
    expect_limit(
        "pcall(function() local x = 0 while true do x = x + 1 end end)",
        limits.clone(),
        LimitKind::Fuel,
    );
    // The same script uses the same fuel every time.
    let a = run_with(
        "local s = 0 for i = 1, 10000 do s = s + i end return s",
        limits.clone(),
    );
    let b = run_with(
        "local s = 0 for i = 1, 10000 do s = s + i end return s",
        limits,
    );
    assert_eq!(a.result, Outcome::Value(json!(50005000)));
    assert_eq!(a.stats.fuel_used, b.stats.fuel_used);
    assert!(a.stats.fuel_used.unwrap() > 10_000);
}

#[test]
fn memory_bombs_hit_the_memory_cap() {
    let limits = Limits {
        memory: 32 << 20,
        ..limits()
    };
    expect_limit(
        "local t = {} local i = 0 while true do i = i + 1 t[i] = i end",
        limits.clone(),
        LimitKind::Memory,
    );
    expect_limit(
        "local s = string.rep('x', 1 << 30) return #s",
        limits.clone(),
        LimitKind::Memory,
    );
    expect_limit(
        "local ok = pcall(string.rep, 'x', 1 << 30) return ok",
        limits.clone(),
        LimitKind::Memory,
    );
    expect_limit(
        "local t = {} for i = 1, 1e8 do t[i] = coroutine.create(function() end) end",
        limits.clone(),
        LimitKind::Memory,
    );
    expect_limit(
        "local s = 'x' while true do s = s .. s end",
        limits.clone(),
        LimitKind::Memory,
    );
    let out = run_with(
        "local t = {} for i = 1, 1000 do t[i] = i end return #t",
        limits,
    );
    assert_eq!(out.result, Outcome::Value(json!(1000)));
    assert!(out.stats.peak_memory > 0 && out.stats.peak_memory <= 32 << 20);
}

#[test]
fn output_and_print_floods_hit_the_output_cap() {
    let limits = Limits {
        max_result_bytes: 1 << 20,
        max_log_bytes: 1 << 20,
        ..limits()
    };
    expect_limit(
        "return string.rep('x', 2 << 20)",
        limits.clone(),
        LimitKind::Output,
    );
    expect_limit(
        "while true do print(string.rep('y', 1000)) end",
        limits.clone(),
        LimitKind::Output,
    );
    expect_limit(
        "pcall(function() while true do print('z') end end)",
        limits.clone(),
        LimitKind::Output,
    );
    expect_limit(
        "local t = {} for i = 1, 300000 do t[i] = 'abcdef' end return t",
        limits,
        LimitKind::Output,
    );
    // io.write to stdout goes nowhere the host keeps, and is bounded by time.
    expect_limit(
        "while true do io.write(string.rep('w', 4096)) end",
        short(),
        LimitKind::Time,
    );
}

#[test]
fn deep_recursion_is_contained() {
    let v = ok(
        "local function f(n) if n == 0 then return 0 end return 1 + f(n - 1) end return f(100000)",
    );
    assert_eq!(v, json!(100000));
    // Unbounded recursion that allocates as it goes: stopped by Lua's stack
    // limit or by the memory cap, whichever comes first; never the host.
    let out = run("local function f() return {f()} end f()");
    match out.result {
        Outcome::Limit(l) if l.kind == LimitKind::Memory => {}
        Outcome::Error(e) => assert!(e.message.contains("stack overflow"), "{}", e.message),
        other => panic!("{other:?}"),
    }
    // Deeply nested tables in the result are refused, not a host crash.
    let out = run("local t = {} local c = t for i = 1, 100000 do c[1] = {} c = c[1] end return t");
    assert!(matches!(out.result, Outcome::Error(_)), "{:?}", out.result);
    assert_eq!(ok("return 3"), json!(3));
}

#[test]
fn recursion_through_c_functions_is_a_lua_error() {
    // Each level here crosses a C boundary (a library function or a
    // metamethod calling back into Lua), so it uses the wasm stack and the
    // guest's C stack, not only Lua's. The VM loop's frame grew when the
    // call path was inlined into it: Lua's C-level limit must still come
    // first, as a catchable Lua error and never a trap.
    for script in [
        "local function f(s) return (s:gsub('.', function(c) return f(c) end)) end return f('ab')",
        "local t = setmetatable({}, {__index = function(t, k) return t[k + 1] end}) return t[1]",
        "local mt = {} mt.__tostring = function() return tostring(setmetatable({}, mt)) end return tostring(setmetatable({}, mt))",
        "local function f(a, b) table.sort({3, 2, 1}, f) return a < b end table.sort({3, 2, 1}, f)",
        "local mt = {} mt.__eq = function(a) return a == setmetatable({}, mt) end return setmetatable({}, mt) == setmetatable({}, mt)",
        "local function f() return coroutine.wrap(f)() end return f()",
    ] {
        let message = err(script);
        assert!(
            message.contains("stack overflow"),
            "script: {script}\nmessage: {message}"
        );
        let caught = ok(&format!(
            "local ok, e = pcall(function() {script} end) return {{ok, tostring(e):find('stack overflow') ~= nil}}"
        ));
        assert_eq!(caught, json!([false, true]), "script: {script}");
    }
    assert_eq!(ok("return 3"), json!(3));
}

#[test]
fn filling_the_scratch_directory_hits_the_scratch_cap() {
    let small = || Limits {
        max_scratch_bytes: 4 << 20,
        ..limits()
    };
    // One growing file, written and appended to; many empty files (each is
    // an inode); both stop at the cap instead of filling the host's disk.
    expect_limit(
        "local f = io.open('/big', 'w') local s = string.rep('x', 1 << 16) while true do f:write(s) end",
        small(),
        LimitKind::Scratch,
    );
    expect_limit(
        "local s = string.rep('y', 1 << 16) while true do local f = io.open('/log', 'a') f:write(s) f:close() end",
        small(),
        LimitKind::Scratch,
    );
    expect_limit(
        "local i = 0 while true do i = i + 1 io.open('/f' .. i, 'w'):close() end",
        small(),
        LimitKind::Scratch,
    );
    // What counts is what the directory holds: rewriting one file goes on
    // far past the cap in bytes written (here 37.5 MiB against 4 MiB).
    let out = run_with(
        "local s = string.rep('z', 1 << 16) \
         for i = 1, 600 do local f = io.open('/state', 'w') f:write(s) f:close() end \
         local f = io.open('/state') local n = #f:read('a') f:close() return n",
        small(),
    );
    assert_eq!(out.result, Outcome::Value(json!(1 << 16)));
}

#[test]
fn no_files_outside_the_scratch_directory() {
    for path in [
        "/etc/passwd",
        "../../../../etc/passwd",
        "/proc/self/environ",
        "/root",
        "/tmp",
    ] {
        let v = ok(&format!(
            "local f, e = io.open({path:?}, 'r') if f then return f:read('a') end return false"
        ));
        assert_eq!(v, json!(false), "{path} was readable");
    }
    let v = ok("local f = io.open('/etc/passwd', 'w') return f == nil");
    assert_eq!(v, json!(true));
    // The scratch directory itself works.
    let v = ok(
        "local f = assert(io.open('notes.txt', 'w')) f:write('abc') f:close() return io.open('/notes.txt'):read('a')",
    );
    assert_eq!(v, json!("abc"));
}

#[test]
fn no_environment_processes_or_native_code() {
    for (script, expect) in [
        ("return os.getenv", json!(null)),
        ("return os.execute", json!(null)),
        ("return os.exit", json!(null)),
        (
            "return os.remove ~= nil and os.tmpname ~= nil",
            json!(false),
        ),
        ("return io.popen", json!(null)),
        ("return require", json!(null)),
        ("return package", json!(null)),
        ("return dofile", json!(null)),
        ("return loadfile", json!(null)),
        ("return string.dump", json!(null)),
        ("return debug.getregistry", json!(null)),
        ("return debug.sethook", json!(null)),
        ("return debug.getupvalue", json!(null)),
        ("return debug.setmetatable", json!(null)),
        ("return type(debug.traceback)", json!("function")),
    ] {
        assert_eq!(ok(script), expect, "{script}");
    }
}

#[test]
fn bytecode_is_refused() {
    let v = ok(
        r#"local f, e = load("\27Lua\84\0\25\147\13\10\26\10\4\8\8", "x", "b") return {f == nil, tostring(e)}"#,
    );
    assert_eq!(v[0], json!(true));
    let v = ok(
        r#"local f, e = load("\27Lua\84\0\25\147\13\10\26\10\4\8\8") return {f == nil, tostring(e)}"#,
    );
    assert_eq!(v[0], json!(true));
    assert!(v[1].as_str().unwrap().contains("binary"), "{v}");
    let v = ok(r#"local f, e = loadstring("\27Lua garbage") return f == nil"#);
    assert_eq!(v, json!(true));
    // Text chunks still load.
    assert_eq!(ok("return load('return 9')()"), json!(9));
}

#[test]
fn run_call_limits() {
    let l = Limits {
        max_run_calls: 2,
        ..limits()
    };
    expect_limit(
        "for i = 1, 3 do RunBash { command = 'true' } end",
        l,
        LimitKind::Calls,
    );
    // A command that outlives the deadline is killed with its process group.
    let marker = tempfile::tempdir().unwrap();
    let pidfile = marker.path().join("pid");
    let script = format!(
        "RunBash {{ command = 'sleep 300 & echo $! > {p}; wait', variables = {{}} }}",
        p = pidfile.display()
    );
    let started = Instant::now();
    let out = run_with(
        &script,
        Limits {
            timeout: Duration::from_secs(1),
            ..limits()
        },
    );
    assert_eq!(out.result.limit(), Some(LimitKind::Time));
    assert!(started.elapsed() < Duration::from_secs(5));
    let pid: i32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        !running(pid),
        "the background sleep {pid} survived the deadline"
    );
}

/// Whether `pid` is a live process (a zombie waiting for init to reap it is
/// dead: it was killed, only its exit status is left).
fn running(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            let state = stat
                .rsplit(')')
                .next()
                .unwrap_or("")
                .trim_start()
                .chars()
                .next();
            state != Some('Z') && state != Some('X')
        }
        Err(_) => false,
    }
}

#[test]
fn a_huge_timeout_is_no_crash() {
    // Regression: `now + timeout` overflowed `Instant` and panicked; and
    // once the engine's epoch had advanced, a deadline of u64::MAX ticks
    // overflowed wasmtime's `epoch + ticks` (a panic in debug builds).
    assert_eq!(ok("return 1"), json!(1));
    std::thread::sleep(Duration::from_millis(20));
    let out = run_with(
        "return 7",
        Limits {
            timeout: Duration::MAX,
            ..limits()
        },
    );
    assert_eq!(out.result, Outcome::Value(json!(7)));
}

#[test]
fn no_state_leaks_between_hooks() {
    assert_eq!(
        ok(
            "leaked = 'yes' string.leak = 1 _G.x = 2 local f = io.open('/mark', 'w') f:write('1') f:close() return 1"
        ),
        json!(1)
    );
    assert_eq!(
        ok("return {leaked == nil, string.leak == nil, x == nil, io.open('/mark') == nil}"),
        json!([true, true, true, true])
    );
}

#[test]
fn no_state_leaks_between_concurrent_hooks() {
    let threads: Vec<_> = (0..4)
        .map(|t| {
            std::thread::spawn(move || {
                for i in 0..25 {
                    let mark = format!("t{t}i{i}");
                    let script = format!(
                        "local seen = {{mine == nil, io.open('/mark') == nil}} mine = '{mark}' \
                         local f = assert(io.open('/mark', 'w')) f:write('{mark}') f:close() \
                         return {{seen[1], seen[2], mine, io.open('/mark'):read('a')}}"
                    );
                    let mut req = HookRequest::new(script, "t.lua")
                        .with_executor(Arc::new(LocalExecutor::new()));
                    req = req.with_limits(limits());
                    let out = runtime().run_hook(req);
                    assert_eq!(out.result, Outcome::Value(json!([true, true, mark, mark])));
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("thread");
    }
}
