//! Values from a toolkit's JSON Schemas (draft-04, the subset toolkits
//! use): the schema's own shape with edge cases in it, and canary strings
//! that show where a value went.
//!
//! Strings mix the cases that break shell scripts and parsers (spaces,
//! quotes, newlines, `*`, `$(...)`, `;`, non-ASCII, empty) with a canary
//! token (`cnry<N>q`, see [`Canaries`]) that names the value's path, so a
//! value that reaches a command's text is recognised there. Numbers take
//! the schema's bounds and the usual edges (0, -1, 2^31, 2^53); arrays are
//! empty, short or long; optional properties come and go.

use rand::Rng;
use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use serde_json::{Map, Value, json};

/// Strings that break shell commands, parsers and string handling.
pub const EDGE_STRINGS: &[&str] = &[
    "",
    " ",
    "a b",
    "it's",
    "say \"hi\"",
    "line1\nline2",
    "*",
    "$(id)",
    "`id`",
    "; echo pwned",
    "a && b",
    "$HOME",
    "-rf",
    "../..",
    "back\\slash",
    "tab\there",
    "ünïcødé ☃ 日本",
    "%s%d",
    "null",
    "0",
];

/// The canary values handed out in one input: index -> the path of the
/// value that carries it (`parameters.dbName`).
#[derive(Debug, Clone, Default)]
pub struct Canaries {
    paths: Vec<String>,
}

impl Canaries {
    /// A new canary for the value at `path`.
    pub fn token(&mut self, path: &str) -> String {
        self.paths.push(path.to_string());
        format!("cnry{}q", self.paths.len() - 1)
    }

    /// The paths whose canaries appear in `text`, in order, without repeats.
    pub fn found_in(&self, text: &str) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        let mut rest = text;
        while let Some(i) = rest.find("cnry") {
            rest = &rest[i + 4..];
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            if digits.is_empty() || !rest[digits.len()..].starts_with('q') {
                continue;
            }
            if let Some(p) = digits.parse::<usize>().ok().and_then(|n| self.paths.get(n))
                && !out.contains(p)
            {
                out.push(p.clone());
            }
        }
        out
    }

    /// Register every canary in `value` found under `path` again (for a
    /// value read back from a file: its tokens are renumbered).
    pub fn rebuild(value: &Value, path: &str, into: &mut Canaries) -> Value {
        match value {
            Value::String(s) if s.contains("cnry") => {
                let mut out = String::new();
                let mut rest = s.as_str();
                while let Some(i) = rest.find("cnry") {
                    out.push_str(&rest[..i]);
                    let after = &rest[i + 4..];
                    let digits: String = after.chars().take_while(char::is_ascii_digit).collect();
                    if !digits.is_empty() && after[digits.len()..].starts_with('q') {
                        out.push_str(&into.token(path));
                        rest = &after[digits.len() + 1..];
                    } else {
                        out.push_str("cnry");
                        rest = after;
                    }
                }
                out.push_str(rest);
                Value::String(out)
            }
            Value::Object(o) => Value::Object(
                o.iter()
                    .map(|(k, v)| {
                        (
                            k.clone(),
                            Canaries::rebuild(v, &format!("{path}.{k}"), into),
                        )
                    })
                    .collect(),
            ),
            Value::Array(a) => Value::Array(
                a.iter()
                    .enumerate()
                    .map(|(i, v)| Canaries::rebuild(v, &format!("{path}[{i}]"), into))
                    .collect(),
            ),
            other => other.clone(),
        }
    }
}

/// How values are made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// Defaults where the schema has them, plain values otherwise, every
    /// property present: the input a toolkit's author had in mind.
    Plain,
    /// Edge cases and canaries; optional properties come and go.
    Wild,
}

