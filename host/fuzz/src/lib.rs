//! lunabox-fuzz: `lunabox fuzz` finds a toolkit's bugs before its users do.
//!
//! Every hook runs in a fresh sandbox in tens of microseconds against
//! answers made up for its Run calls, so each hook can be run thousands of
//! times a second with varied inputs: its parameters, config and
//! repository from the toolkit's schemas with edge-case strings and
//! canaries ([`values`]), its other globals (`snapshotJson`, ...), and each
//! Run call's answer: exit code, stdout and stderr, and an output document
//! from the call's `outputSchema`, then mutated, or a call that hangs
//! ([`respond`]). The guest reports which lines of the hook ran (the
//! sandbox's coverage option), and inputs that reach new lines or new
//! outcomes are kept and mutated further.
//!
//! Each run is classified ([`classify`]): bugs (a Lua runtime error that is
//! not a failed Run call, a value the hook kind does not allow, a limit, a
//! canary value in a command's text) or expected faults (a failed Run call
//! surfacing as the hook's fault), which are counted. A bug is
//! deduplicated by kind and Lua location, minimized ([`minimize`]) and
//! written as a context file and a responses file that
//! `lunabox run-hook TOOLKIT HOOK --context C --responses R` replays.
//!
//! Runs are deterministic for a seed: inputs are made in batches from one
//! seeded generator and their results are taken in order, whichever thread
//! ran them.
//!
//! ```no_run
//! use lunabox_fuzz::{Options, fuzz};
//! use lunabox_sandbox::{Runtime, RuntimeConfig};
//!
//! let runtime = Runtime::new(RuntimeConfig::default())?;
//! let loaded = lunabox_toolkit::load(std::path::Path::new("toolkits/delphixdb"))?;
//! let report = fuzz(&runtime, &loaded.toolkit, &Options { runs: Some(10_000), ..Options::default() }, &mut |_| {})?;
//! println!("{} runs, {} findings", report.runs, report.findings.len());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![warn(missing_docs)]

pub mod classify;
pub mod exec;
pub mod input;
pub mod minimize;
pub mod respond;
pub mod values;

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use lunabox_run::executors::scripted::{Response, ScriptedExecutor};
use lunabox_sandbox::hook::{self as hooks, HookId, Toolkit};
use lunabox_sandbox::{HookOutcome, Limits, Runtime};
use lunabox_toolkit::hook::catalog;
use lunabox_toolkit::model::lua_source;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Map, Value, json};

pub use classify::{Bug, Kind, Verdict};
use exec::{Executed, FuzzExecutor, Planned};
use input::{Input, Shapes};

/// How to fuzz.
#[derive(Debug, Clone)]
pub struct Options {
    /// The hooks to fuzz; empty: every hook the toolkit has.
    pub hooks: Vec<HookId>,
    /// A context file's object: its parts are the first input's, and its
    /// `source` and `remote` are used throughout.
    pub context: Map<String, Value>,
    /// Stop after this many runs in all (spread over the hooks).
    pub runs: Option<u64>,
    /// Stop after this long.
    pub time: Option<Duration>,
    /// Seeds every choice.
    pub seed: u64,
    /// Where findings are written.
    pub out: PathBuf,
    /// The limits of each run (a short timeout: a hook that loops ends
    /// soon as a time limit).
    pub limits: Limits,
    /// The timeout of a run whose answers include a hanging call.
    pub hang_timeout: Duration,
    /// Threads running hooks.
    pub threads: usize,
    /// Record coverage (guidance and the report).
    pub coverage: bool,
    /// Most runs spent minimizing one finding.
    pub minimize_budget: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            hooks: Vec::new(),
            context: Map::new(),
            runs: None,
            time: None,
            seed: 0,
            out: PathBuf::from("lunabox-fuzz"),
            limits: Limits {
                timeout: Duration::from_millis(500),
                ..Limits::default()
            },
            hang_timeout: Duration::from_millis(50),
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            coverage: true,
            minimize_budget: 400,
        }
    }
}

