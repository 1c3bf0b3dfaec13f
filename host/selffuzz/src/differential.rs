//! Target (e): generated Lua programs, run natively (mlua's vendored Lua
//! 5.4, the oracle) and in the sandbox, must give the same result.
//!
//! [`program`] draws a program from a small grammar: number, string and
//! boolean expressions (arithmetic and bitwise operators, comparisons,
//! `math` and `string` library calls, `..`, `#`, `tostring`/`tonumber`),
//! assignments, `if`, numeric `for` and counted `while` loops with small
//! literal bounds, and appends to a table. Now and then an operand of the
//! wrong type is used, so runtime errors (and their messages) are compared
//! too. Work is bounded by construction: loop bounds are literals, nesting
//! is shallow, strings are cut to 200 bytes on assignment (to a variable or into the table) and repeats are
//! small, so no limit is needed to stop a program.
//!
//! The body runs under `pcall` in a closure; the program returns one
//! string made by its own printer (strings `%q`-quoted with bytes above 127
//! escaped, integers apart from floats, NaN as `nan` whatever its sign) of
//! the status, the error and every variable, so any difference in values,
//! number kinds or error text shows. Both sides load it as `=diff.lua`.
//! Known differences, normalized on both sides (see `normalize`): the
//! sign of a NaN as `tostring` writes it, and which bad argument of
//! `math.fmod` is reported.

use std::fmt::Write as _;
use std::time::Duration;

use arbitrary::Unstructured;
use lunabox_sandbox::{HookRequest, Limits, Outcome};

/// The printer every program starts with (one line, so the body's line
/// numbers are the same on both sides).
const PRELUDE: &str = concat!(
    "local function show(v, d) d = d or 0 local t = type(v) ",
    "if t == 'string' then return (string.format('%q', v):gsub('[\\128-\\255]', ",
    "function(c) return '\\\\' .. c:byte() end)) end ",
    "if t == 'number' then if math.type(v) == 'integer' then return tostring(v) end ",
    "if v ~= v then return 'nan' end return 'f' .. string.format('%.17g', v) end ",
    "if t == 'table' then if d > 3 then return '{...}' end local p = {} ",
    "for i = 1, #v do p[i] = show(v[i], d + 1) end return '{' .. table.concat(p, ',') .. '}' end ",
    "return tostring(v) end ",
    "local function clip(s) if type(s) == 'string' then return s:sub(1, 200) end return s end ",
);

const STR_LITERALS: &[&[u8]] = &[
    b"",
    b"a",
    b"abc",
    b"10",
    b"0x1F",
    b"1e3",
    b" 7 ",
    b"-2.5",
    b"hello world",
    b"%d",
    b"a,b,c",
    b"\0",
    b"\xff\xfe",
    b"\xc3\xa9t\xc3\xa9",
    b"\n",
    b"nan",
    b"inf",
];

const FORMATS: &[&str] = &[
    "%d", "%5.2f", "%s", "%x", "%g", "%5s|", "%-4d|", "%%", "%c", "%.3s", "%i", "%o", "%e",
];

const PATTERNS: &[&str] = &[
    "a", "%d+", "[aeiou]", "(%w+)", "%s", ".", "^a", "b$", "%a*", "(.)(.)", "[^,]+",
];

const REPLS: &[&str] = &["x", "%1", "%%", "", "<%0>"];

/// A program under construction.
struct Gen<'a, 'b> {
    u: &'a mut Unstructured<'b>,
    out: String,
    /// Loop variables in scope.
    loops: Vec<String>,
    /// Statements left to emit.
    budget: usize,
}

fn lua_string(bytes: &[u8]) -> String {
    let mut s = String::from("\"");
    for &b in bytes {
        if b.is_ascii_alphanumeric() || b" ,.%-_|<>".contains(&b) {
            s.push(char::from(b));
        } else {
            let _ = write!(s, "\\{b:03}");
        }
    }
    s.push('"');
    s
}

