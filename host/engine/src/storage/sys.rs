//! The Linux calls the drivers use that neither `std` nor `rustix` wrap:
//! `FS_IOC_FIEMAP` (extent maps with their sharing), `FS_IOC_FS[GS]ETXATTR`
//! (XFS's CoW extent size hint) and the btrfs subvolume ioctls. Each is a
//! plain `ioctl` on a descriptor the caller opened; the structures are laid
//! out as in `<linux/fiemap.h>`, `<linux/fs.h>` and `<linux/btrfs.h>` (their
//! sizes are checked at compile time), and the request numbers are the
//! kernel's.

use std::ffi::OsStr;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::io::AsRawFd;

use rustix::fd::AsFd;

/// `f_type` of btrfs.
pub const BTRFS_SUPER_MAGIC: u64 = 0x9123_683E;
/// `f_type` of XFS.
pub const XFS_SUPER_MAGIC: u64 = 0x5846_5342;

/// The inode number of the root directory of every btrfs subvolume.
pub const BTRFS_FIRST_FREE_OBJECTID: u64 = 256;

/// The filesystem type (`statfs.f_type`) of an open file.
// The type of `f_type` differs between targets.
#[allow(clippy::unnecessary_cast)]
pub fn fs_magic(fd: impl AsFd) -> io::Result<u64> {
    let st = rustix::fs::fstatfs(fd)?;
    Ok(st.f_type as u64 & 0xFFFF_FFFF)
}

/// The block size of the filesystem of an open file.
#[allow(clippy::unnecessary_cast)]
pub fn fs_block_size(fd: impl AsFd) -> io::Result<u64> {
    let st = rustix::fs::fstatfs(fd)?;
    Ok(st.f_bsize as u64)
}

/// A name for a filesystem type, as `df -T` would show it.
pub fn fs_name(magic: u64) -> String {
    match magic {
        0xEF53 => "ext4".into(),
        XFS_SUPER_MAGIC => "xfs".into(),
        BTRFS_SUPER_MAGIC => "btrfs".into(),
        0x0102_1994 => "tmpfs".into(),
        0x794C_7630 => "overlayfs".into(),
        0x2FC1_2FC1 => "zfs".into(),
        0x6969 => "nfs".into(),
        0xCA45_1A4E => "bcachefs".into(),
        0xF2F5_2010 => "f2fs".into(),
        0x0102_1997 => "9p".into(),
        0x6573_5546 => "fuse".into(),
        0x7461_636F => "ocfs2".into(),
        0xFF53_4D42 | 0xFE53_4D42 => "cifs".into(),
        m => format!("filesystem type {m:#x}"),
    }
}

