//! The call model: a Run function's table, parsed from the guest's JSON.
//!
//! The guest hands the table given to `RunBash{...}` (and the other Run
//! functions) over as JSON. [`parse`] turns it into a [`RunCall`] with the
//! spec's rules (toolkit-format.md section 5):
//!
//! - `command` (the script *text*) is required for `RunBash`, `RunCommand`,
//!   `RunExpect` and `RunPowerShell`; `RunSync` needs `sourceDirectory`.
//! - `environment`, `user` and `host` are opaque strings, or absent.
//! - `variables` values may be strings, integers, floats and booleans,
//!   converted to the text Lua's `tostring` gives (`2.0` stays `2.0`);
//!   nil values are dropped; a nested table is an error naming the variable.
//! - `outputSchema` is any JSON object and must be a valid draft-04 schema.
//! - `excludePaths` and `followSymlinkPaths` are relative paths inside the
//!   source directory (no absolute paths, no `..`).
//! - An empty Lua table arrives as `{}`, so `{}` is accepted where a list is
//!   expected. Unknown fields are ignored (logged at debug level).

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::Target;

/// Which Run function a hook called.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum RunFunction {
    /// Runs `command` as a bash script.
    RunBash,
    /// Runs `command` with `/bin/sh`.
    RunCommand,
    /// Runs `command` as an expect script.
    RunExpect,
    /// Runs `command` as a PowerShell script (`pwsh`).
    RunPowerShell,
    /// Copies `sourceDirectory` into the dSource's data directory (with rsync).
    RunSync,
}

impl RunFunction {
    /// Every Run function, in the order of the spec.
    pub const ALL: [RunFunction; 5] = [
        RunFunction::RunBash,
        RunFunction::RunCommand,
        RunFunction::RunExpect,
        RunFunction::RunPowerShell,
        RunFunction::RunSync,
    ];

    /// The Lua name (`RunBash`, ...).
    pub fn name(self) -> &'static str {
        match self {
            RunFunction::RunBash => "RunBash",
            RunFunction::RunCommand => "RunCommand",
            RunFunction::RunExpect => "RunExpect",
            RunFunction::RunPowerShell => "RunPowerShell",
            RunFunction::RunSync => "RunSync",
        }
    }

    /// The function with this Lua name, if there is one.
    pub fn from_name(name: &str) -> Option<RunFunction> {
        RunFunction::ALL.into_iter().find(|f| f.name() == name)
    }

    /// Whether the call carries a script in `command` (all but `RunSync`).
    pub fn takes_command(self) -> bool {
        !matches!(self, RunFunction::RunSync)
    }
}

impl std::fmt::Display for RunFunction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// One parsed Run call.
#[derive(Debug, Clone, PartialEq)]
pub struct RunCall {
    /// The Run function called.
    pub function: RunFunction,
    /// Where it runs (environment, user, host), as the call gave it.
    pub target: Target,
    /// Script text (not a path). `None` for `RunSync`.
    pub command: Option<String>,
    /// Environment variables, already converted to text (nil dropped).
    pub variables: BTreeMap<String, String>,
    /// The call's `outputSchema` (already checked to be a valid draft-04
    /// schema by [`parse`]).
    pub output_schema: Option<serde_json::Value>,
    /// `RunSync` only.
    pub source_directory: Option<String>,
    /// `RunSync` only: normalized relative paths (no `./`, no trailing `/`).
    pub exclude_paths: Vec<String>,
    /// `RunSync` only: normalized relative paths (no `./`, no trailing `/`).
    pub follow_symlink_paths: Vec<String>,
}

impl RunCall {
    /// A call of `function` running `command`, with no target, variables or
    /// schema (for tests and programmatic use).
    pub fn new(function: RunFunction, command: impl Into<String>) -> RunCall {
        RunCall {
            function,
            target: Target::default(),
            command: Some(command.into()),
            variables: BTreeMap::new(),
            output_schema: None,
            source_directory: None,
            exclude_paths: Vec::new(),
            follow_symlink_paths: Vec::new(),
        }
    }
}

/// A malformed call table. The message names the function and the field and
/// says what to write instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{function}: {message}")]
pub struct CallError {
    /// The Run function whose call table it is.
    pub function: RunFunction,
    /// The offending field (`command`, `variables.PORT`, ...), when one is.
    pub field: Option<String>,
    /// What is wrong and what to write instead.
    pub message: String,
}