/// Makes values for one input.
pub struct Gen<'a> {
    /// The run's seeded random source.
    pub rng: &'a mut StdRng,
    /// Canary values planted so far (for injection checks).
    pub canaries: &'a mut Canaries,
    /// What kind of values to make.
    pub style: Style,
    /// Put canaries in strings (parameters, config, repository).
    pub with_canaries: bool,
    /// Words from the hook's script (field names, string literals): extra
    /// fields and strings use them, so a document reaches the fields and
    /// values the hook looks for even when its schema does not name them.
    pub dict: &'a [String],
}

/// The words of a Lua script worth guessing: names after `.` or `:` and
/// short string literals, without repeats, sorted.
pub fn dictionary(script: &str) -> Vec<String> {
    let mut out = std::collections::BTreeSet::new();
    let b = script.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if (c == b'.' || c == b':')
            && i + 1 < b.len()
            && (b[i + 1].is_ascii_alphabetic() || b[i + 1] == b'_')
        {
            let start = i + 1;
            let mut j = start;
            while j < b.len() && (b[j].is_ascii_alphanumeric() || b[j] == b'_') {
                j += 1;
            }
            out.insert(script[start..j].to_string());
            i = j;
        } else if c == b'"' || c == b'\'' {
            let mut j = i + 1;
            while j < b.len() && b[j] != c && b[j] != b'\n' && b[j] != b'\\' {
                j += 1;
            }
            if j < b.len() && b[j] == c && j - i - 1 <= 40 && j > i + 1 {
                out.insert(script[i + 1..j].to_string());
            }
            i = j + 1;
        } else {
            i += 1;
        }
    }
    out.into_iter().take(200).collect()
}

const MAX_DEPTH: usize = 12;

