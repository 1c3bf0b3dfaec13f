//! TEMPORARY: the previous implementation, for timing comparisons only.
#![allow(dead_code, clippy::all)]
use std::ffi::OsString;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::super::account::{self, RunAs};
use super::super::local::{LocalExecutor, OUTPUT_LIMIT};
use crate::run::{ExecError, RawResult, RunCall, RunContext};
const KILL_GRACE: Duration = Duration::from_secs(2);

/// The old execute flow for a short RunBash/RunCommand: no caches, a
/// directory per call, three threads.
pub(crate) fn execute(exec: &LocalExecutor, call: &RunCall, ctx: &RunContext, cached: bool, per_call_dir: bool, threads: bool) -> RawResult {
    let program = if cached { exec.find_program("bash").unwrap() } else { exec.search_program("bash").unwrap() };
    let run_as = if cached { exec.run_as(call.target.user.as_deref()).unwrap() } else {
        let me = account::current();
        account::resolve(call.target.user.as_deref(), &me, &|n| account::by_name(n)).unwrap()
    };
    assert!(run_as.account.home.is_dir());
    let script = call.command.as_deref().unwrap_or_default();
    let name = crate::run::resource_of(script, &ctx.resources).unwrap_or_else(|| call.function.name().to_string());
    let args: Vec<OsString> = vec!["-c".into(), script.into(), name.into()];
    let (out_path, dir, files) = if per_call_dir {
        let d = CallDir::new(&run_as).unwrap();
        (d.output_path.clone(), Some(d), None)
    } else {
        let f = super::CallFiles::new(exec.file_dir().unwrap(), &run_as).unwrap();
        (f.output_path.clone(), None, Some(f))
    };
    let mut cmd = exec.command(&program, &args, call, &run_as);
    cmd.env("DLPX_OUTPUT_FILE", &out_path);
    let (exit_code, signal, stdout, stderr) = if threads { let f = supervise(cmd, &program, &run_as, ctx).unwrap(); (f.exit_code, f.signal, f.stdout, f.stderr) } else { let f = super::supervise(cmd, &program, &run_as, ctx).unwrap(); (f.exit_code, f.signal, f.stdout, f.stderr) };
    let (output, output_truncated) = match (&dir, &files) {
        (Some(d), _) => d.read_output().unwrap(),
        (_, Some(f)) => f.read_output().unwrap(),
        _ => unreachable!(),
    };
    RawResult { exit_code, signal, stdout, stderr, output, output_truncated, ..RawResult::default() }
}

/// The call's private directory and output file.
pub(crate) struct CallDir {
    dir: tempfile::TempDir,
    output_path: PathBuf,
    output: File,
}

impl CallDir {
    pub(crate) fn new(run_as: &RunAs) -> Result<CallDir, ExecError> {
        let fail = |what: &str, e: io::Error| {
            ExecError::Unavailable(format!(
                "could not create the call's {what} in {}: {e}",
                std::env::temp_dir().display()
            ))
        };
        let dir = tempfile::Builder::new()
            .prefix("lunabox-run-")
            .tempdir()
            .map_err(|e| fail("private directory", e))?;
        if run_as.switches() {
            std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o711))
                .map_err(|e| fail("private directory", e))?;
        }
        let output_path = dir.path().join("output.json");
        let output = Self::create(&output_path, run_as).map_err(|e| fail("output file", e))?;
        Ok(CallDir {
            dir,
            output_path,
            output,
        })
    }

    fn create(path: &Path, run_as: &RunAs) -> io::Result<File> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(path)?;
        if run_as.switches() {
            std::os::unix::fs::fchown(&file, Some(run_as.account.uid), Some(run_as.account.gid))?;
        }
        Ok(file)
    }

    /// Write `contents` to a new file `name` in the directory (readable by
    /// the command's user only) and return its path.
    fn write_file(
        &self,
        name: &str,
        contents: &[u8],
        run_as: &RunAs,
    ) -> Result<PathBuf, ExecError> {
        let path = self.dir.path().join(name);
        let mut f = Self::create(&path, run_as).map_err(|e| {
            ExecError::Unavailable(format!(
                "could not write the script to {}: {e}",
                path.display()
            ))
        })?;
        f.write_all(contents).map_err(|e| {
            ExecError::Unavailable(format!(
                "could not write the script to {}: {e}",
                path.display()
            ))
        })?;
        Ok(path)
    }

    /// The output file's bytes (at most [`OUTPUT_LIMIT`]) and whether there
    /// were more.
    pub(crate) fn read_output(&self) -> Result<(Vec<u8>, bool), ExecError> {
        let mut f = &self.output;
        let mut buf = Vec::new();
        f.seek(SeekFrom::Start(0))
            .and_then(|_| f.take(OUTPUT_LIMIT + 1).read_to_end(&mut buf))
            .map_err(|e| {
                ExecError::Unavailable(format!(
                    "could not read the output file {}: {e}",
                    self.output_path.display()
                ))
            })?;
        let truncated = buf.len() as u64 > OUTPUT_LIMIT;
        buf.truncate(OUTPUT_LIMIT as usize);
        Ok((buf, truncated))
    }
}

