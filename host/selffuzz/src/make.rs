//! Shared generators: JSON values, strings and numbers drawn from an
//! [`Unstructured`], biased toward what lunabox's parsers look at (the
//! words of the toolkit format, Run-call fields, schema keywords, edge-case
//! numbers and strings). Every generator is total: when the bytes run out
//! it returns a small default value instead of failing.

use arbitrary::Unstructured;
use serde_json::{Map, Number, Value};

/// Words the toolkit format, Run calls and JSON Schema give meaning to.
pub const WORDS: &[&str] = &[
    "name",
    "prettyName",
    "version",
    "hostTypes",
    "UNIX",
    "WINDOWS",
    "defaultLocale",
    "en-us",
    "language",
    "LUA",
    "buildApi",
    "engineApi",
    "major",
    "minor",
    "micro",
    "type",
    "Toolkit",
    "linkedSourceDefinition",
    "StagedLinkedSourceDefinition",
    "DirectLinkedSourceDefinition",
    "virtualSourceDefinition",
    "VirtualSourceDefinition",
    "discoveryDefinition",
    "ToolkitDiscoveryDefinition",
    "upgradeDefinition",
    "ToolkitUpgradeDefinition",
    "fromVersion",
    "parameters",
    "snapshotSchema",
    "repositorySchema",
    "sourceConfigSchema",
    "repositoryIdentityFields",
    "sourceConfigIdentityFields",
    "repositoryNameField",
    "sourceConfigNameField",
    "resync",
    "preSnapshot",
    "postSnapshot",
    "status",
    "worker",
    "start",
    "stop",
    "configure",
    "unconfigure",
    "reconfigure",
    "initialize",
    "mountSpec",
    "repositoryDiscovery",
    "sourceConfigDiscovery",
    "resources",
    "messages",
    "command",
    "variables",
    "outputSchema",
    "environment",
    "user",
    "host",
    "sourceDirectory",
    "excludePaths",
    "followSymlinkPaths",
    "DLPX_OUTPUT_FILE",
    "PORT",
    "properties",
    "required",
    "items",
    "additionalProperties",
    "patternProperties",
    "enum",
    "const",
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
    "#",
    "#/definitions/a",
    "definitions",
    "id",
    "object",
    "array",
    "string",
    "integer",
    "number",
    "boolean",
    "null",
    "password",
    "a",
    "b",
    "",
];

/// Strings that tend to find bugs: separators, escapes, paths, Lua and
/// shell metacharacters, non-ASCII text.
pub const EDGE_STRINGS: &[&str] = &[
    "",
    " ",
    "0",
    "-1",
    "1.0",
    "1e400",
    "..",
    "../x",
    "/",
    "/etc/passwd",
    "./a/",
    "a/../b",
    "a//b",
    "~",
    "~1",
    "\0",
    "\n",
    "\r\n",
    "\t",
    "\u{7f}",
    "\u{1b}[31m",
    "\"",
    "\\",
    "'",
    "$(id)",
    "`id`",
    ";",
    "%s",
    "%",
    "%d%",
    "[",
    "(",
    "]]",
    "--",
    "\u{e9}",
    "\u{2028}",
    "\u{fffd}",
    "\u{10ffff}",
    "\u{1f600}",
    "^[a-z]+$",
    "(a+)+$",
    "\\d{1,1000}",
    "(?=a)",
    "\\1",
    "main.json",
    "staged",
    "resync.lua",
];

/// A string: a format word, an edge case, a mix of them, or arbitrary text.
pub fn string(u: &mut Unstructured) -> String {
    match u.int_in_range(0..=9u8).unwrap_or(0) {
        0..=3 => pick(u, WORDS).to_string(),
        4..=5 => pick(u, EDGE_STRINGS).to_string(),
        6 => {
            let n = u.int_in_range(1..=3usize).unwrap_or(1);
            (0..n)
                .map(|_| {
                    let from = if chance(u, 1, 2) { WORDS } else { EDGE_STRINGS };
                    pick(u, from)
                })
                .collect()
        }
        7 => {
            let c = pick(u, &["a", "x", "\u{e9}", "%", " "]);
            c.repeat(u.int_in_range(0..=300usize).unwrap_or(0))
        }
        _ => short_text(u, 24),
    }
}

/// Arbitrary text of at most `max` characters.
pub fn short_text(u: &mut Unstructured, max: usize) -> String {
    let n = u.int_in_range(0..=max).unwrap_or(0);
    let mut s = String::new();
    for _ in 0..n {
        let c = match u.int_in_range(0..=5u8).unwrap_or(0) {
            0..=3 => char::from(u.int_in_range(0x20..=0x7eu8).unwrap_or(b'a')),
            4 => char::from(u.int_in_range(0..=0x1fu8).unwrap_or(0)),
            _ => u.arbitrary::<char>().unwrap_or('\u{e9}'),
        };
        s.push(c);
    }
    s
}

/// True with probability `num / den`; false once the bytes run out (so
/// recursion guarded by it ends).
pub fn chance(u: &mut Unstructured, num: u8, den: u8) -> bool {
    !u.is_empty() && u.ratio(num, den).unwrap_or(false)
}

