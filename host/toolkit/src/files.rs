//! Reading a toolkit directory: the one place that decides which files are
//! part of a toolkit. Loading (and so `validate`, `build`, `install` and
//! `run-hook`) reads toolkit files only through [`ToolkitFiles`].
//!
//! The rule: **a toolkit is its own regular files.**
//!
//! - Every path is opened relative to the toolkit's directory, one
//!   component at a time, never following a symlink (`openat` with
//!   `O_NOFOLLOW`), and a file is checked with `fstat` on the descriptor it
//!   is read from: a file swapped for a symlink or a FIFO between listing and
//!   reading is refused, never followed or waited on.
//! - A symlink is followed once, when its target is a relative path that
//!   stays inside the toolkit and names a regular file reached without
//!   another symlink. A symlink that points outside, is absolute, points to
//!   another symlink or to a folder is an error naming it.
//! - FIFOs, sockets and devices are errors naming them; they are never
//!   opened for reading in a way that can block (`O_NONBLOCK`).
//! - A file may hold at most [`MAX_FILE_BYTES`], all files together at
//!   most [`MAX_TOTAL_BYTES`]; folders nest at most [`MAX_DEPTH`] deep and
//!   a toolkit has at most [`MAX_ENTRIES`] entries. Going past a bound is
//!   an error naming the file or folder, not a partial read.

use std::cell::Cell;
use std::ffi::OsStr;
use std::io::{self, Read};
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Mode, OFlags};

/// Largest file a toolkit may hold.
pub const MAX_FILE_BYTES: u64 = 16 << 20;
/// Most bytes of all a toolkit's files together.
pub const MAX_TOTAL_BYTES: u64 = 64 << 20;
/// Deepest folder nesting (the toolkit's directory is depth 0).
pub const MAX_DEPTH: usize = 16;
/// Most entries (files, folders, links) listed in one toolkit.
pub const MAX_ENTRIES: usize = 10_000;

/// What a listed entry is, after the symlink rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// A regular file; read it at `target` (itself, or where its link points).
    File {
        /// The path to read, relative to the toolkit's directory.
        target: PathBuf,
    },
    /// A folder.
    Dir,
    /// Not part of the toolkit; says why and what to do.
    Refused(String),
}

/// One entry of a listed folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    /// The entry's file name (one path component).
    pub name: String,
    /// Path relative to the toolkit's directory.
    pub rel: PathBuf,
    /// What it is: a file to read, a folder, or refused (and why).
    pub kind: Kind,
}

impl Listed {
    /// Whether this is a folder.
    pub fn is_dir(&self) -> bool {
        self.kind == Kind::Dir
    }
}

/// Why a file could not be read. The text names no path: callers say which
/// file it was.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReadError {
    #[error("cannot read the file ({0}); check its permissions")]
    /// The file could not be opened or read (the OS error's text).
    Io(String),
    #[error("{0}")]
    /// The file is not one a toolkit may hold (a symlink swapped in, not a
    /// regular file, ...); says why.
    Refused(String),
    #[error("the file is larger than {MAX_FILE_BYTES} bytes; a toolkit file must be smaller")]
    /// The file is larger than [`MAX_FILE_BYTES`].
    TooLarge,
    #[error(
        "the toolkit's files together are larger than {MAX_TOTAL_BYTES} bytes; make the toolkit smaller"
    )]
    /// Reading it would take the toolkit's files past [`MAX_TOTAL_BYTES`]
    /// together.
    TotalTooLarge,
    #[error(
        "the file is not UTF-8 text; toolkit scripts, resources and messages must be text (convert it, e.g. with iconv)"
    )]
    /// The file is not valid UTF-8.
    NotUtf8,
}

/// A toolkit directory opened for reading under the rule above.
#[derive(Debug)]
pub struct ToolkitFiles {
    root: OwnedFd,
    entries: Cell<usize>,
    bytes: Cell<u64>,
}

fn nofollow_dir() -> OFlags {
    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC
}

