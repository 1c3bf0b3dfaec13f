//! The embedder's view, through the library API alone: a request grants
//! nothing it was not given; each tenant quota is reported as itself;
//! cancelling (by token, or by dropping the future) stops a CPU-bound hook
//! and one waiting in a Run call, whose command is gone afterwards; a tenant
//! flooding CPU-bound hooks does not stop another's trivial hooks.

use std::sync::Arc;
use std::time::{Duration, Instant};

use lunabox_run::executors::local::LocalExecutor;
use lunabox_run::executors::scripted::ScriptedExecutor;
use lunabox_sandbox::{
    CancelToken, CpuShare, HookRequest, LimitKind, Limits, Outcome, Quota, QuotaKind, Runtime,
    RuntimeConfig,
};
use serde_json::json;

fn runtime(slots: u32) -> Arc<Runtime> {
    Arc::new(
        Runtime::new(RuntimeConfig {
            max_concurrent_hooks: slots,
            max_memory: 256 << 20,
            ..RuntimeConfig::default()
        })
        .expect("runtime"),
    )
}

fn limits(timeout: Duration) -> Limits {
    Limits {
        timeout,
        memory: 32 << 20,
        ..Limits::default()
    }
}

const SPIN: &str = "while true do end";

fn quota_kind(o: &Outcome) -> Option<QuotaKind> {
    match o {
        Outcome::Quota(q) => Some(q.kind),
        _ => None,
    }
}

