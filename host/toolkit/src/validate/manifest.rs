//! main.json field rules (spec section 2): required fields, their shapes,
//! the name and version patterns, definition types, API versions, and the
//! discovery definition's fields.

use serde_json::Value;

use super::super::diag::Diagnostic;
use super::super::load::{Form, Loaded};
use super::super::model::{ApiVersion, LinkedKind};
use super::name_problem;

struct Ctx<'a> {
    file: String,
    loaded: &'a Loaded,
    out: &'a mut Vec<Diagnostic>,
}

impl Ctx<'_> {
    fn err(&mut self, rule: &'static str, field: &str, message: impl Into<String>) {
        self.out.push(Diagnostic::error(
            rule,
            &self.file,
            Some(field.to_string()),
            message,
        ));
    }

    fn warn(&mut self, rule: &'static str, field: &str, message: impl Into<String>) {
        self.out.push(Diagnostic::warning(
            rule,
            &self.file,
            Some(field.to_string()),
            message,
        ));
    }

    fn get(&self, key: &str) -> Option<&Value> {
        self.loaded.toolkit.manifest.get(key)
    }

    /// A required string field; reports and returns `None` when missing.
    fn required_str(&mut self, rule: &'static str, key: &str, example: &str) -> Option<String> {
        match self.get(key) {
            None => {
                self.err(
                    rule,
                    &format!("/{key}"),
                    format!("`{key}` is required; add e.g. \"{key}\": {example}"),
                );
                None
            }
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => {
                self.err(
                    rule,
                    &format!("/{key}"),
                    format!("`{key}` must be a string, e.g. {example}"),
                );
                None
            }
        }
    }
}

pub(super) fn check(loaded: &Loaded, out: &mut Vec<Diagnostic>) {
    let mut c = Ctx {
        file: loaded.origin.manifest_file(),
        loaded,
        out,
    };

    if let Some(t) = c.required_str("manifest-type", "type", "\"Toolkit\"")
        && t != "Toolkit"
    {
        c.err(
            "manifest-type",
            "/type",
            format!("`type` is `{t}`; it must be \"Toolkit\""),
        );
    }

    if let Some(name) = c.required_str("name", "name", "\"my-toolkit\"") {
        if let Some(p) = name_problem(&name) {
            c.err(
                "name",
                "/name",
                format!("{p}; rename the toolkit (and its directory)"),
            );
        } else if loaded.origin.form == Form::Directory {
            let dir = loaded
                .origin
                .path
                .canonicalize()
                .unwrap_or_else(|_| loaded.origin.path.clone());
            if let Some(base) = dir.file_name().map(|b| b.to_string_lossy().into_owned())
                && base != name
            {
                c.err(
                    "name-directory",
                    "/name",
                    format!(
                        "the directory is `{base}` but main.json's name is `{name}`; rename one so they match"
                    ),
                );
            }
        }
    }

    if let Some(p) = c.required_str("pretty-name", "prettyName", "\"My Toolkit\"")
        && p.trim().is_empty()
    {
        c.err(
            "pretty-name",
            "/prettyName",
            "`prettyName` is empty; give the display name",
        );
    }

    if let Some(v) = c.required_str("version", "version", "\"1.0.0\"")
        && !version_ok(&v)
    {
        c.err(
            "version",
            "/version",
            format!(
                "`{v}` is not major.minor.patch; write e.g. \"1.0.0\" (the patch may be \
                 letters, digits, `_` and `-`, e.g. \"1.0.HOTFIX-1\")"
            ),
        );
    }

    match c.get("hostTypes").cloned() {
        None => c.err(
            "host-types",
            "/hostTypes",
            "`hostTypes` is required; add \"hostTypes\": [\"UNIX\"]",
        ),
        Some(Value::Array(items)) if !items.is_empty() => {
            let mut seen = Vec::new();
            for (i, item) in items.iter().enumerate() {
                match item.as_str() {
                    Some(h @ ("UNIX" | "WINDOWS")) => {
                        if seen.contains(&h) {
                            c.err(
                                "host-types",
                                &format!("/hostTypes/{i}"),
                                format!("`{h}` is listed twice"),
                            );
                        }
                        seen.push(h);
                    }
                    _ => c.err(
                        "host-types",
                        &format!("/hostTypes/{i}"),
                        format!("{item} is not a host type; use \"UNIX\" and/or \"WINDOWS\""),
                    ),
                }
            }
        }
        Some(_) => c.err(
            "host-types",
            "/hostTypes",
            "`hostTypes` must be a non-empty array of \"UNIX\" and/or \"WINDOWS\"",
        ),
    }

    if let Some(l) = c.required_str("default-locale", "defaultLocale", "\"en-us\"")
        && l.trim().is_empty()
    {
        c.err(
            "default-locale",
            "/defaultLocale",
            "`defaultLocale` is empty; write e.g. \"en-us\"",
        );
    }

    check_linked(&mut c);
    check_virtual(&mut c);

    if c.get("snapshotSchema").is_none() {
        c.err(
            "snapshot-schema",
            "/snapshotSchema",
            "`snapshotSchema` is required (the JSON Schema of what postSnapshot returns); \
             add e.g. \"snapshotSchema\": {\"type\": \"object\"}",
        );
    }

    check_discovery(&mut c);
    check_upgrade(&mut c);

    for key in ["buildApi", "engineApi"] {
        if let Some(v) = c.get(key)
            && ApiVersion::from_json(v).is_none()
        {
            c.err(
                "api-version",
                &format!("/{key}"),
                format!(
                    "`{key}` must be \"X.Y.Z\" (e.g. \"1.7.0\") or {{\"type\": \"APIVersion\", \"major\": 1, \
                     \"minor\": 7, \"micro\": 0}}; found {v}"
                ),
            );
        }
    }
}