/// Variable names reserved by the engine.
const RESERVED_VARIABLES: &[&str] = &["DLPX_OUTPUT_FILE"];

/// Parse the JSON text of a call table.
pub fn parse(function: RunFunction, call_json: &str) -> Result<RunCall, CallError> {
    parse_with_validator(function, call_json).map(|(call, _)| call)
}

/// Parse a call table already read as JSON.
pub fn parse_value(function: RunFunction, value: &Value) -> Result<RunCall, CallError> {
    parse_value_with_validator(function, value).map(|(call, _)| call)
}

/// [`parse`], also returning the compiled `outputSchema` so it is compiled
/// once per call.
pub(crate) fn parse_with_validator(
    function: RunFunction,
    call_json: &str,
) -> Result<(RunCall, Option<lunabox_toolkit::schema::Schema>), CallError> {
    let value: Value = lunabox_toolkit::json::parse(call_json).map_err(|e| CallError {
        function,
        field: None,
        message: format!(
            "the call table could not be read ({e}); this is a bug in the guest, please report it"
        ),
    })?;
    parse_value_with_validator(function, &value)
}

pub(crate) fn parse_value_with_validator(
    function: RunFunction,
    value: &Value,
) -> Result<(RunCall, Option<lunabox_toolkit::schema::Schema>), CallError> {
    let err = |field: Option<&str>, message: String| CallError {
        function,
        field: field.map(str::to_string),
        message,
    };
    let map: &Map<String, Value> = match value {
        Value::Object(m) => m,
        Value::Array(a) if a.is_empty() => &EMPTY,
        other => {
            return Err(err(
                None,
                format!(
                    "takes one table with named fields, e.g. {function} {{ {} = ... }}, not {}",
                    if function.takes_command() {
                        "command"
                    } else {
                        "sourceDirectory"
                    },
                    describe(other)
                ),
            ));
        }
    };

    let mut known: Vec<&str> = vec!["environment", "user", "host"];
    let target = Target {
        environment: opt_string(map, "environment").map_err(|m| err(Some("environment"), m))?,
        user: opt_string(map, "user").map_err(|m| err(Some("user"), m))?,
        host: opt_string(map, "host").map_err(|m| err(Some("host"), m))?,
    };

    let mut call = RunCall {
        function,
        target,
        command: None,
        variables: BTreeMap::new(),
        output_schema: None,
        source_directory: None,
        exclude_paths: Vec::new(),
        follow_symlink_paths: Vec::new(),
    };
    let mut validator = None;

    if function.takes_command() {
        known.extend(["command", "variables", "outputSchema"]);
        call.command = Some(match map.get("command") {
            Some(Value::String(s)) => s.clone(),
            None | Some(Value::Null) => {
                return Err(err(
                    Some("command"),
                    "`command` is missing; pass the script text, e.g. command = resources[\"run.sh\"] \
                     (a nil here often means the resource name is misspelled)"
                        .to_string(),
                ));
            }
            Some(other) => {
                return Err(err(
                    Some("command"),
                    format!(
                        "`command` must be the script text (a string), not {}",
                        describe(other)
                    ),
                ));
            }
        });
        call.variables =
            variables(map.get("variables")).map_err(|(field, m)| err(Some(&field), m))?;
        match map.get("outputSchema") {
            None | Some(Value::Null) => {}
            Some(schema @ Value::Object(_)) => {
                let v = super::output::compile_schema(schema).map_err(|m| {
                    err(
                        Some("outputSchema"),
                        format!("`outputSchema` is not a valid draft-04 JSON Schema: {m}"),
                    )
                })?;
                call.output_schema = Some(schema.clone());
                validator = Some(v);
            }
            Some(other) => {
                return Err(err(
                    Some("outputSchema"),
                    format!(
                        "`outputSchema` must be a JSON Schema written as a table (e.g. {{ type = \"string\" }}), not {}",
                        describe(other)
                    ),
                ));
            }
        }
    } else {
        known.extend(["sourceDirectory", "excludePaths", "followSymlinkPaths"]);
        call.source_directory = Some(match map.get("sourceDirectory") {
            Some(Value::String(s)) if !s.trim().is_empty() => s.clone(),
            Some(Value::String(_)) => {
                return Err(err(
                    Some("sourceDirectory"),
                    "`sourceDirectory` is empty; give the directory to copy".to_string(),
                ));
            }
            None | Some(Value::Null) => {
                return Err(err(
                    Some("sourceDirectory"),
                    "`sourceDirectory` is missing; give the directory to copy into the dSource's storage".to_string(),
                ));
            }
            Some(other) => {
                return Err(err(
                    Some("sourceDirectory"),
                    format!(
                        "`sourceDirectory` must be a path (a string), not {}",
                        describe(other)
                    ),
                ));
            }
        });
        call.exclude_paths = relative_paths(map.get("excludePaths"), "excludePaths")
            .map_err(|(f, m)| err(Some(&f), m))?;
        call.follow_symlink_paths =
            relative_paths(map.get("followSymlinkPaths"), "followSymlinkPaths")
                .map_err(|(f, m)| err(Some(&f), m))?;
    }

    for key in map.keys() {
        if !known.contains(&key.as_str()) {
            tracing::debug!(function = function.name(), field = %key, "ignoring unknown field of a Run call");
        }
    }
    Ok((call, validator))
}

