//! C bindings for the guest: runs `wit-bindgen-c` (as a library) on
//! `wit/hook.wit`, world `hook`, and writes `hook.h`, `hook.c` and
//! `hook_component_type.o` into a build directory. Nothing here is committed.

use anyhow::{Context, Result};
use std::path::Path;

/// The world the guest implements.
pub const WORLD: &str = "hook";

/// The world the guest module is built against: `lunabox:hook/hook` and
/// the WASI 0.2 interfaces that `guest-lua/src/wasip1.c` makes libc's
/// files, clocks and randomness of. The component imports only the
/// functions the module calls.
const GUEST_WORLD: &str = "package lunabox:guest@0.1.0;

world hook {
    include lunabox:hook/hook@0.1.0;
    import wasi:filesystem/types@0.2.12;
    import wasi:filesystem/preopens@0.2.12;
    import wasi:clocks/wall-clock@0.2.12;
    import wasi:clocks/monotonic-clock@0.2.12;
    import wasi:random/random@0.2.12;
}
";

/// The WASI packages the guest world needs, in dependency order (files in
/// `wasmtime-wasi`'s WIT directory).
const WASI_PACKAGES: &[&str] = &["io.wit", "clocks.wit", "random.wit", "filesystem.wit"];

/// Parse `wit/hook.wit`, the WASI packages and the guest world into a
/// resolve, and select the guest's `hook` world.
///
/// Every file is pushed by its contents under a fixed relative name so that
/// no absolute path can reach the generated output.
pub fn load_world(wit_file: &Path) -> Result<(wit_parser::Resolve, wit_parser::WorldId)> {
    let mut resolve = wit_parser::Resolve::default();
    let wasi = crate::workspace::wasi_wit_dir()?;
    for name in WASI_PACKAGES {
        let path = wasi.join(name);
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        resolve
            .push_str(format!("wasi-{name}"), &text)
            .with_context(|| format!("parsing {}", path.display()))?;
    }
    let text = std::fs::read_to_string(wit_file)
        .with_context(|| format!("reading {}", wit_file.display()))?;
    resolve
        .push_str("hook.wit", &text)
        .with_context(|| format!("parsing {}", wit_file.display()))?;
    let pkg = resolve
        .push_str("guest.wit", GUEST_WORLD)
        .context("parsing the guest world (xtask/src/bindings.rs)")?;
    let world = resolve
        .select_world(&[pkg], Some(WORLD))
        .context("selecting the guest world `hook`")?;
    Ok((resolve, world))
}

/// Generate the C bindings for world `hook` into `out_dir`.
pub fn generate(wit_file: &Path, out_dir: &Path) -> Result<()> {
    let (mut resolve, world) = load_world(wit_file)?;
    let mut files = wit_bindgen_core::Files::default();
    let opts = wit_bindgen_c::Opts::default();
    opts.build()
        .generate(&mut resolve, world, &mut files)
        .context("wit-bindgen-c failed to generate the guest bindings")?;
    std::fs::create_dir_all(out_dir).with_context(|| format!("creating {}", out_dir.display()))?;
    for (name, contents) in files.iter() {
        let path = out_dir.join(name);
        write_if_changed(&path, contents)?;
    }
    Ok(())
}

/// Write `contents` to `path` unless it already holds exactly that.
pub fn write_if_changed(path: &Path, contents: &[u8]) -> Result<()> {
    if std::fs::read(path).ok().as_deref() == Some(contents) {
        return Ok(());
    }
    std::fs::write(path, contents).with_context(|| format!("writing {}", path.display()))
}