impl Gen<'_, '_> {
    fn n(&mut self, max: u8) -> u8 {
        self.u.int_in_range(0..=max).unwrap_or(0)
    }

    fn flip(&mut self, num: u8, den: u8) -> bool {
        crate::make::chance(self.u, num, den)
    }

    fn pick(&mut self, items: &[&'static str]) -> &'static str {
        items[self.u.choose_index(items.len()).unwrap_or(0)]
    }

    fn small_int(&mut self) -> String {
        let i = self.u.int_in_range(-3..=9i64).unwrap_or(1);
        if i < 0 {
            format!("({i})")
        } else {
            i.to_string()
        }
    }

    fn num(&mut self, d: usize) -> String {
        if d > 0 && self.flip(1, 25) {
            return self.str(d - 1);
        }
        let leaf = d == 0 || self.flip(1, 3);
        if leaf {
            return match self.n(6) {
                0 => self.small_int(),
                1 => self
                    .pick(&[
                        "math.maxinteger",
                        "math.mininteger",
                        "(2^53)",
                        "0.5",
                        "(-0.0)",
                        "1e308",
                        "3.25",
                        "math.pi",
                        "0x7fffffffffffffff",
                        "100",
                    ])
                    .to_string(),
                2 if !self.loops.is_empty() => {
                    let i = self.u.choose_index(self.loops.len()).unwrap_or(0);
                    self.loops[i].clone()
                }
                _ => self.pick(&["n1", "n2", "n3"]).to_string(),
            };
        }
        let d = d - 1;
        match self.n(11) {
            0..=3 => {
                let op = self.pick(&[
                    "+", "-", "*", "/", "//", "%", "^", "&", "|", "~", "<<", ">>",
                ]);
                format!("({} {op} {})", self.num(d), self.num(d))
            }
            4 => format!("(-{})", self.num(d)),
            5 => format!("#{}", self.str(d)),
            6 => {
                let f = self.pick(&[
                    "math.floor",
                    "math.abs",
                    "math.tointeger",
                    "math.ceil",
                    "math.sqrt",
                    "math.type",
                ]);
                if f == "math.type" {
                    format!("#({f}({}) or '')", self.num(d))
                } else {
                    format!("{f}({})", self.num(d))
                }
            }
            7 => {
                let f = self.pick(&["math.max", "math.min", "math.fmod"]);
                format!("{f}({}, {})", self.num(d), self.num(d))
            }
            8 => format!("(tonumber({}) or {})", self.str(d), self.small_int()),
            9 => format!("string.byte({}, {})", self.str(d), self.small_int()),
            10 => "#t1".to_string(),
            _ => format!(
                "(string.find({}, {}, 1, true) or 0)",
                self.str(d),
                self.str(d)
            ),
        }
    }

    fn str(&mut self, d: usize) -> String {
        if d > 0 && self.flip(1, 30) {
            return self.num(d - 1);
        }
        let leaf = d == 0 || self.flip(1, 3);
        if leaf {
            return if self.flip(1, 2) {
                let i = self.u.choose_index(STR_LITERALS.len()).unwrap_or(0);
                lua_string(STR_LITERALS[i])
            } else {
                self.pick(&["s1", "s2"]).to_string()
            };
        }
        let d = d - 1;
        match self.n(12) {
            0..=2 => {
                let b = if self.flip(1, 3) {
                    self.num(d)
                } else {
                    self.str(d)
                };
                format!("({} .. {b})", self.str(d))
            }
            3 => format!("string.rep({}, {})", self.str(d), self.n(4)),
            4 => format!(
                "string.rep({}, {}, {})",
                self.str(d),
                self.n(3),
                self.str(0)
            ),
            5 => {
                let m = self.pick(&["upper", "lower", "reverse", "len"]);
                if m == "len" {
                    format!("tostring(({}):len())", self.str(d))
                } else {
                    format!("({}):{m}()", self.str(d))
                }
            }
            6 => format!(
                "string.sub({}, {}, {})",
                self.str(d),
                self.small_int(),
                self.small_int()
            ),
            7 => {
                let f = self.pick(FORMATS);
                let arg = if f.contains('s') {
                    self.str(d)
                } else {
                    self.num(d)
                };
                format!("string.format({}, {arg})", lua_string(f.as_bytes()))
            }
            8 => format!("tostring({})", self.num(d)),
            9 => {
                let p = lua_string(self.pick(PATTERNS).as_bytes());
                let r = lua_string(self.pick(REPLS).as_bytes());
                format!("(string.gsub({}, {p}, {r}))", self.str(d))
            }
            10 => {
                let p = lua_string(self.pick(PATTERNS).as_bytes());
                format!("(string.match({}, {p}) or '')", self.str(d))
            }
            11 => format!("string.char({}, {})", self.n(255), self.n(127)),
            _ => format!("table.concat(t1, {})", self.str(0)),
        }
    }

    fn cond(&mut self, d: usize) -> String {
        match self.n(6) {
            0 => format!("({} < {})", self.num(d), self.num(d)),
            1 => format!("({} == {})", self.num(d), self.num(d)),
            2 => format!("({} <= {})", self.str(d), self.str(d)),
            3 => format!("(not {})", self.cond(d.saturating_sub(1))),
            4 => format!(
                "({} and {})",
                self.cond(d.saturating_sub(1)),
                self.cond(d.saturating_sub(1))
            ),
            5 => format!("(math.type({}) == 'integer')", self.num(d)),
            _ => format!("({} ~= {})", self.str(d), self.str(d)),
        }
    }

    fn line(&mut self, indent: usize, text: &str) {
        for _ in 0..indent {
            self.out.push_str("  ");
        }
        self.out.push_str(text);
        self.out.push('\n');
    }

    fn block(&mut self, indent: usize, nest: usize) {
        let n = 1 + self.n(3) as usize;
        for _ in 0..n {
            if self.budget == 0 {
                return;
            }
            self.budget -= 1;
            self.stmt(indent, nest);
        }
    }

    fn stmt(&mut self, indent: usize, nest: usize) {
        let kind = if nest == 0 { self.n(4) } else { self.n(8) };
        match kind {
            0 | 1 => {
                let v = self.pick(&["n1", "n2", "n3"]);
                let e = self.num(3);
                self.line(indent, &format!("{v} = {e}"));
            }
            2 | 3 => {
                let v = self.pick(&["s1", "s2"]);
                let e = self.str(3);
                self.line(indent, &format!("{v} = clip({e})"));
            }
            4 => {
                let e = if self.flip(1, 2) {
                    self.num(2)
                } else {
                    self.str(2)
                };
                self.line(indent, &format!("t1[#t1 + 1] = clip({e})"));
            }
            5 => {
                let c = self.cond(2);
                self.line(indent, &format!("if {c} then"));
                self.block(indent + 1, nest - 1);
                if self.flip(1, 2) {
                    self.line(indent, "else");
                    self.block(indent + 1, nest - 1);
                }
                self.line(indent, "end");
            }
            6 => {
                let var = format!("i{}", self.loops.len() + 1);
                let (a, b) = (self.small_int(), self.small_int());
                let step = self.pick(&["", ", 1", ", 2", ", -1", ", 3"]);
                self.line(indent, &format!("for {var} = {a}, {b}{step} do"));
                self.loops.push(var);
                self.block(indent + 1, nest - 1);
                self.loops.pop();
                self.line(indent, "end");
            }
            7 => {
                let c = format!("c{}", self.loops.len() + 1);
                let k = self.n(5);
                self.line(
                    indent,
                    &format!("do local {c} = 0 while {c} < {k} do {c} = {c} + 1"),
                );
                self.block(indent + 1, nest - 1);
                self.line(indent, "end end");
            }
            _ => {
                let e = self.str(1);
                self.line(indent, &format!("if #t1 > 0 then t1[#t1] = clip({e}) end"));
            }
        }
    }
}

/// A program of the grammar (see the module doc), as Lua source.
pub fn program(u: &mut Unstructured) -> String {
    let mut g = Gen {
        u,
        out: String::new(),
        loops: Vec::new(),
        budget: 12,
    };
    g.out.push_str(PRELUDE);
    g.out.push('\n');
    g.out
        .push_str("local n1, n2, n3, s1, s2, t1 = 0, 7, 2.5, \"ab\", \"10\", {}\n");
    g.out.push_str("local ok, err = pcall(function()\n");
    g.block(1, 2);
    g.out.push_str("end)\n");
    g.out.push_str(
        "return show(ok) .. ' ' .. show(err) .. ' ' .. show(n1) .. ' ' .. show(n2) .. ' ' .. show(n3) \
         .. ' ' .. show(s1) .. ' ' .. show(s2) .. ' ' .. show(t1)\n",
    );
    g.out
}

/// How a program ended, on either side.
#[derive(Debug, PartialEq)]
pub enum Ending {
    /// The string it returned (NaN signs normalized).
    Value(String),
    /// It did not return a string: the error or outcome, as text.
    Other(String),
}

/// Run `source` in native Lua (the oracle).
pub fn native(source: &str) -> Ending {
    let lua = mlua::Lua::new();
    if let Err(e) = lua.set_memory_limit(64 << 20) {
        return Ending::Other(format!("cannot set the memory limit: {e}"));
    }
    match lua.load(source).set_name("=diff.lua").eval::<mlua::Value>() {
        Ok(mlua::Value::String(s)) => Ending::Value(normalize(&s.to_string_lossy())),
        Ok(other) => Ending::Other(format!("returned {other:?}")),
        Err(e) => Ending::Other(format!("error: {e}")),
    }
}

/// Run `source` in the sandbox.
pub fn sandboxed(source: &str) -> Ending {
    let request = HookRequest::new(source, "diff.lua").with_limits(Limits {
        timeout: Duration::from_secs(20),
        memory: 64 << 20,
        ..Limits::default()
    });
    match crate::runtime().run_hook(request).result {
        Outcome::Value(serde_json::Value::String(s)) => Ending::Value(normalize(&s)),
        other => Ending::Other(format!("{other:?}")),
    }
}

/// The known differences, made the same on both sides:
///
/// - `tostring` of a NaN: `-nan` natively on x86, `nan` in WebAssembly;
/// - which bad argument of `math.fmod` is reported when both are bad:
///   lmathlib checks them inside one C call expression
///   (`fmod(luaL_checknumber(L, 1), luaL_checknumber(L, 2))`), whose
///   evaluation order C leaves unspecified (gcc on x86-64 checks #2 first,
///   clang for wasm32 #1), so the message reads `bad argument to 'fmod'`.
fn normalize(s: &str) -> String {
    let mut out = s.replace("-nan", "nan");
    while let Some(at) = out.find("bad argument #") {
        let Some(rel) = out[at..].find(" to 'fmod' (") else {
            break;
        };
        let from = at + rel + " to 'fmod' (".len();
        let Some(end) = out[from..].find(')') else {
            break;
        };
        if rel > "bad argument #".len() + 2 {
            break;
        }
        out.replace_range(at..from + end + 1, "bad argument to 'fmod'");
    }
    out
}

/// Target (e): see the module doc.
pub fn target(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let u = &mut u;
    let source = program(u);
    let want = native(&source);
    let got = sandboxed(&source);
    let Ending::Value(w) = &want else {
        panic!("the native side did not return a string ({want:?}); a generator bug?\n{source}");
    };
    match &got {
        Ending::Value(g) => assert_eq!(g, w, "sandbox and native Lua differ on\n{source}"),
        Ending::Other(o) => panic!("the sandbox gave {o} where native Lua gave {w}\n{source}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_known_differences_are_normalized() {
        assert_eq!(
            normalize("x:1: bad argument #2 to 'fmod' (number expected, got string) -nan"),
            "x:1: bad argument to 'fmod' nan"
        );
        let other = "x:1: bad argument #2 to 'rep' (number expected, got string)";
        assert_eq!(normalize(other), other);
    }
}
