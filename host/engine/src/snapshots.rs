//! The snapshot store of one dSource: immutable point-in-time copies of its
//! live data, sharing unchanged files with the previous snapshot.
//!
//! Layout under `<state>/storage/<dsource>/`:
//!
//! ```text
//! data/                         live data (what hooks write)
//! snapshots/<id>/files/         the snapshot's tree (read-only)
//! snapshots/<id>/manifest.jsonl every entry's metadata as it was in the live data
//! snapshots/.tmp-<id>/          a snapshot being built
//! ```
//!
//! [`SnapshotStore::build`] walks the live tree. A regular file whose path,
//! size, mtime, ctime, mode and inode equal what the previous snapshot's
//! manifest recorded is hard-linked to the *previous snapshot's* file (never
//! to the live data, which keeps changing); any other file is copied, with a
//! reflink (`FICLONE`) when the filesystem has them. Directories, symlinks,
//! modes and mtimes are kept; hard links inside the live tree stay hard links.
//! The snapshot is built in `.tmp-<id>`, flushed (each copied file and each
//! directory fsynced), and only
//! [`SnapshotStore::commit`] renames it into place; the caller records it in
//! the database after that. A crash leaves a `.tmp-*` directory (or a
//! directory without a database row), which [`SnapshotStore::recover`]
//! deletes.
//!
//! Files and directories in a snapshot are made read-only; the manifest keeps
//! their original modes, which [`SnapshotStore::export`] restores.
//!
//! # Nothing from outside the data directory
//!
//! Nothing outside the data directory can enter a snapshot, whatever changes
//! during the walk: processes on the staging host change the live data while
//! a SnapSync reads it (a directory swapped for a symlink to a host
//! directory, a file for a symlink to a host file), so the walk never
//! resolves a path. It opens the data directory once
//! (`O_DIRECTORY|O_NOFOLLOW`) and works relative to open directory
//! descriptors from there: each entry is inspected with
//! `fstatat(AT_SYMLINK_NOFOLLOW)`; a directory is entered with
//! `openat(O_DIRECTORY|O_NOFOLLOW)` and described by `fstat` of that
//! descriptor (a different directory swapped in is taken as the one opened);
//! a file is opened with `O_NOFOLLOW|O_NONBLOCK|O_NOCTTY`, must be a regular
//! file by `fstat` of the descriptor, and that `fstat` is what the manifest
//! records, so it describes exactly what was copied; a symlink is opened
//! itself (`O_PATH|O_NOFOLLOW`), its target read from that descriptor and
//! recreated as a symlink, never followed. An entry that turns out to be
//! another kind of file once opened was swapped between the listing and the
//! open: it is inspected again, and left out with a warning if it keeps
//! changing. Sockets, FIFOs and devices are left out.
//!
//! The same holds for every other tree that can change under us. The new
//! snapshot is written through descriptors (`mkdirat`, `symlinkat`,
//! `linkat`, `openat(O_CREAT|O_EXCL|O_NOFOLLOW)`, `fchmod`, `futimens`,
//! `utimensat(AT_SYMLINK_NOFOLLOW)`), and the previous snapshot's files are
//! linked through descriptors of its directories. [`SnapshotStore::export`]
//! reads the snapshot and writes the destination the same way, so a symlink
//! planted in the destination during an export cannot redirect a write (or
//! a `chmod`) outside it; [`force_remove`] and [`SnapshotStore::disk_usage`]
//! enter directories with `O_NOFOLLOW` and remove with `unlinkat`, so a
//! symlink swapped in for a directory is removed or measured as the symlink.
//! A path known to lie inside one of our trees (the first name of a hard
//! link, a file to flush) is opened with
//! `openat2(RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS)`, or one component at a
//! time without following where the kernel has no `openat2`.
//!
//! The system calls come from `rustix` (safe wrappers over the plain calls
//! and their flags). `cap-std`'s `Dir` was not used: it follows symlinks that
//! stay inside its root, so a symlink to another directory of the data
//! would be entered and copied as that directory instead of being kept as a
//! symlink, and it offers no way to check that the directory opened is the
//! one listed.

use std::collections::{HashMap, HashSet};
use std::ffi::{OsStr, OsString};
use std::fs::{self, File};
use std::io::{self, BufRead, BufReader, BufWriter, Write};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use rustix::fd::{AsFd, BorrowedFd, OwnedFd};
use rustix::fs::{
    AtFlags, CWD, Dir, FileType, Gid, Mode, OFlags, ResolveFlags, Stat, Timespec, Timestamps, Uid,
};
use rustix::io::Errno;
use serde::{Deserialize, Serialize};

use crate::storage::{self, CopyKind, Driver, DriverKind, StorageDriver, Usage, btrfs, sys};

/// A file whose mtime or ctime is this close to (or after) the start of the
/// previous snapshot may have changed again after it was recorded without
/// its timestamps moving (file times come from a coarse clock, one kernel
/// tick: at most 10 ms); such a file is copied, never linked.
const RACY_SLACK_NS: i64 = 20_000_000;

/// Name of the manifest inside a snapshot directory.
const MANIFEST: &str = "manifest.jsonl";
/// Name of the file tree inside a snapshot directory.
const FILES: &str = "files";
/// Prefix of snapshots being built.
const TMP_PREFIX: &str = ".tmp-";

/// Why a snapshot could not be built, read, exported or removed.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// A file operation failed.
    #[error("snapshot: cannot {action} `{}`: {source}", path.display())]
    Io {
        /// What failed (`read`, `copy`, ...).
        action: String,
        /// The file or directory concerned.
        path: PathBuf,
        #[source]
        /// The OS error.
        source: io::Error,
    },
    #[error(
        "snapshot {id}: its manifest `{}` is damaged ({detail}); remove it with `lunabox snapshot rm`",
        path.display()
    )]
    /// A snapshot's manifest cannot be read.
    Manifest {
        /// The snapshot.
        id: u64,
        /// Its manifest file.
        path: PathBuf,
        /// What is wrong with it.
        detail: String,
    },
    /// The request cannot be carried out (the message says why).
    #[error("{0}")]
    Invalid(String),
}

fn ioe<E: Into<io::Error>>(
    action: impl Into<String>,
    path: &Path,
) -> impl FnOnce(E) -> SnapshotError {
    let action = action.into();
    let path = path.to_path_buf();
    move |source| SnapshotError::Io {
        action,
        path,
        source: source.into(),
    }
}

/// What building a snapshot did.
///
/// `copied_*` count the files taken anew (new or changed since the previous
/// snapshot), however they were taken: `reflinked_*` of them were clones
/// sharing every block, the rest were written, and only `written_bytes`
/// is new space. A whole-tree snapshot (btrfs) takes no file anew and
/// writes nothing. What the snapshot holds on disk, exclusively and shared,
/// is [`SnapshotStats::usage`], measured from the filesystem.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SnapshotStats {
    /// The storage driver that built it (absent on snapshots made before
    /// drivers: those were `copy`, with opportunistic reflinks).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub driver: Option<DriverKind>,
    /// Made in one step by the filesystem (a btrfs subvolume snapshot)
    /// rather than by walking the live data.
    pub whole_tree: bool,
    /// Regular files in the snapshot.
    pub files: u64,
    /// Directories in the snapshot (the top one included).
    pub dirs: u64,
    /// Symbolic links in the snapshot.
    pub symlinks: u64,
    /// Sockets, FIFOs and device nodes in the live data (not snapshotted).
    pub skipped: u64,
    /// Sum of the sizes of all regular files.
    pub bytes: u64,
    /// Files copied (new or changed since the previous snapshot).
    pub copied_files: u64,
    /// Bytes of the copied files: what this snapshot added to storage.
    pub copied_bytes: u64,
    /// Copies that were reflinks (share blocks on a CoW filesystem).
    pub reflinked_files: u64,
    /// Bytes of files cloned (reflinked) from the previous snapshot instead of copied.
    pub reflinked_bytes: u64,
    /// Bytes written as blocks of their own (copies that were not clones):
    /// the space this snapshot added when it was taken.
    pub written_bytes: u64,
    /// Files hard-linked to the previous snapshot (or within this one).
    pub linked_files: u64,
    /// Bytes of the hard-linked files (shared, not added to storage).
    pub linked_bytes: u64,
    /// The snapshot the unchanged files were shared with.
    pub previous: Option<u64>,
    /// How long building took, in milliseconds.
    pub elapsed_ms: u64,
    /// Exclusive and shared space from the filesystem, measured right after
    /// the build (see [`SnapshotStore::usage`] for the space now).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
}

/// A snapshot built aside, not yet committed.
#[derive(Debug)]
pub struct Built {
    /// The id the snapshot gets when committed.
    pub id: u64,
    /// What building it did.
    pub stats: SnapshotStats,
    tmp: PathBuf,
}

/// What an export wrote.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExportStats {
    /// Regular files written (each hard link counts).
    pub files: u64,
    /// Directories created (`dest` included).
    pub dirs: u64,
    /// Symbolic links created.
    pub symlinks: u64,
    /// Sum of the sizes of the files written.
    pub bytes: u64,
    /// How long the export took, in milliseconds.
    pub elapsed_ms: u64,
}

/// What startup recovery removed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Recovered {
    /// `.tmp-*` directories of interrupted builds.
    pub partial: Vec<PathBuf>,
    /// Snapshot directories with no database row (a crash between rename
    /// and commit, or during removal).
    pub orphans: Vec<PathBuf>,
}

/// One line of a manifest: an entry's metadata as it was in the live data.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Entry {
    /// Path relative to the tree root (UTF-8), `""` for the root.
    #[serde(rename = "p", default, skip_serializing_if = "Option::is_none")]
    path: Option<String>,
    /// Path as hex bytes, when it is not UTF-8.
    #[serde(rename = "px", default, skip_serializing_if = "Option::is_none")]
    path_hex: Option<String>,
    /// `f` file, `d` directory, `l` symlink.
    #[serde(rename = "t")]
    kind: char,
    #[serde(rename = "m")]
    mode: u32,
    #[serde(rename = "s", default)]
    size: u64,
    #[serde(rename = "mt")]
    mtime_ns: i64,
    #[serde(rename = "at", default)]
    atime_ns: i64,
    #[serde(rename = "ct", default)]
    ctime_ns: i64,
    #[serde(rename = "i", default)]
    ino: u64,
    #[serde(rename = "dv", default)]
    dev: u64,
    #[serde(rename = "u", default)]
    uid: u32,
    #[serde(rename = "g", default)]
    gid: u32,
    #[serde(rename = "lt", default, skip_serializing_if = "Option::is_none")]
    target: Option<String>,
    #[serde(rename = "ltx", default, skip_serializing_if = "Option::is_none")]
    target_hex: Option<String>,
}

