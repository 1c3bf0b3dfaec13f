//! The toolkit's JSON Schemas checked as draft-04 schemas (against the
//! draft-04 meta-schema, then compiled), and each property's `default`
//! checked against its own schema. Display keywords (`prettyName`,
//! `description`, `default`, `format: "password"`, `environmentVariable`)
//! are allowed: draft-04 ignores unknown keywords and formats.

use serde_json::Value;

use crate::schema::{Budget, CheckError, SchemaError};

use super::super::diag::Diagnostic;
use super::super::load::Loaded;

/// The schemas of a toolkit, by JSON pointer into main.json.
pub const SCHEMA_POINTERS: [&str; 5] = [
    "/linkedSourceDefinition/parameters",
    "/virtualSourceDefinition/parameters",
    "/snapshotSchema",
    "/discoveryDefinition/repositorySchema",
    "/discoveryDefinition/sourceConfigSchema",
];

pub(super) fn check(loaded: &Loaded, out: &mut Vec<Diagnostic>) {
    let file = loaded.origin.manifest_file();
    for ptr in SCHEMA_POINTERS {
        let Some(schema) = loaded.toolkit.pointer(ptr) else {
            continue;
        };
        for (at, message) in schema_problems(schema) {
            out.push(Diagnostic::error(
                "schema-draft4",
                &file,
                Some(format!("{ptr}{at}")),
                message,
            ));
        }
        check_defaults(schema, ptr, &file, out);
    }
}

/// Problems of `schema` as a draft-04 schema: (pointer inside the schema,
/// message). Empty when it is a good schema.
pub fn schema_problems(schema: &Value) -> Vec<(String, String)> {
    if !schema.is_object() {
        return vec![(
            String::new(),
            format!(
                "a schema must be a JSON object (draft-04), found {schema}; write e.g. {{\"type\": \"object\"}}"
            ),
        )];
    }
    let meta = jsonschema::draft4::meta::validator();
    let problems: Vec<(String, String)> = meta
        .iter_errors(schema)
        .map(|e| {
            let at = e.instance_path().to_string();
            let shown = if at.is_empty() { "/" } else { at.as_str() };
            let message = if at.ends_with("/type") || at == "/type" {
                format!(
                    "not a valid draft-04 schema: `type` is {}, which is not a JSON Schema type; use one of \
                     \"array\", \"boolean\", \"integer\", \"null\", \"number\", \"object\", \"string\" (or an array of them)",
                    e.instance()
                )
            } else {
                format!("not a valid draft-04 schema: {e}; fix the keyword at `{shown}`")
            };
            (at.clone(), message)
        })
        .collect();
    if !problems.is_empty() {
        return problems;
    }
    match crate::schema::Schema::compile(schema) {
        Ok(_) => Vec::new(),
        Err(SchemaError::Invalid(m)) => vec![(
            String::new(),
            format!(
                "the schema does not compile: {m}; fix it (a bad `pattern`? lookaround and backreferences \
                 are not supported: patterns run on a linear-time engine)"
            ),
        )],
        Err(SchemaError::Unsupported { pointer, message }) => vec![(pointer, message)],
        Err(e) => vec![(
            String::new(),
            format!("the schema cannot be checked in bounded time: {e}"),
        )],
    }
}

fn check_defaults(schema: &Value, ptr: &str, file: &str, out: &mut Vec<Diagnostic>) {
    let Some(props) = schema.get("properties").and_then(Value::as_object) else {
        return;
    };
    for (name, sub) in props {
        let here = format!(
            "{ptr}/properties/{}",
            super::super::load::pointer_escape(name)
        );
        if let Some(default) = sub.get("default")
            && sub.is_object()
            && schema_problems(sub).is_empty()
            && let Ok(v) = crate::schema::Schema::compile(sub)
        {
            let errs: Vec<String> = match v.check(default, &Budget::default()) {
                Ok(()) => Vec::new(),
                Err(CheckError::Invalid(v)) => v.errors,
                Err(e) => vec![e.to_string()],
            };
            if !errs.is_empty() {
                out.push(Diagnostic::error(
                    "schema-default",
                    file,
                    Some(format!("{here}/default")),
                    format!(
                        "the default of `{name}` ({default}) does not fit its own schema: {}; fix the default",
                        errs.join("; ")
                    ),
                ));
            }
        }
        check_defaults(sub, &here, file, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn display_keywords_are_fine() {
        let s = json!({
            "type": "object",
            "additionalProperties": false,
            "properties": {
                "pw": {"type": "string", "format": "password", "prettyName": "Password",
                       "description": "d", "environmentVariable": "PW"},
                "port": {"type": "integer", "default": 1234}
            }
        });
        assert!(schema_problems(&s).is_empty());
    }

    #[test]
    fn bad_type_is_reported_with_pointer() {
        let s = json!({"type": "object", "properties": {"port": {"type": "int"}}});
        let p = schema_problems(&s);
        assert_eq!(p.len(), 1, "{p:?}");
        assert_eq!(p[0].0, "/properties/port/type");
    }
}
