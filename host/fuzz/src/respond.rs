//! Run-call responses: an exit code (0, 1, 2, 127, 255), stdout and
//! stderr, and an output document made from the call's `outputSchema`,
//! then mutated (missing required fields, wrong types, `null`, empty
//! values, huge and deeply nested values, numbers at and past bounds,
//! invalid JSON, an empty file), or a command that hangs.

use lunabox_run::executors::scripted::Response;
use rand::Rng;
use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use serde_json::{Value, json};

use crate::values::{Canaries, Gen, Style};

/// The exit codes a response may have besides 0.
pub const FAILING_EXIT_CODES: [i32; 4] = [1, 2, 127, 255];

const STREAMS: &[&str] = &[
    "",
    "",
    "ok\n",
    "line one\nline two\n",
    "ERROR: the command failed\n",
    "ACTIVE\n",
    "ünïcødé ☃\n",
];

/// A fresh response to a call with this output schema: mostly a success
/// with a document valid against the schema.
pub fn fresh(schema: Option<&Value>, rng: &mut StdRng, dict: &[String]) -> Response {
    let exit_code = if rng.random_bool(0.85) {
        0
    } else {
        *FAILING_EXIT_CODES.choose(rng).expect("not empty")
    };
    let mut r = Response {
        exit_code,
        stdout: STREAMS.choose(rng).expect("not empty").to_string(),
        stderr: STREAMS.choose(rng).expect("not empty").to_string(),
        output: Vec::new(),
        hang: false,
    };
    if let Some(s) = schema {
        let v = valid_document(s, rng, dict);
        r.output = serde_json::to_vec(&v).expect("a JSON value serializes");
        if rng.random_bool(0.3) {
            mutate_output(&mut r, Some(s), rng, dict);
        }
    }
    r
}

/// A document for `schema`, in the schema's own shape.
pub fn valid_document(schema: &Value, rng: &mut StdRng, dict: &[String]) -> Value {
    let mut canaries = Canaries::default();
    let style = if rng.random_bool(0.3) {
        Style::Plain
    } else {
        Style::Wild
    };
    Gen {
        rng,
        canaries: &mut canaries,
        style,
        with_canaries: false,
        dict,
    }
    .value(schema, schema, "output")
}

/// Change one thing about `r`.
pub fn mutate(
    r: &mut Response,
    schema: Option<&Value>,
    rng: &mut StdRng,
    hangs: bool,
    dict: &[String],
) {
    match rng.random_range(0..10) {
        0 => {
            r.exit_code = if r.exit_code == 0 {
                *FAILING_EXIT_CODES.choose(rng).expect("not empty")
            } else {
                0
            }
        }
        1 => r.stdout = STREAMS.choose(rng).expect("not empty").to_string(),
        2 => r.stderr = STREAMS.choose(rng).expect("not empty").to_string(),
        3 if hangs && rng.random_bool(0.1) => r.hang = true,
        4 | 5 => {
            if let Some(s) = schema {
                r.output = serde_json::to_vec(&valid_document(s, rng, dict)).expect("serializes");
            }
            r.exit_code = 0;
            r.hang = false;
        }
        _ => {
            r.exit_code = 0;
            r.hang = false;
            mutate_output(r, schema, rng, dict);
        }
    }
}

/// Mutate the output document of `r` (made valid first if it has none).
pub fn mutate_output(r: &mut Response, schema: Option<&Value>, rng: &mut StdRng, dict: &[String]) {
    let mut doc = lunabox_toolkit::json::parse_slice(&r.output)
        .ok()
        .or_else(|| schema.map(|s| valid_document(s, rng, dict)))
        .unwrap_or(Value::Null);
    let text = match rng.random_range(0..14) {
        12 | 13 if !dict.is_empty() => {
            // A field or value the hook's script names.
            let w = dict.choose(rng).expect("not empty").clone();
            let v = match rng.random_range(0..4) {
                0 => json!(rng.random_range(-2..100)),
                1 => json!(w.clone()),
                2 => json!(true),
                _ => json!(*crate::values::EDGE_STRINGS.choose(rng).expect("not empty")),
            };
            match &mut doc {
                Value::Object(o) => {
                    o.insert(w, v);
                }
                Value::String(_) => doc = json!(w),
                _ => replace_a_node(&mut doc, rng, |_, _| v.clone()),
            }
            None
        }
        0 => {
            drop_a_field(&mut doc, rng);
            None
        }
        1 => {
            replace_a_node(&mut doc, rng, wrong_type);
            None
        }
        2 => {
            replace_a_node(&mut doc, rng, |_, _| Value::Null);
            None
        }
        3 => {
            replace_a_node(&mut doc, rng, empty_like);
            None
        }
        4 => {
            replace_a_node(&mut doc, rng, |_, rng| huge(rng));
            None
        }
        5 => {
            let depth = *[20usize, 60, 99, 150].choose(rng).expect("not empty");
            replace_a_node(&mut doc, rng, move |_, _| deep(depth));
            None
        }
        6 => {
            replace_a_node(&mut doc, rng, |_, rng| bound_number(rng));
            None
        }
        7 => Some(
            [
                "{",
                "not json",
                "ACTIVE",
                "[1,",
                "{\"a\":}",
                "1 2",
                "\u{feff}{}",
                "'single'",
            ]
            .choose(rng)
            .expect("not empty")
            .to_string(),
        ),
        8 => Some(String::new()),
        9 => Some(" \n".to_string()),
        10 => {
            doc = match rng.random_range(0..4) {
                0 => json!({}),
                1 => json!([]),
                2 => json!(""),
                _ => Value::Null,
            };
            None
        }
        _ => {
            replace_a_node(&mut doc, rng, |_, rng| {
                json!(*crate::values::EDGE_STRINGS.choose(rng).expect("not empty"))
            });
            None
        }
    };
    r.output = match text {
        Some(t) => t.into_bytes(),
        None => serde_json::to_vec(&doc).expect("a JSON value serializes"),
    };
}