/// First line of a manifest.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Header {
    format: u32,
    id: u64,
    previous: Option<u64>,
    /// Wall clock when the walk started (for the racy-file rule).
    started_ns: i64,
}

fn encode(os: &OsStr) -> (Option<String>, Option<String>) {
    match os.to_str() {
        Some(s) => (Some(s.to_string()), None),
        None => (None, Some(hex::encode(os.as_bytes()))),
    }
}

fn decode(text: &Option<String>, hexed: &Option<String>) -> Option<OsString> {
    match (text, hexed) {
        (Some(s), _) => Some(OsString::from(s)),
        (None, Some(h)) => hex::decode(h).ok().map(OsString::from_vec),
        (None, None) => None,
    }
}

/// Nanoseconds since the epoch of a `stat` time.
fn stat_ns(sec: i64, nsec: i64) -> i64 {
    sec * 1_000_000_000 + nsec
}

/// `(dev, ino)` of a `stat`.
// The C types of `stat` fields differ between targets: the casts are
// no-ops only on some.
#[allow(clippy::unnecessary_cast)]
fn identity(st: &Stat) -> (u64, u64) {
    (st.st_dev as u64, st.st_ino as u64)
}

impl Entry {
    // As for `identity`.
    #[allow(clippy::unnecessary_cast)]
    fn from_stat(rel: &Path, kind: char, st: &Stat) -> Entry {
        let (path, path_hex) = encode(rel.as_os_str());
        Entry {
            path,
            path_hex,
            kind,
            mode: st.st_mode & 0o7777,
            size: if kind == 'f' { st.st_size as u64 } else { 0 },
            mtime_ns: stat_ns(st.st_mtime as i64, st.st_mtime_nsec as i64),
            atime_ns: stat_ns(st.st_atime as i64, st.st_atime_nsec as i64),
            ctime_ns: stat_ns(st.st_ctime as i64, st.st_ctime_nsec as i64),
            ino: identity(st).1,
            dev: identity(st).0,
            uid: st.st_uid,
            gid: st.st_gid,
            target: None,
            target_hex: None,
        }
    }

    fn rel(&self) -> Option<PathBuf> {
        decode(&self.path, &self.path_hex).map(PathBuf::from)
    }

    /// True when the live file `md` is, by every recorded attribute, the file
    /// this entry describes, and the entry was not recorded too close to its
    /// last change to trust.
    fn unchanged(&self, now: &Entry, prev_started_ns: i64) -> bool {
        self.kind == 'f'
            && self.size == now.size
            && self.mtime_ns == now.mtime_ns
            && self.ctime_ns == now.ctime_ns
            && self.mode == now.mode
            && self.ino == now.ino
            && self.dev == now.dev
            && self.mtime_ns.max(self.ctime_ns) < prev_started_ns - RACY_SLACK_NS
    }
}

fn wall_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

/// A directory to list or to change: never a symlink, whatever the name
/// points at by now.
const DIR: OFlags = OFlags::RDONLY
    .union(OFlags::DIRECTORY)
    .union(OFlags::NOFOLLOW)
    .union(OFlags::CLOEXEC);
/// A directory used only as the base of `*at` calls (opening it needs no
/// permission on the directory itself).
const DIR_PATH: OFlags = OFlags::PATH
    .union(OFlags::DIRECTORY)
    .union(OFlags::NOFOLLOW)
    .union(OFlags::CLOEXEC);
/// A file to read: never through a symlink, and never blocking on a FIFO
/// or taking a terminal that was swapped in.
const FILE_READ: OFlags = OFlags::RDONLY
    .union(OFlags::NOFOLLOW)
    .union(OFlags::NONBLOCK)
    .union(OFlags::NOCTTY)
    .union(OFlags::CLOEXEC);
/// A file to write: made here, never an existing one, never through a
/// symlink.
const FILE_NEW: OFlags = OFlags::WRONLY
    .union(OFlags::CREATE)
    .union(OFlags::EXCL)
    .union(OFlags::NOFOLLOW)
    .union(OFlags::CLOEXEC);

/// How many times an entry that is another kind of file once opened than
/// when listed (swapped meanwhile) is looked at before it is left out.
const ATTEMPTS: u32 = 3;

fn mode(bits: u32) -> Mode {
    Mode::from_raw_mode(bits)
}

fn kind(st: &Stat) -> FileType {
    FileType::from_raw_mode(st.st_mode)
}

fn timestamps(atime_ns: i64, mtime_ns: i64) -> Timestamps {
    let at = |ns: i64| Timespec {
        tv_sec: ns.div_euclid(1_000_000_000),
        tv_nsec: ns.rem_euclid(1_000_000_000),
    };
    Timestamps {
        last_access: at(atime_ns),
        last_modification: at(mtime_ns),
    }
}

/// Owner and group for `fchown`/`chownat` (`-1`, "leave it", is no id).
fn owner(uid: u32, gid: u32) -> (Option<Uid>, Option<Gid>) {
    (
        (uid != u32::MAX).then(|| Uid::from_raw(uid)),
        (gid != u32::MAX).then(|| Gid::from_raw(gid)),
    )
}

/// The entries of the open directory `dir` (without `.` and `..`), sorted
/// by name, with the type the listing gave. The returned `Dir` owns `dir`.
fn list(dir: OwnedFd) -> io::Result<(Dir, Vec<(OsString, FileType)>)> {
    let mut reader = Dir::new(dir)?;
    let mut names = Vec::new();
    while let Some(e) = reader.read() {
        let e = e?;
        let name = e.file_name().to_bytes();
        if name != b"." && name != b".." {
            names.push((OsStr::from_bytes(name).to_os_string(), e.file_type()));
        }
    }
    names.sort_by(|a, b| a.0.cmp(&b.0));
    Ok((reader, names))
}

/// Set when the kernel has no `openat2` (or a seccomp filter hides it).
static NO_OPENAT2: AtomicBool = AtomicBool::new(false);

/// Open `rel`, a path inside the directory `base`, without following a
/// symlink anywhere on the way or at its end, and without leaving `base`.
fn open_beneath(base: BorrowedFd<'_>, rel: &Path, flags: OFlags) -> io::Result<OwnedFd> {
    let flags = flags | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let mut names = Vec::new();
    for c in rel.components() {
        match c {
            Component::Normal(n) => names.push(n),
            Component::CurDir => {}
            _ => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("`{}` is not a path inside the tree", rel.display()),
                ));
            }
        }
    }
    let Some((last, dirs)) = names.split_last() else {
        return Ok(rustix::fs::openat(base, c".", flags, Mode::empty())?);
    };
    if !NO_OPENAT2.load(Ordering::Relaxed) {
        let how = ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS;
        for _ in 0..16 {
            match rustix::fs::openat2(base, rel, flags, Mode::empty(), how) {
                // A rename raced the lookup: look again.
                Err(Errno::AGAIN) => continue,
                Err(Errno::NOSYS) => {
                    NO_OPENAT2.store(true, Ordering::Relaxed);
                    break;
                }
                r => return Ok(r?),
            }
        }
    }
    let mut dir: Option<OwnedFd> = None;
    for name in dirs {
        let at = dir.as_ref().map_or(base, |d| d.as_fd());
        dir = Some(rustix::fs::openat(at, *name, DIR_PATH, Mode::empty())?);
    }
    let at = dir.as_ref().map_or(base, |d| d.as_fd());
    Ok(rustix::fs::openat(at, *last, flags, Mode::empty())?)
}

/// Make `name` in `here` (the directory `here_rel` of a tree whose root is
/// `root`) another name of `first`, a file of the same tree.
fn link_from(
    root: BorrowedFd<'_>,
    first: &Path,
    here_rel: &Path,
    here: BorrowedFd<'_>,
    name: &OsStr,
) -> io::Result<()> {
    let (Some(first_dir), Some(first_name)) = (first.parent(), first.file_name()) else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("`{}` names no file", first.display()),
        ));
    };
    if first_dir == here_rel {
        return Ok(rustix::fs::linkat(
            here,
            first_name,
            here,
            name,
            AtFlags::empty(),
        )?);
    }
    let dir = open_beneath(root, first_dir, DIR_PATH)?;
    Ok(rustix::fs::linkat(
        &dir,
        first_name,
        here,
        name,
        AtFlags::empty(),
    )?)
}

/// Copy the open file `src` to the new file `name` in `dir` the way the
/// storage driver copies (a clone, or a copy of the bytes); set `mode_bits`, the times and, when given, the owner.
/// Returns whether the copy was a reflink. (Not flushed: see
/// [`fsync_all`].)
fn copy_into(
    driver: &dyn StorageDriver,
    src: &File,
    dir: BorrowedFd<'_>,
    name: &OsStr,
    mode_bits: u32,
    (atime_ns, mtime_ns): (i64, i64),
    ids: Option<(u32, u32)>,
) -> io::Result<bool> {
    let d = File::from(rustix::fs::openat(dir, name, FILE_NEW, mode(0o600))?);
    let reflinked = fill(driver, src, &d, mode_bits, (atime_ns, mtime_ns))?;
    if let Some((uid, gid)) = ids {
        let (u, g) = owner(uid, gid);
        // As for any restore: an owner that cannot be set is not an error.
        let _ = rustix::fs::fchown(&d, u, g);
    }
    Ok(reflinked)
}

/// Give the new file `d` the content of `src` the way the driver copies,
/// then `mode_bits` and the times. Returns whether it was a reflink.
fn fill(
    driver: &dyn StorageDriver,
    src: &File,
    d: &File,
    mode_bits: u32,
    (atime_ns, mtime_ns): (i64, i64),
) -> io::Result<bool> {
    let reflinked = driver.copy_file(src, d)? == CopyKind::Cloned;
    rustix::fs::fchmod(d, mode(mode_bits))?;
    rustix::fs::futimens(d, &timestamps(atime_ns, mtime_ns))?;
    Ok(reflinked)
}

/// A changed file of a snapshot being built, its entry written and its
/// (empty) copy made, waiting for its content.
struct PendingCopy {
    src: File,
    dst: File,
    mode_bits: u32,
    times: (i64, i64),
    size: u64,
    rel: PathBuf,
}

/// Most copies pending at once (each holds two descriptors).
const COPY_BATCH: usize = 64;

