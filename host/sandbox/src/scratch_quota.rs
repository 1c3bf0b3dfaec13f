//! A hook's scratch directory as the guest sees it: given on demand, and
//! metered.
//!
//! **On demand.** The WASI context has no preopens. The guest asks for its
//! directories (`wasi:filesystem/preopens.get-directories`) on its first
//! file operation, and only then does [`HookScratch`] take a directory from
//! the pool and hand it out as `/`. A hook that touches no file (most of
//! them) costs the host no open, no check and no directory; one that does
//! gets an empty directory of its own, as before.
//!
//! **Metered.**
//! wasmtime-wasi writes a hook's files with no limit of its own, so a hook
//! could fill the host's disk at whatever speed the disk takes. This module
//! meters the filesystem imports through which the guest makes or grows
//! files (`open-at` with `create`, and every byte written through a stream
//! from `write-via-stream` or `append-via-stream`), shadowing wasmtime-wasi's
//! definitions in the linker and calling them for the real work.
//!
//! What is limited is the space the directory holds, not the bytes written:
//! each file counts what it occupies on disk plus [`ENTRY_BYTES`]. The meter
//! keeps a running estimate (bytes written plus [`ENTRY_BYTES`] per create);
//! only when that passes the cap is the directory walked to measure it, so
//! a hook that rewrites one file many times is not stopped for it. A hook
//! whose directory really holds more than the cap stops with
//! [`LimitKind::Scratch`].
//!
//! The guest only imports the filesystem functions in [`METERED`] and the
//! read-only ones in [`UNMETERED`]; a test checks that list against the
//! component, so a new guest that imports, say, `descriptor.write` fails the
//! tests until it is metered here.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use wasmtime::StoreContextMut;
use wasmtime::component::{Linker, Resource};
use wasmtime_wasi::filesystem::{Descriptor, Dir, WasiFilesystemView};
use wasmtime_wasi::p2::bindings::filesystem::types::{self as fs_types, ErrorCode, HostDescriptor};
use wasmtime_wasi::p2::{DynOutputStream, FsResult, OutputStream, Pollable, StreamError};
use wasmtime_wasi::{FsPerms, OpenMode};

use super::limits::{LimitHit, LimitKind};
use super::scratch::{Scratch, ScratchSource};
use super::state::HookState;

/// What each file or directory costs besides its data: an inode and a
/// directory entry are not free, and a hook must not be able to exhaust a
/// filesystem's inodes with empty files.
pub const ENTRY_BYTES: u64 = 4096;

/// The WASI interface (and version) whose functions are metered.
pub const INTERFACE: &str = "wasi:filesystem/types@0.2.12";
/// The WASI interface (and version) through which the guest asks for its
/// directories, and its one function.
pub const PREOPENS: (&str, &str) = ("wasi:filesystem/preopens@0.2.12", "get-directories");
/// Functions of [`INTERFACE`] that can make files or grow them: metered.
pub const METERED: &[&str] = &[
    "[method]descriptor.open-at",
    "[method]descriptor.write-via-stream",
    "[method]descriptor.append-via-stream",
];
/// Functions of [`INTERFACE`] the guest imports that only read, or free
/// space: not metered. (Read by the test that checks the guest's imports.)
#[cfg_attr(not(test), allow(dead_code))]
pub const UNMETERED: &[&str] = &[
    "[method]descriptor.read-via-stream",
    "[method]descriptor.get-type",
    "[method]descriptor.stat",
    "[method]descriptor.remove-directory-at",
    "[method]descriptor.rename-at",
    "[method]descriptor.unlink-file-at",
];

/// One hook's scratch directory, taken from the pool when the guest first
/// asks for its directories, and returned to it when the hook's store is
/// dropped.
pub struct HookScratch {
    source: ScratchSource,
    cap: u64,
    taken: Option<Taken>,
}

/// A directory given to a hook. (Fields drop in order: the descriptor is
/// closed before the directory goes back to the pool.)
struct Taken {
    dir: Dir,
    meter: Arc<ScratchMeter>,
    _lease: Scratch,
}