impl Gen<'_> {
    /// A value for `schema` (resolving `$ref`s against `root`) at `path`.
    pub fn value(&mut self, schema: &Value, root: &Value, path: &str) -> Value {
        self.value_at(schema, root, path, 0)
    }

    fn value_at(&mut self, schema: &Value, root: &Value, path: &str, depth: usize) -> Value {
        let schema = resolve(schema, root);
        let Value::Object(s) = schema else {
            return self.any_scalar(path);
        };
        if let Some(Value::Array(choices)) = s.get("enum")
            && let Some(v) = choices.choose(self.rng)
        {
            return v.clone();
        }
        if let Some(v) = s.get("const") {
            return v.clone();
        }
        if self.style == Style::Plain
            && let Some(d) = s.get("default")
        {
            return d.clone();
        }
        if self.style == Style::Wild
            && let Some(d) = s.get("default")
            && self.rng.random_bool(0.2)
        {
            return d.clone();
        }
        for key in ["allOf", "anyOf", "oneOf"] {
            if let Some(Value::Array(branches)) = s.get(key)
                && !branches.is_empty()
            {
                // allOf: merge the branches' properties; anyOf/oneOf: one.
                if key == "allOf" {
                    let merged = merge_all(s, branches, root);
                    return self.value_at(&merged, root, path, depth);
                }
                let b = branches.choose(self.rng).expect("not empty").clone();
                let mut merged = s.clone();
                merged.remove(key);
                if let Value::Object(bo) = resolve(&b, root) {
                    for (k, v) in bo {
                        merged.entry(k.clone()).or_insert_with(|| v.clone());
                    }
                }
                return self.value_at(&Value::Object(merged), root, path, depth);
            }
        }
        let ty = self.pick_type(s);
        match ty.as_str() {
            "object" => self.object(s, root, path, depth),
            "array" => self.array(s, root, path, depth),
            "string" => Value::String(self.string(s, path)),
            "integer" => self.integer(s),
            "number" => self.number(s),
            "boolean" => Value::Bool(self.rng.random_bool(0.5)),
            "null" => Value::Null,
            _ => self.any_scalar(path),
        }
    }

    fn pick_type(&mut self, s: &Map<String, Value>) -> String {
        match s.get("type") {
            Some(Value::String(t)) => t.clone(),
            Some(Value::Array(ts)) => ts
                .choose(self.rng)
                .and_then(Value::as_str)
                .unwrap_or("string")
                .to_string(),
            _ if s.contains_key("properties") => "object".into(),
            _ if s.contains_key("items") => "array".into(),
            _ => "any".into(),
        }
    }

    fn any_scalar(&mut self, path: &str) -> Value {
        match self.rng.random_range(0..4) {
            0 => Value::String(self.string(&Map::new(), path)),
            1 => json!(self.rng.random_range(-3..100)),
            _ if !self.dict.is_empty() && self.rng.random_bool(0.5) => {
                Value::String(self.dict.choose(self.rng).expect("not empty").clone())
            }
            2 => Value::Bool(self.rng.random_bool(0.5)),
            _ => Value::Null,
        }
    }

    fn object(&mut self, s: &Map<String, Value>, root: &Value, path: &str, depth: usize) -> Value {
        let mut out = Map::new();
        let required: Vec<&str> = s
            .get("required")
            .and_then(Value::as_array)
            .map(|r| r.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        if let Some(Value::Object(props)) = s.get("properties") {
            for (k, sub) in props {
                let keep = required.contains(&k.as_str())
                    || self.style == Style::Plain
                    || (depth < MAX_DEPTH && self.rng.random_bool(0.7));
                if keep {
                    let v = self.value_at(sub, root, &format!("{path}.{k}"), depth + 1);
                    out.insert(k.clone(), v);
                }
            }
        }
        for k in &required {
            if !out.contains_key(*k) {
                let v = self.any_scalar(&format!("{path}.{k}"));
                out.insert((*k).to_string(), v);
            }
        }
        let extra_allowed = !matches!(s.get("additionalProperties"), Some(Value::Bool(false)));
        let p_extra = if self.dict.is_empty() { 0.1 } else { 0.4 };
        if self.style == Style::Wild && extra_allowed && self.rng.random_bool(p_extra) {
            let name = match self.dict.choose(self.rng) {
                Some(w) if self.rng.random_bool(0.8) => w.clone(),
                _ => "extra field".to_string(),
            };
            let extra = match s.get("additionalProperties") {
                Some(sub @ Value::Object(_)) => {
                    self.value_at(sub, root, &format!("{path}.{name}"), depth + 1)
                }
                _ => self.any_scalar(&format!("{path}.{name}")),
            };
            out.entry(name).or_insert(extra);
        }
        if let Some(min) = s.get("minProperties").and_then(Value::as_u64) {
            let mut i = 0;
            while (out.len() as u64) < min && extra_allowed {
                out.insert(format!("k{i}"), Value::String("x".into()));
                i += 1;
            }
        }
        Value::Object(out)
    }

    fn array(&mut self, s: &Map<String, Value>, root: &Value, path: &str, depth: usize) -> Value {
        let min = s.get("minItems").and_then(Value::as_u64).unwrap_or(0) as usize;
        let max = s
            .get("maxItems")
            .and_then(Value::as_u64)
            .map(|m| m as usize)
            .unwrap_or(usize::MAX);
        let want = if self.style == Style::Plain || depth >= MAX_DEPTH {
            1
        } else {
            *[0usize, 1, 1, 2, 3, 8].choose(self.rng).expect("not empty")
        };
        let n = want.clamp(min, max.max(min));
        let mut out = Vec::with_capacity(n);
        for i in 0..n {
            let sub = match s.get("items") {
                Some(Value::Array(tuple)) => tuple.get(i).cloned().unwrap_or(Value::Bool(true)),
                Some(one) => one.clone(),
                None => Value::Bool(true),
            };
            out.push(self.value_at(&sub, root, &format!("{path}[{i}]"), depth + 1));
        }
        Value::Array(out)
    }

    /// A string for the schema `s` at `path`.
    pub fn string(&mut self, s: &Map<String, Value>, path: &str) -> String {
        let min = s.get("minLength").and_then(Value::as_u64).unwrap_or(0) as usize;
        let max = s
            .get("maxLength")
            .and_then(Value::as_u64)
            .map(|m| m as usize)
            .unwrap_or(usize::MAX);
        let has_pattern = s.contains_key("pattern");
        let format = s.get("format").and_then(Value::as_str);
        let mut text = if self.style == Style::Plain || has_pattern || format.is_some() {
            plain_for_format(format).to_string()
        } else {
            let edge = *EDGE_STRINGS.choose(self.rng).expect("not empty");
            match self.rng.random_range(0..10) {
                0 => "x".repeat(self.rng.random_range(100..600)),
                1 | 2 if !self.dict.is_empty() => {
                    self.dict.choose(self.rng).expect("not empty").clone()
                }
                _ => edge.to_string(),
            }
        };
        let canary_ok =
            self.with_canaries && !has_pattern && format.is_none_or(|f| f == "password");
        if canary_ok && (self.style == Style::Plain || self.rng.random_bool(0.85)) {
            let token = self.canaries.token(path);
            text = match self.rng.random_range(0..3) {
                0 => format!("{token}{text}"),
                1 => format!("{text}{token}"),
                _ => token,
            };
        }
        let n = text.chars().count();
        if n > max {
            text = text.chars().take(max).collect();
        }
        while text.chars().count() < min {
            text.push('x');
        }
        text
    }

    fn integer(&mut self, s: &Map<String, Value>) -> Value {
        let (lo, hi) = int_bounds(s);
        if self.style == Style::Plain {
            return json!(if lo <= 1 && 1 <= hi { 1 } else { lo });
        }
        let mut candidates: Vec<i64> = vec![
            0,
            1,
            -1,
            2,
            7,
            255,
            65535,
            65536,
            i64::from(i32::MAX),
            i64::from(i32::MAX) + 1,
            i64::from(i32::MIN),
            1 << 53,
            (1 << 53) + 1,
            i64::MAX,
            i64::MIN,
        ];
        candidates.extend([lo, hi, lo.saturating_add(1), hi.saturating_sub(1)]);
        let ok: Vec<i64> = candidates
            .into_iter()
            .filter(|v| *v >= lo && *v <= hi && multiple_ok(s, *v as f64))
            .collect();
        match ok.choose(self.rng) {
            Some(v) => json!(*v),
            None => json!(lo),
        }
    }

    fn number(&mut self, s: &Map<String, Value>) -> Value {
        if self.rng.random_bool(0.5) {
            return self.integer(s);
        }
        let (lo, hi) = float_bounds(s);
        let candidates = [0.5, -0.5, 1e-300, 1e300, 3.25, -1e15, lo, hi];
        let ok: Vec<f64> = candidates
            .into_iter()
            .filter(|v| v.is_finite() && *v >= lo && *v <= hi)
            .collect();
        match ok.choose(self.rng) {
            Some(v) => json!(*v),
            None => json!(0),
        }
    }
}

