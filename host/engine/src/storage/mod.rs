//! Storage drivers: how the snapshot store makes point-in-time copies of a
//! dSource's data and writable copies (VDBs) of a snapshot, each using what
//! the filesystem under `<state>/storage` already does rather than a block
//! store of our own.
//!
//! | driver    | filesystems                          | snapshot                                  | VDB                      |
//! |-----------|--------------------------------------|-------------------------------------------|--------------------------|
//! | `btrfs`   | btrfs                                | read-only subvolume snapshot (constant time) | writable subvolume snapshot |
//! | `reflink` | XFS (`reflink=1`), bcachefs, OCFS2, btrfs without subvolumes | unchanged files hard-linked, changed files cloned (`FICLONE`) | every file cloned |
//! | `copy`    | ext4, tmpfs, the rest                | unchanged files hard-linked, changed files copied whole | full copy |
//!
//! The driver is chosen when the state directory is made ([`detect`]: the
//! storage directory's filesystem type and what this process can do there,
//! tried on scratch files), or named with `--storage-driver` ([`check`]),
//! and recorded in the state database ([`resolve`]); later commands use the
//! recorded one. The snapshot store ([`crate::snapshots`]) keeps one
//! layout, crash safety and atomic commit for every driver: it asks the
//! driver only to make the live directory ([`StorageDriver::create_live`]),
//! to snapshot or clone a whole tree when it can
//! ([`StorageDriver::snapshot_whole`], [`StorageDriver::clone_whole`]),
//! and to copy one file ([`StorageDriver::copy_file`]).
//!
//! What a snapshot really holds is measured from the filesystem by
//! [`usage::measure`] (extent sharing via `FIEMAP`), never inferred from
//! what was copied.

pub mod btrfs;
pub mod copy;
pub mod reflink;
pub mod sys;
pub mod usage;

use std::ffi::OsStr;
use std::fmt;
use std::fs::File;
use std::io::{self, Write};
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;

use rusqlite::OptionalExtension;
use rustix::fd::BorrowedFd;
use serde::{Deserialize, Serialize};

use crate::error::{EngineError, Result};
use crate::state::State;
pub use usage::{Usage, measure};

/// The drivers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DriverKind {
    /// btrfs subvolumes and read-only subvolume snapshots.
    Btrfs,
    /// Files cloned with FICLONE (XFS with reflink, btrfs, ...).
    Reflink,
    /// Plain copies, with hard links for unchanged files.
    Copy,
}

impl DriverKind {
    /// `btrfs`, `reflink` or `copy`.
    pub fn as_str(self) -> &'static str {
        match self {
            DriverKind::Btrfs => "btrfs",
            DriverKind::Reflink => "reflink",
            DriverKind::Copy => "copy",
        }
    }
}

impl fmt::Display for DriverKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for DriverKind {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "btrfs" => Ok(DriverKind::Btrfs),
            "reflink" => Ok(DriverKind::Reflink),
            "copy" => Ok(DriverKind::Copy),
            other => Err(format!(
                "`{other}` is not a storage driver: use btrfs, reflink, copy or auto"
            )),
        }
    }
}

/// How one file reached its copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CopyKind {
    /// Cloned: the copy shares every block with its source.
    Cloned,
    /// Written: the copy has blocks of its own.
    Written,
}

/// What the snapshot store asks of the filesystem.
pub trait StorageDriver: Send + Sync + fmt::Debug {
    /// Which driver this is.
    fn kind(&self) -> DriverKind;

    /// Make the (empty) live data directory `path` of a new dSource or VDB.
    fn create_live(&self, path: &Path) -> io::Result<()> {
        std::fs::create_dir_all(path)
    }

    /// Prepare a storage directory, once, before data goes in (XFS: the CoW
    /// extent size hint, which what is created inside inherits).
    fn prepare_dir(&self, _dir: &Path) -> io::Result<()> {
        Ok(())
    }

    /// Prepare a live file about to be snapshotted (XFS: the hint again, for
    /// files that did not inherit it). Failures are not errors.
    fn prepare_live_file(&self, _file: &File) {}

    /// Snapshot the whole live directory `live` as the read-only tree `name`
    /// in `parent`, in one step, if this driver can for this directory.
    /// `Ok(false)`: walk it instead.
    fn snapshot_whole(
        &self,
        _live: BorrowedFd<'_>,
        _parent: BorrowedFd<'_>,
        _name: &OsStr,
    ) -> io::Result<bool> {
        Ok(false)
    }