/// Waits until `cond` holds (a test step, not a timing claim).
async fn until(what: &str, cond: impl Fn() -> bool) {
    let t0 = Instant::now();
    while !cond() {
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn process_exists(pid: i32) -> bool {
    // SAFETY: signal 0 only checks that the process exists.
    unsafe { libc::kill(pid, 0) == 0 }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_grants_nothing_it_was_not_given() {
    let rt = runtime(4);
    let out = rt
        .run_hook_async(HookRequest::new(
            "return RunBash{ command = 'id' }",
            "deny.lua",
        ))
        .await;
    let message = out
        .result
        .message()
        .expect("the Run call must fail")
        .to_string();
    assert!(message.contains("no executor"), "{message}");
    assert!(
        message.contains("with_executor"),
        "names what to grant: {message}"
    );
    assert_eq!(
        out.transcript.len(),
        1,
        "the refused call is in the transcript"
    );

    let seen = rt
        .run_hook_async(HookRequest::new(
            "local n = 0; for _ in pairs(resources) do n = n + 1 end; \
             return { resources = n, parameters = parameters == nil, source = source == nil }",
            "globals.lua",
        ))
        .await;
    assert_eq!(
        seen.result,
        Outcome::Value(json!({"resources": 0, "parameters": true, "source": true}))
    );

    // Granted: the same call runs.
    let granted = rt
        .run_hook_async(
            HookRequest::new(
                "return RunBash{ command = 'printf %s \"$X\" > \"$DLPX_OUTPUT_FILE\"', variables = { X = '\"ok\"' }, outputSchema = { type = 'string' } }",
                "grant.lua",
            )
            .with_executor(Arc::new(LocalExecutor::new())),
        )
        .await;
    assert_eq!(granted.result, Outcome::Value(json!("ok")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_quota_is_reported_as_itself() {
    let rt = runtime(4);
    // Hooks in flight.
    let one = rt.tenant(
        "one-at-a-time",
        Quota {
            max_in_flight: 1,
            max_wait: Duration::ZERO,
            ..Quota::default()
        },
    );
    let token = CancelToken::new();
    let busy = {
        let (rt, one, token) = (rt.clone(), one.clone(), token.clone());
        tokio::spawn(async move {
            rt.run_hook_async(
                HookRequest::new(SPIN, "busy.lua")
                    .with_tenant(&one)
                    .with_cancel(token)
                    .with_limits(limits(Duration::from_secs(30))),
            )
            .await
        })
    };
    until("the first hook to be admitted", || one.in_flight() == 1).await;
    let refused = rt
        .run_hook_async(HookRequest::new("return 1", "second.lua").with_tenant(&one))
        .await;
    assert_eq!(
        quota_kind(&refused.result),
        Some(QuotaKind::Hooks),
        "{:?}",
        refused.result
    );
    assert!(refused.result.message().unwrap().contains("one-at-a-time"));
    token.cancel();
    assert_eq!(busy.await.unwrap().result, Outcome::Cancelled);

    // Memory: a hook whose memory limit is past the tenant's is refused at once.
    let small = rt.tenant(
        "small",
        Quota {
            max_memory: 16 << 20,
            ..Quota::default()
        },
    );
    let t0 = Instant::now();
    let refused = rt
        .run_hook_async(
            HookRequest::new("return 1", "big.lua")
                .with_tenant(&small)
                .with_limits(limits(Duration::from_secs(5))),
        )
        .await;
    assert_eq!(quota_kind(&refused.result), Some(QuotaKind::Memory));
    assert!(
        t0.elapsed() < Duration::from_secs(5),
        "refused without waiting"
    );

    // Run calls per minute.
    let chatty = rt.tenant(
        "chatty",
        Quota {
            run_calls_per_minute: Some(2),
            ..Quota::default()
        },
    );
    let responses = ScriptedExecutor::from_json(&json!({"default": {"output": 1}})).unwrap();
    let out = rt
        .run_hook_async(
            HookRequest::new(
                "for i = 1, 3 do RunBash{ command = 'x' } end return 'done'",
                "calls.lua",
            )
            .with_tenant(&chatty)
            .with_executor(Arc::new(responses)),
        )
        .await;
    assert_eq!(
        quota_kind(&out.result),
        Some(QuotaKind::RunCalls),
        "{:?}",
        out.result
    );
    assert_eq!(
        out.transcript.len(),
        2,
        "two calls ran before the third was refused"
    );
    assert_eq!(chatty.metrics().quota_hits.get("run-calls"), Some(&1));

    // The runtime's slots, after waiting.
    let tiny = runtime(1);
    let a = tiny.tenant("a", Quota::default());
    let b = tiny.tenant(
        "b",
        Quota {
            max_wait: Duration::from_millis(100),
            ..Quota::default()
        },
    );
    let token = CancelToken::new();
    let hog = {
        let (rt, a, token) = (tiny.clone(), a.clone(), token.clone());
        tokio::spawn(async move {
            rt.run_hook_async(
                HookRequest::new(SPIN, "hog.lua")
                    .with_tenant(&a)
                    .with_cancel(token),
            )
            .await
        })
    };
    until("the hog to be admitted", || a.in_flight() == 1).await;
    let refused = tiny
        .run_hook_async(HookRequest::new("return 1", "late.lua").with_tenant(&b))
        .await;
    assert_eq!(quota_kind(&refused.result), Some(QuotaKind::Slots));
    assert!(refused.result.message().unwrap().contains("after waiting"));
    token.cancel();
    assert_eq!(hog.await.unwrap().result, Outcome::Cancelled);

    // CPU share: a tenant over its share is paused, not allowed to run on.
    let slow = rt.tenant(
        "slow",
        Quota {
            cpu: Some(CpuShare {
                per_window: Duration::from_millis(10),
                window: Duration::from_millis(100),
            }),
            ..Quota::default()
        },
    );
    let out = rt
        .run_hook_async(
            HookRequest::new(SPIN, "throttled.lua")
                .with_tenant(&slow)
                .with_limits(limits(Duration::from_millis(600))),
        )
        .await;
    assert_eq!(out.result.limit(), Some(LimitKind::Time));
    let m = slow.metrics();
    assert!(
        m.cpu_throttled_ms >= 300,
        "a 10% share of 600 ms leaves most of it paused: {m:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_stops_a_cpu_bound_hook_promptly() {
    let rt = runtime(4);
    let token = CancelToken::new();
    let task = {
        let (rt, token) = (rt.clone(), token.clone());
        tokio::spawn(async move {
            rt.run_hook_async(
                HookRequest::new(SPIN, "spin.lua")
                    .with_cancel(token)
                    .with_limits(limits(Duration::from_secs(60))),
            )
            .await
        })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    let t0 = Instant::now();
    token.cancel();
    let out = task.await.unwrap();
    assert_eq!(out.result, Outcome::Cancelled);
    assert!(
        t0.elapsed() < Duration::from_secs(2),
        "took {:?}",
        t0.elapsed()
    );
    assert_eq!(out.result.exit_status(), 4);
    assert_eq!(rt.metrics().outcomes.get("cancelled"), Some(&1));
}

/// A hook waiting in a Run call whose command records its pid.
fn sleeper(pidfile: &std::path::Path) -> HookRequest {
    HookRequest::new(
        format!(
            "return RunBash{{ command = 'echo $$ > {}; exec sleep 300' }}",
            pidfile.display()
        ),
        "sleeper.lua",
    )
    .with_executor(Arc::new(LocalExecutor::new()))
    .with_limits(limits(Duration::from_secs(120)))
}

async fn pid_of(pidfile: &std::path::Path) -> i32 {
    until("the command to start", || {
        std::fs::read_to_string(pidfile).is_ok_and(|s| s.trim().parse::<i32>().is_ok())
    })
    .await;
    std::fs::read_to_string(pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_a_hook_in_a_run_call_kills_its_command() {
    let rt = runtime(4);
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("pid");
    let token = CancelToken::new();
    let task = {
        let (rt, req) = (rt.clone(), sleeper(&pidfile).with_cancel(token.clone()));
        tokio::spawn(async move { rt.run_hook_async(req).await })
    };
    let pid = pid_of(&pidfile).await;
    assert!(process_exists(pid));
    token.cancel();
    let out = task.await.unwrap();
    assert_eq!(out.result, Outcome::Cancelled, "{:?}", out.result);
    until("the command to be gone", || !process_exists(pid)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_future_cancels_the_hook_and_its_command() {
    let rt = runtime(4);
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("pid");
    let task = {
        let (rt, req) = (rt.clone(), sleeper(&pidfile));
        tokio::spawn(async move { rt.run_hook_async(req).await })
    };
    let pid = pid_of(&pidfile).await;
    task.abort();
    assert!(task.await.unwrap_err().is_cancelled());
    until("the command to be gone", || !process_exists(pid)).await;
    // And a CPU-bound hook, through a timeout around the future.
    let spin = rt.run_hook_async(HookRequest::new(SPIN, "spin.lua"));
    assert!(
        tokio::time::timeout(Duration::from_millis(100), spin)
            .await
            .is_err()
    );
    until("the slot to be free", || rt.tenants()[0].in_flight() == 0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_noisy_tenant_does_not_stop_a_quiet_one() {
    let rt = runtime(8);
    let noisy = rt.tenant(
        "noisy",
        Quota {
            max_in_flight: 4,
            ..Quota::default()
        },
    );
    let quiet = rt.tenant("quiet", Quota::default());
    // 40 CPU-bound hooks queued: four run at a time, each until its 300 ms
    // deadline, on both executor threads.
    let flood: Vec<_> = (0..40)
        .map(|i| {
            let (rt, noisy) = (rt.clone(), noisy.clone());
            tokio::spawn(async move {
                rt.run_hook_async(
                    HookRequest::new(SPIN, format!("noise{i}.lua"))
                        .with_tenant(&noisy)
                        .with_limits(limits(Duration::from_millis(300))),
                )
                .await
            })
        })
        .collect();
    until("the noise to fill its quota", || noisy.in_flight() == 4).await;
    let mut worst = Duration::ZERO;
    for i in 0..50 {
        let t0 = Instant::now();
        let out = rt
            .run_hook_async(
                HookRequest::new(format!("return {i}"), "quiet.lua").with_tenant(&quiet),
            )
            .await;
        assert_eq!(out.result, Outcome::Value(json!(i)));
        worst = worst.max(t0.elapsed());
    }
    assert!(noisy.in_flight() > 0, "the noise ran all along");
    // Generous: a quiet hook takes about a millisecond alone; a quiet hook
    // behind the noise would wait whole 300 ms deadlines.
    assert!(
        worst < Duration::from_millis(250),
        "worst quiet hook took {worst:?}"
    );
    for t in flood {
        assert_eq!(t.await.unwrap().result.limit(), Some(LimitKind::Time));
    }
    assert_eq!(quiet.metrics().hooks_run, 50);
    assert_eq!(noisy.metrics().limit_hits.get("time"), Some(&40));
}
