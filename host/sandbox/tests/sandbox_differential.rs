//! Differential test: the sandbox against native Lua 5.4.
//!
//! Every chunk of the corpus in `tests/fixtures/differential/*.lua` runs
//! twice: in the sandbox (Lua 5.4 compiled to WebAssembly, through
//! [`Runtime::run_hook`](lunabox_sandbox::Runtime::run_hook)) and in native
//! Lua 5.4 (`mlua`, vendored), which is the oracle. Both results become an
//! [`Outcome`] and must be the same. (The guest is Lua 5.4.9, mlua's vendored
//! Lua is 5.4.8; the two differ only in fixes that the corpus cannot see.)
//!
//! - a returned value is turned into JSON by the guest's rules (`json.c`):
//!   keys exactly 1..n make an array, string keys an object, `{}` is an
//!   object; NaN, infinities, invalid UTF-8, functions, cycles, mixed or
//!   sparse tables cannot be converted. The native side converts the mlua
//!   value itself by the same rules. The comparison is strict: an integer
//!   never equals a float, and floats compare bit for bit (`-0.0 != 0.0`);
//! - an error compares by kind (syntax or runtime) and message text. Both
//!   sides load the chunk as `=diff.lua`, so messages read
//!   `diff.lua:LINE: ...` on both. Native errors are caught with Lua's own
//!   `pcall`, and the error object becomes a message the way the guest's
//!   runner does it (strings and numbers as text, `__tostring` honoured).
//!
//! Corpus format (see the header of each fixture file): a line
//! `--- <name>` starts a chunk, which runs until the next such line. Line 1
//! of a chunk is the line after its header. A `-- known-difference: <why>`
//! line inside a chunk marks a difference that is understood (the line and
//! the comment lines after it say why: guest code, the guest's C library or
//! the wasm32 ABI). Such chunks still run, both results are printed with the
//! summary, and the test fails if they stop differing, so that the mark gets
//! removed.
//!
//! Every chunk is prefixed with [`PRELUDE`], a single line (line numbers stay
//! right) that defines two local helpers: `show(...)` renders any values as
//! one deterministic string (strings quoted with `\ddd` escapes, integers
//! and floats apart, tables with sorted keys) and `hex(s)` renders bytes as
//! hex, for results that are not valid UTF-8.
//!
//! `LUNABOX_DIFF_VERBOSE=1` prints both results of every chunk.
//!
//! Intended differences are kept out of the corpus: the sandbox has no
//! `require`/`package`/`io.popen`/`os.execute`, only `debug.traceback`,
//! text-only `load`, a reseeded `math.random`, a protected `_G` metatable,
//! and no time zones (the native side therefore runs with `TZ=UTC`).
//! Chunks stay away from addresses, randomness, the clock, `pairs` order
//! and uncaught error objects that are neither strings, numbers nor have a
//! `__tostring` (the guest phrases those itself).

#[path = "common/mod.rs"]
mod sandbox_common;

use std::collections::BTreeSet;
use std::fmt;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use lunabox_sandbox::{HookRequest, Limits, Outcome as Sandboxed, ScriptErrorKind};
use mlua::{ChunkMode, Lua, Value};
use serde_json::{Map, Number, Value as Json};

/// Chunk name on both sides: messages read `diff.lua:LINE: ...`.
const CHUNK_NAME: &str = "diff.lua";