/// Every node of `v` as a JSON pointer ("" is the root).
fn pointers(v: &Value, at: String, out: &mut Vec<String>) {
    if out.len() > 2000 {
        return;
    }
    match v {
        Value::Object(o) => {
            for (k, x) in o {
                pointers(
                    x,
                    format!("{at}/{}", k.replace('~', "~0").replace('/', "~1")),
                    out,
                );
            }
        }
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate().take(50) {
                pointers(x, format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
    out.push(at);
}

fn replace_a_node(doc: &mut Value, rng: &mut StdRng, f: impl Fn(&Value, &mut StdRng) -> Value) {
    let mut all = Vec::new();
    pointers(doc, String::new(), &mut all);
    let at = all.choose(rng).cloned().unwrap_or_default();
    if let Some(node) = doc.pointer_mut(&at) {
        let new = f(node, rng);
        *node = new;
    }
}

fn drop_a_field(doc: &mut Value, rng: &mut StdRng) {
    let mut all = Vec::new();
    pointers(doc, String::new(), &mut all);
    let objects: Vec<String> = all
        .into_iter()
        .filter(|p| {
            doc.pointer(p)
                .is_some_and(|v| v.as_object().is_some_and(|o| !o.is_empty()))
        })
        .collect();
    if let Some(p) = objects.choose(rng)
        && let Some(Value::Object(o)) = doc.pointer_mut(p)
    {
        let keys: Vec<String> = o.keys().cloned().collect();
        if let Some(k) = keys.choose(rng) {
            o.remove(k);
        }
    }
}

fn wrong_type(v: &Value, rng: &mut StdRng) -> Value {
    let options = [
        json!("text"),
        json!(42),
        json!(-1.5),
        json!(true),
        json!([]),
        json!({}),
        json!(["a"]),
        json!({"a": 1}),
    ];
    let kind = std::mem::discriminant(v);
    let other: Vec<&Value> = options
        .iter()
        .filter(|o| std::mem::discriminant(*o) != kind)
        .collect();
    other
        .choose(rng)
        .map(|v| (*v).clone())
        .unwrap_or(Value::Null)
}

fn empty_like(v: &Value, rng: &mut StdRng) -> Value {
    match v {
        Value::String(_) => json!(""),
        Value::Array(_) => json!([]),
        Value::Object(_) => json!({}),
        Value::Number(_) => json!(0),
        _ => [json!(""), json!([]), json!({})]
            .choose(rng)
            .expect("not empty")
            .clone(),
    }
}

fn huge(rng: &mut StdRng) -> Value {
    match rng.random_range(0..3) {
        0 => Value::String("x".repeat(64 << 10)),
        1 => Value::Array((0..1000).map(|i| json!(i)).collect()),
        _ => Value::Object((0..300).map(|i| (format!("k{i}"), json!(i))).collect()),
    }
}

fn deep(depth: usize) -> Value {
    let mut v = json!("bottom");
    for _ in 0..depth {
        v = Value::Array(vec![v]);
    }
    v
}

fn bound_number(rng: &mut StdRng) -> Value {
    [
        json!(i64::MAX),
        json!(i64::MIN),
        json!(u64::MAX),
        json!(-1),
        json!(0),
        json!(1e308),
        json!(-1e308),
        json!(9007199254740993i64),
        json!(2147483648i64),
        json!(0.1),
    ]
    .choose(rng)
    .expect("not empty")
    .clone()
}