/// Fill every pending copy, as many at a time as the driver runs
/// ([`StorageDriver::copy_threads`]). Returns, in order, whether each was a
/// reflink; the first error (in order) names its file in `live`.
fn run_copies(
    driver: &dyn StorageDriver,
    jobs: &[PendingCopy],
    live: &Path,
) -> Result<Vec<bool>, SnapshotError> {
    in_parallel(jobs, driver.copy_threads(), |j| {
        fill(driver, &j.src, &j.dst, j.mode_bits, j.times).map_err(ioe("copy", &live.join(&j.rel)))
    })
    .ok_or_else(|| SnapshotError::Invalid("a copy thread panicked".into()))?
    .into_iter()
    .collect()
}

/// `f` of every item, from up to `threads` threads at once (each takes the
/// next item no thread has taken), with the results in the items' order;
/// `None` if a thread panicked.
fn in_parallel<T: Sync, R: Send>(
    items: &[T],
    threads: usize,
    f: impl Fn(&T) -> R + Sync,
) -> Option<Vec<R>> {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let threads = threads.min(items.len());
    if threads < 2 {
        return Some(items.iter().map(f).collect());
    }
    let next = AtomicUsize::new(0);
    let parts = std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    let mut mine = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(item) = items.get(i) else { break };
                        mine.push((i, f(item)));
                    }
                    mine
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().ok())
            .collect::<Option<Vec<_>>>()
    })?;
    let mut all: Vec<(usize, R)> = parts.into_iter().flatten().collect();
    all.sort_by_key(|(i, _)| *i);
    Some(all.into_iter().map(|(_, r)| r).collect())
}

/// Remove a tree even where its directories were made read-only. Nothing
/// below `path` is followed: a symlink, even one swapped in for a directory
/// while the tree is removed, is removed itself, never what it points at.
pub fn force_remove(path: &Path) -> io::Result<()> {
    let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("cannot remove `{}`", path.display()),
        ));
    };
    let parent = if parent.as_os_str().is_empty() {
        Path::new(".")
    } else {
        parent
    };
    // Readable, not `O_PATH`: the btrfs ioctl that deletes a subvolume
    // needs a real descriptor of its parent.
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
    let at = match rustix::fs::openat(CWD, parent, flags, Mode::empty()) {
        Ok(fd) => fd,
        Err(Errno::ACCESS) => {
            let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC;
            rustix::fs::openat(CWD, parent, flags, Mode::empty())?
        }
        Err(Errno::NOENT) => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    remove_at(at.as_fd(), name)
}

