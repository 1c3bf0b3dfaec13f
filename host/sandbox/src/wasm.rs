//! The wasmtime side: one `Engine` per flavour (plain, or fuel-metered),
//! configured for the guest (exceptions for Lua's error handling, epochs for
//! deadlines, the pooling allocator), the linker with WASI and our imports,
//! and the epoch ticker thread.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use wasmtime::component::{InstancePre, Linker};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use super::RuntimeConfig;
use super::bindings::{Hook, HookPre};
use super::state::HookState;

/// How often the epoch advances: the granularity of wall-clock deadlines.
pub const EPOCH_TICK: Duration = Duration::from_millis(2);

/// Bytes of each pooled linear memory kept mapped between hooks (only
/// what a hook dirtied is reset), when the kernel has PAGEMAP_SCAN.
const KEEP_RESIDENT: usize = 16 << 20;

/// An engine and the guest ready to instantiate in it.
pub struct Flavor {
    pub engine: Engine,
    pub pre: HookPre<HookState>,
    stop: Arc<AtomicBool>,
}

impl Drop for Flavor {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn engine_config(config: &RuntimeConfig, metered: bool) -> Config {
    let mut c = Config::new();
    c.wasm_exceptions(true)
        .wasm_component_model(true)
        .epoch_interruption(true)
        .consume_fuel(metered)
        .max_wasm_stack(2 << 20)
        // Hooks run on fibers (the async API): each fiber's stack must hold
        // the wasm stack and the host functions called from it.
        .async_stack_size(4 << 20)
        // Memories are reserved at their 4 GiB maximum and never move, so
        // compiled code may keep the memory base in a register.
        .memory_may_move(false)
        .cranelift_opt_level(wasmtime::OptLevel::Speed);
    if config.pooling {
        let n = config.max_concurrent_hooks.max(1);
        let mut pool = PoolingAllocationConfig::new();
        pool.total_component_instances(n)
            .total_core_instances(n * 8)
            .max_core_instances_per_component(8)
            .total_memories(n * 2)
            .max_memories_per_component(2)
            .total_tables(n * 4)
            .max_tables_per_component(4)
            .total_gc_heaps(n)
            .max_memory_size(config.max_memory as usize)
            .total_stacks(n)
            .async_stack_keep_resident(64 << 10)
            .max_unused_warm_slots(n.min(16));
        if PoolingAllocationConfig::is_pagemap_scan_available() {
            // Reset a used memory by copying back only the pages the hook
            // dirtied, and keep them mapped: the next hook in that slot takes
            // no page faults on them. This halves a short hook's start-up.
            // Without PAGEMAP_SCAN (kernels before 6.7) keeping memory
            // resident would mean a memset of all of it, so it stays off.
            pool.pagemap_scan(wasmtime::Enabled::Yes)
                .linear_memory_keep_resident(KEEP_RESIDENT)
                .table_keep_resident(1 << 16);
        }
        c.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    }
    c
}

impl Flavor {
    pub fn new(
        config: &RuntimeConfig,
        metered: bool,
        wasm: &[u8],
        cache_dir: Option<&Path>,
    ) -> anyhow::Result<Flavor> {
        let engine = Engine::new(&engine_config(config, metered))
            .map_err(|e| anyhow::anyhow!("cannot set up wasmtime: {e:#}"))?;
        let component = super::cache::load_or_compile(&engine, wasm, cache_dir)?;
        let mut linker: Linker<HookState> = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)
            .map_err(|e| anyhow::anyhow!("{e:#}"))?;
        super::scratch_quota::add_to_linker(&mut linker).map_err(|e| anyhow::anyhow!("{e:#}"))?;
        Hook::add_to_linker::<HookState, wasmtime::component::HasSelf<HookState>>(
            &mut linker,
            |s| s,
        )
        .map_err(|e| anyhow::anyhow!("{e:#}"))?;
        let instance_pre: InstancePre<HookState> = linker
            .instantiate_pre(&component)
            .map_err(|e| anyhow::anyhow!("the guest component does not fit this host: {e:#}"))?;
        let pre = HookPre::new(instance_pre)
            .map_err(|e| anyhow::anyhow!("the guest component does not fit this host: {e:#}"))?;
        let stop = Arc::new(AtomicBool::new(false));
        start_ticker(engine.weak(), stop.clone())?;
        Ok(Flavor { engine, pre, stop })
    }
}

fn start_ticker(engine: wasmtime::EngineWeak, stop: Arc<AtomicBool>) -> anyhow::Result<()> {
    std::thread::Builder::new()
        .name("lunabox-epoch".into())
        .spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(EPOCH_TICK);
                match engine.upgrade() {
                    Some(e) => e.increment_epoch(),
                    None => break,
                }
            }
        })?;
    Ok(())
}
