//! Multi-tenant benchmark: what an embedder running many tenants' hooks in
//! one process gets, measured in one run against baselines from the same
//! run. Prints a table and, last, one JSON line.
//!
//! 1. Trivial-hook throughput (hooks/s) on 1 and 2 executor threads, against
//!    fresh native Lua states (mlua) doing the same work on as many threads:
//!    make a state, run the chunk, turn its result into JSON. Seven rounds
//!    alternate the two; the ratio printed is the median paired ratio.
//! 2. A quiet tenant's p99 hook latency while a noisy tenant floods
//!    CPU-bound hooks up to its quota (one hook in flight: half of this
//!    2-core machine), against the quiet tenant alone.
//! 3. Resident memory per in-flight trivial hook (many hooks admitted at
//!    once), and with 1,000 tenants' toolkits loaded.
//!
//! `cargo bench --bench tenants` (`LUNABOX_BENCH_QUICK=1` for fewer runs;
//! `LUNABOX_BENCH_ONLY=throughput|quiet|memory|tenants` for one part).

#[path = "common/native.rs"]
mod native;

use std::sync::Arc;
use std::time::{Duration, Instant};

use lunabox_sandbox::hook::{self, HookContext};
use lunabox_sandbox::{
    CancelToken, HookRequest, Limits, Outcome, Quota, Runtime, RuntimeConfig, Tenant,
};
use serde_json::{Value, json};

const TRIVIAL: &str = "return { status = 'ok', n = 1 }";

fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

fn tokio_rt(threads: usize) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()
        .expect("tokio")
}

fn trivial(tenant: &Tenant) -> HookRequest {
    HookRequest::new(TRIVIAL, "trivial.lua").with_tenant(tenant)
}

/// Hooks per second through `run_hook_async` on `threads` executor threads.
fn sandbox_throughput(runtime: &Arc<Runtime>, tenant: &Tenant, threads: usize, n: usize) -> f64 {
    let rt = tokio_rt(threads);
    rt.block_on(async {
        // Warm the pool's slots first.
        for _ in 0..32 {
            runtime.run_hook_async(trivial(tenant)).await;
        }
        let t0 = Instant::now();
        let per = n / threads / 4;
        let tasks: Vec<_> = (0..threads * 4)
            .map(|_| {
                let (runtime, tenant) = (runtime.clone(), tenant.clone());
                tokio::spawn(async move {
                    for _ in 0..per {
                        let o = runtime.run_hook_async(trivial(&tenant)).await;
                        assert!(o.result.is_ok(), "{:?}", o.result);
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.expect("task");
        }
        (per * threads * 4) as f64 / t0.elapsed().as_secs_f64()
    })
}

fn native_once() -> Value {
    let lua = native::fresh_state();
    let v: mlua::Value = lua
        .load(TRIVIAL)
        .set_name("trivial.lua")
        .eval()
        .expect("chunk");
    serde_json::to_value(&v).expect("json")
}

/// Fresh native states per second on `threads` OS threads.
fn native_throughput(threads: usize, n: usize) -> f64 {
    for _ in 0..32 {
        native_once();
    }
    let per = n / threads;
    let t0 = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                for _ in 0..per {
                    std::hint::black_box(native_once());
                }
            });
        }
    });
    (per * threads) as f64 / t0.elapsed().as_secs_f64()
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(|a, b| a.partial_cmp(b).unwrap());
    xs[xs.len() / 2]
}

fn p99(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(|a, b| a.partial_cmp(b).unwrap());
    xs[((xs.len() - 1) as f64 * 0.99).round() as usize]
}

/// The quiet tenant's hook latencies (ms), one hook at a time.
async fn quiet_latencies(runtime: &Runtime, quiet: &Tenant, n: usize) -> Vec<f64> {
    let mut xs = Vec::with_capacity(n);
    for _ in 0..n {
        let t0 = Instant::now();
        let o = runtime.run_hook_async(trivial(quiet)).await;
        assert!(o.result.is_ok());
        xs.push(t0.elapsed().as_secs_f64() * 1e3);
    }
    xs
}

