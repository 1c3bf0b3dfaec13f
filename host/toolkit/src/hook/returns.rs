//! Return checks: what each hook kind must return (spec section 4), applied
//! to the value the sandbox gives back. An empty Lua table arrives as `{}`;
//! where an array is expected it counts as an empty array (and `[]` counts
//! as an empty object where a table of fields is expected).

use serde_json::{Map, Value};

use super::catalog::{HookSpec, Returns, UpgradeTarget};
use super::params::schema_violations;
use crate::Toolkit;
use crate::schema::Budget;

fn as_array(value: Value) -> Option<Vec<Value>> {
    match value {
        Value::Array(a) => Some(a),
        Value::Object(o) if o.is_empty() => Some(Vec::new()),
        _ => None,
    }
}

fn as_object(value: Value) -> Option<Map<String, Value>> {
    match value {
        Value::Object(o) => Some(o),
        Value::Array(a) if a.is_empty() => Some(Map::new()),
        _ => None,
    }
}

fn short(value: &Value) -> String {
    let t = value.to_string();
    if t.chars().count() > 200 {
        format!("{}...", t.chars().take(200).collect::<String>())
    } else {
        t
    }
}

fn against(
    schema: Option<&Value>,
    what: &str,
    value: &Value,
    prefix: &str,
    secrets: &[String],
    budget: &Budget,
) -> Result<(), String> {
    let Some(schema) = schema else {
        return Ok(());
    };
    schema_violations(schema, value, secrets, budget)
        .map_err(|errs| format!("{prefix} does not match {what}: {}", errs.join("; ")))
}

/// Check `value` returned by the hook `spec`; the value to keep (normalized)
/// or what is wrong, in words a fault shows.
pub fn check_return(
    spec: &HookSpec,
    toolkit: &Toolkit,
    value: Value,
    secrets: &[String],
) -> Result<Value, String> {
    check_return_within(spec, toolkit, value, secrets, &Budget::default())
}

