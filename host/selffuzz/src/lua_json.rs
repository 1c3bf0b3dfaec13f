//! Target (b): a JSON value passed into a hook as a global and returned.
//!
//! The guest's rules (`guest-lua/src/json.c`) say exactly what comes back,
//! and [`through_lua`] is an independent model of them: `null` is nil (an
//! object member that is `null` disappears, an array's `null` leaves a hole,
//! so trailing ones vanish and inner ones make a sparse table that cannot be
//! returned), `[]` stays `[]`, an array of nulls only is an empty table
//! (`{}`), integers that fit 64 bits stay integers and bigger ones become
//! floats; object keys come back sorted bytewise. The hook's outcome must
//! be the model's value, or its error as a bad result naming the problem. Values near the nesting limit may also be
//! refused with a clear error; no value may make the host fail, trap or
//! hang.

use std::time::Duration;

use arbitrary::Unstructured;
use lunabox_sandbox::{HookRequest, Limits, Outcome, ScriptErrorKind};
use serde_json::{Map, Number, Value};

use crate::make;

/// What a JSON value becomes in Lua: `Ok(None)` is nil.
pub type Lua = Result<Option<Value>, String>;

/// The model of a value's trip into Lua and back (see the module doc).
pub fn through_lua(v: &Value) -> Lua {
    Ok(match v {
        Value::Null => None,
        Value::Bool(_) | Value::String(_) => Some(v.clone()),
        Value::Number(n) => Some(Value::Number(if n.is_i64() || n.is_f64() {
            n.clone()
        } else {
            // A u64 above i64::MAX is read as a float.
            Number::from_f64(n.as_f64().unwrap_or(0.0)).unwrap_or_else(|| n.clone())
        })),
        Value::Array(a) if a.is_empty() => Some(Value::Array(Vec::new())),
        Value::Array(a) => {
            let mut present = Vec::new();
            let mut last = 0;
            for (i, item) in a.iter().enumerate() {
                if let Some(x) = through_lua(item)? {
                    present.push(x);
                    last = i + 1;
                }
            }
            if present.is_empty() {
                Some(Value::Object(Map::new()))
            } else if last != present.len() {
                return Err(format!(
                    "sparse array: {} items but largest key is [{last}]",
                    present.len()
                ));
            } else {
                Some(Value::Array(present))
            }
        }
        Value::Object(m) => {
            // The guest writes an object's keys sorted bytewise.
            let mut members: Vec<(&String, &Value)> = m.iter().collect();
            members.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            let mut out = Map::new();
            for (k, item) in members {
                if let Some(x) = through_lua(item)? {
                    out.insert(k.clone(), x);
                }
            }
            Some(Value::Object(out))
        }
    })
}

/// The hooks the value goes through, and how each wraps the model's value.
/// What a hook's result is made of the model's value.
type Wrap = fn(Option<Value>) -> Value;

const HOOKS: &[(&str, Wrap)] = &[
    ("return input", as_returned),
    ("local x = input\nreturn {v = x}", in_table),
];

fn as_returned(v: Option<Value>) -> Value {
    v.unwrap_or(Value::Null)
}

fn in_table(v: Option<Value>) -> Value {
    let mut m = Map::new();
    if let Some(v) = v {
        m.insert("v".into(), v);
    }
    Value::Object(m)
}

/// A value to send: generated, or nested near the limit.
fn value(u: &mut Unstructured) -> Value {
    if make::chance(u, 1, 16) {
        let depth = u.int_in_range(95..=103usize).unwrap_or(100);
        make::nested(depth, make::json(u, 0, 0))
    } else {
        make::json(u, 5, 4)
    }
}

/// Target (b): see the module doc.
pub fn target(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let u = &mut u;
    let input = value(u);
    let (script, wrap) = HOOKS[u.choose_index(HOOKS.len()).unwrap_or(0)];
    let near_limit = lunabox_toolkit::json::depth(&input) >= 95;
    let request = HookRequest::new(script, "roundtrip.lua")
        .with_global("input", input.clone())
        .with_limits(Limits {
            timeout: Duration::from_secs(10),
            memory: 64 << 20,
            ..Limits::default()
        });
    let outcome = crate::runtime().run_hook(request);
    let expected = through_lua(&input).map(wrap);
    match (&outcome.result, &expected) {
        (Outcome::Value(got), Ok(want)) => assert!(
            got == want && same_number_kinds(got, want),
            "round trip changed the value:\n sent {input}\n want {want}\n got  {got}"
        ),
        (Outcome::Error(e), Err(why)) if e.kind == ScriptErrorKind::BadResult => {
            let head = why.split(':').next().unwrap_or(why);
            assert!(
                e.message.contains(head),
                "the error does not say `{head}`: {}",
                e.message
            );
        }
        (Outcome::Error(e), _) if near_limit => assert!(
            e.message.contains("levels") || e.message.contains("deep"),
            "a value near the nesting limit is refused without saying so: {}",
            e.message
        ),
        (got, want) => panic!("sent {input}\n want {want:?}\n got {got:?}"),
    }
}

/// `a == b` and, deep inside, integers on one side are integers on the
/// other (serde_json compares 1 and 1.0 as different already; this also
/// checks floats stay floats where both are equal as f64).
fn same_number_kinds(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.is_f64() == y.is_f64(),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| same_number_kinds(p, q))
        }
        (Value::Object(x), Value::Object(y)) => x
            .iter()
            .all(|(k, p)| y.get(k).is_some_and(|q| same_number_kinds(p, q))),
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_model_follows_the_guest_rules() {
        assert_eq!(through_lua(&json!([1, null, null])), Ok(Some(json!([1]))));
        assert_eq!(through_lua(&json!([null])), Ok(Some(json!({}))));
        assert_eq!(through_lua(&json!([])), Ok(Some(json!([]))));
        assert_eq!(
            through_lua(&json!({"a": null, "b": 1})),
            Ok(Some(json!({"b": 1})))
        );
        assert!(
            through_lua(&json!([null, 1]))
                .unwrap_err()
                .starts_with("sparse array")
        );
        assert_eq!(
            through_lua(&json!(u64::MAX)),
            Ok(Some(json!(18446744073709551615.0f64)))
        );
        assert_eq!(through_lua(&Value::Null), Ok(None));
    }
}
