//! Scratch directories: each hook gets its own empty directory, which is the
//! only filesystem it can see (preopened as `/`). Directories are made in
//! batches and removed by a background thread, to keep both off most hooks'
//! start-up.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::mpsc::{Sender, channel};

/// A pool of fresh empty directories under one parent.
pub struct ScratchPool {
    parent: tempfile::TempDir,
    ready: Mutex<Vec<PathBuf>>,
    counter: std::sync::atomic::AtomicU64,
    reaper: Mutex<Sender<PathBuf>>,
}

/// One hook's scratch directory; removed (in the background) on drop.
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
        let reaper = self.pool.reaper.lock().unwrap_or_else(|e| e.into_inner());
        if let Err(e) = reaper.send(path) {
            let _ = std::fs::remove_dir_all(e.0);
        }
    }
}

const PREPARED: usize = 8;

impl ScratchPool {
    pub fn new() -> std::io::Result<Self> {
        let parent = tempfile::Builder::new().prefix("lunabox-scratch-").tempdir()?;
        let (tx, rx) = channel::<PathBuf>();
        std::thread::Builder::new()
            .name("lunabox-scratch-reaper".into())
            .spawn(move || {
                for dir in rx {
                    if let Err(e) = std::fs::remove_dir_all(&dir) {
                        tracing::warn!(dir = %dir.display(), "cannot remove a hook's scratch directory: {e}");
                    }
                }
            })?;
        Ok(ScratchPool {
            parent,
            ready: Mutex::new(Vec::new()),
            counter: Default::default(),
            reaper: Mutex::new(tx),
        })
    }

    fn make(&self) -> std::io::Result<PathBuf> {
        let n = self.counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path = self.parent.path().join(format!("hook-{n}"));
        std::fs::create_dir(&path)?;
        Ok(path)
    }

    /// Take a fresh empty directory.
    pub fn take(&self) -> std::io::Result<Scratch<'_>> {
        let ready = self.ready.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let path = match ready {
            Some(p) => p,
            None => {
                // Refill a few for the next hooks while we are here.
                let mut made = Vec::with_capacity(PREPARED);
                for _ in 0..PREPARED {
                    made.push(self.make()?);
                }
                let mine = made.pop().expect("PREPARED > 0");
                self.ready.lock().unwrap_or_else(|e| e.into_inner()).extend(made);
                mine
            }
        };
        Ok(Scratch { pool: self, path })
    }
}
