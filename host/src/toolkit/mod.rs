//! Toolkits: the in-memory model ([`model`]), loading a directory or a built
//! JSON file ([`load`], reading files only through [`files`], which decides
//! what a toolkit's files are), validation ([`validate`], reporting
//! [`diag::Diagnostic`]s), the built form ([`build`]) and scaffolding a new
//! toolkit ([`scaffold`]).
//!
//! ```no_run
//! use lunabox::toolkit;
//! let loaded = toolkit::load::load(std::path::Path::new("toolkits/delphixdb")).unwrap();
//! let report = toolkit::validate::validate(&loaded, None); // no Lua syntax check
//! for d in &report.diagnostics {
//!     eprintln!("{d}");
//! }
//! let built = toolkit::build::to_built_text(&loaded.toolkit);
//! # let _ = built;
//! ```

pub mod build;
pub mod diag;
pub mod files;
pub mod load;
pub mod model;
pub mod scaffold;
pub mod validate;

pub use diag::{Diagnostic, Report, Severity};
pub use load::{LoadError, Loaded, load};
pub use model::{ApiVersion, HookGroup, HookId, LinkedKind, Toolkit};
