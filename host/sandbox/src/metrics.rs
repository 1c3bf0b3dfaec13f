//! What the runtime has done, for an embedder to read: hooks run, outcomes
//! by kind, limit and quota hits by kind, time spent throttled, and hook
//! durations (p50, p90, p99, max). [`crate::Runtime::metrics`] covers every
//! hook; [`crate::Tenant::metrics`] one tenant's.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use serde::Serialize;

use crate::outcome::Outcome;

/// Sub-buckets per power of two in the duration histogram (about 9% wide).
const SUB: u32 = 8;
/// Buckets: durations up to 2^40 microseconds (12 days).
const BUCKETS: usize = 41 * SUB as usize;

/// A point-in-time copy of the counters.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MetricsSnapshot {
    /// Hooks finished (every outcome).
    pub hooks_run: u64,
    /// `ok`, `error`, `run-failed`, `limit`, `cancelled`, `quota`, `host`.
    pub outcomes: BTreeMap<String, u64>,
    /// `time`, `memory`, `fuel`, ...
    pub limit_hits: BTreeMap<String, u64>,
    /// `hooks`, `memory`, `run-calls`, `slots`.
    pub quota_hits: BTreeMap<String, u64>,
    /// Milliseconds hooks spent paused because their tenant used up its CPU
    /// share.
    pub cpu_throttled_ms: u64,
    /// How long hooks took, admission wait included.
    pub duration_ms: Percentiles,
}

/// Hook durations, in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Percentiles {
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Longest.
    pub max: f64,
}

/// Counters, shared by the hooks that report into them.
#[derive(Debug, Default)]
pub struct Metrics(Mutex<Inner>);

#[derive(Debug)]
struct Inner {
    snap: MetricsSnapshot,
    buckets: Vec<u64>,
    max_us: u64,
}

impl Default for Inner {
    fn default() -> Self {
        Inner {
            snap: MetricsSnapshot::default(),
            buckets: vec![0; BUCKETS],
            max_us: 0,
        }
    }
}

fn bucket_of(us: u64) -> usize {
    let us = us.max(1);
    let exp = 63 - us.leading_zeros();
    let frac = if exp >= 3 {
        ((us >> (exp - 3)) & (u64::from(SUB) - 1)) as u32
    } else {
        ((us << (3 - exp)) & (u64::from(SUB) - 1)) as u32
    };
    ((exp * SUB + frac) as usize).min(BUCKETS - 1)
}

/// The lower edge of bucket `b`, in microseconds.
fn bucket_floor(b: usize) -> f64 {
    let exp = (b as u32) / SUB;
    let frac = (b as u32) % SUB;
    (1u64 << exp) as f64 * (1.0 + f64::from(frac) / f64::from(SUB))
}

impl Metrics {
    fn with(&self, f: impl FnOnce(&mut Inner)) {
        f(&mut self.0.lock().unwrap_or_else(|p| p.into_inner()));
    }

    /// Count one finished hook.
    pub fn record(&self, outcome: &Outcome, took: Duration) {
        self.with(|m| {
            m.snap.hooks_run += 1;
            let word = match outcome {
                Outcome::RunFailed(_) => "run-failed",
                Outcome::Host(_) => "host",
                o => o.word(),
            };
            // (No String made for a word already counted: this runs for
            // every hook, under the lock.)
            match m.snap.outcomes.get_mut(word) {
                Some(n) => *n += 1,
                None => {
                    m.snap.outcomes.insert(word.to_string(), 1);
                }
            }
            if let Outcome::Limit(l) = outcome {
                *m.snap
                    .limit_hits
                    .entry(l.kind.as_str().to_string())
                    .or_default() += 1;
            }
            if let Outcome::Quota(q) = outcome {
                *m.snap
                    .quota_hits
                    .entry(q.kind.as_str().to_string())
                    .or_default() += 1;
            }
            let us = took.as_micros().min(u128::from(u64::MAX)) as u64;
            m.buckets[bucket_of(us)] += 1;
            m.max_us = m.max_us.max(us);
        });
    }

    /// Count time a hook spent throttled.
    pub fn throttled(&self, d: Duration) {
        self.with(|m| m.snap.cpu_throttled_ms += d.as_millis() as u64);
    }

    /// A copy of the counters, with the duration percentiles worked out.
    pub fn snapshot(&self) -> MetricsSnapshot {
        let m = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let mut snap = m.snap.clone();
        let total: u64 = m.buckets.iter().sum();
        let pct = |q: f64| -> f64 {
            if total == 0 {
                return 0.0;
            }
            let want = ((total as f64) * q).ceil().max(1.0) as u64;
            let mut seen = 0;
            for (b, n) in m.buckets.iter().enumerate() {
                seen += n;
                if seen >= want {
                    return bucket_floor(b) / 1e3;
                }
            }
            m.max_us as f64 / 1e3
        };
        snap.duration_ms = Percentiles {
            p50: pct(0.50),
            p90: pct(0.90),
            p99: pct(0.99),
            max: m.max_us as f64 / 1e3,
        };
        snap
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn buckets_are_monotonic_and_percentiles_near() {
        let mut last = 0;
        for us in 1..100_000u64 {
            let b = bucket_of(us);
            assert!(b >= last);
            assert!(bucket_floor(b) <= us as f64 + 1e-9, "{us} in {b}");
            last = b;
        }
        let m = Metrics::default();
        for i in 1..=1000u64 {
            m.record(&Outcome::Value(json!(null)), Duration::from_micros(i * 10));
        }
        let s = m.snapshot();
        assert_eq!(s.hooks_run, 1000);
        assert!((s.duration_ms.p50 - 5.0).abs() < 0.6, "{s:?}");
        assert!((s.duration_ms.p99 - 9.9).abs() < 1.0, "{s:?}");
        assert_eq!(s.duration_ms.max, 10.0);
        assert_eq!(s.outcomes["ok"], 1000);
    }
}