impl HookScratch {
    /// A hook's scratch, from `source`, holding at most `cap` bytes; no
    /// directory is taken yet.
    pub fn new(source: ScratchSource, cap: u64) -> HookScratch {
        HookScratch {
            source,
            cap,
            taken: None,
        }
    }

    /// The hook's directory, taken now if it has none.
    fn dir(&mut self) -> std::io::Result<Dir> {
        if let Some(t) = &self.taken {
            return Ok(t.dir.clone());
        }
        let lease = self.source.take()?;
        // As wasmtime-wasi opens a preopened directory (O_PATH: the handle
        // only names the directory; every operation goes through it).
        let file = {
            use std::os::unix::fs::OpenOptionsExt;
            std::fs::OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_DIRECTORY | libc::O_PATH)
                .open(lease.path())?
        };
        let dir = Dir::new(
            file,
            FsPerms::ReadWrite,
            OpenMode::READ | OpenMode::WRITE,
            false,
        );
        let meter = ScratchMeter::new(lease.path(), self.cap);
        self.taken = Some(Taken {
            dir: dir.clone(),
            meter,
            _lease: lease,
        });
        Ok(dir)
    }

    /// The meter of the directory, once one is taken.
    fn meter(&self) -> Option<&Arc<ScratchMeter>> {
        self.taken.as_ref().map(|t| &t.meter)
    }

    /// Count `bytes` more (nothing to count before a directory is taken:
    /// without one the guest has no descriptor to write through).
    fn charge(&self, bytes: u64) -> Result<(), LimitHit> {
        match self.meter() {
            Some(m) => m.charge(bytes),
            None => Ok(()),
        }
    }
}

/// The space accounting of one hook's scratch directory, shared by the
/// hook's state and every file stream it opens.
#[derive(Debug)]
pub struct ScratchMeter {
    root: PathBuf,
    cap: u64,
    inner: Mutex<Estimate>,
}

/// An upper bound of what the directory holds, in bytes.
#[derive(Debug, Default)]
struct Estimate {
    bytes: u64,
}

impl ScratchMeter {
    pub fn new(root: &Path, cap: u64) -> Arc<ScratchMeter> {
        Arc::new(ScratchMeter {
            root: root.to_path_buf(),
            cap,
            inner: Mutex::new(Estimate::default()),
        })
    }

    /// Count `bytes` more. Past the cap the directory is measured; if it
    /// really holds more than the cap with these bytes, the hook stops.
    pub fn charge(&self, bytes: u64) -> Result<(), LimitHit> {
        let mut est = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        est.bytes = est.bytes.saturating_add(bytes);
        if est.bytes <= self.cap {
            return Ok(());
        }
        let held = usage(&self.root);
        est.bytes = held.saturating_add(bytes);
        if est.bytes > self.cap {
            tracing::debug!(
                held,
                adding = bytes,
                cap = self.cap,
                "scratch space limit reached"
            );
            return Err(LimitHit(LimitKind::Scratch));
        }
        Ok(())
    }
}

/// What `root` holds: every entry under it, each as its allocated blocks
/// plus [`ENTRY_BYTES`]. Symbolic links are not followed; an entry that
/// vanishes while being read counts nothing.
pub fn usage(root: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let mut total = 0u64;
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(meta) = entry.path().symlink_metadata() else {
                continue;
            };
            total = total
                .saturating_add(ENTRY_BYTES)
                .saturating_add(meta.blocks().saturating_mul(512));
            if meta.is_dir() {
                pending.push(entry.path());
            }
        }
    }
    total
}

/// A file's output stream that charges the meter for every byte before the
/// real stream writes it.
struct MeteredStream {
    inner: DynOutputStream,
    meter: Arc<ScratchMeter>,
}