/// Helpers put in front of every chunk, on the chunk's first line.
const PRELUDE: &str = concat!(
    "local show, hex; do ",
    "local function q(s) return '\"' .. s:gsub('.', function(c) local b = c:byte() ",
    "if b < 32 or b > 126 or b == 34 or b == 92 then return ('\\\\%03d'):format(b) end end) .. '\"' end ",
    "local rank = {number = 1, string = 2, boolean = 3} ",
    "local function key_lt(a, b) local ra, rb = rank[type(a)] or 4, rank[type(b)] or 4 ",
    "if ra ~= rb then return ra < rb end if ra == 3 then return (not a) and b end ",
    "if ra == 4 then return false end return a < b end ",
    "local function val(v, depth) local t = type(v) ",
    "if t == 'string' then return q(v) end ",
    "if t == 'number' then if math.type(v) == 'integer' then return tostring(v) end ",
    "local s = tostring(v) if tonumber(s) ~= v then s = ('%.17g'):format(v) end return s end ",
    "if t == 'table' then if depth > 4 then return '{...}' end local keys = {} ",
    "for k in next, v do keys[#keys + 1] = k end table.sort(keys, key_lt) local parts = {} ",
    "for i, k in ipairs(keys) do parts[i] = val(k, depth + 1) .. '=' .. val(rawget(v, k), depth + 1) end ",
    "return '{' .. table.concat(parts, ',') .. '}' end ",
    "if t == 'nil' or t == 'boolean' then return tostring(v) end return t end ",
    "show = function(...) local out = {} for i = 1, select('#', ...) do ",
    "out[i] = val((select(i, ...)), 1) end return table.concat(out, ', ') end ",
    "hex = function(s) return (s:gsub('.', function(c) return ('%02X'):format(c:byte()) end)) end ",
    "end ",
);

/// Marker of an understood difference inside a chunk.
const KNOWN: &str = "-- known-difference:";

/// Memory for one chunk, on both sides: room for Lua's own stack limit (a
/// million slots), so that a runaway recursion is Lua's "stack overflow".
const MEMORY: u64 = 256 << 20;

/// Fewest chunks the corpus must hold.
const MIN_CHUNKS: usize = 150;

/// One chunk of the corpus.
#[derive(Debug)]
struct Chunk {
    /// Fixture file name, e.g. `strings.lua`.
    file: String,
    /// Line of the `---` header in that file.
    line: usize,
    name: String,
    source: String,
    /// Why the sandbox is known to differ here, if it does.
    known: Option<String>,
}

impl Chunk {
    fn label(&self) -> String {
        format!("{}:{} {}", self.file, self.line, self.name)
    }
}

/// How a chunk ended, on either side.
#[derive(Debug, Clone)]
enum Outcome {
    /// The first returned value, as JSON.
    Value(Json),
    /// A syntax or runtime error and its message.
    Error { kind: &'static str, message: String },
    /// The returned value cannot be turned into JSON (the messages differ
    /// by design between the two sides; only the kind is compared).
    BadResult(String),
    /// Anything else (a limit, a host error, an error object that cannot
    /// become a message): never equal to anything.
    Other(String),
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Value(v) => write!(f, "value {v}"),
            Outcome::Error { kind, message } => write!(f, "{kind} error {message:?}"),
            Outcome::BadResult(m) => write!(f, "unconvertible result ({m})"),
            Outcome::Other(m) => write!(f, "other: {m}"),
        }
    }
}

/// Strict equality of two outcomes.
fn same(a: &Outcome, b: &Outcome) -> bool {
    match (a, b) {
        (Outcome::Value(x), Outcome::Value(y)) => same_json(x, y),
        (
            Outcome::Error {
                kind: k1,
                message: m1,
            },
            Outcome::Error {
                kind: k2,
                message: m2,
            },
        ) => k1 == k2 && m1 == m2,
        (Outcome::BadResult(_), Outcome::BadResult(_)) => true,
        _ => false,
    }
}

/// JSON equality where an integer never equals a float and floats compare
/// by their bits.
fn same_json(a: &Json, b: &Json) -> bool {
    match (a, b) {
        (Json::Null, Json::Null) => true,
        (Json::Bool(x), Json::Bool(y)) => x == y,
        (Json::Number(x), Json::Number(y)) => same_number(x, y),
        (Json::String(x), Json::String(y)) => x == y,
        (Json::Array(x), Json::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| same_json(p, q))
        }
        (Json::Object(x), Json::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| same_json(v, w)))
        }
        _ => false,
    }
}

