//! Jobs: every operation (link, sync, enable, disable, status, worker,
//! upgrade, snapshot removal) is a job row with its steps: each hook's
//! outcome, log lines, Run-call transcript and stats, and the snapshot step.
//!
//! A job records the process that runs it (pid, the process' start time and
//! the boot id), so a later command can tell a job whose process died
//! (`kill -9`, power loss) from one still running: see
//! [`recover_interrupted`].

use rusqlite::{OptionalExtension, Row, params};
use serde::Serialize;
use std::path::Path;

use super::error::{EngineError, Result};
use super::faults::{self, NewFault};
use super::state::{State, now_ms};

/// A job's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    /// Its process is working on it (or died; see [`recover_interrupted`]).
    Running,
    /// Every step succeeded.
    Succeeded,
    /// A step failed, or the job was interrupted.
    Failed,
}

impl JobState {
    /// The name stored and shown (`running`, `succeeded`, `failed`).
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Running => "running",
            JobState::Succeeded => "succeeded",
            JobState::Failed => "failed",
        }
    }
    fn parse(s: &str) -> JobState {
        match s {
            "running" => JobState::Running,
            "succeeded" => JobState::Succeeded,
            _ => JobState::Failed,
        }
    }
}

/// How a step ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// The step did its work.
    Ok,
    /// The step failed (a fault says why).
    Failed,
    /// Not run because an earlier step failed.
    Skipped,
}

impl Outcome {
    /// The name stored and shown (`ok`, `failed`, `skipped`).
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Failed => "failed",
            Outcome::Skipped => "skipped",
        }
    }
    fn parse(s: &str) -> Outcome {
        match s {
            "ok" => Outcome::Ok,
            "skipped" => Outcome::Skipped,
            _ => Outcome::Failed,
        }
    }
}

/// One step of a job (a hook, or the snapshot itself).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Step {
    /// The step's position in its job (1, 2, ...).
    pub seq: i64,
    /// `resync`, `preSnapshot`, `snapshot`, `postSnapshot`, `startStaging`, ...
    pub step: String,
    /// How it ended.
    pub outcome: Outcome,
    /// When it started, in milliseconds since the Unix epoch.
    pub started_ms: i64,
    /// How long it took, in milliseconds.
    pub duration_ms: i64,
    /// Why it failed or was skipped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The hook's log lines.
    #[serde(skip_serializing_if = "serde_json::Value::is_null")]
    pub log: serde_json::Value,
    /// The hook's Run calls.
    #[serde(skip_serializing_if = "serde_json::Value::is_null")]
    pub transcript: serde_json::Value,
    /// Hook stats, or snapshot stats.
    #[serde(skip_serializing_if = "serde_json::Value::is_null")]
    pub stats: serde_json::Value,
    /// What the hook returned.
    #[serde(skip_serializing_if = "serde_json::Value::is_null")]
    pub value: serde_json::Value,
}

/// A job, with its steps when read one by one.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Job {
    /// The job's id (increasing).
    pub id: i64,
    /// The operation: `link`, `sync`, `enable`, `disable`, `status`, `worker`,
    /// `upgrade` or `snapshot-rm`.
    pub kind: String,
    /// The dSource it works on, if any.
    pub dsource: Option<String>,
    /// Running, succeeded or failed.
    pub state: JobState,
    /// When it started, in milliseconds since the Unix epoch.
    pub started_ms: i64,
    /// When it ended, in milliseconds since the Unix epoch (`None` while
    /// running).
    pub ended_ms: Option<i64>,
    /// The id of the process that runs (or ran) it.
    pub pid: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    /// Why it failed (or was interrupted), when it did.
    pub error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    /// The snapshot it committed, if any.
    pub snapshot_id: Option<i64>,
    #[serde(skip_serializing_if = "serde_json::Value::is_null")]
    /// Facts about the job as JSON (e.g. the toolkit versions of an upgrade);
    /// `null` for none.
    pub detail: serde_json::Value,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    /// Its steps in order (empty when jobs are listed).
    pub steps: Vec<Step>,
}

