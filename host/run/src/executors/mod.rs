//! Executors: who carries out Run calls. [`local::LocalExecutor`] runs them
//! on this machine; [`scripted::ScriptedExecutor`] answers them from a
//! `--responses` file.

pub mod account;
pub mod contain;
pub mod local;
pub mod scripted;
mod spawn;
mod sync;

pub use local::LocalExecutor;
pub use scripted::ScriptedExecutor;