fn same_number(x: &Number, y: &Number) -> bool {
    match (x.is_f64(), y.is_f64()) {
        (true, true) => x.as_f64().map(f64::to_bits) == y.as_f64().map(f64::to_bits),
        (false, false) => x.as_i64() == y.as_i64() && x.as_u64() == y.as_u64(),
        _ => false,
    }
}

// ---------------------------------------------------------------------------
// Corpus
// ---------------------------------------------------------------------------

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/differential")
}

/// Split one fixture file into chunks.
fn parse_corpus(file: &str, text: &str) -> Vec<Chunk> {
    let mut chunks = Vec::new();
    let mut current: Option<(usize, String, Vec<&str>)> = None;
    let finish = |cur: Option<(usize, String, Vec<&str>)>, out: &mut Vec<Chunk>| {
        if let Some((line, name, mut lines)) = cur {
            while lines.last().is_some_and(|l| l.trim().is_empty()) {
                lines.pop();
            }
            // The reason: the marker line and the comment lines after it.
            let known = lines
                .iter()
                .position(|l| l.trim_start().starts_with(KNOWN))
                .map(|at| {
                    let mut why = lines[at].trim_start()[KNOWN.len()..].trim().to_string();
                    for more in lines[at + 1..]
                        .iter()
                        .map_while(|l| l.trim_start().strip_prefix("--"))
                    {
                        why.push(' ');
                        why.push_str(more.trim());
                    }
                    why
                });
            out.push(Chunk {
                file: file.to_string(),
                line,
                name,
                source: lines.join("\n"),
                known,
            });
        }
    };
    for (i, line) in text.lines().enumerate() {
        if let Some(name) = line.strip_prefix("--- ") {
            finish(current.take(), &mut chunks);
            current = Some((i + 1, name.trim().to_string(), Vec::new()));
        } else if let Some((_, _, lines)) = current.as_mut() {
            lines.push(line);
        }
    }
    finish(current, &mut chunks);
    chunks
}

fn load_corpus() -> Vec<Chunk> {
    let dir = corpus_dir();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read the corpus directory {}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "lua"))
        .collect();
    files.sort();
    let mut chunks = Vec::new();
    for path in files {
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
        let name = path
            .file_name()
            .expect("file name")
            .to_string_lossy()
            .into_owned();
        chunks.extend(parse_corpus(&name, &text));
    }
    let mut seen = BTreeSet::new();
    for c in &chunks {
        assert!(
            seen.insert((c.file.clone(), c.name.clone())),
            "{}: chunk name used twice in {}",
            c.label(),
            c.file
        );
        assert!(
            c.source
                .lines()
                .any(|l| !l.trim().is_empty() && !l.trim_start().starts_with("--")),
            "{}: chunk has no code",
            c.label()
        );
    }
    chunks
}

// ---------------------------------------------------------------------------
// The two sides
// ---------------------------------------------------------------------------

fn run_sandbox(script: &str) -> Outcome {
    let req = HookRequest::new(script, CHUNK_NAME).with_limits(Limits {
        memory: MEMORY,
        ..sandbox_common::limits()
    });
    match sandbox_common::runtime().run_hook(req).result {
        Sandboxed::Value(v) => Outcome::Value(v),
        Sandboxed::Error(e) => match e.kind {
            ScriptErrorKind::Syntax => Outcome::Error {
                kind: "syntax",
                message: e.message,
            },
            ScriptErrorKind::Runtime => Outcome::Error {
                kind: "runtime",
                message: e.message,
            },
            ScriptErrorKind::BadResult => Outcome::BadResult(e.message),
        },
        Sandboxed::Limit(l) => Outcome::Other(format!("hit the {} limit", l.kind)),
        other => Outcome::Other(format!("{other:?}")),
    }
}

