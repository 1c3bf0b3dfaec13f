//! The daemon: for every enabled dSource, the status hook periodically
//! (`--interval`, default 30 s; the same for every running VDB's virtual
//! status hook), the worker hook every 10 s, and scheduled
//! SnapSyncs (`--sync-every` / `lunabox policy`) in their own threads.
//! It stops cleanly when asked (the caller's stop flag, set on Ctrl-C):
//! it starts nothing new and waits for the SnapSyncs in flight.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::Engine;
use super::dsources::{self, DSource};
use super::error::{EngineError, Result};
use super::progress::Lines;
use super::snapsync::{self, SyncOptions};
use super::staging;
use super::state::{format_ms, now_ms};

/// How the daemon runs.
#[derive(Debug, Clone)]
pub struct DaemonOptions {
    /// One pass (status, worker, due SnapSyncs), then exit.
    pub once: bool,
    /// How often status runs per dSource.
    pub status_interval: Duration,
    /// How often worker runs per dSource (the spec says 10 s).
    pub worker_interval: Duration,
}

impl Default for DaemonOptions {
    fn default() -> Self {
        DaemonOptions {
            once: false,
            status_interval: Duration::from_secs(30),
            worker_interval: Duration::from_secs(10),
        }
    }
}

/// Counters of what a daemon run did (for `--once` output and tests).
#[derive(Debug, Clone, Default, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DaemonSummary {
    /// Status checks run (including those that failed).
    pub status_runs: u64,
    /// Virtual status hooks run (running VDBs).
    pub vdb_status_runs: u64,
    /// Worker hooks run (dSources without a worker hook do not count).
    pub worker_runs: u64,
    /// Scheduled SnapSyncs started.
    pub syncs_started: u64,
    /// Scheduled SnapSyncs that failed or could not run (one skipped as busy
    /// does not count).
    pub syncs_failed: u64,
}

fn log(msg: &str) {
    eprintln!(
        "{} {}",
        format_ms(now_ms()),
        lunabox_toolkit::text::for_person(msg)
    );
}

fn due(last: Option<&Instant>, every: Duration) -> bool {
    last.is_none_or(|t| t.elapsed() >= every)
}

/// Whether a scheduled SnapSync of `ds` is due now.
pub fn sync_due(ds: &DSource, now: i64) -> bool {
    match ds.sync_every_ms {
        Some(every) if ds.enabled => ds.last_sync_ms.is_none_or(|last| now - last >= every),
        _ => false,
    }
}