fn ioctl_ptr<T>(fd: impl AsFd, request: u32, arg: *mut T) -> io::Result<()> {
    // SAFETY: `fd` is an open descriptor; `arg` points at a live value of
    // the structure the kernel expects for `request` (the callers pass the
    // matching type), which it may read and write for the call's duration.
    let rc = unsafe {
        libc::ioctl(
            fd.as_fd().as_raw_fd(),
            request as libc::Ioctl,
            arg.cast::<libc::c_void>(),
        )
    };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

// ---- FIEMAP ---------------------------------------------------------------

const FS_IOC_FIEMAP: u32 = 0xC020_660B;
/// Flush the file's dirty data before mapping it.
const FIEMAP_FLAG_SYNC: u32 = 0x1;
const FIEMAP_EXTENT_LAST: u32 = 0x1;
/// The extent's blocks are also referenced by another file or snapshot.
pub const FIEMAP_EXTENT_SHARED: u32 = 0x2000;

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct FiemapExtent {
    fe_logical: u64,
    fe_physical: u64,
    fe_length: u64,
    fe_reserved64: [u64; 2],
    fe_flags: u32,
    fe_reserved: [u32; 3],
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct FiemapHeader {
    fm_start: u64,
    fm_length: u64,
    fm_flags: u32,
    fm_mapped_extents: u32,
    fm_extent_count: u32,
    fm_reserved: u32,
}

const EXTENTS_PER_CALL: usize = 256;

#[repr(C)]
struct Fiemap {
    header: FiemapHeader,
    extents: [FiemapExtent; EXTENTS_PER_CALL],
}

const _: () = assert!(std::mem::size_of::<FiemapHeader>() == 32);
const _: () = assert!(std::mem::size_of::<FiemapExtent>() == 56);

/// One extent of a file: its length in bytes and its `FIEMAP_EXTENT_*` flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Extent {
    /// Length of the extent in bytes.
    pub length: u64,
    /// FIEMAP_EXTENT_* flags (SHARED, ...).
    pub flags: u32,
}

impl Extent {
    /// Whether another file or snapshot references the same blocks.
    pub fn shared(&self) -> bool {
        self.flags & FIEMAP_EXTENT_SHARED != 0
    }
}

/// Call `each` with every extent of the open file `fd`, in order.
pub fn fiemap(fd: impl AsFd, mut each: impl FnMut(Extent)) -> io::Result<()> {
    let fd = fd.as_fd();
    let mut map = Box::new(Fiemap {
        header: FiemapHeader::default(),
        extents: [FiemapExtent::default(); EXTENTS_PER_CALL],
    });
    let mut start = 0u64;
    loop {
        map.header = FiemapHeader {
            fm_start: start,
            fm_length: u64::MAX - start,
            fm_flags: FIEMAP_FLAG_SYNC,
            fm_mapped_extents: 0,
            fm_extent_count: EXTENTS_PER_CALL as u32,
            fm_reserved: 0,
        };
        ioctl_ptr(fd, FS_IOC_FIEMAP, &mut *map as *mut Fiemap)?;
        let n = (map.header.fm_mapped_extents as usize).min(EXTENTS_PER_CALL);
        if n == 0 {
            return Ok(());
        }
        let mut last = false;
        for e in &map.extents[..n] {
            each(Extent {
                length: e.fe_length,
                flags: e.fe_flags,
            });
            last |= e.fe_flags & FIEMAP_EXTENT_LAST != 0;
        }
        let end = map.extents[n - 1].fe_logical + map.extents[n - 1].fe_length;
        if last || end <= start {
            return Ok(());
        }
        start = end;
    }
}

// ---- XFS CoW extent size hint ----------------------------------------------

const FS_IOC_FSGETXATTR: u32 = 0x801C_581F;
const FS_IOC_FSSETXATTR: u32 = 0x401C_5820;
const FS_XFLAG_COWEXTSIZE: u32 = 0x0001_0000;

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct FsXattr {
    fsx_xflags: u32,
    fsx_extsize: u32,
    fsx_nextents: u32,
    fsx_projid: u32,
    fsx_cowextsize: u32,
    fsx_pad: [u8; 8],
}

const _: () = assert!(std::mem::size_of::<FsXattr>() == 28);

/// The CoW extent size hint of an open file or directory (`None`: the
/// filesystem default, 32 blocks on XFS).
pub fn cow_extent_size(fd: impl AsFd) -> io::Result<Option<u32>> {
    let mut x = FsXattr::default();
    ioctl_ptr(fd, FS_IOC_FSGETXATTR, &mut x as *mut FsXattr)?;
    Ok((x.fsx_xflags & FS_XFLAG_COWEXTSIZE != 0).then_some(x.fsx_cowextsize))
}

/// Set the CoW extent size hint of an open file or directory to `bytes`
/// (what `xfs_io -c "cowextsize 4k"` does). Files and directories created
/// in a directory later inherit it.
pub fn set_cow_extent_size(fd: impl AsFd, bytes: u32) -> io::Result<()> {
    let fd = fd.as_fd();
    let mut x = FsXattr::default();
    ioctl_ptr(fd, FS_IOC_FSGETXATTR, &mut x as *mut FsXattr)?;
    if x.fsx_xflags & FS_XFLAG_COWEXTSIZE != 0 && x.fsx_cowextsize == bytes {
        return Ok(());
    }
    x.fsx_xflags |= FS_XFLAG_COWEXTSIZE;
    x.fsx_cowextsize = bytes;
    ioctl_ptr(fd, FS_IOC_FSSETXATTR, &mut x as *mut FsXattr)
}

// ---- btrfs subvolumes --------------------------------------------------------

const BTRFS_IOC_SUBVOL_CREATE: u32 = 0x5000_940E;
const BTRFS_IOC_SNAP_DESTROY: u32 = 0x5000_940F;
const BTRFS_IOC_SNAP_CREATE_V2: u32 = 0x5000_9417;
const BTRFS_IOC_SUBVOL_GETFLAGS: u32 = 0x8008_9419;
const BTRFS_IOC_SUBVOL_SETFLAGS: u32 = 0x4008_941A;
const BTRFS_SUBVOL_RDONLY: u64 = 1 << 1;

#[repr(C)]
struct VolArgs {
    fd: i64,
    name: [u8; 4088],
}

#[repr(C)]
struct VolArgsV2 {
    fd: i64,
    transid: u64,
    flags: u64,
    unused: [u64; 4],
    name: [u8; 4040],
}

const _: () = assert!(std::mem::size_of::<VolArgs>() == 4096);
const _: () = assert!(std::mem::size_of::<VolArgsV2>() == 4096);

fn name_bytes<const N: usize>(name: &OsStr) -> io::Result<[u8; N]> {
    let b = name.as_bytes();
    if b.is_empty() || b.len() >= N || b.contains(&b'/') || b.contains(&0) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("`{}` is not a subvolume name", name.to_string_lossy()),
        ));
    }
    let mut out = [0u8; N];
    out[..b.len()].copy_from_slice(b);
    Ok(out)
}