fn run_native(script: &str) -> Outcome {
    let lua = Lua::new();
    if let Err(e) = lua.set_memory_limit(MEMORY as usize) {
        return Outcome::Other(format!("cannot set the memory limit: {e}"));
    }
    let globals = lua.globals();
    // Taken before the chunk runs: it may replace the globals.
    let (pcall, tostring) = match (
        globals.raw_get::<mlua::Function>("pcall"),
        globals.raw_get::<mlua::Function>("tostring"),
    ) {
        (Ok(p), Ok(t)) => (p, t),
        _ => return Outcome::Other("native Lua has no pcall/tostring".into()),
    };
    let chunk = lua
        .load(script)
        .set_name(format!("={CHUNK_NAME}"))
        .set_mode(ChunkMode::Text)
        .into_function();
    let function = match chunk {
        Ok(f) => f,
        Err(mlua::Error::SyntaxError { message, .. }) => {
            return Outcome::Error {
                kind: "syntax",
                message,
            };
        }
        Err(e) => return Outcome::Other(format!("native load failed: {e}")),
    };
    let results = match pcall.call::<mlua::MultiValue>(function) {
        Ok(r) => r.into_vec(),
        Err(e) => return Outcome::Other(format!("native pcall failed: {e}")),
    };
    let mut results = results.into_iter();
    let ok = matches!(results.next(), Some(Value::Boolean(true)));
    let first = results.next().unwrap_or(Value::Nil);
    if ok {
        return match to_json(&first, 0, &mut Vec::new()) {
            Ok(v) => Outcome::Value(v),
            Err(m) => Outcome::BadResult(m),
        };
    }
    // The error object as the guest's runner turns it into a message.
    let message = match &first {
        Value::String(_) | Value::Integer(_) | Value::Number(_) => {
            lua.coerce_string(first.clone()).ok().flatten()
        }
        Value::Table(t)
            if t.metatable()
                .is_some_and(|mt| mt.raw_get::<Value>("__tostring").is_ok_and(|v| !v.is_nil())) =>
        {
            tostring.call::<mlua::String>(first.clone()).ok()
        }
        _ => None,
    };
    match message {
        Some(s) => Outcome::Error {
            kind: "runtime",
            message: String::from_utf8_lossy(&s.as_bytes()).into_owned(),
        },
        None => Outcome::Other(format!(
            "uncaught error object of type {} (keep such errors inside pcall in the corpus)",
            first.type_name()
        )),
    }
}

/// The guest's JSON rules (guest-lua/src/json.c), applied to a native value.
fn to_json(
    v: &Value,
    depth: usize,
    open: &mut Vec<*const std::ffi::c_void>,
) -> Result<Json, String> {
    match v {
        Value::Nil => Ok(Json::Null),
        Value::Boolean(b) => Ok(Json::Bool(*b)),
        Value::Integer(i) => Ok(Json::from(*i)),
        Value::Number(f) => Number::from_f64(*f)
            .map(Json::Number)
            .ok_or_else(|| format!("{f} cannot be represented in JSON")),
        Value::String(s) => std::str::from_utf8(&s.as_bytes())
            .map(|s| Json::String(s.to_string()))
            .map_err(|_| "string is not valid UTF-8".to_string()),
        Value::Table(t) => {
            if depth >= 200 {
                return Err("nested deeper than 200 levels".into());
            }
            let p = t.to_pointer();
            if open.contains(&p) {
                return Err("table contains itself".into());
            }
            let mut ints = Vec::new();
            let mut strs = Vec::new();
            for pair in t.pairs::<Value, Value>() {
                let (k, val) = pair.map_err(|e| e.to_string())?;
                match k {
                    Value::Integer(i) => ints.push((i, val)),
                    Value::String(s) => {
                        let key = std::str::from_utf8(&s.as_bytes())
                            .map_err(|_| "key is not valid UTF-8".to_string())?
                            .to_string();
                        strs.push((key, val));
                    }
                    other => return Err(format!("table has a {} key", other.type_name())),
                }
            }
            if !ints.is_empty() && !strs.is_empty() {
                return Err("table mixes array items and string keys".into());
            }
            open.push(p);
            let out = if !ints.is_empty() {
                ints.sort_by_key(|(i, _)| *i);
                if ints
                    .iter()
                    .enumerate()
                    .any(|(n, (i, _))| *i != n as i64 + 1)
                {
                    Err("array keys are not 1..n".to_string())
                } else {
                    ints.iter()
                        .map(|(_, v)| to_json(v, depth + 1, open))
                        .collect::<Result<Vec<_>, _>>()
                        .map(Json::Array)
                }
            } else {
                let mut map = Map::new();
                for (k, v) in &strs {
                    map.insert(k.clone(), to_json(v, depth + 1, open)?);
                }
                Ok(Json::Object(map))
            };
            open.pop();
            out
        }
        other => Err(format!(
            "a {} cannot be represented in JSON",
            other.type_name()
        )),
    }
}

