//! C bindings for the guest: runs `wit-bindgen-c` (as a library) on
//! `wit/hook.wit`, world `hook`, and writes `hook.h`, `hook.c` and
//! `hook_component_type.o` into a build directory. Nothing here is committed.

use anyhow::{Context, Result};
use std::path::Path;

/// The world the guest implements.
pub const WORLD: &str = "hook";

/// Parse `wit/hook.wit` into a resolve and select the `hook` world.
///
/// The file is pushed by its contents under a fixed relative name so that no
/// absolute path can reach the generated output.
pub fn load_world(wit_file: &Path) -> Result<(wit_parser::Resolve, wit_parser::WorldId)> {
    let text = std::fs::read_to_string(wit_file)
        .with_context(|| format!("reading {}", wit_file.display()))?;
    let mut resolve = wit_parser::Resolve::default();
    let pkg = resolve
        .push_str("hook.wit", &text)
        .with_context(|| format!("parsing {}", wit_file.display()))?;
    let world = resolve
        .select_world(&[pkg], Some(WORLD))
        .with_context(|| format!("selecting world `{WORLD}` in {}", wit_file.display()))?;
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
