//! A JSON representation for the validator that meters its own reading.
//!
//! jsonschema is generic over how a JSON document is held ([`Json`]); this
//! module gives it `serde_json::Value`s seen through a [`Meter`]. Every read
//! of the document (a type test, a member lookup, a step of an iteration, a
//! string, a comparison) is charged to the meter, in proportion to the work
//! it lets the validator do (a string costs its length, a comparison the
//! size of what is compared). When the budget is spent, or the deadline has
//! passed (looked at every [`CLOCK_EVERY`] steps), the meter *trips*: from
//! then on every container reads as empty and every string as `""`, so
//! whatever the validator still has on its stack finishes at once, and the
//! caller throws the answer away and reports the exhaustion. Types never
//! change when the meter trips, so no validator code sees an inconsistent
//! document.

use std::borrow::Cow;
use std::cell::Cell;
use std::ops::ControlFlow;
use std::time::Instant;

use jsonschema::json::{self as js, Json, NodeIdentity};
use jsonschema::types::JsonType;
use serde_json::{Map, Value};

/// How many steps pass between two looks at the clock.
pub const CLOCK_EVERY: u64 = 4096;

/// Why a check was cut short.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exhaustion {
    /// The deadline passed.
    Deadline,
    /// The step budget was spent.
    Steps(u64),
}

/// The budget of one validation: steps left and the deadline.
#[derive(Debug)]
pub struct Meter {
    budget: u64,
    left: Cell<u64>,
    deadline: Option<Instant>,
    next_clock: Cell<u64>,
    tripped: Cell<Option<Exhaustion>>,
}

impl Meter {
    /// A meter allowing `steps` steps until `deadline`.
    pub fn new(steps: u64, deadline: Option<Instant>) -> Meter {
        Meter {
            budget: steps,
            left: Cell::new(steps),
            deadline,
            next_clock: Cell::new(steps.saturating_sub(CLOCK_EVERY)),
            tripped: Cell::new(None),
        }
    }

    /// A meter that never trips (for nodes the validator makes itself).
    fn unbounded() -> Meter {
        Meter::new(u64::MAX, None)
    }

    /// Whether the budget or the deadline ran out.
    pub fn exhausted(&self) -> Option<Exhaustion> {
        self.tripped.get()
    }

    /// Steps used so far.
    pub fn used(&self) -> u64 {
        self.budget - self.left.get()
    }

    /// Charge `n` steps; `false` once the meter has tripped.
    #[inline]
    fn charge(&self, n: u64) -> bool {
        if self.tripped.get().is_some() {
            return false;
        }
        let left = self.left.get();
        if n > left {
            self.left.set(0);
            self.tripped.set(Some(Exhaustion::Steps(self.budget)));
            return false;
        }
        let left = left - n;
        self.left.set(left);
        if left <= self.next_clock.get() {
            self.next_clock.set(left.saturating_sub(CLOCK_EVERY));
            if self.deadline.is_some_and(|d| Instant::now() >= d) {
                self.tripped.set(Some(Exhaustion::Deadline));
                return false;
            }
        }
        true
    }

    #[inline]
    fn live(&self) -> bool {
        self.tripped.get().is_none()
    }
}

/// Steps a string of `len` bytes costs (one, plus one per 64 bytes).
fn string_cost(len: usize) -> u64 {
    1 + (len as u64) / 64
}

/// Nodes in `v` (itself included), counted without recursion, at most `cap`.
pub fn size_of(v: &Value, cap: u64) -> u64 {
    let mut n = 0u64;
    let mut stack = vec![v];
    while let Some(v) = stack.pop() {
        n += match v {
            Value::String(s) => string_cost(s.len()),
            _ => 1,
        };
        if n >= cap {
            return cap;
        }
        match v {
            Value::Array(a) => stack.extend(a.iter()),
            Value::Object(o) => stack.extend(o.values()),
            _ => {}
        }
    }
    n
}

/// The metered representation (see the module doc).
pub struct Metered;

thread_local! {
    /// Meters the nodes jsonschema makes of property names (`propertyNames`),
    /// which the member iteration that produced them has already paid for.
    static FREE: Meter = Meter::unbounded();
}

impl Json for Metered {
    type Node<'a> = MNode<'a>;
    type PreparedKey = String;
    type StringBuffer = ();
    const KEYS_PER_LOOKUP: usize = 2;
    const ACYCLIC: bool = true;

    fn prepare_key(key: &str) -> String {
        key.to_owned()
    }

    fn with_string_node<T>((): &mut (), string: &str, f: impl FnOnce(MNode<'_>) -> T) -> T {
        let node = Value::String(string.to_owned());
        FREE.with(|meter| f(MNode { v: &node, m: meter }))
    }
}

/// One value of the document, with the meter it charges.
#[derive(Clone, Copy)]
pub struct MNode<'a> {
    pub(crate) v: &'a Value,
    pub(crate) m: &'a Meter,
}

impl<'a> MNode<'a> {
    /// The root of `v`, charging `m`.
    pub fn new(v: &'a Value, m: &'a Meter) -> MNode<'a> {
        MNode { v, m }
    }
}

/// An object of the document.
#[derive(Clone, Copy)]
pub struct MObject<'a> {
    map: &'a Map<String, Value>,
    m: &'a Meter,
}

