//! Starting a local Run call's command, inside the call's cgroup when it
//! has one, and the started process ([`Proc`]).
//!
//! **Why not `pre_exec`.** A child that writes itself into its cgroup's
//! `cgroup.procs` before exec is *migrated*, and a migration takes the
//! kernel's `cgroup_threadgroup_rwsem` for writing, which waits for an RCU
//! grace period: 10-15 ms per call when calls are not back to back (50
//! `RunBash true` calls took 0.8 s instead of 0.15 s). `clone3` with
//! `CLONE_INTO_CGROUP` (Linux 5.7) creates the child in the cgroup, with no
//! migration: about 1.7 ms per spawn, exec, wait and cgroup removal.
//!
//! **How.** A call with a cgroup is started with
//! `clone3(CLONE_INTO_CGROUP)`; on x86_64 with `CLONE_VM | CLONE_VFORK` too
//! (the child borrows this process's memory until it execs, on a stack of
//! its own, as `posix_spawn` does), elsewhere fork-like. A fork copied the
//! page tables of a process holding wasm memories: `RunBash true` took
//! 1.9-2.1 ms a call against 1.3-1.5 ms for spawning `bash -c true`.
//! Everything the child needs is prepared before the clone, and the child
//! makes only async-signal-safe system calls: stdin `/dev/null` and the
//! stdout/stderr pipes onto 0-2, its own process group, every caught
//! signal and SIGPIPE back to the default, then an empty signal mask (as
//! the `Command` path sets it; the parent blocks all signals across the
//! clone),
//! the user switch (`setgroups`, `setgid`, `setuid`, as root), the home
//! directory as working directory, every other descriptor close-on-exec,
//! then `execve`. A failure is reported as an errno through a close-on-exec
//! pipe, so the caller gets the same error as from `Command::spawn`. The
//! program, arguments and environment are read from the same
//! [`Command`] the other path spawns (`LocalExecutor::command`, which always
//! clears the environment), so both start the same command.
//!
//! **Fallback.** Where `clone3` is refused (ENOSYS before Linux 5.3,
//! E2BIG or EINVAL before 5.7, EPERM under a seccomp filter), the
//! [`Command`] is spawned instead, its `pre_exec` writing `cgroup.procs`;
//! the refusal is remembered for the process. Calls without a cgroup (not
//! root, no cgroup v2) always use the [`Command`].

use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::ExitStatusExt;
use std::process::{Child, Command, ExitStatus};
use std::sync::atomic::{AtomicBool, Ordering};

use super::account::RunAs;
use super::contain::CallCgroup;

/// A started command: our unreaped child until waited for.
#[derive(Debug)]
pub(super) struct Proc {
    pid: libc::pid_t,
    /// The read end of its stdout pipe.
    pub stdout: Option<OwnedFd>,
    /// The read end of its stderr pipe.
    pub stderr: Option<OwnedFd>,
    /// How it ended, once reaped.
    status: Option<ExitStatus>,
}

impl Proc {
    /// Take over a child spawned by [`Command`] (its pipes; it is waited
    /// for here, not by `Child`).
    pub fn from_child(mut child: Child) -> Proc {
        Proc {
            pid: child.id() as libc::pid_t,
            stdout: child.stdout.take().map(Into::into),
            stderr: child.stderr.take().map(Into::into),
            status: None,
        }
    }

    /// Its pid, which is also its process group's id.
    pub fn id(&self) -> libc::pid_t {
        self.pid
    }

    /// How it ended, if it has; reaps it.
    pub fn try_wait(&mut self) -> io::Result<Option<ExitStatus>> {
        self.waitpid(libc::WNOHANG)
    }

    /// Wait until it ends and reap it.
    pub fn wait(&mut self) -> io::Result<ExitStatus> {
        self.waitpid(0)
            .map(|s| s.expect("waitpid without WNOHANG waits"))
    }