/// Remove the entry `name` of `dir`, with all it holds if it is a directory.
fn remove_at(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<()> {
    let Some(sub) = open_to_empty(dir, name)? else {
        // Not a directory (a symlink to one is a symlink), or gone.
        return match rustix::fs::unlinkat(dir, name, AtFlags::empty()) {
            Ok(()) | Err(Errno::NOENT) => Ok(()),
            Err(e) => Err(e.into()),
        };
    };
    // A btrfs subvolume (the btrfs driver's live data, snapshots and VDBs)
    // is deleted as one, or emptied first where that is not allowed.
    if sys::is_subvolume(&sub).unwrap_or(false) {
        return btrfs::remove_subvolume(dir, name, sub.as_fd(), empty_dir);
    }
    empty_dir(sub.as_fd())?;
    drop(sub);
    match rustix::fs::unlinkat(dir, name, AtFlags::REMOVEDIR) {
        Ok(()) | Err(Errno::NOENT) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Remove everything in the open directory `sub` (made writable first).
fn empty_dir(sub: BorrowedFd<'_>) -> io::Result<()> {
    rustix::fs::fchmod(sub, mode(0o700))?;
    let (reader, children) = list(rustix::fs::openat(sub, c".", DIR, Mode::empty())?)?;
    let sub = reader.fd()?;
    for (child, ty) in children {
        if matches!(ty, FileType::Directory | FileType::Unknown) {
            remove_at(sub, &child)?;
            continue;
        }
        match rustix::fs::unlinkat(sub, &*child, AtFlags::empty()) {
            Ok(()) | Err(Errno::NOENT) => {}
            // A directory by now.
            Err(Errno::ISDIR) => remove_at(sub, &child)?,
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// The directory `name` of `dir`, opened to be emptied; `None` when it is
/// not a directory (or is gone).
fn open_to_empty(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<Option<OwnedFd>> {
    match rustix::fs::openat(dir, name, DIR, Mode::empty()) {
        Ok(fd) => Ok(Some(fd)),
        Err(Errno::NOTDIR | Errno::LOOP | Errno::NOENT) => Ok(None),
        Err(Errno::ACCESS) => {
            // A directory we may not list (a copy of one without read
            // permission). `fchmodat` would follow a symlink swapped in, so
            // the mode is changed through a descriptor of exactly the
            // directory opened: its /proc/self/fd link.
            use std::os::unix::fs::PermissionsExt;
            use std::os::unix::io::AsRawFd;
            let fd = rustix::fs::openat(dir, name, DIR_PATH, Mode::empty())?;
            let magic = PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()));
            fs::set_permissions(&magic, fs::Permissions::from_mode(0o700))?;
            let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
            Ok(Some(rustix::fs::openat(CWD, &magic, flags, Mode::empty())?))
        }
        Err(e) => Err(e.into()),
    }
}

/// Fsync every path (files and directories, relative to `base`, which is
/// `shown` in messages) from a few threads at once: concurrent fsyncs share
/// journal commits, so a hundred of them cost about as much as a few.
fn fsync_all(base: BorrowedFd<'_>, rels: &[PathBuf], shown: &Path) -> Result<(), SnapshotError> {
    const THREADS: usize = 8;
    in_parallel(rels, THREADS, |rel| {
        open_beneath(base, rel, FILE_READ)
            .and_then(|fd| Ok(rustix::fs::fsync(&fd)?))
            .map_err(ioe("flush", &shown.join(rel)))
    })
    .ok_or_else(|| SnapshotError::Invalid("an fsync thread panicked".into()))?
    .into_iter()
    .collect()
}

/// Fsync a directory (makes a rename in it durable).
fn fsync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// The previous snapshot, as the builder consults it.
struct Previous {
    started_ns: i64,
    entries: HashMap<PathBuf, Entry>,
}

/// One directory of the walk: the live one, the one being written, and the
/// previous snapshot's (when it has one).
#[derive(Clone, Copy)]
struct Level<'f> {
    src: BorrowedFd<'f>,
    dst: BorrowedFd<'f>,
    prev: Option<BorrowedFd<'f>>,
}

/// What became of one entry of the live data.
#[derive(Debug, PartialEq)]
enum Step {
    /// Snapshotted, left out, or gone.
    Done,
    /// Once opened it was another kind of file than listed: look again.
    Changed,
}

/// Walks the live tree and writes the new snapshot.
struct Builder<'a> {
    /// The live data directory (for messages: it is read through `Level`s).
    live: &'a Path,
    /// `.tmp-<id>/files` (for messages).
    out: PathBuf,
    /// `.tmp-<id>/files`, for links to a file written earlier.
    out_root: OwnedFd,
    prev: Option<Previous>,
    manifest: BufWriter<File>,
    manifest_path: PathBuf,
    /// (dev, ino) of live files with several links -> their path in `out`.
    inner_links: HashMap<(u64, u64), PathBuf>,
    /// Copied files and created directories, relative to `.tmp-<id>`, to
    /// fsync before commit.
    to_flush: Vec<PathBuf>,
    /// Copies made empty, to fill ([`Builder::flush_copies`]).
    pending: Vec<PendingCopy>,
    stats: SnapshotStats,
    driver: &'a dyn StorageDriver,
}

impl Builder<'_> {
    fn write_entry(&mut self, e: &Entry) -> Result<(), SnapshotError> {
        let mp = self.manifest_path.clone();
        serde_json::to_writer(&mut self.manifest, e)
            .map_err(|err| io::Error::other(err.to_string()))
            .and_then(|_| self.manifest.write_all(b"\n"))
            .map_err(ioe("write the manifest", &mp))
    }

    /// Snapshot the directory `rel`: `src` is it in the live data (open,
    /// described by `st`), `dst` its copy (new and empty), `prev` the
    /// previous snapshot's, if that has one.
    fn dir(
        &mut self,
        rel: &Path,
        src: OwnedFd,
        dst: OwnedFd,
        prev: Option<OwnedFd>,
        st: &Stat,
    ) -> Result<(), SnapshotError> {
        self.write_entry(&Entry::from_stat(rel, 'd', st))?;
        self.stats.dirs += 1;
        let src_dir = self.live.join(rel);
        let (reader, children) = list(src).map_err(ioe("read the directory", &src_dir))?;
        let level = Level {
            src: reader.fd().map_err(ioe("read the directory", &src_dir))?,
            dst: dst.as_fd(),
            prev: prev.as_ref().map(|p| p.as_fd()),
        };
        for (name, _) in children {
            let child_rel = rel.join(&name);
            let mut attempts = 1;
            while self.entry(&child_rel, &name, level)? == Step::Changed {
                if attempts == ATTEMPTS {
                    tracing::warn!(
                        path = %self.live.join(&child_rel).display(),
                        "kept changing kind while it was read (swapped for a symlink or another file): left out of the snapshot"
                    );
                    break;
                }
                attempts += 1;
            }
        }
        // Post-order, once it is full: its own mode and times; flushed
        // with the copied files at the end of the build.
        self.to_flush.push(Path::new(FILES).join(rel));
        let dst_dir = self.out.join(rel);
        let e = Entry::from_stat(rel, 'd', st);
        rustix::fs::fchmod(&dst, mode(e.mode & !0o222))
            .map_err(ioe("set the mode of", &dst_dir))?;
        rustix::fs::futimens(&dst, &timestamps(e.atime_ns, e.mtime_ns))
            .map_err(ioe("set the times of", &dst_dir))?;
        Ok(())
    }

    /// Snapshot the entry `name` of the live directory `at.src` (`rel` in
    /// the tree).
    fn entry(&mut self, rel: &Path, name: &OsStr, at: Level<'_>) -> Result<Step, SnapshotError> {
        let st = match rustix::fs::statat(at.src, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => st,
            // Removed while we walked: it is not part of this snapshot.
            Err(Errno::NOENT) => return Ok(Step::Done),
            Err(e) => return Err(ioe("inspect", &self.live.join(rel))(e)),
        };
        match kind(&st) {
            FileType::Directory => self.subdir(rel, name, at, &st),
            FileType::Symlink => self.symlink(rel, name, at),
            FileType::RegularFile => self.file(rel, name, at, &st),
            _ => {
                self.stats.skipped += 1;
                tracing::warn!(path = %self.live.join(rel).display(), "not a file, directory or symlink: left out of the snapshot");
                Ok(Step::Done)
            }
        }
    }

    /// The directory `name`, listed as `listed`.
    fn subdir(
        &mut self,
        rel: &Path,
        name: &OsStr,
        at: Level<'_>,
        listed: &Stat,
    ) -> Result<Step, SnapshotError> {
        let src = match rustix::fs::openat(at.src, name, DIR, Mode::empty()) {
            Ok(fd) => fd,
            Err(Errno::NOENT) => return Ok(Step::Done),
            // A symlink or a file by now: never followed.
            Err(Errno::NOTDIR | Errno::LOOP) => return Ok(Step::Changed),
            Err(e) => return Err(ioe("read the directory", &self.live.join(rel))(e)),
        };
        // What is snapshotted is the directory opened.
        let st = rustix::fs::fstat(&src).map_err(ioe("inspect", &self.live.join(rel)))?;
        if identity(&st) != identity(listed) {
            tracing::debug!(
                path = %self.live.join(rel).display(),
                "replaced by another directory while it was read: the one opened is snapshotted"
            );
        }
        let out = self.out.join(rel);
        rustix::fs::mkdirat(at.dst, name, mode(0o700))
            .map_err(ioe("create the directory", &out))?;
        let dst = rustix::fs::openat(at.dst, name, DIR, Mode::empty())
            .map_err(ioe("create the directory", &out))?;
        let prev = at
            .prev
            .and_then(|p| rustix::fs::openat(p, name, DIR_PATH, Mode::empty()).ok());
        self.dir(rel, src, dst, prev, &st)?;
        Ok(Step::Done)
    }

    /// The symlink `name`: kept as a symlink, never followed.
    fn symlink(&mut self, rel: &Path, name: &OsStr, at: Level<'_>) -> Result<Step, SnapshotError> {
        // The link itself, so that its metadata and its target are of one
        // and the same link.
        let flags = OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let link = match rustix::fs::openat(at.src, name, flags, Mode::empty()) {
            Ok(fd) => fd,
            Err(Errno::NOENT) => return Ok(Step::Done),
            Err(e) => return Err(ioe("read the symlink", &self.live.join(rel))(e)),
        };
        let st = rustix::fs::fstat(&link).map_err(ioe("read the symlink", &self.live.join(rel)))?;
        if kind(&st) != FileType::Symlink {
            return Ok(Step::Changed);
        }
        let target = rustix::fs::readlinkat(&link, c"", Vec::new())
            .map_err(ioe("read the symlink", &self.live.join(rel)))?;
        let target = OsString::from_vec(target.into_bytes());
        let out = self.out.join(rel);
        rustix::fs::symlinkat(&*target, at.dst, name).map_err(ioe("create the symlink", &out))?;
        let mut e = Entry::from_stat(rel, 'l', &st);
        (e.target, e.target_hex) = encode(&target);
        let times = timestamps(e.atime_ns, e.mtime_ns);
        rustix::fs::utimensat(at.dst, name, &times, AtFlags::SYMLINK_NOFOLLOW)
            .map_err(ioe("set the times of", &out))?;
        self.write_entry(&e)?;
        self.stats.symlinks += 1;
        Ok(Step::Done)
    }

    /// The regular file `name`, listed as `listed`.
    fn file(
        &mut self,
        rel: &Path,
        name: &OsStr,
        at: Level<'_>,
        listed: &Stat,
    ) -> Result<Step, SnapshotError> {
        let e = Entry::from_stat(rel, 'f', listed);
        let key = (e.dev, e.ino);
        // A second name of a file already in this snapshot.
        if listed.st_nlink > 1
            && let Some(first) = self.inner_links.get(&key)
            && link_from(self.out_root.as_fd(), first, parent_of(rel), at.dst, name).is_ok()
        {
            return self.linked(&e);
        }
        if let Some(prev) = &self.prev
            && let Some(prev_dir) = at.prev
            && let Some(pe) = prev.entries.get(rel)
            && pe.unchanged(&e, prev.started_ns)
            // EMLINK (too many links) or a damaged previous snapshot: fall
            // back to a copy.
            && rustix::fs::linkat(prev_dir, name, at.dst, name, AtFlags::empty()).is_ok()
        {
            if listed.st_nlink > 1 {
                self.inner_links
                    .entry(key)
                    .or_insert_with(|| rel.to_path_buf());
            }
            return self.linked(&e);
        }
        // What is copied is what this descriptor reads, whatever the name
        // points at by now; the manifest describes that.
        let src = match rustix::fs::openat(at.src, name, FILE_READ, Mode::empty()) {
            Ok(fd) => File::from(fd),
            Err(Errno::NOENT) => return Ok(Step::Done),
            // A symlink by now: never followed.
            Err(Errno::LOOP) => return Ok(Step::Changed),
            Err(e) => return Err(ioe("copy", &self.live.join(rel))(e)),
        };
        let st = rustix::fs::fstat(&src).map_err(ioe("copy", &self.live.join(rel)))?;
        if kind(&st) != FileType::RegularFile {
            return Ok(Step::Changed);
        }
        let e = Entry::from_stat(rel, 'f', &st);
        self.driver.prepare_live_file(&src);
        // The copy is made empty now (so that later names can link to it)
        // and filled with others, a few at a time (`flush_copies`).
        let dst = rustix::fs::openat(at.dst, name, FILE_NEW, mode(0o600))
            .map_err(ioe("copy", &self.live.join(rel)))?;
        self.pending.push(PendingCopy {
            src,
            dst: File::from(dst),
            mode_bits: e.mode & !0o222,
            times: (e.atime_ns, e.mtime_ns),
            size: e.size,
            rel: rel.to_path_buf(),
        });
        if st.st_nlink > 1 {
            self.inner_links
                .entry((e.dev, e.ino))
                .or_insert_with(|| rel.to_path_buf());
        }
        self.to_flush.push(Path::new(FILES).join(rel));
        self.stats.files += 1;
        self.stats.bytes += e.size;
        self.stats.copied_files += 1;
        self.stats.copied_bytes += e.size;
        self.write_entry(&e)?;
        if self.pending.len() >= COPY_BATCH {
            self.flush_copies()?;
        }
        Ok(Step::Done)
    }

    /// Fill the pending copies.
    fn flush_copies(&mut self) -> Result<(), SnapshotError> {
        let jobs = std::mem::take(&mut self.pending);
        let reflinked = run_copies(self.driver, &jobs, self.live)?;
        for (j, r) in jobs.iter().zip(reflinked) {
            if r {
                self.stats.reflinked_files += 1;
                self.stats.reflinked_bytes += j.size;
            } else {
                self.stats.written_bytes += j.size;
            }
        }
        Ok(())
    }

    /// A file that became a hard link (to the previous snapshot, or within
    /// this one).
    fn linked(&mut self, e: &Entry) -> Result<Step, SnapshotError> {
        self.stats.files += 1;
        self.stats.bytes += e.size;
        self.stats.linked_files += 1;
        self.stats.linked_bytes += e.size;
        self.write_entry(e)?;
        Ok(Step::Done)
    }
}

/// The directory holding `rel` (`""` at the top).
fn parent_of(rel: &Path) -> &Path {
    rel.parent().unwrap_or(Path::new(""))
}

/// The directories of a tree on the way to the entry at hand, each opened
/// from its parent without following a symlink. Entries come in walk order
/// (a directory before what it holds), so the parent an entry needs is
/// almost always open already.
struct DirStack {
    root: OwnedFd,
    open: Vec<(PathBuf, OwnedFd)>,
}

impl DirStack {
    fn new(root: OwnedFd) -> DirStack {
        DirStack {
            root,
            open: Vec::new(),
        }
    }

    fn top(&self) -> BorrowedFd<'_> {
        self.open
            .last()
            .map_or(self.root.as_fd(), |(_, fd)| fd.as_fd())
    }

    /// The directory `rel` of the tree.
    fn get(&mut self, rel: &Path) -> io::Result<BorrowedFd<'_>> {
        while self.open.last().is_some_and(|(p, _)| !rel.starts_with(p)) {
            self.open.pop();
        }
        let have = self.open.last().map_or(0, |(p, _)| p.components().count());
        for c in rel.components().skip(have) {
            let Component::Normal(name) = c else {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("`{}` is not a path inside the tree", rel.display()),
                ));
            };
            let fd = rustix::fs::openat(self.top(), name, DIR_PATH, Mode::empty())?;
            let path = self
                .open
                .last()
                .map_or_else(PathBuf::new, |(p, _)| p.clone())
                .join(name);
            self.open.push((path, fd));
        }
        Ok(self.top())
    }

    /// `fd` is the directory `rel`, just made in the directory last got.
    fn push(&mut self, rel: PathBuf, fd: OwnedFd) {
        self.open.push((rel, fd));
    }
}

/// Open `dest` for an export: a new directory, or an empty one; never
/// through a symlink.
fn open_dest(dest: &Path) -> Result<OwnedFd, SnapshotError> {
    let fd = match rustix::fs::openat(CWD, dest, DIR, Mode::empty()) {
        Ok(fd) => fd,
        Err(Errno::NOENT) => {
            fs::create_dir(dest).map_err(ioe("create", dest))?;
            rustix::fs::openat(CWD, dest, DIR, Mode::empty()).map_err(ioe("create", dest))?
        }
        Err(Errno::NOTDIR | Errno::LOOP)
            if fs::symlink_metadata(dest).is_ok_and(|m| m.file_type().is_symlink()) =>
        {
            return Err(SnapshotError::Invalid(format!(
                "`{}` is a symlink (not followed); export into a new or empty directory",
                dest.display()
            )));
        }
        Err(e) => return Err(ioe("read", dest)(e)),
    };
    let dup = fd.try_clone().map_err(ioe("read", dest))?;
    let (_, names) = list(dup).map_err(ioe("read", dest))?;
    if !names.is_empty() {
        return Err(SnapshotError::Invalid(format!(
            "`{}` is not empty; export into a new or empty directory",
            dest.display()
        )));
    }
    Ok(fd)
}

/// Lines of a manifest.
mod erased {
    use std::io::{self, Write};

    /// Something written as one JSON line.
    pub trait Line {
        fn write(&self, w: &mut dyn Write) -> io::Result<()>;
    }