/// The identity of a process, stable against pid reuse and reboots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessIdentity {
    /// The process id.
    pub pid: u32,
    /// Start time in clock ticks since boot (`/proc/<pid>/stat` field 22).
    pub start: Option<u64>,
    /// `/proc/sys/kernel/random/boot_id`.
    pub boot: Option<String>,
}

fn proc_start(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

fn boot_id() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .ok()
        .map(|s| s.trim().to_string())
}

impl ProcessIdentity {
    /// This process.
    pub fn current() -> ProcessIdentity {
        let pid = std::process::id();
        ProcessIdentity {
            pid,
            start: proc_start(pid),
            boot: boot_id(),
        }
    }

    /// Whether the process is still running (same boot, same pid, same
    /// start time).
    pub fn alive(&self) -> bool {
        if let (Some(b), Some(now)) = (&self.boot, boot_id())
            && *b != now
        {
            return false;
        }
        // SAFETY: signal 0 only checks that the pid exists.
        let exists = unsafe { libc::kill(self.pid as libc::pid_t, 0) } == 0
            || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM);
        if !exists {
            return false;
        }
        match (self.start, proc_start(self.pid)) {
            (Some(a), Some(b)) => a == b,
            _ => true,
        }
    }
}

const COLUMNS: &str =
    "id, kind, dsource, state, started_ms, ended_ms, pid, error, snapshot_id, detail";

fn from_row(r: &Row<'_>) -> rusqlite::Result<Job> {
    let state: String = r.get(3)?;
    let detail: Option<String> = r.get(9)?;
    Ok(Job {
        id: r.get(0)?,
        kind: r.get(1)?,
        dsource: r.get(2)?,
        state: JobState::parse(&state),
        started_ms: r.get(4)?,
        ended_ms: r.get(5)?,
        pid: r.get(6)?,
        error: r.get(7)?,
        snapshot_id: r.get(8)?,
        detail: detail
            .and_then(|d| serde_json::from_str(&d).ok())
            .unwrap_or(serde_json::Value::Null),
        steps: Vec::new(),
    })
}

fn json_or_null(v: &serde_json::Value) -> Option<String> {
    if v.is_null() {
        None
    } else {
        Some(v.to_string())
    }
}

/// Bytes set aside, when a job starts, for the reason it ended: written even
/// when the disk is full (see [`abandon_open_jobs`]).
const END_NOTE_BYTES: u64 = 4096;

/// Jobs this process started and has not finished: id -> end-note file.
fn open_jobs() -> &'static std::sync::Mutex<Vec<(i64, std::path::PathBuf)>> {
    static J: std::sync::OnceLock<std::sync::Mutex<Vec<(i64, std::path::PathBuf)>>> =
        std::sync::OnceLock::new();
    J.get_or_init(Default::default)
}

/// Where a job's end note is kept (`<state>/jobs/<id>.end`).
fn end_note_path(state: &State, job: i64) -> std::path::PathBuf {
    state.root().join("jobs").join(format!("{job}.end"))
}

/// Make the job's end note with its space allocated, so that writing it
/// later never needs more space.
fn make_end_note(path: &std::path::Path) {
    let made = path
        .parent()
        .map_or(Ok(()), std::fs::create_dir_all)
        .and_then(|()| std::fs::File::create(path))
        .and_then(|f| {
            rustix::fs::fallocate(&f, rustix::fs::FallocateFlags::empty(), 0, END_NOTE_BYTES)
                .map_err(std::io::Error::from)
        });
    if let Err(e) = made {
        tracing::debug!(path = %path.display(), "no end note for the job: {e}");
    }
}

