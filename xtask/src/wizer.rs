//! Pre-initialize the guest core module with Wizer (`wasmtime-wizer`).
//!
//! Wizer instantiates the module, runs `_initialize` (libc constructors) and
//! then our init function [`INIT_FUNC`] (Lua state, libraries, sandbox), and
//! writes the resulting memory and globals back out as a new module with
//! `_initialize` and the init export removed.
//!
//! The snapshot must be the same on every machine, so init may call no
//! import at all: the guest's libc reaches the system only through WASI
//! 0.2 imports (`guest-lua/src/wasip1.c`; no environment, stdio dropped,
//! preopens asked for on the first file operation), and a call of any of
//! them, or of a `wit/hook.wit` host import, during init fails the build
//! with its name.

use anyhow::{Result, anyhow};
use std::future::Future;
use std::pin::pin;
use std::task::{Context as TaskContext, Poll, Waker};
use wasmtime::{Config, Engine, Linker, Module, Store};

/// The guest's init export (see guest-lua/src/runner.c).
pub const INIT_FUNC: &str = "lunabox-init";

/// Run Wizer on `core` and return the pre-initialized module.
pub fn preinitialize(core: &[u8]) -> Result<Vec<u8>> {
    let mut config = Config::new();
    config.wasm_exceptions(true);
    let engine = Engine::new(&config).map_err(|e| anyhow!("{e:?}"))?;
    let mut store = Store::new(&engine, ());
    let mut wizer = wasmtime_wizer::Wizer::new();
    wizer.init_func(INIT_FUNC);
    let fut = wizer.run(&mut store, core, async |store, module| {
        let linker = stub_linker(store.engine(), module)?;
        linker.instantiate_async(store, module).await
    });
    block_on(fut).map_err(|e| anyhow!("Wizer pre-initialization failed: {e:?}"))
}

/// A linker in which every import of `module` (the `wit/hook.wit` host
/// functions and the WASI 0.2 functions under `guest-lua/src/wasip1.c`)
/// fails with its name: init must call none of them, so the snapshot
/// cannot depend on a clock, randomness, a file or the host.
fn stub_linker(engine: &Engine, module: &Module) -> wasmtime::Result<Linker<()>> {
    let mut linker = Linker::new(engine);
    for import in module.imports() {
        let Some(ty) = import.ty().func().cloned() else {
            wasmtime::bail!(
                "unexpected non-function import {}::{}",
                import.module(),
                import.name()
            );
        };
        let what = format!("{}::{}", import.module(), import.name());
        linker.func_new(import.module(), import.name(), ty, move |_, _, _| {
            Err(wasmtime::format_err!(
                "the guest called import {what} during pre-initialization; the snapshot \
                 must not depend on it (move the call out of lunabox-init)"
            ))
        })?;
    }
    Ok(linker)
}

/// Drive a future that never waits on I/O (Wasmtime's async calls with no
/// async host functions) to completion on this thread.
pub fn block_on<F: Future>(fut: F) -> F::Output {
    let mut fut = pin!(fut);
    let mut cx = TaskContext::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
            return v;
        }
        std::thread::yield_now();
    }
}
