//! Loop-mounted filesystems for the storage driver tests: a sparse image
//! file made with `mkfs.btrfs` or `mkfs.xfs -m reflink=1`, mounted with
//! `mount -o loop` on a fresh directory, unmounted and deleted on drop.
//! Only root can do this: elsewhere [`LoopFs::new`] says SKIPPED (see
//! skip.rs) and returns `None`, and the test returns without checking
//! anything.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// A mounted loop filesystem.
pub struct LoopFs {
    /// The mount point.
    pub mnt: PathBuf,
    /// `btrfs` or `xfs`.
    pub kind: &'static str,
    img: PathBuf,
    _dir: tempfile::TempDir,
}

#[path = "skip.rs"]
pub mod skip;
use skip::skipped;

fn have(tool: &str) -> bool {
    Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool}"))
        .output()
        .is_ok_and(|o| o.status.success())
}

impl LoopFs {
    /// A `kind` filesystem (`btrfs` or `xfs`) of `size_mib` MiB (sparse;
    /// at most 1 GiB), or `None` (said loudly) where it cannot be made.
    pub fn new(test: &str, kind: &'static str, size_mib: u64) -> Option<LoopFs> {
        assert!(size_mib <= 1024, "keep loop images at most 1 GiB");
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            skipped(test, &format!("needs root to loop-mount a {kind} image"));
            return None;
        }
        let mkfs = format!("mkfs.{kind}");
        if !have(&mkfs) {
            skipped(test, &format!("{mkfs} is not installed"));
            return None;
        }
        let dir = tempfile::Builder::new()
            .prefix("lunabox-loopfs-")
            .tempdir()
            .unwrap();
        let img = dir.path().join(format!("{kind}.img"));
        let mnt = dir.path().join("mnt");
        std::fs::create_dir(&mnt).unwrap();
        std::fs::File::create(&img)
            .unwrap()
            .set_len(size_mib << 20)
            .unwrap();
        let mut mk = Command::new(&mkfs);
        match kind {
            "xfs" => mk.args(["-q", "-f", "-m", "reflink=1"]),
            _ => mk.args(["-q", "-f"]),
        };
        let o = mk.arg(&img).output().unwrap();
        if !o.status.success() {
            skipped(
                test,
                &format!("{mkfs} failed: {}", String::from_utf8_lossy(&o.stderr)),
            );
            return None;
        }
        let o = Command::new("mount")
            .args(["-o", "loop"])
            .arg(&img)
            .arg(&mnt)
            .output()
            .unwrap();
        if !o.status.success() {
            skipped(
                test,
                &format!(
                    "cannot loop-mount the {kind} image: {}",
                    String::from_utf8_lossy(&o.stderr)
                ),
            );
            return None;
        }
        Some(LoopFs {
            mnt,
            kind,
            img,
            _dir: dir,
        })
    }

    /// Bytes in use on the filesystem (after flushing it).
    pub fn used(&self) -> u64 {
        let f = std::fs::File::open(&self.mnt).unwrap();
        // SAFETY: `f` is open; `st` is a valid out-parameter.
        unsafe {
            use std::os::unix::io::AsRawFd;
            libc::syncfs(f.as_raw_fd());
            let mut st: libc::statfs = std::mem::zeroed();
            assert_eq!(libc::fstatfs(f.as_raw_fd(), &mut st), 0);
            (st.f_blocks - st.f_bfree) as u64 * st.f_bsize as u64
        }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.mnt.join(rel)
    }
}

impl Drop for LoopFs {
    fn drop(&mut self) {
        let ok = Command::new("umount")
            .arg(&self.mnt)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            let _ = Command::new("umount").arg("-l").arg(&self.mnt).status();
        }
        let _ = std::fs::remove_file(&self.img);
    }
}

/// Write `count` files of `size` random bytes named `f0.dat`... in `dir`.
pub fn write_data_files(dir: &Path, count: usize, size: usize) -> Vec<PathBuf> {
    use rand_like::fill;
    std::fs::create_dir_all(dir).unwrap();
    let mut out = Vec::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    for i in 0..count {
        let p = dir.join(format!("f{i}.dat"));
        let mut f = std::fs::File::create(&p).unwrap();
        let mut left = size;
        while left > 0 {
            let n = left.min(buf.len());
            fill(&mut buf[..n], &mut seed);
            std::io::Write::write_all(&mut f, &buf[..n]).unwrap();
            left -= n;
        }
        f.sync_all().unwrap();
        out.push(p);
    }
    out
}

/// Rewrite `percent`% of the 8 KiB pages of each file in place, at random
/// (as a database does); returns the bytes rewritten.
pub fn rewrite_pages(files: &[PathBuf], percent: f64, seed: u64) -> u64 {
    use std::os::unix::fs::FileExt;
    let mut s = seed | 1;
    let mut page = vec![0u8; 8192];
    let mut total = 0;
    for p in files {
        let f = std::fs::OpenOptions::new().write(true).open(p).unwrap();
        let pages = f.metadata().unwrap().len() / 8192;
        let n = ((pages as f64) * percent / 100.0).ceil() as u64;
        let mut chosen = std::collections::HashSet::new();
        while (chosen.len() as u64) < n {
            chosen.insert(rand_like::next(&mut s) % pages);
        }
        for pg in chosen {
            rand_like::fill(&mut page, &mut s);
            f.write_all_at(&page, pg * 8192).unwrap();
            total += 8192;
        }
        f.sync_all().unwrap();
    }
    total
}

/// A small xorshift generator (the tests need no crate for randomness).
mod rand_like {
    pub fn next(s: &mut u64) -> u64 {
        *s ^= *s << 13;
        *s ^= *s >> 7;
        *s ^= *s << 17;
        *s
    }
    pub fn fill(buf: &mut [u8], s: &mut u64) {
        for chunk in buf.chunks_mut(8) {
            let v = next(s).to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }
}

/// Run `cp -a --reflink=never SRC DST` (a real full copy: GNU cp clones by
/// default on CoW filesystems); its time in ms.
pub fn full_copy(src: &Path, dst: &Path) -> f64 {
    let t = std::time::Instant::now();
    let st = Command::new("cp")
        .args(["-a", "--reflink=never"])
        .arg(src)
        .arg(dst)
        .status()
        .unwrap();
    assert!(st.success(), "cp -a failed");
    // Not flushed inside the timing (the snapshot is): that favours cp.
    t.elapsed().as_secs_f64() * 1000.0
}