/// An element of `items` (the first one when the bytes run out).
pub fn pick<'a, T: ?Sized>(u: &mut Unstructured, items: &'a [&'a T]) -> &'a T {
    let i = u.choose_index(items.len()).unwrap_or(0);
    items[i]
}

/// A JSON number: small integers, the 64-bit edges, floats with and
/// without a fraction, tiny and huge magnitudes.
pub fn number(u: &mut Unstructured) -> Value {
    let n = match u.int_in_range(0..=9u8).unwrap_or(0) {
        0..=3 => Number::from(u.int_in_range(-3..=100i64).unwrap_or(0)),
        4 => Number::from(*pick(
            u,
            &[
                &i64::MIN,
                &i64::MAX,
                &(i64::MAX - 1),
                &(1i64 << 53),
                &((1i64 << 53) + 1),
                &-0,
            ],
        )),
        5 => Number::from(*pick(u, &[&u64::MAX, &(i64::MAX as u64 + 1)])),
        6 => Number::from(u.arbitrary::<i64>().unwrap_or(7)),
        7 => {
            let f = *pick(
                u,
                &[
                    &0.5f64,
                    &-0.0,
                    &1.0,
                    &2.0,
                    &0.1,
                    &1e-300,
                    &5e-324,
                    &1.7976931348623157e308,
                    &1e15,
                    &1e16,
                    &123456.789,
                ],
            );
            Number::from_f64(f).unwrap_or(Number::from(0))
        }
        _ => {
            let f = f64::from_bits(u.arbitrary::<u64>().unwrap_or(0));
            Number::from_f64(f).unwrap_or(Number::from(1))
        }
    };
    Value::Number(n)
}

/// A JSON value nested at most `depth` levels, with at most `width`
/// members per container.
pub fn json(u: &mut Unstructured, depth: usize, width: usize) -> Value {
    let kind = if depth == 0 {
        u.int_in_range(0..=3u8).unwrap_or(0)
    } else {
        u.int_in_range(0..=5u8).unwrap_or(0)
    };
    match kind {
        0 => Value::Null,
        1 => Value::Bool(u.arbitrary().unwrap_or(false)),
        2 => number(u),
        3 => Value::String(string(u)),
        4 => {
            let n = u.int_in_range(0..=width).unwrap_or(0);
            Value::Array((0..n).map(|_| json(u, depth - 1, width)).collect())
        }
        _ => Value::Object(object(u, depth, width)),
    }
}

/// A JSON object nested at most `depth` levels (itself included).
pub fn object(u: &mut Unstructured, depth: usize, width: usize) -> Map<String, Value> {
    let n = u.int_in_range(0..=width).unwrap_or(0);
    let mut m = Map::new();
    for _ in 0..n {
        let k = string(u);
        m.insert(k, json(u, depth.saturating_sub(1), width));
    }
    m
}

/// A value nested exactly `depth` levels deep (arrays of one), for the
/// nesting limits.
pub fn nested(depth: usize, leaf: Value) -> Value {
    let mut v = leaf;
    for i in 0..depth {
        v = if i % 2 == 0 {
            Value::Array(vec![v])
        } else {
            let mut m = Map::new();
            m.insert("a".into(), v);
            Value::Object(m)
        };
    }
    v
}

/// Change `v` in a few places: replace a value somewhere inside it, drop or
/// add an object member, or change an array's length. `rounds` edits.
pub fn mutate(u: &mut Unstructured, v: &mut Value, rounds: usize) {
    for _ in 0..rounds {
        let node = walk(u, v);
        match u.int_in_range(0..=4u8).unwrap_or(0) {
            0 => *node = json(u, 2, 3),
            1 => {
                if let Value::Object(m) = node
                    && !m.is_empty()
                {
                    let i = u.choose_index(m.len()).unwrap_or(0);
                    if let Some(k) = m.keys().nth(i).cloned() {
                        m.shift_remove(&k);
                    }
                }
            }
            2 => {
                if let Value::Object(m) = node {
                    let k = string(u);
                    m.insert(k, json(u, 2, 3));
                } else if let Value::Array(a) = node {
                    a.push(json(u, 2, 3));
                }
            }
            3 => {
                if let Value::Array(a) = node {
                    let n = u.int_in_range(0..=a.len()).unwrap_or(0);
                    a.truncate(n);
                }
            }
            _ => {
                // Same kind, another value: keeps the shape, changes a leaf.
                *node = match node {
                    Value::String(_) => Value::String(string(u)),
                    Value::Number(_) => number(u),
                    Value::Bool(b) => Value::Bool(!*b),
                    _ => json(u, 1, 2),
                };
            }
        }
    }
}

/// A node of `v` reached by a random walk from the root.
fn walk<'a>(u: &mut Unstructured, mut v: &'a mut Value) -> &'a mut Value {
    loop {
        if !chance(u, 3, 4) {
            return v;
        }
        let len = match &*v {
            Value::Array(a) => a.len(),
            Value::Object(m) => m.len(),
            _ => 0,
        };
        if len == 0 {
            return v;
        }
        let i = u.choose_index(len).unwrap_or(0);
        v = match v {
            Value::Array(a) => &mut a[i],
            Value::Object(m) => {
                let k = m.keys().nth(i).cloned().unwrap_or_default();
                m.get_mut(&k).expect("a key of this object")
            }
            _ => unreachable!("only containers have members"),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generators_are_total_and_respect_their_bounds() {
        // No bytes at all: defaults, not errors.
        let mut u = Unstructured::new(&[]);
        assert_eq!(json(&mut u, 3, 3), Value::Null);
        for seed in 0u8..=255 {
            let data: Vec<u8> = (0..512)
                .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
                .collect();
            let mut u = Unstructured::new(&data);
            let v = json(&mut u, 4, 3);
            assert!(lunabox_toolkit::json::depth(&v) <= 4, "{v}");
        }
        assert_eq!(lunabox_toolkit::json::depth(&nested(7, Value::Null)), 7);
    }
}
