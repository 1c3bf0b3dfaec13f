//! Scratch directories: each hook that uses files gets its own empty
//! directory, which is the only filesystem it can see (its `/`; given on the
//! hook's first file operation, see [`crate::scratch_quota`]). A background
//! thread makes them ahead of time and deals with used ones, so neither a
//! mkdir nor a removal is on a hook's path.
//!
//! Most hooks never touch a file, and take no directory. Of those that do,
//! one that was left exactly as it
//! was made (checked as the hook gives it back) (same inode, no entries, link count and access, modification
//! and change times all unchanged) is handed out again instead of being
//! removed and remade: on a disk filesystem a mkdir and an rmdir cost more
//! than a whole short hook, and a back-to-back stream of hooks outran the
//! worker. A directory a hook listed, wrote to or changed the times of is
//! removed, so nothing one hook does is ever seen by the next, its times
//! included.
//!
//! The pool's parent directory holds a lock file that its process keeps
//! locked. A process that dies without cleaning up (killed, or a runtime in
//! a `static` that is never dropped) leaves its parent behind unlocked; the
//! next pool made on the machine removes it.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};

/// Directories kept ready; the worker refills below `LOW`, up to `HIGH`.
const LOW: usize = 8;
const HIGH: usize = 32;
/// The worker is woken once this many used directories have piled up.
const BATCH: usize = 8;

/// Prefix of every pool's parent directory in the temp dir.
const PARENT_PREFIX: &str = "lunabox-scratch-";
/// The lock file in a parent directory, locked while its pool lives.
const OWNER_LOCK: &str = ".owner";
/// A parent with no lock file is only taken for abandoned when it is this
/// old (it may be one another process is making right now).
const UNLOCKED_GRACE: std::time::Duration = std::time::Duration::from_secs(3600);

struct Shared {
    parent: tempfile::TempDir,
    /// Held locked (flock) while the pool lives; see [`sweep_abandoned`].
    _owner: std::fs::File,
    counter: AtomicU64,
    #[cfg(test)]
    taken: AtomicU64,
    state: Mutex<State>,
    wake: Condvar,
}

/// A directory and what it looked like when it was made.
struct Fresh {
    path: PathBuf,
    made: Stamp,
}

/// The metadata of a directory that any change to it (an entry added or
/// removed, a listing, new times) alters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    ino: u64,
    nlink: u64,
    atime: (i64, i64),
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl Stamp {
    fn of(path: &Path) -> std::io::Result<Stamp> {
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::symlink_metadata(path)?;
        Ok(Stamp {
            ino: m.ino(),
            nlink: m.nlink(),
            atime: (m.atime(), m.atime_nsec()),
            mtime: (m.mtime(), m.mtime_nsec()),
            ctime: (m.ctime(), m.ctime_nsec()),
        })
    }
}

#[derive(Default)]
struct State {
    ready: Vec<Fresh>,
    used: Vec<Fresh>,
    closing: bool,
}

/// A pool of fresh empty directories under one private parent directory
/// (removed, with anything left in it, when the pool is dropped).
pub struct ScratchPool {
    shared: Arc<Shared>,
    worker: Option<std::thread::JoinHandle<()>>,
}

/// Where hooks take directories from: a handle on a pool that a hook's
/// store can own.
#[derive(Clone)]
pub struct ScratchSource {
    shared: Arc<Shared>,
}

/// One hook's scratch directory; handed back to the pool on drop.
pub struct Scratch {
    shared: Arc<Shared>,
    dir: Fresh,
}

impl Scratch {
    pub fn path(&self) -> &Path {
        &self.dir.path
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let dir = Fresh {
            path: std::mem::take(&mut self.dir.path),
            made: self.dir.made,
        };
        // Checked here, not by the worker: a stat and a listing are cheaper
        // than the mkdir a hook would need when a fast stream of hooks has
        // drained the ready list before the worker ran.
        let pristine = is_pristine(&dir);
        let shared = &self.shared;
        let mut st = shared.state.lock().unwrap_or_else(|e| e.into_inner());
        if pristine {
            st.ready.push(dir);
        } else {
            st.used.push(dir);
            if st.used.len() >= BATCH {
                shared.wake.notify_one();
            }
        }
    }
}

/// Whether `dir` is still exactly as it was made: its metadata unchanged
/// and no entries. The listing is read with `O_NOATIME`, so the check itself
/// leaves the access time alone; any doubt (an error, no `O_NOATIME`) means
/// "not pristine", and the directory is removed.
fn is_pristine(dir: &Fresh) -> bool {
    if dir.made.nlink != 2 || Stamp::of(&dir.path).ok() != Some(dir.made) {
        return false;
    }
    is_empty_noatime(&dir.path).unwrap_or(false)
}