/// [`check_return`], with the schema checks bounded by `budget` (the
/// hook's deadline, when run for a hook).
pub fn check_return_within(
    spec: &HookSpec,
    toolkit: &Toolkit,
    value: Value,
    secrets: &[String],
    budget: &Budget,
) -> Result<Value, String> {
    let name = spec.name;
    match spec.returns {
        Returns::Nothing => Ok(value),
        Returns::Status => match value.as_str() {
            Some("ACTIVE" | "INACTIVE" | "UNKNOWN") => Ok(value),
            _ => Err(format!(
                "{name} must return \"ACTIVE\", \"INACTIVE\" or \"UNKNOWN\"; it returned {}",
                short(&value)
            )),
        },
        Returns::Snapshot => {
            // A postSnapshot that returns nothing (the walkthrough's) gives
            // empty metadata, which must still satisfy snapshotSchema.
            let value = if value.is_null() { Value::Object(Map::new()) } else { value };
            let obj = as_object(value.clone()).ok_or_else(|| {
                format!(
                    "{name} must return a table of snapshot metadata (valid against snapshotSchema); it returned {}",
                    short(&value)
                )
            })?;
            let v = Value::Object(obj);
            against(toolkit.snapshot_schema(), "snapshotSchema", &v, &format!("{name}'s result"), secrets, budget)?;
            Ok(v)
        }
        Returns::Repositories | Returns::SourceConfigs => {
            let (what, schema) = if spec.returns == Returns::Repositories {
                ("repositorySchema", toolkit.repository_schema())
            } else {
                ("sourceConfigSchema", toolkit.source_config_schema())
            };
            let items = as_array(value.clone()).ok_or_else(|| {
                format!(
                    "{name} must return an array (a Lua sequence) of tables valid against {what}; it returned {}",
                    short(&value)
                )
            })?;
            for (i, item) in items.iter().enumerate() {
                against(schema, what, item, &format!("{name}'s result [{}]", i + 1), secrets, budget)?;
            }
            Ok(Value::Array(items))
        }
        Returns::SourceConfig => {
            let obj = as_object(value.clone()).ok_or_else(|| {
                format!("{name} must return a source config (a table); it returned {}", short(&value))
            })?;
            let v = Value::Object(obj);
            against(toolkit.source_config_schema(), "sourceConfigSchema", &v, &format!("{name}'s result"), secrets, budget)?;
            Ok(v)
        }
        Returns::MountPath => match value.as_str() {
            Some(p) if !p.trim().is_empty() => Ok(value),
            _ => Err(format!(
                "staged mountSpec must return the mount path (a non-empty string); it returned {}",
                short(&value)
            )),
        },
        Returns::Mounts => {
            let items = as_array(value.clone()).ok_or_else(|| {
                format!("virtual mountSpec must return an array of tables; it returned {}", short(&value))
            })?;
            if let Some(i) = items.iter().position(|m| !m.is_object()) {
                return Err(format!(
                    "virtual mountSpec must return an array of tables; item [{}] is {}",
                    i + 1,
                    short(&items[i])
                ));
            }
            Ok(Value::Array(items))
        }
        Returns::Ownership => as_object(value.clone())
            .map(Value::Object)
            .ok_or_else(|| format!("ownershipSpec must return a table (e.g. {{uid = 1000, gid = 1000}}); it returned {}", short(&value))),
        Returns::Upgraded(target) => {
            let obj = as_object(value.clone()).ok_or_else(|| {
                format!("{name} must return the upgraded `parameters` (a table); it returned {}", short(&value))
            })?;
            let v = Value::Object(obj);
            let (what, schema) = match target {
                UpgradeTarget::Snapshot => ("snapshotSchema", toolkit.snapshot_schema()),
                UpgradeTarget::VirtualParameters => ("virtualSourceDefinition.parameters", toolkit.virtual_parameters_schema()),
                UpgradeTarget::LinkedParameters => ("linkedSourceDefinition.parameters", toolkit.linked_parameters_schema()),
                UpgradeTarget::SourceConfig => ("sourceConfigSchema", toolkit.source_config_schema()),
            };
            against(schema, what, &v, &format!("{name}'s result"), secrets, budget)?;
            Ok(v)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::HookGroup;
    use crate::hook::catalog::spec;
    use serde_json::json;

    fn toolkit() -> Toolkit {
        Toolkit {
            manifest: json!({
            "snapshotSchema": {"type": "object", "properties": {"ts": {"type": "string"}}, "required": ["ts"]},
            "discoveryDefinition": {
                "repositorySchema": {"type": "object", "properties": {"installPath": {"type": "string"}}, "required": ["installPath"]},
                "sourceConfigSchema": {"type": "object", "properties": {"dbName": {"type": "string"}}, "required": ["dbName"]}
            }
        })
        .as_object()
        .unwrap()
        .clone(),
            ..Toolkit::default()
        }
    }

    #[test]
    fn status_strings() {
        let s = spec(HookGroup::Staged, "status").unwrap();
        let tk = toolkit();
        assert!(check_return(s, &tk, json!("ACTIVE"), &[]).is_ok());
        assert!(check_return(s, &tk, json!("UNKNOWN"), &[]).is_ok());
        let e = check_return(s, &tk, json!("active"), &[]).unwrap_err();
        assert!(e.contains("\"active\""), "{e}");
        assert!(check_return(s, &tk, Value::Null, &[]).is_err());
    }

    #[test]
    fn post_snapshot_against_schema() {
        let s = spec(HookGroup::Staged, "postSnapshot").unwrap();
        let tk = toolkit();
        assert!(check_return(s, &tk, json!({"ts": "now"}), &[]).is_ok());
        let e = check_return(s, &tk, json!({}), &[]).unwrap_err();
        assert!(e.contains("snapshotSchema") && e.contains("ts"), "{e}");
        assert!(check_return(s, &tk, json!("x"), &[]).is_err());
        // Nothing returned = {} (then checked: here `ts` is required).
        assert!(
            check_return(s, &tk, Value::Null, &[])
                .unwrap_err()
                .contains("ts")
        );
    }

    #[test]
    fn discovery_empty_table_is_empty_array() {
        let s = spec(HookGroup::Discovery, "repositoryDiscovery").unwrap();
        let tk = toolkit();
        assert_eq!(check_return(s, &tk, json!({}), &[]).unwrap(), json!([]));
        assert!(check_return(s, &tk, json!([{"installPath": "/x"}]), &[]).is_ok());
        let e = check_return(s, &tk, json!([{"installPath": "/x"}, {}]), &[]).unwrap_err();
        assert!(e.contains("[2]"), "{e}");
        assert!(check_return(s, &tk, json!({"installPath": "/x"}), &[]).is_err());
    }

    #[test]
    fn configure_returns_source_config_and_mounts() {
        let tk = toolkit();
        let c = spec(HookGroup::Virtual, "configure").unwrap();
        assert!(check_return(c, &tk, json!({"dbName": "vdb"}), &[]).is_ok());
        assert!(check_return(c, &tk, json!({}), &[]).is_err());
        let m = spec(HookGroup::Staged, "mountSpec").unwrap();
        assert!(check_return(m, &tk, json!("/mnt/x"), &[]).is_ok());
        assert!(check_return(m, &tk, json!({}), &[]).is_err());
        let vm = spec(HookGroup::Virtual, "mountSpec").unwrap();
        assert!(check_return(vm, &tk, json!([{"path": "/a"}]), &[]).is_ok());
        assert!(check_return(vm, &tk, json!(["a"]), &[]).is_err());
    }
}
