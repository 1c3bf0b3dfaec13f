//! Turn the pre-initialized core module into a component of world `hook`
//! with `wit-component`. The module imports WASI 0.2 itself
//! (`guest-lua/src/wasip1.c`), so no preview 1 adapter is linked in: the
//! component has one core module of ours besides wit-component's small
//! shim and fixup modules, and each hook's instantiation links a third of
//! the functions it did with the adapter.

use anyhow::{Context, Result};
use wit_component::ComponentEncoder;

/// Encode `module` (which carries the `component-type:hook` custom section
/// from the wit-bindgen-c object) as a validated component.
pub fn componentize(module: &[u8]) -> Result<Vec<u8>> {
    ComponentEncoder::default()
        .validate(true)
        .module(module)
        .context("reading the guest core module for componentization")?
        .encode()
        .context("encoding the guest component")
}
