//! Runs calls on this machine: bash, sh, expect, pwsh, rsync.
//!
//! [`LocalExecutor`] runs every call here, whatever its `environment` and
//! `host` say (remote hosts are another [`Executor`]). For each call:
//!
//! - **Program.** `RunBash`: `bash -c SCRIPT NAME` (the script is passed as
//!   an argument, not on stdin, because scripts may read stdin; `NAME`, the
//!   resource name, becomes `$0` so bash's errors name the script).
//!   `RunCommand`: `/bin/sh -c SCRIPT NAME`. `RunExpect`: `expect -f FILE`
//!   with the script in a private file (`expect -c` reports Tcl errors with
//!   exit status 0, so a file it is). `RunPowerShell`:
//!   `pwsh -NoProfile -NonInteractive -Command SCRIPT` when `pwsh` is
//!   installed. `RunSync`: `rsync` (the private `sync` module). A script too long
//!   for one argument (128 KiB) is also passed as a file. Where a program
//!   lives is looked up once per executor; a cached path that no longer
//!   starts is looked up again.
//! - **Files.** Each executor has one private directory, made when its
//!   first call needs it (in `/dev/shm` when that is a writable RAM file
//!   system with room, else in the temp directory; mode 0700, or 0711 once
//!   a command runs as another user, so that user can reach but not list or
//!   replace its files) and removed when the executor is dropped. Each call
//!   gets a fresh, empty output file there (created exclusively, mode 0600,
//!   owned by the user the command runs as) named by `$DLPX_OUTPUT_FILE`.
//!   It is read through the descriptor lunabox created, so a command cannot
//!   make lunabox read another file. The call's files are removed when the
//!   call ends.
//! - **Environment.** Not lunabox's own: `PATH`, `HOME`, `USER`, `LOGNAME`,
//!   `SHELL`, `LANG=C.UTF-8`, then the call's variables, then
//!   `DLPX_OUTPUT_FILE`. stdin is `/dev/null`.
//! - **User.** See [`super::account`]: the environment user, from its home
//!   directory; lunabox switches to it when running as root. Accounts (and
//!   their groups) are looked up once per executor and user name.
//! - **Process.** The child leads its own process group; with a cgroup per
//!   call ([`super::contain`]) it is created in the call's cgroup (see
//!   `executors::spawn` for how, and why not by joining it). The calling thread
//!   watches it with `poll(2)` on its stdout and stderr pipes and a pidfd
//!   (no threads), keeping at most [`RunContext::capture_limit`] bytes of
//!   each stream and dropping the rest. The call ends when the child has
//!   exited *and* both pipes are closed, so a background job that keeps
//!   stdout open holds the call. At the hook's deadline the whole process
//!   group gets SIGKILL, the child is reaped and the call ends with
//!   [`ExecError::Deadline`]. A process that left the group (`setsid`) is
//!   out of reach; its pipe is closed after a grace period. Background jobs
//!   still running when a call ends normally are left alone (starting a
//!   database with `nohup ... &` is a real pattern).

use std::collections::HashMap;
use std::ffi::{CString, OsString};
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use super::account::{self, Account, RunAs};
use super::contain::{self, CallCgroup};
use super::spawn::{self, Proc};
use super::sync;
use crate::{CancelToken, ExecError, Executor, RawResult, RunCall, RunContext, RunFunction};

/// The `PATH` commands get unless configured otherwise.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Largest script passed as a command-line argument (Linux's limit on one
/// argument is 128 KiB); longer ones go through a file.
const MAX_ARG_SCRIPT: usize = 128 * 1024 - 1;

/// How long, after the deadline's SIGKILL, to wait for pipes to close.
const KILL_GRACE: Duration = Duration::from_secs(2);

/// The RAM file system preferred for the call files.
const SHM_DIR: &str = "/dev/shm";

/// Free space `/dev/shm` must have to hold the call files (a full output
/// file and then some); a small one (containers often get 64 MiB) is not
/// used.
const SHM_MIN_FREE: u64 = 256 << 20;

/// Runs every Run call on this machine. Cheap to create; clones share
/// their caches and their private directory.
#[derive(Debug, Clone, Default)]
pub struct LocalExecutor {
    /// `PATH` given to commands (default [`DEFAULT_PATH`]).
    command_path: Option<String>,
    /// Where lunabox looks for bash, expect, pwsh, rsync and setpriv
    /// (default: lunabox's own `PATH`, then [`DEFAULT_PATH`]).
    program_dirs: Option<Vec<PathBuf>>,
    /// What this executor (and its clones) looked up or made once.
    state: Arc<State>,
}

