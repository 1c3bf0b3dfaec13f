//! Scripted responses, for testing toolkits without their systems (`--responses`).
//!
//! The file is `{"default": RESPONSE, "calls": [{"match": {...}, ...RESPONSE}]}`.
//! A RESPONSE has `exitCode` (default 0), `stdout`, `stderr` and `output`
//! (a JSON value written as the call's output document; absent means the
//! output file stays empty). `outputText` (an extension) gives the output
//! file's raw text instead, to simulate a script writing something that is
//! not JSON. `match` may hold `function` (`RunBash`, ...), `resource` (the
//! name of the resource whose text is the command), `commandContains` (a
//! substring of the command; of `sourceDirectory` for `RunSync`),
//! `environment`, `user` and `host`; every field given must match, and the
//! first matching entry wins. With no match the `default` answers; without
//! a default the call is unavailable, with a message saying what to add.
//! Nothing is run.

use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use crate::{ExecError, Executor, RawResult, RunCall, RunContext, RunFunction, resource_of};

/// A response file that cannot be used. The message names the file and the
/// field.
#[derive(Debug, thiserror::Error)]
#[error("{source_name}: {message}")]
pub struct ResponsesError {
    /// The file (or `responses` when read from a JSON value).
    pub source_name: String,
    /// What is wrong, starting with the field (`calls[2].match.function`).
    pub message: String,
}

/// What a matching entry answers.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Response {
    /// The exit code reported.
    pub exit_code: i32,
    /// The stdout reported.
    pub stdout: String,
    /// The stderr reported.
    pub stderr: String,
    /// The output file's bytes (empty when no `output` was given).
    pub output: Vec<u8>,
    /// The command never ends: the call waits for the hook's deadline.
    pub hang: bool,
}

/// Which calls an entry answers; `None` fields match anything.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Match {
    /// Only calls of this Run function.
    pub function: Option<RunFunction>,
    /// Only calls whose command is the text of this resource (its path in the
    /// toolkit).
    pub resource: Option<String>,
    /// Only calls whose command (or `RunSync` source directory) contains this
    /// text.
    pub command_contains: Option<String>,
    /// Only calls with this target environment.
    pub environment: Option<String>,
    /// Only calls with this target user.
    pub user: Option<String>,
    /// Only calls with this target host.
    pub host: Option<String>,
}

impl Match {
    /// Whether this matches `call`, with `resources` to resolve `resource`.
    pub fn matches(&self, call: &RunCall, ctx: &RunContext) -> bool {
        let command = call
            .command
            .as_deref()
            .or(call.source_directory.as_deref())
            .unwrap_or("");
        self.function.is_none_or(|f| f == call.function)
            && self.resource.as_ref().is_none_or(|r| {
                call.command.as_deref().is_some_and(|c| {
                    ctx.resources.get(r).is_some_and(|text| text == c)
                        || resource_of(c, &ctx.resources).as_deref() == Some(r.as_str())
                })
            })
            && self
                .command_contains
                .as_ref()
                .is_none_or(|s| command.contains(s.as_str()))
            && eq_opt(&self.environment, &call.target.environment)
            && eq_opt(&self.user, &call.target.user)
            && eq_opt(&self.host, &call.target.host)
    }
}

impl Match {
    /// This match as the file's `match` object (only the fields given).
    pub fn to_json(&self) -> Value {
        let mut m = serde_json::Map::new();
        if let Some(f) = self.function {
            m.insert("function".into(), f.name().into());
        }
        for (key, v) in [
            ("resource", &self.resource),
            ("commandContains", &self.command_contains),
            ("environment", &self.environment),
            ("user", &self.user),
            ("host", &self.host),
        ] {
            if let Some(v) = v {
                m.insert(key.into(), v.clone().into());
            }
        }
        Value::Object(m)
    }
}

impl Response {
    /// What this response answers a call with: the result, or, for a
    /// hang, the deadline (or cancel) once it comes.
    pub fn answer(&self, ctx: &RunContext) -> Result<RawResult, ExecError> {
        if self.hang {
            return Err(hang(ctx));
        }
        Ok(RawResult {
            exit_code: self.exit_code,
            signal: None,
            stdout: self.stdout.clone(),
            stderr: self.stderr.clone(),
            stdout_truncated: false,
            stderr_truncated: false,
            output: self.output.clone(),
            output_truncated: false,
            duration: Duration::ZERO,
        })
    }