fn noisy_quiet(runtime: &Arc<Runtime>, n: usize) -> (f64, f64, u64) {
    let rt = tokio_rt(2);
    rt.block_on(async {
        let quiet = runtime.tenant("quiet", Quota::default());
        let noisy = runtime.tenant(
            "noisy",
            Quota {
                max_in_flight: 1,
                ..Quota::default()
            },
        );
        quiet_latencies(runtime, &quiet, 50).await;
        let alone = p99(quiet_latencies(runtime, &quiet, n).await);
        let stop = CancelToken::new();
        let flood: Vec<_> = (0..64)
            .map(|i| {
                let (runtime, noisy, stop) = (runtime.clone(), noisy.clone(), stop.clone());
                tokio::spawn(async move {
                    runtime
                        .run_hook_async(
                            HookRequest::new("while true do end", format!("noise{i}.lua"))
                                .with_tenant(&noisy)
                                .with_cancel(stop)
                                .with_limits(Limits {
                                    timeout: Duration::from_millis(50),
                                    ..Limits::default()
                                }),
                        )
                        .await
                })
            })
            .collect();
        while noisy.in_flight() == 0 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let noisy_lat = quiet_latencies(runtime, &quiet, n).await;
        let still_noisy = noisy.in_flight();
        stop.cancel();
        for t in flood {
            let _ = t.await;
        }
        assert!(
            still_noisy > 0,
            "the noise stopped before the quiet hooks did"
        );
        let noise_hooks = noisy.metrics().hooks_run;
        (alone, p99(noisy_lat), noise_hooks)
    })
}

