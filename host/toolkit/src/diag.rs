//! Diagnostics: one problem found in a toolkit, naming the file, the field
//! (a JSON pointer into main.json, a resource or hook name) and what to do.

use std::fmt;

/// How bad a problem is: an error fails `validate` (exit 1) and `build`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// A problem that must be fixed: fails `validate` and `build`.
    Error,
    /// Worth a look, but the toolkit still validates and builds.
    Warning,
}

/// One problem.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Diagnostic {
    /// How bad it is.
    pub severity: Severity,
    /// A short stable name of the rule (`linked-type`, `lua-syntax`, ...).
    pub rule: &'static str,
    /// The file, relative to the toolkit directory (`main.json`,
    /// `staged/resync.lua`), or the built file's path.
    pub file: String,
    /// The field: a JSON pointer (`/linkedSourceDefinition/type`), or the
    /// resource / message id concerned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// The line in `file`, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<u32>,
    /// What is wrong and what to do about it.
    pub message: String,
}

impl Diagnostic {
    /// An error.
    pub fn error(
        rule: &'static str,
        file: impl Into<String>,
        field: Option<String>,
        message: impl Into<String>,
    ) -> Self {
        Diagnostic {
            severity: Severity::Error,
            rule,
            file: file.into(),
            field,
            line: None,
            message: message.into(),
        }
    }

    /// A warning.
    pub fn warning(
        rule: &'static str,
        file: impl Into<String>,
        field: Option<String>,
        message: impl Into<String>,
    ) -> Self {
        Diagnostic {
            severity: Severity::Warning,
            ..Diagnostic::error(rule, file, field, message)
        }
    }

    /// The same diagnostic at `line`.
    pub fn at_line(mut self, line: Option<u32>) -> Self {
        self.line = line;
        self
    }

    /// Whether this is an error.
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sev = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(f, "{sev}: {}", self.file)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if let Some(field) = &self.field {
            write!(f, " [{field}]")?;
        }
        write!(f, ": {} ({})", self.message, self.rule)
    }
}

/// All problems found in a toolkit.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// Every problem found, in the order found.
    pub diagnostics: Vec<Diagnostic>,
}

impl Report {
    /// The errors.
    pub fn errors(&self) -> impl Iterator<Item = &Diagnostic> {
        self.diagnostics.iter().filter(|d| d.is_error())
    }

    /// The warnings.
    pub fn warnings(&self) -> impl Iterator<Item = &Diagnostic> {
        self.diagnostics.iter().filter(|d| !d.is_error())
    }

    /// True when there is no error (warnings allowed).
    pub fn ok(&self) -> bool {
        self.errors().next().is_none()
    }

    /// `{"ok": bool, "errors": [...], "warnings": [...]}`.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "ok": self.ok(),
            "errors": self.errors().collect::<Vec<_>>(),
            "warnings": self.warnings().collect::<Vec<_>>(),
        })
    }
}
