//! Executors: who carries out Run calls.

pub mod local;
pub mod scripted;
