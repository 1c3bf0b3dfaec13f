//! Scratch directories: each hook gets its own empty directory, which is the
//! only filesystem it can see (preopened as `/`). A background thread makes
//! them ahead of time and removes used ones in batches, so neither the mkdir
//! nor the removal is on a hook's path.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};

/// Directories kept ready; the worker refills below `LOW`, up to `HIGH`.
const LOW: usize = 8;
const HIGH: usize = 32;
/// Used directories are removed once this many have piled up.
const BATCH: usize = 8;

struct Shared {
    parent: tempfile::TempDir,
    counter: AtomicU64,
    state: Mutex<State>,
    wake: Condvar,
}

#[derive(Default)]
struct State {
    ready: Vec<PathBuf>,
    used: Vec<PathBuf>,
    closing: bool,
}

/// A pool of fresh empty directories under one private parent directory
/// (removed, with anything left in it, when the pool is dropped).
pub struct ScratchPool {
    shared: Arc<Shared>,
    worker: Option<std::thread::JoinHandle<()>>,
}

/// One hook's scratch directory; handed back for removal on drop.
pub struct Scratch<'a> {
    pool: &'a ScratchPool,
    path: PathBuf,
}

impl Scratch<'_> {
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Scratch<'_> {
    fn drop(&mut self) {
        let path = std::mem::take(&mut self.path);
        let shared = &self.pool.shared;
        let mut st = shared.state.lock().unwrap_or_else(|e| e.into_inner());
        st.used.push(path);
        if st.used.len() >= BATCH {
            shared.wake.notify_one();
        }
    }
}

impl Shared {
    fn make(&self) -> std::io::Result<PathBuf> {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let path = self.parent.path().join(format!("hook-{n}"));
        std::fs::create_dir(&path)?;
        Ok(path)
    }

    fn work(&self) {
        loop {
            let (used, want) = {
                let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
                while !st.closing && st.used.len() < BATCH && st.ready.len() >= LOW {
                    st = self.wake.wait(st).unwrap_or_else(|e| e.into_inner());
                }
                if st.closing {
                    return;
                }
                let want = if st.ready.len() < LOW {
                    HIGH - st.ready.len()
                } else {
                    0
                };
                (std::mem::take(&mut st.used), want)
            };
            let mut made = Vec::with_capacity(want);
            for _ in 0..want {
                match self.make() {
                    Ok(p) => made.push(p),
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
            for dir in used {
                if let Err(e) = std::fs::remove_dir_all(&dir) {
                    tracing::warn!(dir = %dir.display(), "cannot remove a hook's scratch directory: {e}");
                }
            }
        }
    }
}

impl ScratchPool {
    pub fn new() -> std::io::Result<Self> {
        let parent = tempfile::Builder::new()
            .prefix("lunabox-scratch-")
            .tempdir()?;
        let shared = Arc::new(Shared {
            parent,
            counter: AtomicU64::new(0),
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

    /// Take a fresh empty directory (made now if none is ready).
    pub fn take(&self) -> std::io::Result<Scratch<'_>> {
        let ready = {
            let mut st = self.shared.state.lock().unwrap_or_else(|e| e.into_inner());
            let p = st.ready.pop();
            if st.ready.len() < LOW {
                self.shared.wake.notify_one();
            }
            p
        };
        let path = match ready {
            Some(p) => p,
            None => self.shared.make()?,
        };
        Ok(Scratch { pool: self, path })
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

    #[test]
    fn directories_are_fresh_empty_and_removed_after_use() {
        let pool = ScratchPool::new().unwrap();
        let mut seen = Vec::new();
        for i in 0..40 {
            let s = pool.take().unwrap();
            assert!(
                std::fs::read_dir(s.path()).unwrap().next().is_none(),
                "not empty"
            );
            std::fs::write(s.path().join("f"), format!("{i}")).unwrap();
            assert!(
                !seen.contains(&s.path().to_path_buf()),
                "a directory was handed out twice"
            );
            seen.push(s.path().to_path_buf());
        }
        let parent = pool.shared.parent.path().to_path_buf();
        drop(pool);
        assert!(!parent.exists(), "the pool's parent directory outlived it");
    }
}