    /// Make `dest` (which does not exist) a writable copy of the snapshot
    /// tree `tree` in one step, if this driver can. `Ok(false)`: copy it
    /// file by file instead.
    fn clone_whole(&self, _tree: &Path, _dest: &Path) -> io::Result<bool> {
        Ok(false)
    }

    /// Give the new, empty file `dst` the content of `src`.
    fn copy_file(&self, src: &File, dst: &File) -> io::Result<CopyKind>;

    /// How many [`Self::copy_file`]s a snapshot runs at once. A copy of
    /// bytes waits on the disk, so several overlap well (the default).
    fn copy_threads(&self) -> usize {
        4
    }
}

/// A driver, shared.
pub type Driver = Arc<dyn StorageDriver>;

/// The driver of `kind`.
pub fn driver(kind: DriverKind) -> Driver {
    match kind {
        DriverKind::Btrfs => Arc::new(btrfs::BtrfsDriver),
        DriverKind::Reflink => Arc::new(reflink::ReflinkDriver),
        DriverKind::Copy => Arc::new(copy::CopyDriver),
    }
}

/// The driver of a state, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Choice {
    /// The driver in use.
    pub driver: DriverKind,
    /// The storage directory's filesystem when the choice was made.
    pub filesystem: String,
    /// Why this driver (detected, or asked for).
    pub reason: String,
}

/// The filesystem `dir` is on.
pub fn filesystem_of(dir: &Path) -> io::Result<String> {
    Ok(sys::fs_name(sys::fs_magic(File::open(dir)?)?))
}

/// Whether `FICLONE` works in `dir`: tried on two scratch files.
pub fn probe_reflink(dir: &Path) -> io::Result<()> {
    let a = tempfile::Builder::new()
        .prefix(".lunabox-probe-")
        .tempfile_in(dir)?;
    a.as_file().write_all(&[0x5a; 4096])?;
    a.as_file().sync_all()?;
    let b = tempfile::Builder::new()
        .prefix(".lunabox-probe-")
        .tempfile_in(dir)?;
    rustix::fs::ioctl_ficlone(b.as_file(), a.as_file())?;
    Ok(())
}

/// The best driver for the storage directory `dir`.
pub fn detect(dir: &Path) -> io::Result<Choice> {
    let fs = filesystem_of(dir)?;
    if fs == "btrfs" {
        match btrfs::probe(dir) {
            Ok(()) => {
                return Ok(Choice {
                    driver: DriverKind::Btrfs,
                    filesystem: fs,
                    reason: "detected: btrfs, subvolume snapshots work here".into(),
                });
            }
            Err(e) => {
                if probe_reflink(dir).is_ok() {
                    return Ok(Choice {
                        driver: DriverKind::Reflink,
                        filesystem: fs,
                        reason: format!(
                            "detected: btrfs, but subvolumes cannot be used here ({e}); files are cloned"
                        ),
                    });
                }
            }
        }
    }
    match probe_reflink(dir) {
        Ok(()) => Ok(Choice {
            driver: DriverKind::Reflink,
            filesystem: fs.clone(),
            reason: format!("detected: {fs} clones files (FICLONE)"),
        }),
        Err(e) => Ok(Choice {
            driver: DriverKind::Copy,
            filesystem: fs.clone(),
            reason: format!("detected: {fs} cannot share blocks between files ({e})"),
        }),
    }
}

/// Whether driver `kind`, asked for by name, works in `dir`.
pub fn check(dir: &Path, kind: DriverKind) -> Result<Choice> {
    let fs = filesystem_of(dir)
        .map_err(|e| EngineError::io("cannot inspect the storage directory", dir, e))?;
    let refuse = |why: String| {
        EngineError::Invalid(format!(
            "--storage-driver {kind}: the storage directory `{}` is on {fs}, and {why}; \
             use --storage-driver auto (or copy), or put the state directory on a filesystem that can",
            dir.display()
        ))
    };
    match kind {
        DriverKind::Btrfs => {
            if fs != "btrfs" {
                return Err(refuse("only btrfs has subvolumes".into()));
            }
            btrfs::probe(dir)
                .map_err(|e| refuse(format!("subvolumes cannot be used there ({e})")))?;
        }
        DriverKind::Reflink => {
            probe_reflink(dir).map_err(|e| refuse(format!("it cannot clone files ({e})")))?;
        }
        DriverKind::Copy => {}
    }
    Ok(Choice {
        driver: kind,
        filesystem: fs,
        reason: "asked for with --storage-driver".into(),
    })
}

