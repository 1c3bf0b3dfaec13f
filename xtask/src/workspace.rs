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

/// The directory holding Lua 5.4.9's `.c`/`.h` files.
pub fn lua_src_dir() -> Result<PathBuf> {
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
    let pkg = meta["packages"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| p["name"] == "lua-src" && p["version"] == LUA_SRC_VERSION)
        .with_context(|| {
            format!("package lua-src {LUA_SRC_VERSION} not in `cargo metadata` (is it still a dependency of xtask?)")
        })?;
    let manifest = pkg["manifest_path"]
        .as_str()
        .context("lua-src has no manifest_path in `cargo metadata`")?;
    let dir = Path::new(manifest)
        .parent()
        .context("lua-src manifest_path has no parent")?
        .join("lua-5.4.9");
    if !dir.join("lua.h").is_file() {
        bail!("{} does not contain lua.h", dir.display());
    }
    Ok(dir)
}
