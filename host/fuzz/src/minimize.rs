//! Minimizing a finding: the smallest context and responses that still
//! reproduce it (same kind, same location), tried against the responses
//! file's own executor, so what is written is what `run-hook` replays.

use lunabox_run::executors::scripted::Response;
use serde_json::Value;

use crate::classify::Kind;
use crate::exec::Planned;
use crate::input::{Input, remove_at};

/// Runs a candidate and says whether it still shows the finding.
pub trait Check {
    /// Whether `input` still reproduces the finding.
    fn still(&mut self, input: &Input) -> bool;
}

/// Smaller versions of a JSON value, one step each.
fn shrinks(v: &Value, keep_canary: bool) -> Vec<Value> {
    let mut pointers = Vec::new();
    all_pointers(v, String::new(), &mut pointers);
    let mut out = Vec::new();
    for at in pointers.iter().rev() {
        if at.is_empty() {
            continue;
        }
        let mut removed = v.clone();
        if remove_at(&mut removed, at) {
            out.push(removed);
        }
    }
    for at in &pointers {
        let Some(node) = v.pointer(at) else { continue };
        let simpler: Vec<Value> = match node {
            Value::String(s) if s.len() > 1 => {
                let mut c = Vec::new();
                if keep_canary && let Some(t) = canary_of(s) {
                    if t != *s {
                        c.push(Value::String(t));
                    }
                } else {
                    c.push(Value::String("x".into()));
                    c.push(Value::String(String::new()));
                    if s.chars().count() > 16 {
                        c.push(Value::String(s.chars().take(16).collect()));
                    }
                }
                c
            }
            Value::Array(a) if a.len() > 1 => vec![Value::Array(vec![a[0].clone()])],
            Value::Number(n) if n.as_i64() != Some(0) && n.as_i64() != Some(1) => {
                vec![Value::from(1), Value::from(0)]
            }
            _ => Vec::new(),
        };
        for s in simpler {
            let mut c = v.clone();
            if let Some(n) = c.pointer_mut(at) {
                *n = s;
                out.push(c);
            }
        }
    }
    out
}

fn canary_of(s: &str) -> Option<String> {
    let i = s.find("cnry")?;
    let rest = &s[i + 4..];
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    (!digits.is_empty() && rest[digits.len()..].starts_with('q')).then(|| format!("cnry{digits}q"))
}

fn all_pointers(v: &Value, at: String, out: &mut Vec<String>) {
    if out.len() > 400 {
        return;
    }
    out.push(at.clone());
    match v {
        Value::Object(o) => {
            for (k, x) in o {
                all_pointers(
                    x,
                    format!("{at}/{}", k.replace('~', "~0").replace('/', "~1")),
                    out,
                );
            }
        }
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate().take(20) {
                all_pointers(x, format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
}

/// Simpler versions of one response.
fn response_shrinks(r: &Response) -> Vec<Response> {
    let mut out = Vec::new();
    if *r != Response::default() {
        out.push(Response::default());
    }
    if r.exit_code != 0 {
        out.push(Response {
            exit_code: r.exit_code,
            ..Response::default()
        });
    }
    if !r.stdout.is_empty() {
        out.push(Response {
            stdout: String::new(),
            ..r.clone()
        });
    }
    if !r.stderr.is_empty() {
        out.push(Response {
            stderr: String::new(),
            ..r.clone()
        });
    }
    if !r.output.is_empty() {
        match lunabox_toolkit::json::parse_slice(&r.output) {
            Ok(v) => {
                for s in shrinks(&v, false) {
                    out.push(Response {
                        output: serde_json::to_vec(&s).expect("serializes"),
                        ..r.clone()
                    });
                }
            }
            Err(_) if r.output.len() > 8 => out.push(Response {
                output: r.output[..8].to_vec(),
                ..r.clone()
            }),
            Err(_) => {}
        }
    }
    out
}

/// Minimize `input` for a finding of `kind`, within `budget` runs.
pub fn minimize(input: &Input, kind: Kind, budget: usize, check: &mut dyn Check) -> Input {
    let mut best = input.clone();
    let mut left = budget;
    let attempt = |cand: &Input, left: &mut usize, check: &mut dyn Check| -> bool {
        if *left == 0 {
            return false;
        }
        *left -= 1;
        check.still(cand)
    };
    // 1. Fewer planned answers (a call without one gets the default: exit
    //    0, no output).
    let mut i = best.plan.len();
    while i > 0 {
        i -= 1;
        let mut cand = best.clone();
        cand.plan.remove(i);
        if attempt(&cand, &mut left, check) {
            best = cand;
        }
    }
    // 2. Simpler answers.
    for i in 0..best.plan.len() {
        let mut progress = true;
        while progress && left > 0 {
            progress = false;
            for r in response_shrinks(&best.plan[i].response) {
                let mut cand = best.clone();
                cand.plan[i] = Planned {
                    response: r,
                    ..best.plan[i].clone()
                };
                if attempt(&cand, &mut left, check) {
                    best = cand;
                    progress = true;
                    break;
                }
            }
        }
    }
    // 3. A simpler context (source and remote stay: the engine makes them).
    let keep_canary = kind == Kind::Injection;
    for part in ["parameters", "config", "repository", "snapshotJson"] {
        let mut progress = true;
        while progress && left > 0 {
            progress = false;
            let Some(v) = best.context.get(part) else {
                break;
            };
            let candidates = match v {
                Value::String(s) if part == "snapshotJson" && s != "{}" => {
                    vec![Value::String("{}".into())]
                }
                Value::String(_) => Vec::new(),
                other => shrinks(other, keep_canary),
            };
            for c in candidates {
                let mut cand = best.clone();
                cand.context.insert(part.to_string(), c);
                if attempt(&cand, &mut left, check) {
                    best = cand;
                    progress = true;
                    break;
                }
            }
        }
    }
    best
}