/// What `link` says on the copy driver.
pub fn copy_warning(filesystem: &str) -> String {
    format!(
        "warning: the storage is on {filesystem}, which cannot share blocks between files \
         (storage driver `copy`): every snapshot of a database costs its full size, since \
         each changed file is copied whole, and every VDB is a full copy. btrfs (subvolume \
         snapshots) and XFS made with reflink=1 (file clones) share unchanged blocks: put \
         the state directory there (see the README, \"Storage drivers\")"
    )
}

const KEY: &str = "storage";

/// The recorded choice of `state`, if any.
pub fn recorded(state: &State) -> Result<Option<Choice>> {
    let text: Option<String> = state
        .conn()
        .query_row("SELECT value FROM settings WHERE key = ?1", [KEY], |r| {
            r.get(0)
        })
        .optional()
        .map_err(EngineError::db("reading the storage driver"))?;
    Ok(text.and_then(|t| serde_json::from_str(&t).ok()))
}

fn record(state: &State, choice: &Choice, replace: bool) -> Result<()> {
    let sql = if replace {
        "INSERT OR REPLACE INTO settings (key, value) VALUES (?1, ?2)"
    } else {
        // Two processes opening a new state at once: the first one wins.
        "INSERT OR IGNORE INTO settings (key, value) VALUES (?1, ?2)"
    };
    let text = serde_json::to_string(choice).unwrap_or_default();
    state
        .conn()
        .execute(sql, [KEY, text.as_str()])
        .map_err(EngineError::db("recording the storage driver"))?;
    Ok(())
}

/// The driver of the state: the recorded one; on a new state the one
/// `requested` (`None`: detected), then recorded. Asking for another
/// driver than the recorded one is refused once the state holds data.
pub fn resolve(
    state: &State,
    storage_root: &Path,
    requested: Option<DriverKind>,
) -> Result<Choice> {
    let have = recorded(state)?;
    match (have, requested) {
        (Some(c), None) => Ok(c),
        (Some(c), Some(k)) if c.driver == k => Ok(c),
        (Some(c), Some(k)) => {
            let used: i64 = state
                .conn()
                .query_row(
                    "SELECT (SELECT count(*) FROM dsources) + (SELECT count(*) FROM vdbs)",
                    [],
                    |r| r.get(0),
                )
                .map_err(EngineError::db("counting dSources"))?;
            if used > 0 {
                return Err(EngineError::Conflict(format!(
                    "--storage-driver {k}: this state directory keeps its data with the `{}` driver \
                     (chosen when it was made: {}), and it holds dSources; a driver applies to a new \
                     state directory: use another --state",
                    c.driver, c.reason
                )));
            }
            let choice = check(storage_root, k)?;
            record(state, &choice, true)?;
            Ok(choice)
        }
        (None, requested) => {
            let choice = match requested {
                Some(k) => check(storage_root, k)?,
                None => detect(storage_root).map_err(|e| {
                    EngineError::io("cannot inspect the storage directory", storage_root, e)
                })?,
            };
            record(state, &choice, false)?;
            Ok(recorded(state)?.unwrap_or(choice))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn driver_names_parse() {
        assert_eq!("btrfs".parse::<DriverKind>().unwrap(), DriverKind::Btrfs);
        assert_eq!(
            "Reflink".parse::<DriverKind>().unwrap(),
            DriverKind::Reflink
        );
        assert!(
            "zfs"
                .parse::<DriverKind>()
                .unwrap_err()
                .contains("btrfs, reflink, copy")
        );
    }

    #[test]
    fn copy_always_works_and_detection_names_the_filesystem() {
        let d = tempfile::tempdir().unwrap();
        let c = check(d.path(), DriverKind::Copy).unwrap();
        assert_eq!(c.driver, DriverKind::Copy);
        let found = detect(d.path()).unwrap();
        assert_eq!(found.filesystem, filesystem_of(d.path()).unwrap());
        // No probe files are left behind.
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 0);
    }
}
