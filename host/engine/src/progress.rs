//! Progress reporting of long operations: each stage of a SnapSync, link,
//! enable or disable as `[1/4] resync ... ok (1.2s)` on stderr, or nothing.

use std::io::Write;
use std::sync::Mutex;
use std::time::Duration;

use super::jobs::Outcome;

/// Receives the stages of an operation as they happen.
pub trait Progress: Send + Sync {
    /// Stage `index` (1-based) of `total`, called `name`, starts.
    fn stage(&self, index: usize, total: usize, name: &str);
    /// The stage started last ended.
    fn stage_done(&self, outcome: Outcome, elapsed: Duration, note: Option<&str>);
    /// A free-form line (waiting for a lock, recovery, retention).
    fn note(&self, message: &str);
}

/// Reports nothing.
pub struct Silent;

impl Progress for Silent {
    fn stage(&self, _: usize, _: usize, _: &str) {}
    fn stage_done(&self, _: Outcome, _: Duration, _: Option<&str>) {}
    fn note(&self, _: &str) {}
}

/// Reports on stderr, optionally prefixing each line (`[db1] `).
pub struct Stderr {
    prefix: String,
    open: Mutex<bool>,
}

impl Stderr {
    /// A reporter on stderr; `prefix` (e.g. a dSource name) starts each line.
    pub fn new(prefix: Option<&str>) -> Stderr {
        Stderr {
            prefix: prefix.map(|p| format!("[{p}] ")).unwrap_or_default(),
            open: Mutex::new(false),
        }
    }
}

/// `1.2s`, `340ms`.
pub fn human(d: Duration) -> String {
    if d.as_millis() < 1000 {
        format!("{}ms", d.as_millis())
    } else {
        format!("{:.1}s", d.as_secs_f64())
    }
}

impl Progress for Stderr {
    fn stage(&self, index: usize, total: usize, name: &str) {
        let mut e = std::io::stderr().lock();
        let _ = write!(e, "{}[{index}/{total}] {name} ... ", self.prefix);
        let _ = e.flush();
        *self.open.lock().unwrap_or_else(|p| p.into_inner()) = true;
    }

    fn stage_done(&self, outcome: Outcome, elapsed: Duration, note: Option<&str>) {
        let word = match outcome {
            Outcome::Ok => "ok",
            Outcome::Failed => "FAILED",
            Outcome::Skipped => "skipped",
        };
        let note = note
            .map(|n| {
                let first = n.lines().next().unwrap_or("");
                format!(": {first}")
            })
            .unwrap_or_default();
        let time = if outcome == Outcome::Skipped {
            String::new()
        } else {
            format!(" ({})", human(elapsed))
        };
        eprintln!(
            "{}",
            lunabox_toolkit::text::for_person(&format!("{word}{time}{note}"))
        );
        *self.open.lock().unwrap_or_else(|p| p.into_inner()) = false;
    }

    fn note(&self, message: &str) {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        if *open {
            eprintln!();
            *open = false;
        }
        eprintln!(
            "{}",
            lunabox_toolkit::text::for_person(&format!("{}{message}", self.prefix))
        );
    }
}

/// Reports whole lines only (`[db1] [1/3] preSnapshot ok (1.2s)`), so that
/// several operations running at once (the daemon) do not interleave.
pub struct Lines {
    prefix: String,
    current: Mutex<String>,
}

impl Lines {
    /// A whole-line reporter whose lines start with `[prefix] `.
    pub fn new(prefix: &str) -> Lines {
        Lines {
            prefix: format!("[{prefix}] "),
            current: Mutex::new(String::new()),
        }
    }
}

impl Progress for Lines {
    fn stage(&self, index: usize, total: usize, name: &str) {
        *self.current.lock().unwrap_or_else(|p| p.into_inner()) =
            format!("[{index}/{total}] {name}");
    }

    fn stage_done(&self, outcome: Outcome, elapsed: Duration, note: Option<&str>) {
        let stage = self
            .current
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let note = note
            .map(|n| format!(": {}", n.lines().next().unwrap_or("")))
            .unwrap_or_default();
        let line = format!(
            "{}{stage} {} ({}){note}",
            self.prefix,
            outcome.as_str(),
            human(elapsed)
        );
        eprintln!("{}", lunabox_toolkit::text::for_person(&line));
    }

    fn note(&self, message: &str) {
        eprintln!(
            "{}",
            lunabox_toolkit::text::for_person(&format!("{}{message}", self.prefix))
        );
    }
}