/// How a supervised process ended.
#[derive(Debug, Default)]
pub(crate) struct Finished {
    pub exit_code: i32,
    pub signal: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub stdout_truncated: bool,
    pub stderr_truncated: bool,
}

#[derive(Default)]
struct Capture {
    data: Vec<u8>,
    dropped: u64,
}

enum Event {
    Closed,
    Exited(io::Result<ExitStatus>),
}

/// Spawn `cmd` and wait until it has exited and closed stdout and stderr,
/// or until the deadline (then kill its process group).
pub(crate) fn supervise(
    mut cmd: Command,
    program: &Path,
    run_as: &RunAs,
    ctx: &RunContext,
) -> Result<Finished, ExecError> {
    let mut child = cmd.spawn().map_err(|e| spawn_error(program, run_as, &e))?;
    let pgid = child.id() as libc::pid_t;
    let (tx, rx) = mpsc::channel::<Event>();
    let out = Arc::new(Mutex::new(Capture::default()));
    let err = Arc::new(Mutex::new(Capture::default()));
    let streams = [
        child
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
        child
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
    ];
    let mut open = 0;
    let mut spawn_failed = None;
    for (stream, buf) in streams.into_iter().zip([out.clone(), err.clone()]) {
        let Some(stream) = stream else { continue };
        match spawn_reader(stream, ctx.capture_limit, buf, tx.clone()) {
            Ok(()) => open += 1,
            Err(e) => spawn_failed = Some(e),
        }
    }
    let waiter = {
        let tx = tx.clone();
        std::thread::Builder::new()
            .name("run-wait".into())
            .stack_size(64 * 1024)
            .spawn(move || {
                let _ = tx.send(Event::Exited(child.wait()));
            })
    };
    drop(tx);
    let waiter_started = waiter.is_ok();
    if let Err(e) = waiter {
        spawn_failed = Some(e);
    }
    if let Some(e) = spawn_failed {
        // Without its threads the call cannot be watched: stop it now.
        // SAFETY: killpg only sends a signal.
        unsafe { libc::killpg(pgid, libc::SIGKILL) };
        if waiter_started {
            let until = Instant::now() + KILL_GRACE;
            while let Ok(ev) = rx.recv_timeout(until.saturating_duration_since(Instant::now())) {
                if matches!(ev, Event::Exited(_)) {
                    break;
                }
            }
        } else {
            // The child went down with the closure that failed to start:
            // reap it here (its pid is the group id).
            let mut st = 0;
            // SAFETY: waits for our own child.
            unsafe { libc::waitpid(pgid, &mut st, 0) };
        }
        return Err(ExecError::Unavailable(format!(
            "could not start a thread to watch the command: {e}; the machine is short of resources"
        )));
    }

    let mut status: Option<io::Result<ExitStatus>> = None;
    let mut timed_out = false;
    while open > 0 || status.is_none() {
        let event = match ctx.deadline {
            None => rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
            Some(d) => rx.recv_timeout(d.saturating_duration_since(Instant::now())),
        };
        match event {
            Ok(Event::Closed) => open -= 1,
            Ok(Event::Exited(s)) => status = Some(s),
            Err(RecvTimeoutError::Timeout) => {
                timed_out = true;
                break;
            }
            Err(RecvTimeoutError::Disconnected) => break,
        }
    }
    if timed_out {
        tracing::debug!(pgid, "deadline passed: killing the process group");
        // SAFETY: killpg only sends a signal; the group is ours (the child
        // leads it, and it is not reaped until the waiter sees the kill or
        // the group outlives it through its background members).
        unsafe { libc::killpg(pgid, libc::SIGKILL) };
        let grace = Instant::now() + KILL_GRACE;
        while open > 0 || status.is_none() {
            match rx.recv_timeout(grace.saturating_duration_since(Instant::now())) {
                Ok(Event::Closed) => open -= 1,
                Ok(Event::Exited(s)) => status = Some(s),
                Err(_) => break,
            }
        }
        if open > 0 {
            tracing::warn!(
                pgid,
                "a process outside the killed process group still holds the command's output open; abandoning it"
            );
        }
        let (stdout, _) = take(&out);
        let (stderr, _) = take(&err);
        return Err(ExecError::Deadline { stdout, stderr });
    }
    let status = match status {
        Some(Ok(s)) => s,
        Some(Err(e)) => {
            return Err(ExecError::Unavailable(format!(
                "could not wait for {}: {e}",
                program.display()
            )));
        }
        None => {
            return Err(ExecError::Unavailable(format!(
                "lost track of {} (its watcher thread stopped)",
                program.display()
            )));
        }
    };
    let (stdout, stdout_truncated) = take(&out);
    let (stderr, stderr_truncated) = take(&err);
    let (exit_code, signal) = match (status.code(), status.signal()) {
        (Some(c), _) => (c, None),
        (None, Some(s)) => (128 + s, Some(s)),
        (None, None) => (-1, None),
    };
    Ok(Finished {
        exit_code,
        signal,
        stdout,
        stderr,
        stdout_truncated,
        stderr_truncated,
    })
}

