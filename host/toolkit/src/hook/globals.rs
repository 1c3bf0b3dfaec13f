//! The globals one hook sees (spec section 4), built from a
//! [`HookContext`]: parameters with defaults applied and validated against
//! the linking or provisioning schema, `config`, `repository`, `source`
//! (with `dataDirectory` filled in), `remote` and `snapshotJson` (a JSON
//! string). A part the hook needs but the context lacks is a
//! [`SetupError::MissingContext`] naming it.

use std::path::Path;

use serde_json::{Map, Value};

use super::catalog::{Global, HookSpec, Returns};
use super::params;
use super::{HookContext, SetupError};
use crate::{HookGroup, Toolkit};

/// The globals (except `resources`, which the sandbox serves itself) and
/// the secrets among the parameters.
pub struct Globals {
    /// The globals by name (`parameters`, `config`, `source`, `snapshotJson`,
    /// ...).
    pub map: Map<String, Value>,
    /// The values of the parameters' `format: "password"` properties, as text
    /// (to mask in output).
    pub secrets: Vec<String>,
}

fn hint(global: Global, group: HookGroup) -> &'static str {
    match global {
        Global::Config => "the source config, e.g. {\"dbName\": \"prod\"}",
        Global::Repository => "the repository, e.g. {\"installPath\": \"/opt/db/bin/db\"}",
        Global::Source => match group {
            HookGroup::Staged => {
                "{\"environment\", \"environmentUser\", \"host\", \"stagingEnvironment\", \
                 \"stagingEnvironmentUser\", \"stagingHost\", \"dataDirectory\", \"guid\"}"
            }
            _ => "{\"environment\", \"environmentUser\", \"host\", \"dataDirectory\", \"guid\"}",
        },
        Global::Remote => "{\"environment\", \"environmentUser\", \"host\"}",
        Global::SnapshotJson => {
            "the snapshot's metadata (a JSON object, passed to the hook as a JSON string)"
        }
        Global::Parameters => "the object to upgrade",
        Global::Resources => "",
    }
}

fn need(part: Option<&Value>, global: Global, spec: &HookSpec) -> Result<Value, SetupError> {
    part.cloned().ok_or_else(|| SetupError::MissingContext {
        hook: spec.id().to_string(),
        part: global.name(),
        hint: hint(global, spec.group),
    })
}

fn need_object(
    part: Option<&Value>,
    global: Global,
    spec: &HookSpec,
) -> Result<Map<String, Value>, SetupError> {
    match need(part, global, spec)? {
        Value::Object(o) => Ok(o),
        other => Err(SetupError::BadContext {
            part: global.name(),
            message: format!(
                "must be a JSON object ({}), found {other}",
                hint(global, spec.group)
            ),
        }),
    }
}

/// The schema parameters of `group` are checked against.
pub fn parameters_schema(toolkit: &Toolkit, group: HookGroup) -> Option<(&'static str, &Value)> {
    match group {
        HookGroup::Staged | HookGroup::Direct => toolkit
            .linked_parameters_schema()
            .map(|s| ("linkedSourceDefinition.parameters", s)),
        HookGroup::Virtual => toolkit
            .virtual_parameters_schema()
            .map(|s| ("virtualSourceDefinition.parameters", s)),
        _ => None,
    }
}

/// Fill in defaults and validate `parameters` for a hook of `group`;
/// returns the parameters and their secrets.
pub fn prepare_parameters(
    toolkit: &Toolkit,
    group: HookGroup,
    parameters: Option<&Value>,
) -> Result<(Value, Vec<String>), SetupError> {
    let mut value = parameters
        .cloned()
        .unwrap_or_else(|| Value::Object(Map::new()));
    let Some((what, schema)) = parameters_schema(toolkit, group) else {
        return Ok((value, Vec::new()));
    };
    params::apply_defaults(schema, &mut value);
    let secrets = params::collect_secrets(schema, &value);
    if let Err(errs) = params::schema_violations(schema, &value, &secrets, &Default::default()) {
        return Err(SetupError::InvalidParameters {
            schema: what,
            problems: errs,
        });
    }
    Ok((value, secrets))
}

/// Build the globals of hook `spec` from `ctx`.
pub fn build(
    spec: &HookSpec,
    toolkit: &Toolkit,
    ctx: &HookContext,
    data_directory: Option<&Path>,
) -> Result<Globals, SetupError> {
    let mut map = Map::new();
    let mut secrets = Vec::new();

    if spec.sees(Global::Parameters) {
        let value = if spec.group == HookGroup::Upgrade {
            need_object(ctx.parameters.as_ref(), Global::Parameters, spec).map(Value::Object)?
        } else {
            let (v, s) = prepare_parameters(toolkit, spec.group, ctx.parameters.as_ref())?;
            secrets = s;
            v
        };
        map.insert("parameters".into(), value);
    }
    let mut config = None;
    // configure / reconfigure / initialize make the source config: theirs
    // is given when known, not required.
    let config_optional = spec.returns == Returns::SourceConfig && ctx.config.is_none();
    if spec.sees(Global::Config) && !config_optional {
        let c = need_object(ctx.config.as_ref(), Global::Config, spec)?;
        config = Some(c.clone());
        map.insert("config".into(), Value::Object(c));
    }
    if spec.sees(Global::Repository) {
        let r = need_object(ctx.repository.as_ref(), Global::Repository, spec)?;
        map.insert("repository".into(), Value::Object(r));
    }
    if spec.sees(Global::Source) {
        let mut s = need_object(ctx.source.as_ref(), Global::Source, spec)?;
        if !s.contains_key("dataDirectory") {
            let dd = match spec.group {
                // Direct: the data path on the source host is the config's `path`.
                HookGroup::Direct => config.as_ref().and_then(|c| c.get("path")).cloned(),
                _ => data_directory.map(|d| Value::String(d.display().to_string())),
            };
            if let Some(dd) = dd {
                s.insert("dataDirectory".into(), dd);
            }
        }
        map.insert("source".into(), Value::Object(s));
    }
    if spec.sees(Global::Remote) {
        let r = need_object(ctx.remote.as_ref(), Global::Remote, spec)?;
        map.insert("remote".into(), Value::Object(r));
    }
    if spec.sees(Global::SnapshotJson) {
        let text = match &ctx.snapshot_json {
            Some(t) => t.clone(),
            None => {
                return Err(SetupError::MissingContext {
                    hook: spec.id().to_string(),
                    part: "snapshotJson",
                    hint: hint(Global::SnapshotJson, spec.group),
                });
            }
        };
        map.insert("snapshotJson".into(), Value::String(text));
    }
    Ok(Globals { map, secrets })
}
