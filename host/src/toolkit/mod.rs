//! Toolkits: the in-memory model, loading (directory or built JSON),
//! validation, building and scaffolding.

/// A loaded toolkit (same value whichever form it was loaded from).
#[derive(Debug, Clone, Default)]
pub struct Toolkit {}
