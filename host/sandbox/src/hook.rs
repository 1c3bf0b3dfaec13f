//! One hook of a toolkit, run through the sandbox with the engine's
//! semantics: [`request`] builds its [`HookRequest`] from a [`HookContext`]
//! (globals with parameter defaults applied and validated, password values
//! as secrets, the toolkit's resources shared, the hook kind's return check),
//! and the caller grants it an executor and limits and runs it with
//! [`Runtime::run_hook`](crate::Runtime::run_hook) or
//! [`Runtime::run_hook_async`](crate::Runtime::run_hook_async).
//!
//! ```
//! use std::sync::Arc;
//! use lunabox_run::executors::scripted::ScriptedExecutor;
//! use lunabox_sandbox::hook::{self, HookContext};
//! use lunabox_sandbox::{Outcome, Runtime, RuntimeConfig};
//! use serde_json::json;
//!
//! let runtime = Runtime::new(RuntimeConfig::default())?;
//! let toolkit = lunabox_toolkit::load::from_built_json(json!({
//!     "type": "Toolkit", "name": "demo", "prettyName": "Demo", "version": "1.0.0",
//!     "hostTypes": ["UNIX"], "defaultLocale": "en-us",
//!     "linkedSourceDefinition": {"type": "ToolkitLinkedStagedSource",
//!         "parameters": {"type": "object"}, "resync": "",
//!         "status": "return RunBash{ command = 'status', outputSchema = { type = 'string' } }"},
//!     "virtualSourceDefinition": {"type": "ToolkitVirtualSource", "parameters": {"type": "object"}},
//!     "snapshotSchema": {"type": "object"}
//! }), "demo.json".into())?.toolkit;
//! let responses = ScriptedExecutor::from_json(&json!({"default": {"output": "ACTIVE"}}))?;
//! let context = HookContext {
//!     config: Some(json!({})),
//!     repository: Some(json!({})),
//!     source: Some(json!({})),
//!     ..HookContext::default()
//! };
//! let request = hook::request(&toolkit, &"staged/status".parse()?, &context, None)?
//!     .with_executor(Arc::new(responses));
//! assert_eq!(runtime.run_hook(request).result, Outcome::Value("ACTIVE".into()));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::path::Path;
use std::sync::Arc;

use crate::HookRequest;
pub use lunabox_toolkit::hook::{HookContext, SetupError, resolve};
use lunabox_toolkit::hook::{globals, returns};
use lunabox_toolkit::model::lua_source;
pub use lunabox_toolkit::{HookGroup, HookId, Toolkit};

/// The request that runs `hook` of `toolkit` in `context`: its globals (the
/// parameters with their defaults, validated), the toolkit's resources, the
/// password values as secrets, its kind's return check, and its label. It
/// grants no executor and has default limits: the caller adds both.
/// `data_directory` is the dSource's storage (the `RunSync` target, and
/// `source.dataDirectory` when the context's `source` lacks it).
pub fn request(
    toolkit: &Toolkit,
    hook: &HookId,
    context: &HookContext,
    data_directory: Option<&Path>,
) -> Result<HookRequest, SetupError> {
    let (spec, script) = resolve(toolkit, hook)?;
    let built = globals::build(spec, toolkit, context, data_directory)?;
    let chunk_name = toolkit.chunk_name(hook);
    let secrets = built.secrets;
    let check_secrets = secrets.clone();
    // The check reads only the manifest's schemas.
    let toolkit_for_check = Toolkit {
        manifest: toolkit.manifest.clone(),
        ..Toolkit::default()
    };
    let chunk = chunk_name.clone();
    let check: crate::ValueCheck = Arc::new(move |value, budget| {
        returns::check_return_within(spec, &toolkit_for_check, value, &check_secrets, &budget)
            .map_err(|m| format!("{chunk}: {m}"))
    });
    let mut request = HookRequest::new(lua_source(script).into_owned(), chunk_name)
        .with_globals(built.map)
        .with_resources(toolkit.resources.clone())
        .with_secrets(secrets)
        .with_value_check(check)
        .with_label(toolkit.name().unwrap_or(""), &hook.to_string());
    if let Some(dir) = data_directory {
        request = request.with_data_directory(dir);
    }
    Ok(request)
}
