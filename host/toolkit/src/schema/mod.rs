//! JSON Schema (draft-04) checks that always end: every schema check the
//! host makes (a Run call's `outputSchema`, a scripted response checked
//! against it, parameters at link and install, postSnapshot results against
//! `snapshotSchema`, discovery items) goes through [`Schema`].
//!
//! The rule, in one place:
//!
//! 1. **Before compiling**, a schema is analysed ([`analysis`]): bounded
//!    size and nesting, references only inside itself, no loop that never
//!    descends into the value, and no branches that multiply, so its cost is
//!    linear in the value it checks. A toolkit whose schemas fail this is
//!    rejected by `validate`; a hook's `outputSchema` that fails it is a bad
//!    call.
//! 2. **Every check is metered** ([`metered`]) with a [`Budget`]: a step
//!    budget (which also bounds the memory the validator uses) and a
//!    deadline (a hook's own deadline, for checks made on its behalf). A
//!    check that runs out stops promptly and says so ([`CheckError::Exhausted`]).
//! 3. **One answer first.** A check asks the validator only whether the
//!    value is valid. Only for an invalid value does it collect what is
//!    wrong, under a small budget of its own, keeping at most
//!    [`MAX_REPORTED`] errors of at most [`MAX_ERROR_CHARS`] characters each.
//!
//! Patterns use the linear-time `regex` engine (no backtracking, so no
//! pattern can take exponential time; lookaround and backreferences are not
//! supported and are reported as an invalid schema). Validation whose
//! recursion can be deep runs on a thread with a large stack.
//!
//! ```
//! use lunabox_toolkit::schema::{Budget, CheckError, Schema};
//! use serde_json::json;
//!
//! let schema = Schema::compile(&json!({"type": "object", "required": ["port"]})).unwrap();
//! assert!(schema.check(&json!({"port": 5432}), &Budget::default()).is_ok());
//! let Err(CheckError::Invalid(v)) = schema.check(&json!({}), &Budget::default()) else { panic!() };
//! assert_eq!(v.errors, ["/: \"port\" is a required property"]);
//!
//! // Branches that lead back into the schema multiply: refused up front.
//! let branch = json!({"type": "array", "items": {"$ref": "#"}});
//! assert!(Schema::compile(&json!({"anyOf": [branch, branch]})).is_err());
//! ```

pub mod analysis;
pub mod metered;

use std::fmt::{self, Write as _};
use std::time::Instant;

use serde_json::Value;

pub use analysis::{Analysis, MAX_NODES, MAX_VISITS};
pub use metered::Exhaustion;
use metered::{MNode, Meter, Metered};

/// Steps a check may take unless told otherwise (a step is one read of
/// the value: a type test, a member, an element, 64 bytes of a string).
pub const DEFAULT_STEPS: u64 = 20_000_000;

/// Steps spent finding what is wrong with an invalid value.
pub const DETAIL_STEPS: u64 = 2_000_000;

/// Most errors reported for one invalid value.
pub const MAX_REPORTED: usize = 20;

/// Longest error text kept (characters).
pub const MAX_ERROR_CHARS: usize = 300;

/// Recursion estimate above which a check runs on its own thread.
const INLINE_RECURSION: u64 = 256;

/// Stack of the thread that runs deeply recursive checks.
const DEEP_STACK: usize = 256 << 20;

/// What one check may spend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// Steps (see [`DEFAULT_STEPS`]).
    pub steps: u64,
    /// When the check must have ended (e.g. the hook's deadline).
    pub deadline: Option<Instant>,
}

impl Default for Budget {
    fn default() -> Self {
        Budget {
            steps: DEFAULT_STEPS,
            deadline: None,
        }
    }
}

impl Budget {
    /// The default steps, ending by `deadline`.
    pub fn until(deadline: Option<Instant>) -> Budget {
        Budget {
            deadline,
            ..Budget::default()
        }
    }
}

