//! Target (d): a Run call's output document checked against its
//! `outputSchema` (`lunabox_run::output`, on `lunabox_toolkit::schema`).
//!
//! An arbitrary draft-04-shaped schema (every keyword, `$ref`s inside and
//! outside, patterns that backtrack elsewhere, branches that multiply) and
//! an output file (a document shaped by the schema or not, large arrays,
//! trailing text, invalid UTF-8, nesting past the limit) go through
//! `compile_schema` and `check_output` with a step budget and a deadline.
//! What must hold: compiling and checking end within the deadline (plus
//! slack); an accepted document is the one written; a refused one gets a
//! message that names the call and stays short; the quick answer
//! (`is_valid`) agrees with the full check.

use std::time::{Duration, Instant};

use arbitrary::Unstructured;
use lunabox_run::RawResult;
use lunabox_run::output::{OutputError, check_output, compile_schema};
use lunabox_toolkit::schema::Budget;
use serde_json::{Map, Value, json};

use crate::make;

/// Schema keywords with a generator for their value.
const KEYWORDS: &[&str] = &[
    "type",
    "properties",
    "required",
    "items",
    "additionalProperties",
    "patternProperties",
    "enum",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "minLength",
    "maxLength",
    "pattern",
    "format",
    "anyOf",
    "oneOf",
    "allOf",
    "not",
    "$ref",
    "definitions",
    "uniqueItems",
    "minItems",
    "maxItems",
    "multipleOf",
    "dependencies",
    "minProperties",
    "id",
];

const TYPES: &[&str] = &[
    "object", "array", "string", "integer", "number", "boolean", "null", "any",
];

const REFS: &[&str] = &[
    "#",
    "#/definitions/a",
    "#/definitions/b",
    "#/properties/a",
    "#/items",
    "#/nowhere",
    "http://example.com/s.json",
    "other.json#",
    "#a",
];

const PATTERNS: &[&str] = &[
    "^[a-z]+$",
    "(a+)+$",
    "^(a|aa)*b$",
    "\\d{1,1000}",
    "(?=a)",
    "\\1",
    "[",
    "",
    ".*",
    "^\\p{L}+$",
    "a{0,65535}",
];

fn types(u: &mut Unstructured) -> Value {
    if make::chance(u, 1, 4) {
        let n = u.int_in_range(0..=3usize).unwrap_or(0);
        Value::Array((0..n).map(|_| json!(make::pick(u, TYPES))).collect())
    } else {
        json!(make::pick(u, TYPES))
    }
}

fn schemas(u: &mut Unstructured, depth: usize) -> Value {
    let n = u.int_in_range(0..=3usize).unwrap_or(0);
    Value::Array((0..n).map(|_| schema(u, depth)).collect())
}

fn named(u: &mut Unstructured, depth: usize, names: &[&str]) -> Value {
    let n = u.int_in_range(0..=3usize).unwrap_or(0);
    let mut m = Map::new();
    for _ in 0..n {
        m.insert(make::pick(u, names).to_string(), schema(u, depth));
    }
    Value::Object(m)
}

/// A schema nested at most `depth` subschemas deep.
pub fn schema(u: &mut Unstructured, depth: usize) -> Value {
    if make::chance(u, 1, 10) {
        return make::json(u, 2, 3);
    }
    let mut m = Map::new();
    if depth == 0 || make::chance(u, 1, 3) {
        m.insert("type".into(), types(u));
        return Value::Object(m);
    }
    let d = depth - 1;
    let n = u.int_in_range(1..=4usize).unwrap_or(1);
    for _ in 0..n {
        let k = make::pick(u, KEYWORDS);
        let v = match k {
            "type" => types(u),
            "properties" => named(u, d, &["a", "b", "port", ""]),
            "patternProperties" => named(u, d, PATTERNS),
            "definitions" => named(u, d, &["a", "b"]),
            "required" => json!(
                ["a", "port"]
                    .iter()
                    .take(u.int_in_range(0..=2usize).unwrap_or(0))
                    .collect::<Vec<_>>()
            ),
            "items" if u.arbitrary().unwrap_or(false) => schemas(u, d),
            "items" | "not" => schema(u, d),
            "additionalProperties" if u.arbitrary().unwrap_or(false) => {
                json!(u.arbitrary::<bool>().unwrap_or(false))
            }
            "additionalProperties" => schema(u, d),
            "anyOf" | "oneOf" | "allOf" => schemas(u, d),
            "$ref" => json!(make::pick(u, REFS)),
            "pattern" => json!(make::pick(u, PATTERNS)),
            "format" => json!(make::pick(
                u,
                &[
                    "date-time",
                    "email",
                    "ipv4",
                    "ipv6",
                    "uri",
                    "regex",
                    "hostname",
                    "nope"
                ]
            )),
            "enum" => {
                let n = u.int_in_range(0..=3usize).unwrap_or(0);
                Value::Array((0..n).map(|_| make::json(u, 1, 2)).collect())
            }
            "exclusiveMinimum" | "uniqueItems" => json!(u.arbitrary::<bool>().unwrap_or(false)),
            "dependencies" => json!({"a": ["b"]}),
            "id" => json!(make::pick(u, &["#a", "http://example.com/", "x"])),
            _ => make::number(u),
        };
        m.insert(k.to_string(), v);
    }
    Value::Object(m)
}

