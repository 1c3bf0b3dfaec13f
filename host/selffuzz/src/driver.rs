//! A bounded fuzz driver on stable Rust: inputs from a seeded generator
//! (fresh random bytes, or a seed-corpus file mutated: bits flipped, bytes
//! set, ranges inserted, removed or spliced from another file) run through
//! one target for a time budget. A panic is a crash: its input is saved
//! (`crash-<hash>`) with its message. A watchdog saves the input and aborts
//! the process when one execution runs longer than [`Options::hang`]. The
//! same seed and corpus give the same inputs.
//!
//! There is no coverage feedback (that needs libFuzzer and its
//! instrumentation); the targets' generators are biased toward what the
//! code under test looks at instead.

use std::collections::BTreeSet;
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::Target;

/// How to run a target.
#[derive(Debug, Clone)]
pub struct Options {
    /// Stop after this long (at least one execution runs).
    pub time: Duration,
    /// Seeds every choice.
    pub seed: u64,
    /// Longest fresh input, in bytes.
    pub max_len: usize,
    /// Where crashing and hanging inputs are written (`<dir>/<target>/`).
    pub crash_dir: Option<PathBuf>,
    /// One execution longer than this is a hang: the input is saved and
    /// the process aborts.
    pub hang: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            time: Duration::from_secs(5),
            seed: 0,
            max_len: 4096,
            crash_dir: None,
            hang: Duration::from_secs(120),
        }
    }
}

/// A failing input.
#[derive(Debug, Clone)]
pub struct Crash {
    /// The input.
    pub input: Vec<u8>,
    /// The panic's message and location.
    pub message: String,
    /// Where it was saved, when it was.
    pub saved: Option<PathBuf>,
}

/// What a run did.
#[derive(Debug, Clone)]
pub struct Report {
    /// The target's name.
    pub target: &'static str,
    /// Executions.
    pub execs: u64,
    /// How long they took in all.
    pub elapsed: Duration,
    /// The slowest one.
    pub slowest: Duration,
    /// Distinct crashes (by message), at most [`MAX_CRASHES`].
    pub crashes: Vec<Crash>,
}

impl Report {
    /// Executions per second.
    pub fn execs_per_sec(&self) -> f64 {
        self.execs as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// Most distinct crashes kept per run.
pub const MAX_CRASHES: usize = 10;

/// The seed corpus of `target`: `corpus/<target>/*`, sorted by name.
pub fn corpus(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("corpus")
        .join(target);
    let mut out: Vec<(PathBuf, Vec<u8>)> = std::fs::read_dir(&dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .filter_map(|p| std::fs::read(&p).ok().map(|b| (p, b)))
        .collect();
    out.sort();
    out
}

/// FNV-1a, for crash file names.
fn hash(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

fn fresh(rng: &mut StdRng, max_len: usize) -> Vec<u8> {
    // Mostly short inputs: the generators read few bytes per choice.
    let cap = [64, 256, 1024, max_len][rng.random_range(0..4)].min(max_len);
    let len = rng.random_range(0..=cap);
    (0..len).map(|_| rng.random()).collect()
}

fn mutated(rng: &mut StdRng, seeds: &[Vec<u8>], max_len: usize) -> Vec<u8> {
    let mut v = seeds[rng.random_range(0..seeds.len())].clone();
    for _ in 0..rng.random_range(1..=4) {
        let len = v.len();
        match rng.random_range(0..6) {
            0 if len > 0 => {
                let i = rng.random_range(0..len);
                v[i] ^= 1 << rng.random_range(0..8);
            }
            1 if len > 0 => {
                let i = rng.random_range(0..len);
                v[i] = [0, 0xff, 0x7f, 0x80, 1][rng.random_range(0..5)];
            }
            2 => {
                let i = rng.random_range(0..=len);
                let n = rng.random_range(1..=16);
                let bytes: Vec<u8> = (0..n).map(|_| rng.random()).collect();
                v.splice(i..i, bytes).for_each(drop);
            }
            3 if len > 0 => {
                let i = rng.random_range(0..len);
                let j = rng.random_range(i..=len.min(i + 32));
                v.drain(i..j);
            }
            4 => {
                let other = &seeds[rng.random_range(0..seeds.len())];
                let i = rng.random_range(0..=len);
                let from = rng.random_range(0..=other.len());
                v.truncate(i);
                v.extend_from_slice(&other[from..]);
            }
            _ => {
                let n = rng.random_range(0..=len);
                v.truncate(n);
            }
        }
    }
    v.truncate(max_len * 2);
    v
}

/// The execution in progress: when it started, and its input.
type Running = Option<(Instant, Vec<u8>)>;

thread_local! {
    static LAST_PANIC: std::cell::RefCell<Option<String>> = const { std::cell::RefCell::new(None) };
}

/// Run `target` under `opts` (see the module doc). Panics of other threads
/// during the run are still reported by the previous panic hook.
pub fn run(target: Target, opts: &Options) -> Report {
    let seeds: Vec<Vec<u8>> = corpus(target.name).into_iter().map(|(_, b)| b).collect();
    let mut rng = StdRng::seed_from_u64(opts.seed ^ hash(target.name.as_bytes()));
    let current: Arc<Mutex<Running>> = Arc::default();
    let done = Arc::new(AtomicBool::new(false));
    let crash_dir = opts.crash_dir.as_ref().map(|d| d.join(target.name));
    let watchdog = {
        let (current, done, dir, hang) =
            (current.clone(), done.clone(), crash_dir.clone(), opts.hang);
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(200));
                let guard = current.lock().unwrap_or_else(|p| p.into_inner());
                if let Some((started, input)) = &*guard
                    && started.elapsed() > hang
                {
                    let at = dir.as_ref().map(|d| save(d, "hang", input));
                    eprintln!(
                        "selffuzz {}: one execution ran {:?} (a hang); input saved at {at:?}",
                        target.name,
                        started.elapsed()
                    );
                    std::process::abort();
                }
            }
        })
    };