/// A schema that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SchemaError {
    #[error("the schema has more than {nodes} JSON values; split or simplify it")]
    /// The schema has more than [`MAX_NODES`] JSON values.
    TooLarge {
        /// The limit exceeded ([`MAX_NODES`]).
        nodes: usize,
    },
    #[error(
        "the schema is nested more than {depth} levels deep; flatten it (use `definitions` and `$ref`)"
    )]
    /// The schema is nested deeper than [`crate::json::MAX_DEPTH`].
    TooDeep {
        /// The limit exceeded ([`crate::json::MAX_DEPTH`]).
        depth: usize,
    },
    #[error("{pointer}: {message}")]
    /// The schema uses something lunabox does not support (e.g. an `id` that
    /// changes the base URI).
    Unsupported {
        /// A JSON pointer to the part of the schema concerned.
        pointer: String,
        /// What is not supported and what to do instead.
        message: String,
    },
    #[error(
        "subschemas refer to each other without descending into the value ({}), so checking any value would never end; break the loop",
        path.join(" -> ")
    )]
    /// Subschemas refer to each other without descending into the value, so a
    /// check would never end.
    Loop {
        /// The subschemas of the loop, in order, ending where it started.
        path: Vec<String>,
    },
    #[error(
        "a value {depth} levels down could be checked {visits} times (more than {max}): branches of \
         anyOf/oneOf/allOf (or `$ref`s) that lead back into the same subschema multiply at every level \
         (look at {pointer}); merge the branches or make them apply to different values",
        max = MAX_VISITS
    )]
    /// Same-value branches (`anyOf`/`oneOf`/`allOf`, `$ref`) multiply: one
    /// value could be checked more than [`MAX_VISITS`] times.
    Multiplies {
        /// How many times a value could be checked.
        visits: u64,
        /// How many levels down that value is (0: the top).
        depth: usize,
        /// The subschema with the most visits among those that branch: where to
        /// look first.
        pointer: String,
    },
    /// jsonschema refused it (not a valid draft-04 schema).
    #[error("{0}")]
    Invalid(String),
}

/// What is wrong with a value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violations {
    /// `"<pointer>: <what>"`, at most [`MAX_REPORTED`].
    pub errors: Vec<String>,
    /// More errors were found than are listed, or finding them was cut
    /// short (the value is invalid either way).
    pub more: bool,
}

impl fmt::Display for Violations {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.errors.is_empty() {
            f.write_str(
                "the value does not match the schema (working out where would take too long)",
            )?;
        } else {
            f.write_str(&self.errors.join("; "))?;
        }
        if self.more && !self.errors.is_empty() {
            f.write_str("; ... (more errors not shown)")?;
        }
        Ok(())
    }
}

/// Why a check did not say "valid".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckError {
    /// The value does not match.
    #[error("{0}")]
    Invalid(Violations),
    /// The budget ran out before the answer was known.
    #[error("{}", exhaustion_words(*.0))]
    Exhausted(Exhaustion),
}

fn exhaustion_words(e: Exhaustion) -> String {
    match e {
        Exhaustion::Deadline => {
            "the deadline passed while checking the value against the schema".into()
        }
        Exhaustion::Steps(n) => format!(
            "checking the value against the schema needed more than {n} steps; the value is too large for \
             this schema (or the schema too costly for the value)"
        ),
    }
}

/// A compiled, analysed schema (see the module doc).
pub struct Schema {
    validator: jsonschema::Validator<Metered>,
    analysis: Analysis,
}

impl fmt::Debug for Schema {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Schema")
            .field("analysis", &self.analysis)
            .finish_non_exhaustive()
    }
}

/// Run `f` here, or on a thread with a large stack when `deep`.
fn on_stack<T: Send>(deep: bool, f: impl FnOnce() -> T + Send) -> T {
    if !deep {
        return f();
    }
    std::thread::scope(|s| {
        match std::thread::Builder::new()
            .name("lunabox-schema".into())
            .stack_size(DEEP_STACK)
            .spawn_scoped(s, f)
        {
            Ok(h) => h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)),
            Err(e) => panic!("cannot start a thread to check a schema: {e}"),
        }
    })
}

