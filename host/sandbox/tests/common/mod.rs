//! Shared set-up for the sandbox tests: one runtime per test binary, and a
//! helper that runs a chunk with given limits.

#![allow(dead_code)]

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use lunabox_run::executors::local::LocalExecutor;
use lunabox_sandbox::{HookOutcome, HookRequest, Limits, Outcome, Runtime, RuntimeConfig};

pub fn runtime() -> &'static Runtime {
    static RT: OnceLock<Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        Runtime::new(RuntimeConfig {
            max_concurrent_hooks: 16,
            max_memory: 512 << 20,
            ..RuntimeConfig::default()
        })
        .expect("runtime")
    })
}

pub fn limits() -> Limits {
    Limits {
        timeout: Duration::from_secs(10),
        memory: 64 << 20,
        ..Limits::default()
    }
}

pub fn run_with(script: &str, limits: Limits) -> HookOutcome {
    let mut req =
        HookRequest::new(script, "test.lua").with_executor(Arc::new(LocalExecutor::new()));
    req = req.with_limits(limits);
    runtime().run_hook(req)
}

pub fn run(script: &str) -> HookOutcome {
    run_with(script, limits())
}

pub fn run_globals(script: &str, globals: serde_json::Value) -> HookOutcome {
    let mut req =
        HookRequest::new(script, "test.lua").with_executor(Arc::new(LocalExecutor::new()));
    req = req.with_limits(limits());
    req = req.with_globals(globals.as_object().expect("object").clone());
    runtime().run_hook(req)
}

/// The returned value, or a panic showing what happened instead.
#[track_caller]
pub fn ok(script: &str) -> serde_json::Value {
    match run(script).result {
        Outcome::Value(v) => v,
        other => panic!("expected a value from {script:?}, got {other:?}"),
    }
}

/// The error message, or a panic showing what happened instead.
#[track_caller]
pub fn err(script: &str) -> String {
    match run(script).result {
        Outcome::Error(e) => e.message,
        other => panic!("expected an error from {script:?}, got {other:?}"),
    }
}
