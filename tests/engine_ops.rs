//! (being written)

mod engine_common;