/// Why fuzzing could not start.
#[derive(Debug, thiserror::Error)]
pub enum FuzzError {
    /// A hook asked for is not one of the toolkit's.
    #[error("{0}")]
    Hook(String),
    /// Nothing to fuzz.
    #[error("toolkit `{0}` has no hook with a script to fuzz")]
    NoHooks(String),
    /// A finding could not be written.
    #[error("cannot write findings to {path}: {error}")]
    Write {
        /// The file.
        path: PathBuf,
        /// What failed.
        error: std::io::Error,
    },
}

/// A bug found, minimized and written.
#[derive(Debug, Clone)]
pub struct Finding {
    /// The hook, as `run-hook` takes it (`staged/status`).
    pub hook: String,
    /// The bug.
    pub kind: Kind,
    /// In words.
    pub message: String,
    /// `chunk:LINE` (the chunk alone when no line is known).
    pub location: String,
    /// The context file written.
    pub context: PathBuf,
    /// The responses file written.
    pub responses: PathBuf,
    /// Replaying the written files showed the same bug.
    pub reproduced: bool,
    /// Runs that showed it.
    pub hits: u64,
}

/// The lines of one hook.
#[derive(Debug, Clone, Default)]
pub struct HookCoverage {
    /// Lines that ran in some run.
    pub covered: BTreeSet<u32>,
    /// Lines with code.
    pub lines: BTreeSet<u32>,
}

/// Where fuzzing stands (for progress lines).
#[derive(Debug, Clone, Default)]
pub struct Progress {
    /// Runs so far.
    pub runs: u64,
    /// Runs per second so far.
    pub runs_per_second: f64,
    /// Distinct bugs so far.
    pub findings: usize,
    /// Expected faults so far.
    pub expected_faults: u64,
    /// Lines covered, over all hooks.
    pub covered: usize,
    /// Lines with code, over all hooks.
    pub lines: usize,
    /// Seconds since the start.
    pub elapsed: f64,
}

/// What fuzzing found.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Hook runs (minimizing not counted).
    pub runs: u64,
    /// Hook runs per second.
    pub runs_per_second: f64,
    /// Each hook's coverage, by hook.
    pub coverage: BTreeMap<String, HookCoverage>,
    /// The bugs, in the order found.
    pub findings: Vec<Finding>,
    /// Runs that ended in an expected fault.
    pub expected_faults: u64,
    /// Runs whose generated parameters the hook's schema refused (not run).
    pub rejected: u64,
    /// Each hook's chunk name, by hook.
    pub chunks: BTreeMap<String, String>,
}

impl Report {
    /// The `--json` object: `runs`, `runsPerSecond`, `coverage` (by hook:
    /// `covered`, `lines`, `percent`), `findings` (`hook`, `kind`,
    /// `message`, `location`, `context`, `responses`), `expectedFaults`.
    pub fn to_json(&self) -> Value {
        let coverage: Map<String, Value> = self
            .coverage
            .iter()
            .map(|(h, c)| {
                (
                    h.clone(),
                    json!({
                        "covered": c.covered.len(),
                        "lines": c.lines.len(),
                        "percent": percent(c.covered.len(), c.lines.len()),
                    }),
                )
            })
            .collect();
        json!({
            "runs": self.runs,
            "runsPerSecond": (self.runs_per_second * 10.0).round() / 10.0,
            "coverage": coverage,
            "findings": self.findings.iter().map(|f| json!({
                "hook": f.hook,
                "kind": f.kind.as_str(),
                "message": f.message,
                "location": f.location,
                "context": f.context.display().to_string(),
                "responses": f.responses.display().to_string(),
            })).collect::<Vec<_>>(),
            "expectedFaults": self.expected_faults,
        })
    }

