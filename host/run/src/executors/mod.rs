//! Executors: who carries out Run calls. [`local::LocalExecutor`] runs them
//! on this machine; [`scripted::ScriptedExecutor`] answers them from a
//! `--responses` file; [`ssh::SshExecutor`] runs them on another host over
//! SSH.

pub mod account;
pub mod contain;
pub mod local;
pub mod scripted;
mod spawn;
pub mod ssh;
mod sync;

pub use local::LocalExecutor;
pub use scripted::ScriptedExecutor;
pub use ssh::SshExecutor;
