//! `cargo xtask guest-smoke`: run Lua files in the built guest component
//! inside wasmtime, with stub host imports. A development harness for the
//! guest alone (the product host lives in `host/sandbox`).
//!
//! ```text
//! cargo xtask guest-smoke [--component FILE] [--globals JSON] [--compile-only]
//!                         [--max-result-bytes N] [--memory BYTES] FILE.lua...
//! cargo xtask guest-smoke --tests [DIR]     # guest-lua/tests/*.lua
//! ```
//!
//! Stub host: `read-resource` serves a few fixed resources (`a.sh`,
//! `dir/b.txt`); `log` prints `[log LEVEL] message`; `validate-json` accepts
//! everything; `run` simulates by the call's `simulate` field: `"exit"`
//! (exit failure, code from `exitCode`, default 2), `"bad-call"`,
//! `"bad-output"`, `"unavailable"`, `"echo-text"` (returns the call's JSON
//! text as a Lua string); otherwise it returns the call's own JSON when the
//! call has an `outputSchema`, else nothing. Every call is printed.
//!
//! With `--tests`, each file's leading `--!` lines say what to expect:
//! `--! globals: {json}`, `--! result: {json}`, `--! error: KIND`,
//! `--! message: substring`, `--! compile-only`, `--! max-result-bytes: N`,
//! `--! memory: BYTES`, `--! log: substring`, `--! coverage: RAN / LINES /
//! CALLS` (run with the `coverage` option; each part a comma-separated
//! list of line numbers: the lines that ran, the lines with code, each Run
//! call's line).

use crate::workspace;
use anyhow::{Context, Result, anyhow, bail};
use std::path::{Path, PathBuf};
use wasmtime::component::{Component, HasSelf, Linker, ResourceTable};
use wasmtime::{Config, Engine, Store, StoreLimits, StoreLimitsBuilder};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

wasmtime::component::bindgen!({
    world: "hook",
    path: "../wit",
});

use exports::lunabox::hook::runner::{ErrorKind, HookError, HookOptions};
use lunabox::hook::host::{self, ExitFailure, LogLevel, RunFailure, RunFunction};

struct State {
    wasi: WasiCtx,
    table: ResourceTable,
    limits: StoreLimits,
    log: Vec<String>,
    calls: Vec<String>,
    coverage: Option<String>,
}

impl WasiView for State {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

fn fn_name(f: RunFunction) -> &'static str {
    match f {
        RunFunction::RunBash => "RunBash",
        RunFunction::RunCommand => "RunCommand",
        RunFunction::RunExpect => "RunExpect",
        RunFunction::RunPowerShell => "RunPowerShell",
        RunFunction::RunSync => "RunSync",
    }
}

const RESOURCES: &[(&str, &str)] = &[("a.sh", "echo a\n"), ("dir/b.txt", "bee")];

impl host::Host for State {
    fn run(
        &mut self,
        function: RunFunction,
        call_json: String,
    ) -> Result<Option<String>, RunFailure> {
        let line = format!("{} {call_json}", fn_name(function));
        println!("[run] {line}");
        self.calls.push(line);
        let call: serde_json::Value =
            serde_json::from_str(&call_json).expect("guest sent invalid JSON");
        match call.get("simulate").and_then(|v| v.as_str()) {
            Some("exit") => {
                let code = call.get("exitCode").and_then(|v| v.as_i64()).unwrap_or(2) as i32;
                Err(RunFailure::Exit(ExitFailure {
                    exit_code: code,
                    stdout: "some output".into(),
                    stderr: "some error".into(),
                    message: format!("{} failed with exit code {code}", fn_name(function)),
                }))
            }
            Some("bad-call") => Err(RunFailure::BadCall("`variables.X` is a table".into())),
            Some("bad-output") => Err(RunFailure::BadOutput("output file is empty".into())),
            Some("unavailable") => Err(RunFailure::Unavailable("unknown environment".into())),
            // The call's JSON text itself, as a JSON string.
            Some("echo-text") => Ok(Some(serde_json::Value::String(call_json).to_string())),
            _ if call.get("outputSchema").is_some() => Ok(Some(call_json)),
            _ => Ok(None),
        }
    }

