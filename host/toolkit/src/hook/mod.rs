//! The vocabulary of hooks: the catalog ([`catalog`]: every hook kind, the
//! globals it sees, what it returns), the context a hook is run with
//! ([`HookContext`], read from JSON by [`context`]), parameter handling
//! ([`params`]: defaults, validation, secrets), the globals of one run
//! ([`globals`]) and the return checks ([`returns`]). Running a hook is the
//! sandbox's (`lunabox_sandbox::hook`).
//!
//! ```
//! use lunabox_toolkit::hook::{self, HookContext};
//! let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../toolkits/delphixdb");
//! let loaded = lunabox_toolkit::load(&dir).unwrap();
//! let (spec, script) = hook::resolve(&loaded.toolkit, &"staged/status".parse().unwrap()).unwrap();
//! assert_eq!(spec.name, "status");
//! assert!(!script.is_empty());
//! let _ = HookContext::default();
//! ```

pub mod catalog;
pub mod context;
pub mod globals;
pub mod params;
pub mod returns;

pub use crate::{HookGroup, HookId, Toolkit};

/// What the engine knows when it runs a hook; each hook kind takes the
/// parts it needs (a missing needed part is an error naming it).
#[derive(Debug, Clone, Default)]
pub struct HookContext {
    /// The user's parameters (defaults are filled in; absent = `{}`).
    pub parameters: Option<serde_json::Value>,
    /// The source config.
    pub config: Option<serde_json::Value>,
    /// The repository.
    pub repository: Option<serde_json::Value>,
    /// The `source` object; `dataDirectory` is filled in when absent.
    pub source: Option<serde_json::Value>,
    /// Discovery's `remote`.
    pub remote: Option<serde_json::Value>,
    /// The snapshot's metadata as JSON text (configure, reconfigure).
    pub snapshot_json: Option<String>,
}

/// Why a hook could not be started.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SetupError {
    /// Not a hook of any kind.
    #[error("`{hook}` is not a hook; hooks of {group}/ are: {known}")]
    UnknownHook {
        /// The hook asked for, as written (`staged/nosuch`).
        hook: String,
        /// Its kind.
        group: HookGroup,
        /// The hooks of that kind, comma-separated.
        known: String,
    },
    /// A hook the toolkit does not have (an optional hook it did not write,
    /// or a hook of a kind it is not).
    #[error("toolkit `{toolkit}` has no {hook} hook{why}")]
    NotInToolkit {
        /// The toolkit's name (`?` when it has none).
        toolkit: String,
        /// The hook asked for.
        hook: String,
        /// Why it is missing, with a leading space and in parentheses (or
        /// empty).
        why: String,
    },
    /// A part of the context the hook sees is missing.
    #[error(
        "{hook} needs `{part}` ({hint}); give it in the context (e.g. --context FILE.json with a \"{part}\" key)"
    )]
    MissingContext {
        /// The hook that needs it.
        hook: String,
        /// The global missing (`config`, `repository`, `source`, ...).
        part: &'static str,
        /// What the value looks like, e.g. `{"environment", "environmentUser",
        /// "host"}`.
        hint: &'static str,
    },
    /// A part of the context has the wrong shape.
    #[error("context `{part}` {message}")]
    BadContext {
        /// The global concerned (`config`, `source`, ...).
        part: &'static str,
        /// What is wrong with it and what it should look like.
        message: String,
    },
    /// The parameters fail the toolkit's schema (after defaults).
    #[error("the parameters do not match {schema}: {}; fix them (e.g. --param NAME=VALUE)", problems.join("; "))]
    InvalidParameters {
        /// Which schema (`linkedSourceDefinition.parameters` or
        /// `virtualSourceDefinition.parameters`).
        schema: &'static str,
        /// Each violation, as text.
        problems: Vec<String>,
    },
}

/// Look up `hook` in the catalog and in `toolkit`: its spec and script.
pub fn resolve<'t>(
    toolkit: &'t Toolkit,
    hook: &HookId,
) -> Result<(&'static catalog::HookSpec, &'t str), SetupError> {
    let spec = catalog::spec_of(hook).ok_or_else(|| SetupError::UnknownHook {
        hook: hook.to_string(),
        group: hook.group,
        known: catalog::names_of(hook.group),
    })?;
    let script = toolkit.script(hook).ok_or_else(|| {
        let why = match (hook.group, toolkit.linked_group()) {
            (HookGroup::Staged | HookGroup::Direct, Some(g)) if g != hook.group => {
                format!(" (its linked source is {g}, so its linked hooks are {g}/...)")
            }
            (_, _)
                if spec.presence == catalog::Presence::Optional
                    && spec.returns == catalog::Returns::Status =>
            {
                " (it is optional: without it a source is ACTIVE while enabled)".to_string()
            }
            (_, _) if spec.presence == catalog::Presence::Optional => {
                " (it is optional and was not written)".to_string()
            }
            (HookGroup::Discovery, _) => " (it has no discoveryDefinition)".to_string(),
            (HookGroup::Upgrade, _) => " (it has no upgrade/X.Y/ scripts)".to_string(),
            _ => String::new(),
        };
        SetupError::NotInToolkit {
            toolkit: toolkit.name().unwrap_or("?").to_string(),
            hook: hook.to_string(),
            why,
        }
    })?;
    Ok((spec, script))
}