/// Lexically resolve a symlink's `target`, found in folder `dir` (relative
/// to the toolkit), to a path inside the toolkit; `None` when it leaves it.
fn resolve_inside(dir: &Path, target: &Path) -> Option<PathBuf> {
    if target.is_absolute() {
        return None;
    }
    let mut parts: Vec<&OsStr> = dir
        .components()
        .filter_map(|c| match c {
            Component::Normal(p) => Some(p),
            _ => None,
        })
        .collect();
    for c in target.components() {
        match c {
            Component::Normal(p) => parts.push(p),
            Component::CurDir => {}
            Component::ParentDir => {
                parts.pop()?;
            }
            _ => return None,
        }
    }
    (!parts.is_empty()).then(|| parts.iter().collect())
}

impl ToolkitFiles {
    /// Open the toolkit directory `dir` (the path itself may be a symlink:
    /// it is the user's choice of directory).
    pub fn open(dir: &Path) -> io::Result<ToolkitFiles> {
        let root = rustix::fs::open(
            dir,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        Ok(ToolkitFiles {
            root,
            entries: Cell::new(0),
            bytes: Cell::new(0),
        })
    }

    /// Open `rel` (relative to the toolkit) one component at a time without
    /// following symlinks; the last with `last` flags.
    fn open_rel(&self, rel: &Path, last: OFlags) -> io::Result<OwnedFd> {
        let parts: Vec<&OsStr> = rel
            .components()
            .filter_map(|c| match c {
                Component::Normal(p) => Some(p),
                _ => None,
            })
            .collect();
        if parts.len() > MAX_DEPTH + 1 {
            return Err(io::Error::other(format!(
                "nested more than {MAX_DEPTH} folders deep"
            )));
        }
        let mut fd: Option<OwnedFd> = None;
        for (i, part) in parts.iter().enumerate() {
            let flags = if i + 1 == parts.len() {
                last
            } else {
                nofollow_dir()
            };
            let at = fd.as_ref().unwrap_or(&self.root);
            fd = Some(rustix::fs::openat(at, *part, flags, Mode::empty())?);
        }
        match fd {
            Some(fd) => Ok(fd),
            None => Ok(rustix::fs::openat(&self.root, ".", last, Mode::empty())?),
        }
    }

    /// The non-hidden entries of folder `rel` (`""` for the toolkit's
    /// directory), sorted by name, each classified by the rule.
    pub fn list(&self, rel: &Path) -> io::Result<Vec<Listed>> {
        let depth = rel.components().count();
        if depth > MAX_DEPTH {
            return Err(io::Error::other(format!(
                "folders nest more than {MAX_DEPTH} deep here; flatten the toolkit"
            )));
        }
        let fd = self.open_rel(rel, nofollow_dir())?;
        let mut out = Vec::new();
        for entry in rustix::fs::Dir::read_from(&fd)? {
            let entry = entry?;
            let raw = entry.file_name().to_bytes();
            if raw == b"." || raw == b".." || raw.starts_with(b".") {
                continue;
            }
            let seen = self.entries.get() + 1;
            self.entries.set(seen);
            if seen > MAX_ENTRIES {
                return Err(io::Error::other(format!(
                    "the toolkit has more than {MAX_ENTRIES} files and folders; make it smaller"
                )));
            }
            let name = String::from_utf8_lossy(raw).into_owned();
            let child = rel.join(OsStr::from_bytes(raw));
            let kind = self.classify(&fd, OsStr::from_bytes(raw), rel, &child);
            out.push(Listed {
                name,
                rel: child,
                kind,
            });
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    fn classify(&self, dir: &OwnedFd, name: &OsStr, parent: &Path, rel: &Path) -> Kind {
        let st = match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => st,
            Err(e) => return Kind::Refused(format!("cannot inspect it ({e})")),
        };
        match FileType::from_raw_mode(st.st_mode) {
            FileType::RegularFile => Kind::File {
                target: rel.to_path_buf(),
            },
            FileType::Directory => Kind::Dir,
            FileType::Symlink => {
                let target = match rustix::fs::readlinkat(dir, name, Vec::new()) {
                    Ok(t) => PathBuf::from(OsStr::from_bytes(t.to_bytes())),
                    Err(e) => return Kind::Refused(format!("cannot read the symlink ({e})")),
                };
                let shown = target.display();
                let Some(inside) = resolve_inside(parent, &target) else {
                    return Kind::Refused(format!(
                        "is a symlink to `{shown}`, which is outside the toolkit (or absolute); a toolkit is \
                         its own files: copy the file into the toolkit, or make the link relative to a file inside it"
                    ));
                };
                match self.open_rel(&inside, OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC) {
                    Ok(fd) => {
                        match rustix::fs::fstat(&fd).map(|s| FileType::from_raw_mode(s.st_mode)) {
                            Ok(FileType::RegularFile) => Kind::File { target: inside },
                            Ok(FileType::Directory) => Kind::Refused(format!(
                                "is a symlink to the folder `{shown}`; symlinks to folders are not followed (they can \
                             loop or fan out); copy the folder, or link its files one by one"
                            )),
                            Ok(FileType::Symlink) => Kind::Refused(format!(
                                "is a symlink to `{shown}`, which is itself a symlink; a link is followed once, so \
                             point it at the file itself"
                            )),
                            Ok(_) => Kind::Refused(format!(
                                "is a symlink to `{shown}`, which is not a regular file"
                            )),
                            Err(e) => Kind::Refused(format!("cannot inspect `{shown}` ({e})")),
                        }
                    }
                    Err(e) => Kind::Refused(format!(
                        "is a symlink to `{shown}`, which cannot be reached without following another \
                         symlink, or does not exist ({e})"
                    )),
                }
            }
            FileType::Fifo => Kind::Refused(
                "is a FIFO (named pipe), not a file; a toolkit holds regular files only: remove it"
                    .into(),
            ),
            FileType::Socket => Kind::Refused(
                "is a socket, not a file; a toolkit holds regular files only: remove it".into(),
            ),
            FileType::CharacterDevice | FileType::BlockDevice => Kind::Refused(
                "is a device node, not a file; a toolkit holds regular files only: remove it"
                    .into(),
            ),
            FileType::Unknown => Kind::Refused(
                "is not a regular file or folder; a toolkit holds regular files only: remove it"
                    .into(),
            ),
        }
    }

    /// Whether `rel` is a regular file (no symlink followed).
    pub fn is_file(&self, rel: &Path) -> bool {
        self.open_rel(rel, OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC)
            .and_then(|fd| Ok(rustix::fs::fstat(&fd)?))
            .is_ok_and(|st| FileType::from_raw_mode(st.st_mode) == FileType::RegularFile)
    }

    /// Read the regular file at `rel` (a [`Kind::File`] target) as text.
    pub fn read_text(&self, rel: &Path) -> Result<String, ReadError> {
        let bytes = self.read_bytes(rel)?;
        String::from_utf8(bytes).map_err(|_| ReadError::NotUtf8)
    }

    /// Read the regular file at `rel`, within the bounds of the rule.
    pub fn read_bytes(&self, rel: &Path) -> Result<Vec<u8>, ReadError> {
        let fd = self
            .open_rel(
                rel,
                OFlags::RDONLY
                    | OFlags::NOFOLLOW
                    | OFlags::NONBLOCK
                    | OFlags::NOCTTY
                    | OFlags::CLOEXEC,
            )
            .map_err(|e| match e.raw_os_error() {
                Some(libc::ELOOP) => ReadError::Refused(
                    "it was replaced by a symlink while the toolkit was read; read it again".into(),
                ),
                _ => ReadError::Io(e.to_string()),
            })?;
        read_capped(fd, &self.bytes)
    }
}

/// Read a regular file from `fd`: at most [`MAX_FILE_BYTES`], and within
/// what is left of the total `used`.
fn read_capped(fd: OwnedFd, used: &Cell<u64>) -> Result<Vec<u8>, ReadError> {
    let st = rustix::fs::fstat(&fd).map_err(|e| ReadError::Io(e.to_string()))?;
    if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
        return Err(ReadError::Refused(
            "it is not a regular file (it was replaced while the toolkit was read?); a toolkit holds regular \
             files only"
                .into(),
        ));
    }
    let left = MAX_TOTAL_BYTES.saturating_sub(used.get());
    let cap = MAX_FILE_BYTES.min(left);
    let mut buf = Vec::new();
    std::fs::File::from(fd)
        .take(cap + 1)
        .read_to_end(&mut buf)
        .map_err(|e| ReadError::Io(e.to_string()))?;
    if buf.len() as u64 > cap {
        return Err(if cap < MAX_FILE_BYTES {
            ReadError::TotalTooLarge
        } else {
            ReadError::TooLarge
        });
    }
    used.set(used.get() + buf.len() as u64);
    Ok(buf)
}

/// Read a file the user named (a built toolkit), refusing what is not a
/// regular file and anything larger than `cap`, without blocking on FIFOs.
pub fn read_user_file(path: &Path, cap: u64) -> Result<Vec<u8>, ReadError> {
    let fd = rustix::fs::open(
        path,
        OFlags::RDONLY | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| ReadError::Io(io::Error::from(e).to_string()))?;
    let st = rustix::fs::fstat(&fd).map_err(|e| ReadError::Io(e.to_string()))?;
    if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
        return Err(ReadError::Refused(
            "it is not a regular file; give a toolkit directory or a built toolkit .json file"
                .into(),
        ));
    }
    let mut buf = Vec::new();
    std::fs::File::from(fd)
        .take(cap + 1)
        .read_to_end(&mut buf)
        .map_err(|e| ReadError::Io(e.to_string()))?;
    if buf.len() as u64 > cap {
        return Err(ReadError::Refused(format!(
            "it is larger than {cap} bytes, more than a built toolkit may be"
        )));
    }
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn links_inside_are_followed_once_and_everything_else_is_refused() {
        let d = tempfile::tempdir().unwrap();
        let t = d.path().join("tk");
        std::fs::create_dir_all(t.join("resources/lib")).unwrap();
        std::fs::write(t.join("resources/lib/a.sh"), "echo a").unwrap();
        std::fs::write(d.path().join("secret"), "outside").unwrap();
        symlink("lib/a.sh", t.join("resources/b.sh")).unwrap();
        symlink("b.sh", t.join("resources/c.sh")).unwrap();
        symlink("../../secret", t.join("resources/d.sh")).unwrap();
        symlink("/etc/hostname", t.join("resources/e.sh")).unwrap();
        symlink(".", t.join("resources/f")).unwrap();
        rustix::fs::mkfifoat(
            rustix::fs::CWD,
            t.join("resources/g"),
            Mode::RUSR | Mode::WUSR,
        )
        .unwrap();
        let f = ToolkitFiles::open(&t).unwrap();
        let list = f.list(Path::new("resources")).unwrap();
        let kind = |n: &str| list.iter().find(|l| l.name == n).unwrap().kind.clone();
        assert_eq!(
            kind("b.sh"),
            Kind::File {
                target: "resources/lib/a.sh".into()
            }
        );
        assert!(matches!(kind("c.sh"), Kind::Refused(m) if m.contains("itself a symlink")));
        assert!(matches!(kind("d.sh"), Kind::Refused(m) if m.contains("outside")));
        assert!(matches!(kind("e.sh"), Kind::Refused(m) if m.contains("outside")));
        assert!(matches!(kind("f"), Kind::Refused(m) if m.contains("folder")));
        assert!(matches!(kind("g"), Kind::Refused(m) if m.contains("FIFO")));
        assert_eq!(kind("lib"), Kind::Dir);
        assert_eq!(
            f.read_text(Path::new("resources/lib/a.sh")).unwrap(),
            "echo a"
        );
        // A path through a symlink is never walked.
        assert!(f.read_text(Path::new("resources/f/lib/a.sh")).is_err());
        assert!(matches!(
            f.read_text(Path::new("resources/g")),
            Err(ReadError::Refused(_))
        ));
    }

    #[test]
    fn sizes_are_capped() {
        let d = tempfile::tempdir().unwrap();
        let big = vec![b'x'; (MAX_FILE_BYTES + 1) as usize];
        std::fs::write(d.path().join("big"), &big).unwrap();
        let f = ToolkitFiles::open(d.path()).unwrap();
        assert_eq!(f.read_bytes(Path::new("big")), Err(ReadError::TooLarge));
    }
}
