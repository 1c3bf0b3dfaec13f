//! The `reflink` driver: filesystems that clone files (`FICLONE`): XFS made
//! with `reflink=1`, btrfs where subvolumes cannot be used, bcachefs,
//! OCFS2. A snapshot hard-links each file unchanged since the previous
//! snapshot and clones every other one: the clone shares all its blocks
//! with the live file, and only the blocks the database rewrites later
//! cost space (the live file gets new blocks, the snapshot keeps the old).
//! A VDB is a clone of every file of the snapshot.
//!
//! On XFS a rewrite of a shared block allocates a whole *CoW extent* of the
//! file's CoW extent size hint, 32 blocks (128 KiB) by default, so an 8 KiB
//! database page rewritten in place would cost 128 KiB. The driver sets
//! the hint to one filesystem block on the storage directories (new files
//! and directories inherit it) and on each live file it snapshots that
//! lacks it (a file moved in from elsewhere keeps its own).

use std::fs::File;
use std::io;
use std::path::Path;

use rustix::fd::AsFd;

use super::{CopyKind, DriverKind, StorageDriver, copy, sys};

/// Clones files with `FICLONE`.
#[derive(Debug, Default)]
pub struct ReflinkDriver;

/// The CoW extent size hint the driver sets on XFS: one block of `fd`'s
/// filesystem (at least 4 KiB).
fn cow_hint(fd: impl AsFd) -> io::Result<u32> {
    Ok(sys::fs_block_size(fd)?.clamp(4096, 1 << 20) as u32)
}

/// Set the small CoW extent size hint on `fd` (a directory or a file) when
/// it is on XFS and lacks it; elsewhere do nothing.
pub fn ensure_cow_hint(fd: impl AsFd) -> io::Result<()> {
    let fd = fd.as_fd();
    if sys::fs_magic(fd)? != sys::XFS_SUPER_MAGIC {
        return Ok(());
    }
    let want = cow_hint(fd)?;
    if sys::cow_extent_size(fd)? == Some(want) {
        return Ok(());
    }
    sys::set_cow_extent_size(fd, want)
}

impl StorageDriver for ReflinkDriver {
    fn kind(&self) -> DriverKind {
        DriverKind::Reflink
    }

    fn prepare_dir(&self, dir: &Path) -> io::Result<()> {
        let fd = File::open(dir)?;
        ensure_cow_hint(&fd)
    }

    fn prepare_live_file(&self, file: &File) {
        if let Err(e) = ensure_cow_hint(file) {
            tracing::debug!(error = %e, "cannot set the CoW extent size hint of a live file");
        }
    }

    fn copy_file(&self, src: &File, dst: &File) -> io::Result<CopyKind> {
        clone_or_copy(src, dst)
    }

    /// One at a time: XFS remaps a clone's extents one transaction each,
    /// and clones of different files run no faster side by side (measured:
    /// four 256 MiB files of ~2000 extents, 214 ms one after another, 205
    /// ms four at once).
    fn copy_threads(&self) -> usize {
        1
    }
}

/// Clone `src` into the empty `dst`; copy it when the two cannot share
/// blocks (another filesystem, a file the kernel will not clone).
pub fn clone_or_copy(src: &File, dst: &File) -> io::Result<CopyKind> {
    match rustix::fs::ioctl_ficlone(dst, src) {
        Ok(()) => Ok(CopyKind::Cloned),
        Err(e) => {
            tracing::debug!(error = %e, "FICLONE failed: copying instead");
            copy::copy_bytes(src, dst)?;
            Ok(CopyKind::Written)
        }
    }
}