    /// This response as the file's RESPONSE object, fields at their
    /// defaults left out. The output file is written as `output` when its
    /// bytes are exactly one compact JSON document (so reading it back
    /// gives the same bytes), else as `outputText`.
    pub fn to_json(&self) -> Value {
        let mut m = serde_json::Map::new();
        if self.exit_code != 0 {
            m.insert("exitCode".into(), self.exit_code.into());
        }
        if !self.stdout.is_empty() {
            m.insert("stdout".into(), self.stdout.clone().into());
        }
        if !self.stderr.is_empty() {
            m.insert("stderr".into(), self.stderr.clone().into());
        }
        if !self.output.is_empty() {
            let as_json = lunabox_toolkit::json::parse_slice(&self.output)
                .ok()
                .filter(|v| {
                    // Inside the file it sits three levels down.
                    lunabox_toolkit::json::depth(v) + 3 <= lunabox_toolkit::json::MAX_DEPTH
                        && serde_json::to_vec(v).ok().as_deref() == Some(&self.output[..])
                });
            match as_json {
                Some(v) => m.insert("output".into(), v),
                None => m.insert(
                    "outputText".into(),
                    String::from_utf8_lossy(&self.output).into_owned().into(),
                ),
            };
        }
        if self.hang {
            m.insert("hang".into(), true.into());
        }
        Value::Object(m)
    }
}

fn eq_opt(want: &Option<String>, have: &Option<String>) -> bool {
    want.as_ref()
        .is_none_or(|w| have.as_deref() == Some(w.as_str()))
}

/// Answers Run calls from a response file instead of running anything.
#[derive(Debug, Clone, Default)]
pub struct ScriptedExecutor {
    /// Where the responses came from (for messages).
    source_name: String,
    calls: Vec<(Match, Response)>,
    default: Option<Response>,
}

impl ScriptedExecutor {
    /// Read a response file.
    pub fn from_file(path: &Path) -> Result<ScriptedExecutor, ResponsesError> {
        let name = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ResponsesError {
            source_name: name.clone(),
            message: format!("could not read the responses file: {e}"),
        })?;
        let value: Value = lunabox_toolkit::json::parse(&text).map_err(|e| ResponsesError {
            source_name: name.clone(),
            message: format!("not valid JSON: {e}"),
        })?;
        Self::parse(&value, name)
    }

    /// Build from a JSON value of the file's format.
    pub fn from_json(value: &Value) -> Result<ScriptedExecutor, ResponsesError> {
        Self::parse(value, "responses".to_string())
    }

    /// Answer with these entries (the first matching one wins) and this
    /// default.
    pub fn new(calls: Vec<(Match, Response)>, default: Option<Response>) -> ScriptedExecutor {
        ScriptedExecutor {
            source_name: "responses".to_string(),
            calls,
            default,
        }
    }

    /// The responses file that makes this executor.
    pub fn to_json(&self) -> Value {
        let mut top = serde_json::Map::new();
        if let Some(d) = &self.default {
            top.insert("default".into(), d.to_json());
        }
        let calls: Vec<Value> = self
            .calls
            .iter()
            .map(|(m, r)| {
                let mut entry = serde_json::Map::new();
                entry.insert("match".into(), m.to_json());
                if let Value::Object(fields) = r.to_json() {
                    entry.extend(fields);
                }
                Value::Object(entry)
            })
            .collect();
        top.insert("calls".into(), Value::Array(calls));
        Value::Object(top)
    }

    /// Where the responses came from.
    pub fn source_name(&self) -> &str {
        &self.source_name
    }

    /// The response for `call`, if an entry (or the default) answers it.
    pub fn response_for(&self, call: &RunCall, ctx: &RunContext) -> Option<&Response> {
        self.calls
            .iter()
            .find(|(m, _)| m.matches(call, ctx))
            .map(|(_, r)| r)
            .or(self.default.as_ref())
    }

    fn parse(value: &Value, source_name: String) -> Result<ScriptedExecutor, ResponsesError> {
        let err = |message: String| ResponsesError {
            source_name: source_name.clone(),
            message,
        };
        let Value::Object(top) = value else {
            return Err(err(
                "the responses must be a JSON object {\"default\": {...}, \"calls\": [...]}"
                    .to_string(),
            ));
        };
        let mut exec = ScriptedExecutor {
            source_name: source_name.clone(),
            ..ScriptedExecutor::default()
        };
        for (key, v) in top {
            match key.as_str() {
                "default" => exec.default = Some(response(v, "default", &[]).map_err(err)?),
                "calls" => {
                    let Value::Array(items) = v else {
                        return Err(err(
                            "`calls` must be a list of {\"match\": {...}, ...response} objects"
                                .into(),
                        ));
                    };
                    for (i, item) in items.iter().enumerate() {
                        let at = format!("calls[{i}]");
                        let m = match item.get("match") {
                            None => Match::default(),
                            Some(m) => matcher(m, &format!("{at}.match")).map_err(err)?,
                        };
                        let r = response(item, &at, &["match"]).map_err(err)?;
                        exec.calls.push((m, r));
                    }
                }
                other => {
                    return Err(err(format!(
                        "unknown field `{other}`; the responses file has `default` and `calls`"
                    )));
                }
            }
        }
        Ok(exec)
    }
}