    impl<T: serde::Serialize> Line for T {
        fn write(&self, w: &mut dyn Write) -> io::Result<()> {
            serde_json::to_writer(&mut *w, self).map_err(|e| io::Error::other(e.to_string()))?;
            w.write_all(b"\n")
        }
    }
}

/// Why describing a tree stopped.
enum DescribeError {
    Io(PathBuf, io::Error),
    Snapshot(SnapshotError),
}

/// Describe the tree `dir` (at `rel`, described by `st`), which nothing
/// changes (a read-only snapshot), entry by entry into `out`, counting into
/// `stats`; through descriptors, following no symlink. Sockets, FIFOs and
/// devices are left out, as the walk leaves them out.
fn describe(
    rel: &Path,
    dir: OwnedFd,
    st: &Stat,
    out: &mut dyn FnMut(&Entry) -> Result<(), SnapshotError>,
    stats: &mut SnapshotStats,
) -> Result<(), DescribeError> {
    let io = |rel: &Path| {
        let rel = rel.to_path_buf();
        move |e: Errno| DescribeError::Io(rel, e.into())
    };
    out(&Entry::from_stat(rel, 'd', st)).map_err(DescribeError::Snapshot)?;
    stats.dirs += 1;
    let (reader, children) = list(dir).map_err(|e| DescribeError::Io(rel.to_path_buf(), e))?;
    let fd = reader
        .fd()
        .map_err(|e| DescribeError::Io(rel.to_path_buf(), e.into()))?;
    for (name, _) in children {
        let child = rel.join(&name);
        let st = rustix::fs::statat(fd, &*name, AtFlags::SYMLINK_NOFOLLOW).map_err(io(&child))?;
        match kind(&st) {
            FileType::Directory => {
                let sub = rustix::fs::openat(fd, &*name, DIR, Mode::empty()).map_err(io(&child))?;
                let sst = rustix::fs::fstat(&sub).map_err(io(&child))?;
                describe(&child, sub, &sst, out, stats)?;
            }
            FileType::Symlink => {
                let target = rustix::fs::readlinkat(fd, &*name, Vec::new()).map_err(io(&child))?;
                let target = OsString::from_vec(target.into_bytes());
                let mut e = Entry::from_stat(&child, 'l', &st);
                (e.target, e.target_hex) = encode(&target);
                out(&e).map_err(DescribeError::Snapshot)?;
                stats.symlinks += 1;
            }
            FileType::RegularFile => {
                let e = Entry::from_stat(&child, 'f', &st);
                stats.files += 1;
                stats.bytes += e.size;
                out(&e).map_err(DescribeError::Snapshot)?;
            }
            _ => stats.skipped += 1,
        }
    }
    Ok(())
}

/// The snapshots of one dSource (or VDB), made with one storage driver.
#[derive(Debug, Clone)]
pub struct SnapshotStore {
    root: PathBuf,
    driver: Driver,
}

impl SnapshotStore {
    /// The store rooted at a dSource's storage directory, with the `copy`
    /// driver.
    pub fn new(dsource_storage: &Path) -> SnapshotStore {
        SnapshotStore::with_driver(dsource_storage, storage::driver(DriverKind::Copy))
    }

    /// The store rooted at a dSource's storage directory, with `driver`.
    pub fn with_driver(dsource_storage: &Path, driver: Driver) -> SnapshotStore {
        SnapshotStore {
            root: dsource_storage.to_path_buf(),
            driver,
        }
    }

    /// The storage driver.
    pub fn driver(&self) -> DriverKind {
        self.driver.kind()
    }

    /// The live data directory.
    pub fn live_dir(&self) -> PathBuf {
        self.root.join("data")
    }
    /// Parent of all snapshot directories.
    pub fn snapshots_dir(&self) -> PathBuf {
        self.root.join("snapshots")
    }
    /// A committed snapshot's directory.
    pub fn snapshot_dir(&self, id: u64) -> PathBuf {
        self.snapshots_dir().join(id.to_string())
    }
    /// A committed snapshot's file tree.
    pub fn files_dir(&self, id: u64) -> PathBuf {
        self.snapshot_dir(id).join(FILES)
    }
    fn tmp_dir(&self, id: u64) -> PathBuf {
        self.snapshots_dir().join(format!("{TMP_PREFIX}{id}"))
    }

    /// Create the live data (as the driver makes it: a btrfs subvolume)
    /// and snapshot directories.
    pub fn create(&self) -> Result<(), SnapshotError> {
        fs::create_dir_all(&self.root).map_err(ioe("create", &self.root))?;
        if let Err(e) = self.driver.prepare_dir(&self.root) {
            tracing::debug!(error = %e, "cannot prepare the storage directory");
        }
        let live = self.live_dir();
        self.driver
            .create_live(&live)
            .map_err(ioe("create the live data directory", &live))?;
        let d = self.snapshots_dir();
        fs::create_dir_all(&d).map_err(ioe("create", &d))?;
        Ok(())
    }

    /// Build snapshot `id` of the live data aside, sharing unchanged files
    /// with snapshot `previous`, and flush it to disk. Nothing is visible
    /// until [`commit`](Self::commit).
    pub fn build(&self, id: u64, previous: Option<u64>) -> Result<Built, SnapshotError> {
        let started = Instant::now();
        let started_ns = wall_ns();
        let live = self.live_dir();
        // Opened once; everything below it is read relative to descriptors.
        let live_fd = match rustix::fs::openat(CWD, &live, DIR, Mode::empty()) {
            Ok(fd) => fd,
            Err(Errno::NOTDIR | Errno::LOOP) => {
                return Err(SnapshotError::Invalid(format!(
                    "the live data `{}` is not a directory (a symlink there is not followed)",
                    live.display()
                )));
            }
            Err(e) => return Err(ioe("read the live data directory", &live)(e)),
        };
        let live_md =
            rustix::fs::fstat(&live_fd).map_err(ioe("read the live data directory", &live))?;
        fs::create_dir_all(self.snapshots_dir()).map_err(ioe("create", &self.snapshots_dir()))?;
        let tmp = self.tmp_dir(id);
        force_remove(&tmp).map_err(ioe("remove the leftover", &tmp))?;
        if self.snapshot_dir(id).exists() {
            return Err(SnapshotError::Invalid(format!(
                "snapshot {id} already exists at `{}`",
                self.snapshot_dir(id).display()
            )));
        }
        let out = tmp.join(FILES);
        fs::create_dir_all(&tmp).map_err(ioe("create", &tmp))?;
        let tmp_fd =
            rustix::fs::openat(CWD, &tmp, DIR, Mode::empty()).map_err(ioe("open", &tmp))?;
        // The whole tree in one step when the driver can (btrfs).
        if self
            .driver
            .snapshot_whole(live_fd.as_fd(), tmp_fd.as_fd(), OsStr::new(FILES))
            .map_err(ioe("snapshot the live data to", &out))?
        {
            return self.describe_whole(id, previous, started, started_ns, tmp, tmp_fd);
        }
        rustix::fs::mkdirat(&tmp_fd, FILES, mode(0o755)).map_err(ioe("create", &out))?;
        let out_fd =
            rustix::fs::openat(&tmp_fd, FILES, DIR, Mode::empty()).map_err(ioe("open", &out))?;
        let out_root = out_fd.try_clone().map_err(ioe("open", &out))?;
        // Without the previous tree (damaged), every file is copied.
        let (prev, prev_fd) = match previous {
            Some(p) => (
                Some(self.read_previous(p)?),
                rustix::fs::openat(CWD, self.files_dir(p), DIR_PATH, Mode::empty()).ok(),
            ),
            None => (None, None),
        };
        let manifest_path = tmp.join(MANIFEST);
        let mf = rustix::fs::openat(&tmp_fd, MANIFEST, FILE_NEW, mode(0o644))
            .map_err(ioe("create", &manifest_path))?;
        let mut b = Builder {
            live: &live,
            out,
            out_root,
            prev,
            manifest: BufWriter::new(File::from(mf)),
            manifest_path: manifest_path.clone(),
            inner_links: HashMap::new(),
            to_flush: Vec::new(),
            pending: Vec::new(),
            stats: SnapshotStats {
                driver: Some(self.driver.kind()),
                previous,
                ..Default::default()
            },
            driver: &*self.driver,
        };
        let header = Header {
            format: 1,
            id,
            previous,
            started_ns,
        };
        serde_json::to_writer(&mut b.manifest, &header)
            .map_err(|e| io::Error::other(e.to_string()))
            .and_then(|_| b.manifest.write_all(b"\n"))
            .map_err(ioe("write the manifest", &manifest_path))?;
        b.dir(Path::new(""), live_fd, out_fd, prev_fd, &live_md)?;
        b.flush_copies()?;
        let mf = b
            .manifest
            .into_inner()
            .map_err(|e| ioe("write the manifest", &manifest_path)(e.into_error()))?;
        let mut to_flush = b.to_flush;
        to_flush.push(PathBuf::from(MANIFEST));
        fsync_all(tmp_fd.as_fd(), &to_flush, &tmp)?;
        let mut stats = b.stats;
        rustix::fs::fchmod(&mf, mode(0o444)).map_err(ioe("set the mode of", &manifest_path))?;
        drop(mf);
        rustix::fs::fsync(&tmp_fd).map_err(ioe("flush", &tmp))?;
        stats.elapsed_ms = started.elapsed().as_millis() as u64;
        Ok(Built { id, stats, tmp })
    }

