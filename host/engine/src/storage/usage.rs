//! What a tree (a snapshot, a VDB's data) really holds on disk, as the
//! filesystem says: every regular file is mapped with `FIEMAP`, each inode
//! once, and its extents are split into
//!
//! * **exclusive**: blocks only this tree references; removing the tree
//!   frees them;
//! * **shared**: blocks another file references too: an extent the
//!   filesystem flags `FIEMAP_EXTENT_SHARED` (a reflink clone, a btrfs
//!   snapshot sharing it with the live data or another snapshot), or any
//!   extent of a file hard-linked from outside the tree (more links than
//!   the tree has names for it: the copy driver's files shared with the
//!   previous snapshot).
//!
//! Lengths are the extents' logical lengths (a compressed btrfs extent
//! counts at its uncompressed size); holes count nothing. Directories and
//! symlinks are not counted. The walk works like every other walk of the
//! store: through directory descriptors, never following a symlink.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::Instant;

use rustix::fd::{AsFd, OwnedFd};
use rustix::fs::{AtFlags, CWD, Dir, FileType, Mode, OFlags};
use rustix::io::Errno;
use serde::{Deserialize, Serialize};

use super::sys;

/// Space of one tree, from the filesystem.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Usage {
    /// Bytes of blocks only this tree references (freed when it goes).
    pub exclusive_bytes: u64,
    /// Bytes of blocks it shares with other files, snapshots or the live
    /// data.
    pub shared_bytes: u64,
    /// Regular files (inodes) mapped.
    pub files: u64,
    /// Extents seen.
    pub extents: u64,
    /// How long the measurement took.
    pub measured_ms: u64,
}

impl Usage {
    /// Exclusive plus shared: every allocated byte the tree references.
    pub fn referenced_bytes(&self) -> u64 {
        self.exclusive_bytes + self.shared_bytes
    }
}

const DIR: OFlags = OFlags::RDONLY
    .union(OFlags::DIRECTORY)
    .union(OFlags::NOFOLLOW)
    .union(OFlags::CLOEXEC);
const FILE: OFlags = OFlags::RDONLY
    .union(OFlags::NOFOLLOW)
    .union(OFlags::NONBLOCK)
    .union(OFlags::NOCTTY)
    .union(OFlags::CLOEXEC);

/// One inode seen in the tree: its links, the names found for it, and
/// its extents' bytes (exclusive by the filesystem's flags, shared).
struct Seen {
    nlink: u64,
    names: u64,
    exclusive: u64,
    shared: u64,
}

/// Measure the tree at `root` (a directory; a missing one measures zero).
pub fn measure(root: &Path) -> io::Result<Usage> {
    let t0 = Instant::now();
    let fd = match rustix::fs::openat(CWD, root, DIR, Mode::empty()) {
        Ok(fd) => fd,
        Err(Errno::NOENT) => return Ok(Usage::default()),
        Err(e) => return Err(e.into()),
    };
    let mut seen: HashMap<(u64, u64), Seen> = HashMap::new();
    let mut extents = 0u64;
    walk(fd, &mut seen, &mut extents)?;
    let mut u = Usage {
        files: seen.len() as u64,
        extents,
        ..Default::default()
    };
    for s in seen.values() {
        if s.names < s.nlink {
            // Hard-linked from outside the tree: nothing of it is freed
            // with the tree.
            u.shared_bytes += s.exclusive + s.shared;
        } else {
            u.exclusive_bytes += s.exclusive;
            u.shared_bytes += s.shared;
        }
    }
    u.measured_ms = t0.elapsed().as_millis() as u64;
    Ok(u)
}

// The C types of `stat` fields differ between targets.
#[allow(clippy::unnecessary_cast)]
fn walk(dir: OwnedFd, seen: &mut HashMap<(u64, u64), Seen>, extents: &mut u64) -> io::Result<()> {
    let mut reader = Dir::new(dir)?;
    let mut names = Vec::new();
    while let Some(e) = reader.read() {
        let e = e?;
        let name = e.file_name().to_bytes();
        if name != b"." && name != b".." {
            names.push(OsStr::from_bytes(name).to_os_string());
        }
    }
    let dir = reader.fd()?;
    for name in names {
        let st = match rustix::fs::statat(dir, &*name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => st,
            Err(Errno::NOENT) => continue,
            Err(e) => return Err(e.into()),
        };
        match FileType::from_raw_mode(st.st_mode) {
            FileType::Directory => match rustix::fs::openat(dir, &*name, DIR, Mode::empty()) {
                Ok(sub) => walk(sub, seen, extents)?,
                Err(Errno::NOENT | Errno::NOTDIR | Errno::LOOP) => {}
                Err(e) => return Err(e.into()),
            },
            FileType::RegularFile => {
                let key = (st.st_dev as u64, st.st_ino as u64);
                if let Some(s) = seen.get_mut(&key) {
                    s.names += 1;
                    continue;
                }
                let f = match rustix::fs::openat(dir, &*name, FILE, Mode::empty()) {
                    Ok(f) => f,
                    Err(Errno::NOENT | Errno::LOOP) => continue,
                    Err(e) => return Err(e.into()),
                };
                let mut s = Seen {
                    nlink: st.st_nlink as u64,
                    names: 1,
                    exclusive: 0,
                    shared: 0,
                };
                match sys::fiemap(f.as_fd(), |e| {
                    *extents += 1;
                    if e.shared() {
                        s.shared += e.length;
                    } else {
                        s.exclusive += e.length;
                    }
                }) {
                    Ok(()) => {}
                    // No FIEMAP here (tmpfs, some network filesystems): the
                    // allocated blocks, unshared.
                    Err(e)
                        if matches!(
                            e.raw_os_error(),
                            Some(libc::EOPNOTSUPP) | Some(libc::ENOTTY)
                        ) =>
                    {
                        s.exclusive = st.st_blocks as u64 * 512;
                    }
                    Err(e) => return Err(e),
                }
                seen.insert(key, s);
            }
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hard_links_from_outside_make_a_file_shared() {
        let d = tempfile::tempdir().unwrap();
        let a = d.path().join("a");
        let b = d.path().join("b");
        std::fs::create_dir_all(&a).unwrap();
        std::fs::create_dir_all(&b).unwrap();
        std::fs::write(a.join("own"), vec![7u8; 64 << 10]).unwrap();
        std::fs::write(a.join("both"), vec![9u8; 32 << 10]).unwrap();
        std::fs::hard_link(a.join("both"), b.join("both")).unwrap();
        std::fs::hard_link(a.join("own"), a.join("own2")).unwrap();
        let u = measure(&a).unwrap();
        assert_eq!(u.files, 2);
        // Filesystems without FIEMAP count allocated blocks instead; both
        // are at least the data written.
        assert!(u.exclusive_bytes >= 64 << 10, "{u:?}");
        assert!(u.shared_bytes >= 32 << 10, "{u:?}");
        assert_eq!(
            measure(&d.path().join("missing")).unwrap(),
            Usage::default()
        );
    }
}