    fn waitpid(&mut self, flags: libc::c_int) -> io::Result<Option<ExitStatus>> {
        if let Some(s) = self.status {
            return Ok(Some(s));
        }
        let mut raw = 0;
        loop {
            // SAFETY: raw is valid for writing; pid is our unreaped child.
            let r = unsafe { libc::waitpid(self.pid, &mut raw, flags) };
            if r == self.pid {
                let s = ExitStatus::from_raw(raw);
                self.status = Some(s);
                return Ok(Some(s));
            }
            if r == 0 {
                return Ok(None);
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
    }
}

/// Whether `clone3(CLONE_INTO_CGROUP)` may still be tried (cleared once
/// refused).
static CLONE3: AtomicBool = AtomicBool::new(true);

/// Start `cmd` (made by `LocalExecutor::command` for `run_as` and
/// `cgroup`): with `clone3` straight into the cgroup when there is one,
/// else (or where `clone3` is refused) with [`Command::spawn`].
pub(super) fn spawn(
    cmd: &mut Command,
    run_as: &RunAs,
    cgroup: Option<&CallCgroup>,
) -> io::Result<Proc> {
    if let Some(fd) = cgroup.and_then(CallCgroup::dir_fd)
        && CLONE3.load(Ordering::Relaxed)
    {
        match clone_into(cmd, run_as, fd) {
            Err(Clone3::Refused(e)) => {
                tracing::debug!(
                    "clone3(CLONE_INTO_CGROUP) refused ({e}): joining call cgroups before exec"
                );
                CLONE3.store(false, Ordering::Relaxed);
            }
            Err(Clone3::Failed(e)) => return Err(e),
            Ok(p) => return Ok(p),
        }
    }
    cmd.spawn().map(Proc::from_child)
}

/// Why [`clone_into`] started nothing.
enum Clone3 {
    /// The kernel (or a seccomp filter) refuses `clone3` into a cgroup.
    Refused(io::Error),
    /// The command could not be started (as `Command::spawn` would fail).
    Failed(io::Error),
}

impl From<io::Error> for Clone3 {
    fn from(e: io::Error) -> Clone3 {
        Clone3::Failed(e)
    }
}

/// `struct clone_args` up to `cgroup` (`CLONE_ARGS_SIZE_VER2`).
#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// What the child does between the clone and exec, prepared before it.
struct Plan<'a> {
    /// stdin, stdout, stderr (all above 2).
    stdio: [RawFd; 3],
    /// Groups, uid and gid to switch to.
    user: Option<(&'a [libc::gid_t], libc::uid_t, libc::gid_t)>,
    home: &'a CStr,
    program: &'a CStr,
    argv: *const *const libc::c_char,
    envp: *const *const libc::c_char,
    /// Where an errno goes when a step fails.
    report: RawFd,
}

fn nul_error() -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        "nul byte found in provided data",
    )
}

fn c_string(bytes: &[u8]) -> io::Result<CString> {
    CString::new(bytes).map_err(|_| nul_error())
}

/// `fd` (new, close-on-exec, or -1 for an error) moved above 0, 1 and 2
/// (so that moving one onto 0-2 cannot overwrite another).
fn above_stdio(fd: RawFd) -> io::Result<OwnedFd> {
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is a new descriptor nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    if fd.as_raw_fd() > 2 {
        return Ok(fd);
    }
    // SAFETY: F_DUPFD_CLOEXEC returns a new descriptor or -1.
    let high = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 3) };
    if high < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: as above.
    Ok(unsafe { OwnedFd::from_raw_fd(high) })
}

/// A close-on-exec pipe: (read end, write end).
fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [-1; 2];
    // SAFETY: fds is valid for writing two descriptors.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let (r, w) = (above_stdio(fds[0]), above_stdio(fds[1]));
    Ok((r?, w?))
}

