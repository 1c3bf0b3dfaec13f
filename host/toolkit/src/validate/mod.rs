//! Validation: every builder rule (spec section 1), every main.json field
//! rule (section 2), the schemas as draft-04 schemas, each hook compiled by
//! Lua (optional: pass a [`SyntaxCheck`], e.g. the sandbox `Runtime`), and
//! warnings for likely mistakes. All problems are reported at once.
//!
//! ```
//! let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../toolkits/delphixdb");
//! let loaded = lunabox_toolkit::load::load(&dir).unwrap();
//! let report = lunabox_toolkit::validate::validate(&loaded, None);
//! assert!(report.ok(), "{:?}", report.diagnostics);
//! ```

mod layout;
mod manifest;
mod schemas;
mod scripts;

use super::diag::{Diagnostic, Report};
use super::load::Loaded;

/// A syntax error found by a [`SyntaxCheck`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    /// Line number in the script, when Lua gave one.
    pub line: Option<u32>,
    /// Lua's message, e.g. `staged/resync.lua:3: unexpected symbol near 'x'`.
    pub message: String,
}

/// Something that compiles Lua without running it.
pub trait SyntaxCheck {
    /// `Ok` when `script` compiles; its syntax error otherwise.
    fn check_syntax(&self, script: &str, chunk_name: &str) -> Result<(), SyntaxError>;
}

impl<F> SyntaxCheck for F
where
    F: Fn(&str, &str) -> Result<(), SyntaxError>,
{
    fn check_syntax(&self, script: &str, chunk_name: &str) -> Result<(), SyntaxError> {
        self(script, chunk_name)
    }
}

/// Check a loaded toolkit. Without `syntax`, hook scripts are not compiled
/// (every other rule still runs).
pub fn validate(loaded: &Loaded, syntax: Option<&dyn SyntaxCheck>) -> Report {
    let mut out: Vec<Diagnostic> = loaded.notes.clone();
    manifest::check(loaded, &mut out);
    layout::check(loaded, &mut out);
    schemas::check(loaded, &mut out);
    scripts::check(loaded, syntax, &mut out);
    out.sort_by_key(|d| d.severity);
    Report { diagnostics: out }
}

/// The name rule of main.json (`^[a-z0-9_:-]+$`, at most 256, not
/// `builtin:`): `None` when fine, else what is wrong.
pub fn name_problem(name: &str) -> Option<String> {
    if name.is_empty() {
        return Some("the name is empty".into());
    }
    if name.len() > 256 {
        return Some(format!(
            "the name is {} characters long; at most 256",
            name.len()
        ));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | ':' | '-')))
    {
        return Some(format!(
            "`{name}` has `{c}`; a name uses only a-z, 0-9, `_`, `:` and `-`"
        ));
    }
    if name.starts_with("builtin:") {
        return Some(format!(
            "`{name}` starts with `builtin:`, which is reserved"
        ));
    }
    None
}
