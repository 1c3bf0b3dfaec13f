//! The engine: state, environments, installed toolkits, dSources, SnapSync,
//! snapshots, faults, jobs and the daemon.

pub mod error;
pub mod paths;
pub mod snapshots;
pub mod state;

pub use error::{EngineError, Result};
