//! What a schema can cost, worked out from the schema alone, before it is
//! compiled or used.
//!
//! A draft-04 schema is a graph: subschemas that apply to the *same* value
//! (`allOf`, `anyOf`, `oneOf`, `not`, `$ref`, schema `dependencies`) and
//! subschemas that apply to a *member or element* of it (`properties`,
//! `patternProperties`, `additionalProperties`, `items`,
//! `additionalItems`). The validator's work on one value is the number of
//! paths through that graph that reach it. This module counts, for each
//! depth of a value up to [`crate::json::MAX_DEPTH`], the most subschemas
//! that can apply to one value at that depth (taking, for a member, the one
//! `properties` entry or `additionalProperties` it can match plus every
//! `patternProperties` entry, and for an element the one `items` entry or
//! `additionalItems`), and the deepest chain of nested subschema
//! applications. A schema is refused when:
//!
//! - it is larger than [`MAX_NODES`] JSON values or nested deeper than
//!   [`crate::json::MAX_DEPTH`];
//! - a `$ref` does not point into the schema itself (lunabox never fetches
//!   schemas) or a subschema changes the base URI with `id`;
//! - subschemas refer to each other in a loop without descending into the
//!   value (`{"$ref": "#"}` at the top, or `a -> b -> a` through `allOf`):
//!   such a schema never finishes on any value;
//! - one value could be checked more than [`MAX_VISITS`] times: branches
//!   that lead back into the same subschema multiply at every level (an
//!   `anyOf` of two branches that both recurse into `#` checks a value 20
//!   levels down a million times).
//!
//! What is left has a cost linear in the size of the value it checks, and
//! the check's own meter (see [`super::metered`]) bounds even that.

use std::collections::HashMap;

use serde_json::Value;

use super::SchemaError;
use crate::json::MAX_DEPTH;

/// Most JSON values (objects, arrays, strings, ... all counted) in a schema.
pub const MAX_NODES: usize = 100_000;

/// Most subschemas that may apply to one value, at any depth.
pub const MAX_VISITS: u64 = 10_000;

/// Stands in for a subschema with no edges.
static NULL: Value = Value::Null;

/// The draft-04 meta-schema, which jsonschema knows without fetching.
const META_DRAFT4: &str = "http://json-schema.org/draft-04/schema";

/// What the analysis found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Analysis {
    /// Subschemas in the schema.
    pub subschemas: usize,
    /// Most subschemas that can apply to one value (at its worst depth).
    pub visits: u64,
    /// Longest chain of nested subschema applications over a value of
    /// the deepest allowed nesting: how deep the validator's recursion goes.
    pub recursion: u64,
}

/// Where the subschemas of one subschema apply.
#[derive(Debug, Default)]
struct Edges {
    /// To the same value.
    same: Vec<usize>,
    /// `properties` entries (a member matches at most one).
    props: Vec<usize>,
    /// `patternProperties` entries (a member may match all).
    patterns: Vec<usize>,
    additional_props: Option<usize>,
    /// `items` as one schema (every element).
    items: Option<usize>,
    /// `items` as an array (element i gets entry i).
    tuple: Vec<usize>,
    additional_items: Option<usize>,
}

struct Graph<'a> {
    root: &'a Value,
    /// Subschema address -> index.
    index: HashMap<*const Value, usize>,
    nodes: Vec<&'a Value>,
    pointers: Vec<String>,
    edges: Vec<Edges>,
    /// `id: "#name"` anchors.
    anchors: HashMap<String, usize>,
    /// The root's `id` without its fragment, when it has one.
    base: Option<String>,
    /// Index of the stand-in for the draft-04 meta-schema, once referred to.
    meta: Option<usize>,
}

fn escape(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}

/// Check the schema's size and nesting without recursion.
fn check_shape(schema: &Value) -> Result<(), SchemaError> {
    let mut count = 0usize;
    let mut stack = vec![(schema, 1usize)];
    while let Some((v, depth)) = stack.pop() {
        count += 1;
        if count > MAX_NODES {
            return Err(SchemaError::TooLarge { nodes: MAX_NODES });
        }
        if depth > MAX_DEPTH {
            return Err(SchemaError::TooDeep { depth: MAX_DEPTH });
        }
        match v {
            Value::Array(a) => stack.extend(a.iter().map(|c| (c, depth + 1))),
            Value::Object(o) => stack.extend(o.values().map(|c| (c, depth + 1))),
            _ => {}
        }
    }
    Ok(())
}