/// Start `cmd`'s program, arguments and environment as `run_as`, from
/// its home, in the cgroup `cgroup` (see the module comment).
fn clone_into(cmd: &Command, run_as: &RunAs, cgroup: BorrowedFd<'_>) -> Result<Proc, Clone3> {
    let program = c_string(cmd.get_program().as_bytes())?;
    let mut args = vec![program.clone()];
    for a in cmd.get_args() {
        args.push(c_string(a.as_bytes())?);
    }
    let mut env = Vec::new();
    for (k, v) in cmd.get_envs() {
        if let Some(v) = v {
            let mut kv = k.as_bytes().to_vec();
            kv.push(b'=');
            kv.extend_from_slice(v.as_bytes());
            env.push(c_string(&kv)?);
        }
    }
    let pointers = |list: &[CString]| -> Vec<*const libc::c_char> {
        list.iter()
            .map(|s| s.as_ptr())
            .chain(std::iter::once(std::ptr::null()))
            .collect()
    };
    let (argv, envp) = (pointers(&args), pointers(&env));
    let a = &run_as.account;
    let home = c_string(a.home.as_os_str().as_bytes())?;
    let user = run_as
        .switch_groups
        .as_deref()
        .map(|g| (g, a.uid as libc::uid_t, a.gid as libc::gid_t));

    // SAFETY: the path is NUL-terminated; open returns a descriptor or -1.
    let null = above_stdio(unsafe {
        libc::open(c"/dev/null".as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC)
    })?;
    let (out_r, out_w) = pipe()?;
    let (err_r, err_w) = pipe()?;
    let (report_r, report_w) = pipe()?;
    let plan = Plan {
        stdio: [null.as_raw_fd(), out_w.as_raw_fd(), err_w.as_raw_fd()],
        user,
        home: &home,
        program: &program,
        argv: argv.as_ptr(),
        envp: envp.as_ptr(),
        report: report_w.as_raw_fd(),
    };
    let clone_args = CloneArgs {
        flags: CLONE_INTO_CGROUP,
        exit_signal: libc::SIGCHLD as u64,
        cgroup: cgroup.as_raw_fd() as u64,
        ..CloneArgs::default()
    };
    let pid = match clone3(clone_args, &plan) {
        Ok(pid) => pid,
        Err(e) => {
            return Err(match e.raw_os_error() {
                Some(libc::ENOSYS | libc::EINVAL | libc::E2BIG | libc::EPERM) => Clone3::Refused(e),
                _ => Clone3::Failed(e),
            });
        }
    };
    drop((null, out_w, err_w, report_w));
    let mut proc = Proc {
        pid,
        stdout: Some(out_r),
        stderr: Some(err_r),
        status: None,
    };
    // The report pipe closes at exec (nothing read) or carries an errno.
    let mut buf = [0u8; 4];
    let mut got = 0;
    while got < buf.len() {
        // SAFETY: buf[got..] is valid for writing.
        let n = unsafe {
            libc::read(
                report_r.as_raw_fd(),
                buf[got..].as_mut_ptr().cast(),
                buf.len() - got,
            )
        };
        if n > 0 {
            got += n as usize;
        } else if n == 0 || io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
            break;
        }
    }
    if got == 0 {
        return Ok(proc);
    }
    let _ = proc.wait();
    Err(Clone3::Failed(if got == buf.len() {
        io::Error::from_raw_os_error(i32::from_ne_bytes(buf))
    } else {
        io::Error::other("the command failed before exec and sent a short error report")
    }))
}

/// Bytes of the stack the child runs on while it shares this process's
/// memory (it only makes system calls; from the heap, not an mmap).
#[cfg(target_arch = "x86_64")]
const CHILD_STACK: usize = 64 << 10;

/// `clone3` with `args` and, in the child, [`child`] on `plan`; the
/// child's pid.
///
/// On x86_64 the child shares this process's memory until it execs or
/// exits (`CLONE_VM | CLONE_VFORK`, on a stack of its own, as
/// `posix_spawn` does), and this thread waits until then. A fork-like
/// clone copied the page tables of a process holding wasm linear memories
/// and fibers (about 0.5 ms a call), and the copy-on-write faults it left
/// were paid by the next hooks. Every signal is blocked across the clone,
/// and the child puts every handler back to the default before it
/// unblocks them, so no handler of ours runs in the shared memory.
/// Elsewhere the clone is fork-like.
#[cfg(target_arch = "x86_64")]
fn clone3(mut args: CloneArgs, plan: &Plan<'_>) -> io::Result<libc::pid_t> {
    let mut stack: Vec<u8> = Vec::with_capacity(CHILD_STACK);
    let base = stack.as_mut_ptr() as usize;
    let top = (base + CHILD_STACK) & !15;
    args.flags |= (libc::CLONE_VM | libc::CLONE_VFORK) as u64;
    args.stack = base as u64;
    args.stack_size = (top - base) as u64;
    // SAFETY: sigset_t is plain data, filled by sigfillset; the old mask
    // is restored below.
    let old = unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        let mut old: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut old);
        old
    };
    let ret: libc::c_long;
    // SAFETY: clone3 per `args`. The parent side only gets rax (and loses
    // rcx and r11, as any syscall). The child side starts on `stack` (the
    // kernel sets its stack pointer to stack + stack_size, 16-aligned) with
    // this thread's registers, and calls `child_entry(plan)`, which never
    // returns; this thread is suspended until the child has exec'd or
    // exited, so `plan` and `stack` outlive its use of them.
    unsafe {
        std::arch::asm!(
            "syscall",
            "test rax, rax",
            "jnz 2f",
            "xor ebp, ebp",
            "mov rdi, r12",
            "call r13",
            "ud2",
            "2:",
            inlateout("rax") libc::SYS_clone3 => ret,
            in("rdi") &args as *const CloneArgs,
            in("rsi") std::mem::size_of::<CloneArgs>(),
            in("r12") plan as *const Plan<'_> as *const libc::c_void,
            in("r13") child_entry as extern "C" fn(*const libc::c_void) -> !,
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack),
        );
    }
    // SAFETY: `old` came from pthread_sigmask above.
    unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut()) };
    drop(stack);
    if ret < 0 {
        return Err(io::Error::from_raw_os_error(-ret as i32));
    }
    Ok(ret as libc::pid_t)
}

