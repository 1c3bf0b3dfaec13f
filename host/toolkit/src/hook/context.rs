//! Reading a [`HookContext`] from JSON (`run-hook --context FILE.json`) and
//! setting parameters from `--param K=V`.

use serde_json::{Map, Value};

use super::HookContext;
use super::params::parse_param_value;

/// The keys a context file may hold.
pub const CONTEXT_KEYS: [&str; 6] = [
    "parameters",
    "config",
    "repository",
    "source",
    "remote",
    "snapshotJson",
];

/// A context document that cannot be used.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct ContextError(pub String);

impl HookContext {
    /// Read a context document: an object with `parameters`, `config`
    /// (alias `sourceConfig`), `repository`, `source`, `remote` and
    /// `snapshotJson` (a JSON string, or an object that is turned into one).
    pub fn from_json(value: Value) -> Result<HookContext, ContextError> {
        let Value::Object(map) = value else {
            return Err(ContextError(format!(
                "the context must be a JSON object with any of: {}",
                CONTEXT_KEYS.join(", ")
            )));
        };
        let mut ctx = HookContext::default();
        for (key, v) in map {
            match key.as_str() {
                "parameters" => ctx.parameters = Some(v),
                "config" | "sourceConfig" => {
                    if ctx.config.is_some() {
                        return Err(ContextError(
                            "give the source config once, as `config` (or its old name `sourceConfig`)".into(),
                        ));
                    }
                    ctx.config = Some(v);
                }
                "repository" => ctx.repository = Some(v),
                "source" => ctx.source = Some(v),
                "remote" => ctx.remote = Some(v),
                "snapshotJson" => {
                    ctx.snapshot_json = Some(match v {
                        Value::String(s) => s,
                        other => other.to_string(),
                    })
                }
                other => {
                    return Err(ContextError(format!(
                        "unknown context key `{other}`; the keys are: {}",
                        CONTEXT_KEYS.join(", ")
                    )));
                }
            }
        }
        Ok(ctx)
    }

    /// Set one parameter from `K=V` text: V is JSON when it parses, else a
    /// string; a dotted K (`a.b`) sets a nested field.
    pub fn set_param(&mut self, assignment: &str) -> Result<(), ContextError> {
        let (key, value) = assignment.split_once('=').ok_or_else(|| {
            ContextError(format!(
                "--param `{assignment}` has no `=`; write it as NAME=VALUE, e.g. stagingPort=1234"
            ))
        })?;
        let key = key.trim();
        if key.is_empty() || key.split('.').any(str::is_empty) {
            return Err(ContextError(format!(
                "--param `{assignment}` has an empty name; write it as NAME=VALUE"
            )));
        }
        let parts: Vec<&str> = key.split('.').collect();
        let mut value = Some(parse_param_value(value));
        // The nesting rule (crate::json): a dotted name nests one level per
        // part, so the name and the value together must stay within it.
        if parts.len() + value.as_ref().map_or(0, crate::json::depth) > crate::json::MAX_DEPTH {
            return Err(ContextError(format!(
                "--param `{}`: the name and value nest more than {} levels deep; lunabox handles \
                 parameters up to {} levels",
                crate::text::quote(key, 60),
                crate::json::MAX_DEPTH,
                crate::json::MAX_DEPTH
            )));
        }
        let params = self
            .parameters
            .get_or_insert_with(|| Value::Object(Map::new()));
        let mut here = params;
        for (i, part) in parts.iter().enumerate() {
            let Value::Object(obj) = here else {
                return Err(ContextError(format!(
                    "--param {key}: `{}` is not an object, so `{part}` cannot be set in it",
                    parts[..i].join(".")
                )));
            };
            if i + 1 == parts.len() {
                obj.insert(part.to_string(), value.take().unwrap_or_default());
                return Ok(());
            }
            here = obj
                .entry(part.to_string())
                .or_insert_with(|| Value::Object(Map::new()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_context_and_params() {
        let mut ctx = HookContext::from_json(json!({
            "sourceConfig": {"dbName": "prod"},
            "snapshotJson": {"position": 3},
            "parameters": {"stagingPort": 1}
        }))
        .unwrap();
        assert_eq!(ctx.config, Some(json!({"dbName": "prod"})));
        assert_eq!(ctx.snapshot_json.as_deref(), Some("{\"position\":3}"));
        ctx.set_param("stagingPort=1234").unwrap();
        ctx.set_param("stagingDbName=stage").unwrap();
        ctx.set_param("tuning.cache=64").unwrap();
        assert_eq!(
            ctx.parameters,
            Some(json!({"stagingPort": 1234, "stagingDbName": "stage", "tuning": {"cache": 64}}))
        );
        assert!(ctx.set_param("novalue").is_err());
        assert!(ctx.set_param("stagingPort.x=1").is_err());
        assert!(
            HookContext::from_json(json!({"sourceconfig": {}}))
                .unwrap_err()
                .0
                .contains("unknown")
        );
    }
}