    /// The coverage in lcov's format; `file_of` names each hook's source
    /// file (`None`: left out).
    pub fn to_lcov(&self, file_of: &dyn Fn(&str) -> Option<String>) -> String {
        let mut out = String::new();
        for (hook, c) in &self.coverage {
            let Some(file) = file_of(hook) else { continue };
            out.push_str(&format!("TN:{}\nSF:{file}\n", hook.replace('/', "_")));
            for line in &c.lines {
                let hits = u32::from(c.covered.contains(line));
                out.push_str(&format!("DA:{line},{hits}\n"));
            }
            out.push_str(&format!(
                "LF:{}\nLH:{}\nend_of_record\n",
                c.lines.len(),
                c.lines.intersection(&c.covered).count()
            ));
        }
        out
    }
}

/// `part` of `whole` in percent, one decimal.
pub fn percent(part: usize, whole: usize) -> f64 {
    if whole == 0 {
        return 100.0;
    }
    (part as f64 * 1000.0 / whole as f64).round() / 10.0
}

/// One hook being fuzzed: what its runs read (shared with the threads).
struct Target {
    hook: HookId,
    name: String,
    chunk: String,
    shapes: Shapes,
}

/// What the runs of one hook have taught so far (the main thread's).
#[derive(Default)]
struct Learned {
    corpus: Vec<Input>,
    features: HashSet<u64>,
    coverage: HookCoverage,
    started: bool,
}

/// What one run gave.
struct RunResult {
    outcome: Option<HookOutcome>,
    plan: Vec<Planned>,
    executed: Vec<Executed>,
}

/// The hooks of `toolkit` worth fuzzing (a script that is not blank).
pub fn hooks_of(toolkit: &Toolkit) -> Vec<HookId> {
    toolkit
        .scripts
        .iter()
        .filter(|(h, s)| catalog::spec_of(h).is_some() && !lua_source(s).trim().is_empty())
        .map(|(h, _)| h.clone())
        .collect()
}

/// Inputs for every hook, made in order from one generator.
type Batch = Arc<Vec<(usize, Input)>>;

/// Inputs made for each hook in a batch.
const PER_TARGET: usize = 16;

/// Fuzz `toolkit` with `options`, calling `progress` about once a second.
///
/// The threads run one batch while this thread makes the next one and then
/// takes the running batch's results in order, so the cores stay busy: the
/// batch made while batch N runs is made from what batches before N taught
/// (a fixed lag of one batch, whatever the threads' timing).
pub fn fuzz(
    runtime: &Runtime,
    toolkit: &Toolkit,
    options: &Options,
    progress: &mut dyn FnMut(&Progress),
) -> Result<Report, FuzzError> {
    let hooks = if options.hooks.is_empty() {
        hooks_of(toolkit)
    } else {
        for h in &options.hooks {
            hooks::resolve(toolkit, h).map_err(|e| FuzzError::Hook(e.to_string()))?;
        }
        options.hooks.clone()
    };
    if hooks.is_empty() {
        return Err(FuzzError::NoHooks(
            toolkit.name().unwrap_or("?").to_string(),
        ));
    }
    let targets: Vec<Target> = hooks
        .iter()
        .filter_map(|h| {
            let spec = catalog::spec_of(h)?;
            Some(Target {
                hook: h.clone(),
                name: h.to_string(),
                chunk: toolkit.chunk_name(h),
                shapes: Shapes::new(toolkit, spec, h, options.context.clone()),
            })
        })
        .collect();
    let mut learned: Vec<Learned> = targets.iter().map(|_| Learned::default()).collect();

    let started = Instant::now();
    let mut rng = StdRng::seed_from_u64(options.seed);
    let mut report = Report::default();
    let mut seen: BTreeMap<(String, Kind, String), usize> = BTreeMap::new();
    let mut written: BTreeMap<(String, Kind), usize> = BTreeMap::new();
    let mut last_progress = Instant::now();
    let threads = options.threads.max(1);
    let mut made: u64 = 0;

    std::thread::scope(|scope| -> Result<(), FuzzError> {
        let mut pool = Pool::start(scope, threads, runtime, toolkit, &targets, options);
        let mut running: Option<Batch> = None;
        loop {
            // The next batch, made before the running one's results are in.
            let left = options.runs.map(|r| r.saturating_sub(made));
            let out_of_time = options.time.is_some_and(|t| started.elapsed() >= t);
            let next = if left == Some(0) || out_of_time {
                None
            } else {
                let mut batch = make_batch(&targets, &mut learned, &mut rng);
                if let Some(left) = left {
                    batch.truncate(usize::try_from(left).unwrap_or(usize::MAX));
                }
                made += batch.len() as u64;
                let batch: Batch = Arc::new(batch);
                pool.submit(&batch);
                Some(batch)
            };
            if let Some(batch) = running.take() {
                report.runs += batch.len() as u64;
                for (ti, input) in batch.iter() {
                    let result = pool.next_result();
                    take(
                        runtime,
                        toolkit,
                        &targets[*ti],
                        &mut learned[*ti],
                        input.clone(),
                        result,
                        options,
                        &mut rng,
                        &mut report,
                        &mut seen,
                        &mut written,
                    )?;
                }
                if last_progress.elapsed() >= Duration::from_secs(1) {
                    last_progress = Instant::now();
                    progress(&snapshot(&report, &learned, started));
                }
            }
            running = next;
            if running.is_none() {
                return Ok(());
            }
        }
    })?;
    let elapsed = started.elapsed().as_secs_f64();
    report.runs_per_second = if elapsed > 0.0 {
        report.runs as f64 / elapsed
    } else {
        0.0
    };
    progress(&snapshot(&report, &learned, started));
    for (t, l) in targets.into_iter().zip(learned) {
        report.chunks.insert(t.name.clone(), t.chunk);
        report.coverage.insert(t.name, l.coverage);
    }
    Ok(report)
}