    fn read_resource(&mut self, name: String) -> Option<String> {
        RESOURCES
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, t)| t.to_string())
    }

    fn list_resources(&mut self) -> Vec<String> {
        RESOURCES.iter().map(|(n, _)| n.to_string()).collect()
    }

    fn log(&mut self, level: LogLevel, message: String) {
        println!("[log {level:?}] {message}");
        self.log.push(message);
    }

    fn coverage(&mut self, r: host::CoverageReport) {
        let list = |l: &[u32]| l.iter().map(u32::to_string).collect::<Vec<_>>().join(",");
        let text = format!(
            "{} / {} / {}",
            list(&r.ran),
            list(&r.lines),
            list(&r.call_lines)
        );
        println!("[coverage] {text} (last line {})", r.last_line);
        self.coverage = Some(text);
    }
}

/// One hook run's settings.
#[derive(Clone)]
struct Job {
    globals: String,
    compile_only: bool,
    max_result_bytes: u32,
    memory: Option<usize>,
    coverage: bool,
}

impl Default for Job {
    fn default() -> Self {
        Job {
            globals: "{}".into(),
            compile_only: false,
            max_result_bytes: 1 << 20,
            memory: None,
            coverage: false,
        }
    }
}

struct Outcome {
    result: Result<String, HookError>,
    log: Vec<String>,
    scratch_files: Vec<String>,
    coverage: Option<String>,
}

struct Harness {
    engine: Engine,
    linker: Linker<State>,
    component: Component,
}

impl Harness {
    fn new(component_path: &Path) -> Result<Harness> {
        let mut config = Config::new();
        config.wasm_exceptions(true);
        let engine = Engine::new(&config).map_err(|e| anyhow!("{e:?}"))?;
        let bytes = std::fs::read(component_path).with_context(|| {
            format!(
                "reading {} (build it: cargo xtask guest)",
                component_path.display()
            )
        })?;
        let component = Component::new(&engine, &bytes).map_err(|e| anyhow!("{e:?}"))?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker).map_err(|e| anyhow!("{e:?}"))?;
        Hook::add_to_linker::<State, HasSelf<State>>(&mut linker, |s| s)
            .map_err(|e| anyhow!("{e:?}"))?;
        Ok(Harness {
            engine,
            linker,
            component,
        })
    }

    fn run(&self, script: &str, chunk: &str, job: &Job) -> Result<Outcome> {
        let scratch = tempdir()?;
        let mut wasi = wasmtime_wasi::WasiCtxBuilder::new();
        wasi.preopened_dir(&scratch, "/", wasmtime_wasi::FsPerms::ReadWrite)
            .map_err(|e| anyhow!("{e:?}"))?;
        let mut limits = StoreLimitsBuilder::new();
        if let Some(m) = job.memory {
            limits = limits.memory_size(m);
        }
        let state = State {
            wasi: wasi.build(),
            table: ResourceTable::new(),
            limits: limits.build(),
            log: Vec::new(),
            calls: Vec::new(),
            coverage: None,
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.limits);
        let hook = Hook::instantiate(&mut store, &self.component, &self.linker)
            .map_err(|e| anyhow!("{e:?}"))?;
        let options = HookOptions {
            compile_only: job.compile_only,
            max_result_bytes: job.max_result_bytes,
            max_depth: 100,
            max_call_bytes: 16 << 20,
            max_message_bytes: 64 << 10,
            random_seed: 42,
            coverage: job.coverage,
        };
        let result = hook
            .lunabox_hook_runner()
            .call_run_hook(&mut store, script, chunk, &job.globals, options)
            .map_err(|e| anyhow!("guest trapped: {e:?}"))?;
        let mut scratch_files: Vec<String> = std::fs::read_dir(&scratch)?
            .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
            .collect();
        scratch_files.sort();
        std::fs::remove_dir_all(&scratch).ok();
        Ok(Outcome {
            result,
            log: std::mem::take(&mut store.data_mut().log),
            scratch_files,
            coverage: store.data_mut().coverage.take(),
        })
    }
}