fn plain_for_format(format: Option<&str>) -> &'static str {
    match format {
        Some("date-time") => "2024-01-02T03:04:05Z",
        Some("email") => "someone@example.com",
        Some("hostname") => "host.example.com",
        Some("ipv4") => "192.0.2.1",
        Some("ipv6") => "2001:db8::1",
        Some("uri") => "https://example.com/a",
        Some("password") => "pw",
        _ => "value",
    }
}

fn multiple_ok(s: &Map<String, Value>, v: f64) -> bool {
    match s.get("multipleOf").and_then(Value::as_f64) {
        Some(m) if m > 0.0 => (v / m).fract() == 0.0,
        _ => true,
    }
}

fn int_bounds(s: &Map<String, Value>) -> (i64, i64) {
    let excl = |key: &str| s.get(key).and_then(Value::as_bool).unwrap_or(false);
    let mut lo = s
        .get("minimum")
        .and_then(Value::as_f64)
        .map(|m| m.ceil() as i64)
        .unwrap_or(i64::MIN);
    let mut hi = s
        .get("maximum")
        .and_then(Value::as_f64)
        .map(|m| m.floor() as i64)
        .unwrap_or(i64::MAX);
    if excl("exclusiveMinimum") {
        lo = lo.saturating_add(1);
    }
    if excl("exclusiveMaximum") {
        hi = hi.saturating_sub(1);
    }
    (lo, hi.max(lo))
}

