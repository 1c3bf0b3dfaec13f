//! A multi-tenant embedder: one runtime, three tenants with their own
//! toolkits and quotas, run concurrently on tokio.
//!
//! - `acme` runs the shipped delphixdb toolkit's `staged/status` hook 200
//!   times against scripted responses, at most 8 at a time;
//! - `globex` floods CPU-bound hooks of its own toolkit, limited to a 25%
//!   CPU share and 2 hooks in flight;
//! - `initech` starts a hook that waits in a long Run call on this machine,
//!   and cancels it: the command is killed.
//!
//! Run it with `cargo run -p lunabox-sandbox --example multi_tenant`; it
//! exits non-zero if any tenant's hooks ended other than expected (CI runs
//! it).

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use lunabox_run::executors::local::LocalExecutor;
use lunabox_run::executors::scripted::ScriptedExecutor;
use lunabox_sandbox::hook::{self, HookContext};
use lunabox_sandbox::{
    CancelToken, CpuShare, HookRequest, LimitKind, Limits, Outcome, Quota, Runtime, RuntimeConfig,
};
use serde_json::json;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // SAFETY: first thing in main, before tokio's other threads run code of ours.
    unsafe { lunabox_sandbox::quiet_library_backtraces() };
    let runtime = Arc::new(Runtime::new(RuntimeConfig {
        max_concurrent_hooks: 16,
        max_memory: 256 << 20,
        ..RuntimeConfig::default()
    })?);
    let started = Instant::now();

    // acme: a real toolkit, loaded once and shared by all its hooks.
    let acme = runtime.tenant(
        "acme",
        Quota {
            max_in_flight: 8,
            ..Quota::default()
        },
    );
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let delphixdb = Arc::new(lunabox_toolkit::load(&repo.join("toolkits/delphixdb"))?.toolkit);
    let responses = Arc::new(ScriptedExecutor::from_json(
        &json!({"default": {"output": "ACTIVE"}}),
    )?);
    let context = HookContext {
        parameters: Some(json!({})),
        config: Some(json!({"dbName": "prod"})),
        repository: Some(json!({"installPath": "/opt/delphixdb/bin/delphixdb"})),
        source: Some(json!({"stagingEnvironment": "staging", "stagingEnvironmentUser": "delphix"})),
        ..HookContext::default()
    };
    let status = "staged/status".parse()?;
    let mut acme_tasks = Vec::new();
    for _ in 0..200 {
        let request = hook::request(&delphixdb, &status, &context, None)?
            .with_executor(responses.clone())
            .with_tenant(&acme);
        let rt = runtime.clone();
        acme_tasks.push(tokio::spawn(
            async move { rt.run_hook_async(request).await },
        ));
    }

    // globex: CPU-bound hooks, held to a quarter of one core.
    let globex = runtime.tenant(
        "globex",
        Quota {
            max_in_flight: 2,
            cpu: Some(CpuShare {
                per_window: Duration::from_millis(25),
                window: Duration::from_millis(100),
            }),
            ..Quota::default()
        },
    );
    let mut globex_tasks = Vec::new();
    for i in 0..6 {
        let request = HookRequest::new(
            "local n = 0 while true do n = n + 1 end",
            format!("globex/crunch{i}.lua"),
        )
        .with_tenant(&globex)
        .with_label("globex", "crunch")
        .with_limits(Limits {
            timeout: Duration::from_millis(400),
            ..Limits::default()
        });
        let rt = runtime.clone();
        globex_tasks.push(tokio::spawn(
            async move { rt.run_hook_async(request).await },
        ));
    }

    // initech: a hook waiting in a Run call, cancelled.
    let initech = runtime.tenant("initech", Quota::default());
    let token = CancelToken::new();
    let waiting = HookRequest::new(
        "RunBash{ command = 'sleep 30' } return 'woke'",
        "initech/wait.lua",
    )
    .with_executor(Arc::new(LocalExecutor::new()))
    .with_tenant(&initech)
    .with_cancel(token.clone());
    let rt = runtime.clone();
    let initech_task = tokio::spawn(async move { rt.run_hook_async(waiting).await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    token.cancel();

    let mut failures = Vec::new();
    for t in acme_tasks {
        let o = t.await?;
        if o.result != Outcome::Value(json!("ACTIVE")) {
            failures.push(format!("acme: {:?}", o.result));
        }
    }
    for t in globex_tasks {
        let o = t.await?;
        if o.result.limit() != Some(LimitKind::Time) {
            failures.push(format!("globex: {:?}", o.result));
        }
    }
    let o = initech_task.await?;
    if o.result != Outcome::Cancelled {
        failures.push(format!("initech: {:?}", o.result));
    }

    println!(
        "{:<8} {:>6} {:>22} {:>10} {:>9} {:>9}",
        "tenant", "hooks", "outcomes", "throttled", "p50 ms", "p99 ms"
    );
    for t in runtime.tenants() {
        let m = t.metrics();
        if m.hooks_run == 0 {
            continue;
        }
        let outcomes: Vec<String> = m.outcomes.iter().map(|(k, v)| format!("{k}={v}")).collect();
        println!(
            "{:<8} {:>6} {:>22} {:>8}ms {:>9.2} {:>9.2}",
            t.name(),
            m.hooks_run,
            outcomes.join(","),
            m.cpu_throttled_ms,
            m.duration_ms.p50,
            m.duration_ms.p99
        );
    }
    println!("all tenants done in {:.2?}", started.elapsed());
    if failures.is_empty() {
        Ok(())
    } else {
        Err(format!("unexpected outcomes:\n{}", failures.join("\n")).into())
    }
}