#[cfg(not(target_arch = "x86_64"))]
fn clone3(args: CloneArgs, plan: &Plan<'_>) -> io::Result<libc::pid_t> {
    // SAFETY: clone3 without CLONE_VM is a fork: the child gets a copy of
    // this process and continues here on a copy of this stack; it runs
    // only `child`, which makes async-signal-safe calls on `plan` and
    // never returns.
    let pid = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &args as *const CloneArgs,
            std::mem::size_of::<CloneArgs>(),
        )
    };
    if pid == 0 {
        // SAFETY: in the child (see above).
        unsafe { child(plan) }
    }
    if pid < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(pid as libc::pid_t)
}

/// Where the child of [`clone3`] starts on its own stack.
#[cfg(target_arch = "x86_64")]
extern "C" fn child_entry(plan: *const libc::c_void) -> ! {
    // SAFETY: `clone3` passes its `&Plan`, alive while the parent waits.
    unsafe { child(&*(plan as *const Plan<'_>)) }
}

/// The cloned child: set up as `plan` says and exec, or report the errno
/// and exit 127.
///
/// # Safety
///
/// Only in the child of [`clone_into`]'s clone, with `plan` prepared
/// before it.
unsafe fn child(plan: &Plan<'_>) -> ! {
    // SAFETY: async-signal-safe system calls on memory prepared before the
    // clone (no allocation, no locks).
    unsafe {
        let fail = || -> ! {
            let errno = io::Error::last_os_error().raw_os_error().unwrap_or(0);
            let b = errno.to_ne_bytes();
            libc::write(plan.report, b.as_ptr().cast(), b.len());
            libc::_exit(127)
        };
        for (to, &from) in plan.stdio.iter().enumerate() {
            if libc::dup2(from, to as RawFd) < 0 {
                fail();
            }
        }
        if libc::setpgid(0, 0) != 0 {
            fail();
        }
        // Every caught signal back to the default before any is let in
        // (the parent blocked them all across the clone): until exec this
        // child may share the parent's memory, where a handler of the
        // parent's must not run. SIGPIPE goes back to the default even
        // when ignored (as the `Command` path does).
        for sig in 1..=libc::SIGRTMAX() {
            let mut old: libc::sigaction = std::mem::zeroed();
            if libc::sigaction(sig, std::ptr::null(), &mut old) == 0
                && old.sa_sigaction != libc::SIG_DFL
                && old.sa_sigaction != libc::SIG_IGN
            {
                let mut dfl: libc::sigaction = std::mem::zeroed();
                dfl.sa_sigaction = libc::SIG_DFL;
                libc::sigaction(sig, &dfl, std::ptr::null_mut());
            }
        }
        if libc::signal(libc::SIGPIPE, libc::SIG_DFL) == libc::SIG_ERR {
            fail();
        }
        super::contain::unblock_all_signals();
        // Raw system calls, not glibc's setgroups/setgid/setuid: those
        // change every thread of the process ("setxid"), taking glibc's
        // thread-list lock and signalling each thread, and this child of a
        // raw clone has only a copy of the parent's threads' bookkeeping: it
        // waited forever on the lock when another thread held it at the
        // clone (a hang seen with a user switch under load). The child has
        // one thread, so the per-thread system calls are all it needs.
        if let Some((groups, uid, gid)) = plan.user
            && (libc::syscall(libc::SYS_setgroups, groups.len(), groups.as_ptr()) != 0
                || libc::syscall(libc::SYS_setgid, gid) != 0
                || libc::syscall(libc::SYS_setuid, uid) != 0)
        {
            fail();
        }
        if libc::chdir(plan.home.as_ptr()) != 0 {
            fail();
        }
        // Nothing else lunabox has open reaches the command (best effort:
        // close_range is Linux 5.11; Rust opens everything close-on-exec
        // anyway).
        libc::syscall(
            libc::SYS_close_range,
            3 as libc::c_uint,
            libc::c_uint::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        );
        libc::execve(plan.program.as_ptr(), plan.argv, plan.envp);
        fail()
    }
}
