//! Containment of a local Run call's processes, and what stops them when
//! lunabox itself is told to stop.
//!
//! - **Process group, always.** Every command leads its own process group;
//!   the deadline (and cancellation) kills the whole group.
//! - **A cgroup per call, where the platform allows.** A command that
//!   detaches itself (`setsid`, a double fork) leaves its process group and
//!   a group kill misses it. When lunabox runs as root and a writable cgroup
//!   v2 hierarchy is mounted, each call runs in a cgroup of its own
//!   (`<cgroup2>/<lunabox's cgroup>/lunabox-<pid>/call-<n>`); the command
//!   is created in it (`clone3(CLONE_INTO_CGROUP)`, or it joins before
//!   exec where that is refused: see `executors::spawn`), so nothing it
//!   starts can leave it; the deadline
//!   writes `cgroup.kill`, which kills every process in it, detached or not.
//!   When a call ends normally, processes it left running on purpose (a
//!   database started with `nohup ... &`) are moved to
//!   `lunabox-<pid>/background`, and the call's cgroup, empty, is kept for
//!   a next call (a few are; the rest are removed, and at exit the spare
//!   ones and `lunabox-<pid>` itself when empty). Without
//!   root or cgroup v2, only the process group is contained: a detached
//!   process outlives the deadline (documented in the README).
//! - **Registry.** Every running call is registered here with its process
//!   group and cgroup; [`kill_running_calls`] kills them all. The `lunabox`
//!   command calls it on SIGTERM and SIGINT, then removes the call files
//!   ([`remove_call_dirs`]), so nothing of a call outlives lunabox but what
//!   a call deliberately left in the background.

use std::collections::HashMap;
use std::ffi::CString;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

/// Where this process' call cgroups live, when it can have them.
fn base() -> Option<&'static Path> {
    static BASE: OnceLock<Option<PathBuf>> = OnceLock::new();
    BASE.get_or_init(probe).as_deref()
}

/// `<cgroup2 mount>/<our cgroup>/lunabox-<pid>`, made, when we are root
/// and cgroup v2 is mounted writable.
fn probe() -> Option<PathBuf> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return None;
    }
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    let mount = mountinfo.lines().find_map(|l| {
        let (left, right) = l.split_once(" - ")?;
        if !right.starts_with("cgroup2 ") {
            return None;
        }
        left.split_whitespace().nth(4).map(PathBuf::from)
    })?;
    let own = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let own = own.lines().find_map(|l| l.strip_prefix("0::"))?.trim();
    let parent = mount.join(own.trim_start_matches('/'));
    remove_stale(&parent);
    let dir = parent.join(format!("lunabox-{}", std::process::id()));
    match std::fs::create_dir(&dir) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => {
            tracing::debug!(dir = %dir.display(), "no cgroup containment for Run calls: {e}");
            return None;
        }
    }
    if !dir.join("cgroup.procs").exists() {
        let _ = std::fs::remove_dir(&dir);
        return None;
    }
    // SAFETY: registers a function with no preconditions, run once at
    // normal exit (not in a signal handler).
    unsafe { libc::atexit(release_cgroups_at_exit) };
    Some(dir)
}

/// Remove the `lunabox-<pid>` cgroups under `parent` of processes that are
/// gone, with their empty children: a lunabox that was killed (or whose
/// background cgroup was still in use at exit) leaves its directory
/// behind. A cgroup that still holds a process is kept.
fn remove_stale(parent: &Path) {
    let Ok(entries) = std::fs::read_dir(parent) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix("lunabox-"))
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == std::process::id() || Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        if let Ok(children) = std::fs::read_dir(e.path()) {
            for c in children.flatten() {
                if c.file_type().is_ok_and(|t| t.is_dir()) {
                    let _ = std::fs::remove_dir(c.path());
                }
            }
        }
        let _ = std::fs::remove_dir(e.path());
    }
}

/// Whether calls get a cgroup each (root with cgroup v2).
pub fn cgroups_available() -> bool {
    base().is_some()
}

/// A call's own cgroup.
#[derive(Debug)]
pub struct CallCgroup {
    dir: PathBuf,
    /// `<dir>/cgroup.procs`, ready for the child to join before exec.
    procs: CString,
    /// The directory, open: where `clone3(CLONE_INTO_CGROUP)` puts the
    /// child (`None` if it could not be opened).
    fd: Option<OwnedFd>,
    /// `cgroup.kill` was written: never reused (on Linux 6.18 every child
    /// cloned into a cgroup once killed is killed at birth).
    killed: AtomicBool,
}

static NEXT: AtomicU64 = AtomicU64::new(0);

/// Empty call cgroups kept for the next calls: making a cgroup and
/// removing it took about as long as the rest of starting `true` (and a
/// child cloned into a new cgroup pays for the kernel's new css_set).
static SPARE: Mutex<Vec<CallCgroup>> = Mutex::new(Vec::new());

/// At most this many spare call cgroups.
const SPARE_CGROUPS: usize = 4;