fn is_empty_noatime(path: &Path) -> std::io::Result<bool> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes())?;
    // SAFETY: plain libc calls on a NUL-terminated path; the DIR stream is
    // closed on every path out.
    unsafe {
        let fd = libc::open(
            c.as_ptr(),
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOATIME | libc::O_CLOEXEC,
        );
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let d = libc::fdopendir(fd);
        if d.is_null() {
            let e = std::io::Error::last_os_error();
            libc::close(fd);
            return Err(e);
        }
        let mut empty = true;
        loop {
            let ent = libc::readdir(d);
            if ent.is_null() {
                break;
            }
            let name = std::ffi::CStr::from_ptr((*ent).d_name.as_ptr()).to_bytes();
            if name != b"." && name != b".." {
                empty = false;
                break;
            }
        }
        libc::closedir(d);
        Ok(empty)
    }
}

impl Shared {
    fn make(&self) -> std::io::Result<Fresh> {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let path = self.parent.path().join(format!("hook-{n}"));
        std::fs::create_dir(&path)?;
        let made = Stamp::of(&path)?;
        Ok(Fresh { path, made })
    }

    fn work(&self) {
        loop {
            let used = {
                let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
                while !st.closing && st.used.len() < BATCH && st.ready.len() >= LOW {
                    st = self.wake.wait(st).unwrap_or_else(|e| e.into_inner());
                }
                if st.closing {
                    return;
                }
                std::mem::take(&mut st.used)
            };
            // Untouched directories go straight back (a stat and a listing
            // each); the rest are removed after the pool is refilled.
            let (again, spoiled): (Vec<Fresh>, Vec<Fresh>) =
                used.into_iter().partition(is_pristine);
            let want = {
                let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
                st.ready.extend(again);
                if st.ready.len() < LOW {
                    HIGH - st.ready.len()
                } else {
                    0
                }
            };
            let mut made = Vec::with_capacity(want);
            for _ in 0..want {
                match self.make() {
                    Ok(d) => made.push(d),
                    Err(e) => {
                        tracing::warn!("cannot make a scratch directory ahead of time: {e}");
                        break;
                    }
                }
            }
            self.state
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .ready
                .extend(made);
            for dir in spoiled {
                if let Err(e) = std::fs::remove_dir_all(&dir.path) {
                    tracing::warn!(dir = %dir.path.display(), "cannot remove a hook's scratch directory: {e}");
                }
            }
        }
    }
}

/// Take an exclusive `flock` on `file` without waiting.
fn try_lock(file: &std::fs::File) -> bool {
    use std::os::fd::AsRawFd;
    // SAFETY: flock on an open descriptor we own.
    unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) == 0 }
}

/// Remove the parent directories in `tmp` that dead processes left: their
/// lock file can be locked (nobody holds it), or they have none and are old.
/// Errors are logged and skipped: this is housekeeping.
fn sweep_abandoned(tmp: &Path) {
    let Ok(entries) = std::fs::read_dir(tmp) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        if !name.to_string_lossy().starts_with(PARENT_PREFIX) {
            continue;
        }
        let dir = entry.path();
        let abandoned = match std::fs::File::open(dir.join(OWNER_LOCK)) {
            Ok(lock) => try_lock(&lock),
            Err(_) => std::fs::symlink_metadata(&dir)
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age > UNLOCKED_GRACE),
        };
        if abandoned {
            match std::fs::remove_dir_all(&dir) {
                Ok(()) => {
                    tracing::debug!(dir = %dir.display(), "removed an abandoned scratch pool")
                }
                Err(e) => {
                    tracing::warn!(dir = %dir.display(), "cannot remove an abandoned scratch pool: {e}")
                }
            }
        }
    }
}

impl ScratchPool {
    pub fn new() -> std::io::Result<Self> {
        sweep_abandoned(&std::env::temp_dir());
        let parent = tempfile::Builder::new().prefix(PARENT_PREFIX).tempdir()?;
        // Locked before it gets the name a sweeper looks for, so no other
        // process ever sees this pool's lock file unlocked.
        let staging = parent.path().join(".owner-new");
        let owner = std::fs::File::create(&staging)?;
        if !try_lock(&owner) {
            return Err(std::io::Error::other(
                "cannot lock the scratch pool's owner file",
            ));
        }
        std::fs::rename(&staging, parent.path().join(OWNER_LOCK))?;
        let shared = Arc::new(Shared {
            parent,
            _owner: owner,
            counter: AtomicU64::new(0),
            #[cfg(test)]
            taken: AtomicU64::new(0),
            state: Mutex::new(State::default()),
            wake: Condvar::new(),
        });
        let worker_shared = shared.clone();
        let worker = std::thread::Builder::new()
            .name("lunabox-scratch".into())
            .spawn(move || worker_shared.work())?;
        Ok(ScratchPool {
            shared,
            worker: Some(worker),
        })
    }

    /// A handle to take directories with.
    pub fn source(&self) -> ScratchSource {
        ScratchSource {
            shared: self.shared.clone(),
        }
    }

    /// Take an empty directory no hook has changed (made now if none is
    /// ready).
    #[cfg(test)]
    pub fn take(&self) -> std::io::Result<Scratch> {
        self.source().take()
    }

