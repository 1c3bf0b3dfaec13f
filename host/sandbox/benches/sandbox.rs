//! Sandbox benchmark: lunabox's WebAssembly sandbox against native Lua 5.4
//! (mlua) measured in the same run. Prints a table and, last, one JSON line.
//!
//! `cargo bench --bench sandbox` (set `LUNABOX_BENCH_QUICK=1` for fewer
//! iterations). Library backtraces are turned off as the `lunabox` command
//! turns them off (`quiet_library_backtraces`).

#[path = "common/native.rs"]
mod native;

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use lunabox_run::executors::local::LocalExecutor;
use lunabox_sandbox::{HookRequest, Limits, Outcome, Runtime, RuntimeConfig};
use serde_json::json;

struct Row {
    name: &'static str,
    unit: &'static str,
    sandbox: Summary,
    native: Summary,
    target: Option<f64>,
}

#[derive(Clone, Copy)]
struct Summary {
    p50: f64,
    p95: f64,
}

fn summarize(mut xs: Vec<f64>) -> Summary {
    xs.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let at = |q: f64| xs[((xs.len() - 1) as f64 * q).round() as usize];
    Summary {
        p50: at(0.5),
        p95: at(0.95),
    }
}

fn time_n(n: usize, mut f: impl FnMut()) -> Vec<f64> {
    (0..n)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64() * 1e6
        })
        .collect()
}

/// Time `a` and `b` alternately, `n` times each, so that drift in the
/// machine's load (this is a shared 2-core machine) hits both sides alike.
fn interleaved(n: usize, mut a: impl FnMut(), mut b: impl FnMut()) -> (Vec<f64>, Vec<f64>) {
    let (mut xs, mut ys) = (Vec::with_capacity(n), Vec::with_capacity(n));
    for _ in 0..n {
        xs.extend(time_n(1, &mut a));
        ys.extend(time_n(1, &mut b));
    }
    (xs, ys)
}

fn hook(runtime: &Runtime, script: &str) -> Outcome {
    let mut req =
        HookRequest::new(script, "bench.lua").with_executor(Arc::new(LocalExecutor::new()));
    req = req.with_limits(Limits {
        timeout: Duration::from_secs(120),
        ..Limits::default()
    });
    runtime.run_hook(req).result
}

fn native(script: &str) -> mlua::Value {
    let lua = native::fresh_state();
    lua.load(script)
        .set_name("bench.lua")
        .eval::<mlua::Value>()
        .expect("native chunk")
}