/// At exit: remove the spare call cgroups, and this process' cgroup
/// directory when nothing is left in it (a process a call left running on
/// purpose keeps `background`, and so the directory).
extern "C" fn release_cgroups_at_exit() {
    let spare = std::mem::take(&mut *SPARE.lock().unwrap_or_else(|p| p.into_inner()));
    drop(spare);
    if let Some(base) = base() {
        let _ = std::fs::remove_dir(base.join("background"));
        let _ = std::fs::remove_dir(base);
    }
}

impl CallCgroup {
    /// A cgroup for one call (a spare one, empty, or a new one); `None`
    /// where there are none.
    pub fn new() -> Option<CallCgroup> {
        let base = base()?;
        if let Some(cg) = SPARE.lock().unwrap_or_else(|p| p.into_inner()).pop() {
            return Some(cg);
        }
        let dir = base.join(format!("call-{}", NEXT.fetch_add(1, Ordering::Relaxed)));
        if let Err(e) = std::fs::create_dir(&dir) {
            tracing::debug!(dir = %dir.display(), "cannot make a cgroup for the call: {e}");
            return None;
        }
        let fd = std::fs::File::open(&dir)
            .inspect_err(
                |e| tracing::debug!(dir = %dir.display(), "cannot open the call's cgroup: {e}"),
            )
            .ok()
            .map(OwnedFd::from);
        let cg = CallCgroup {
            procs: CString::new(dir.join("cgroup.procs").as_os_str().as_bytes()).ok()?,
            dir,
            fd,
            killed: AtomicBool::new(false),
        };
        Some(cg)
    }

    /// The cgroup's directory, open (for `clone3(CLONE_INTO_CGROUP)`).
    pub fn dir_fd(&self) -> Option<BorrowedFd<'_>> {
        self.fd.as_ref().map(AsFd::as_fd)
    }

    /// The `cgroup.procs` path the child writes itself into (in `pre_exec`).
    pub fn procs_path(&self) -> &CString {
        &self.procs
    }

    /// Kill every process in the cgroup.
    pub fn kill(&self) {
        self.killed.store(true, Ordering::Relaxed);
        kill_cgroup(&self.dir);
    }

    /// Whether any process is still in the cgroup.
    pub fn populated(&self) -> bool {
        std::fs::read_to_string(self.dir.join("cgroup.procs"))
            .map(|s| !s.trim().is_empty())
            .unwrap_or(false)
    }

    /// The call ended normally: move what it left running to the
    /// background cgroup, and keep this one, empty, for a next call (or
    /// remove it).
    pub fn finish(self) {
        let left = self.populated();
        if left && let Some(base) = base() {
            let bg = base.join("background");
            let _ = std::fs::create_dir(&bg);
            if let Ok(pids) = std::fs::read_to_string(self.dir.join("cgroup.procs")) {
                for pid in pids.split_whitespace() {
                    let _ = std::fs::write(bg.join("cgroup.procs"), pid);
                }
            }
        }
        if !self.killed.load(Ordering::Relaxed) && (!left || !self.populated()) {
            let mut spare = SPARE.lock().unwrap_or_else(|p| p.into_inner());
            if spare.len() < SPARE_CGROUPS {
                spare.push(self);
                return;
            }
        }
        self.remove();
    }

    fn remove(&self) {
        // Processes killed a moment ago may still be leaving.
        for _ in 0..200 {
            match std::fs::remove_dir(&self.dir) {
                Ok(()) => return,
                Err(e) if e.kind() == io::ErrorKind::NotFound => return,
                Err(_) => std::thread::sleep(std::time::Duration::from_millis(5)),
            }
        }
        tracing::debug!(dir = %self.dir.display(), "could not remove the call's cgroup");
    }
}

impl Drop for CallCgroup {
    fn drop(&mut self) {
        if self.dir.exists() {
            kill_cgroup(&self.dir);
            self.remove();
        }
    }
}

fn kill_cgroup(dir: &Path) {
    if std::fs::write(dir.join("cgroup.kill"), "1").is_ok() {
        return;
    }
    // Kernels before 5.14 have no cgroup.kill: kill the members one by one
    // (until none is left, as killed ones may have forked meanwhile).
    for _ in 0..100 {
        let Ok(pids) = std::fs::read_to_string(dir.join("cgroup.procs")) else {
            return;
        };
        if pids.trim().is_empty() {
            return;
        }
        for pid in pids
            .split_whitespace()
            .filter_map(|p| p.parse::<i32>().ok())
        {
            // SAFETY: kill only sends a signal.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }
}

/// What is registered of one running call.
#[derive(Debug, Clone)]
struct Live {
    pgid: libc::pid_t,
    cgroup: Option<PathBuf>,
}

fn registry() -> &'static Mutex<HashMap<u64, Live>> {
    static R: OnceLock<Mutex<HashMap<u64, Live>>> = OnceLock::new();
    R.get_or_init(Mutex::default)
}

fn dirs() -> &'static Mutex<Vec<PathBuf>> {
    static D: OnceLock<Mutex<Vec<PathBuf>>> = OnceLock::new();
    D.get_or_init(Mutex::default)
}

