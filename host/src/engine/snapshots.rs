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

use std::collections::{HashMap, HashSet};
use std::ffi::{OsStr, OsString};
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, BufWriter, Write};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

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
        action: String,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "snapshot {id}: its manifest `{}` is damaged ({detail}); remove it with `lunabox snapshot rm`",
        path.display()
    )]
    /// A snapshot's manifest cannot be read.
    Manifest {
        id: u64,
        path: PathBuf,
        detail: String,
    },
    /// The request cannot be carried out (the message says why).
    #[error("{0}")]
    Invalid(String),
}

fn ioe(action: impl Into<String>, path: &Path) -> impl FnOnce(io::Error) -> SnapshotError {
    let action = action.into();
    let path = path.to_path_buf();
    move |source| SnapshotError::Io {
        action,
        path,
        source,
    }
}

/// What building a snapshot did.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SnapshotStats {
    /// Regular files in the snapshot.
    pub files: u64,
    pub dirs: u64,
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
    /// Files hard-linked to the previous snapshot (or within this one).
    pub linked_files: u64,
    pub linked_bytes: u64,
    /// The snapshot the unchanged files were shared with.
    pub previous: Option<u64>,
    pub elapsed_ms: u64,
}

/// A snapshot built aside, not yet committed.
#[derive(Debug)]
pub struct Built {
    pub id: u64,
    pub stats: SnapshotStats,
    tmp: PathBuf,
}

/// What an export wrote.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExportStats {
    pub files: u64,
    pub dirs: u64,
    pub symlinks: u64,
    pub bytes: u64,
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