impl Schema {
    /// Analyse and compile `schema` as a draft-04 JSON Schema.
    pub fn compile(schema: &Value) -> Result<Schema, SchemaError> {
        let analysis = analysis::analyze(schema)?;
        let validator = on_stack(analysis.recursion > INLINE_RECURSION, || {
            jsonschema::options_for::<Metered>()
                .with_draft(jsonschema::Draft::Draft4)
                .with_pattern_options(
                    jsonschema::PatternOptions::regex()
                        .size_limit(1 << 20)
                        .dfa_size_limit(1 << 20),
                )
                .build(schema)
        })
        .map_err(|e| {
            let at = e.instance_path().to_string();
            let mut m = bounded(&e, MAX_ERROR_CHARS);
            if !at.is_empty() {
                m = format!("at {at}: {m}");
            }
            SchemaError::Invalid(m)
        })?;
        Ok(Schema {
            validator,
            analysis,
        })
    }

    /// What the analysis found.
    pub fn analysis(&self) -> Analysis {
        self.analysis
    }

    /// Check `value` within `budget`.
    pub fn check(&self, value: &Value, budget: &Budget) -> Result<(), CheckError> {
        on_stack(self.analysis.recursion > INLINE_RECURSION, || {
            self.check_here(value, budget)
        })
    }

    /// Whether `value` is valid, within `budget` (no error details).
    pub fn is_valid(&self, value: &Value, budget: &Budget) -> Result<bool, Exhaustion> {
        on_stack(self.analysis.recursion > INLINE_RECURSION, || {
            let meter = Meter::new(budget.steps, budget.deadline);
            let valid = self.validator.is_valid(MNode::new(value, &meter));
            match meter.exhausted() {
                Some(e) => Err(e),
                None => Ok(valid),
            }
        })
    }

    fn check_here(&self, value: &Value, budget: &Budget) -> Result<(), CheckError> {
        let meter = Meter::new(budget.steps, budget.deadline);
        let valid = self.validator.is_valid(MNode::new(value, &meter));
        if let Some(e) = meter.exhausted() {
            return Err(CheckError::Exhausted(e));
        }
        if valid {
            return Ok(());
        }
        let detail = Meter::new(budget.steps.min(DETAIL_STEPS), budget.deadline);
        let mut errors = Vec::new();
        let mut more = false;
        for e in self.validator.iter_errors(MNode::new(value, &detail)) {
            if errors.len() == MAX_REPORTED {
                more = true;
                break;
            }
            let at = e.instance_path().to_string();
            let at = if at.is_empty() { "/".to_string() } else { at };
            errors.push(format!("{at}: {}", bounded(&e, MAX_ERROR_CHARS)));
        }
        if detail.exhausted().is_some() {
            // Past the trip every container read as empty: the errors may
            // be made up. Only the answer "invalid" is sure.
            errors.clear();
            more = true;
        }
        Err(CheckError::Invalid(Violations { errors, more }))
    }
}

