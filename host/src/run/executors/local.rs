//! Runs calls on this machine: bash, sh, expect, pwsh, rsync.
//!
//! [`LocalExecutor`] runs every call here, whatever its `environment` and
//! `host` say (remote hosts are another [`Executor`]). For each call:
//!
//! - **Program.** `RunBash`: `bash -c SCRIPT NAME` (the script is passed as
//!   an argument, not on stdin, because scripts may read stdin; `NAME`, the
//!   resource name, becomes `$0` so bash's errors name the script).
//!   `RunCommand`: `/bin/sh -c SCRIPT NAME`. `RunExpect`: `expect -f FILE`
//!   with the script in the call's private directory (`expect -c` reports
//!   Tcl errors with exit status 0, so a file it is). `RunPowerShell`:
//!   `pwsh -NoProfile -NonInteractive -Command SCRIPT` when `pwsh` is
//!   installed. `RunSync`: `rsync`, see [`super::sync`]. A script too long
//!   for one argument (128 KiB) is also passed as a file.
//! - **Files.** A private directory per call (mode 0700, or 0711 when the
//!   command runs as another user, so that user can reach but not list or
//!   replace its files) holding the fresh, empty output file (mode 0600,
//!   owned by the user the command runs as) named by `$DLPX_OUTPUT_FILE`.
//!   It is read through the descriptor lunabox created, so a command cannot
//!   make lunabox read another file. The directory is removed afterwards.
//! - **Environment.** Not lunabox's own: `PATH`, `HOME`, `USER`, `LOGNAME`,
//!   `SHELL`, `LANG=C.UTF-8`, then the call's variables, then
//!   `DLPX_OUTPUT_FILE`. stdin is `/dev/null`.
//! - **User.** See [`super::account`]: the environment user, from its home
//!   directory; lunabox switches to it when running as root.
//! - **Process.** The child leads its own process group. stdout and stderr
//!   are read by two threads, each keeping at most
//!   [`RunContext::capture_limit`] bytes and dropping the rest. The call
//!   ends when the child has exited *and* both pipes are closed, so a
//!   background job that keeps stdout open holds the call. At the hook's
//!   deadline the whole process group gets SIGKILL, the child is reaped and
//!   the call ends with [`ExecError::Deadline`]. A process that left the
//!   group (`setsid`) is out of reach; its pipe is abandoned after a grace
//!   period. Background jobs still running when a call ends normally are
//!   left alone (starting a database with `nohup ... &` is a real pattern).

use std::ffi::{CString, OsString};
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::account::{self, RunAs};
use super::sync;
use crate::run::{ExecError, Executor, RawResult, RunCall, RunContext, RunFunction};

/// The `PATH` commands get unless configured otherwise.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Largest script passed as a command-line argument (Linux's limit on one
/// argument is 128 KiB); longer ones go through a file.
const MAX_ARG_SCRIPT: usize = 128 * 1024 - 1;

/// Most bytes of the output file read back.
pub const OUTPUT_LIMIT: u64 = 64 << 20;

/// How long, after the deadline's SIGKILL, to wait for pipes to close.
const KILL_GRACE: Duration = Duration::from_secs(2);

/// Runs every Run call on this machine. Cheap to create; holds only
/// configuration.
#[derive(Debug, Clone, Default)]
pub struct LocalExecutor {
    /// `PATH` given to commands (default [`DEFAULT_PATH`]).
    command_path: Option<String>,
    /// Where lunabox looks for bash, expect, pwsh, rsync and setpriv
    /// (default: lunabox's own `PATH`, then [`DEFAULT_PATH`]).
    program_dirs: Option<Vec<PathBuf>>,
}

impl LocalExecutor {
    /// The executor with default settings.
    pub fn new() -> LocalExecutor {
        LocalExecutor::default()
    }

    /// Give commands this `PATH` instead of [`DEFAULT_PATH`] (e.g. to put a
    /// simulated program first). A call's own `PATH` variable still wins.
    pub fn with_command_path(mut self, path: impl Into<String>) -> LocalExecutor {
        self.command_path = Some(path.into());
        self
    }

    /// Look for the programs lunabox starts (bash, expect, pwsh, rsync,
    /// setpriv) only in these directories, instead of lunabox's `PATH`.
    pub fn with_program_dirs(mut self, dirs: impl IntoIterator<Item = PathBuf>) -> LocalExecutor {
        self.program_dirs = Some(dirs.into_iter().collect());
        self
    }

    /// The full path of `name` among the program directories.
    pub fn find_program(&self, name: &str) -> Option<PathBuf> {
        let dirs: Vec<PathBuf> = match &self.program_dirs {
            Some(d) => d.clone(),
            None => {
                let mut d: Vec<PathBuf> = std::env::var_os("PATH")
                    .map(|p| std::env::split_paths(&p).collect())
                    .unwrap_or_default();
                d.extend(std::env::split_paths(DEFAULT_PATH));
                d
            }
        };
        dirs.iter()
            .filter(|d| d.is_absolute())
            .map(|d| d.join(name))
            .find(|p| {
                p.metadata()
                    .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
            })
    }

    fn require_program(
        &self,
        name: &str,
        function: RunFunction,
        hint: &str,
    ) -> Result<PathBuf, ExecError> {
        self.find_program(name).ok_or_else(|| {
            ExecError::Unavailable(format!(
                "{function} needs `{name}` on this machine, and it is not installed; {hint}"
            ))
        })
    }
}