fn spawn_error(program: &Path, run_as: &RunAs, e: &io::Error) -> ExecError {
    let who = if run_as.switches() {
        format!(
            " as user `{}` (in {})",
            run_as.account.name,
            run_as.account.home.display()
        )
    } else {
        String::new()
    };
    let hint = if e.raw_os_error() == Some(libc::E2BIG) {
        "; the call's variables are too large (each must be under 128 KiB, all together a few MiB)"
    } else {
        ""
    };
    ExecError::Unavailable(format!(
        "could not start {}{who}: {e}{hint}",
        program.display()
    ))
}

fn spawn_reader(
    mut stream: Box<dyn Read + Send>,
    cap: usize,
    buf: Arc<Mutex<Capture>>,
    tx: mpsc::Sender<Event>,
) -> io::Result<()> {
    std::thread::Builder::new()
        .name("run-capture".into())
        .stack_size(64 * 1024)
        .spawn(move || {
            let mut chunk = vec![0u8; 64 * 1024];
            loop {
                match stream.read(&mut chunk) {
                    Ok(0) => break,
                    Ok(n) => {
                        let mut b = buf.lock().unwrap_or_else(|p| p.into_inner());
                        let room = cap.saturating_sub(b.data.len()).min(n);
                        b.data.extend_from_slice(&chunk[..room]);
                        b.dropped += (n - room) as u64;
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(_) => break,
                }
            }
            drop(stream);
            let _ = tx.send(Event::Closed);
        })
        .map(|_| ())
}

/// The captured text (lossy UTF-8) and whether some was dropped.
fn take(buf: &Mutex<Capture>) -> (String, bool) {
    let b = buf.lock().unwrap_or_else(|p| p.into_inner());
    (String::from_utf8_lossy(&b.data).into_owned(), b.dropped > 0)
}

