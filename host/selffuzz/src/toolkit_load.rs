//! Target (a): loading toolkits, in both forms.
//!
//! - [`target_dir`]: a file tree written to a temporary directory (a
//!   scaffolded toolkit with edits: files replaced by arbitrary bytes or
//!   mutated JSON, files and folders added or removed, symlinks inside and
//!   outside, FIFOs, sockets) is loaded, validated and built.
//! - [`target_built`]: a built toolkit (a scaffold's built JSON, mutated, or
//!   arbitrary bytes) is loaded from a file, validated and rebuilt.
//!
//! What must hold: loading and validation end without panicking (a FIFO
//! must not block them); every diagnostic has a message; a built document
//! loaded back gives the same scripts, resources and messages; building is
//! idempotent after one load; the built form of a toolkit that validates
//! also validates and holds the same scripts, resources and messages.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::Path;

use arbitrary::Unstructured;
use lunabox_toolkit::load::{self, Loaded};
use lunabox_toolkit::model::LinkedKind;
use lunabox_toolkit::{build, validate};
use serde_json::Value;

use crate::make;

/// Path components the tree is made of: the folders and files the format
/// names, and a few it does not.
const COMPONENTS: &[&str] = &[
    "main.json",
    "staged",
    "direct",
    "virtual",
    "discovery",
    "upgrade",
    "1.0",
    "x.y",
    "resources",
    "messages",
    "en-us.txt",
    "fr.txt",
    "resync.lua",
    "status.lua",
    "configure.lua",
    "start.lua",
    "repositoryDiscovery.lua",
    "upgradeSnapshot.lua",
    "notahook.lua",
    "run.sh",
    "README.md",
    "sub",
    ".hidden",
    "\u{e9}t\u{e9}.sh",
];

/// Where a symlink may point.
const LINK_TARGETS: &[&str] = &[
    "main.json",
    "../main.json",
    "resources/run.sh",
    "staged",
    "..",
    ".",
    "/etc/hostname",
    "/",
    "missing",
    "loop",
    "a/b/c",
];

/// One change to a scaffolded tree.
#[derive(Debug)]
enum Edit {
    File(String, Vec<u8>),
    Dir(String),
    Link(String, String),
    Fifo(String),
    Socket(String),
    Remove(String),
}

fn rel_path(u: &mut Unstructured) -> String {
    let n = u.int_in_range(1..=3usize).unwrap_or(1);
    (0..n)
        .map(|_| make::pick(u, COMPONENTS))
        .collect::<Vec<_>>()
        .join("/")
}

/// Contents for a file: Lua, a messages file, JSON, text with a NUL, or
/// invalid UTF-8.
fn contents(u: &mut Unstructured, manifest: &Value) -> Vec<u8> {
    match u.int_in_range(0..=6u8).unwrap_or(0) {
        0 => b"return nil\n".to_vec(),
        1 => b"local x = 1\nreturn {x = x}\n".to_vec(),
        2 => format!("greeting = hello\n# c\n{}\n", make::short_text(u, 30)).into_bytes(),
        3 => {
            let mut m = manifest.clone();
            make::mutate(u, &mut m, 3);
            serde_json::to_vec(&m).unwrap_or_default()
        }
        4 => make::json(u, 3, 3).to_string().into_bytes(),
        5 => vec![0xff, 0xfe, b'a', 0, 0x80],
        _ => {
            let n = u.int_in_range(0..=64usize).unwrap_or(0);
            u.bytes(n).map(<[u8]>::to_vec).unwrap_or_default()
        }
    }
}

fn edit(u: &mut Unstructured, manifest: &Value) -> Edit {
    let path = rel_path(u);
    match u.int_in_range(0..=9u8).unwrap_or(0) {
        0..=3 => {
            let c = contents(u, manifest);
            Edit::File(path, c)
        }
        4 => Edit::Dir(path),
        5 | 6 => Edit::Link(path, make::pick(u, LINK_TARGETS).to_string()),
        7 => Edit::Fifo(path),
        8 => Edit::Socket(path),
        _ => Edit::Remove(path),
    }
}

fn apply(root: &Path, e: &Edit) {
    // Every edit is best effort: a parent that is a file, a name taken by a
    // folder, ... simply leave the tree as it is.
    let (Edit::File(p, _)
    | Edit::Dir(p)
    | Edit::Link(p, _)
    | Edit::Fifo(p)
    | Edit::Socket(p)
    | Edit::Remove(p)) = e;
    let at = root.join(p);
    if let Some(parent) = at.parent() {
        let _ = fs::create_dir_all(parent);
    }
    if !matches!(e, Edit::Dir(_)) {
        let _ = fs::remove_file(&at);
    }
    match e {
        Edit::File(_, c) => {
            let _ = fs::write(&at, c);
        }
        Edit::Dir(_) => {
            let _ = fs::create_dir(&at);
        }
        Edit::Link(_, t) => {
            let _ = symlink(t, &at);
        }
        Edit::Fifo(_) => {
            if let Ok(c) = std::ffi::CString::new(at.as_os_str().as_encoded_bytes()) {
                // SAFETY: a valid NUL-terminated path.
                unsafe { libc::mkfifo(c.as_ptr(), 0o644) };
            }
        }
        Edit::Socket(_) => {
            // The listener is dropped at once; the socket file stays.
            let _ = std::os::unix::net::UnixListener::bind(&at);
        }
        Edit::Remove(_) => {
            let _ = fs::remove_dir_all(&at);
        }
    }
}