/// This process is giving up on its open jobs (an error it could not
/// record, a full disk, a signal): record `reason` for each, in the job's
/// end note (whose space was allocated when the job started, so this works
/// on a full disk) and, when it can, in the database. The next command's
/// recovery reads the note instead of calling the job "interrupted".
pub fn abandon_open_jobs(reason: &str) {
    let reason = if reason.contains("database or disk is full")
        || reason.contains("No space left on device")
    {
        format!(
            "no space left on device ({reason}); free space on the state directory's filesystem and run it again"
        )
    } else {
        reason.to_string()
    };
    let jobs = std::mem::take(&mut *open_jobs().lock().unwrap_or_else(|p| p.into_inner()));
    for (job, note) in jobs {
        let mut text = reason.as_bytes().to_vec();
        text.truncate(END_NOTE_BYTES as usize);
        let written = std::fs::OpenOptions::new()
            .write(true)
            .open(&note)
            .and_then(|f| {
                use std::os::unix::fs::FileExt;
                f.write_all_at(&text, 0)?;
                f.set_len(text.len() as u64)
            });
        if let Err(e) = written {
            tracing::warn!(job, "could not record why the job ended: {e}");
        }
        let db = note
            .parent()
            .and_then(Path::parent)
            .map(|root| root.join("state.db"));
        let recorded = db.is_some_and(|db| {
            rusqlite::Connection::open_with_flags(&db, rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE)
                .and_then(|c| {
                    c.busy_timeout(std::time::Duration::from_secs(2))?;
                    c.execute(
                        "UPDATE jobs SET state = 'failed', ended_ms = ?2, error = ?3 WHERE id = ?1 AND state = 'running'",
                        params![job, now_ms(), reason],
                    )
                })
                .is_ok()
        });
        if recorded {
            let _ = std::fs::remove_file(&note);
        }
    }
}

/// The reason recorded in a dead job's end note, if any (and remove it).
fn take_end_note(state: &State, job: i64) -> Option<String> {
    let path = end_note_path(state, job);
    let text = std::fs::read(&path).ok();
    let _ = std::fs::remove_file(&path);
    let text = String::from_utf8_lossy(&text?)
        .trim_end_matches('\0')
        .trim()
        .to_string();
    (!text.is_empty()).then_some(text)
}

/// Start a job of `kind` for `dsource` in this process; returns its id.
pub fn start(state: &State, kind: &str, dsource: Option<&str>) -> Result<i64> {
    let me = ProcessIdentity::current();
    state
        .conn()
        .execute(
            "INSERT INTO jobs (kind, dsource, state, started_ms, pid, pid_start, boot_id) VALUES (?1, ?2, 'running', ?3, ?4, ?5, ?6)",
            params![kind, dsource, now_ms(), me.pid, me.start.map(|s| s as i64), me.boot],
        )
        .map_err(EngineError::db("starting a job"))?;
    let id = state.conn().last_insert_rowid();
    let note = end_note_path(state, id);
    make_end_note(&note);
    open_jobs()
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push((id, note));
    Ok(id)
}

/// Most bytes of one Run call's stdout (and of its stderr) stored with a
/// job step: the end, where failures show.
pub const STORED_STREAM_BYTES: usize = 4 << 10;
/// Most bytes of all the streams of one step's transcript stored.
pub const STORED_TRANSCRIPT_BYTES: usize = 256 << 10;
/// Most bytes of one step's log stored (the last lines).
pub const STORED_LOG_BYTES: usize = 256 << 10;

/// A transcript (JSON array of entries) cut to what a job stores: each
/// stream's end, within the step's total; cut entries say so.
fn stored_transcript(t: &serde_json::Value) -> serde_json::Value {
    let mut t = t.clone();
    let mut left = STORED_TRANSCRIPT_BYTES;
    if let Some(entries) = t.as_array_mut() {
        for e in entries.iter_mut().filter_map(|e| e.as_object_mut()) {
            for (key, flag) in [("stdout", "stdoutTruncated"), ("stderr", "stderrTruncated")] {
                let Some(serde_json::Value::String(s)) = e.get_mut(key) else {
                    continue;
                };
                let cut = lunabox_run::keep_tail(s, STORED_STREAM_BYTES.min(left));
                left -= s.len().min(left);
                if cut {
                    e.insert(flag.to_string(), serde_json::Value::Bool(true));
                }
            }
        }
    }
    t
}

