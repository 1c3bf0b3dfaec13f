//! `cargo xtask`: project tasks that are not part of the product.
//!
//! - `cargo xtask deps [--test]`: check (and as root install) the apt packages
//!   the guest build needs; `--test` also ensures `rsync` and `expect`.
//! - `cargo xtask guest [--check]`: rebuild `guest-lua/lunabox-guest.wasm`, or
//!   check that the committed file is byte-identical to a fresh build.
//! - `cargo xtask guest-smoke FILE.lua`: run a script in the built guest with
//!   stub host imports (a development harness).

mod bindings;

use anyhow::Result;

fn main() -> Result<()> {
    let out = std::env::temp_dir().join("lunabox-bindings-probe");
    bindings::generate(std::path::Path::new("wit/hook.wit"), &out)?;
    println!("{}", out.display());
    Ok(())
}