/// Resident bytes per hook with `n` trivial hooks in flight at once (each
/// waiting at its first epoch yield in a spin, admitted and instantiated).
fn rss_per_in_flight(n: u32) -> f64 {
    let runtime = Arc::new(
        Runtime::new(RuntimeConfig {
            max_concurrent_hooks: n,
            max_memory: 64 << 20,
            ..RuntimeConfig::default()
        })
        .expect("runtime"),
    );
    let rt = tokio_rt(2);
    rt.block_on(async {
        let t = runtime.tenant("many", Quota::default());
        // Warm: touch the code and one slot.
        runtime.run_hook_async(trivial(&t)).await;
        let before = rss_bytes();
        let stop = CancelToken::new();
        let tasks: Vec<_> = (0..n)
            .map(|_| {
                let (runtime, t, stop) = (runtime.clone(), t.clone(), stop.clone());
                tokio::spawn(async move {
                    runtime
                        .run_hook_async(
                            HookRequest::new("while true do end", "held.lua")
                                .with_tenant(&t)
                                .with_cancel(stop),
                        )
                        .await
                })
            })
            .collect();
        while t.in_flight() < n {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        // Let every hook reach its loop.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let during = rss_bytes();
        stop.cancel();
        for task in tasks {
            assert_eq!(task.await.expect("task").result, Outcome::Cancelled);
        }
        during.saturating_sub(before) as f64 / f64::from(n)
    })
}

/// Resident bytes for `n` tenants, each with its own copy of the delphixdb
/// toolkit loaded and one status hook run.
fn rss_with_tenants(n: usize) -> (f64, f64) {
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let runtime = Arc::new(Runtime::new(RuntimeConfig::default()).expect("runtime"));
    let responses = Arc::new(
        lunabox_run::executors::scripted::ScriptedExecutor::from_json(
            &json!({"default": {"output": "ACTIVE"}}),
        )
        .expect("responses"),
    );
    let context = HookContext {
        parameters: Some(json!({})),
        config: Some(json!({"dbName": "prod"})),
        repository: Some(json!({"installPath": "/opt/db"})),
        source: Some(json!({"stagingEnvironment": "s", "stagingEnvironmentUser": "u"})),
        ..HookContext::default()
    };
    let status = "staged/status".parse().expect("hook");
    let rt = tokio_rt(2);
    let before = rss_bytes();
    let t0 = Instant::now();
    let kept = rt.block_on(async {
        let mut kept = Vec::with_capacity(n);
        for i in 0..n {
            let toolkit = Arc::new(
                lunabox_toolkit::load(&repo.join("toolkits/delphixdb"))
                    .expect("toolkit")
                    .toolkit,
            );
            let tenant = runtime.tenant(&format!("tenant{i}"), Quota::default());
            let request = hook::request(&toolkit, &status, &context, None)
                .expect("request")
                .with_executor(responses.clone())
                .with_tenant(&tenant);
            let o = runtime.run_hook_async(request).await;
            assert_eq!(o.result, Outcome::Value(json!("ACTIVE")));
            kept.push((toolkit, tenant));
        }
        kept
    });
    let took = t0.elapsed().as_secs_f64();
    let after = rss_bytes();
    drop(kept);
    (after.saturating_sub(before) as f64, took)
}

fn main() {
    unsafe { lunabox_sandbox::quiet_library_backtraces() };
    let quick = std::env::var_os("LUNABOX_BENCH_QUICK").is_some();
    let n = if quick { 3_000 } else { 35_000 };
    let runtime = Arc::new(
        Runtime::new(RuntimeConfig {
            max_concurrent_hooks: 64,
            ..RuntimeConfig::default()
        })
        .expect("runtime"),
    );
    let tenant = runtime.tenant("bench", Quota::default());

    println!(
        "{:<54} {:>12} {:>12} {:>8} {:>8}",
        "measure", "lunabox", "baseline", "ratio", "target"
    );
    let mut json_out = serde_json::Map::new();
    let mut row =
        |name: &str, key: &str, ours: f64, base: f64, ratio: f64, target: &str, unit: &str| {
            println!(
                "{name:<54} {ours:>10.1}{unit:<2} {base:>10.1}{unit:<2} {ratio:>8.2} {target:>8}"
            );
            json_out.insert(
                key.into(),
                json!({"lunabox": ours, "baseline": base, "ratio": ratio}),
            );
        };

    let only = std::env::var("LUNABOX_BENCH_ONLY").ok();
    let part = |name: &str| only.as_deref().is_none_or(|o| o == name);
    for threads in [1usize, 2].into_iter().filter(|_| part("throughput")) {
        // Rounds alternate the sandbox and the baseline, so a slow spell of
        // the machine (another VM on the host, frequency changes) lands on
        // both sides of a pair; the ratio is the median of the paired ratios.
        let rounds = if quick { 3 } else { 7 };
        let (mut ours, mut base, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..rounds {
            let o = sandbox_throughput(&runtime, &tenant, threads, n / rounds);
            let b = native_throughput(threads, n / rounds);
            ours.push(o);
            base.push(b);
            ratios.push(o / b);
        }
        row(
            &format!("trivial hooks/s, {threads} thread(s) (vs fresh mlua)"),
            &format!("throughput{threads}"),
            median(ours),
            median(base),
            median(ratios),
            ">=1.5",
            "",
        );
    }

    if part("quiet") {
        let (alone, noisy, noise_hooks) = noisy_quiet(&runtime, if quick { 300 } else { 2_000 });
        println!("noise: {noise_hooks} CPU-bound hooks ran during the quiet measurement");
        row(
            "quiet tenant p99 ms, noisy tenant at quota (vs alone)",
            "quietP99",
            noisy,
            alone,
            noisy / alone,
            "<=2",
            "ms",
        );
    }

    if part("memory") {
        let per_hook = rss_per_in_flight(if quick { 100 } else { 400 });
        row(
            "resident KiB per in-flight trivial hook",
            "rssPerHookKiB",
            per_hook / 1024.0,
            2048.0,
            per_hook / (2048.0 * 1024.0),
            "<1",
            "",
        );
    }

    if part("tenants") {
        let tenants = if quick { 200 } else { 1_000 };
        let (bytes, took) = rss_with_tenants(tenants);
        println!(
            "{tenants} tenants' toolkits loaded, one hook each: {:.1} MiB resident more ({:.1} KiB per tenant), {took:.2}s",
            bytes / (1 << 20) as f64,
            bytes / 1024.0 / tenants as f64
        );
        json_out.insert(
            "tenants".into(),
            json!({"count": tenants, "residentMiB": bytes / (1 << 20) as f64, "seconds": took}),
        );
    }
    println!("{}", Value::Object(json_out));
}
