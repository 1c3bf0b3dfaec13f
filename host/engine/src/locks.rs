//! The per-dSource operation lock: sync, enable, disable, policy changes and
//! snapshot removal of one dSource never overlap, across processes.
//!
//! It is an exclusive `flock` on `<state>/locks/<dsource>.lock`, held for
//! the whole operation. The kernel drops it when the holder exits, even on
//! `kill -9`, so a crash never leaves a dSource locked. The holder writes
//! who it is into the file, so a waiter can say what it waits for.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::io::AsRawFd;
use std::path::Path;
use std::time::{Duration, Instant};

use super::error::{EngineError, Result};

/// A held dSource lock; dropping it releases the lock.
#[derive(Debug)]
pub struct DsourceLock {
    file: File,
    dsource: String,
}

/// Try to take an exclusive flock on `file` without waiting.
fn try_flock(file: &File) -> std::io::Result<bool> {
    // SAFETY: `file` is an open descriptor.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc == 0 {
        return Ok(true);
    }
    let err = std::io::Error::last_os_error();
    if err.raw_os_error() == Some(libc::EWOULDBLOCK) || err.raw_os_error() == Some(libc::EINTR) {
        Ok(false)
    } else {
        Err(err)
    }
}

fn open(path: &Path) -> Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(|e| EngineError::io("cannot open the lock file", path, e))
}

fn holder(file: &mut File) -> String {
    let mut s = String::new();
    let _ = file.seek(SeekFrom::Start(0));
    let _ = file.read_to_string(&mut s);
    let s = s.trim();
    if s.is_empty() {
        "another operation".to_string()
    } else {
        s.to_string()
    }
}

impl DsourceLock {
    /// Take the lock of `dsource` for `operation`, waiting up to `timeout`.
    /// `on_wait` is called once, with a description of the holder, if the
    /// lock is busy (to print a progress message).
    pub fn acquire(
        lock_file: &Path,
        dsource: &str,
        operation: &str,
        timeout: Duration,
        on_wait: &mut dyn FnMut(&str),
    ) -> Result<DsourceLock> {
        let mut file = open(lock_file)?;
        let start = Instant::now();
        let mut told = false;
        loop {
            if try_flock(&file).map_err(|e| EngineError::io("cannot lock", lock_file, e))? {
                let me = format!(
                    "{operation} (pid {}, since {})",
                    std::process::id(),
                    super::state::format_ms(super::state::now_ms())
                );
                let _ = file.set_len(0);
                let _ = file.seek(SeekFrom::Start(0));
                let _ = file.write_all(me.as_bytes());
                return Ok(DsourceLock {
                    file,
                    dsource: dsource.to_string(),
                });
            }
            let who = holder(&mut file);
            if start.elapsed() >= timeout {
                return Err(EngineError::Busy(format!(
                    "dSource `{dsource}` is busy with {who}; gave up after {} (raise --lock-timeout, or wait and retry)",
                    humantime::format_duration(Duration::from_secs(timeout.as_secs()))
                )));
            }
            if !told {
                on_wait(&format!(
                    "dSource `{dsource}` is busy with {who}; waiting up to {} for it to finish",
                    humantime::format_duration(Duration::from_secs(timeout.as_secs()))
                ));
                told = true;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Take the lock only if it is free now.
    pub fn try_acquire(lock_file: &Path, dsource: &str) -> Result<Option<DsourceLock>> {
        let file = open(lock_file)?;
        if try_flock(&file).map_err(|e| EngineError::io("cannot lock", lock_file, e))? {
            Ok(Some(DsourceLock {
                file,
                dsource: dsource.to_string(),
            }))
        } else {
            Ok(None)
        }
    }

    /// The dSource this lock holds.
    pub fn dsource(&self) -> &str {
        &self.dsource
    }
}

impl Drop for DsourceLock {
    fn drop(&mut self) {
        let _ = self.file.set_len(0);
        // Closing the descriptor releases the flock.
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_taker_waits_then_times_out_naming_the_holder() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.lock");
        let held =
            DsourceLock::acquire(&p, "x", "sync", Duration::from_secs(1), &mut |_| {}).unwrap();
        // flock locks belong to the open file description: a second open in
        // the same process conflicts like another process would.
        let mut waited = String::new();
        let err = DsourceLock::acquire(&p, "x", "enable", Duration::from_millis(300), &mut |m| {
            waited = m.to_string()
        })
        .unwrap_err()
        .to_string();
        assert!(waited.contains("busy with sync (pid"), "{waited}");
        assert!(err.contains("--lock-timeout"), "{err}");
        assert!(DsourceLock::try_acquire(&p, "x").unwrap().is_none());
        drop(held);
        assert!(DsourceLock::try_acquire(&p, "x").unwrap().is_some());
    }
}