fn tempdir() -> Result<PathBuf> {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let dir = std::env::temp_dir().join(format!(
        "lunabox-smoke-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

fn kind_name(k: ErrorKind) -> &'static str {
    match k {
        ErrorKind::Syntax => "syntax",
        ErrorKind::Runtime => "runtime",
        ErrorKind::RunFailed => "run-failed",
        ErrorKind::BadResult => "bad-result",
        ErrorKind::ResultTooLarge => "result-too-large",
        ErrorKind::Memory => "memory",
    }
}

fn print_outcome(o: &Outcome) {
    match &o.result {
        Ok(json) => println!("ok: {json}"),
        Err(e) => {
            println!("error {}: {}", kind_name(e.kind), e.message);
            if let Some(x) = &e.exit {
                println!(
                    "  exit {} stdout={:?} stderr={:?}",
                    x.exit_code, x.stdout, x.stderr
                );
            }
            if let Some(tb) = &e.traceback {
                println!("{tb}");
            }
        }
    }
    if !o.scratch_files.is_empty() {
        println!("scratch: {}", o.scratch_files.join(" "));
    }
}

/// Entry point of `guest-smoke`.
pub fn run(args: &[String]) -> Result<()> {
    let mut job = Job::default();
    // The last local build if there is one, else the committed component.
    let mut component = workspace::build_dir().join("lunabox-guest.wasm");
    if !component.is_file() {
        component = workspace::committed_component();
    }
    let mut files = Vec::new();
    let mut tests: Option<PathBuf> = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = || {
            it.next()
                .cloned()
                .with_context(|| format!("{a} needs a value"))
        };
        match a.as_str() {
            "--component" => component = PathBuf::from(value()?),
            "--globals" => job.globals = value()?,
            "--compile-only" => job.compile_only = true,
            "--max-result-bytes" => job.max_result_bytes = value()?.parse()?,
            "--memory" => job.memory = Some(value()?.parse()?),
            "--tests" => tests = Some(workspace::root().join("guest-lua").join("tests")),
            "-h" | "--help" => {
                println!(
                    "{}",
                    include_str!("smoke.rs")
                        .lines()
                        .take_while(|l| l.starts_with("//!"))
                        .map(|l| l.trim_start_matches("//!").trim_start_matches(' '))
                        .collect::<Vec<_>>()
                        .join("\n")
                );
                return Ok(());
            }
            other if other.starts_with("--") => bail!("guest-smoke: unknown option {other}"),
            other => files.push(PathBuf::from(other)),
        }
    }
    let harness = Harness::new(&component)?;
    if let Some(dir) = tests {
        let dir = files.pop().unwrap_or(dir);
        return run_tests(&harness, &dir);
    }
    if files.is_empty() {
        bail!("guest-smoke: give a Lua file (or --tests)");
    }
    for f in files {
        let script =
            std::fs::read_to_string(&f).with_context(|| format!("reading {}", f.display()))?;
        let chunk = f.file_name().and_then(|n| n.to_str()).unwrap_or("chunk");
        let started = std::time::Instant::now();
        let o = harness.run(&script, chunk, &job)?;
        print_outcome(&o);
        eprintln!("({:.2} ms)", started.elapsed().as_secs_f64() * 1e3);
    }
    Ok(())
}

/// Expectations parsed from a test file's `--!` lines.
#[derive(Default)]
struct Expect {
    result: Option<serde_json::Value>,
    error: Option<String>,
    message: Vec<String>,
    log: Vec<String>,
    coverage: Option<String>,
}

fn parse_expect(script: &str) -> Result<(Job, Expect)> {
    let mut job = Job::default();
    let mut ex = Expect::default();
    for line in script.lines() {
        let Some(rest) = line.strip_prefix("--!") else {
            continue;
        };
        let rest = rest.trim();
        let (key, val) = rest
            .split_once(':')
            .map(|(k, v)| (k.trim(), v.trim()))
            .unwrap_or((rest, ""));
        match key {
            "globals" => job.globals = val.to_string(),
            "compile-only" => job.compile_only = true,
            "max-result-bytes" => job.max_result_bytes = val.parse()?,
            "memory" => job.memory = Some(val.parse()?),
            "result" => {
                ex.result = Some(
                    serde_json::from_str(val).with_context(|| format!("bad --! result: {val}"))?,
                )
            }
            "error" => ex.error = Some(val.to_string()),
            "message" => ex.message.push(val.to_string()),
            "log" => ex.log.push(val.to_string()),
            "coverage" => {
                job.coverage = true;
                ex.coverage = Some(val.to_string());
            }
            other => bail!("unknown expectation `--! {other}`"),
        }
    }
    if ex.result.is_none() && ex.error.is_none() {
        ex.result = Some(serde_json::json!("ok"));
    }
    Ok((job, ex))
}

fn check(o: &Outcome, ex: &Expect) -> Result<(), String> {
    match (&o.result, &ex.result, &ex.error) {
        (Ok(json), Some(want), _) => {
            let got: serde_json::Value = serde_json::from_str(json)
                .map_err(|e| format!("result is not JSON ({e}): {json}"))?;
            if &got != want {
                return Err(format!("result {json}, expected {want}"));
            }
        }
        (Ok(json), None, Some(kind)) => {
            return Err(format!("expected error {kind}, got ok: {json}"));
        }
        (Err(e), _, Some(kind)) => {
            if kind_name(e.kind) != kind {
                return Err(format!(
                    "expected error {kind}, got {}: {}",
                    kind_name(e.kind),
                    e.message
                ));
            }
        }
        (Err(e), _, None) => {
            return Err(format!(
                "unexpected error {}: {}\n{}",
                kind_name(e.kind),
                e.message,
                e.traceback.clone().unwrap_or_default()
            ));
        }
        (Ok(_), None, None) => unreachable!("parse_expect sets a default"),
    }
    if let Err(e) = &o.result {
        for m in &ex.message {
            if !e.message.contains(m.as_str()) {
                return Err(format!("message {:?} does not contain {m:?}", e.message));
            }
        }
    }
    for want in &ex.log {
        if !o.log.iter().any(|l| l.contains(want.as_str())) {
            return Err(format!("log {:?} has no line containing {want:?}", o.log));
        }
    }
    if let Some(want) = &ex.coverage
        && o.coverage.as_deref().map(str::trim) != Some(want.as_str())
    {
        return Err(format!("coverage {:?}, expected {want:?}", o.coverage));
    }
    Ok(())
}

fn run_tests(harness: &Harness, dir: &Path) -> Result<()> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "lua"))
        .collect();
    files.sort();
    let mut failed = Vec::new();
    for f in &files {
        let script = std::fs::read_to_string(f)?;
        let name = f
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("?")
            .to_string();
        let (job, ex) = parse_expect(&script).with_context(|| name.clone())?;
        let started = std::time::Instant::now();
        let verdict = match harness.run(&script, &name, &job) {
            Ok(o) => check(&o, &ex),
            Err(e) => Err(format!("{e:#}")),
        };
        let ms = started.elapsed().as_secs_f64() * 1e3;
        match verdict {
            Ok(()) => println!("ok    {name} ({ms:.1} ms)"),
            Err(why) => {
                println!("FAIL  {name}: {why}");
                failed.push(name);
            }
        }
    }
    println!(
        "{} passed, {} failed",
        files.len() - failed.len(),
        failed.len()
    );
    if !failed.is_empty() {
        bail!("guest tests failed: {}", failed.join(", "));
    }
    Ok(())
}
