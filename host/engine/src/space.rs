//! Running out of disk space without losing the record of it.
//!
//! A full filesystem must end an operation as "no space left", never as a
//! job that stays "running" until the next command's recovery calls it
//! "interrupted". To be able to write that record when the disk is full,
//! the state directory keeps a reserve file ([`RESERVE_BYTES`], made when
//! there is room); when a write to the state database fails because the
//! disk is full, the reserve is deleted and the write tried once more
//! ([`State::retry_when_full`](super::state::State::retry_when_full)). The
//! reserve comes back when a later command finds room again. Failures of
//! file operations on full disks say so, with what to do
//! ([`no_space_hint`]).

use std::io;
use std::path::Path;

/// Size of the reserve file.
pub const RESERVE_BYTES: u64 = 8 << 20;

const RESERVE_NAME: &str = "space-reserve";

/// Free bytes (for unprivileged users) on the filesystem of `path`.
pub fn free_bytes(path: &Path) -> Option<u64> {
    let st = rustix::fs::statvfs(path).ok()?;
    Some(st.f_bavail.saturating_mul(st.f_frsize))
}

/// Make the reserve in `state_root` when it is missing and there is room
/// (four times its size free). Failures only cost the reserve.
pub fn ensure_reserve(state_root: &Path) {
    let path = state_root.join(RESERVE_NAME);
    if path.exists() || free_bytes(state_root).is_none_or(|f| f < 4 * RESERVE_BYTES) {
        return;
    }
    let made = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
        .and_then(|f| {
            rustix::fs::fallocate(&f, rustix::fs::FallocateFlags::empty(), 0, RESERVE_BYTES)
                .map_err(io::Error::from)
        });
    if let Err(e) = made {
        tracing::debug!(path = %path.display(), "no disk-space reserve: {e}");
        let _ = std::fs::remove_file(&path);
    }
}

/// Delete the reserve; whether there was one.
pub fn release_reserve(state_root: &Path) -> bool {
    let released = std::fs::remove_file(state_root.join(RESERVE_NAME)).is_ok();
    if released {
        tracing::warn!(
            dir = %state_root.display(),
            "the disk is full: released lunabox's space reserve to record what happened"
        );
    }
    released
}

/// Whether a database error means the disk is full (SQLite reports a full
/// disk as SQLITE_FULL, or as an I/O error when the shared-memory file or
/// the WAL cannot grow).
pub fn db_full(e: &rusqlite::Error, state_root: &Path) -> bool {
    match e.sqlite_error_code() {
        Some(rusqlite::ErrorCode::DiskFull) => true,
        Some(rusqlite::ErrorCode::SystemIoFailure) => {
            free_bytes(state_root).is_some_and(|f| f < RESERVE_BYTES)
        }
        _ => false,
    }
}

/// Whether an I/O error is a full disk (or quota).
pub fn io_full(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOSPC | libc::EDQUOT))
}

/// What to tell a person whose operation failed for lack of space at `path`.
pub fn no_space_hint(path: &Path) -> String {
    format!(
        "no space left on the filesystem of `{}`; free space there (e.g. remove old snapshots with \
         `lunabox snapshot rm`, or set `lunabox policy NAME --keep N`), then run the operation again",
        path.display()
    )
}