/// A batch: `PER_TARGET` inputs for every hook, in hook order.
fn make_batch(
    targets: &[Target],
    learned: &mut [Learned],
    rng: &mut StdRng,
) -> Vec<(usize, Input)> {
    let mut batch = Vec::with_capacity(targets.len() * PER_TARGET);
    for (ti, (t, l)) in targets.iter().zip(learned.iter_mut()).enumerate() {
        for _ in 0..PER_TARGET {
            let seed = rng.random();
            let input = if !l.started {
                l.started = true;
                t.shapes.first(seed, rng)
            } else if l.corpus.is_empty() || rng.random_bool(0.1) {
                t.shapes.fresh(seed, rng)
            } else {
                let i = rng.random_range(0..l.corpus.len());
                t.shapes.mutate(&l.corpus[i], rng)
            };
            batch.push((ti, input));
        }
    }
    batch
}

/// Take one run's result: classify it, keep its input if it was novel,
/// and record a new bug.
#[allow(clippy::too_many_arguments)]
fn take(
    runtime: &Runtime,
    toolkit: &Toolkit,
    t: &Target,
    l: &mut Learned,
    mut input: Input,
    result: RunResult,
    options: &Options,
    rng: &mut StdRng,
    report: &mut Report,
    seen: &mut BTreeMap<(String, Kind, String), usize>,
    written: &mut BTreeMap<(String, Kind), usize>,
) -> Result<(), FuzzError> {
    let Some(outcome) = result.outcome else {
        report.rejected += 1;
        return Ok(());
    };
    input.plan = result.plan;
    let verdict = classify::classify(
        &outcome,
        &result.executed,
        &input.canaries,
        &t.chunk,
        options.coverage,
    );
    if verdict.expected.is_some() {
        report.expected_faults += 1;
    }
    // Guidance: lines and outcomes not seen before keep the input.
    let mut novel = false;
    if let Some(c) = &outcome.coverage {
        if l.coverage.lines.is_empty() {
            l.coverage.lines.extend(c.lines.iter().copied());
        }
        for line in &c.ran {
            novel |= l.coverage.covered.insert(*line);
            novel |= l.features.insert(u64::from(*line));
        }
        let shape = (u64::from(c.last_line) << 20)
            | (outcome_class(&outcome.result) << 8)
            | outcome.transcript.len().min(255) as u64;
        novel |= l.features.insert(shape | (1 << 60));
    }
    for b in &verdict.bugs {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        std::hash::Hash::hash(&b.signature(), &mut h);
        novel |= l.features.insert(std::hash::Hasher::finish(&h) | (1 << 61));
    }
    for bug in &verdict.bugs {
        let key = (t.name.clone(), bug.kind, bug.location.clone());
        if let Some(&i) = seen.get(&key) {
            report.findings[i].hits += 1;
            continue;
        }
        let finding = record(runtime, toolkit, t, &input, bug, options, written)?;
        seen.insert(key, report.findings.len());
        report.findings.push(finding);
    }
    if novel {
        if l.corpus.len() >= 256 {
            let i = rng.random_range(0..l.corpus.len());
            l.corpus[i] = input;
        } else {
            l.corpus.push(input);
        }
    }
    Ok(())
}

