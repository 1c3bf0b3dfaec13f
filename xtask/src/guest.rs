//! `cargo xtask guest [--check]`: rebuild `guest-lua/lunabox-guest.wasm`.
//!
//! Steps, all under `target/guest-lua/`: C bindings from `wit/hook.wit`
//! (wit-bindgen-c) -> compile and link Lua 5.4.9 + glue (clang-22) ->
//! pre-initialize (Wizer) -> componentize (wit-component). `--check` builds
//! into `target/` and fails unless the result is byte-identical to the
//! committed file.

use crate::{bindings, cc, componentize, deps, wizer, workspace};
use anyhow::{Context, Result, bail};
use std::path::PathBuf;
use std::time::Instant;

/// Build the component and return its bytes (also left in
/// `target/guest-lua/lunabox-guest.wasm`).
pub fn build() -> Result<Vec<u8>> {
    deps::ensure(deps::GUEST)?;
    let started = Instant::now();
    let root = workspace::root();
    let build_dir = workspace::build_dir();
    std::fs::create_dir_all(&build_dir)
        .with_context(|| format!("creating {}", build_dir.display()))?;
    let lua_dir = workspace::lua_src_dir()?;

    eprintln!("guest: generating C bindings from wit/hook.wit");
    let bindings_dir = build_dir.join("bindings");
    bindings::generate(&root.join("wit").join("hook.wit"), &bindings_dir)?;

    eprintln!(
        "guest: compiling Lua 5.4.9 ({}) and guest-lua/src",
        lua_dir.display()
    );
    let core_path = cc::build_core(&cc::Inputs {
        root: &root,
        lua_dir: &lua_dir,
        bindings_dir: &bindings_dir,
        build_dir: &build_dir,
    })?;
    let core =
        std::fs::read(&core_path).with_context(|| format!("reading {}", core_path.display()))?;

    eprintln!(
        "guest: pre-initializing with Wizer (init function `{}`)",
        wizer::INIT_FUNC
    );
    let wizened = wizer::preinitialize(&core)?;
    bindings::write_if_changed(&build_dir.join("core.wizer.wasm"), &wizened)?;

    eprintln!("guest: componentizing (world `{}`)", bindings::WORLD);
    let component = componentize::componentize(&wizened)?;
    let out = build_dir.join("lunabox-guest.wasm");
    std::fs::write(&out, &component).with_context(|| format!("writing {}", out.display()))?;
    eprintln!(
        "guest: {} bytes in {:.1}s -> {}",
        component.len(),
        started.elapsed().as_secs_f64(),
        out.display()
    );
    Ok(component)
}

/// `guest` command entry point.
pub fn run(args: &[String]) -> Result<()> {
    let mut check = false;
    for arg in args {
        match arg.as_str() {
            "--check" => check = true,
            "-h" | "--help" => {
                println!(
                    "usage: cargo xtask guest [--check]\n\n\
                     Rebuild guest-lua/lunabox-guest.wasm from source (Lua 5.4.9 from the\n\
                     lua-src crate + guest-lua/src, wit/hook.wit).\n  \
                     --check  build into target/guest-lua and fail unless it is\n           \
                     byte-identical to the committed guest-lua/lunabox-guest.wasm"
                );
                return Ok(());
            }
            other => bail!("guest: unknown argument `{other}` (try --help)"),
        }
    }
    let fresh = build()?;
    let committed_path: PathBuf = workspace::committed_component();
    if check {
        let committed = std::fs::read(&committed_path).with_context(|| {
            format!(
                "reading {} (build it with `cargo xtask guest`)",
                committed_path.display()
            )
        })?;
        if committed != fresh {
            let first = committed.iter().zip(&fresh).position(|(a, b)| a != b);
            bail!(
                "guest-lua/lunabox-guest.wasm is out of date: a fresh build differs \
                 (committed {} bytes, fresh {} bytes, first difference at {}).\n\
                 Rebuild it with `cargo xtask guest` and commit the result.",
                committed.len(),
                fresh.len(),
                first.map_or("the end of the shorter file".to_string(), |i| format!(
                    "byte {i}"
                )),
            );
        }
        eprintln!("guest: OK, guest-lua/lunabox-guest.wasm matches a fresh build");
    } else {
        bindings::write_if_changed(&committed_path, &fresh)?;
        eprintln!("guest: wrote {}", committed_path.display());
    }
    Ok(())
}