static EMPTY: std::sync::LazyLock<Map<String, Value>> = std::sync::LazyLock::new(Map::new);

/// A short description of a JSON value's Lua type, for messages.
fn describe(v: &Value) -> String {
    match v {
        Value::Null => "nil".into(),
        Value::Bool(b) => format!("a boolean ({b})"),
        Value::Number(n) => format!("a number ({n})"),
        Value::String(_) => "a string".into(),
        Value::Array(_) | Value::Object(_) => "a table".into(),
    }
}

fn opt_string(map: &Map<String, Value>, key: &str) -> Result<Option<String>, String> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(format!(
            "`{key}` must be a string (the reference the hook was given, e.g. source.staging{}), not {}",
            capitalize(key),
            describe(other)
        )),
    }
}

fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

/// Whether `name` may be an environment variable name.
pub fn is_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn variables(value: Option<&Value>) -> Result<BTreeMap<String, String>, (String, String)> {
    let map = match value {
        None | Some(Value::Null) => return Ok(BTreeMap::new()),
        Some(Value::Object(m)) => m,
        Some(Value::Array(a)) if a.is_empty() => return Ok(BTreeMap::new()),
        Some(other) => {
            return Err((
                "variables".into(),
                format!(
                    "`variables` must be a table of NAME = value pairs (e.g. {{ PORT = 5432 }}), not {}",
                    match other {
                        Value::Array(_) => "a list".to_string(),
                        o => describe(o),
                    }
                ),
            ));
        }
    };
    let mut out = BTreeMap::new();
    for (name, v) in map {
        let field = format!("variables.{name}");
        if !is_env_name(name) {
            return Err((
                field,
                format!(
                    "variable name `{name}` is not a valid environment variable name; \
                     use letters, digits and `_`, not starting with a digit"
                ),
            ));
        }
        if RESERVED_VARIABLES.contains(&name.as_str()) {
            return Err((
                field,
                format!(
                    "variables.{name} is set by the engine for every call; choose another name"
                ),
            ));
        }
        let text = match v {
            Value::Null => continue,
            Value::String(s) => s.clone(),
            Value::Bool(b) => b.to_string(),
            Value::Number(n) => number_text(n),
            Value::Array(_) | Value::Object(_) => {
                return Err((
                    field,
                    format!(
                        "variables.{name} is a table; Run variables must be strings, numbers or booleans"
                    ),
                ));
            }
        };
        if text.contains('\0') {
            return Err((
                field,
                format!(
                    "variables.{name} contains a NUL byte, which an environment variable cannot hold"
                ),
            ));
        }
        out.insert(name.clone(), text);
    }
    Ok(out)
}

/// The text Lua's `tostring` gives for a number that came through JSON:
/// integers as they are, floats as `%.14g` with `.0` added when the result
/// looks like an integer (`2.0` -> `2.0`, `0.1` -> `0.1`, `1e+15` stays).
pub fn number_text(n: &serde_json::Number) -> String {
    if let Some(i) = n.as_i64() {
        i.to_string()
    } else if let Some(u) = n.as_u64() {
        u.to_string()
    } else {
        lua_float_text(n.as_f64().unwrap_or(f64::NAN))
    }
}

/// Lua 5.4's `tostring` of a float (`LUAI_NUMFFORMAT` is `%.14g`).
pub fn lua_float_text(x: f64) -> String {
    if x.is_nan() {
        return if x.is_sign_negative() { "-nan" } else { "nan" }.to_string();
    }
    if x.is_infinite() {
        return if x > 0.0 { "inf" } else { "-inf" }.to_string();
    }
    let mut s = format_g(x, 14);
    if s.chars().all(|c| c == '-' || c.is_ascii_digit()) {
        s.push_str(".0");
    }
    s
}