/// A running call, registered until dropped.
#[derive(Debug)]
pub struct Registered(u64);

/// Register a started call (its process group and cgroup).
pub fn register(pgid: libc::pid_t, cgroup: Option<&CallCgroup>) -> Registered {
    let id = NEXT.fetch_add(1, Ordering::Relaxed);
    registry().lock().unwrap_or_else(|p| p.into_inner()).insert(
        id,
        Live {
            pgid,
            cgroup: cgroup.map(|c| c.dir.clone()),
        },
    );
    Registered(id)
}

impl Drop for Registered {
    fn drop(&mut self) {
        registry()
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.0);
    }
}

static STOPPING: AtomicBool = AtomicBool::new(false);

/// Whether [`stop_all`] was called: no new command may start.
pub fn stopping() -> bool {
    STOPPING.load(Ordering::SeqCst)
}

/// lunabox is stopping (SIGTERM, SIGINT): start no new command, kill every
/// running one (twice, a moment apart, to catch one that was starting),
/// and remove the call files. Returns how many calls were killed.
pub fn stop_all() -> usize {
    STOPPING.store(true, Ordering::SeqCst);
    let n = kill_running_calls();
    std::thread::sleep(std::time::Duration::from_millis(50));
    let m = kill_running_calls();
    remove_call_dirs();
    n.max(m)
}

/// Kill every running call's process group and cgroup; returns how many
/// calls there were. Safe to call from any thread.
pub fn kill_running_calls() -> usize {
    let live: Vec<Live> = registry()
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .values()
        .cloned()
        .collect();
    for l in &live {
        // SAFETY: killpg only sends a signal; the group's leader is an
        // unreaped child of ours while it is registered.
        unsafe { libc::killpg(l.pgid, libc::SIGKILL) };
        if let Some(cg) = &l.cgroup {
            kill_cgroup(cg);
        }
    }
    live.len()
}

/// Remember a private directory of call files, to remove on
/// [`remove_call_dirs`].
pub fn register_dir(dir: &Path) {
    dirs()
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push(dir.to_path_buf());
}

/// Forget a directory removed the normal way.
pub fn forget_dir(dir: &Path) {
    dirs()
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .retain(|d| d != dir);
}

/// Remove every registered call-file directory (when lunabox is stopping
/// and destructors will not run), and this process' call cgroups that are
/// empty.
pub fn remove_call_dirs() {
    let list = std::mem::take(&mut *dirs().lock().unwrap_or_else(|p| p.into_inner()));
    for d in list {
        let _ = std::fs::remove_dir_all(&d);
    }
}

/// Empty the calling thread's signal mask: for a child between fork and
/// exec, so the command starts with no signal blocked, whatever lunabox's
/// threads block (the CLI blocks SIGINT and SIGTERM for its signal thread,
/// and a blocked mask is inherited across exec).
///
/// # Safety
/// Makes only async-signal-safe calls (sigemptyset, sigprocmask); meant
/// for a forked child before it execs.
pub(crate) unsafe fn unblock_all_signals() {
    // SAFETY: sigset_t is plain data, initialised by sigemptyset.
    unsafe {
        let mut none: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut none);
        libc::sigprocmask(libc::SIG_SETMASK, &none, std::ptr::null_mut());
    }
}

/// Set up `cmd` as a Run call's child: stdin at `/dev/null`, stdout and
/// stderr piped, a process group of its own (so the whole group can be
/// killed), and an empty signal mask when it starts.
pub(crate) fn own_group_piped(cmd: &mut std::process::Command) {
    use std::os::unix::process::CommandExt;
    use std::process::Stdio;
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    // SAFETY: runs in the forked child before exec, and makes only
    // async-signal-safe calls.
    unsafe {
        cmd.pre_exec(|| {
            unblock_all_signals();
            Ok(())
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_gone_process_s_cgroups_are_removed_and_a_live_one_s_kept() {
        let Some(ours) = base() else {
            crate::test_skip::skipped(
                "a_gone_process_s_cgroups_are_removed_and_a_live_one_s_kept",
                "a cgroup per call needs root and cgroup v2",
            );
            return;
        };
        let parent = ours.parent().unwrap();
        // A pid that is gone: a child of ours, reaped.
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let gone = child.id();
        child.wait().unwrap();
        let stale = parent.join(format!("lunabox-{gone}"));
        std::fs::create_dir(&stale).unwrap();
        std::fs::create_dir(stale.join("call-0")).unwrap();
        std::fs::create_dir(stale.join("background")).unwrap();
        // pid 1 is alive: its directory stays.
        let live = parent.join("lunabox-1");
        let made_live = std::fs::create_dir(&live).is_ok();
        remove_stale(parent);
        assert!(!stale.exists(), "{} was left", stale.display());
        assert!(live.exists(), "a live process's cgroup was removed");
        assert!(ours.exists(), "our own cgroup was removed");
        if made_live {
            std::fs::remove_dir(&live).unwrap();
        }
    }
}
