//! Where things are: the workspace root, the build directory under
//! `target/`, and the Lua 5.4.9 sources inside the `lua-src` crate (found
//! with `cargo metadata`, so no Lua source is copied into the repository).

use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The `lua-src` version whose `lua-5.4.9` directory is built.
pub const LUA_SRC_VERSION: &str = "551.1.0";

/// The workspace root (the parent of `xtask/`).
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives one level below the workspace root")
        .to_path_buf()
}

/// `target/guest-lua`: every intermediate file of the guest build.
pub fn build_dir() -> PathBuf {
    root().join("target").join("guest-lua")
}

/// The committed component.
pub fn committed_component() -> PathBuf {
    root().join("guest-lua").join("lunabox-guest.wasm")
}

/// The `wasmtime-wasi` version whose WASI 0.2 WIT files the guest's
/// world imports from.
pub const WASMTIME_WASI_VERSION: &str = "48.0.8";

/// `cargo metadata` of the workspace, run once per xtask process (the
/// guest build asks it for two packages).
fn metadata() -> Result<&'static serde_json::Value> {
    static META: std::sync::OnceLock<serde_json::Value> = std::sync::OnceLock::new();
    if let Some(m) = META.get() {
        return Ok(m);
    }
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let out = Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--manifest-path"])
        .arg(root().join("Cargo.toml"))
        .output()
        .context("running `cargo metadata`")?;
    if !out.status.success() {
        bail!(
            "`cargo metadata` failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let meta: serde_json::Value =
        serde_json::from_slice(&out.stdout).context("parsing `cargo metadata` output")?;
    Ok(META.get_or_init(|| meta))
}

/// The directory of package `name` at `version` (a dependency of xtask),
/// from `cargo metadata`.
fn package_dir(name: &str, version: &str) -> Result<PathBuf> {
    let meta = metadata()?;
    let pkg = meta["packages"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| p["name"] == name && p["version"] == version)
        .with_context(|| {
            format!("package {name} {version} not in `cargo metadata` (is it still a dependency of xtask?)")
        })?;
    let manifest = pkg["manifest_path"]
        .as_str()
        .with_context(|| format!("{name} has no manifest_path in `cargo metadata`"))?;
    Ok(Path::new(manifest)
        .parent()
        .with_context(|| format!("{name} manifest_path has no parent"))?
        .to_path_buf())
}

/// The directory holding Lua 5.4.9's `.c`/`.h` files.
pub fn lua_src_dir() -> Result<PathBuf> {
    let dir = package_dir("lua-src", LUA_SRC_VERSION)?.join("lua-5.4.9");
    if !dir.join("lua.h").is_file() {
        bail!("{} does not contain lua.h", dir.display());
    }
    Ok(dir)
}

/// The WASI 0.2 WIT packages shipped in `wasmtime-wasi` (`io.wit`,
/// `clocks.wit`, ...), the interfaces the guest imports for files, clocks
/// and randomness.
pub fn wasi_wit_dir() -> Result<PathBuf> {
    let dir = package_dir("wasmtime-wasi", WASMTIME_WASI_VERSION)?
        .join("src")
        .join("p2")
        .join("wit")
        .join("deps");
    if !dir.join("filesystem.wit").is_file() {
        bail!("{} does not contain filesystem.wit", dir.display());
    }
    Ok(dir)
}