    let previous = panic::take_hook();
    panic::set_hook(Box::new(|info| {
        LAST_PANIC.with(|p| *p.borrow_mut() = Some(info.to_string()));
    }));
    let mut report = Report {
        target: target.name,
        execs: 0,
        elapsed: Duration::ZERO,
        slowest: Duration::ZERO,
        crashes: Vec::new(),
    };
    let mut seen = BTreeSet::new();
    let started = Instant::now();
    while report.execs == 0 || started.elapsed() < opts.time {
        let input = if !seeds.is_empty() && rng.random_bool(0.5) {
            mutated(&mut rng, &seeds, opts.max_len)
        } else {
            fresh(&mut rng, opts.max_len)
        };
        *current.lock().unwrap_or_else(|p| p.into_inner()) = Some((Instant::now(), input.clone()));
        let one = Instant::now();
        let outcome = panic::catch_unwind(AssertUnwindSafe(|| (target.run)(&input)));
        report.slowest = report.slowest.max(one.elapsed());
        report.execs += 1;
        if outcome.is_err() {
            let message = LAST_PANIC
                .with(|p| p.borrow_mut().take())
                .unwrap_or_else(|| "a panic without a message".into());
            let key: String = message
                .lines()
                .next()
                .unwrap_or_default()
                .chars()
                .take(200)
                .collect();
            if report.crashes.len() < MAX_CRASHES && seen.insert(key) {
                let saved = crash_dir.as_ref().map(|d| save(d, "crash", &input));
                report.crashes.push(Crash {
                    input,
                    message,
                    saved,
                });
            }
        }
    }
    report.elapsed = started.elapsed();
    panic::set_hook(previous);
    done.store(true, Ordering::Relaxed);
    let _ = watchdog.join();
    report
}

fn save(dir: &Path, kind: &str, input: &[u8]) -> PathBuf {
    let path = dir.join(format!("{kind}-{:016x}", hash(input)));
    let _ = std::fs::create_dir_all(dir);
    let _ = std::fs::write(&path, input);
    path
}

#[cfg(test)]
mod tests {
    use super::*;

    fn boom(data: &[u8]) {
        assert!(!data.starts_with(b"\x00"), "a zero byte first");
    }

    #[test]
    fn a_panicking_input_is_reported_once_and_saved() {
        let dir = tempfile::tempdir().unwrap();
        let opts = Options {
            time: Duration::from_millis(300),
            seed: 7,
            max_len: 8,
            crash_dir: Some(dir.path().into()),
            ..Options::default()
        };
        let r = run(
            Target {
                name: "boom",
                run: boom,
            },
            &opts,
        );
        assert!(r.execs > 100, "{} execs", r.execs);
        assert_eq!(r.crashes.len(), 1, "{:?}", r.crashes);
        let c = &r.crashes[0];
        assert!(c.input.starts_with(b"\x00"));
        assert!(c.message.contains("a zero byte first"), "{}", c.message);
        assert_eq!(std::fs::read(c.saved.as_ref().unwrap()).unwrap(), c.input);
    }

    #[test]
    fn the_same_seed_makes_the_same_inputs() {
        let mut a = StdRng::seed_from_u64(3);
        let mut b = StdRng::seed_from_u64(3);
        let seeds = vec![b"abcdef".to_vec(), b"xyz".to_vec()];
        for _ in 0..50 {
            assert_eq!(fresh(&mut a, 64), fresh(&mut b, 64));
            assert_eq!(mutated(&mut a, &seeds, 64), mutated(&mut b, &seeds, 64));
        }
    }
}