/// `v`'s text, cut at `limit` characters (without formatting the rest: an
/// error's text may quote a huge value).
pub fn bounded(v: &impl fmt::Display, limit: usize) -> String {
    struct Cap {
        out: String,
        left: usize,
        cut: bool,
    }
    impl fmt::Write for Cap {
        fn write_str(&mut self, s: &str) -> fmt::Result {
            for ch in s.chars() {
                if self.left == 0 {
                    self.cut = true;
                    return Err(fmt::Error);
                }
                self.out.push(ch);
                self.left -= 1;
            }
            Ok(())
        }
    }
    let mut cap = Cap {
        out: String::new(),
        left: limit,
        cut: false,
    };
    let _ = write!(cap, "{v}");
    if cap.cut {
        cap.out.push_str("...");
    }
    cap.out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::time::Duration;

    fn nested_arrays(depth: usize, leaf: Value) -> Value {
        let mut v = leaf;
        for _ in 0..depth {
            v = Value::Array(vec![v]);
        }
        v
    }

    #[test]
    fn errors_have_pointers_and_are_few_and_short() {
        let s = Schema::compile(&json!({
            "type": "object",
            "properties": {"a": {"type": "string"}, "b": {"type": "array", "items": {"type": "integer"}}},
            "required": ["c"]
        }))
        .unwrap();
        let Err(CheckError::Invalid(v)) =
            s.check(&json!({"a": 1, "b": [1, "x"]}), &Budget::default())
        else {
            panic!()
        };
        assert!(
            v.errors
                .contains(&"/a: 1 is not of type \"string\"".to_string()),
            "{v}"
        );
        assert!(
            v.errors
                .contains(&"/b/1: \"x\" is not of type \"integer\"".to_string()),
            "{v}"
        );
        assert!(
            v.errors
                .contains(&"/: \"c\" is a required property".to_string()),
            "{v}"
        );

        let s = Schema::compile(&json!({"type": "array", "items": {"type": "string"}})).unwrap();
        let many = Value::Array((0..1000).map(|i| json!(i)).collect());
        let Err(CheckError::Invalid(v)) = s.check(&many, &Budget::default()) else {
            panic!()
        };
        assert_eq!(v.errors.len(), MAX_REPORTED);
        assert!(v.more);
        let s = Schema::compile(&json!({"enum": ["x"]})).unwrap();
        let huge = json!("y".repeat(1 << 20));
        let Err(CheckError::Invalid(v)) = s.check(&huge, &Budget::default()) else {
            panic!()
        };
        assert!(
            v.errors[0].chars().count() <= MAX_ERROR_CHARS + 10,
            "{}",
            v.errors[0].len()
        );
    }

    #[test]
    fn a_costly_check_stops_at_its_step_budget() {
        let s = Schema::compile(
            &json!({"type": "array", "items": {"type": "object", "required": ["k"]}}),
        )
        .unwrap();
        let value = Value::Array((0..200_000).map(|i| json!({"k": i})).collect());
        let budget = Budget {
            steps: 100_000,
            deadline: None,
        };
        let started = Instant::now();
        assert_eq!(
            s.check(&value, &budget),
            Err(CheckError::Exhausted(Exhaustion::Steps(100_000)))
        );
        assert!(started.elapsed() < Duration::from_secs(1));
        assert!(s.check(&value, &Budget::default()).is_ok());
    }

    #[test]
    fn a_check_stops_at_its_deadline() {
        let s = Schema::compile(
            &json!({"type": "array", "items": {"type": "array", "items": {"minLength": 1}}}),
        )
        .unwrap();
        let row = Value::Array(vec![json!("x"); 1000]);
        let value = Value::Array(vec![row; 5000]);
        let budget = Budget {
            steps: u64::MAX,
            deadline: Some(Instant::now()),
        };
        assert_eq!(
            s.check(&value, &budget),
            Err(CheckError::Exhausted(Exhaustion::Deadline))
        );
    }

    #[test]
    fn deep_values_against_recursive_schemas_do_not_overflow() {
        let s = Schema::compile(&json!({"type": "array", "items": {"$ref": "#"}})).unwrap();
        let v = nested_arrays(crate::json::MAX_DEPTH - 1, json!([]));
        assert!(s.check(&v, &Budget::default()).is_ok());
        let bad = nested_arrays(crate::json::MAX_DEPTH - 1, json!("x"));
        assert!(matches!(
            s.check(&bad, &Budget::default()),
            Err(CheckError::Invalid(_))
        ));
    }

    #[test]
    fn backtracking_patterns_are_linear_and_lookaround_is_refused() {
        let s = Schema::compile(&json!({"pattern": "^(a+)+$"})).unwrap();
        let evil = json!(format!("{}!", "a".repeat(100_000)));
        let started = Instant::now();
        assert!(matches!(
            s.check(&evil, &Budget::default()),
            Err(CheckError::Invalid(_))
        ));
        assert!(started.elapsed() < Duration::from_secs(1));
        assert!(matches!(
            Schema::compile(&json!({"pattern": "(?=a)a"})),
            Err(SchemaError::Invalid(_))
        ));
    }
}