/// Percent-decode a URI fragment.
fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let h = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(h, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

impl<'a> Graph<'a> {
    fn new(root: &'a Value) -> Graph<'a> {
        let base = root
            .get("id")
            .and_then(Value::as_str)
            .map(|id| id.split('#').next().unwrap_or("").to_string())
            .filter(|b| !b.is_empty());
        Graph {
            root,
            index: HashMap::new(),
            nodes: Vec::new(),
            pointers: Vec::new(),
            edges: Vec::new(),
            anchors: HashMap::new(),
            base,
            meta: None,
        }
    }

    /// The index of the subschema `v` (at `pointer`), adding it and every
    /// subschema under it.
    fn add(&mut self, v: &'a Value, pointer: String) -> Result<usize, SchemaError> {
        if let Some(&i) = self.index.get(&std::ptr::from_ref(v)) {
            return Ok(i);
        }
        let first = self.nodes.len();
        let mut pending = vec![(v, pointer)];
        while let Some((v, pointer)) = pending.pop() {
            if self.index.contains_key(&std::ptr::from_ref(v)) {
                continue;
            }
            let i = self.nodes.len();
            self.index.insert(std::ptr::from_ref(v), i);
            self.nodes.push(v);
            self.pointers.push(pointer.clone());
            self.edges.push(Edges::default());
            let Value::Object(o) = v else { continue };
            if let Some(id) = o.get("id").and_then(Value::as_str)
                && i != 0
            {
                match id.strip_prefix('#') {
                    Some(name) if !name.is_empty() && !name.starts_with('/') => {
                        self.anchors.insert(name.to_string(), i);
                    }
                    _ if id.is_empty() => {}
                    _ => {
                        return Err(SchemaError::Unsupported {
                            pointer: format!("{pointer}/id"),
                            message: format!(
                                "`id: \"{id}\"` changes the base URI of a subschema, which lunabox does \
                                 not support; drop it, or name the subschema with a plain `#name` id"
                            ),
                        });
                    }
                }
            }
            for key in ["not", "additionalProperties", "additionalItems", "items"] {
                if let Some(sub @ Value::Object(_)) = o.get(key) {
                    pending.push((sub, format!("{pointer}/{key}")));
                }
            }
            for key in ["items", "allOf", "anyOf", "oneOf"] {
                if let Some(Value::Array(subs)) = o.get(key) {
                    for (n, sub) in subs.iter().enumerate() {
                        if sub.is_object() {
                            pending.push((sub, format!("{pointer}/{key}/{n}")));
                        }
                    }
                }
            }
            for key in [
                "properties",
                "patternProperties",
                "definitions",
                "dependencies",
            ] {
                if let Some(Value::Object(subs)) = o.get(key) {
                    for (name, sub) in subs {
                        if sub.is_object() {
                            pending.push((sub, format!("{pointer}/{key}/{}", escape(name))));
                        }
                    }
                }
            }
        }
        Ok(self
            .index
            .get(&std::ptr::from_ref(v))
            .copied()
            .unwrap_or(first))
    }

    /// Resolve the `$ref` of subschema `from`.
    fn resolve(&mut self, from: usize, reference: &str) -> Result<usize, SchemaError> {
        let unsupported = |message: String| SchemaError::Unsupported {
            pointer: format!("{}/$ref", self.pointers[from]),
            message,
        };
        let (doc, fragment) = match reference.split_once('#') {
            Some((d, f)) => (d, f),
            None => (reference, ""),
        };
        let doc = doc.trim_end_matches('#');
        if !doc.is_empty() && self.base.as_deref() != Some(doc) {
            if doc.trim_end_matches('/') == META_DRAFT4 && fragment.is_empty() {
                return Ok(self.meta_node());
            }
            return Err(unsupported(format!(
                "`$ref: \"{reference}\"` points outside this schema, and lunabox never fetches schemas; \
                 put the referenced schema under `definitions` and refer to it as `#/definitions/NAME`"
            )));
        }
        if fragment.is_empty() {
            return Ok(0);
        }
        let Some(fragment) = percent_decode(fragment) else {
            return Err(unsupported(format!(
                "`$ref: \"{reference}\"` is not a valid URI fragment"
            )));
        };
        if !fragment.starts_with('/') {
            return self.anchors.get(&fragment).copied().ok_or_else(|| {
                unsupported(format!(
                    "`$ref: \"{reference}\"` names no subschema (no `id: \"#{fragment}\"` in the schema)"
                ))
            });
        }
        let mut here = self.root;
        let mut pointer = String::new();
        for token in fragment[1..].split('/') {
            let token = token.replace("~1", "/").replace("~0", "~");
            let next = match here {
                Value::Object(o) => o.get(&token),
                Value::Array(a) => token.parse::<usize>().ok().and_then(|n| a.get(n)),
                _ => None,
            };
            let Some(next) = next else {
                return Err(unsupported(format!(
                    "`$ref: \"{reference}\"` points to nothing in this schema; fix the path"
                )));
            };
            pointer.push('/');
            pointer.push_str(&escape(&token));
            here = next;
        }
        if !here.is_object() {
            return Err(unsupported(format!(
                "`$ref: \"{reference}\"` points to a {}, not a schema",
                crate::json::kind(here)
            )));
        }
        self.add(here, pointer)
    }

    /// The stand-in for the draft-04 meta-schema: applies, recurses no
    /// further as far as this analysis goes (it is a fixed, well-behaved
    /// schema).
    fn meta_node(&mut self) -> usize {
        if let Some(m) = self.meta {
            return m;
        }
        let i = self.nodes.len();
        self.nodes.push(&NULL);
        self.pointers.push(META_DRAFT4.to_string());
        self.edges.push(Edges::default());
        self.meta = Some(i);
        i
    }

    /// Fill in every subschema's edges (resolving `$ref`s may add nodes).
    fn link(&mut self) -> Result<(), SchemaError> {
        let mut i = 0;
        while i < self.nodes.len() {
            if Some(i) == self.meta {
                i += 1;
                continue;
            }
            let v = self.nodes[i];
            let Value::Object(o) = v else {
                i += 1;
                continue;
            };
            let mut e = Edges::default();
            if let Some(r) = o.get("$ref") {
                // Draft 4: a `$ref` replaces everything beside it.
                let Some(r) = r.as_str() else {
                    return Err(SchemaError::Unsupported {
                        pointer: format!("{}/$ref", self.pointers[i]),
                        message: "`$ref` must be a string".into(),
                    });
                };
                e.same.push(self.resolve(i, r)?);
                self.edges[i] = e;
                i += 1;
                continue;
            }
            let idx = |g: &Self, sub: &Value| g.index.get(&std::ptr::from_ref(sub)).copied();
            for key in ["allOf", "anyOf", "oneOf"] {
                if let Some(Value::Array(subs)) = o.get(key) {
                    e.same.extend(subs.iter().filter_map(|s| idx(self, s)));
                }
            }
            if let Some(n) = o.get("not").and_then(|s| idx(self, s)) {
                e.same.push(n);
            }
            if let Some(Value::Object(deps)) = o.get("dependencies") {
                e.same.extend(deps.values().filter_map(|s| idx(self, s)));
            }
            if let Some(Value::Object(props)) = o.get("properties") {
                e.props.extend(props.values().filter_map(|s| idx(self, s)));
            }
            if let Some(Value::Object(props)) = o.get("patternProperties") {
                e.patterns
                    .extend(props.values().filter_map(|s| idx(self, s)));
            }
            e.additional_props = o.get("additionalProperties").and_then(|s| idx(self, s));
            match o.get("items") {
                Some(s @ Value::Object(_)) => e.items = idx(self, s),
                Some(Value::Array(subs)) => {
                    e.tuple.extend(subs.iter().filter_map(|s| idx(self, s)));
                    e.additional_items = o.get("additionalItems").and_then(|s| idx(self, s));
                }
                _ => {}
            }
            self.edges[i] = e;
            i += 1;
        }
        Ok(())
    }

    /// The subschemas in an order where each comes after everything it
    /// applies to the same value; a loop is an error naming it.
    fn same_level_order(&self) -> Result<Vec<usize>, SchemaError> {
        let n = self.nodes.len();
        // 0 unseen, 1 on the stack, 2 done.
        let mut state = vec![0u8; n];
        let mut order = Vec::with_capacity(n);
        for start in 0..n {
            if state[start] != 0 {
                continue;
            }
            let mut stack: Vec<(usize, usize)> = vec![(start, 0)];
            state[start] = 1;
            while let Some(&mut (node, ref mut next)) = stack.last_mut() {
                if let Some(&child) = self.edges[node].same.get(*next) {
                    *next += 1;
                    match state[child] {
                        0 => {
                            state[child] = 1;
                            stack.push((child, 0));
                        }
                        1 => {
                            let from = stack.iter().position(|&(s, _)| s == child).unwrap_or(0);
                            let mut path: Vec<String> = stack[from..]
                                .iter()
                                .map(|&(s, _)| display_pointer(&self.pointers[s]))
                                .collect();
                            path.push(display_pointer(&self.pointers[child]));
                            return Err(SchemaError::Loop { path });
                        }
                        _ => {}
                    }
                } else {
                    state[node] = 2;
                    order.push(node);
                    stack.pop();
                }
            }
        }
        Ok(order)
    }
}

fn display_pointer(p: &str) -> String {
    if p.is_empty() {
        "#".into()
    } else {
        format!("#{p}")
    }
}

/// Analyse `schema` (see the module doc).
pub fn analyze(schema: &Value) -> Result<Analysis, SchemaError> {
    check_shape(schema)?;
    if !schema.is_object() {
        return Ok(Analysis {
            subschemas: 0,
            visits: 1,
            recursion: 1,
        });
    }
    let mut g = Graph::new(schema);
    g.add(schema, String::new())?;
    g.link()?;
    let order = g.same_level_order()?;
    let n = g.nodes.len();

    // visits[s]: subschemas applied to one value at the current depth below
    // the value `s` starts on; chain[s]: the longest chain to reach it (0:
    // that depth cannot be reached from `s`).
    let mut visits = vec![0u64; n];
    let mut chain = vec![0u64; n];
    let mut prev_visits = vec![0u64; n];
    let mut prev_chain = vec![0u64; n];
    let mut worst = 0u64;
    let mut recursion = 0u64;
    for depth in 0..=MAX_DEPTH {
        for &s in &order {
            let e = &g.edges[s];
            let (mut v, mut c) = if depth == 0 {
                (1u64, 1u64)
            } else {
                let max_of = |ids: &[usize], opt: Option<usize>| -> (u64, u64) {
                    ids.iter().chain(opt.as_ref()).fold((0, 0), |(v, c), &i| {
                        (v.max(prev_visits[i]), c.max(prev_chain[i]))
                    })
                };
                let (pv, pc) = max_of(&e.props, e.additional_props);
                let (qv, qc) = e.patterns.iter().fold((0u64, 0u64), |(v, c), &i| {
                    (v.saturating_add(prev_visits[i]), c.max(prev_chain[i]))
                });
                let member = (pv.saturating_add(qv), pc.max(qc));
                let element = match e.items {
                    Some(i) => (prev_visits[i], prev_chain[i]),
                    None => max_of(&e.tuple, e.additional_items),
                };
                let (v, c) = (member.0.max(element.0), member.1.max(element.1));
                (v, if c > 0 { c + 1 } else { 0 })
            };
            for &t in &e.same {
                v = v.saturating_add(visits[t]);
                if chain[t] > 0 {
                    c = c.max(chain[t] + 1);
                }
            }
            visits[s] = v;
            chain[s] = c;
        }
        worst = worst.max(visits[0]);
        recursion = recursion.max(chain[0]);
        if visits[0] > MAX_VISITS {
            return Err(SchemaError::Multiplies {
                visits: visits[0],
                depth,
                pointer: hotspot(&g, &visits),
            });
        }
        if visits[0] == 0 {
            break;
        }
        std::mem::swap(&mut visits, &mut prev_visits);
        std::mem::swap(&mut chain, &mut prev_chain);
    }
    Ok(Analysis {
        subschemas: n,
        visits: worst,
        recursion,
    })
}

/// The subschema with several same-value branches that carries the most
/// visits: where to look first.
fn hotspot(g: &Graph<'_>, visits: &[u64]) -> String {
    let best = (0..g.nodes.len())
        .filter(|&s| g.edges[s].same.len() >= 2)
        .max_by_key(|&s| {
            g.edges[s]
                .same
                .iter()
                .fold(0u64, |a, &t| a.saturating_add(visits[t]))
        })
        .unwrap_or(0);
    display_pointer(&g.pointers[best])
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn plain_schemas_are_cheap() {
        let a = analyze(&json!({
            "type": "object",
            "required": ["a"],
            "properties": {
                "a": {"type": "string"},
                "b": {"type": "array", "items": {"$ref": "#/definitions/item"}}
            },
            "definitions": {"item": {"oneOf": [{"type": "integer"}, {"type": "string"}]}}
        }))
        .unwrap();
        assert!(a.visits <= 4, "{a:?}");
        assert!(a.recursion <= 6, "{a:?}");
    }

    #[test]
    fn a_recursive_tree_schema_is_linear() {
        let a = analyze(&json!({
            "type": "object",
            "properties": {"children": {"type": "array", "items": {"$ref": "#"}}}
        }))
        .unwrap();
        assert!(a.visits <= 2, "{a:?}");
        assert!(a.recursion > 100, "follows the value down: {a:?}");
    }

    #[test]
    fn two_branches_back_into_the_root_multiply() {
        let branch = json!({"type": "array", "items": {"$ref": "#"}});
        let e = analyze(&json!({"anyOf": [branch, branch]})).unwrap_err();
        let SchemaError::Multiplies { visits, depth, .. } = e else {
            panic!("{e:?}")
        };
        assert!(visits > MAX_VISITS && depth < 20, "{visits} at {depth}");
    }

    #[test]
    fn same_value_loops_are_refused() {
        for schema in [
            json!({"$ref": "#"}),
            json!({"allOf": [{"$ref": "#/definitions/a"}], "definitions": {"a": {"anyOf": [{"$ref": "#"}]}}}),
            json!({"definitions": {"a": {"not": {"$ref": "#/definitions/a"}}}, "properties": {"x": {"$ref": "#/definitions/a"}}}),
        ] {
            let e = analyze(&schema).unwrap_err();
            assert!(matches!(e, SchemaError::Loop { .. }), "{schema}: {e:?}");
        }
    }

    #[test]
    fn a_dag_of_refs_that_doubles_is_refused() {
        let mut defs = serde_json::Map::new();
        for i in 0..20 {
            let next = format!("#/definitions/d{}", i + 1);
            defs.insert(
                format!("d{i}"),
                json!({"allOf": [{"$ref": next}, {"$ref": next}]}),
            );
        }
        defs.insert("d20".into(), json!({"type": "integer"}));
        let e = analyze(&json!({"$ref": "#/definitions/d0", "definitions": defs})).unwrap_err();
        assert!(
            matches!(e, SchemaError::Multiplies { depth: 0, .. }),
            "{e:?}"
        );
    }

    #[test]
    fn outside_refs_and_base_changes_are_refused() {
        for schema in [
            json!({"$ref": "http://example.com/s.json"}),
            json!({"$ref": "other.json#/a"}),
            json!({"properties": {"a": {"id": "http://x/y", "type": "string"}}}),
            json!({"$ref": "#/definitions/missing"}),
            json!({"$ref": "#nowhere"}),
        ] {
            let e = analyze(&schema).unwrap_err();
            assert!(
                matches!(e, SchemaError::Unsupported { .. }),
                "{schema}: {e:?}"
            );
        }
        assert!(analyze(&json!({"$ref": "http://json-schema.org/draft-04/schema#"})).is_ok());
        assert!(analyze(&json!({"id": "http://x/root#", "properties": {"a": {"$ref": "http://x/root#/definitions/d"}}, "definitions": {"d": {}}})).is_ok());
        assert!(
            analyze(
                &json!({"properties": {"a": {"$ref": "#d"}}, "definitions": {"x": {"id": "#d"}}})
            )
            .is_ok()
        );
    }

    #[test]
    fn huge_and_deep_schemas_are_refused_without_recursion() {
        let mut deep = json!({});
        for _ in 0..MAX_DEPTH {
            deep = json!({"not": deep});
        }
        assert!(matches!(analyze(&deep), Err(SchemaError::TooDeep { .. })));
        let wide = Value::Array(vec![Value::Null; MAX_NODES + 1]);
        assert!(matches!(
            analyze(&json!({"enum": wide})),
            Err(SchemaError::TooLarge { .. })
        ));
    }
}