/// A small number for each way a hook can end.
fn outcome_class(o: &lunabox_sandbox::Outcome) -> u64 {
    use lunabox_sandbox::Outcome as O;
    match o {
        O::Value(_) => 0,
        O::Error(e) => 1 + e.kind as u64,
        O::RunFailed(_) => 5,
        O::Limit(l) => 6 + l.kind as u64,
        O::Cancelled => 20,
        O::Quota(_) => 21,
        O::Host(_) => 22,
    }
}

fn snapshot(report: &Report, learned: &[Learned], started: Instant) -> Progress {
    let elapsed = started.elapsed().as_secs_f64();
    Progress {
        runs: report.runs,
        runs_per_second: if elapsed > 0.0 {
            report.runs as f64 / elapsed
        } else {
            0.0
        },
        findings: report.findings.len(),
        expected_faults: report.expected_faults,
        covered: learned.iter().map(|l| l.coverage.covered.len()).sum(),
        lines: learned.iter().map(|l| l.coverage.lines.len()).sum(),
        elapsed,
    }
}

/// One input to run: its place in the order inputs were made, and where it is.
struct Job {
    seq: u64,
    batch: Batch,
    index: usize,
}

/// The threads running hooks. Inputs are run in the order submitted; their
/// results are handed back in that order, whichever thread ran them.
struct Pool {
    jobs: Option<std::sync::mpsc::Sender<Job>>,
    /// Set when fuzzing stops early (an error): queued inputs are not run.
    stop: Arc<AtomicBool>,
    results: std::sync::mpsc::Receiver<(u64, std::thread::Result<RunResult>)>,
    /// Results that came before the one wanted next.
    early: BTreeMap<u64, std::thread::Result<RunResult>>,
    submitted: u64,
    taken: u64,
}