/// C's `%.{precision}g` for a finite float.
fn format_g(x: f64, precision: usize) -> String {
    let p = precision.max(1);
    if x == 0.0 {
        return if x.is_sign_negative() { "-0" } else { "0" }.to_string();
    }
    let sci = format!("{:.*e}", p - 1, x);
    let (mantissa, exp) = sci.split_once('e').expect("Rust's {:e} has an exponent");
    let exp: i32 = exp.parse().expect("Rust's {:e} exponent is an integer");
    if exp < -4 || exp >= p as i32 {
        let m = strip_zeros(mantissa);
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{m}e{sign}{:02}", exp.abs())
    } else {
        let decimals = (p as i32 - 1 - exp).max(0) as usize;
        strip_zeros(&format!("{x:.decimals$}")).to_string()
    }
}

fn strip_zeros(s: &str) -> &str {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.')
    } else {
        s
    }
}

fn relative_paths(value: Option<&Value>, key: &str) -> Result<Vec<String>, (String, String)> {
    let items: &[Value] = match value {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(a)) => a,
        Some(Value::Object(m)) if m.is_empty() => return Ok(Vec::new()),
        Some(other) => {
            return Err((
                key.to_string(),
                format!(
                    "`{key}` must be a list of paths relative to sourceDirectory (e.g. {{ \"logs\", \"tmp/cache\" }}), not {}",
                    match other {
                        Value::Object(_) => "a table with named fields".to_string(),
                        o => describe(o),
                    }
                ),
            ));
        }
    };
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let field = format!("{key}[{}]", i + 1);
        let Value::String(raw) = item else {
            return Err((
                field.clone(),
                format!("{field} must be a path (a string), not {}", describe(item)),
            ));
        };
        out.push(
            normalize_relative(raw).map_err(|m| (field.clone(), format!("{field} `{raw}` {m}")))?,
        );
    }
    Ok(out)
}

