//! lunabox: run untrusted data-platform toolkits safely.
//!
//! Each toolkit hook (a Lua 5.4 script) runs in its own WebAssembly instance
//! with hard limits ([`sandbox`]); its Run calls (`RunBash`, ...) are carried
//! out by an [`run::Executor`] on the host; toolkits are loaded and checked by
//! [`toolkit`]; the globals and return rules of each hook kind live in
//! [`hooks`]; and [`engine`] links dSources and SnapSyncs them into snapshots.

pub mod cli;
pub mod engine;
pub mod hooks;
pub mod json;
pub mod run;
pub mod sandbox;
pub mod schema;
pub mod toolkit;
pub mod util;
