//! Tenants and their quotas: many tenants' hooks in one runtime, none able
//! to starve another.
//!
//! An embedder registers tenants ([`crate::Runtime::tenant`]), each with a
//! [`Quota`]:
//!
//! - **hooks in flight** and **linear memory** (the sum of the memory limits
//!   of its in-flight hooks): checked when a hook is admitted. A hook that
//!   does not fit waits, in its tenant's queue, up to [`Quota::max_wait`],
//!   then is refused with [`Outcome::Quota`](crate::Outcome::Quota) saying
//!   which quota; a hook that could never fit is refused at once.
//! - **CPU share**: at most [`CpuShare::per_window`] of hook running time in
//!   each [`CpuShare::window`]; a tenant over its share has its running hooks
//!   paused (they yield to the executor) until the next window, so its
//!   CPU-bound hooks never hold the cores from others.
//! - **Run calls per minute**: a call past the rate stops its hook with a
//!   quota outcome.
//!
//! Admission is fair: the runtime's instance slots
//! ([`crate::RuntimeConfig::max_concurrent_hooks`]) are handed out
//! round-robin across tenants with hooks waiting, so a tenant that queues a
//! thousand hooks delays another tenant's next hook by at most one turn.
//! Hooks run without a tenant share a default one without quotas.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::metrics::Metrics;
use crate::outcome::QuotaStop;

/// What one tenant may use.
#[derive(Debug, Clone, PartialEq)]
pub struct Quota {
    /// Most of its hooks running at once.
    pub max_in_flight: u32,
    /// Most linear memory (the sum of its running hooks' memory limits).
    pub max_memory: u64,
    /// Its share of running time, if limited.
    pub cpu: Option<CpuShare>,
    /// Most Run calls per minute over all its hooks, if limited.
    pub run_calls_per_minute: Option<u32>,
    /// How long a hook waits for room before it is refused (zero: refused at
    /// once).
    pub max_wait: Duration,
}

impl Default for Quota {
    fn default() -> Self {
        Quota {
            max_in_flight: u32::MAX,
            max_memory: u64::MAX,
            cpu: None,
            run_calls_per_minute: None,
            max_wait: Duration::from_secs(3600),
        }
    }
}

/// A share of running time.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CpuShare {
    /// Running time allowed per window (over all the tenant's hooks).
    pub per_window: Duration,
    /// The window.
    pub window: Duration,
}

/// Which quota refused or stopped a hook.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum QuotaKind {
    /// Too many of the tenant's hooks in flight.
    Hooks,
    /// The tenant's in-flight hooks would use too much memory.
    Memory,
    /// The tenant made too many Run calls this minute.
    RunCalls,
    /// Every instance slot of the runtime is taken.
    Slots,
}

impl QuotaKind {
    /// The name in JSON and metrics (`hooks`, `memory`, `run-calls`, `slots`).
    pub fn as_str(self) -> &'static str {
        match self {
            QuotaKind::Hooks => "hooks",
            QuotaKind::Memory => "memory",
            QuotaKind::RunCalls => "run-calls",
            QuotaKind::Slots => "slots",
        }
    }
}

/// A registered tenant. Cheap to clone.
#[derive(Clone)]
pub struct Tenant(pub(crate) Arc<TenantInner>);

pub(crate) struct TenantInner {
    pub(crate) name: String,
    index: usize,
    quota: Mutex<Quota>,
    admission: Arc<Admission>,
    cpu: Mutex<Window>,
    calls: Mutex<Window>,
    pub(crate) metrics: Metrics,
}

/// Use counted over a window of time.
#[derive(Debug)]
struct Window {
    start: Instant,
    used: u64,
}

impl std::fmt::Debug for Tenant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tenant")
            .field("name", &self.0.name)
            .finish()
    }
}

impl Tenant {
    /// Its name.
    pub fn name(&self) -> &str {
        &self.0.name
    }