/// A document for `schema`: one of its type's values (with its named
/// properties), or anything.
pub fn document(u: &mut Unstructured, schema: &Value, depth: usize) -> Value {
    if depth == 0 || make::chance(u, 1, 4) {
        return make::json(u, depth.min(3), 3);
    }
    let ty = match schema.get("type") {
        Some(Value::String(t)) => t.as_str(),
        Some(Value::Array(a)) => a.first().and_then(Value::as_str).unwrap_or("any"),
        _ => "any",
    };
    match ty {
        "object" => {
            let mut m = Map::new();
            if let Some(Value::Object(props)) = schema.get("properties") {
                for (k, s) in props {
                    if make::chance(u, 3, 4) {
                        m.insert(k.clone(), document(u, s, depth - 1));
                    }
                }
            }
            Value::Object(m)
        }
        "array" => {
            let item = schema.get("items").cloned().unwrap_or(Value::Null);
            let n = if make::chance(u, 1, 16) {
                u.int_in_range(1000..=20_000usize).unwrap_or(1000)
            } else {
                u.int_in_range(0..=4usize).unwrap_or(0)
            };
            let one = document(u, &item, depth - 1);
            Value::Array(vec![one; n])
        }
        "string" => Value::String(make::string(u)),
        "integer" => json!(u.int_in_range(-5..=70000i64).unwrap_or(0)),
        "number" => make::number(u),
        "boolean" => json!(u.arbitrary::<bool>().unwrap_or(false)),
        "null" => Value::Null,
        _ => make::json(u, 2, 3),
    }
}

/// The text the call leaves in its output file.
fn output_text(u: &mut Unstructured, doc: &Value) -> Vec<u8> {
    let text = doc.to_string();
    match u.int_in_range(0..=9u8).unwrap_or(0) {
        0 => format!(" \n{text}\n\t").into_bytes(),
        1 => format!("{text} {text}").into_bytes(),
        2 => Vec::new(),
        3 => vec![b'"', 0xff, b'"'],
        4 => format!("{}{}", "[".repeat(200), "]".repeat(200)).into_bytes(),
        5 => {
            let mut b = text.into_bytes();
            let n = u.int_in_range(0..=b.len()).unwrap_or(0);
            b.truncate(n);
            b
        }
        _ => text.into_bytes(),
    }
}

/// How long a check may take past its deadline before it counts as a hang
/// (a debug build is slow; a hang is unbounded).
const SLACK: Duration = Duration::from_secs(3);

/// Target (d): see the module doc.
pub fn target(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let u = &mut u;
    let schema = schema(u, 4);
    let doc = document(u, &schema, 4);
    let output = output_text(u, &doc);
    let steps = *make::pick(u, &[&lunabox_toolkit::schema::DEFAULT_STEPS, &5_000, &50]);
    let truncated = make::chance(u, 1, 20);
    let deadline = Duration::from_secs(2);
    let started = Instant::now();
    let compiled = compile_schema(&schema);
    assert!(
        started.elapsed() < deadline + SLACK,
        "compiling took {:?}: {schema}",
        started.elapsed()
    );
    let validator = match compiled {
        Ok(v) => v,
        Err(m) => {
            assert!(!m.is_empty());
            return;
        }
    };
    let raw = RawResult {
        output: output.clone(),
        output_truncated: truncated,
        ..RawResult::default()
    };
    let budget = Budget {
        steps,
        deadline: Some(Instant::now() + deadline),
    };
    let label = "RunBash (resource fuzz.sh)";
    let checked = Instant::now();
    let result = check_output(label, &raw, &schema, &validator, &budget);
    assert!(
        checked.elapsed() < deadline + SLACK,
        "checking took {:?}: schema {schema}",
        checked.elapsed()
    );
    let parsed = lunabox_toolkit::json::parse_slice(&output).ok();
    match &result {
        Ok(v) => {
            assert!(!truncated, "a truncated output file was accepted");
            assert_eq!(
                Some(v),
                parsed.as_ref(),
                "the accepted value is not the one written"
            );
        }
        Err(OutputError::Bad(m)) => {
            assert!(
                m.starts_with(label),
                "the message does not name the call: {m}"
            );
            assert!(
                m.chars().count() < 20_000,
                "a {}-character message",
                m.chars().count()
            );
        }
        Err(OutputError::Deadline) => {}
    }
    if let (Some(value), false) = (&parsed, truncated) {
        let quick = validator.is_valid(value, &budget);
        match (quick, &result) {
            (_, Err(OutputError::Deadline)) | (Err(_), _) => {}
            (Ok(true), r) => assert!(r.is_ok(), "is_valid says valid, check says {r:?}"),
            (Ok(false), r) => assert!(r.is_err(), "is_valid says invalid, check accepted it"),
        }
    }
}