impl Entry {
    fn from_meta(rel: &Path, kind: char, md: &fs::Metadata) -> Entry {
        let (path, path_hex) = encode(rel.as_os_str());
        Entry {
            path,
            path_hex,
            kind,
            mode: md.mode() & 0o7777,
            size: if kind == 'f' { md.size() } else { 0 },
            mtime_ns: md.mtime() * 1_000_000_000 + md.mtime_nsec(),
            atime_ns: md.atime() * 1_000_000_000 + md.atime_nsec(),
            ctime_ns: md.ctime() * 1_000_000_000 + md.ctime_nsec(),
            ino: md.ino(),
            dev: md.dev(),
            uid: md.uid(),
            gid: md.gid(),
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

fn timespec(ns: i64) -> libc::timespec {
    libc::timespec {
        tv_sec: ns.div_euclid(1_000_000_000) as libc::time_t,
        tv_nsec: ns.rem_euclid(1_000_000_000) as _,
    }
}

/// Set atime/mtime of `path` without following a final symlink.
fn set_times(path: &Path, atime_ns: i64, mtime_ns: i64) -> io::Result<()> {
    let c = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains NUL"))?;
    let times = [timespec(atime_ns), timespec(mtime_ns)];
    // SAFETY: `c` is a valid NUL-terminated path and `times` two timespecs.
    let rc = unsafe {
        libc::utimensat(
            libc::AT_FDCWD,
            c.as_ptr(),
            times.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Change owner of `path` (not following symlinks); used when restoring as root.
fn lchown(path: &Path, uid: u32, gid: u32) -> io::Result<()> {
    std::os::unix::fs::lchown(path, Some(uid), Some(gid))
}

/// Copy `src` to the new file `dst` with a reflink when possible; set
/// `mode` and the times. Returns whether the copy was a reflink. (Not
/// flushed: see [`fsync_all`].)
fn copy_file(src: &Path, dst: &Path, mode: u32, atime_ns: i64, mtime_ns: i64) -> io::Result<bool> {
    let mut s = File::open(src)?;
    let mut d = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(dst)?;
    // SAFETY: both descriptors are open files owned by this function.
    let reflinked = unsafe { libc::ioctl(d.as_raw_fd(), libc::FICLONE, s.as_raw_fd()) } == 0;
    if !reflinked {
        io::copy(&mut s, &mut d)?;
    }
    d.set_permissions(fs::Permissions::from_mode(mode))?;
    let times = [timespec(atime_ns), timespec(mtime_ns)];
    // SAFETY: `d` is open; `times` holds two timespecs.
    if unsafe { libc::futimens(d.as_raw_fd(), times.as_ptr()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(reflinked)
}

/// Remove a tree even where its directories were made read-only.
pub fn force_remove(path: &Path) -> io::Result<()> {
    let md = match fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    if !md.is_dir() {
        return fs::remove_file(path);
    }
    fs::set_permissions(path, fs::Permissions::from_mode(0o700))?;
    for entry in fs::read_dir(path)? {
        let entry = entry?;
        let p = entry.path();
        if entry.file_type()?.is_dir() {
            force_remove(&p)?;
        } else {
            fs::remove_file(&p)?;
        }
    }
    fs::remove_dir(path)
}

/// Fsync a directory (makes a rename in it durable).
fn fsync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Fsync every path (files and directories) from a few threads at once:
/// concurrent fsyncs share journal commits, so a hundred of them cost
/// about as much as a few.
fn fsync_all(paths: &[PathBuf]) -> Result<(), SnapshotError> {
    const THREADS: usize = 8;
    if paths.is_empty() {
        return Ok(());
    }
    let chunk = paths.len().div_ceil(THREADS);
    std::thread::scope(|s| {
        let handles: Vec<_> = paths
            .chunks(chunk)
            .map(|part| {
                s.spawn(move || -> Result<(), SnapshotError> {
                    for p in part {
                        File::open(p)
                            .and_then(|f| f.sync_all())
                            .map_err(ioe("flush", p))?;
                    }
                    Ok(())
                })
            })
            .collect();
        handles.into_iter().try_for_each(|h| {
            h.join()
                .unwrap_or_else(|_| Err(SnapshotError::Invalid("an fsync thread panicked".into())))
        })
    })
}

/// The previous snapshot, as the builder consults it.
struct Previous {
    files: PathBuf,
    started_ns: i64,
    entries: HashMap<PathBuf, Entry>,
}

/// Walks the live tree and writes the new snapshot.
struct Builder<'a> {
    live: &'a Path,
    out: PathBuf,
    prev: Option<Previous>,
    manifest: BufWriter<File>,
    manifest_path: PathBuf,
    /// (dev, ino) of live files with several links -> their path in `out`.
    inner_links: HashMap<(u64, u64), PathBuf>,
    /// Copied files and created directories, to fsync before commit.
    to_flush: Vec<PathBuf>,
    stats: SnapshotStats,
}

impl Builder<'_> {
    fn write_entry(&mut self, e: &Entry) -> Result<(), SnapshotError> {
        let mp = self.manifest_path.clone();
        serde_json::to_writer(&mut self.manifest, e)
            .map_err(|err| io::Error::other(err.to_string()))
            .and_then(|_| self.manifest.write_all(b"\n"))
            .map_err(ioe("write the manifest", &mp))
    }

    /// Snapshot the directory `rel` (already created at `out/rel`).
    fn dir(&mut self, rel: &Path, md: &fs::Metadata) -> Result<(), SnapshotError> {
        let src_dir = self.live.join(rel);
        let dst_dir = self.out.join(rel);
        self.write_entry(&Entry::from_meta(rel, 'd', md))?;
        self.stats.dirs += 1;
        let mut children: Vec<fs::DirEntry> = fs::read_dir(&src_dir)
            .map_err(ioe("read the directory", &src_dir))?
            .collect::<io::Result<_>>()
            .map_err(ioe("read the directory", &src_dir))?;
        children.sort_by_key(|e| e.file_name());
        for child in children {
            let child_rel = rel.join(child.file_name());
            let src = child.path();
            let dst = self.out.join(&child_rel);
            // lstat relative to the open directory (no path walk).
            let cmd = match child.metadata() {
                Ok(m) => m,
                // Removed while we walked: it is not part of this snapshot.
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(ioe("inspect", &src)(e)),
            };
            let ft = cmd.file_type();
            if ft.is_dir() {
                fs::create_dir(&dst).map_err(ioe("create the directory", &dst))?;
                self.dir(&child_rel, &cmd)?;
            } else if ft.is_symlink() {
                let target = fs::read_link(&src).map_err(ioe("read the symlink", &src))?;
                std::os::unix::fs::symlink(&target, &dst)
                    .map_err(ioe("create the symlink", &dst))?;
                let mut e = Entry::from_meta(&child_rel, 'l', &cmd);
                (e.target, e.target_hex) = encode(target.as_os_str());
                set_times(&dst, e.atime_ns, e.mtime_ns).map_err(ioe("set the times of", &dst))?;
                self.write_entry(&e)?;
                self.stats.symlinks += 1;
            } else if ft.is_file() {
                self.file(&child_rel, &src, &dst, &cmd)?;
            } else {
                self.stats.skipped += 1;
                tracing::warn!(path = %src.display(), "not a file, directory or symlink: left out of the snapshot");
            }
        }
        // Post-order, once it is full: its own mode and times; flushed
        // with the copied files at the end of the build.
        self.to_flush.push(dst_dir.clone());
        let ro = md.mode() & 0o7777 & !0o222;
        fs::set_permissions(&dst_dir, fs::Permissions::from_mode(ro))
            .map_err(ioe("set the mode of", &dst_dir))?;
        let e = Entry::from_meta(rel, 'd', md);
        set_times(&dst_dir, e.atime_ns, e.mtime_ns).map_err(ioe("set the times of", &dst_dir))?;
        Ok(())
    }

    fn file(
        &mut self,
        rel: &Path,
        src: &Path,
        dst: &Path,
        md: &fs::Metadata,
    ) -> Result<(), SnapshotError> {
        let e = Entry::from_meta(rel, 'f', md);
        self.stats.files += 1;
        self.stats.bytes += e.size;
        // A second name of a file already in this snapshot.
        if md.nlink() > 1 {
            if let Some(first) = self.inner_links.get(&(e.dev, e.ino)) {
                if fs::hard_link(first, dst).is_ok() {
                    self.stats.linked_files += 1;
                    self.stats.linked_bytes += e.size;
                    return self.write_entry(&e);
                }
            } else {
                self.inner_links.insert((e.dev, e.ino), dst.to_path_buf());
            }
        }
        if let Some(prev) = &self.prev
            && let Some(pe) = prev.entries.get(rel)
            && pe.unchanged(&e, prev.started_ns)
            // EMLINK (too many links) or a damaged previous snapshot: fall
            // back to a copy.
            && fs::hard_link(prev.files.join(rel), dst).is_ok()
        {
            self.stats.linked_files += 1;
            self.stats.linked_bytes += e.size;
            return self.write_entry(&e);
        }
        let reflinked = copy_file(src, dst, e.mode & !0o222, e.atime_ns, e.mtime_ns)
            .map_err(ioe("copy", src))?;
        self.to_flush.push(dst.to_path_buf());
        self.stats.copied_files += 1;
        self.stats.copied_bytes += e.size;
        if reflinked {
            self.stats.reflinked_files += 1;
        }
        self.write_entry(&e)
    }
}

/// The snapshots of one dSource.
#[derive(Debug, Clone)]
pub struct SnapshotStore {
    root: PathBuf,
}

impl SnapshotStore {
    /// The store rooted at a dSource's storage directory.
    pub fn new(dsource_storage: &Path) -> SnapshotStore {
        SnapshotStore {
            root: dsource_storage.to_path_buf(),
        }
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

    /// Create the live data and snapshot directories.
    pub fn create(&self) -> Result<(), SnapshotError> {
        for d in [self.live_dir(), self.snapshots_dir()] {
            fs::create_dir_all(&d).map_err(ioe("create", &d))?;
        }
        Ok(())
    }

    /// Build snapshot `id` of the live data aside, sharing unchanged files
    /// with snapshot `previous`, and flush it to disk. Nothing is visible
    /// until [`commit`](Self::commit).
    pub fn build(&self, id: u64, previous: Option<u64>) -> Result<Built, SnapshotError> {
        let started = Instant::now();
        let started_ns = wall_ns();
        let live = self.live_dir();
        let live_md = fs::metadata(&live).map_err(ioe("read the live data directory", &live))?;
        if !live_md.is_dir() {
            return Err(SnapshotError::Invalid(format!(
                "the live data `{}` is not a directory",
                live.display()
            )));
        }
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
        fs::create_dir_all(&out).map_err(ioe("create", &out))?;
        let prev = match previous {
            Some(p) => Some(self.read_previous(p)?),
            None => None,
        };
        let manifest_path = tmp.join(MANIFEST);
        let mf = File::create(&manifest_path).map_err(ioe("create", &manifest_path))?;
        let mut b = Builder {
            live: &live,
            out,
            prev,
            manifest: BufWriter::new(mf),
            manifest_path: manifest_path.clone(),
            inner_links: HashMap::new(),
            to_flush: Vec::new(),
            stats: SnapshotStats {
                previous,
                ..Default::default()
            },
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
        b.dir(Path::new(""), &live_md)?;
        let mf = b
            .manifest
            .into_inner()
            .map_err(|e| ioe("write the manifest", &manifest_path)(e.into_error()))?;
        drop(mf);
        let mut to_flush = b.to_flush;
        to_flush.push(manifest_path.clone());
        fsync_all(&to_flush)?;
        let mut stats = b.stats;
        fs::set_permissions(&manifest_path, fs::Permissions::from_mode(0o444))
            .map_err(ioe("set the mode of", &manifest_path))?;
        fsync_dir(&tmp).map_err(ioe("flush", &tmp))?;
        stats.elapsed_ms = started.elapsed().as_millis() as u64;
        Ok(Built { id, stats, tmp })
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
            files: dir.join(FILES),
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
        match fs::read_dir(dest) {
            Ok(mut rd) => {
                if rd.next().is_some() {
                    return Err(SnapshotError::Invalid(format!(
                        "`{}` is not empty; export into a new or empty directory",
                        dest.display()
                    )));
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                fs::create_dir(dest).map_err(ioe("create", dest))?;
            }
            Err(e) => return Err(ioe("read", dest)(e)),
        }
        // SAFETY: geteuid has no preconditions.
        let root = unsafe { libc::geteuid() } == 0;
        let mut stats = ExportStats::default();
        let mut seen: HashMap<u64, PathBuf> = HashMap::new();
        let mut dirs: Vec<(PathBuf, Entry)> = Vec::new();
        for e in entries {
            let rel = e.rel().ok_or_else(|| SnapshotError::Manifest {
                id,
                path: dir.join(MANIFEST),
                detail: "an entry has no path".into(),
            })?;
            if rel.is_absolute() || rel.components().any(|c| c.as_os_str() == "..") {
                return Err(SnapshotError::Manifest {
                    id,
                    path: dir.join(MANIFEST),
                    detail: format!("entry `{}` escapes the snapshot", rel.display()),
                });
            }
            let src = files.join(&rel);
            let dst = dest.join(&rel);
            match e.kind {
                'd' => {
                    if !rel.as_os_str().is_empty() {
                        fs::create_dir(&dst).map_err(ioe("create", &dst))?;
                    }
                    stats.dirs += 1;
                    dirs.push((dst, e));
                }
                'l' => {
                    let target = decode(&e.target, &e.target_hex).unwrap_or_default();
                    std::os::unix::fs::symlink(&target, &dst).map_err(ioe("create", &dst))?;
                    set_times(&dst, e.atime_ns, e.mtime_ns).map_err(ioe("set times of", &dst))?;
                    if root {
                        let _ = lchown(&dst, e.uid, e.gid);
                    }
                    stats.symlinks += 1;
                }
                _ => {
                    let smd = fs::symlink_metadata(&src).map_err(ioe("read", &src))?;
                    if let Some(first) = seen.get(&smd.ino()) {
                        fs::hard_link(first, &dst).map_err(ioe("link", &dst))?;
                    } else {
                        copy_file(&src, &dst, e.mode, e.atime_ns, e.mtime_ns)
                            .map_err(ioe("copy", &src))?;
                        if root {
                            let _ = lchown(&dst, e.uid, e.gid);
                        }
                        if smd.nlink() > 1 {
                            seen.insert(smd.ino(), dst.clone());
                        }
                    }
                    stats.files += 1;
                    stats.bytes += e.size;
                }
            }
        }
        // Deepest first, so a read-only parent never blocks a child.
        for (dst, e) in dirs.iter().rev() {
            fs::set_permissions(dst, fs::Permissions::from_mode(e.mode))
                .map_err(ioe("set the mode of", dst))?;
            set_times(dst, e.atime_ns, e.mtime_ns).map_err(ioe("set times of", dst))?;
            if root {
                let _ = lchown(dst, e.uid, e.gid);
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
        fn walk(p: &Path, seen: &mut HashSet<(u64, u64)>, total: &mut u64) -> io::Result<()> {
            for e in fs::read_dir(p)? {
                let e = e?;
                let md = e.metadata()?;
                if md.is_dir() {
                    walk(&e.path(), seen, total)?;
                } else if seen.insert((md.dev(), md.ino())) {
                    *total += md.blocks() * 512;
                }
            }
            Ok(())
        }
        for id in self.on_disk()? {
            let d = self.snapshot_dir(id);
            walk(&d, &mut seen, &mut total).map_err(ioe("measure", &d))?;
        }
        Ok(total)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