fn main() {
    // As the `lunabox` command does: library errors (each wasm throw) do not
    // capture Rust backtraces.
    // SAFETY: first thing in main, before any other thread exists.
    unsafe { lunabox_sandbox::quiet_library_backtraces() };
    let quick = std::env::var_os("LUNABOX_BENCH_QUICK").is_some();
    let n = if quick { 200 } else { 2000 };
    let runtime = Runtime::new(RuntimeConfig {
        max_concurrent_hooks: 4,
        ..RuntimeConfig::default()
    })
    .expect("runtime");
    let mut rows = Vec::new();

    // 1. Cold start of an isolated hook: fresh instance, Lua ready, trivial
    //    chunk returning a small table; native: a fresh mlua state, same chunk.
    let small = "return { status = 'ok', n = 1 }";
    assert_eq!(
        hook(&runtime, small),
        Outcome::Value(json!({"status": "ok", "n": 1}))
    );
    for _ in 0..50 {
        black_box(hook(&runtime, small));
        black_box(native(small));
    }
    let (s, nat) = interleaved(
        n,
        || {
            black_box(hook(&runtime, small));
        },
        || {
            black_box(native(small));
        },
    );
    rows.push(Row {
        name: "cold start, trivial hook",
        unit: "us",
        sandbox: summarize(s),
        native: summarize(nat),
        target: Some(1.5),
    });

    // 2. CPU-bound Lua: fib(27).
    let fib = "local function fib(n) if n < 2 then return n end return fib(n-1) + fib(n-2) end return fib(27)";
    let reps = if quick { 5 } else { 30 };
    let (s, nat) = interleaved(
        reps,
        || assert_eq!(hook(&runtime, fib), Outcome::Value(json!(196418))),
        || {
            black_box(native(fib));
        },
    );
    rows.push(Row {
        name: "fib(27)",
        unit: "us",
        sandbox: summarize(s),
        native: summarize(nat),
        target: Some(2.0),
    });

    // 3. pcall/error and coroutine round trips, per round trip.
    let iters = 20_000;
    let pcall = format!(
        "local n = 0 for i = 1, {iters} do if not pcall(error, 'x') then n = n + 1 end end return n"
    );
    let co = format!(
        "local co = coroutine.wrap(function() while true do coroutine.yield(1) end end) local s = 0 for i = 1, {iters} do s = s + co() end return s"
    );
    for (name, script) in [
        ("pcall(error) round trip", &pcall),
        ("coroutine yield/resume", &co),
    ] {
        let per = |v: Vec<f64>| v.into_iter().map(|x| x / iters as f64).collect::<Vec<_>>();
        let (s, nat) = interleaved(
            reps,
            || {
                black_box(hook(&runtime, script));
            },
            || {
                black_box(native(script));
            },
        );
        let (s, nat) = (per(s), per(nat));
        rows.push(Row {
            name,
            unit: "us",
            sandbox: summarize(s),
            native: summarize(nat),
            target: None,
        });
    }

    // 4. RunBash `true` against spawning `bash -c true` directly, per call.
    let calls = 20;
    let runbash = format!("for i = 1, {calls} do RunBash {{ command = 'true' }} end");
    let spawn_reps = if quick { 10 } else { 40 };
    // A hook making `calls` RunBash calls, against `calls` direct spawns of
    // `bash -c true`; both per call.
    let (s, nat) = interleaved(
        spawn_reps,
        || assert_eq!(hook(&runtime, &runbash), Outcome::Value(json!(null))),
        || {
            for _ in 0..calls {
                let st = std::process::Command::new("bash")
                    .arg("-c")
                    .arg("true")
                    .status()
                    .expect("bash");
                assert!(st.success());
            }
        },
    );
    let per_call = |v: Vec<f64>| v.into_iter().map(|x| x / calls as f64).collect::<Vec<_>>();
    let (s, nat) = (per_call(s), per_call(nat));
    rows.push(Row {
        name: "RunBash true (per call)",
        unit: "us",
        sandbox: summarize(s),
        native: summarize(nat),
        target: Some(1.2),
    });

    println!(
        "{:<28} {:>12} {:>12} {:>12} {:>12} {:>8} {:>8}",
        "case", "sandbox p50", "sandbox p95", "native p50", "native p95", "ratio", "target"
    );
    let mut out = Vec::new();
    for r in &rows {
        let ratio = r.sandbox.p50 / r.native.p50;
        println!(
            "{:<28} {:>10.1}{} {:>10.1}{} {:>10.1}{} {:>10.1}{} {:>8.2} {:>8}",
            r.name,
            r.sandbox.p50,
            r.unit,
            r.sandbox.p95,
            r.unit,
            r.native.p50,
            r.unit,
            r.native.p95,
            r.unit,
            ratio,
            r.target
                .map(|t| format!("<={t}"))
                .unwrap_or_else(|| "-".into())
        );
        out.push(json!({
            "case": r.name, "unit": r.unit,
            "sandbox": {"p50": r.sandbox.p50, "p95": r.sandbox.p95},
            "native": {"p50": r.native.p50, "p95": r.native.p95},
            "ratio": ratio, "target": r.target,
            "met": r.target.map(|t| ratio <= t),
        }));
    }
    println!("{}", json!({ "bench": "sandbox", "rows": out }));
}
