//! Pre-initialize the guest core module with Wizer (`wasmtime-wizer`).
//!
//! Wizer instantiates the module, runs `_initialize` (libc constructors) and
//! then our init function [`INIT_FUNC`] (Lua state, libraries, sandbox), and
//! writes the resulting memory and globals back out as a new module with
//! `_initialize` and the init export removed.
//!
//! The snapshot must be the same on every machine, so the WASI imports the
//! init may call are deterministic stubs: no preopens, no arguments or
//! environment, clocks read 0, "random" bytes are zeros, output is dropped.
//! Any other WASI call, and any call of a `wit/hook.wit` host import, during
//! init fails the build with its name.

use anyhow::{Context, Result, anyhow, bail};
use std::future::Future;
use std::pin::pin;
use std::task::{Context as TaskContext, Poll, Waker};
use wasmtime::{Caller, Config, Engine, Extern, Linker, Module, Store, Val};

/// The guest's init export (see guest-lua/src/runner.c).
pub const INIT_FUNC: &str = "lunabox-init";

/// The WASI module name the core module imports from.
const WASI_P1: &str = "wasi_snapshot_preview1";

/// WASI errno values used by the stubs.
const ERRNO_SUCCESS: i32 = 0;
const ERRNO_BADF: i32 = 8;

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

/// A linker holding a deterministic stub for every WASI import of `module`.
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
        if import.module() != WASI_P1 {
            // The `wit/hook.wit` host imports: init must never call them.
            let what = format!("{}::{}", import.module(), import.name());
            linker.func_new(import.module(), import.name(), ty, move |_, _, _| {
                Err(wasmtime::format_err!(
                    "the guest called host import {what} during pre-initialization"
                ))
            })?;
            continue;
        }
        let name = import.name().to_string();
        linker.func_new(
            WASI_P1,
            import.name(),
            ty,
            move |mut caller, params, results| {
                let errno =
                    stub(&name, &mut caller, params).map_err(|e| wasmtime::format_err!("{e:#}"))?;
                results[0] = Val::I32(errno);
                Ok(())
            },
        )?;
    }
    Ok(linker)
}

fn arg(params: &[Val], i: usize) -> Result<u32> {
    match params.get(i) {
        Some(Val::I32(v)) => Ok(*v as u32),
        _ => bail!("bad argument {i}"),
    }
}

fn memory<'a>(caller: &'a mut Caller<'_, ()>) -> Result<&'a mut [u8]> {
    match caller.get_export("memory") {
        Some(Extern::Memory(m)) => Ok(m.data_mut(caller)),
        _ => bail!("the guest exports no memory"),
    }
}

fn write(caller: &mut Caller<'_, ()>, ptr: u32, bytes: &[u8]) -> Result<()> {
    let mem = memory(caller)?;
    let start = ptr as usize;
    let dst = mem
        .get_mut(start..start + bytes.len())
        .context("WASI stub: pointer out of bounds")?;
    dst.copy_from_slice(bytes);
    Ok(())
}

fn read_u32(caller: &mut Caller<'_, ()>, ptr: u32) -> Result<u32> {
    let mem = memory(caller)?;
    let start = ptr as usize;
    let b = mem
        .get(start..start + 4)
        .context("WASI stub: pointer out of bounds")?;
    Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

/// The deterministic behaviour of one WASI function during init.
fn stub(name: &str, caller: &mut Caller<'_, ()>, params: &[Val]) -> Result<i32> {
    match name {
        // No preopened directories, no valid descriptors to inspect: the
        // real preopens are looked up by the guest on its first hook.
        "fd_prestat_get" | "fd_prestat_dir_name" | "fd_fdstat_get" | "fd_filestat_get" => {
            Ok(ERRNO_BADF)
        }
        "args_sizes_get" | "environ_sizes_get" => {
            write(caller, arg(params, 0)?, &0u32.to_le_bytes())?;
            write(caller, arg(params, 1)?, &0u32.to_le_bytes())?;
            Ok(ERRNO_SUCCESS)
        }
        "args_get" | "environ_get" => Ok(ERRNO_SUCCESS),
        "clock_time_get" => {
            // (id: i32, precision: i64, out: i32)
            let out = match params.get(2) {
                Some(Val::I32(v)) => *v as u32,
                _ => bail!("bad clock_time_get arguments"),
            };
            write(caller, out, &0u64.to_le_bytes())?;
            Ok(ERRNO_SUCCESS)
        }
        "clock_res_get" => {
            write(caller, arg(params, 1)?, &1u64.to_le_bytes())?;
            Ok(ERRNO_SUCCESS)
        }
        "random_get" => {
            let (ptr, len) = (arg(params, 0)?, arg(params, 1)?);
            write(caller, ptr, &vec![0u8; len as usize])?;
            Ok(ERRNO_SUCCESS)
        }
        "fd_write" => {
            // Drop the bytes but report them written.
            let (iovs, n, out) = (arg(params, 1)?, arg(params, 2)?, arg(params, 3)?);
            let mut total = 0u32;
            for i in 0..n {
                total = total.wrapping_add(read_u32(caller, iovs + i * 8 + 4)?);
            }
            write(caller, out, &total.to_le_bytes())?;
            Ok(ERRNO_SUCCESS)
        }
        _ => bail!(
            "the guest called WASI `{name}` during pre-initialization; if that is \
             intended, give it a deterministic stub in xtask/src/wizer.rs"
        ),
    }
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