/// An executor's caches and private directory (removed on drop).
#[derive(Debug, Default)]
struct State {
    /// Program name -> full path (found ones only).
    programs: Mutex<HashMap<String, PathBuf>>,
    /// The account lunabox runs as.
    me: OnceLock<Account>,
    /// Requested user (trimmed, "" for none) -> who runs the call (resolved
    /// ones only).
    users: Mutex<HashMap<String, RunAs>>,
    /// The private directory for call files, made on first use.
    files: Mutex<Option<Arc<FileDir>>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
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
        self.state = Arc::default();
        self
    }

    /// Look for the programs lunabox starts (bash, expect, pwsh, rsync,
    /// setpriv) only in these directories, instead of lunabox's `PATH`.
    pub fn with_program_dirs(mut self, dirs: impl IntoIterator<Item = PathBuf>) -> LocalExecutor {
        self.program_dirs = Some(dirs.into_iter().collect());
        self.state = Arc::default();
        self
    }

    /// The full path of `name` among the program directories. A path found
    /// once is remembered by this executor (see [`Self::forget_program`]).
    pub fn find_program(&self, name: &str) -> Option<PathBuf> {
        if let Some(p) = lock(&self.state.programs).get(name) {
            return Some(p.clone());
        }
        let found = self.search_program(name)?;
        lock(&self.state.programs).insert(name.to_string(), found.clone());
        Some(found)
    }

    /// Drop the remembered path of `name`, so the next
    /// [`Self::find_program`] searches again.
    pub fn forget_program(&self, name: &str) {
        lock(&self.state.programs).remove(name);
    }

    fn search_program(&self, name: &str) -> Option<PathBuf> {
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

    /// Who runs a call that asks for `requested` (remembered per name once
    /// resolved; failures are not remembered).
    fn run_as(&self, requested: Option<&str>) -> Result<RunAs, ExecError> {
        let key = requested.map_or("", str::trim);
        if let Some(r) = lock(&self.state.users).get(key) {
            return Ok(r.clone());
        }
        let me = self.state.me.get_or_init(account::current);
        let r = account::resolve(requested, me, &|n| account::by_name(n))?;
        lock(&self.state.users).insert(key.to_string(), r.clone());
        Ok(r)
    }

    /// This executor's private directory, made on first use.
    fn file_dir(&self) -> Result<Arc<FileDir>, ExecError> {
        let mut files = lock(&self.state.files);
        if let Some(d) = files.as_ref() {
            return Ok(d.clone());
        }
        let d = Arc::new(FileDir::create()?);
        *files = Some(d.clone());
        Ok(d)
    }

    /// A new call's files. When the private directory has vanished (a
    /// temp-directory cleaner removed it), a new one is made.
    fn call_files(&self, run_as: &RunAs) -> Result<CallFiles, ExecError> {
        let dir = self.file_dir()?;
        match CallFiles::new(dir.clone(), run_as) {
            Err(_) if !dir.dir.path().is_dir() => {
                tracing::debug!(dir = %dir.dir.path().display(), "the private directory is gone; making a new one");
                let mut files = lock(&self.state.files);
                if files.as_ref().is_some_and(|d| Arc::ptr_eq(d, &dir)) {
                    *files = None;
                }
                drop(files);
                CallFiles::new(self.file_dir()?, run_as)
            }
            result => result,
        }
    }
}

impl Executor for LocalExecutor {
    fn execute(&self, call: &RunCall, ctx: &RunContext) -> Result<RawResult, ExecError> {
        let started = Instant::now();
        // Find the program first: a missing program is the clearest error.
        let (looked_up, program) = self.program_for(call.function)?;
        let run_as = self.run_as(call.target.user.as_deref())?;
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
            let result = sync::run(self, call, ctx, &run_as, &program, setpriv.as_deref());
            if result.is_err() {
                // A stale remembered path must not outlive a failed copy.
                self.forget_program("rsync");
                self.forget_program("setpriv");
            }
            let mut raw = result?;
            raw.duration = started.elapsed();
            return Ok(raw);
        }

