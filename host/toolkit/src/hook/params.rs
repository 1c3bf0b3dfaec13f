//! Parameters: fill in schema `default`s (recursively through nested
//! objects), validate against the linking or provisioning schema, collect
//! the values of `format: "password"` properties as secrets, and mask
//! secrets in text and JSON.

use serde_json::{Map, Value};

/// The masked form of a secret.
pub use crate::text::MASK;

/// Fill in `default`s from `schema` into `value` (a missing property with a
/// `default` gets it; present objects, and array items, are filled
/// recursively).
pub fn apply_defaults(schema: &Value, value: &mut Value) {
    match value {
        Value::Object(obj) => {
            if let Some(props) = schema.get("properties").and_then(Value::as_object) {
                for (name, sub) in props {
                    if !obj.contains_key(name)
                        && let Some(d) = sub.get("default")
                    {
                        obj.insert(name.clone(), d.clone());
                    }
                    if let Some(v) = obj.get_mut(name) {
                        apply_defaults(sub, v);
                    }
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items").filter(|s| s.is_object()) {
                for item in items {
                    apply_defaults(item_schema, item);
                }
            }
        }
        _ => {}
    }
}

/// Check `value` against `schema` (draft-04) within `budget` (see
/// [`crate::schema`]): one line per violation, `"/path: message"`, with
/// secrets masked.
pub fn schema_violations(
    schema: &Value,
    value: &Value,
    secrets: &[String],
    budget: &crate::schema::Budget,
) -> Result<(), Vec<String>> {
    use crate::schema::{CheckError, Schema};
    let schema = match Schema::compile(schema) {
        Ok(s) => s,
        Err(e) => {
            return Err(vec![format!(
                "the schema itself cannot be used ({e}); run `lunabox validate` on the toolkit"
            )]);
        }
    };
    match schema.check(value, budget) {
        Ok(()) => Ok(()),
        Err(CheckError::Invalid(v)) if !v.errors.is_empty() => {
            let mut errs: Vec<String> = v.errors.iter().map(|e| mask(e, secrets)).collect();
            if v.more {
                errs.push("... (more errors not shown)".into());
            }
            Err(errs)
        }
        Err(e) => Err(vec![mask(&e.to_string(), secrets)]),
    }
}

/// The values of `format: "password"` properties in `value` per `schema`
/// (nested objects and arrays included), as text.
pub fn collect_secrets(schema: &Value, value: &Value) -> Vec<String> {
    let mut out = Vec::new();
    walk_secrets(schema, value, &mut out);
    out.retain(|s| !s.is_empty());
    out.sort();
    out.dedup();
    out
}

fn walk_secrets(schema: &Value, value: &Value, out: &mut Vec<String>) {
    if schema.get("format").and_then(Value::as_str) == Some("password") {
        match value {
            Value::String(s) => out.push(s.clone()),
            Value::Number(n) => out.push(n.to_string()),
            _ => {}
        }
    }
    match value {
        Value::Object(obj) => {
            if let Some(props) = schema.get("properties").and_then(Value::as_object) {
                for (name, sub) in props {
                    if let Some(v) = obj.get(name) {
                        walk_secrets(sub, v, out);
                    }
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                for item in items {
                    walk_secrets(item_schema, item, out);
                }
            }
        }
        _ => {}
    }
}

/// `text` with every secret replaced by [`MASK`] (longest first).
pub use crate::text::mask_secrets as mask;

/// `value` with every secret masked inside its strings.
pub fn mask_json(value: &Value, secrets: &[String]) -> Value {
    if secrets.is_empty() {
        return value.clone();
    }
    match value {
        Value::String(s) => Value::String(mask(s, secrets)),
        Value::Array(a) => Value::Array(a.iter().map(|v| mask_json(v, secrets)).collect()),
        Value::Object(o) => Value::Object(
            o.iter()
                .map(|(k, v)| (k.clone(), mask_json(v, secrets)))
                .collect::<Map<String, Value>>(),
        ),
        other => other.clone(),
    }
}

/// Parse a `--param K=V` value: JSON when it parses, else the text.
pub fn parse_param_value(text: &str) -> Value {
    crate::json::parse(text).unwrap_or_else(|_| Value::String(text.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn defaults_fill_nested_objects() {
        let schema = json!({
            "type": "object",
            "properties": {
                "port": {"type": "integer", "default": 1234},
                "name": {"type": "string", "default": "stagingDB"},
                "tuning": {"type": "object", "default": {},
                           "properties": {"cache": {"type": "integer", "default": 64}}},
                "list": {"type": "array", "items": {"type": "object",
                           "properties": {"w": {"type": "integer", "default": 1}}}}
            }
        });
        let mut v = json!({"name": "mine", "list": [{}, {"w": 5}]});
        apply_defaults(&schema, &mut v);
        assert_eq!(
            v,
            json!({"name": "mine", "port": 1234, "tuning": {"cache": 64}, "list": [{"w": 1}, {"w": 5}]})
        );
    }

    #[test]
    fn passwords_are_collected_and_masked() {
        let schema = json!({"type": "object", "properties": {
            "user": {"type": "string"},
            "pw": {"type": "string", "format": "password"},
            "nested": {"type": "object", "properties": {"key": {"type": "string", "format": "password"}}}
        }});
        let v = json!({"user": "bob", "pw": "s3cret", "nested": {"key": "k3y!"}});
        let secrets = collect_secrets(&schema, &v);
        assert_eq!(secrets, vec!["k3y!".to_string(), "s3cret".to_string()]);
        assert_eq!(
            mask("login bob/s3cret k3y!", &secrets),
            "login bob/******** ********"
        );
        assert_eq!(mask_json(&v, &secrets)["pw"], json!(MASK));
    }

    #[test]
    fn violations_name_the_path() {
        let schema = json!({"type": "object", "properties": {"port": {"type": "integer"}}, "required": ["port"]});
        let errs = schema_violations(&schema, &json!({"port": "x"}), &[], &Default::default())
            .unwrap_err();
        assert!(errs[0].starts_with("/port:"), "{errs:?}");
        assert!(schema_violations(&schema, &json!({"port": 1}), &[], &Default::default()).is_ok());
    }

    #[test]
    fn param_values() {
        assert_eq!(parse_param_value("1234"), json!(1234));
        assert_eq!(parse_param_value("true"), json!(true));
        assert_eq!(parse_param_value("stagingDB"), json!("stagingDB"));
        assert_eq!(parse_param_value("{\"a\":1}"), json!({"a": 1}));
    }
}
