//! Turn the pre-initialized core module into a component of world `hook`
//! with `wit-component`, adapting its WASI preview 1 imports to preview 2
//! with the reactor adapter of `wasi-preview1-component-adapter-provider`.

use anyhow::{Context, Result};
use wasi_preview1_component_adapter_provider::{
    WASI_SNAPSHOT_PREVIEW1_ADAPTER_NAME, WASI_SNAPSHOT_PREVIEW1_REACTOR_ADAPTER,
};
use wit_component::ComponentEncoder;

/// Encode `module` (which carries the `component-type:hook` custom section
/// from the wit-bindgen-c object) as a validated component.
pub fn componentize(module: &[u8]) -> Result<Vec<u8>> {
    ComponentEncoder::default()
        .validate(true)
        .module(module)
        .context("reading the guest core module for componentization")?
        .adapter(
            WASI_SNAPSHOT_PREVIEW1_ADAPTER_NAME,
            WASI_SNAPSHOT_PREVIEW1_REACTOR_ADAPTER,
        )
        .context("loading the WASI preview 1 reactor adapter")?
        .encode()
        .context("encoding the guest component")
}