/// A log (JSON array of `{level, message}`) cut to its last lines within
/// [`STORED_LOG_BYTES`], with a line saying how many were left out.
fn stored_log(log: &serde_json::Value) -> serde_json::Value {
    let Some(lines) = log.as_array() else {
        return log.clone();
    };
    let mut total = 0usize;
    let mut keep = 0usize;
    for l in lines.iter().rev() {
        let n = l["message"].as_str().map_or(0, str::len) + 16;
        if total + n > STORED_LOG_BYTES {
            break;
        }
        total += n;
        keep += 1;
    }
    if keep == lines.len() {
        return log.clone();
    }
    let mut out = vec![serde_json::json!({
        "level": "info",
        "message": format!("... {} earlier log line(s) not stored", lines.len() - keep),
    })];
    out.extend(lines[lines.len() - keep..].iter().cloned());
    serde_json::Value::Array(out)
}

/// Record one step of a running job (its log and transcript cut to what a
/// job stores: see [`STORED_LOG_BYTES`], [`STORED_TRANSCRIPT_BYTES`]).
pub fn add_step(state: &State, job: i64, step: &Step) -> Result<()> {
    let log = stored_log(&step.log);
    let transcript = stored_transcript(&step.transcript);
    state
        .retry_when_full(|c| c.execute(
            "INSERT INTO job_steps (job_id, seq, step, outcome, started_ms, duration_ms, message, log, transcript, stats, value)
             VALUES (?1, (SELECT coalesce(max(seq), 0) + 1 FROM job_steps WHERE job_id = ?1), ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            params![
                job,
                step.step,
                step.outcome.as_str(),
                step.started_ms,
                step.duration_ms,
                step.message,
                json_or_null(&log),
                json_or_null(&transcript),
                json_or_null(&step.stats),
                json_or_null(&step.value),
            ],
        ))
        .map_err(EngineError::db("recording a job step"))?;
    Ok(())
}

/// Attach facts to a job (e.g. the toolkit version, the resync flag).
pub fn set_detail(state: &State, job: i64, detail: &serde_json::Value) -> Result<()> {
    state
        .conn()
        .execute(
            "UPDATE jobs SET detail = ?2 WHERE id = ?1",
            params![job, json_or_null(detail)],
        )
        .map_err(EngineError::db("recording job details"))?;
    Ok(())
}

/// End a job.
pub fn finish(
    state: &State,
    job: i64,
    ok: bool,
    error: Option<&str>,
    snapshot_id: Option<u64>,
) -> Result<()> {
    let st = if ok {
        JobState::Succeeded
    } else {
        JobState::Failed
    };
    state
        .retry_when_full(|c| {
            c.execute(
                "UPDATE jobs SET state = ?2, ended_ms = ?3, error = ?4, snapshot_id = ?5 WHERE id = ?1",
                params![
                    job,
                    st.as_str(),
                    now_ms(),
                    error,
                    snapshot_id.map(|s| s as i64)
                ],
            )
        })
        .map_err(EngineError::db("finishing a job"))?;
    open_jobs()
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .retain(|(j, _)| *j != job);
    let _ = std::fs::remove_file(end_note_path(state, job));
    Ok(())
}

/// One job with its steps.
pub fn get(state: &State, id: i64) -> Result<Job> {
    let mut job = state
        .conn()
        .query_row(
            &format!("SELECT {COLUMNS} FROM jobs WHERE id = ?1"),
            [id],
            from_row,
        )
        .optional()
        .map_err(EngineError::db("reading a job"))?
        .ok_or_else(|| {
            EngineError::NotFound(format!("there is no job {id}; `lunabox jobs` lists them"))
        })?;
    let mut st = state
        .conn()
        .prepare(
            "SELECT seq, step, outcome, started_ms, duration_ms, message, log, transcript, stats, value
             FROM job_steps WHERE job_id = ?1 ORDER BY seq",
        )
        .map_err(EngineError::db("reading job steps"))?;
    let parse = |s: Option<String>| {
        s.and_then(|s| serde_json::from_str(&s).ok())
            .unwrap_or(serde_json::Value::Null)
    };
    job.steps = st
        .query_map([id], |r| {
            let outcome: String = r.get(2)?;
            Ok(Step {
                seq: r.get(0)?,
                step: r.get(1)?,
                outcome: Outcome::parse(&outcome),
                started_ms: r.get(3)?,
                duration_ms: r.get(4)?,
                message: r.get(5)?,
                log: parse(r.get(6)?),
                transcript: parse(r.get(7)?),
                stats: parse(r.get(8)?),
                value: parse(r.get(9)?),
            })
        })
        .map_err(EngineError::db("reading job steps"))?
        .collect::<rusqlite::Result<Vec<_>>>()
        .map_err(EngineError::db("reading job steps"))?;
    Ok(job)
}

/// Jobs, newest first (without steps), of one dSource or all, at most `limit`.
pub fn list(state: &State, dsource: Option<&str>, limit: usize) -> Result<Vec<Job>> {
    let mut st = state
        .conn()
        .prepare(&format!(
            "SELECT {COLUMNS} FROM jobs WHERE (?1 IS NULL OR dsource = ?1) ORDER BY id DESC LIMIT ?2"
        ))
        .map_err(EngineError::db("listing jobs"))?;
    st.query_map(params![dsource, limit as i64], from_row)
        .map_err(EngineError::db("listing jobs"))?
        .collect::<rusqlite::Result<Vec<_>>>()
        .map_err(EngineError::db("listing jobs"))
}

/// Running jobs of a dSource (to say what a lock waits for).
pub fn running(state: &State, dsource: &str) -> Result<Vec<Job>> {
    let mut st = state
        .conn()
        .prepare(&format!(
            "SELECT {COLUMNS} FROM jobs WHERE dsource = ?1 AND state = 'running' ORDER BY id"
        ))
        .map_err(EngineError::db("listing running jobs"))?;
    st.query_map([dsource], from_row)
        .map_err(EngineError::db("listing running jobs"))?
        .collect::<rusqlite::Result<Vec<_>>>()
        .map_err(EngineError::db("listing running jobs"))
}

/// Mark failed every running job whose process is gone (crash, `kill -9`,
/// reboot) and post a fault for each. Returns the jobs marked.
pub fn recover_interrupted(state: &mut State) -> Result<Vec<Job>> {
    let candidates: Vec<(Job, ProcessIdentity)> = {
        let mut st = state
            .conn()
            .prepare(&format!(
                "SELECT {COLUMNS}, pid_start, boot_id FROM jobs WHERE state = 'running'"
            ))
            .map_err(EngineError::db("finding running jobs"))?;
        st.query_map([], |r| {
            let job = from_row(r)?;
            let start: Option<i64> = r.get(10)?;
            let boot: Option<String> = r.get(11)?;
            let id = ProcessIdentity {
                pid: job.pid as u32,
                start: start.map(|s| s as u64),
                boot,
            };
            Ok((job, id))
        })
        .map_err(EngineError::db("finding running jobs"))?
        .collect::<rusqlite::Result<Vec<_>>>()
        .map_err(EngineError::db("finding running jobs"))?
    };
    let me = ProcessIdentity::current();
    let mut marked = Vec::new();
    for (job, pid) in candidates {
        if pid == me || pid.alive() {
            continue;
        }
        let msg = match take_end_note(state, job.id) {
            Some(reason) => format!("failed: {reason}"),
            None => format!(
                "interrupted: the process (pid {}) running this {} job ended before it finished",
                job.pid, job.kind
            ),
        };
        let changed = state.write("marking an interrupted job", |tx| {
            tx.execute(
                "UPDATE jobs SET state = 'failed', ended_ms = ?2, error = ?3 WHERE id = ?1 AND state = 'running'",
                params![job.id, now_ms(), msg],
            )
            .map_err(EngineError::db("marking an interrupted job"))
        })?;
        if changed == 1 {
            faults::post(
                state,
                &NewFault {
                    dsource: job.dsource.clone(),
                    job_id: Some(job.id),
                    hook: None,
                    message: format!("{} job {} {msg}", job.kind, job.id),
                    detail: serde_json::Value::Null,
                },
            )?;
            marked.push(get(state, job.id)?);
        }
    }
    Ok(marked)
}

/// Delete all but the newest `keep` finished jobs of `kind` for `dsource`
/// (status and worker runs of the daemon would otherwise pile up).
pub fn prune(state: &State, dsource: &str, kind: &str, keep: usize) -> Result<()> {
    state
        .conn()
        .execute(
            "DELETE FROM jobs WHERE dsource = ?1 AND kind = ?2 AND state != 'running' AND id NOT IN
             (SELECT id FROM jobs WHERE dsource = ?1 AND kind = ?2 ORDER BY id DESC LIMIT ?3)",
            params![dsource, kind, keep as i64],
        )
        .map_err(EngineError::db("pruning old jobs"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_alive_and_a_dead_one_is_not() {
        let me = ProcessIdentity::current();
        assert!(me.start.is_some());
        assert!(me.alive());
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        let dead = ProcessIdentity {
            pid,
            start: None,
            boot: me.boot.clone(),
        };
        assert!(!dead.alive());
        let reused = ProcessIdentity {
            start: me.start.map(|s| s + 1),
            ..me.clone()
        };
        assert!(!reused.alive(), "a different start time means pid reuse");
    }

    #[test]
    fn interrupted_jobs_are_marked_failed_with_a_fault() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = State::open(&dir.path().join("s.db")).unwrap();
        let live = start(&s, "sync", Some("db")).unwrap();
        let dead = start(&s, "sync", Some("db")).unwrap();
        s.conn()
            .execute("UPDATE jobs SET pid_start = 1 WHERE id = ?1", [dead])
            .unwrap();
        // `live` belongs to this process: it stays running.
        let marked = recover_interrupted(&mut s).unwrap();
        assert_eq!(marked.iter().map(|j| j.id).collect::<Vec<_>>(), vec![dead]);
        assert_eq!(get(&s, dead).unwrap().state, JobState::Failed);
        assert!(
            get(&s, dead)
                .unwrap()
                .error
                .unwrap()
                .contains("interrupted")
        );
        assert_eq!(get(&s, live).unwrap().state, JobState::Running);
        assert_eq!(faults::open_count(&s, "db").unwrap(), 1);
        // Idempotent.
        assert!(recover_interrupted(&mut s).unwrap().is_empty());
    }

    #[test]
    fn steps_are_recorded_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let s = State::open(&dir.path().join("s.db")).unwrap();
        let j = start(&s, "sync", Some("db")).unwrap();
        for name in ["preSnapshot", "snapshot"] {
            add_step(
                &s,
                j,
                &Step {
                    seq: 0,
                    step: name.into(),
                    outcome: Outcome::Ok,
                    started_ms: now_ms(),
                    duration_ms: 3,
                    message: None,
                    log: serde_json::json!([{"level": "info", "message": "hi"}]),
                    transcript: serde_json::Value::Null,
                    stats: serde_json::Value::Null,
                    value: serde_json::Value::Null,
                },
            )
            .unwrap();
        }
        finish(&s, j, true, None, Some(1)).unwrap();
        let job = get(&s, j).unwrap();
        assert_eq!(job.state, JobState::Succeeded);
        assert_eq!(job.snapshot_id, Some(1));
        assert_eq!(
            job.steps
                .iter()
                .map(|s| (s.seq, s.step.as_str()))
                .collect::<Vec<_>>(),
            vec![(1, "preSnapshot"), (2, "snapshot")]
        );
        assert_eq!(job.steps[0].log[0]["message"], "hi");
    }
}