/// `./a//b/` -> `a/b`; rejects absolute paths, `..`, empty paths and NUL.
fn normalize_relative(raw: &str) -> Result<String, String> {
    if raw.starts_with('/') {
        return Err("is absolute; write it relative to sourceDirectory".into());
    }
    if raw.contains('\0') {
        return Err("contains a NUL byte".into());
    }
    let mut parts = Vec::new();
    for part in raw.split('/') {
        match part {
            "" | "." => {}
            ".." => return Err("contains `..`; paths must stay inside sourceDirectory".into()),
            p => parts.push(p),
        }
    }
    if parts.is_empty() {
        return Err("names sourceDirectory itself; give a path inside it".into());
    }
    Ok(parts.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn p(f: RunFunction, v: Value) -> Result<RunCall, CallError> {
        parse_value(f, &v)
    }

    #[test]
    fn full_bash_call() {
        let c = p(
            RunFunction::RunBash,
            json!({
                "command": "echo hi",
                "environment": "ENV-1",
                "user": "delphix",
                "host": "HOST-1",
                "variables": {"PORT": 5432, "RATIO": 2.0, "HALF": 0.5, "DEBUG": true, "OFF": false, "NAME": "x"},
                "outputSchema": {"type": "string"}
            }),
        )
        .unwrap();
        assert_eq!(c.command.as_deref(), Some("echo hi"));
        assert_eq!(
            c.target,
            Target {
                environment: Some("ENV-1".into()),
                user: Some("delphix".into()),
                host: Some("HOST-1".into())
            }
        );
        let vars: Vec<(&str, &str)> = c
            .variables
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            vars,
            vec![
                ("DEBUG", "true"),
                ("HALF", "0.5"),
                ("NAME", "x"),
                ("OFF", "false"),
                ("PORT", "5432"),
                ("RATIO", "2.0")
            ]
        );
        assert_eq!(c.output_schema, Some(json!({"type": "string"})));
    }

    #[test]
    fn float_text_matches_lua() {
        let cases = [
            (2.0, "2.0"),
            (-2.0, "-2.0"),
            (0.1, "0.1"),
            (1.0 / 3.0, "0.33333333333333"),
            (1e15, "1e+15"),
            (1e14, "1e+14"),
            (123456789012345.0, "1.2345678901234e+14"),
            (12345678901234.0, "12345678901234.0"),
            (1e-5, "1e-05"),
            (0.0001, "0.0001"),
            (-0.0, "-0.0"),
            (0.0, "0.0"),
            (2.71, "2.71"),
            (1e300, "1e+300"),
            (2.5e-300, "2.5e-300"),
            (99999999999999.9, "1e+14"),
        ];
        for (x, want) in cases {
            assert_eq!(lua_float_text(x), want, "tostring({x:?})");
        }
    }

    /// Compare our `%.14g` with the C library's on many values.
    #[test]
    fn format_g_matches_libc() {
        let mut values = vec![
            0.5,
            1.5,
            2.5,
            0.125,
            1e-4,
            9.99999999999995e-5,
            123.456,
            1e21,
            5e-324,
            f64::MAX,
            f64::MIN_POSITIVE,
        ];
        let mut x: f64 = 1.0;
        for i in 0..400 {
            x = x * 1.7 + (i as f64) / 7.0;
            values.push(x);
            values.push(1.0 / x);
            values.push(-x / 3.0);
        }
        for v in values {
            let mut buf = [0u8; 64];
            // SAFETY: buf is 64 bytes, %.14g of a double needs at most ~25.
            let n =
                unsafe { libc::snprintf(buf.as_mut_ptr().cast(), buf.len(), c"%.14g".as_ptr(), v) };
            let c = std::str::from_utf8(&buf[..n as usize]).unwrap();
            assert_eq!(format_g(v, 14), c, "value {v:e}");
        }
    }

    #[test]
    fn nil_variables_are_dropped_and_empty_tables_accepted() {
        let c = p(
            RunFunction::RunBash,
            json!({"command": "true", "variables": {"A": null, "B": "b"}}),
        )
        .unwrap();
        assert_eq!(c.variables.len(), 1);
        let c = p(
            RunFunction::RunBash,
            json!({"command": "true", "variables": {}}),
        )
        .unwrap();
        assert!(c.variables.is_empty());
        let c = p(
            RunFunction::RunBash,
            json!({"command": "true", "variables": []}),
        )
        .unwrap();
        assert!(c.variables.is_empty());
    }

    #[test]
    fn nested_variable_is_an_error_naming_it() {
        let e = p(
            RunFunction::RunBash,
            json!({"command": "true", "variables": {"FOO": {"a": 1}}}),
        )
        .unwrap_err();
        assert_eq!(e.field.as_deref(), Some("variables.FOO"));
        assert_eq!(
            e.to_string(),
            "RunBash: variables.FOO is a table; Run variables must be strings, numbers or booleans"
        );
        let e = p(
            RunFunction::RunBash,
            json!({"command": "true", "variables": {"L": [1, 2]}}),
        )
        .unwrap_err();
        assert_eq!(e.field.as_deref(), Some("variables.L"));
        let e = p(
            RunFunction::RunBash,
            json!({"command": "true", "variables": {"E": {}}}),
        )
        .unwrap_err();
        assert_eq!(e.field.as_deref(), Some("variables.E"));
    }

    #[test]
    fn bad_variable_names_and_values() {
        for name in ["1X", "A-B", "", "A B", "É"] {
            let e = p(
                RunFunction::RunBash,
                json!({"command": "true", "variables": {name: "x"}}),
            )
            .unwrap_err();
            assert_eq!(e.field, Some(format!("variables.{name}")), "{name}");
        }
        let e = p(
            RunFunction::RunBash,
            json!({"command": "true", "variables": {"DLPX_OUTPUT_FILE": "/x"}}),
        )
        .unwrap_err();
        assert!(e.message.contains("set by the engine"), "{e}");
        let e = p(
            RunFunction::RunBash,
            json!({"command": "true", "variables": {"A": "x\u{0}y"}}),
        )
        .unwrap_err();
        assert!(e.message.contains("NUL"), "{e}");
        let e = p(
            RunFunction::RunBash,
            json!({"command": "true", "variables": ["x"]}),
        )
        .unwrap_err();
        assert_eq!(e.field.as_deref(), Some("variables"));
        assert!(
            p(
                RunFunction::RunBash,
                json!({"command": "true", "variables": {"_ok9": 1}})
            )
            .is_ok()
        );
    }

    #[test]
    fn command_is_required_and_a_string() {
        for f in [
            RunFunction::RunBash,
            RunFunction::RunCommand,
            RunFunction::RunExpect,
            RunFunction::RunPowerShell,
        ] {
            let e = p(f, json!({"user": "u"})).unwrap_err();
            assert_eq!(e.field.as_deref(), Some("command"));
            assert!(
                e.to_string()
                    .starts_with(&format!("{}: `command` is missing", f.name())),
                "{e}"
            );
            let e = p(f, json!({"command": 3})).unwrap_err();
            assert!(e.message.contains("not a number (3)"), "{e}");
        }
        let e = p(RunFunction::RunBash, json!({})).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("command"));
        let e = p(RunFunction::RunBash, json!(["echo"])).unwrap_err();
        assert!(e.message.contains("named fields"), "{e}");
        let e = parse(RunFunction::RunBash, "not json").unwrap_err();
        assert!(e.message.contains("bug in the guest"), "{e}");
    }

    #[test]
    fn target_fields_are_strings() {
        let e = p(RunFunction::RunBash, json!({"command": "true", "user": 5})).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("user"));
        let e = p(
            RunFunction::RunBash,
            json!({"command": "true", "environment": {"a": 1}}),
        )
        .unwrap_err();
        assert_eq!(e.field.as_deref(), Some("environment"));
        let c = p(
            RunFunction::RunBash,
            json!({"command": "true", "host": null, "other": 1}),
        )
        .unwrap();
        assert_eq!(c.target, Target::default());
    }

    #[test]
    fn output_schema_checked_as_draft4() {
        let e = p(
            RunFunction::RunBash,
            json!({"command": "true", "outputSchema": {"type": "strin"}}),
        )
        .unwrap_err();
        assert_eq!(e.field.as_deref(), Some("outputSchema"));
        assert!(
            e.message.contains("not a valid draft-04 JSON Schema"),
            "{e}"
        );
        let e = p(
            RunFunction::RunBash,
            json!({"command": "true", "outputSchema": "string"}),
        )
        .unwrap_err();
        assert_eq!(e.field.as_deref(), Some("outputSchema"));
        let e = p(
            RunFunction::RunBash,
            json!({"command": "true", "outputSchema": {"minLength": -1}}),
        )
        .unwrap_err();
        assert_eq!(e.field.as_deref(), Some("outputSchema"));
        assert!(
            p(
                RunFunction::RunBash,
                json!({"command": "true", "outputSchema": {}})
            )
            .unwrap()
            .output_schema
            .is_some()
        );
    }

    #[test]
    fn run_sync_fields() {
        let c = p(
            RunFunction::RunSync,
            json!({"sourceDirectory": "/data", "excludePaths": ["./logs/", "a//b"], "followSymlinkPaths": {}, "command": "ignored"}),
        )
        .unwrap();
        assert_eq!(c.source_directory.as_deref(), Some("/data"));
        assert_eq!(c.exclude_paths, vec!["logs", "a/b"]);
        assert!(c.follow_symlink_paths.is_empty());
        assert_eq!(c.command, None);

        let e = p(RunFunction::RunSync, json!({"excludePaths": []})).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("sourceDirectory"));
        let e = p(
            RunFunction::RunSync,
            json!({"sourceDirectory": "/d", "excludePaths": ["/etc"]}),
        )
        .unwrap_err();
        assert_eq!(e.field.as_deref(), Some("excludePaths[1]"));
        assert!(e.message.contains("absolute"), "{e}");
        let e = p(
            RunFunction::RunSync,
            json!({"sourceDirectory": "/d", "followSymlinkPaths": ["a", "x/../../y"]}),
        )
        .unwrap_err();
        assert_eq!(e.field.as_deref(), Some("followSymlinkPaths[2]"));
        assert!(e.message.contains("`..`"), "{e}");
        let e = p(
            RunFunction::RunSync,
            json!({"sourceDirectory": "/d", "excludePaths": ["."]}),
        )
        .unwrap_err();
        assert!(e.message.contains("sourceDirectory itself"), "{e}");
        let e = p(
            RunFunction::RunSync,
            json!({"sourceDirectory": "/d", "excludePaths": {"a": "b"}}),
        )
        .unwrap_err();
        assert_eq!(e.field.as_deref(), Some("excludePaths"));
        let e = p(
            RunFunction::RunSync,
            json!({"sourceDirectory": "/d", "excludePaths": [1]}),
        )
        .unwrap_err();
        assert_eq!(e.field.as_deref(), Some("excludePaths[1]"));
    }
}