    /// Its quota.
    pub fn quota(&self) -> Quota {
        self.0
            .quota
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Change its quota (applies to hooks admitted from now on).
    pub fn set_quota(&self, quota: Quota) {
        *self.0.quota.lock().unwrap_or_else(|p| p.into_inner()) = quota;
        self.0.admission.dispatch();
    }

    /// Its counters.
    pub fn metrics(&self) -> crate::MetricsSnapshot {
        self.0.metrics.snapshot()
    }

    /// Hooks of this tenant running now.
    pub fn in_flight(&self) -> u32 {
        self.0.admission.lock().slots[self.0.index].in_flight
    }

    /// Charge `ran` of running time; when the tenant is over its CPU share,
    /// the instant its next window starts (until then its hooks pause).
    pub(crate) fn charge_cpu(&self, ran: Duration) -> Option<Instant> {
        let share = self.quota().cpu?;
        let mut w = self.0.cpu.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        if now >= w.start + share.window {
            w.start = now;
            w.used = 0;
        }
        w.used += ran.as_nanos() as u64;
        (w.used > share.per_window.as_nanos() as u64).then_some(w.start + share.window)
    }

    /// Count one Run call; a quota stop when it is past the rate.
    pub(crate) fn take_run_call(&self) -> Result<(), QuotaStop> {
        let Some(rate) = self.quota().run_calls_per_minute else {
            return Ok(());
        };
        let mut w = self.0.calls.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        if now >= w.start + Duration::from_secs(60) {
            w.start = now;
            w.used = 0;
        }
        if w.used >= u64::from(rate) {
            return Err(QuotaStop {
                kind: QuotaKind::RunCalls,
                message: format!(
                    "tenant `{}` made its {rate} Run calls for this minute; the hook was stopped (raise the \
                     tenant's run_calls_per_minute, or spread the work)",
                    self.0.name
                ),
            });
        }
        w.used += 1;
        Ok(())
    }
}

/// A hook's place: held while it runs, released when dropped.
pub(crate) struct Permit {
    admission: Arc<Admission>,
    index: usize,
    memory: u64,
}

impl Drop for Permit {
    fn drop(&mut self) {
        {
            let mut s = self.admission.lock();
            let slot = &mut s.slots[self.index];
            slot.in_flight -= 1;
            slot.memory -= self.memory;
            s.total -= 1;
        }
        self.admission.dispatch();
    }
}

struct Waiter {
    memory: u64,
    tx: tokio::sync::oneshot::Sender<()>,
}

#[derive(Default)]
struct Slot {
    in_flight: u32,
    memory: u64,
    waiting: VecDeque<Waiter>,
}

#[derive(Default)]
struct State {
    total: u32,
    slots: Vec<Slot>,
    tenants: Vec<Arc<TenantInner>>,
    /// Where the next round-robin turn starts.
    cursor: usize,
}

/// The runtime's admission: instance slots and every tenant's quotas.
pub(crate) struct Admission {
    capacity: u32,
    state: Mutex<State>,
}

impl Admission {
    pub(crate) fn new(capacity: u32) -> Arc<Admission> {
        Arc::new(Admission {
            capacity,
            state: Mutex::new(State::default()),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The tenant called `name`, registered with `quota` (or given it).
    pub(crate) fn tenant(self: &Arc<Self>, name: &str, quota: Quota) -> Tenant {
        let mut s = self.lock();
        if let Some(t) = s.tenants.iter().find(|t| t.name == name) {
            let t = Tenant(t.clone());
            drop(s);
            t.set_quota(quota);
            return t;
        }
        let index = s.slots.len();
        let now = Instant::now();
        let inner = Arc::new(TenantInner {
            name: name.to_string(),
            index,
            quota: Mutex::new(quota),
            admission: self.clone(),
            cpu: Mutex::new(Window {
                start: now,
                used: 0,
            }),
            calls: Mutex::new(Window {
                start: now,
                used: 0,
            }),
            metrics: Metrics::default(),
        });
        s.slots.push(Slot::default());
        s.tenants.push(inner.clone());
        Tenant(inner)
    }

    /// Every registered tenant.
    pub(crate) fn tenants(&self) -> Vec<Tenant> {
        self.lock().tenants.iter().cloned().map(Tenant).collect()
    }

    fn fits(&self, s: &State, index: usize, memory: u64) -> Result<(), QuotaKind> {
        let q = s.tenants[index]
            .quota
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let slot = &s.slots[index];
        if slot.in_flight >= q.max_in_flight {
            Err(QuotaKind::Hooks)
        } else if slot.memory.saturating_add(memory) > q.max_memory {
            Err(QuotaKind::Memory)
        } else if s.total >= self.capacity {
            Err(QuotaKind::Slots)
        } else {
            Ok(())
        }
    }

    fn grant(self: &Arc<Self>, s: &mut State, index: usize, memory: u64) -> Permit {
        s.slots[index].in_flight += 1;
        s.slots[index].memory += memory;
        s.total += 1;
        Permit {
            admission: self.clone(),
            index,
            memory,
        }
    }

    /// Admit a hook of `tenant` that may use `memory`: at once when it fits
    /// and nobody of its tenant waits, else in its turn, within the
    /// tenant's `max_wait`.
    pub(crate) async fn admit(
        self: &Arc<Self>,
        tenant: &Tenant,
        memory: u64,
    ) -> Result<Permit, QuotaStop> {
        let index = tenant.0.index;
        let quota = tenant.quota();
        let refuse = |kind: QuotaKind, waited: bool| QuotaStop {
            kind,
            message: refusal(&tenant.0.name, kind, &quota, memory, waited),
        };
        if memory > quota.max_memory {
            return Err(refuse(QuotaKind::Memory, false));
        }
        let rx = {
            let mut s = self.lock();
            match self.fits(&s, index, memory) {
                Ok(()) if s.slots[index].waiting.is_empty() => {
                    return Ok(self.grant(&mut s, index, memory));
                }
                Err(kind) if quota.max_wait.is_zero() => return Err(refuse(kind, false)),
                _ => {}
            }
            let (tx, rx) = tokio::sync::oneshot::channel();
            s.slots[index].waiting.push_back(Waiter { memory, tx });
            rx
        };
        let mut rx = rx;
        let got = match tokio::time::timeout(quota.max_wait, &mut rx).await {
            Ok(r) => r.is_ok(),
            // A grant that raced the timeout is still ours.
            Err(_) => rx.try_recv().is_ok(),
        };
        match got {
            true => Ok(Permit {
                admission: self.clone(),
                index,
                memory,
            }),
            false => {
                // Timed out: leave the queue.
                drop(rx);
                let mut s = self.lock();
                s.slots[index].waiting.retain(|w| !w.tx.is_closed());
                let kind = self
                    .fits(&s, index, memory)
                    .err()
                    .unwrap_or(QuotaKind::Slots);
                drop(s);
                self.dispatch();
                Err(refuse(kind, true))
            }
        }
    }

    /// Hand free room to waiting hooks, one per tenant per turn.
    pub(crate) fn dispatch(self: &Arc<Self>) {
        let mut s = self.lock();
        let n = s.slots.len();
        if n == 0 {
            return;
        }
        let mut idle_turns = 0;
        let mut i = s.cursor % n;
        while idle_turns < n {
            let granted = match s.slots[i].waiting.front() {
                Some(w) if self.fits(&s, i, w.memory).is_ok() => {
                    let w = s.slots[i].waiting.pop_front().expect("front exists");
                    if w.tx.is_closed() {
                        true
                    } else {
                        s.slots[i].in_flight += 1;
                        s.slots[i].memory += w.memory;
                        s.total += 1;
                        if w.tx.send(()).is_err() {
                            // The waiter gave up a moment ago.
                            s.slots[i].in_flight -= 1;
                            s.slots[i].memory -= w.memory;
                            s.total -= 1;
                        }
                        true
                    }
                }
                _ => false,
            };
            idle_turns = if granted { 0 } else { idle_turns + 1 };
            i = (i + 1) % n;
            if granted {
                s.cursor = i;
            }
        }
    }
}

fn refusal(tenant: &str, kind: QuotaKind, q: &Quota, memory: u64, waited: bool) -> String {
    let why = match kind {
        QuotaKind::Hooks => format!("it already runs its {} hooks at once", q.max_in_flight),
        QuotaKind::Memory => format!(
            "its hooks in flight would need more than its {} bytes of memory (this one asks {memory})",
            q.max_memory
        ),
        QuotaKind::Slots => "every instance slot of the runtime is taken".to_string(),
        QuotaKind::RunCalls => "it made too many Run calls this minute".to_string(),
    };
    let waited = if waited {
        format!(" after waiting {}", humantime::format_duration(q.max_wait))
    } else {
        String::new()
    };
    format!(
        "tenant `{tenant}` was refused a hook{waited}: {why} (raise its quota, or run fewer at once)"
    )
}