impl Pool {
    fn start<'scope, 'env: 'scope>(
        scope: &'scope std::thread::Scope<'scope, 'env>,
        threads: usize,
        runtime: &'env Runtime,
        toolkit: &'env Toolkit,
        targets: &'env [Target],
        options: &'env Options,
    ) -> Pool {
        let (jobs, queue) = std::sync::mpsc::channel::<Job>();
        let (done, results) = std::sync::mpsc::channel();
        let queue = Arc::new(std::sync::Mutex::new(queue));
        let stop = Arc::new(AtomicBool::new(false));
        for _ in 0..threads {
            let queue = queue.clone();
            let done = done.clone();
            let stop = stop.clone();
            scope.spawn(move || {
                loop {
                    // The lock is held only to take one job.
                    let job = queue.lock().unwrap_or_else(|e| e.into_inner()).recv();
                    let Ok(job) = job else { break };
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let (ti, input) = &job.batch[job.index];
                    let t = &targets[*ti];
                    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        run_fuzz(runtime, toolkit, t, input, options)
                    }));
                    if done.send((job.seq, r)).is_err() {
                        break;
                    }
                }
            });
        }
        Pool {
            jobs: Some(jobs),
            stop,
            results,
            early: BTreeMap::new(),
            submitted: 0,
            taken: 0,
        }
    }

    /// Queue every input of `batch`.
    fn submit(&mut self, batch: &Batch) {
        let jobs = self.jobs.as_ref().expect("the pool is open");
        for index in 0..batch.len() {
            let job = Job {
                seq: self.submitted,
                batch: batch.clone(),
                index,
            };
            self.submitted += 1;
            jobs.send(job).expect("the fuzzing threads are running");
        }
    }

    /// The result of the next input submitted, waiting for it.
    fn next_result(&mut self) -> RunResult {
        let want = self.taken;
        assert!(want < self.submitted, "no input is waiting for a result");
        self.taken += 1;
        let r = loop {
            if let Some(r) = self.early.remove(&want) {
                break r;
            }
            let (seq, r) = self.results.recv().expect("a fuzzing thread ended early");
            if seq == want {
                break r;
            }
            self.early.insert(seq, r);
        };
        r.unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        // The threads end once the queue is closed and empty, or at once
        // when results are no longer taken.
        if self.taken < self.submitted {
            self.stop.store(true, Ordering::Relaxed);
        }
        self.jobs = None;
    }
}

fn limits_for(input: &Input, options: &Options) -> Limits {
    let mut limits = options.limits.clone();
    if input.hangs() {
        limits.timeout = options.hang_timeout.min(limits.timeout);
    }
    limits
}

/// Run `input` with the fuzzing executor.
fn run_fuzz(
    runtime: &Runtime,
    toolkit: &Toolkit,
    target: &Target,
    input: &Input,
    options: &Options,
) -> RunResult {
    let exec = Arc::new(FuzzExecutor::fuzz(
        input.plan.clone(),
        input.seed,
        target.shapes.dict.clone(),
    ));
    run_with(runtime, toolkit, &target.hook, input, options, exec)
}

fn run_with(
    runtime: &Runtime,
    toolkit: &Toolkit,
    hook: &HookId,
    input: &Input,
    options: &Options,
    exec: Arc<FuzzExecutor>,
) -> RunResult {
    let request = match hooks::request(toolkit, hook, &input.hook_context(), None) {
        Ok(r) => r,
        Err(_) => {
            return RunResult {
                outcome: None,
                plan: Vec::new(),
                executed: Vec::new(),
            };
        }
    };
    let request = request
        .with_executor(exec.clone())
        .with_limits(limits_for(input, options))
        .with_coverage(options.coverage);
    let outcome = runtime.run_hook(request);
    let (plan, executed) = match Arc::try_unwrap(exec) {
        Ok(e) => e.finish(),
        Err(_) => (Vec::new(), Vec::new()),
    };
    RunResult {
        outcome: Some(outcome),
        plan,
        executed,
    }
}

/// Run `input` as its responses file answers (`--responses`): the plan's
/// answers, the default for anything else.
fn run_scripted(
    runtime: &Runtime,
    toolkit: &Toolkit,
    hook: &HookId,
    input: &Input,
    options: &Options,
    scripted: ScriptedExecutor,
) -> RunResult {
    run_with(
        runtime,
        toolkit,
        hook,
        input,
        options,
        Arc::new(FuzzExecutor::scripted(scripted)),
    )
}

/// The bug with signature `sig` in `result`, if it shows it.
fn shows(
    result: &RunResult,
    input: &Input,
    chunk: &str,
    sig: &(Kind, String),
    coverage: bool,
) -> Option<Bug> {
    let o = result.outcome.as_ref()?;
    classify::classify(o, &result.executed, &input.canaries, chunk, coverage)
        .bugs
        .into_iter()
        .find(|b| b.signature() == *sig)
}