/// An array of the document.
#[derive(Clone, Copy)]
pub struct MArray<'a> {
    items: &'a [Value],
    m: &'a Meter,
}

impl<'a> js::Node<'a, Metered> for MNode<'a> {
    type Object = MObject<'a>;
    type Array = MArray<'a>;
    type Number = &'a serde_json::Number;

    fn as_object(&self) -> Option<MObject<'a>> {
        self.m.charge(1);
        match self.v {
            Value::Object(map) => Some(MObject { map, m: self.m }),
            _ => None,
        }
    }

    fn as_array(&self) -> Option<MArray<'a>> {
        self.m.charge(1);
        match self.v {
            Value::Array(items) => Some(MArray { items, m: self.m }),
            _ => None,
        }
    }

    fn as_string(&self) -> Option<Cow<'a, str>> {
        match self.v {
            Value::String(s) if self.m.charge(string_cost(s.len())) => Some(Cow::Borrowed(s)),
            Value::String(_) => Some(Cow::Borrowed("")),
            _ => {
                self.m.charge(1);
                None
            }
        }
    }

    fn as_number(&self) -> Option<&'a serde_json::Number> {
        self.m.charge(1);
        match self.v {
            Value::Number(n) => Some(n),
            _ => None,
        }
    }

    fn as_boolean(&self) -> Option<bool> {
        self.m.charge(1);
        self.v.as_bool()
    }

    fn is_null(&self) -> bool {
        self.m.charge(1);
        self.v.is_null()
    }

    fn json_type(&self) -> JsonType {
        self.m.charge(1);
        match self.v {
            Value::Null => JsonType::Null,
            Value::Bool(_) => JsonType::Boolean,
            Value::Number(_) => JsonType::Number,
            Value::String(_) => JsonType::String,
            Value::Array(_) => JsonType::Array,
            Value::Object(_) => JsonType::Object,
        }
    }

    fn string_length(&self) -> Option<u64> {
        match self.v {
            Value::String(s) if self.m.charge(string_cost(s.len())) => {
                Some(s.chars().count() as u64)
            }
            Value::String(_) => Some(0),
            _ => None,
        }
    }

    fn equals_value(&self, expected: &Value) -> bool {
        // A comparison reads at most the smaller side.
        let cost = size_of(self.v, size_of(expected, u64::MAX));
        self.m.charge(cost) && js::cmp::equal(self.v, expected)
    }

    fn to_value(&self) -> Cow<'a, Value> {
        Cow::Borrowed(self.v)
    }

    fn identity(&self) -> Option<NodeIdentity> {
        Some(NodeIdentity::new(
            std::ptr::from_ref::<Value>(self.v) as usize
        ))
    }
}

/// Members of an object, until the meter trips.
pub struct Members<'a> {
    it: serde_json::map::Iter<'a>,
    m: &'a Meter,
}

impl<'a> Iterator for Members<'a> {
    type Item = (&'a str, MNode<'a>);

    fn next(&mut self) -> Option<Self::Item> {
        let (k, v) = self.it.next()?;
        self.m
            .charge(string_cost(k.len()))
            .then_some((k.as_str(), MNode { v, m: self.m }))
    }
}

impl<'a> js::Object<'a, Metered> for MObject<'a> {
    type Node = MNode<'a>;
    type MemberName = &'a str;
    type MembersIter = Members<'a>;

    fn len(&self) -> usize {
        if self.m.live() { self.map.len() } else { 0 }
    }

    fn get(&self, key: &String) -> Option<MNode<'a>> {
        if !self.m.charge(string_cost(key.len())) {
            return None;
        }
        self.map.get(key.as_str()).map(|v| MNode { v, m: self.m })
    }

    fn members(&self) -> Members<'a> {
        Members {
            it: self.map.iter(),
            m: self.m,
        }
    }

    fn try_for_each_name_node<B>(
        &self,
        (): &mut (),
        mut f: impl FnMut(MNode<'_>) -> ControlFlow<B>,
    ) -> ControlFlow<B> {
        for (name, _) in self.members() {
            let node = Value::String(name.to_owned());
            if let ControlFlow::Break(b) = f(MNode {
                v: &node,
                m: self.m,
            }) {
                return ControlFlow::Break(b);
            }
        }
        ControlFlow::Continue(())
    }
}

/// Elements of an array, until the meter trips.
pub struct Elements<'a> {
    it: std::slice::Iter<'a, Value>,
    m: &'a Meter,
}

impl<'a> Iterator for Elements<'a> {
    type Item = MNode<'a>;

    fn next(&mut self) -> Option<MNode<'a>> {
        let v = self.it.next()?;
        self.m.charge(1).then_some(MNode { v, m: self.m })
    }
}

impl<'a> js::Array<'a, Metered> for MArray<'a> {
    type Node = MNode<'a>;
    type ElementsIter = Elements<'a>;

    fn len(&self) -> usize {
        if self.m.live() { self.items.len() } else { 0 }
    }

    fn elements(&self) -> Elements<'a> {
        Elements {
            it: self.items.iter(),
            m: self.m,
        }
    }

    fn is_unique(&self) -> bool {
        // Hashing reads every element once.
        let cost: u64 = self
            .items
            .iter()
            .map(|v| size_of(v, u64::MAX))
            .fold(1, u64::saturating_add);
        if !self.m.charge(cost) {
            return true;
        }
        js::unique::is_unique(self.items)
    }
}