    /// The rest of [`Self::build`] when the driver snapshotted the whole
    /// live tree as `tmp/files` (read-only from birth): describe it in the
    /// manifest, so that exports and the next snapshot read it like any
    /// other, and make it all durable.
    fn describe_whole(
        &self,
        id: u64,
        previous: Option<u64>,
        started: Instant,
        started_ns: i64,
        tmp: PathBuf,
        tmp_fd: OwnedFd,
    ) -> Result<Built, SnapshotError> {
        let out = tmp.join(FILES);
        let manifest_path = tmp.join(MANIFEST);
        let mf = rustix::fs::openat(&tmp_fd, MANIFEST, FILE_NEW, mode(0o644))
            .map_err(ioe("create", &manifest_path))?;
        let mut w = BufWriter::new(File::from(mf));
        let mut stats = SnapshotStats {
            driver: Some(self.driver.kind()),
            whole_tree: true,
            previous,
            ..Default::default()
        };
        let line = |w: &mut BufWriter<File>, v: &dyn erased::Line| {
            v.write(w)
                .map_err(ioe("write the manifest", &manifest_path))
        };
        line(
            &mut w,
            &Header {
                format: 1,
                id,
                previous,
                started_ns,
            },
        )?;
        let root = rustix::fs::openat(&tmp_fd, FILES, DIR, Mode::empty())
            .map_err(ioe("read the snapshot", &out))?;
        let st = rustix::fs::fstat(&root).map_err(ioe("read the snapshot", &out))?;
        describe(
            Path::new(""),
            root,
            &st,
            &mut |e: &Entry| line(&mut w, e),
            &mut stats,
        )
        .map_err(|e| match e {
            DescribeError::Io(rel, err) => ioe("read the snapshot", &out.join(rel))(err),
            DescribeError::Snapshot(e) => e,
        })?;
        let mf = w
            .into_inner()
            .map_err(|e| ioe("write the manifest", &manifest_path)(e.into_error()))?;
        rustix::fs::fsync(&mf).map_err(ioe("flush", &manifest_path))?;
        rustix::fs::fchmod(&mf, mode(0o444)).map_err(ioe("set the mode of", &manifest_path))?;
        drop(mf);
        // The snapshot itself is durable once its transaction commits.
        rustix::fs::syncfs(&tmp_fd).map_err(ioe("flush", &tmp))?;
        rustix::fs::fsync(&tmp_fd).map_err(ioe("flush", &tmp))?;
        stats.elapsed_ms = started.elapsed().as_millis() as u64;
        Ok(Built { id, stats, tmp })
    }

    /// The file tree of a built, not yet committed snapshot.
    pub fn built_tree(&self, built: &Built) -> PathBuf {
        built.tmp.join(FILES)
    }

    /// What snapshot `id` holds on disk now, exclusively and shared with
    /// other snapshots, VDBs or the live data, from the filesystem.
    pub fn usage(&self, id: u64) -> Result<Usage, SnapshotError> {
        let d = self.snapshot_dir(id);
        storage::measure(&d).map_err(ioe("measure", &d))
    }

    /// What the live data holds on disk now, exclusively and shared.
    pub fn live_usage(&self) -> Result<Usage, SnapshotError> {
        let d = self.live_dir();
        storage::measure(&d).map_err(ioe("measure", &d))
    }

    /// Make `dest` (which must not exist; its parent must) a writable,
    /// independent copy of snapshot `id`: in one step when the driver can
    /// (a btrfs writable snapshot), else an export (files cloned on the
    /// reflink driver, copied on the copy driver).
    pub fn clone_to(&self, id: u64, dest: &Path) -> Result<ExportStats, SnapshotError> {
        let started = Instant::now();
        let files = self.files_dir(id);
        if !self.snapshot_dir(id).is_dir() {
            return Err(SnapshotError::Invalid(format!(
                "snapshot {id} has no files at `{}`",
                files.display()
            )));
        }
        if self
            .driver
            .clone_whole(&files, dest)
            .map_err(ioe("clone the snapshot to", dest))?
        {
            let (_, entries) = self.read_manifest(id, &self.snapshot_dir(id))?;
            let mut st = ExportStats::default();
            for e in entries {
                match e.kind {
                    'd' => st.dirs += 1,
                    'l' => st.symlinks += 1,
                    _ => {
                        st.files += 1;
                        st.bytes += e.size;
                    }
                }
            }
            st.elapsed_ms = started.elapsed().as_millis() as u64;
            return Ok(st);
        }
        let st = self.export(id, dest)?;
        Ok(st)
    }

    /// Make a built snapshot visible: rename it into place and make the
    /// rename durable.
    pub fn commit(&self, built: Built) -> Result<SnapshotStats, SnapshotError> {
        let dst = self.snapshot_dir(built.id);
        fs::rename(&built.tmp, &dst).map_err(ioe("commit (rename) the snapshot to", &dst))?;
        fsync_dir(&self.snapshots_dir()).map_err(ioe("flush", &self.snapshots_dir()))?;
        Ok(built.stats)
    }

    /// Throw away a built snapshot.
    pub fn discard(&self, built: Built) -> Result<(), SnapshotError> {
        force_remove(&built.tmp).map_err(ioe("remove", &built.tmp))
    }

    /// Remove a committed snapshot (its files shared with others stay there).
    pub fn remove(&self, id: u64) -> Result<(), SnapshotError> {
        let d = self.snapshot_dir(id);
        force_remove(&d).map_err(ioe("remove", &d))
    }

    /// Snapshot ids present on disk (committed directories).
    pub fn on_disk(&self) -> Result<Vec<u64>, SnapshotError> {
        let dir = self.snapshots_dir();
        let mut ids = Vec::new();
        let rd = match fs::read_dir(&dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(ids),
            Err(e) => return Err(ioe("read", &dir)(e)),
        };
        for e in rd {
            let e = e.map_err(ioe("read", &dir))?;
            if let Some(id) = e.file_name().to_str().and_then(|s| s.parse::<u64>().ok()) {
                ids.push(id);
            }
        }
        ids.sort_unstable();
        Ok(ids)
    }

    /// Delete interrupted builds (`.tmp-*`) and committed directories that
    /// have no database row (`known` holds the ids that do). Call only while
    /// holding the dSource's lock.
    pub fn recover(&self, known: &HashSet<u64>) -> Result<Recovered, SnapshotError> {
        let dir = self.snapshots_dir();
        let mut out = Recovered::default();
        let rd = match fs::read_dir(&dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(ioe("read", &dir)(e)),
        };
        for e in rd {
            let e = e.map_err(ioe("read", &dir))?;
            let name = e.file_name();
            let name = name.to_string_lossy();
            let path = e.path();
            if name.starts_with(TMP_PREFIX) {
                force_remove(&path).map_err(ioe("remove", &path))?;
                out.partial.push(path);
            } else if let Ok(id) = name.parse::<u64>()
                && !known.contains(&id)
            {
                force_remove(&path).map_err(ioe("remove", &path))?;
                out.orphans.push(path);
            }
        }
        Ok(out)
    }

    fn read_manifest(&self, id: u64, dir: &Path) -> Result<(Header, Vec<Entry>), SnapshotError> {
        let path = dir.join(MANIFEST);
        let bad = |detail: String| SnapshotError::Manifest {
            id,
            path: path.clone(),
            detail,
        };
        let f = File::open(&path).map_err(ioe("open the manifest", &path))?;
        let mut lines = BufReader::new(f).lines();
        let header: Header = match lines.next() {
            Some(l) => {
                let l = l.map_err(ioe("read", &path))?;
                serde_json::from_str(&l).map_err(|e| bad(format!("header: {e}")))?
            }
            None => return Err(bad("it is empty".into())),
        };
        let mut entries = Vec::new();
        for (n, l) in lines.enumerate() {
            let l = l.map_err(ioe("read", &path))?;
            let e: Entry =
                serde_json::from_str(&l).map_err(|e| bad(format!("line {}: {e}", n + 2)))?;
            entries.push(e);
        }
        Ok((header, entries))
    }

    fn read_previous(&self, id: u64) -> Result<Previous, SnapshotError> {
        let dir = self.snapshot_dir(id);
        let (header, entries) = self.read_manifest(id, &dir)?;
        let entries = entries
            .into_iter()
            .filter(|e| e.kind == 'f')
            .filter_map(|e| e.rel().map(|r| (r, e)))
            .collect();
        Ok(Previous {
            started_ns: header.started_ns,
            entries,
        })
    }

    /// Write an independent, usable copy of snapshot `id` to `dest` (which
    /// must not exist or be an empty directory): original modes, times,
    /// symlinks and internal hard links; owners too when run as root.
    pub fn export(&self, id: u64, dest: &Path) -> Result<ExportStats, SnapshotError> {
        let started = Instant::now();
        let dir = self.snapshot_dir(id);
        if !dir.is_dir() {
            return Err(SnapshotError::Invalid(format!(
                "snapshot {id} has no files at `{}`",
                dir.display()
            )));
        }
        let (_, entries) = self.read_manifest(id, &dir)?;
        let files = dir.join(FILES);
        let src_root = rustix::fs::openat(CWD, &files, DIR_PATH, Mode::empty())
            .map_err(ioe("read", &files))?;
        let dest_root = open_dest(dest)?;
        // SAFETY: geteuid has no preconditions.
        let root = unsafe { libc::geteuid() } == 0;
        let mut stats = ExportStats::default();
        // Both trees are walked through descriptors: a symlink planted in
        // `dest` (or in the snapshot) is never followed.
        let mut src = DirStack::new(src_root);
        let mut dst = DirStack::new(dest_root.try_clone().map_err(ioe("read", dest))?);
        // (dev, ino) of snapshot files with several links -> their path.
        let mut seen: HashMap<(u64, u64), PathBuf> = HashMap::new();
        let mut dirs: Vec<(PathBuf, Entry)> = Vec::new();
        for e in entries {
            let rel = e.rel().ok_or_else(|| SnapshotError::Manifest {
                id,
                path: dir.join(MANIFEST),
                detail: "an entry has no path".into(),
            })?;
            if !rel.components().all(|c| matches!(c, Component::Normal(_))) {
                return Err(SnapshotError::Manifest {
                    id,
                    path: dir.join(MANIFEST),
                    detail: format!("entry `{}` escapes the snapshot", rel.display()),
                });
            }
            let Some(name) = rel.file_name() else {
                // The root: `dest` itself.
                if e.kind != 'd' {
                    return Err(SnapshotError::Manifest {
                        id,
                        path: dir.join(MANIFEST),
                        detail: "its root is not a directory".into(),
                    });
                }
                stats.dirs += 1;
                dirs.push((rel, e));
                continue;
            };
            let parent = parent_of(&rel);
            let src_path = files.join(&rel);
            let dst_path = dest.join(&rel);
            match e.kind {
                'd' => {
                    let at = dst.get(parent).map_err(ioe("create", &dst_path))?;
                    rustix::fs::mkdirat(at, name, mode(0o700)).map_err(ioe("create", &dst_path))?;
                    let fd = rustix::fs::openat(at, name, DIR_PATH, Mode::empty())
                        .map_err(ioe("create", &dst_path))?;
                    dst.push(rel.clone(), fd);
                    stats.dirs += 1;
                    dirs.push((rel, e));
                }
                'l' => {
                    let target = decode(&e.target, &e.target_hex).unwrap_or_default();
                    let at = dst.get(parent).map_err(ioe("create", &dst_path))?;
                    rustix::fs::symlinkat(&*target, at, name).map_err(ioe("create", &dst_path))?;
                    let times = timestamps(e.atime_ns, e.mtime_ns);
                    rustix::fs::utimensat(at, name, &times, AtFlags::SYMLINK_NOFOLLOW)
                        .map_err(ioe("set times of", &dst_path))?;
                    if root {
                        let (u, g) = owner(e.uid, e.gid);
                        let _ = rustix::fs::chownat(at, name, u, g, AtFlags::SYMLINK_NOFOLLOW);
                    }
                    stats.symlinks += 1;
                }
                _ => {
                    let from = src.get(parent).map_err(ioe("read", &src_path))?;
                    let f = rustix::fs::openat(from, name, FILE_READ, Mode::empty())
                        .map(File::from)
                        .map_err(ioe("read", &src_path))?;
                    let st = rustix::fs::fstat(&f).map_err(ioe("read", &src_path))?;
                    if kind(&st) != FileType::RegularFile {
                        return Err(SnapshotError::Invalid(format!(
                            "snapshot {id}: `{}` is not a regular file; the snapshot is damaged",
                            src_path.display()
                        )));
                    }
                    let key = identity(&st);
                    let at = dst.get(parent).map_err(ioe("create", &dst_path))?;
                    if let Some(first) = seen.get(&key) {
                        link_from(dest_root.as_fd(), first, parent, at, name)
                            .map_err(ioe("link", &dst_path))?;
                    } else {
                        let ids = root.then_some((e.uid, e.gid));
                        copy_into(
                            &*self.driver,
                            &f,
                            at,
                            name,
                            e.mode,
                            (e.atime_ns, e.mtime_ns),
                            ids,
                        )
                        .map_err(ioe("copy", &src_path))?;
                        if st.st_nlink > 1 {
                            seen.insert(key, rel.clone());
                        }
                    }
                    stats.files += 1;
                    stats.bytes += e.size;
                }
            }
        }
        drop((src, dst));
        // Deepest first, so a read-only parent never blocks a child.
        for (rel, e) in dirs.iter().rev() {
            let path = dest.join(rel);
            let fd = open_beneath(dest_root.as_fd(), rel, OFlags::RDONLY | OFlags::DIRECTORY)
                .map_err(ioe("set the mode of", &path))?;
            rustix::fs::fchmod(&fd, mode(e.mode)).map_err(ioe("set the mode of", &path))?;
            rustix::fs::futimens(&fd, &timestamps(e.atime_ns, e.mtime_ns))
                .map_err(ioe("set times of", &path))?;
            if root {
                let (u, g) = owner(e.uid, e.gid);
                let _ = rustix::fs::fchown(&fd, u, g);
            }
        }
        stats.elapsed_ms = started.elapsed().as_millis() as u64;
        Ok(stats)
    }