    /// How many directories hooks have taken so far.
    #[cfg(test)]
    pub fn taken(&self) -> u64 {
        self.shared.taken.load(Ordering::Relaxed)
    }
}

impl ScratchSource {
    /// Take an empty directory no hook has changed (made now if none is
    /// ready).
    pub fn take(&self) -> std::io::Result<Scratch> {
        #[cfg(test)]
        self.shared.taken.fetch_add(1, Ordering::Relaxed);
        let ready = {
            let mut st = self.shared.state.lock().unwrap_or_else(|e| e.into_inner());
            let d = st.ready.pop();
            if st.ready.len() < LOW {
                self.shared.wake.notify_one();
            }
            d
        };
        let dir = match ready {
            Some(d) => d,
            None => self.shared.make()?,
        };
        Ok(Scratch {
            shared: self.shared.clone(),
            dir,
        })
    }
}

impl Drop for ScratchPool {
    fn drop(&mut self) {
        self.shared
            .state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .closing = true;
        self.shared.wake.notify_one();
        if let Some(w) = self.worker.take() {
            let _ = w.join();
        }
        // The parent TempDir removes every directory left under it.
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    /// Take and give back directories, doing `touch` to each, until one is
    /// handed out a second time (`Some(path)`) or a second passes (`None`).
    /// Every directory handed out must be empty.
    fn reuse_after(pool: &ScratchPool, touch: impl Fn(&Path)) -> Option<PathBuf> {
        let mut seen = Vec::new();
        let until = Instant::now() + Duration::from_secs(1);
        while Instant::now() < until {
            let s = pool.take().unwrap();
            // (Read without touching the access time, as the pool does.)
            assert!(
                is_empty_noatime(s.path()).unwrap(),
                "a directory was handed out with something in it"
            );
            if seen.iter().any(|p: &PathBuf| p == s.path()) {
                return Some(s.path().to_path_buf());
            }
            seen.push(s.path().to_path_buf());
            touch(s.path());
            drop(s);
            std::thread::sleep(Duration::from_millis(1));
        }
        None
    }

    #[test]
    fn written_directories_are_never_handed_out_again() {
        let pool = ScratchPool::new().unwrap();
        let again = reuse_after(&pool, |p| {
            std::fs::write(p.join("f"), "x").unwrap();
        });
        assert_eq!(again, None, "a directory a hook wrote to was reused");
        let parent = pool.shared.parent.path().to_path_buf();
        drop(pool);
        assert!(!parent.exists(), "the pool's parent directory outlived it");
    }

    #[test]
    fn parents_left_by_dead_processes_are_swept_and_live_ones_kept() {
        let tmp = tempfile::tempdir().unwrap();
        let dead = tmp.path().join(format!("{PARENT_PREFIX}dead"));
        std::fs::create_dir_all(dead.join("hook-1")).unwrap();
        std::fs::write(dead.join(OWNER_LOCK), "").unwrap();
        // A lock held through another open file description, as another
        // process would hold it.
        let live = tmp.path().join(format!("{PARENT_PREFIX}live"));
        std::fs::create_dir_all(live.join("hook-1")).unwrap();
        let held = std::fs::File::create(live.join(OWNER_LOCK)).unwrap();
        assert!(try_lock(&held));
        // No lock file and new: perhaps being made right now.
        let young = tmp.path().join(format!("{PARENT_PREFIX}young"));
        std::fs::create_dir_all(&young).unwrap();
        let other = tmp.path().join("not-ours");
        std::fs::create_dir_all(&other).unwrap();
        sweep_abandoned(tmp.path());
        assert!(!dead.exists(), "an abandoned pool was left");
        assert!(live.join("hook-1").exists(), "a live pool was removed");
        assert!(young.exists() && other.exists());
        drop(held);
        sweep_abandoned(tmp.path());
        assert!(!live.exists(), "a pool whose owner let go was left");
    }

    #[test]
    fn untouched_directories_are_handed_out_again() {
        let pool = ScratchPool::new().unwrap();
        assert!(reuse_after(&pool, |_| {}).is_some());
    }

    #[test]
    fn listed_emptied_or_retimed_directories_are_not_reused() {
        let pool = ScratchPool::new().unwrap();
        // A listing changes the access time: what one hook did must not be
        // visible to the next, even as a time.
        let listed = reuse_after(&pool, |p| {
            std::fs::read_dir(p).unwrap().for_each(drop);
        });
        assert_eq!(listed, None, "a listed directory was reused");
        let retimed = reuse_after(&pool, |p| {
            let t = std::time::SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
            std::fs::File::open(p)
                .unwrap()
                .set_times(std::fs::FileTimes::new().set_accessed(t).set_modified(t))
                .unwrap();
        });
        assert_eq!(retimed, None, "a directory with new times was reused");
        // A file made and removed again: reused or not, never seen.
        let _ = reuse_after(&pool, |p| {
            std::fs::write(p.join("f"), "x").unwrap();
            std::fs::remove_file(p.join("f")).unwrap();
            std::fs::create_dir(p.join("d")).unwrap();
        });
    }
}