        let mut files = self.call_files(&run_as)?;
        let script = call.command.as_deref().unwrap_or_default();
        let name = crate::resource_of(script, &ctx.resources)
            .unwrap_or_else(|| call.function.name().to_string());
        let mut args: Vec<OsString> = Vec::new();
        match call.function {
            RunFunction::RunBash | RunFunction::RunCommand => {
                if script.len() > MAX_ARG_SCRIPT {
                    args.push(files.write_file("", script.as_bytes(), &run_as)?.into());
                } else {
                    args.extend(["-c".into(), script.into(), name.into()]);
                }
            }
            RunFunction::RunExpect => {
                args.push("-f".into());
                args.push(files.write_file(".exp", script.as_bytes(), &run_as)?.into());
            }
            RunFunction::RunPowerShell => {
                args.extend(["-NoProfile".into(), "-NonInteractive".into()]);
                if script.len() > MAX_ARG_SCRIPT {
                    args.push("-File".into());
                    args.push(files.write_file(".ps1", script.as_bytes(), &run_as)?.into());
                } else {
                    args.extend(["-Command".into(), script.into()]);
                }
            }
            RunFunction::RunSync => unreachable!("handled above"),
        }
        let cgroup = CallCgroup::new();
        let build = |program: &Path| {
            let mut cmd = self.command(program, &args, call, &run_as, cgroup.as_ref());
            cmd.env("DLPX_OUTPUT_FILE", &files.output_path);
            cmd
        };
        if contain::stopping() {
            return Err(ExecError::Unavailable(
                "lunabox is stopping (it was sent SIGTERM or SIGINT); no new command is started"
                    .into(),
            ));
        }
        let child = match spawn::spawn(&mut build(&program), &run_as, cgroup.as_ref()) {
            Ok(child) => child,
            Err(e) if !looked_up.is_empty() && e.kind() == io::ErrorKind::NotFound => {
                // The remembered path may be stale (the program was moved or
                // removed since): look again, once.
                self.forget_program(looked_up);
                let (_, found) = self.program_for(call.function)?;
                if found == program {
                    return Err(spawn_error(&program, &run_as, &e));
                }
                spawn::spawn(&mut build(&found), &run_as, cgroup.as_ref())
                    .map_err(|e| spawn_error(&found, &run_as, &e))?
            }
            Err(e) => return Err(spawn_error(&program, &run_as, &e)),
        };
        let guard = Guard {
            output: Some((&files.output, &files.output_path, ctx.output_limit)),
            cgroup: cgroup.as_ref(),
        };
        let finished = watch(child, &program, ctx, &guard);
        if let Some(cg) = cgroup {
            cg.finish();
        }
        let finished = finished?;
        let (output, output_truncated) = files.read_output(ctx.output_limit)?;
        drop(files);
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
    /// The program that runs `function`'s calls, and the name it was looked
    /// up by ("" for the fixed `/bin/sh`).
    fn program_for(&self, function: RunFunction) -> Result<(&'static str, PathBuf), ExecError> {
        Ok(match function {
            RunFunction::RunBash => ("bash", self.require_program("bash", function, "install bash")?),
            RunFunction::RunCommand => ("", PathBuf::from("/bin/sh")),
            RunFunction::RunExpect => (
                "expect",
                self.require_program("expect", function, "install Expect (e.g. `apt-get install expect`)")?,
            ),
            RunFunction::RunPowerShell => ("pwsh", self.find_program("pwsh").ok_or_else(|| {
                ExecError::Unavailable(
                    "RunPowerShell needs PowerShell (`pwsh`) on the host; install it or run this hook on a \
                     Windows environment"
                        .to_string(),
                )
            })?),
            RunFunction::RunSync => ("rsync", self.require_program("rsync", function, "install rsync")?),
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
        cgroup: Option<&CallCgroup>,
    ) -> Command {
        let a = &run_as.account;
        let mut cmd = Command::new(program);
        if let Some(cg) = cgroup {
            let procs = cg.procs_path().clone();
            // SAFETY: runs in the forked child before exec (and before the
            // user switch below, which needs root to have happened first);
            // open/write/close are async-signal-safe and `procs` was made
            // before the fork.
            unsafe {
                cmd.pre_exec(move || {
                    let fd = libc::open(procs.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
                    if fd >= 0 {
                        // "0": the writing process itself.
                        libc::write(fd, c"0".as_ptr().cast(), 1);
                        libc::close(fd);
                    }
                    Ok(())
                });
            }
        }
        cmd.args(args)
            .env_clear()
            .env("PATH", self.command_path.as_deref().unwrap_or(DEFAULT_PATH))
            .env("HOME", &a.home)
            .env("USER", &a.name)
            .env("LOGNAME", &a.name)
            .env("SHELL", &a.shell)
            .env("LANG", "C.UTF-8")
            .envs(&call.variables);
        super::contain::own_group_piped(&mut cmd);
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

/// An executor's private directory for call files (removed on drop).
#[derive(Debug)]
struct FileDir {
    dir: tempfile::TempDir,
    /// Mode 0711 already (a command ran as another user).
    traversable: AtomicBool,
    /// Numbers the call files.
    next: AtomicU64,
}

impl FileDir {
    /// Make the directory (mode 0700) in `/dev/shm` when it is usable, else
    /// in the temp directory.
    fn create() -> Result<FileDir, ExecError> {
        let make = |parent: &Path| {
            tempfile::Builder::new()
                .prefix("lunabox-run-")
                .permissions(std::fs::Permissions::from_mode(0o700))
                .tempdir_in(parent)
        };
        let shm = Path::new(SHM_DIR);
        let dir = match ram_dir_usable(shm).then(|| make(shm)) {
            Some(Ok(d)) => d,
            _ => {
                let tmp = std::env::temp_dir();
                make(&tmp).map_err(|e| {
                    ExecError::Unavailable(format!(
                        "could not create lunabox's private directory for call files in {}: {e}; \
                         make the temp directory writable (or set TMPDIR to one that is)",
                        tmp.display()
                    ))
                })?
            }
        };
        contain::register_dir(dir.path());
        Ok(FileDir {
            dir,
            traversable: AtomicBool::new(false),
            next: AtomicU64::new(0),
        })
    }

    /// Let other users reach (not list) the directory's files.
    fn open_to_other_users(&self) -> io::Result<()> {
        if !self.traversable.load(Ordering::Acquire) {
            std::fs::set_permissions(self.dir.path(), std::fs::Permissions::from_mode(0o711))?;
            self.traversable.store(true, Ordering::Release);
        }
        Ok(())
    }

    /// Create a new, empty file (mode 0600, owned by the command's user)
    /// named `<kind>-<n><suffix>`; never reuses an existing name.
    fn create_file(&self, kind: &str, suffix: &str, run_as: &RunAs) -> io::Result<(PathBuf, File)> {
        loop {
            let n = self.next.fetch_add(1, Ordering::Relaxed);
            let path = self.dir.path().join(format!("{kind}-{n}{suffix}"));
            let file = match std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .mode(0o600)
                .custom_flags(libc::O_NOFOLLOW)
                .open(&path)
            {
                Ok(f) => f,
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            };
            if run_as.switches()
                && let Err(e) = std::os::unix::fs::fchown(
                    &file,
                    Some(run_as.account.uid),
                    Some(run_as.account.gid),
                )
            {
                let _ = std::fs::remove_file(&path);
                return Err(e);
            }
            return Ok((path, file));
        }
    }
}

impl Drop for FileDir {
    fn drop(&mut self) {
        contain::forget_dir(self.dir.path());
    }
}

/// Whether `dir` is a writable RAM file system with room for call files.
fn ram_dir_usable(dir: &Path) -> bool {
    let Ok(c) = CString::new(dir.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: statfs is plain data; zeroed is a valid initial value.
    let mut fs: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: c is NUL-terminated; fs is valid for writing.
    if unsafe { libc::statfs(c.as_ptr(), &mut fs) } != 0 {
        return false;
    }
    const TMPFS_MAGIC: i64 = 0x0102_1994;
    let free = (fs.f_bavail as u64).saturating_mul(fs.f_bsize as u64);
    // SAFETY: c is NUL-terminated.
    let writable = unsafe { libc::access(c.as_ptr(), libc::W_OK | libc::X_OK) } == 0;
    fs.f_type as i64 == TMPFS_MAGIC && free >= SHM_MIN_FREE && writable
}

/// One call's files in the executor's directory: the output file and
/// perhaps a script. Removed on drop.
pub(super) struct CallFiles {
    dir: Arc<FileDir>,
    output_path: PathBuf,
    output: File,
    scripts: Vec<PathBuf>,
}

impl CallFiles {
    fn new(dir: Arc<FileDir>, run_as: &RunAs) -> Result<CallFiles, ExecError> {
        let fail = |what: &str, e: io::Error| {
            ExecError::Unavailable(format!(
                "could not create the call's {what} in {}: {e}",
                dir.dir.path().display()
            ))
        };
        if run_as.switches() {
            dir.open_to_other_users()
                .map_err(|e| fail("private directory", e))?;
        }
        let (output_path, output) = dir
            .create_file("output", ".json", run_as)
            .map_err(|e| fail("output file", e))?;
        Ok(CallFiles {
            dir,
            output_path,
            output,
            scripts: Vec::new(),
        })
    }

    /// Write `contents` to a new file (readable by the command's user only)
    /// ending in `suffix` and return its path.
    fn write_file(
        &mut self,
        suffix: &str,
        contents: &[u8],
        run_as: &RunAs,
    ) -> Result<PathBuf, ExecError> {
        let fail = |e: io::Error| {
            ExecError::Unavailable(format!(
                "could not write the script to a file in {}: {e}",
                self.dir.dir.path().display()
            ))
        };
        let (path, mut f) = self
            .dir
            .create_file("script", suffix, run_as)
            .map_err(fail)?;
        self.scripts.push(path.clone());
        f.write_all(contents).map_err(fail)?;
        Ok(path)
    }

    /// The output file's bytes (at most `limit`) and whether there were
    /// more.
    fn read_output(&self, limit: u64) -> Result<(Vec<u8>, bool), ExecError> {
        let mut f = &self.output;
        let mut buf = Vec::new();
        f.seek(SeekFrom::Start(0))
            .and_then(|_| f.take(limit + 1).read_to_end(&mut buf))
            .map_err(|e| {
                ExecError::Unavailable(format!(
                    "could not read the output file {}: {e}",
                    self.output_path.display()
                ))
            })?;
        let truncated = buf.len() as u64 > limit;
        buf.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
        Ok((buf, truncated))
    }
}

impl Drop for CallFiles {
    fn drop(&mut self) {
        for p in std::iter::once(&self.output_path).chain(&self.scripts) {
            if let Err(e) = std::fs::remove_file(p) {
                tracing::debug!(path = %p.display(), "could not remove a call file: {e}");
            }
        }
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

/// One output stream being read: its pipe (until closed) and what was kept.
struct Capture {
    pipe: Option<OwnedFd>,
    data: Vec<u8>,
    dropped: u64,
}

impl Capture {
    fn new(pipe: Option<impl Into<OwnedFd>>) -> Capture {
        Capture {
            pipe: pipe.map(Into::into),
            data: Vec::new(),
            dropped: 0,
        }
    }

    fn fd(&self) -> RawFd {
        self.pipe.as_ref().map_or(-1, AsRawFd::as_raw_fd)
    }

    /// Read once from the pipe (poll said it is ready, so this does not
    /// block), keeping at most `cap` bytes in all; closes it at its end.
    fn read(&mut self, chunk: &mut Vec<u8>, cap: usize) {
        let Some(pipe) = &self.pipe else { return };
        if chunk.is_empty() {
            chunk.resize(64 * 1024, 0);
        }
        // SAFETY: chunk is valid for writing chunk.len() bytes.
        let n = unsafe { libc::read(pipe.as_raw_fd(), chunk.as_mut_ptr().cast(), chunk.len()) };
        if n > 0 {
            let n = n as usize;
            let room = cap.saturating_sub(self.data.len()).min(n);
            self.data.extend_from_slice(&chunk[..room]);
            self.dropped += (n - room) as u64;
        } else if n == 0 {
            self.pipe = None;
        } else {
            let e = io::Error::last_os_error();
            if !matches!(
                e.kind(),
                io::ErrorKind::Interrupted | io::ErrorKind::WouldBlock
            ) {
                self.pipe = None;
            }
        }
    }

    /// The captured text (lossy UTF-8) and whether some was dropped.
    fn text(&self) -> (String, bool) {
        (
            String::from_utf8_lossy(&self.data).into_owned(),
            self.dropped > 0,
        )
    }
}

/// Spawn `cmd` and wait until it has exited and closed stdout and stderr,
/// or until the deadline (then kill its process group).
pub(super) fn supervise(
    mut cmd: Command,
    program: &Path,
    run_as: &RunAs,
    ctx: &RunContext,
) -> Result<Finished, ExecError> {
    if contain::stopping() {
        return Err(ExecError::Unavailable(
            "lunabox is stopping (it was sent SIGTERM or SIGINT); no new command is started".into(),
        ));
    }
    let child = cmd.spawn().map_err(|e| spawn_error(program, run_as, &e))?;
    watch(Proc::from_child(child), program, ctx, &Guard::default())
}

/// A pidfd for our unreaped child `pid` (readable once it has exited), or
/// `None` where the kernel has none (before Linux 5.3).
fn pidfd_open(pid: libc::pid_t) -> Option<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    // SAFETY: on success fd is a new descriptor that nothing else owns.
    (fd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// Watch a started child from this thread until it has exited and closed
/// stdout and stderr, or until the deadline (then kill its process group).
///
/// The child is reaped only at the end, so its pid, which is the process
/// group's id, cannot be reused while the group may still be killed.
fn watch(
    child: Proc,
    program: &Path,
    ctx: &RunContext,
    guard: &Guard<'_>,
) -> Result<Finished, ExecError> {
    let pidfd = pidfd_open(child.id());
    watch_with(child, pidfd, program, ctx, guard)
}

/// What else a watch looks after besides the process group.
#[derive(Default)]
pub(super) struct Guard<'a> {
    /// The call's output file, its path and the most it may hold: a
    /// command whose file grows past it is killed while it writes.
    pub output: Option<(&'a File, &'a Path, u64)>,
    /// The call's cgroup, killed with the group.
    pub cgroup: Option<&'a CallCgroup>,
}

thread_local! {
    /// This thread's inotify instance, made on first use and kept: closing
    /// one destroys its fsnotify group, which waits for an SRCU grace
    /// period (5-15 ms), so each call only adds and removes a watch.
    static INOTIFY: Option<OwnedFd> = {
        // SAFETY: inotify_init1 returns a new descriptor or -1.
        let fd = unsafe { libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC) };
        // SAFETY: on success fd is a new descriptor nothing else owns.
        (fd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(fd) })
    };
}

/// A watch for writes to one file on this thread's inotify instance,
/// removed on drop. Used on the thread that made it only.
struct FileWatch {
    fd: RawFd,
    wd: libc::c_int,
}

/// Watch `path` for writes.
fn inotify_on(path: &Path) -> Option<FileWatch> {
    let c = CString::new(path.as_os_str().as_bytes()).ok()?;
    let fd = INOTIFY.with(|i| i.as_ref().map(AsRawFd::as_raw_fd))?;
    // Events left from an earlier call's watch.
    drain(fd);
    // SAFETY: c is NUL-terminated; fd is an inotify descriptor.
    let wd = unsafe { libc::inotify_add_watch(fd, c.as_ptr(), libc::IN_MODIFY) };
    (wd >= 0).then_some(FileWatch { fd, wd })
}

impl AsRawFd for FileWatch {
    fn as_raw_fd(&self) -> RawFd {
        self.fd
    }
}

impl Drop for FileWatch {
    fn drop(&mut self) {
        // SAFETY: fd is this thread's inotify descriptor (kept until the
        // thread ends); wd was added to it.
        unsafe { libc::inotify_rm_watch(self.fd, self.wd) };
        drain(self.fd);
    }
}

/// Read and drop what an inotify descriptor has queued.
fn drain(fd: RawFd) {
    let mut buf = [0u8; 4096];
    // SAFETY: buf is valid for writing buf.len() bytes; fd is non-blocking.
    while unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) } > 0 {}
}

/// [`watch`] with the child's pidfd, if there is one (without, the child
/// is checked on between naps once its pipes are closed).
fn watch_with(
    mut child: Proc,
    mut pidfd: Option<OwnedFd>,
    program: &Path,
    ctx: &RunContext,
    guard: &Guard<'_>,
) -> Result<Finished, ExecError> {
    let pgid = child.id();
    let _registered = contain::register(pgid, guard.cgroup);
    if contain::stopping() {
        // SAFETY: killpg only sends a signal to our own child's group.
        unsafe { libc::killpg(pgid, libc::SIGKILL) };
    }
    let notify = guard.output.and_then(|(_, path, _)| inotify_on(path));
    // Without inotify, the output file is looked at this often.
    let look_every = Duration::from_millis(20);
    let mut too_big: Option<u64> = None;
    let mut cancelled = false;
    let mut streams = [
        Capture::new(child.stdout.take()),
        Capture::new(child.stderr.take()),
    ];
    let have_pidfd = pidfd.is_some();
    let mut exited = false;
    let mut chunk = Vec::new();
    let mut deadline = ctx.deadline;
    let mut killed = false;
    // Without a pidfd, how long to sleep between checks once the pipes are
    // closed and the child has not exited yet.
    let mut nap = Duration::from_micros(50);
    loop {
        let open = streams.iter().any(|s| s.pipe.is_some());
        if !open && exited {
            break;
        }
        if !open && !have_pidfd {
            // No pidfd: check on the child between naps.
            match child.try_wait() {
                Ok(Some(_)) => {
                    exited = true;
                    break;
                }
                Ok(None) => {}
                Err(_) => break,
            }
        }
        if too_big.is_none()
            && !killed
            && let Some((file, _, limit)) = guard.output
            && file.metadata().is_ok_and(|m| m.len() > limit)
        {
            tracing::debug!(
                pgid,
                "the output file grew past its limit: killing the command"
            );
            too_big = Some(limit);
            deadline = Some(Instant::now());
        }
        if !cancelled && !killed && ctx.cancel.as_ref().is_some_and(CancelToken::is_cancelled) {
            tracing::debug!(pgid, "cancelled: killing the process group");
            cancelled = true;
            deadline = Some(Instant::now());
        }
        let mut remaining = deadline.map(|d| d.saturating_duration_since(Instant::now()));
        if remaining == Some(Duration::ZERO) {
            if killed {
                break;
            }
            tracing::debug!(pgid, "deadline passed: killing the process group");
            // SAFETY: killpg only sends a signal; the group is ours (the
            // child leads it and is not reaped yet).
            unsafe { libc::killpg(pgid, libc::SIGKILL) };
            if let Some(cg) = guard.cgroup {
                cg.kill();
            }
            killed = true;
            deadline = Some(Instant::now() + KILL_GRACE);
            continue;
        }
        if guard.output.is_some() && notify.is_none() && !killed {
            remaining = Some(remaining.map_or(look_every, |r| r.min(look_every)));
        }
        if !open && !have_pidfd {
            // The pipes are closed, the child is still running.
            std::thread::sleep(remaining.map_or(nap, |r| r.min(nap)));
            nap = (nap * 2).min(Duration::from_millis(10));
            continue;
        }
        let mut fds = [
            libc::pollfd {
                fd: streams[0].fd(),
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: streams[1].fd(),
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: pidfd.as_ref().map_or(-1, AsRawFd::as_raw_fd),
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: if killed {
                    -1
                } else {
                    notify.as_ref().map_or(-1, AsRawFd::as_raw_fd)
                },
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: if killed {
                    -1
                } else {
                    ctx.cancel.as_ref().and_then(CancelToken::fd).unwrap_or(-1)
                },
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        let timeout = remaining.map(|r| libc::timespec {
            tv_sec: r.as_secs().min(i32::MAX as u64) as libc::time_t,
            tv_nsec: r.subsec_nanos() as libc::c_long,
        });
        // SAFETY: fds has fds.len() entries; the timeout, when given, lives
        // across the call; no signal mask is changed.
        let n = unsafe {
            libc::ppoll(
                fds.as_mut_ptr(),
                fds.len() as libc::nfds_t,
                timeout.as_ref().map_or(std::ptr::null(), |t| t as *const _),
                std::ptr::null(),
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            // Cannot happen with valid arguments; do not leave the command
            // running unwatched.
            // SAFETY: as above.
            unsafe { libc::killpg(pgid, libc::SIGKILL) };
            reap_later(child);
            return Err(ExecError::Unavailable(format!(
                "could not watch {}: poll failed: {e}",
                program.display()
            )));
        }
        for (s, fd) in streams.iter_mut().zip(&fds) {
            if fd.revents != 0 {
                s.read(&mut chunk, ctx.capture_limit);
            }
        }
        if fds[2].revents != 0 {
            // Exited: reaped at the end, so the group id stays ours.
            exited = true;
            pidfd = None;
        }
        if fds[3].revents != 0
            && let Some(n) = &notify
        {
            drain(n.fd);
        }
    }

    let [out, err] = &streams;
    if killed {
        // A killed process closes its pipes a moment before it is gone:
        // wait (within the grace) until no member of the group runs, so the
        // call ends with its processes dead.
        let mut nap = Duration::from_micros(100);
        while (group_running(pgid) || guard.cgroup.is_some_and(CallCgroup::populated))
            && deadline.is_some_and(|d| Instant::now() < d)
        {
            std::thread::sleep(nap);
            nap = (nap * 2).min(Duration::from_millis(10));
        }
        if streams.iter().any(|s| s.pipe.is_some()) {
            tracing::warn!(
                pgid,
                "a process outside the killed process group still holds the command's output open; \
                 closing it"
            );
        }
        if exited {
            let _ = child.wait();
        } else {
            reap_later(child);
        }
        if cancelled {
            return Err(ExecError::Cancelled {
                stdout: out.text().0,
                stderr: err.text().0,
            });
        }
        if let Some(limit) = too_big {
            return Err(ExecError::OutputTooLarge {
                limit,
                stdout: out.text().0,
                stderr: err.text().0,
            });
        }
        return Err(ExecError::Deadline {
            stdout: out.text().0,
            stderr: err.text().0,
        });
    }
    if contain::stopping() {
        let _ = child.wait();
        return Err(ExecError::Unavailable(
            "lunabox is stopping (it was sent SIGTERM or SIGINT); the command was killed".into(),
        ));
    }
    let status: ExitStatus = child.wait().map_err(|e| {
        ExecError::Unavailable(format!("could not wait for {}: {e}", program.display()))
    })?;
    let (stdout, stdout_truncated) = out.text();
    let (stderr, stderr_truncated) = err.text();
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

/// Whether a process of group `pgid` still runs (zombies do not count).
fn group_running(pgid: libc::pid_t) -> bool {
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return false;
    };
    procs.flatten().any(|e| {
        let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
            return false;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            return false;
        };
        // "pid (comm) state ppid pgrp ...": comm may hold anything but ')'
        // ends it last.
        let mut fields = stat
            .rsplit_once(')')
            .map_or("", |(_, r)| r)
            .split_whitespace();
        let state = fields.next();
        let pgrp = fields.nth(1).and_then(|g| g.parse::<libc::pid_t>().ok());
        pgrp == Some(pgid) && !matches!(state, Some("Z" | "X" | "x"))
    })
}

/// Reap a killed child that has not exited yet (e.g. stuck in the kernel)
/// on a thread of its own, so no zombie is left behind.
fn reap_later(mut child: Proc) {
    if let Ok(Some(_)) = child.try_wait() {
        return;
    }
    let spawned = std::thread::Builder::new()
        .name("run-reap".into())
        .stack_size(64 * 1024)
        .spawn(move || {
            let _ = child.wait();
        });
    if let Err(e) = spawned {
        tracing::warn!("could not start a thread to reap a killed command: {e}");
    }
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
#[cfg(test)]
mod tests {
    use super::*;

    /// Start `script` with bash as lunabox would.
    fn start(exec: &LocalExecutor, script: &str) -> Proc {
        let bash = exec.find_program("bash").unwrap();
        let run_as = exec.run_as(None).unwrap();
        let args: Vec<OsString> = vec!["-c".into(), script.into(), "t".into()];
        exec.command(
            &bash,
            &args,
            &RunCall::new(RunFunction::RunBash, script),
            &run_as,
            None,
        )
        .spawn()
        .map(Proc::from_child)
        .unwrap()
    }

    /// Without a pidfd (kernels before 5.3, or a seccomp filter that denies
    /// it) the child is still waited for, and killed at the deadline.
    #[test]
    fn watching_without_a_pidfd() {
        let exec = LocalExecutor::new();
        let ctx = RunContext {
            deadline: Some(Instant::now() + Duration::from_secs(60)),
            ..RunContext::default()
        };
        let p = Path::new("bash");
        let f = watch_with(
            start(&exec, "echo out; echo err >&2; exit 5"),
            None,
            p,
            &ctx,
            &Guard::default(),
        )
        .unwrap();
        assert_eq!(
            (f.exit_code, f.stdout.as_str(), f.stderr.as_str()),
            (5, "out\n", "err\n")
        );

        let t = Instant::now();
        let child = start(&exec, "echo bye; exec >&- 2>&-; sleep 0.3; kill -9 $$");
        let f = watch_with(child, None, p, &ctx, &Guard::default()).unwrap();
        assert!(
            t.elapsed() >= Duration::from_millis(290),
            "{:?}",
            t.elapsed()
        );
        assert_eq!(
            (f.exit_code, f.signal, f.stdout.as_str()),
            (137, Some(9), "bye\n")
        );

        let short = RunContext {
            deadline: Some(Instant::now() + Duration::from_millis(300)),
            ..RunContext::default()
        };
        let t = Instant::now();
        let child = start(&exec, "echo started; exec >&- 2>&-; sleep 60");
        let pid = child.id();
        match watch_with(child, None, p, &short, &Guard::default()) {
            Err(ExecError::Deadline { stdout, .. }) => assert_eq!(stdout, "started\n"),
            other => panic!("{other:?}"),
        }
        assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
        // Reaped: no such child any more.
        // SAFETY: waitpid on a pid that was our child.
        assert_eq!(
            unsafe { libc::waitpid(pid, std::ptr::null_mut(), libc::WNOHANG) },
            -1
        );
        assert!(!group_running(pid), "the killed group still runs");
    }

    /// With a cgroup, `clone3` into it ([`spawn::spawn`]) and the
    /// `Command` fallback (whose `pre_exec` joins it) start the same
    /// command: arguments, environment, working directory, user, process
    /// group, signal mask and dispositions, stdin, cgroup; and fail the
    /// same when the program is missing.
    #[test]
    fn clone3_and_the_command_fallback_start_the_same() {
        if !contain::cgroups_available() {
            crate::test_skip::skipped(
                "clone3_and_the_command_fallback_start_the_same",
                "no cgroup per call here (needs root and cgroup v2)",
            );
            return;
        }
        let exec = LocalExecutor::new();
        let bash = exec.find_program("bash").unwrap();
        let ctx = RunContext {
            deadline: Some(Instant::now() + Duration::from_secs(60)),
            ..RunContext::default()
        };
        let script = format!(
            r#"echo "args $0 $1"; env | sort; pwd; id -u; id -g; id -G
            [ "$(cut -d' ' -f5 /proc/$$/stat)" = $$ ] && echo "leads its group"
            grep -E '^Sig(Blk|Ign)' /proc/self/status; readlink /proc/$$/fd/0
            case "$(cat /proc/$$/cgroup)" in *"/lunabox-{}/call-"*) echo "in its cgroup";; esac"#,
            std::process::id()
        );
        let args: Vec<OsString> = vec!["-c".into(), script.into(), "name".into(), "one".into()];
        let mut call = RunCall::new(RunFunction::RunBash, "t");
        call.variables.insert("V".into(), "a b=c".into());
        // A signal blocked here (as lunabox blocks SIGINT and SIGTERM): the
        // same mask either way.
        // SAFETY: sigset_t is plain data, initialised by sigemptyset.
        let mut usr2: libc::sigset_t = unsafe { std::mem::zeroed() };
        // SAFETY: usr2 is a valid sigset_t; only this thread's mask changes.
        unsafe {
            libc::sigemptyset(&mut usr2);
            libc::sigaddset(&mut usr2, libc::SIGUSR2);
            libc::pthread_sigmask(libc::SIG_BLOCK, &usr2, std::ptr::null_mut());
        }
        let run = |user: Option<&str>, clone3: bool| {
            let run_as = exec.run_as(user).unwrap();
            let cg = CallCgroup::new().unwrap();
            let mut cmd = exec.command(&bash, &args, &call, &run_as, Some(&cg));
            let child = if clone3 {
                spawn::spawn(&mut cmd, &run_as, Some(&cg)).unwrap()
            } else {
                Proc::from_child(cmd.spawn().unwrap())
            };
            let guard = Guard {
                output: None,
                cgroup: Some(&cg),
            };
            let f = watch(child, &bash, &ctx, &guard).unwrap();
            cg.finish();
            assert_eq!((f.exit_code, f.stderr.as_str()), (0, ""));
            f.stdout
        };
        let other = ["cloudsdk", "nobody", "daemon"]
            .iter()
            .filter_map(|n| account::by_name(n).ok().flatten())
            .find(|a| a.uid != 0 && a.home.is_dir());
        for user in [None, other.as_ref().map(|a| a.name.as_str())] {
            let (cloned, forked) = (run(user, true), run(user, false));
            assert_eq!(cloned, forked, "user {user:?}");
            for line in [
                "args name one",
                "V=a b=c",
                "LANG=C.UTF-8",
                "leads its group",
                "/dev/null",
                "in its cgroup",
            ] {
                assert!(cloned.lines().any(|l| l == line), "no {line:?} in {cloned}");
            }
            let a = exec.run_as(user).unwrap().account;
            assert!(cloned.contains(&format!("\n{}\n{}\n", a.home.display(), a.uid)));
        }
        // SAFETY: as above.
        unsafe { libc::pthread_sigmask(libc::SIG_UNBLOCK, &usr2, std::ptr::null_mut()) };

        let run_as = exec.run_as(None).unwrap();
        let cg = CallCgroup::new().unwrap();
        let missing = Path::new("/nonexistent/lunabox-test-program");
        let mut cmd = exec.command(missing, &[], &call, &run_as, Some(&cg));
        let cloned = spawn::spawn(&mut cmd, &run_as, Some(&cg)).unwrap_err();
        let forked = cmd.spawn().unwrap_err();
        assert_eq!(cloned.kind(), io::ErrorKind::NotFound);
        assert_eq!(cloned.raw_os_error(), forked.raw_os_error());
        assert!(!cg.populated());
    }

    fn p50(mut xs: Vec<f64>) -> f64 {
        xs.sort_by(|a, b| a.partial_cmp(b).unwrap());
        xs[xs.len() / 2]
    }

    fn time(f: &mut dyn FnMut()) -> f64 {
        let t = Instant::now();
        f();
        t.elapsed().as_secs_f64() * 1e6
    }

    /// Where a `RunBash true` call's time goes, against spawning
    /// `bash -c true` directly (cases interleaved, order rotated). Prints
    /// p50s in microseconds; `LUNABOX_TIMING_N` rounds (default 300).
    /// Debug: `cargo test -p lunabox --lib per_call_overhead -- --ignored
    /// --nocapture`. Optimized: `CARGO_TARGET_DIR=/work/target-bench cargo
    /// bench -p lunabox --lib --no-run`, then run the printed executable
    /// with `per_call_overhead --ignored --nocapture`.
    #[test]
    #[ignore = "timing harness; prints numbers, asserts nothing about speed"]
    fn per_call_overhead() {
        let n: usize = std::env::var("LUNABOX_TIMING_N")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(300);
        let exec = LocalExecutor::new();
        let bash = exec.find_program("bash").unwrap();
        let call = RunCall::new(RunFunction::RunBash, "true");
        let ctx = RunContext {
            deadline: Some(Instant::now() + Duration::from_secs(600)),
            ..RunContext::default()
        };
        let me = account::current();
        let run_as = RunAs {
            account: me.clone(),
            switch_groups: None,
        };
        type Case<'a> = (&'static str, Box<dyn FnMut() + 'a>);
        let mut cases: Vec<Case> = vec![
            (
                "direct bash -c true",
                Box::new(|| {
                    assert!(
                        Command::new(&bash)
                            .args(["-c", "true"])
                            .status()
                            .unwrap()
                            .success()
                    );
                }),
            ),
            (
                "direct, LANG=C.UTF-8",
                Box::new(|| {
                    assert!(
                        Command::new(&bash)
                            .args(["-c", "true"])
                            .env("LANG", "C.UTF-8")
                            .status()
                            .unwrap()
                            .success()
                    );
                }),
            ),
            (
                "direct, lunabox env/cwd/pgroup",
                Box::new(|| {
                    let mut c =
                        exec.command(&bash, &["-c".into(), "true".into()], &call, &run_as, None);
                    c.stdout(std::process::Stdio::null())
                        .stderr(std::process::Stdio::null());
                    assert!(c.status().unwrap().success());
                }),
            ),
            (
                "direct, with pipes (output)",
                Box::new(|| {
                    assert!(
                        Command::new(&bash)
                            .args(["-c", "true"])
                            .output()
                            .unwrap()
                            .status
                            .success()
                    );
                }),
            ),
            (
                "executor RunBash true",
                Box::new(|| {
                    assert_eq!(exec.execute(&call, &ctx).unwrap().exit_code, 0);
                }),
            ),
            (
                "account::current",
                Box::new(|| {
                    std::hint::black_box(account::current());
                }),
            ),
            (
                "search_program bash",
                Box::new(|| {
                    std::hint::black_box(exec.search_program("bash"));
                }),
            ),
            (
                "new call file",
                Box::new(|| {
                    let d = exec.call_files(&run_as).unwrap();
                    std::hint::black_box(d.read_output(1 << 20).unwrap());
                }),
            ),
        ];
        let mut samples: Vec<Vec<f64>> = vec![Vec::new(); cases.len()];
        let len = cases.len();
        for round in 0..n {
            // Rotate the order so that no case always follows the same one.
            for k in 0..len {
                let i = (round + k) % len;
                samples[i].push(time(cases[i].1.as_mut()));
            }
        }
        for ((name, _), s) in cases.iter().zip(samples) {
            println!("{name:<28} p50 {:>9.1} us", p50(s));
        }
    }
}