fn float_bounds(s: &Map<String, Value>) -> (f64, f64) {
    let lo = s.get("minimum").and_then(Value::as_f64).unwrap_or(f64::MIN);
    let hi = s.get("maximum").and_then(Value::as_f64).unwrap_or(f64::MAX);
    (lo, hi.max(lo))
}

/// `schema` with a local `$ref` (`#/definitions/x`) followed (a few hops).
pub fn resolve<'a>(mut schema: &'a Value, root: &'a Value) -> &'a Value {
    for _ in 0..8 {
        let Some(r) = schema.get("$ref").and_then(Value::as_str) else {
            return schema;
        };
        let target = match r.strip_prefix('#') {
            Some("") => Some(root),
            Some(p) => root.pointer(p),
            None => None,
        };
        match target {
            Some(t) => schema = t,
            None => return schema,
        }
    }
    schema
}

fn merge_all(s: &Map<String, Value>, branches: &[Value], root: &Value) -> Value {
    let mut merged = s.clone();
    merged.remove("allOf");
    let mut props = merged
        .get("properties")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let mut required: Vec<Value> = merged
        .get("required")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for b in branches {
        if let Value::Object(bo) = resolve(b, root) {
            if let Some(Value::Object(p)) = bo.get("properties") {
                for (k, v) in p {
                    props.entry(k.clone()).or_insert_with(|| v.clone());
                }
            }
            if let Some(Value::Array(r)) = bo.get("required") {
                required.extend(r.iter().cloned());
            }
            for (k, v) in bo {
                if k != "properties" && k != "required" {
                    merged.entry(k.clone()).or_insert_with(|| v.clone());
                }
            }
        }
    }
    if !props.is_empty() {
        merged.insert("properties".into(), Value::Object(props));
    }
    if !required.is_empty() {
        merged.insert("required".into(), Value::Array(required));
    }
    Value::Object(merged)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn dictionary_words() {
        let d = dictionary("local x = info.size or t:get('STOPPED') .. \"a b\" -- x.y");
        assert_eq!(d, vec!["STOPPED", "a b", "get", "size", "y"]);
    }

    #[test]
    fn canaries_are_found_by_path() {
        let mut c = Canaries::default();
        let a = c.token("parameters.a");
        let b = c.token("config.b");
        let text = format!("echo {b} x{a}y cnry99q cnryq");
        assert_eq!(c.found_in(&text), vec!["config.b", "parameters.a"]);
    }

    #[test]
    fn values_follow_the_schema() {
        let schema = json!({"type": "object", "required": ["n", "e"], "properties": {
            "n": {"type": "integer", "minimum": 1, "maximum": 10},
            "e": {"enum": ["a", "b"]},
            "s": {"type": "string", "maxLength": 5},
            "l": {"type": "array", "items": {"type": "boolean"}, "maxItems": 2}
        }});
        let mut rng = StdRng::seed_from_u64(1);
        let mut canaries = Canaries::default();
        for _ in 0..200 {
            let mut g = Gen {
                rng: &mut rng,
                canaries: &mut canaries,
                style: Style::Wild,
                with_canaries: true,
                dict: &[],
            };
            let v = g.value(&schema, &schema, "p");
            let n = v["n"].as_i64().unwrap();
            assert!((1..=10).contains(&n), "{v}");
            assert!(v["e"] == "a" || v["e"] == "b");
            if let Some(s) = v.get("s") {
                assert!(s.as_str().unwrap().chars().count() <= 5);
            }
            if let Some(l) = v.get("l") {
                assert!(l.as_array().unwrap().len() <= 2);
            }
        }
    }
}