fn response(v: &Value, at: &str, skip: &[&str]) -> Result<Response, String> {
    let Value::Object(map) = v else {
        return Err(format!(
            "`{at}` must be an object with exitCode, stdout, stderr and output"
        ));
    };
    let mut r = Response::default();
    for (key, v) in map {
        let field = format!("{at}.{key}");
        match key.as_str() {
            k if skip.contains(&k) => {}
            "exitCode" => {
                r.exit_code = v
                    .as_i64()
                    .and_then(|n| i32::try_from(n).ok())
                    .ok_or_else(|| format!("`{field}` must be an integer exit status, not {v}"))?;
            }
            "stdout" => r.stdout = string(v, &field)?,
            "stderr" => r.stderr = string(v, &field)?,
            "output" => {
                if map.contains_key("outputText") {
                    return Err(format!(
                        "`{at}` has both `output` and `outputText`; give one"
                    ));
                }
                r.output = serde_json::to_vec(v).expect("a JSON value serializes");
            }
            "outputText" => r.output = string(v, &field)?.into_bytes(),
            "hang" => {
                r.hang = v
                    .as_bool()
                    .ok_or_else(|| format!("`{field}` must be true or false, not {v}"))?;
            }
            other => {
                return Err(format!(
                    "unknown field `{at}.{other}`; a response has exitCode, stdout, stderr, output (or outputText), hang{}",
                    if skip.contains(&"match") {
                        " and match"
                    } else {
                        ""
                    }
                ));
            }
        }
    }
    Ok(r)
}

fn string(v: &Value, field: &str) -> Result<String, String> {
    v.as_str()
        .map(str::to_string)
        .ok_or_else(|| format!("`{field}` must be a string, not {v}"))
}

fn matcher(v: &Value, at: &str) -> Result<Match, String> {
    let Value::Object(map) = v else {
        return Err(format!(
            "`{at}` must be an object, e.g. {{\"function\": \"RunBash\", \"resource\": \"status.sh\"}}"
        ));
    };
    let mut m = Match::default();
    for (key, v) in map {
        let field = format!("{at}.{key}");
        match key.as_str() {
            "function" => {
                let name = string(v, &field)?;
                m.function = Some(RunFunction::from_name(&name).ok_or_else(|| {
                    format!(
                        "`{field}` is `{name}`; it must be one of {}",
                        RunFunction::ALL.map(RunFunction::name).join(", ")
                    )
                })?);
            }
            "resource" => m.resource = Some(string(v, &field)?),
            "commandContains" => m.command_contains = Some(string(v, &field)?),
            "environment" => m.environment = Some(string(v, &field)?),
            "user" => m.user = Some(string(v, &field)?),
            "host" => m.host = Some(string(v, &field)?),
            other => {
                return Err(format!(
                    "unknown field `{at}.{other}`; match on function, resource, commandContains, environment, user or host"
                ));
            }
        }
    }
    Ok(m)
}

impl Executor for ScriptedExecutor {
    fn execute(&self, call: &RunCall, ctx: &RunContext) -> Result<RawResult, ExecError> {
        let Some(r) = self.response_for(call, ctx) else {
            let resource = call
                .command
                .as_deref()
                .and_then(|c| resource_of(c, &ctx.resources));
            let mut what = Vec::new();
            match (&resource, &call.source_directory) {
                (Some(r), _) => what.push(format!("resource {r}")),
                (None, Some(d)) => what.push(format!("sourceDirectory {d}")),
                (None, None) => what.push("an inline command".to_string()),
            }
            for (k, v) in [
                ("environment", &call.target.environment),
                ("user", &call.target.user),
                ("host", &call.target.host),
            ] {
                if let Some(v) = v {
                    what.push(format!("{k} {v}"));
                }
            }
            return Err(ExecError::Unavailable(format!(
                "no scripted response matches {} ({}); add a `calls` entry or a `default` to {}",
                call.function,
                what.join(", "),
                self.source_name
            )));
        };
        r.answer(ctx)
    }
}

/// A command that never ends: wait for the hook's deadline (or a cancel),
/// as a real command would be killed then.
fn hang(ctx: &RunContext) -> ExecError {
    loop {
        if ctx.cancel.as_ref().is_some_and(|c| c.is_cancelled()) {
            return ExecError::Cancelled {
                stdout: String::new(),
                stderr: String::new(),
            };
        }
        let now = std::time::Instant::now();
        let nap = match ctx.deadline {
            Some(d) if now >= d => {
                return ExecError::Deadline {
                    stdout: String::new(),
                    stderr: String::new(),
                };
            }
            Some(d) => (d - now).min(Duration::from_millis(5)),
            None => Duration::from_millis(5),
        };
        std::thread::sleep(nap);
    }
}
