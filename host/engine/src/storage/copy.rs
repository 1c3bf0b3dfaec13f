//! The `copy` driver: what lunabox did before drivers existed, for
//! filesystems that cannot share blocks (ext4, tmpfs, most network
//! filesystems). A snapshot hard-links each file unchanged since the
//! previous snapshot and copies every other one whole, so a database whose
//! large files change a little costs its full size per snapshot; a VDB is a
//! full copy. Linking on it warns so (see [`super::copy_warning`]).

use std::fs::File;
use std::io;

use super::{CopyKind, DriverKind, StorageDriver};

/// Copies files; shares only files unchanged between snapshots (hard links).
#[derive(Debug, Default)]
pub struct CopyDriver;

impl StorageDriver for CopyDriver {
    fn kind(&self) -> DriverKind {
        DriverKind::Copy
    }

    fn copy_file(&self, src: &File, dst: &File) -> io::Result<CopyKind> {
        copy_bytes(src, dst)?;
        Ok(CopyKind::Written)
    }
}

/// Copy the whole content of `src` into the empty `dst` in the kernel
/// (`sendfile`), never as a reflink: `copy_file_range`, which `std::io::copy`
/// uses, clones blocks on a CoW filesystem, and the copy driver promises
/// real copies (it is what `--storage-driver copy` asks for there).
pub fn copy_bytes(src: &File, dst: &File) -> io::Result<u64> {
    let mut offset = 0u64;
    loop {
        match rustix::fs::sendfile(dst, src, Some(&mut offset), 1 << 30) {
            Ok(0) => return Ok(offset),
            Ok(_) => {}
            Err(rustix::io::Errno::INTR) => {}
            // No sendfile between these files: a plain read/write loop.
            Err(rustix::io::Errno::INVAL | rustix::io::Errno::NOSYS) if offset == 0 => {
                let mut from = src;
                let mut to = dst;
                return read_write(&mut from, &mut to);
            }
            Err(e) => return Err(e.into()),
        }
    }
}

fn read_write(from: &mut impl io::Read, to: &mut impl io::Write) -> io::Result<u64> {
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) => return Ok(total),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        to.write_all(&buf[..n])?;
        total += n as u64;
    }
}