impl Executor for LocalExecutor {
    fn execute(&self, call: &RunCall, ctx: &RunContext) -> Result<RawResult, ExecError> {
        let started = Instant::now();
        // Find the program first: a missing program is the clearest error.
        let program = match call.function {
            RunFunction::RunBash => self.require_program("bash", call.function, "install bash")?,
            RunFunction::RunCommand => PathBuf::from("/bin/sh"),
            RunFunction::RunExpect => {
                self.require_program("expect", call.function, "install Expect (e.g. `apt-get install expect`)")?
            }
            RunFunction::RunPowerShell => self.find_program("pwsh").ok_or_else(|| {
                ExecError::Unavailable(
                    "RunPowerShell needs PowerShell (`pwsh`) on the host; install it or run this hook on a \
                     Windows environment"
                        .to_string(),
                )
            })?,
            RunFunction::RunSync => self.require_program("rsync", call.function, "install rsync")?,
        };
        let me = account::current();
        let run_as = account::resolve(call.target.user.as_deref(), &me, &|n| account::by_name(n))?;
        check_home(&run_as)?;

        if call.function == RunFunction::RunSync {
            let setpriv = if run_as.switches() {
                Some(self.require_program(
                    "setpriv",
                    call.function,
                    "it is part of util-linux and lets the copy read the source as the environment user",
                )?)
            } else {
                None
            };
            let mut raw = sync::run(self, call, ctx, &run_as, &program, setpriv.as_deref())?;
            raw.duration = started.elapsed();
            return Ok(raw);
        }

        let dir = CallDir::new(&run_as)?;
        let script = call.command.as_deref().unwrap_or_default();
        let name = crate::run::resource_of(script, &ctx.resources)
            .unwrap_or_else(|| call.function.name().to_string());
        let mut args: Vec<OsString> = Vec::new();
        match call.function {
            RunFunction::RunBash | RunFunction::RunCommand => {
                if script.len() > MAX_ARG_SCRIPT {
                    args.push(dir.write_file("script", script.as_bytes(), &run_as)?.into());
                } else {
                    args.extend(["-c".into(), script.into(), name.into()]);
                }
            }
            RunFunction::RunExpect => {
                args.push("-f".into());
                args.push(
                    dir.write_file("script.exp", script.as_bytes(), &run_as)?
                        .into(),
                );
            }
            RunFunction::RunPowerShell => {
                args.extend(["-NoProfile".into(), "-NonInteractive".into()]);
                if script.len() > MAX_ARG_SCRIPT {
                    args.push("-File".into());
                    args.push(
                        dir.write_file("script.ps1", script.as_bytes(), &run_as)?
                            .into(),
                    );
                } else {
                    args.extend(["-Command".into(), script.into()]);
                }
            }
            RunFunction::RunSync => unreachable!("handled above"),
        }
        let mut cmd = self.command(&program, &args, call, &run_as);
        cmd.env("DLPX_OUTPUT_FILE", &dir.output_path);
        let finished = supervise(cmd, &program, &run_as, ctx)?;
        let (output, output_truncated) = dir.read_output()?;
        Ok(RawResult {
            exit_code: finished.exit_code,
            signal: finished.signal,
            stdout: finished.stdout,
            stderr: finished.stderr,
            stdout_truncated: finished.stdout_truncated,
            stderr_truncated: finished.stderr_truncated,
            output,
            output_truncated,
            duration: started.elapsed(),
        })
    }
}

impl LocalExecutor {
    /// A command for `program args` with the clean environment, the user and
    /// the working directory of `run_as`, and the call's variables.
    pub(super) fn command(
        &self,
        program: &Path,
        args: &[OsString],
        call: &RunCall,
        run_as: &RunAs,
    ) -> Command {
        let a = &run_as.account;
        let mut cmd = Command::new(program);
        cmd.args(args)
            .env_clear()
            .env("PATH", self.command_path.as_deref().unwrap_or(DEFAULT_PATH))
            .env("HOME", &a.home)
            .env("USER", &a.name)
            .env("LOGNAME", &a.name)
            .env("SHELL", &a.shell)
            .env("LANG", "C.UTF-8")
            .envs(&call.variables)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        match &run_as.switch_groups {
            None => {
                cmd.current_dir(&a.home);
            }
            Some(groups) => {
                let groups: Vec<libc::gid_t> = groups.clone();
                let (uid, gid) = (a.uid, a.gid);
                let home = CString::new(a.home.as_os_str().as_bytes())
                    .unwrap_or_else(|_| CString::from(c"/"));
                // SAFETY: the closure runs in the forked child before exec and
                // only makes async-signal-safe system calls on data prepared
                // before the fork (no allocation).
                unsafe {
                    cmd.pre_exec(move || {
                        if libc::setgroups(groups.len(), groups.as_ptr()) != 0
                            || libc::setgid(gid) != 0
                            || libc::setuid(uid) != 0
                            || libc::chdir(home.as_ptr()) != 0
                        {
                            return Err(io::Error::last_os_error());
                        }
                        Ok(())
                    });
                }
            }
        }
        cmd
    }
}

/// Fail clearly when the user's home (the working directory) is missing.
fn check_home(run_as: &RunAs) -> Result<(), ExecError> {
    let a = &run_as.account;
    if a.home.is_dir() {
        Ok(())
    } else {
        Err(ExecError::Unavailable(format!(
            "commands run from the environment user's home directory, and the home of `{}` ({}) is not a \
             directory; create it or use another user",
            a.name,
            a.home.display()
        )))
    }
}

/// The call's private directory and output file.
pub(super) struct CallDir {
    dir: tempfile::TempDir,
    output_path: PathBuf,
    output: File,
}

impl CallDir {
    pub(super) fn new(run_as: &RunAs) -> Result<CallDir, ExecError> {
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
    fn read_output(&self) -> Result<(Vec<u8>, bool), ExecError> {
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
pub(super) struct Finished {
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
pub(super) fn supervise(
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