/// The sandbox has no time zones (local time is UTC); the native side must
/// agree for `os.date`/`os.time` without `!`.
fn native_time_zone_utc() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    // SAFETY: done once, first thing in the tests that run native Lua and
    // before they start any Lua or wasm work; nothing else in this test
    // binary reads or writes the environment meanwhile.
    ONCE.call_once(|| unsafe { std::env::set_var("TZ", "UTC") });
}

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

#[test]
fn sandbox_matches_native_lua() {
    native_time_zone_utc();
    let chunks = load_corpus();
    assert!(
        chunks.len() >= MIN_CHUNKS,
        "the corpus in {} has {} chunks; it must keep at least {MIN_CHUNKS}",
        corpus_dir().display(),
        chunks.len()
    );
    let files: BTreeSet<&str> = chunks.iter().map(|c| c.file.as_str()).collect();
    let mut equal = 0usize;
    let mut unexpected = Vec::new();
    let mut known = Vec::new();
    let mut stale = Vec::new();
    let verbose = std::env::var_os("LUNABOX_DIFF_VERBOSE").is_some();
    for chunk in &chunks {
        let script = format!("{PRELUDE}{}", chunk.source);
        let sandbox = run_sandbox(&script);
        let native = run_native(&script);
        let detail = format!(
            "{}\n    sandbox: {sandbox}\n    native:  {native}",
            chunk.label()
        );
        if verbose {
            let _ = writeln!(std::io::stderr(), "{detail}");
        }
        match (same(&sandbox, &native), &chunk.known) {
            (true, None) => equal += 1,
            (false, None) => unexpected.push(detail),
            (false, Some(why)) => known.push(format!("{detail}\n    why:     {why}")),
            (true, Some(why)) => stale.push(format!("{detail}\n    marked:  {why}")),
        }
    }

    let mut report = format!(
        "differential: {} chunks from {} files: {equal} equal, {} known differences, {} unexpected differences, {} known differences that no longer differ\n",
        chunks.len(),
        files.len(),
        known.len(),
        unexpected.len(),
        stale.len()
    );
    if unexpected.is_empty() && stale.is_empty() && known.is_empty() {
        report.push_str("all equal\n");
    }
    for (title, list) in [
        (
            "KNOWN DIFFERENCE (allow-listed, see the chunk's comment)",
            &known,
        ),
        ("UNEXPECTED DIFFERENCE", &unexpected),
        (
            "NO LONGER DIFFERENT (remove the known-difference mark)",
            &stale,
        ),
    ] {
        for item in list {
            report.push_str(&format!("{title}: {item}\n"));
        }
    }
    // Straight to stderr so the summary shows without --nocapture.
    let _ = std::io::stderr().write_all(report.as_bytes());
    assert!(unexpected.is_empty() && stale.is_empty(), "{report}");
}