struct Replay<'a> {
    runtime: &'a Runtime,
    toolkit: &'a Toolkit,
    target: &'a Target,
    options: &'a Options,
    sig: (Kind, String),
}

impl minimize::Check for Replay<'_> {
    fn still(&mut self, input: &Input) -> bool {
        if !self.target.shapes.context_valid(input) {
            return false;
        }
        let scripted = exec::scripted(&input.plan, Some(Response::default()));
        let r = run_scripted(
            self.runtime,
            self.toolkit,
            &self.target.hook,
            input,
            self.options,
            scripted,
        );
        shows(
            &r,
            input,
            &self.target.chunk,
            &self.sig,
            self.options.coverage,
        )
        .is_some()
    }
}

/// Minimize a new bug, write its files and check they replay it.
fn record(
    runtime: &Runtime,
    toolkit: &Toolkit,
    target: &Target,
    input: &Input,
    bug: &Bug,
    options: &Options,
    written: &mut BTreeMap<(String, Kind), usize>,
) -> Result<Finding, FuzzError> {
    let mut replay = Replay {
        runtime,
        toolkit,
        target,
        options,
        sig: bug.signature(),
    };
    let small = if minimize::Check::still(&mut replay, input) {
        minimize::minimize(input, bug.kind, options.minimize_budget, &mut replay)
    } else {
        input.clone()
    };
    let n = written
        .entry((target.name.clone(), bug.kind))
        .and_modify(|n| *n += 1)
        .or_insert(1);
    let stem = format!(
        "{}-{}-{n}",
        target.name.replace('/', "-"),
        bug.kind.as_str()
    );
    std::fs::create_dir_all(&options.out).map_err(|error| FuzzError::Write {
        path: options.out.clone(),
        error,
    })?;
    let context = options.out.join(format!("{stem}.context.json"));
    let responses = options.out.join(format!("{stem}.responses.json"));
    let scripted = exec::scripted(&small.plan, Some(Response::default()));
    write_json(&context, &Value::Object(small.context.clone()))?;
    write_json(&responses, &scripted.to_json())?;
    let replayed = replays(
        runtime,
        toolkit,
        target,
        &small,
        options,
        &context,
        &responses,
        &bug.signature(),
    );
    let reproduced = replayed.is_some();
    // The replayed run's own message (it differs in detail: smaller values).
    let message = replayed.map_or_else(|| bug.message.clone(), |b| b.message);
    let message = match bug.kind {
        Kind::Limit if bug.location.contains("(time limit)") => format!(
            "{message} (replay with run-hook --timeout {})",
            humantime(options.limits.timeout)
        ),
        _ => message,
    };
    Ok(Finding {
        hook: target.name.clone(),
        kind: bug.kind,
        message,
        location: bug.location.clone(),
        context,
        responses,
        reproduced,
        hits: 1,
    })
}

fn humantime(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

/// Replay the written files as `run-hook` reads them.
#[allow(clippy::too_many_arguments)]
fn replays(
    runtime: &Runtime,
    toolkit: &Toolkit,
    target: &Target,
    small: &Input,
    options: &Options,
    context: &Path,
    responses: &Path,
    sig: &(Kind, String),
) -> Option<Bug> {
    let scripted = ScriptedExecutor::from_file(responses).ok()?;
    let ctx = std::fs::read_to_string(context)
        .ok()
        .and_then(|t| lunabox_toolkit::json::parse(&t).ok())
        .and_then(|v| v.as_object().cloned())?;
    let input = Input {
        context: ctx,
        ..small.clone()
    };
    let r = run_scripted(runtime, toolkit, &target.hook, &input, options, scripted);
    shows(&r, &input, &target.chunk, sig, options.coverage)
}

fn write_json(path: &Path, v: &Value) -> Result<(), FuzzError> {
    let text = serde_json::to_string_pretty(v).expect("JSON serializes") + "\n";
    std::fs::write(path, text).map_err(|error| FuzzError::Write {
        path: path.to_path_buf(),
        error,
    })
}