/// `major.minor.patch`, numbers for major and minor, patch `[A-Za-z0-9_-]+`.
pub(super) fn version_ok(v: &str) -> bool {
    let parts: Vec<&str> = v.split('.').collect();
    let num = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    parts.len() == 3
        && num(parts[0])
        && num(parts[1])
        && !parts[2].is_empty()
        && parts[2]
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

fn check_linked(c: &mut Ctx<'_>) {
    match c.get("linkedSourceDefinition").cloned() {
        None => c.err(
            "linked-definition",
            "/linkedSourceDefinition",
            "`linkedSourceDefinition` is required; add {\"type\": \"ToolkitLinkedStagedSource\", \
             \"parameters\": {\"type\": \"object\"}} (or ToolkitLinkedDirectSource)",
        ),
        Some(Value::Object(def)) => {
            match def.get("type") {
                None => c.err(
                    "linked-type",
                    "/linkedSourceDefinition/type",
                    "`type` is required: \"ToolkitLinkedStagedSource\" (hooks in staged/) or \
                     \"ToolkitLinkedDirectSource\" (hooks in direct/)",
                ),
                Some(t) if t.as_str().and_then(LinkedKind::from_type_name).is_none() => c.err(
                    "linked-type",
                    "/linkedSourceDefinition/type",
                    format!(
                        "{t} is not a linked source type; use \"ToolkitLinkedStagedSource\" (hooks in staged/) \
                         or \"ToolkitLinkedDirectSource\" (hooks in direct/)"
                    ),
                ),
                Some(_) => {}
            }
            if !def.contains_key("parameters") {
                c.err(
                    "linked-parameters",
                    "/linkedSourceDefinition/parameters",
                    "`parameters` (the JSON Schema of the linking parameters) is required; \
                     add e.g. {\"type\": \"object\", \"properties\": {}}",
                );
            }
        }
        Some(_) => c.err(
            "linked-definition",
            "/linkedSourceDefinition",
            "`linkedSourceDefinition` must be an object with `type` and `parameters`",
        ),
    }
}

fn check_virtual(c: &mut Ctx<'_>) {
    match c.get("virtualSourceDefinition").cloned() {
        None => c.err(
            "virtual-definition",
            "/virtualSourceDefinition",
            "`virtualSourceDefinition` is required; add {\"type\": \"ToolkitVirtualSource\", \
             \"parameters\": {\"type\": \"object\"}}",
        ),
        Some(Value::Object(def)) => {
            match def.get("type") {
                Some(Value::String(t)) if t == "ToolkitVirtualSource" => {}
                None => c.err(
                    "virtual-type",
                    "/virtualSourceDefinition/type",
                    "`type` is required and must be \"ToolkitVirtualSource\"",
                ),
                Some(t) => c.err(
                    "virtual-type",
                    "/virtualSourceDefinition/type",
                    format!("`type` is {t}; it must be \"ToolkitVirtualSource\""),
                ),
            }
            if !def.contains_key("parameters") {
                c.err(
                    "virtual-parameters",
                    "/virtualSourceDefinition/parameters",
                    "`parameters` (the JSON Schema of the provisioning parameters) is required; \
                     add e.g. {\"type\": \"object\", \"properties\": {}}",
                );
            }
        }
        Some(_) => c.err(
            "virtual-definition",
            "/virtualSourceDefinition",
            "`virtualSourceDefinition` must be an object with `type` and `parameters`",
        ),
    }
}

const DISCOVERY_FIELDS: [(&str, &str); 6] = [
    ("repositorySchema", "schema"),
    ("repositoryIdentityFields", "fields"),
    ("repositoryNameField", "field"),
    ("sourceConfigSchema", "schema"),
    ("sourceConfigIdentityFields", "fields"),
    ("sourceConfigNameField", "field"),
];

fn check_discovery(c: &mut Ctx<'_>) {
    let Some(def) = c.get("discoveryDefinition").cloned() else {
        return;
    };
    let Value::Object(def) = def else {
        c.err(
            "discovery-definition",
            "/discoveryDefinition",
            "`discoveryDefinition` must be an object (repositorySchema, sourceConfigSchema, ...)",
        );
        return;
    };
    if let Some(t) = def.get("type")
        && t != "ToolkitDiscoveryDefinition"
    {
        c.err(
            "discovery-definition",
            "/discoveryDefinition/type",
            format!("`type` is {t}; it must be \"ToolkitDiscoveryDefinition\" (or leave it out)"),
        );
    }
    for (key, what) in DISCOVERY_FIELDS {
        let field = format!("/discoveryDefinition/{key}");
        let Some(v) = def.get(key) else {
            let hint = match what {
                "schema" => "a JSON Schema object",
                "fields" => "an array of property names of the schema",
                _ => "one property name of the schema",
            };
            c.err(
                "discovery-fields",
                &field,
                format!("`{key}` is required when discoveryDefinition is present; add it ({hint})"),
            );
            continue;
        };
        let schema_key = if key.starts_with("repository") {
            "repositorySchema"
        } else {
            "sourceConfigSchema"
        };
        let props: Option<Vec<String>> = def
            .get(schema_key)
            .and_then(|s| s.get("properties"))
            .and_then(Value::as_object)
            .map(|p| p.keys().cloned().collect());
        let names: Vec<(String, String)> = match (what, v) {
            ("fields", Value::Array(items)) => {
                let mut names = Vec::new();
                for (i, item) in items.iter().enumerate() {
                    match item.as_str() {
                        Some(s) => names.push((s.to_string(), format!("{field}/{i}"))),
                        None => c.err(
                            "discovery-fields",
                            &format!("{field}/{i}"),
                            "must be a property name (a string)",
                        ),
                    }
                }
                if items.is_empty() {
                    c.err(
                        "discovery-fields",
                        &field,
                        format!("`{key}` is empty; list at least one identity field"),
                    );
                }
                names
            }
            ("fields", _) => {
                c.err(
                    "discovery-fields",
                    &field,
                    format!("`{key}` must be an array of property names"),
                );
                continue;
            }
            ("field", Value::String(s)) => vec![(s.clone(), field.clone())],
            ("field", _) => {
                c.err(
                    "discovery-fields",
                    &field,
                    format!("`{key}` must be one property name (a string)"),
                );
                continue;
            }
            _ => continue,
        };
        if let Some(props) = props {
            for (name, at) in names {
                if !props.contains(&name) {
                    c.warn(
                        "discovery-field-missing",
                        &at,
                        format!(
                            "`{name}` is not a property of {schema_key}; add it to {schema_key}.properties \
                             or name an existing property (have: {})",
                            props.join(", ")
                        ),
                    );
                }
            }
        }
    }
}

fn check_upgrade(c: &mut Ctx<'_>) {
    let Some(def) = c.get("upgradeDefinition").cloned() else {
        return;
    };
    let Value::Object(def) = def else {
        c.err(
            "upgrade-definition",
            "/upgradeDefinition",
            "`upgradeDefinition` must be an object {\"type\": \"ToolkitUpgradeDefinition\", \"fromVersion\": \"X.Y\"}",
        );
        return;
    };
    match def.get("type") {
        Some(Value::String(t)) if t == "ToolkitUpgradeDefinition" => {}
        other => c.err(
            "upgrade-definition",
            "/upgradeDefinition/type",
            format!(
                "`type` must be \"ToolkitUpgradeDefinition\"{}",
                other.map(|t| format!(", found {t}")).unwrap_or_default()
            ),
        ),
    }
    match def.get("fromVersion").and_then(Value::as_str) {
        Some(v) if is_x_y(v) => {}
        _ => c.err(
            "upgrade-definition",
            "/upgradeDefinition/fromVersion",
            "`fromVersion` must be the version upgraded from, as \"X.Y\" (e.g. \"1.0\")",
        ),
    }
}

fn is_x_y(v: &str) -> bool {
    let mut p = v.split('.');
    let num =
        |s: Option<&str>| s.is_some_and(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()));
    num(p.next()) && num(p.next()) && p.next().is_none()
}

#[cfg(test)]
mod tests {
    use super::version_ok;

    #[test]
    fn versions() {
        assert!(version_ok("1.0.0"));
        assert!(version_ok("1.0.HOTFIX-1"));
        assert!(!version_ok("1.0"));
        assert!(!version_ok("a.0.0"));
        assert!(!version_ok("1.0.0.0"));
        assert!(!version_ok("1.0.x y"));
    }
}