#[test]
fn comparison_is_strict() {
    use serde_json::json;
    let v = |j: Json| Outcome::Value(j);
    assert!(same(&v(json!(1)), &v(json!(1))));
    assert!(!same(&v(json!(1)), &v(json!(1.0))), "integer vs float");
    assert!(
        !same(&v(json!(0.0)), &v(json!(-0.0))),
        "floats compare by bits"
    );
    assert!(!same(&v(json!([1, 2])), &v(json!([1, 2, 3]))));
    assert!(same(
        &v(json!({"a": 1, "b": [2.5]})),
        &v(json!({"b": [2.5], "a": 1}))
    ));
    assert!(!same(&v(json!({"a": 1})), &v(json!({"a": 1, "b": null}))));
    let err = |m: &str| Outcome::Error {
        kind: "runtime",
        message: m.into(),
    };
    assert!(same(&err("diff.lua:1: x"), &err("diff.lua:1: x")));
    assert!(!same(&err("diff.lua:1: x"), &err("diff.lua:2: x")));
    assert!(!same(
        &Outcome::Other("a".into()),
        &Outcome::Other("a".into())
    ));
}

#[test]
fn native_side_follows_the_guest_json_rules() {
    use serde_json::json;
    native_time_zone_utc();
    let value = |s: &str| match run_native(s) {
        Outcome::Value(v) => v,
        other => panic!("{s}: {other}"),
    };
    assert!(same_json(
        &value("return {1, 2.0, 'x', true}"),
        &json!([1, 2.0, "x", true])
    ));
    assert!(same_json(
        &value("return {a = {b = math.mininteger}}"),
        &json!({"a": {"b": i64::MIN}})
    ));
    assert!(same_json(&value("return {}"), &json!({})));
    assert!(same_json(&value("return nil"), &json!(null)));
    assert!(same_json(&value(""), &json!(null)));
    for bad in [
        "return {1, nil, 3}",
        "return {1, x = 2}",
        "return 0/0",
        "return '\\xff'",
        "local t = {} t[1] = t return t",
        "return {print}",
    ] {
        assert!(matches!(run_native(bad), Outcome::BadResult(_)), "{bad}");
    }
    match run_native("local x = nil\nreturn x.y") {
        Outcome::Error { kind, message } => {
            assert_eq!(kind, "runtime");
            assert_eq!(
                message,
                "diff.lua:2: attempt to index a nil value (local 'x')"
            );
        }
        other => panic!("{other}"),
    }
    match run_native("return +") {
        Outcome::Error { kind, message } => {
            assert_eq!(kind, "syntax");
            assert_eq!(message, "diff.lua:1: unexpected symbol near '+'");
        }
        other => panic!("{other}"),
    }
}

#[test]
fn corpus_format_and_prelude_keep_line_numbers() {
    native_time_zone_utc();
    assert!(!PRELUDE.contains('\n'), "the prelude must stay on line 1");
    let chunks = parse_corpus(
        "x.lua",
        "-- header, ignored\n--- first\nreturn 1\n\n--- second\n-- known-difference: because\n-- of this\nerror('x')\n",
    );
    assert_eq!(chunks.len(), 2);
    assert_eq!(
        (
            chunks[0].line,
            chunks[0].name.as_str(),
            chunks[0].source.as_str()
        ),
        (2, "first", "return 1")
    );
    assert_eq!(chunks[0].known, None);
    assert_eq!(chunks[1].known.as_deref(), Some("because of this"));

    // With the prelude in front, line N of a chunk is still line N.
    let script = format!("{PRELUDE}local x = 1\nlocal y = 2\nerror('here')");
    for outcome in [run_native(&script), run_sandbox(&script)] {
        match outcome {
            Outcome::Error { kind, message } => {
                assert_eq!((kind, message.as_str()), ("runtime", "diff.lua:3: here"))
            }
            other => panic!("{other}"),
        }
    }
    let script =
        format!("{PRELUDE}return show(1, 1.0, 'a\\n\"', nil, {{2, x = true}}, -0.0, 0.1 + 0.2)");
    let expected = r#"1, 1.0, "a\010\034", nil, {1=2,"x"=true}, -0.0, 0.30000000000000004"#;
    for outcome in [run_native(&script), run_sandbox(&script)] {
        match outcome {
            Outcome::Value(v) => assert_eq!(v, Json::String(expected.into())),
            other => panic!("{other}"),
        }
    }
}