/// Create the subvolume `name` in the directory `parent`.
pub fn btrfs_subvolume_create(parent: impl AsFd, name: &OsStr) -> io::Result<()> {
    let mut args = VolArgs {
        fd: 0,
        name: name_bytes(name)?,
    };
    ioctl_ptr(parent, BTRFS_IOC_SUBVOL_CREATE, &mut args as *mut VolArgs)
}

/// Snapshot the subvolume `source` (an open descriptor of its root
/// directory) as `name` in the directory `parent`; read-only when asked.
/// Constant time: the snapshot shares every block with its source.
pub fn btrfs_snapshot(
    source: impl AsFd,
    parent: impl AsFd,
    name: &OsStr,
    read_only: bool,
) -> io::Result<()> {
    let mut args = VolArgsV2 {
        fd: i64::from(source.as_fd().as_raw_fd()),
        transid: 0,
        flags: if read_only { BTRFS_SUBVOL_RDONLY } else { 0 },
        unused: [0; 4],
        name: name_bytes(name)?,
    };
    ioctl_ptr(
        parent,
        BTRFS_IOC_SNAP_CREATE_V2,
        &mut args as *mut VolArgsV2,
    )
}

/// Delete the subvolume `name` of the directory `parent` (root, or a
/// filesystem mounted with `user_subvol_rm_allowed`).
pub fn btrfs_subvolume_destroy(parent: impl AsFd, name: &OsStr) -> io::Result<()> {
    let mut args = VolArgs {
        fd: 0,
        name: name_bytes(name)?,
    };
    ioctl_ptr(parent, BTRFS_IOC_SNAP_DESTROY, &mut args as *mut VolArgs)
}

/// Whether the subvolume whose root directory is open as `fd` is read-only.
pub fn btrfs_read_only(fd: impl AsFd) -> io::Result<bool> {
    let mut flags = 0u64;
    ioctl_ptr(fd, BTRFS_IOC_SUBVOL_GETFLAGS, &mut flags as *mut u64)?;
    Ok(flags & BTRFS_SUBVOL_RDONLY != 0)
}

/// Make the subvolume whose root directory is open as `fd` writable.
pub fn btrfs_make_writable(fd: impl AsFd) -> io::Result<()> {
    let fd = fd.as_fd();
    let mut flags = 0u64;
    ioctl_ptr(fd, BTRFS_IOC_SUBVOL_GETFLAGS, &mut flags as *mut u64)?;
    flags &= !BTRFS_SUBVOL_RDONLY;
    ioctl_ptr(fd, BTRFS_IOC_SUBVOL_SETFLAGS, &mut flags as *mut u64)
}

/// Whether the open directory `fd` is the root of a btrfs subvolume.
#[allow(clippy::unnecessary_cast)]
pub fn is_subvolume(fd: impl AsFd) -> io::Result<bool> {
    let fd = fd.as_fd();
    let st = rustix::fs::fstat(fd)?;
    Ok(st.st_ino as u64 == BTRFS_FIRST_FREE_OBJECTID
        && rustix::fs::FileType::from_raw_mode(st.st_mode) == rustix::fs::FileType::Directory
        && fs_magic(fd)? == BTRFS_SUPER_MAGIC)
}