/// Run the daemon until `stop` is set (or one pass with `once`).
pub fn run(engine: &mut Engine, opts: &DaemonOptions, stop: &AtomicBool) -> Result<DaemonSummary> {
    let mut summary = DaemonSummary::default();
    let mut last_status: HashMap<String, Instant> = HashMap::new();
    let mut last_worker: HashMap<String, Instant> = HashMap::new();
    let mut syncs: HashMap<String, JoinHandle<bool>> = HashMap::new();
    let failed = Arc::new(AtomicBool::new(false));
    // Build the sandbox once; every thread shares it.
    engine.runtime()?;
    log(&format!(
        "lunabox daemon started on {} (status every {}, worker every {}){}",
        engine.paths().root().display(),
        humantime::format_duration(opts.status_interval),
        humantime::format_duration(opts.worker_interval),
        if opts.once { ", one pass" } else { "" }
    ));
    loop {
        // Reap finished SnapSyncs.
        let done: Vec<String> = syncs
            .iter()
            .filter(|(_, h)| h.is_finished())
            .map(|(n, _)| n.clone())
            .collect();
        for n in done {
            if let Some(h) = syncs.remove(&n)
                && !h.join().unwrap_or(false)
            {
                summary.syncs_failed += 1;
            }
        }
        if stop.load(Ordering::SeqCst) {
            break;
        }
        for ds in dsources::list(engine.state())? {
            if stop.load(Ordering::SeqCst) {
                break;
            }
            if !ds.enabled {
                continue;
            }
            if sync_due(&ds, now_ms()) && !syncs.contains_key(&ds.name) {
                let mut worker_engine = engine.reopen()?;
                let name = ds.name.clone();
                log(&format!("{name}: scheduled SnapSync starting"));
                summary.syncs_started += 1;
                let failed = failed.clone();
                let h = std::thread::Builder::new()
                    .name(format!("sync-{name}"))
                    .spawn(move || {
                        let progress = Lines::new(&name);
                        let opts = SyncOptions {
                            resync: false,
                            lock_timeout: Duration::ZERO,
                        };
                        match snapsync::sync(&mut worker_engine, &name, &opts, &progress) {
                            Ok(r) if r.ok() => {
                                log(&format!(
                                    "{name}: snapshot {} taken (job {})",
                                    r.snapshot.map(|s| s.id).unwrap_or(0),
                                    r.job.id
                                ));
                                true
                            }
                            Ok(r) => {
                                log(&format!(
                                    "{name}: scheduled SnapSync failed (job {}): {}",
                                    r.job.id,
                                    r.job.error.unwrap_or_default()
                                ));
                                failed.store(true, Ordering::SeqCst);
                                false
                            }
                            Err(EngineError::Busy(m)) => {
                                log(&format!("{name}: scheduled SnapSync skipped: {m}"));
                                true
                            }
                            Err(e) => {
                                log(&format!("{name}: scheduled SnapSync could not run: {e}"));
                                false
                            }
                        }
                    })
                    .map_err(|e| {
                        EngineError::io("cannot start a SnapSync thread", engine.paths().root(), e)
                    })?;
                syncs.insert(ds.name.clone(), h);
            }
            if due(last_status.get(&ds.name), opts.status_interval) {
                last_status.insert(ds.name.clone(), Instant::now());
                summary.status_runs += 1;
                match staging::status_of(engine, &ds) {
                    Ok(s) => {
                        if ds.last_status.as_deref() != Some(&s.status) || s.status_from == "failed"
                        {
                            log(&format!(
                                "{}: status {} ({})",
                                ds.name, s.status, s.status_from
                            ));
                        }
                    }
                    Err(e) => log(&format!("{}: status could not run: {e}", ds.name)),
                }
            }
            if due(last_worker.get(&ds.name), opts.worker_interval) {
                last_worker.insert(ds.name.clone(), Instant::now());
                match staging::worker(engine, &ds) {
                    Ok(Some(j)) => {
                        summary.worker_runs += 1;
                        if j.state != super::jobs::JobState::Succeeded {
                            log(&format!(
                                "{}: worker failed (job {}): {}",
                                ds.name,
                                j.id,
                                j.error.unwrap_or_default()
                            ));
                        }
                    }
                    Ok(None) => {}
                    Err(e) => log(&format!("{}: worker could not run: {e}", ds.name)),
                }
            }
        }
        // The status of every running VDB.
        for v in super::vdbs::list(engine.state())? {
            if stop.load(Ordering::SeqCst) {
                break;
            }
            if v.state != super::vdbs::VdbState::Running {
                continue;
            }
            let key = format!("vdb:{}", v.name);
            if due(last_status.get(&key), opts.status_interval) {
                last_status.insert(key, Instant::now());
                summary.vdb_status_runs += 1;
                match super::provision::status_of(engine, &v) {
                    Ok(s) => {
                        if v.last_status.as_deref() != Some(&s.status) || s.status_from == "failed"
                        {
                            log(&format!(
                                "VDB {}: status {} ({})",
                                v.name, s.status, s.status_from
                            ));
                        }
                    }
                    Err(e) => log(&format!("VDB {}: status could not run: {e}", v.name)),
                }
            }
        }
        if opts.once {
            break;
        }
        // Sleep a second, waking early when asked to stop.
        for _ in 0..10 {
            if stop.load(Ordering::SeqCst) {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    if !syncs.is_empty() {
        log(&format!(
            "waiting for {} SnapSync(s) in flight: {}",
            syncs.len(),
            syncs.keys().cloned().collect::<Vec<_>>().join(", ")
        ));
    }
    for (_, h) in syncs {
        if !h.join().unwrap_or(false) {
            summary.syncs_failed += 1;
        }
    }
    log("lunabox daemon stopped");
    Ok(summary)
}