impl MeteredStream {
    fn charge(&self, bytes: usize) -> Result<(), StreamError> {
        self.meter
            .charge(bytes as u64)
            .map_err(|hit| StreamError::Trap(wasmtime::Error::new(hit)))
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for MeteredStream {
    async fn ready(&mut self) {
        self.inner.ready().await
    }
}

#[wasmtime_wasi::async_trait]
impl OutputStream for MeteredStream {
    fn write(&mut self, bytes: bytes::Bytes) -> Result<(), StreamError> {
        self.charge(bytes.len())?;
        self.inner.write(bytes)
    }

    fn flush(&mut self) -> Result<(), StreamError> {
        self.inner.flush()
    }

    fn check_write(&mut self) -> Result<usize, StreamError> {
        self.inner.check_write()
    }

    async fn blocking_write_and_flush(&mut self, bytes: bytes::Bytes) -> Result<(), StreamError> {
        self.charge(bytes.len())?;
        self.inner.blocking_write_and_flush(bytes).await
    }

    fn write_zeroes(&mut self, nelem: usize) -> Result<(), StreamError> {
        self.charge(nelem)?;
        self.inner.write_zeroes(nelem)
    }

    async fn write_ready(&mut self) -> Result<usize, StreamError> {
        self.inner.write_ready().await
    }

    async fn cancel(&mut self) {
        self.inner.cancel().await
    }
}

/// wasmtime-wasi's `FsResult` as the `result<_, error-code>` the guest
/// receives (an error that is not an error code is a trap).
fn to_guest<T>(r: FsResult<T>) -> wasmtime::Result<Result<T, ErrorCode>> {
    match r {
        Ok(v) => Ok(Ok(v)),
        Err(e) => Ok(Err(e.downcast()?)),
    }
}

/// Swap the stream wasmtime-wasi made for a metered one, under a new handle.
fn meter_stream(
    state: &mut HookState,
    made: FsResult<Resource<DynOutputStream>>,
) -> wasmtime::Result<(Result<Resource<DynOutputStream>, ErrorCode>,)> {
    let stream = match to_guest(made)? {
        Ok(s) => s,
        Err(code) => return Ok((Err(code),)),
    };
    let meter = state
        .scratch
        .meter()
        .ok_or_else(|| wasmtime::Error::msg("a file stream without a scratch directory"))?
        .clone();
    let inner = state.table.delete(stream)?;
    let metered: DynOutputStream = Box::new(MeteredStream { inner, meter });
    Ok((Ok(state.table.push(metered)?),))
}

/// Shadow wasmtime-wasi's (already in `linker`) `get-directories` with one
/// that gives the hook its scratch directory on demand, and the [`METERED`]
/// functions with metered ones.
pub fn add_to_linker(linker: &mut Linker<HookState>) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    linker.instance(PREOPENS.0)?.func_wrap(
        PREOPENS.1,
        |mut store: StoreContextMut<'_, HookState>, (): ()| {
            let state = store.data_mut();
            let dir = state.scratch.dir().map_err(|e| {
                wasmtime::Error::msg(format!("cannot give the hook its scratch directory: {e}"))
            })?;
            let fd = state.table.push(Descriptor::Dir(dir))?;
            Ok((vec![(fd, "/".to_string())],))
        },
    )?;
    let mut types = linker.instance(INTERFACE)?;
    types.func_wrap_async(
        METERED[0],
        |mut store: StoreContextMut<'_, HookState>,
         (fd, path_flags, path, open_flags, flags): (
            Resource<Descriptor>,
            fs_types::PathFlags,
            String,
            fs_types::OpenFlags,
            fs_types::DescriptorFlags,
        )| {
            Box::new(async move {
                let state = store.data_mut();
                if open_flags.contains(fs_types::OpenFlags::CREATE) {
                    state.scratch.charge(ENTRY_BYTES)?;
                }
                let opened = HostDescriptor::open_at(
                    &mut state.filesystem(),
                    fd,
                    path_flags,
                    path,
                    open_flags,
                    flags,
                )
                .await;
                Ok((to_guest(opened)?,))
            })
        },
    )?;
    types.func_wrap(
        METERED[1],
        |mut store: StoreContextMut<'_, HookState>, (fd, offset): (Resource<Descriptor>, u64)| {
            let state = store.data_mut();
            let made = HostDescriptor::write_via_stream(&mut state.filesystem(), fd, offset);
            meter_stream(state, made)
        },
    )?;
    types.func_wrap(
        METERED[2],
        |mut store: StoreContextMut<'_, HookState>, (fd,): (Resource<Descriptor>,)| {
            let state = store.data_mut();
            let made = HostDescriptor::append_via_stream(&mut state.filesystem(), fd);
            meter_stream(state, made)
        },
    )?;
    linker.allow_shadowing(false);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_estimate_is_corrected_by_measuring_before_stopping() {
        let dir = tempfile::tempdir().unwrap();
        let meter = ScratchMeter::new(dir.path(), 64 << 10);
        // Rewriting one small file many times: the estimate passes the cap,
        // the measurement finds ~8 KiB, and the hook goes on.
        for _ in 0..100 {
            meter.charge(4096).unwrap();
            std::fs::write(dir.path().join("f"), [7u8; 4096]).unwrap();
        }
        // Really holding more than the cap stops it.
        std::fs::write(dir.path().join("big"), vec![1u8; 80 << 10]).unwrap();
        assert!(matches!(meter.charge(1), Err(LimitHit(LimitKind::Scratch))));
    }

    /// A runtime with room for `hooks` hooks at once.
    fn runtime(hooks: u32) -> crate::Runtime {
        crate::Runtime::new(crate::RuntimeConfig {
            max_concurrent_hooks: hooks,
            ..Default::default()
        })
        .unwrap()
    }

    #[test]
    fn every_filesystem_function_the_guest_imports_is_accounted_for() {
        let rt = runtime(1);
        let (engine, component) = rt.guest();
        let mut seen = Vec::new();
        for (name, item) in component.component_type().imports(engine) {
            if !name.starts_with("wasi:filesystem/types@") {
                continue;
            }
            assert_eq!(name, INTERFACE, "the guest imports another version");
            let wasmtime::component::types::ComponentItem::ComponentInstance(inst) = item.ty else {
                panic!("{name} is not an instance");
            };
            for (f, ty) in inst.exports(engine) {
                if matches!(
                    ty.ty,
                    wasmtime::component::types::ComponentItem::ComponentFunc(_)
                ) {
                    seen.push(f.to_string());
                }
            }
        }
        for f in &seen {
            assert!(
                METERED.contains(&f.as_str()) || UNMETERED.contains(&f.as_str()),
                "the guest imports {f} from {INTERFACE}: meter it in scratch_quota.rs \
                 if it can make or grow files, else list it in UNMETERED"
            );
        }
        for f in METERED {
            assert!(seen.iter().any(|s| s == f), "{f} is no longer imported");
        }
    }

    #[test]
    fn only_a_hook_that_uses_files_takes_a_directory_and_each_gets_an_empty_one() {
        let rt = runtime(2);
        let run = |script: &str| rt.run_hook(crate::HookRequest::new(script, "t.lua")).result;
        // No file operation: no directory, and nothing to open or check.
        for _ in 0..5 {
            assert!(run("return 1 + 1").is_ok());
        }
        assert_eq!(
            rt.scratch.taken(),
            0,
            "a hook without files took a directory"
        );
        // The first file operation gives the hook its directory, empty; what
        // it wrote is not seen by the next hook.
        let write = "local f = assert(io.open('/a.txt', 'w')); f:write('x'); f:close(); \
                     return io.open('/a.txt'):read('a')";
        for _ in 0..3 {
            assert_eq!(
                run(&format!(
                    "assert(io.open('/a.txt') == nil, 'left by another hook') {write}"
                )),
                crate::Outcome::Value(serde_json::json!("x"))
            );
        }
        assert_eq!(rt.scratch.taken(), 3);
        // Several file operations in one hook: one directory.
        assert!(run("io.open('/b', 'w'):close(); io.open('/c', 'w'):close(); return 0").is_ok());
        assert_eq!(rt.scratch.taken(), 4);
    }

    #[test]
    fn empty_files_cost_an_entry_each() {
        let dir = tempfile::tempdir().unwrap();
        for i in 0..10 {
            std::fs::write(dir.path().join(format!("e{i}")), "").unwrap();
        }
        assert_eq!(usage(dir.path()), 10 * ENTRY_BYTES);
    }
}
