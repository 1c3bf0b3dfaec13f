//! The `btrfs` driver: each dSource's (and VDB's) live data directory is a
//! btrfs subvolume; a snapshot is a read-only snapshot of it, made by the
//! kernel in constant time and sharing every block; a VDB is a writable
//! snapshot of a snapshot. Nothing is walked or copied.
//!
//! The snapshot goes where the other drivers put their tree
//! (`snapshots/.tmp-<id>/files`), so building aside, the manifest, the
//! atomic rename into place and crash recovery are the store's, as for
//! every driver. When the live directory is not a subvolume (a state made
//! before drivers, or a hook that replaced the directory), the store walks
//! it instead and the driver clones each file (btrfs has `FICLONE`).
//!
//! Removing a subvolume is [`remove_subvolume`], used by the store's
//! `force_remove` whenever it meets one.

use std::ffi::OsStr;
use std::fs::File;
use std::io;
use std::path::Path;

use rustix::fd::{AsFd, BorrowedFd};
use rustix::fs::{CWD, Mode, OFlags};

use super::{CopyKind, DriverKind, StorageDriver, reflink, sys};

/// Subvolumes and their snapshots.
#[derive(Debug, Default)]
pub struct BtrfsDriver;

const DIR: OFlags = OFlags::RDONLY
    .union(OFlags::DIRECTORY)
    .union(OFlags::NOFOLLOW)
    .union(OFlags::CLOEXEC);

fn split(path: &Path) -> io::Result<(&Path, &OsStr)> {
    match (path.parent(), path.file_name()) {
        (Some(p), Some(n)) => Ok((
            if p.as_os_str().is_empty() {
                Path::new(".")
            } else {
                p
            },
            n,
        )),
        _ => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("`{}` names no directory", path.display()),
        )),
    }
}

impl StorageDriver for BtrfsDriver {
    fn kind(&self) -> DriverKind {
        DriverKind::Btrfs
    }

    fn create_live(&self, path: &Path) -> io::Result<()> {
        let (parent, name) = split(path)?;
        std::fs::create_dir_all(parent)?;
        let p = rustix::fs::openat(CWD, parent, DIR, Mode::empty())?;
        match rustix::fs::statat(&p, name, rustix::fs::AtFlags::SYMLINK_NOFOLLOW) {
            Ok(_) => {
                let d = rustix::fs::openat(&p, name, DIR, Mode::empty())?;
                if sys::is_subvolume(&d)? {
                    return Ok(());
                }
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    format!("`{}` exists and is not a btrfs subvolume", path.display()),
                ));
            }
            Err(rustix::io::Errno::NOENT) => {}
            Err(e) => return Err(e.into()),
        }
        sys::btrfs_subvolume_create(&p, name)
    }

    fn snapshot_whole(
        &self,
        live: BorrowedFd<'_>,
        parent: BorrowedFd<'_>,
        name: &OsStr,
    ) -> io::Result<bool> {
        if !sys::is_subvolume(live)? {
            return Ok(false);
        }
        sys::btrfs_snapshot(live, parent, name, true)?;
        Ok(true)
    }

    fn clone_whole(&self, tree: &Path, dest: &Path) -> io::Result<bool> {
        let src = rustix::fs::openat(CWD, tree, DIR, Mode::empty())?;
        if !sys::is_subvolume(&src)? {
            return Ok(false);
        }
        let (parent, name) = split(dest)?;
        let p = rustix::fs::openat(CWD, parent, DIR, Mode::empty())?;
        sys::btrfs_snapshot(&src, &p, name, false)?;
        Ok(true)
    }

    fn copy_file(&self, src: &File, dst: &File) -> io::Result<CopyKind> {
        reflink::clone_or_copy(src, dst)
    }
}

/// Remove the subvolume `name` of `parent`. Root (or a filesystem mounted
/// with `user_subvol_rm_allowed`) deletes it in one call; otherwise it is
/// made writable, `empty` empties it, and `rmdir` removes it (allowed on an
/// empty subvolume since Linux 4.18). `empty` also runs when it holds other
/// subvolumes, which the kernel will not delete with it.
pub fn remove_subvolume(
    parent: BorrowedFd<'_>,
    name: &OsStr,
    sub: BorrowedFd<'_>,
    empty: impl FnOnce(BorrowedFd<'_>) -> io::Result<()>,
) -> io::Result<()> {
    match sys::btrfs_subvolume_destroy(parent, name) {
        Ok(()) => return Ok(()),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(()),
        Err(e)
            if matches!(
                e.raw_os_error(),
                Some(libc::EPERM) | Some(libc::EACCES) | Some(libc::ENOTEMPTY) | Some(libc::EBADF)
            ) => {}
        Err(e) => return Err(e),
    }
    if sys::btrfs_read_only(sub)? {
        sys::btrfs_make_writable(sub)?;
    }
    empty(sub.as_fd())?;
    match sys::btrfs_subvolume_destroy(parent, name) {
        Ok(()) => Ok(()),
        Err(_) => match rustix::fs::unlinkat(parent, name, rustix::fs::AtFlags::REMOVEDIR) {
            Ok(()) | Err(rustix::io::Errno::NOENT) => Ok(()),
            Err(e) => Err(e.into()),
        },
    }
}

/// Whether subvolumes can be made, snapshotted and removed in `dir` (a
/// btrfs directory) by this process: tried on a scratch subvolume.
pub fn probe(dir: &Path) -> io::Result<()> {
    let name = format!(".lunabox-probe-{}", std::process::id());
    let snap = format!("{name}.snap");
    let p = rustix::fs::openat(CWD, dir, DIR, Mode::empty())?;
    let remove = |n: &str| -> io::Result<()> {
        match rustix::fs::openat(&p, n, DIR, Mode::empty()) {
            Ok(sub) => remove_subvolume(p.as_fd(), OsStr::new(n), sub.as_fd(), |_| Ok(())),
            Err(rustix::io::Errno::NOENT) => Ok(()),
            Err(e) => Err(e.into()),
        }
    };
    sys::btrfs_subvolume_create(&p, OsStr::new(&name))?;
    let made = (|| {
        let sub = rustix::fs::openat(&p, name.as_str(), DIR, Mode::empty())?;
        sys::btrfs_snapshot(&sub, &p, OsStr::new(&snap), true)
    })();
    let removed = remove(&snap).and(remove(&name));
    made?;
    removed
}