/// Target (a), directory form: write a tree, load, validate, build.
pub fn target_dir(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let u = &mut u;
    let kind = if u.arbitrary().unwrap_or(false) {
        LinkedKind::Direct
    } else {
        LinkedKind::Staged
    };
    let files = lunabox_toolkit::scaffold::files("fuzzed", kind).expect("a valid name");
    let manifest: Value = files
        .iter()
        .find(|(p, _)| p == "main.json")
        .and_then(|(_, t)| serde_json::from_str(t).ok())
        .expect("the scaffold has a JSON main.json");
    let tmp = tempfile::tempdir().expect("a temporary directory");
    // The toolkit is one level down, so `..` links point into the tempdir.
    let root = tmp.path().join("tk");
    fs::create_dir(&root).expect("the toolkit directory");
    fs::write(tmp.path().join("main.json"), "{\"outside\": true}").expect("an outside file");
    for (p, t) in &files {
        let at = root.join(p);
        fs::create_dir_all(at.parent().expect("a file inside the root")).expect("folders");
        fs::write(&at, t).expect("a scaffold file");
    }
    let edits = u.int_in_range(0..=8usize).unwrap_or(0);
    for _ in 0..edits {
        let e = edit(u, &manifest);
        apply(&root, &e);
    }
    match load::load(&root) {
        Ok(loaded) => check_loaded(&loaded),
        Err(e) => {
            assert!(!e.to_string().is_empty());
            let d = e.to_diagnostic();
            assert!(!d.message.is_empty());
        }
    }
}

/// Target (a), built form: load a built document from a file.
pub fn target_built(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let u = &mut u;
    let bytes = if make::chance(u, 1, 8) {
        {
            let n = u.len();
            u.bytes(n).unwrap_or_default().to_vec()
        }
    } else {
        let kind = if u.arbitrary().unwrap_or(false) {
            LinkedKind::Direct
        } else {
            LinkedKind::Staged
        };
        let mut doc = scaffold_built(kind);
        let rounds = u.int_in_range(0..=6usize).unwrap_or(0);
        make::mutate(u, &mut doc, rounds);
        serde_json::to_vec(&doc).expect("a value serializes")
    };
    let tmp = tempfile::tempdir().expect("a temporary directory");
    let file = tmp.path().join("built.json");
    fs::write(&file, &bytes).expect("the built file");
    match load::load(&file) {
        Ok(loaded) => check_loaded(&loaded),
        Err(e) => assert!(!e.to_diagnostic().message.is_empty()),
    }
}

/// The built document of a scaffolded toolkit of `kind` (made once).
pub fn scaffold_built(kind: LinkedKind) -> Value {
    static BUILT: std::sync::OnceLock<[Value; 2]> = std::sync::OnceLock::new();
    let built = BUILT.get_or_init(|| {
        [LinkedKind::Staged, LinkedKind::Direct].map(|kind| {
            let tmp = tempfile::tempdir().expect("a temporary directory");
            let dir =
                lunabox_toolkit::scaffold::create(tmp.path(), "fuzzed", kind).expect("a scaffold");
            let loaded = load::load(&dir).expect("the scaffold loads");
            build::to_built_json(&loaded.toolkit)
        })
    });
    built[usize::from(kind == LinkedKind::Direct)].clone()
}

/// The properties every loaded toolkit has (see the module doc).
fn check_loaded(loaded: &Loaded) {
    let report = validate::validate(loaded, None);
    for d in &report.diagnostics {
        assert!(
            !d.message.is_empty(),
            "a diagnostic without a message: {d:?}"
        );
    }
    let _ = report.to_json();
    let t1 = &loaded.toolkit;
    let b1 = build::to_built_json(t1);
    let l2 = load::from_built_json(b1.clone(), "built.json".into())
        .expect("a built document is an object");
    let t2 = &l2.toolkit;
    let same_parts =
        t1.scripts == t2.scripts && t1.resources == t2.resources && t1.messages == t2.messages;
    if report.ok() {
        assert!(
            same_parts,
            "a valid toolkit's built form loads back different: scripts {:?} vs {:?}",
            t1.scripts.keys().collect::<Vec<_>>(),
            t2.scripts.keys().collect::<Vec<_>>()
        );
        let r2 = validate::validate(&l2, None);
        assert!(
            r2.ok(),
            "a valid toolkit's built form does not validate: {:?}",
            r2.errors().collect::<Vec<_>>()
        );
    }
    let b2 = build::to_built_json(t2);
    let l3 = load::from_built_json(b2.clone(), "built.json".into())
        .expect("a built document is an object");
    assert_eq!(
        build::to_built_json(&l3.toolkit),
        b2,
        "building is not idempotent after one load"
    );
}