    /// The id of the snapshot whose files unchanged files were linked to,
    /// as recorded in `id`'s manifest.
    pub fn previous_of(&self, id: u64) -> Result<Option<u64>, SnapshotError> {
        let (h, _) = self.read_manifest(id, &self.snapshot_dir(id))?;
        Ok(h.previous)
    }

    /// Bytes on disk of all committed snapshots, counting each shared file
    /// once (what `du` would say).
    pub fn disk_usage(&self) -> Result<u64, SnapshotError> {
        let mut seen = HashSet::new();
        let mut total = 0u64;
        /// Through descriptors: a symlink swapped in for a directory is
        /// counted as the symlink, never entered.
        fn walk(dir: OwnedFd, seen: &mut HashSet<(u64, u64)>, total: &mut u64) -> io::Result<()> {
            let (reader, names) = list(dir)?;
            let dir = reader.fd()?;
            for (name, _) in names {
                let st = match rustix::fs::statat(dir, &*name, AtFlags::SYMLINK_NOFOLLOW) {
                    Ok(st) => st,
                    Err(Errno::NOENT) => continue,
                    Err(e) => return Err(e.into()),
                };
                if kind(&st) == FileType::Directory {
                    match rustix::fs::openat(dir, &*name, DIR, Mode::empty()) {
                        Ok(sub) => walk(sub, seen, total)?,
                        // Gone, or no longer a directory: not entered.
                        Err(Errno::NOENT | Errno::NOTDIR | Errno::LOOP) => {}
                        Err(e) => return Err(e.into()),
                    }
                } else if seen.insert(identity(&st)) {
                    *total += st.st_blocks as u64 * 512;
                }
            }
            Ok(())
        }
        for id in self.on_disk()? {
            let d = self.snapshot_dir(id);
            let fd = rustix::fs::openat(CWD, &d, DIR, Mode::empty()).map_err(ioe("measure", &d))?;
            walk(fd, &mut seen, &mut total).map_err(ioe("measure", &d))?;
        }
        Ok(total)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    /// Set atime/mtime of `path` without following a final symlink.
    fn set_times(path: &Path, atime_ns: i64, mtime_ns: i64) -> io::Result<()> {
        let times = timestamps(atime_ns, mtime_ns);
        Ok(rustix::fs::utimensat(
            CWD,
            path,
            &times,
            AtFlags::SYMLINK_NOFOLLOW,
        )?)
    }

    fn write(p: &Path, text: &str) {
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, text).unwrap();
    }

    /// Let the racy window pass (real data is usually older than that).
    fn settle() {
        std::thread::sleep(std::time::Duration::from_nanos(
            RACY_SLACK_NS as u64 + 50_000_000,
        ));
    }

    fn store() -> (tempfile::TempDir, SnapshotStore) {
        let dir = tempfile::tempdir().unwrap();
        let s = SnapshotStore::new(&dir.path().join("ds"));
        s.create().unwrap();
        (dir, s)
    }

    #[test]
    fn second_snapshot_links_unchanged_and_copies_changed() {
        let (_d, s) = store();
        let live = s.live_dir();
        write(&live.join("a.txt"), "alpha");
        write(&live.join("sub/b.txt"), "beta");
        std::os::unix::fs::symlink("a.txt", live.join("link")).unwrap();
        settle();
        let b1 = s.build(1, None).unwrap();
        assert_eq!(b1.stats.files, 2);
        assert_eq!(b1.stats.copied_files, 2);
        s.commit(b1).unwrap();

        fs::write(live.join("sub/b.txt"), "beta changed").unwrap();
        let b2 = s.build(2, Some(1)).unwrap();
        assert_eq!(b2.stats.linked_files, 1);
        assert_eq!(b2.stats.copied_files, 1);
        assert_eq!(b2.stats.copied_bytes, "beta changed".len() as u64);
        s.commit(b2).unwrap();

        let f1 = s.files_dir(1);
        let f2 = s.files_dir(2);
        assert_eq!(fs::read_to_string(f1.join("sub/b.txt")).unwrap(), "beta");
        assert_eq!(
            fs::read_to_string(f2.join("sub/b.txt")).unwrap(),
            "beta changed"
        );
        let i1 = fs::metadata(f1.join("a.txt")).unwrap().ino();
        let i2 = fs::metadata(f2.join("a.txt")).unwrap().ino();
        let il = fs::metadata(live.join("a.txt")).unwrap().ino();
        assert_eq!(
            i1, i2,
            "unchanged file is shared with the previous snapshot"
        );
        assert_ne!(i1, il, "never linked to the live data");
        assert_eq!(fs::read_link(f2.join("link")).unwrap(), Path::new("a.txt"));
        let mode = fs::metadata(f2.join("sub/b.txt")).unwrap().mode();
        assert_eq!(mode & 0o222, 0, "snapshot files are read-only");
    }

    #[test]
    fn same_size_and_mtime_but_new_content_is_copied() {
        // Content rewritten in place with the mtime put back: ctime changes,
        // so the file must not be linked.
        let (_d, s) = store();
        let live = s.live_dir();
        write(&live.join("f"), "one");
        settle();
        let md = fs::metadata(live.join("f")).unwrap();
        s.commit(s.build(1, None).unwrap()).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        fs::write(live.join("f"), "two").unwrap();
        set_times(
            &live.join("f"),
            md.atime() * 1_000_000_000 + md.atime_nsec(),
            md.mtime() * 1_000_000_000 + md.mtime_nsec(),
        )
        .unwrap();
        let b = s.build(2, Some(1)).unwrap();
        assert_eq!(b.stats.copied_files, 1);
        s.commit(b).unwrap();
        assert_eq!(fs::read_to_string(s.files_dir(2).join("f")).unwrap(), "two");
    }

    #[test]
    fn recently_changed_files_are_copied_not_linked() {
        let (_d, s) = store();
        write(&s.live_dir().join("fresh"), "x");
        s.commit(s.build(1, None).unwrap()).unwrap();
        let b = s.build(2, Some(1)).unwrap();
        assert_eq!(b.stats.linked_files, 0, "racy file must be copied");
        s.discard(b).unwrap();
    }

    #[test]
    fn export_restores_modes_and_is_independent() {
        let (d, s) = store();
        let live = s.live_dir();
        write(&live.join("x/y.sh"), "#!/bin/sh\n");
        fs::set_permissions(live.join("x/y.sh"), fs::Permissions::from_mode(0o754)).unwrap();
        fs::hard_link(live.join("x/y.sh"), live.join("x/z.sh")).unwrap();
        s.commit(s.build(1, None).unwrap()).unwrap();
        let out = d.path().join("export");
        let st = s.export(1, &out).unwrap();
        assert_eq!(st.files, 2);
        let md = fs::metadata(out.join("x/y.sh")).unwrap();
        assert_eq!(md.mode() & 0o7777, 0o754);
        assert_eq!(
            md.ino(),
            fs::metadata(out.join("x/z.sh")).unwrap().ino(),
            "hard links inside the data are kept"
        );
        assert_ne!(
            md.ino(),
            fs::metadata(s.files_dir(1).join("x/y.sh")).unwrap().ino()
        );
        fs::write(out.join("x/y.sh"), "changed").unwrap();
        assert_eq!(
            fs::read_to_string(s.files_dir(1).join("x/y.sh")).unwrap(),
            "#!/bin/sh\n"
        );
        // Exporting into a non-empty directory is refused.
        assert!(
            s.export(1, &out)
                .unwrap_err()
                .to_string()
                .contains("not empty")
        );
    }

    #[test]
    fn force_remove_removes_a_live_tree() {
        let (_d, s) = store();
        write(&s.live_dir().join("f0.dat"), "x");
        write(&s.live_dir().join("sub/f1.dat"), "y");
        force_remove(&s.live_dir()).unwrap();
        assert!(!s.live_dir().exists());
        force_remove(&s.live_dir()).unwrap();
    }

