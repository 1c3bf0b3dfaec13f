//! lunabox-toolkit: the toolkit format, and the rules every other lunabox
//! crate builds on. No wasmtime here.
//!
//! - The vocabulary of the spec: hook ids and kinds ([`HookId`],
//!   [`HookGroup`]) and the catalog of what each hook sees and returns
//!   ([`hook`]).
//! - Toolkits: the in-memory model ([`model`]), loading a directory or a
//!   built JSON file ([`load`](mod@load), reading files only through [`files`], which
//!   decides what a toolkit's files are), validation ([`validate`], reporting
//!   [`Diagnostic`]s), the built form ([`build`]) and scaffolding ([`scaffold`]).
//! - Bounded data: JSON nesting ([`json`]) and JSON Schema checks that always
//!   end ([`schema`]); text for people ([`text`]); sizes and durations
//!   ([`units`]).
//!
//! ```
//! let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../toolkits/delphixdb");
//! let loaded = lunabox_toolkit::load(&dir).unwrap();
//! let report = lunabox_toolkit::validate::validate(&loaded, None); // no Lua syntax check
//! assert!(report.ok(), "{:?}", report.diagnostics);
//! let built = lunabox_toolkit::build::to_built_text(&loaded.toolkit);
//! assert!(built.contains("\"linkedSourceDefinition\""));
//! ```

#![warn(missing_docs)]

pub mod build;
pub mod diag;
pub mod files;
pub mod hook;
pub mod json;
pub mod load;
pub mod model;
pub mod scaffold;
pub mod schema;
pub mod text;
pub mod units;
pub mod validate;

pub use diag::{Diagnostic, Report, Severity};
pub use load::{LoadError, Loaded, load};
pub use model::{ApiVersion, HookGroup, HookId, LinkedKind, Toolkit};
