//! The compiled-component cache: the guest component is compiled by
//! Cranelift once and kept on disk, keyed by the component's hash and the
//! engine's compatibility hash (which covers the wasmtime version and every
//! setting that changes the machine code).

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

/// Load the compiled component from `dir`, or compile it and store it there.
/// A cache file that cannot be read or written only costs a compile.
pub fn load_or_compile(
    engine: &Engine,
    wasm: &[u8],
    dir: Option<&Path>,
) -> anyhow::Result<Component> {
    let Some(dir) = dir else {
        return compile(engine, wasm);
    };
    let path = dir.join(cache_file_name(engine, wasm));
    if path.is_file() {
        // SAFETY: the file was written by `Component::serialize` of an engine
        // with the same compatibility hash (part of the file name) and is only
        // ever replaced by an atomic rename; wasmtime checks its header too.
        match unsafe { Component::deserialize_file(engine, &path) } {
            Ok(c) => return Ok(c),
            Err(e) => {
                tracing::warn!(path = %path.display(), "ignoring unreadable component cache: {e}")
            }
        }
    }
    let component = compile(engine, wasm)?;
    if let Err(e) = store(&component, dir, &path) {
        tracing::warn!(dir = %dir.display(), "cannot write the component cache (compiling on every start): {e}");
    }
    Ok(component)
}

fn compile(engine: &Engine, wasm: &[u8]) -> anyhow::Result<Component> {
    if wasm.is_empty() {
        anyhow::bail!(
            "the guest component (guest-lua/lunabox-guest.wasm) is empty in this build; run `cargo xtask guest` and rebuild lunabox"
        );
    }
    let _span = tracing::info_span!("compile_component", bytes = wasm.len()).entered();
    Component::new(engine, wasm)
        .map_err(|e| anyhow::anyhow!("cannot compile the guest component: {e:#}"))
}

fn store(component: &Component, dir: &Path, path: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    let bytes = component.serialize().map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    std::io::Write::write_all(&mut tmp, &bytes)?;
    tmp.persist(path)?;
    Ok(())
}

/// `guest-<component sha256 prefix>-<engine hash>.cwasm`.
pub fn cache_file_name(engine: &Engine, wasm: &[u8]) -> String {
    let digest = Sha256::digest(wasm);
    let mut h = std::collections::hash_map::DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut h);
    format!(
        "guest-{}-{:016x}.cwasm",
        &hex::encode(digest)[..16],
        h.finish()
    )
}

/// Where the cache lives by default: `$XDG_CACHE_HOME/lunabox` (or the
/// platform's cache directory); `None` when there is no home at all.
pub fn default_dir() -> Option<PathBuf> {
    dirs::cache_dir().map(|d| d.join("lunabox"))
}