    #[test]
    fn recover_removes_partial_and_orphan_dirs_only() {
        let (_d, s) = store();
        write(&s.live_dir().join("f"), "x");
        s.commit(s.build(1, None).unwrap()).unwrap();
        s.commit(s.build(2, Some(1)).unwrap()).unwrap();
        let partial = s.build(3, Some(2)).unwrap();
        std::mem::forget(partial);
        let r = s.recover(&HashSet::from([1])).unwrap();
        assert_eq!(r.partial.len(), 1);
        assert_eq!(r.orphans, vec![s.snapshot_dir(2)]);
        assert_eq!(s.on_disk().unwrap(), vec![1]);
        s.remove(1).unwrap();
        assert!(s.on_disk().unwrap().is_empty());
    }

    /// Swap two names atomically (renameat2 `RENAME_EXCHANGE`), so that
    /// both always exist.
    fn exchange(a: &Path, b: &Path) -> io::Result<()> {
        use rustix::fs::{CWD, RenameFlags, renameat_with};
        renameat_with(CWD, a, CWD, b, RenameFlags::EXCHANGE).map_err(io::Error::from)
    }

    /// Every name and every regular file's content in a tree, without
    /// following a single symlink.
    fn scan_no_follow(root: &Path, found: &mut Vec<(PathBuf, String)>) {
        for e in fs::read_dir(root).unwrap() {
            let p = e.unwrap().path();
            let md = fs::symlink_metadata(&p).unwrap();
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            if md.is_dir() {
                found.push((p.clone(), name));
                scan_no_follow(&p, found);
            } else if md.is_file() {
                let text = String::from_utf8_lossy(&fs::read(&p).unwrap()).into_owned();
                found.push((p, format!("{name}\n{text}")));
            } else {
                found.push((p, name));
            }
        }
    }

    /// Build and commit `count` snapshots while a thread swaps `live/<name>`
    /// with `decoy` (a symlink to something outside the data directory) as
    /// fast as it can; then no snapshot tree and no manifest may hold
    /// anything of the outside (`HOSTSECRET`).
    fn build_while_swapping(s: &SnapshotStore, name: &str, decoy: &Path, count: u64) {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
        let target = s.live_dir().join(name);
        let stop = Arc::new(AtomicBool::new(false));
        let swaps = Arc::new(AtomicU64::new(0));
        let swapper = {
            let (stop, swaps) = (stop.clone(), swaps.clone());
            let (target, decoy) = (target.clone(), decoy.to_path_buf());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    exchange(&target, &decoy).unwrap();
                    swaps.fetch_add(1, Ordering::Relaxed);
                }
            })
        };
        let mut failed = Vec::new();
        let mut previous = None;
        for id in 1..=count {
            match s.build(id, previous) {
                Ok(b) => {
                    s.commit(b).unwrap();
                    previous = Some(id);
                }
                Err(e) => failed.push(format!("snapshot {id}: {e}")),
            }
        }
        stop.store(true, Ordering::Relaxed);
        swapper.join().unwrap();
        assert!(swaps.load(Ordering::Relaxed) > 0, "the swapper never ran");

        let mut leaks = Vec::new();
        for id in s.on_disk().unwrap() {
            let mut found = Vec::new();
            scan_no_follow(&s.files_dir(id), &mut found);
            leaks.extend(
                found
                    .into_iter()
                    .filter(|(_, what)| what.contains("HOSTSECRET"))
                    .map(|(p, _)| p.display().to_string()),
            );
            let manifest = fs::read_to_string(s.snapshot_dir(id).join(MANIFEST)).unwrap();
            if manifest.contains("HOSTSECRET") {
                leaks.push(format!("manifest of snapshot {id}"));
            }
        }
        assert!(
            leaks.is_empty(),
            "outside data entered {} snapshot entries, e.g. {:?}",
            leaks.len(),
            &leaks[..leaks.len().min(5)]
        );
        assert!(
            failed.is_empty(),
            "{} builds failed, e.g. {:?}",
            failed.len(),
            &failed[..failed.len().min(3)]
        );
    }

    #[test]
    fn swapped_in_symlink_never_brings_outside_files_into_a_snapshot() {
        // The hardening issue: `live/d` is listed as a directory, swapped for
        // a symlink to a host directory, and the walk followed it (snapshot 8
        // held `files/d/HOSTSECRET.txt`).
        let (d, s) = store();
        let live = s.live_dir();
        let outside = d.path().join("host");
        write(&outside.join("HOSTSECRET.txt"), "HOSTSECRET: host data\n");
        write(&outside.join("inner.txt"), "HOSTSECRET: host inner.txt\n");
        for i in 0..20 {
            write(&live.join(format!("d/f{i}.txt")), "inside\n");
        }
        write(&live.join("d/inner.txt"), "inside inner.txt\n");
        write(&live.join("d/sub/deeper.txt"), "inside deeper\n");
        write(&live.join("other.txt"), "inside\n");
        let stash = d.path().join("stash");
        fs::create_dir(&stash).unwrap();
        let decoy = stash.join("d");
        std::os::unix::fs::symlink(&outside, &decoy).unwrap();
        build_while_swapping(&s, "d", &decoy, 300);
        // A snapshot taken at rest is complete and exact.
        if fs::symlink_metadata(live.join("d")).unwrap().is_symlink() {
            exchange(&live.join("d"), &decoy).unwrap();
        }
        fs::remove_file(&decoy).unwrap();
        let last = s.on_disk().unwrap().last().copied();
        let id = last.unwrap_or(0) + 1;
        let b = s.build(id, last).unwrap();
        s.commit(b).unwrap();
        let files = s.files_dir(id);
        assert!(!files.join("d/HOSTSECRET.txt").exists());
        assert_eq!(
            fs::read_to_string(files.join("d/f0.txt")).unwrap(),
            "inside\n"
        );
        assert_eq!(
            fs::read_to_string(files.join("other.txt")).unwrap(),
            "inside\n"
        );
    }

    #[test]
    fn swapped_in_file_symlink_never_copies_an_outside_file() {
        // The same race for a file: listed as a regular file, swapped for a
        // symlink to a host file before it is opened.
        let (d, s) = store();
        let live = s.live_dir();
        let outside = d.path().join("host");
        write(&outside.join("secret.txt"), "HOSTSECRET: host file\n");
        write(&live.join("f.txt"), "inside f.txt\n");
        write(&live.join("g.txt"), "inside g.txt\n");
        let stash = d.path().join("stash");
        fs::create_dir(&stash).unwrap();
        let decoy = stash.join("f.txt");
        std::os::unix::fs::symlink(outside.join("secret.txt"), &decoy).unwrap();
        build_while_swapping(&s, "f.txt", &decoy, 300);
        // Every snapshot holds `f.txt` as the file or as the symlink (or
        // not at all, where it kept changing kind while it was read).
        let mut missing = 0;
        for id in s.on_disk().unwrap() {
            let p = s.files_dir(id).join("f.txt");
            let Ok(md) = fs::symlink_metadata(&p) else {
                missing += 1;
                continue;
            };
            if md.is_file() {
                assert_eq!(fs::read_to_string(&p).unwrap(), "inside f.txt\n");
            } else {
                assert!(md.is_symlink(), "{}", p.display());
                assert_eq!(fs::read_link(&p).unwrap(), outside.join("secret.txt"));
            }
        }
        assert!(
            missing <= 150,
            "f.txt left out of {missing} of 300 snapshots"
        );
    }

    #[test]
    fn export_never_writes_through_a_symlink_planted_in_dest() {
        // While an export runs, a process with access to `dest` swaps a
        // directory the export created for a symlink to a host directory:
        // nothing may be written (or chmodded) there.
        use std::sync::Arc;
        use std::sync::atomic::{AtomicBool, Ordering};
        let (d, s) = store();
        let live = s.live_dir();
        for i in 0..200 {
            write(&live.join(format!("sub/f{i:03}.txt")), "snapshot data\n");
        }
        write(&live.join("sub/deeper/x.txt"), "snapshot data\n");
        fs::set_permissions(live.join("sub"), fs::Permissions::from_mode(0o751)).unwrap();
        s.commit(s.build(1, None).unwrap()).unwrap();
        let outside = d.path().join("host");
        fs::create_dir(&outside).unwrap();
        fs::set_permissions(&outside, fs::Permissions::from_mode(0o700)).unwrap();
        let outside_md = fs::symlink_metadata(&outside).unwrap();

        let mut writes_outside = Vec::new();
        for round in 0..40 {
            let dest = d.path().join(format!("export{round}"));
            let stop = Arc::new(AtomicBool::new(false));
            let planter = {
                let (stop, dest, outside) = (stop.clone(), dest.clone(), outside.clone());
                std::thread::spawn(move || {
                    let lnk = dest.join(".lnk");
                    while !stop.load(Ordering::Relaxed) {
                        if dest.is_dir() {
                            let _ = std::os::unix::fs::symlink(&outside, &lnk);
                            let _ = exchange(&dest.join("sub"), &lnk);
                            let _ = exchange(&dest.join("sub/deeper"), &lnk);
                        }
                    }
                })
            };
            // Failing under attack is fine; writing outside is not.
            let _ = s.export(1, &dest);
            stop.store(true, Ordering::Relaxed);
            planter.join().unwrap();
            let entries: Vec<_> = fs::read_dir(&outside)
                .unwrap()
                .map(|e| e.unwrap().file_name())
                .collect();
            if !entries.is_empty() {
                writes_outside.push(format!("round {round}: {} entries", entries.len()));
                force_remove(&outside).unwrap();
                fs::create_dir(&outside).unwrap();
                fs::set_permissions(&outside, fs::Permissions::from_mode(0o700)).unwrap();
            }
            let md = fs::symlink_metadata(&outside).unwrap();
            if md.mode() != outside_md.mode() {
                writes_outside.push(format!("round {round}: mode {:o}", md.mode()));
                fs::set_permissions(&outside, fs::Permissions::from_mode(0o700)).unwrap();
            }
        }
        assert!(
            writes_outside.is_empty(),
            "the export wrote outside `dest`: {writes_outside:?}"
        );
        // Undisturbed, the export is whole.
        let dest = d.path().join("export-quiet");
        let st = s.export(1, &dest).unwrap();
        assert_eq!(st.files, 201);
        assert_eq!(
            fs::symlink_metadata(dest.join("sub")).unwrap().mode() & 0o7777,
            0o751
        );
    }
}
