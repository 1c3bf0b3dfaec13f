//! Paths of the repository's fixtures and copying trees, for tests of any
//! crate (included with `#[path]`; needs nothing but std).
#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// The repository root.
pub fn repo() -> PathBuf {
    repo_root()
}

/// tests/fixtures/toolkits.
pub fn fixtures() -> PathBuf {
    repo().join("tests/fixtures/toolkits")
}

/// toolkits/delphixdb.
pub fn delphixdb() -> PathBuf {
    repo().join("toolkits/delphixdb")
}

/// The repository root, from the including crate's manifest directory
/// (the top package, or one under host/).
fn repo_root() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    if dir.join("toolkits").is_dir() {
        dir.to_path_buf()
    } else {
        dir.join("../..")
    }
}

/// Copy the directory tree `from` to `to` (files and subdirectories).
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let p = e.path();
        if p.is_dir() {
            copy_dir(&p, &to.join(e.file_name()));
        } else {
            std::fs::copy(&p, to.join(e.file_name())).unwrap();
        }
    }
}
