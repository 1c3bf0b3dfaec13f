//! Shared set-up for the engine tests: a lab directory with its own state,
//! the `lunabox` binary driven with `LUNABOX_STATE`, and the efix fixture
//! toolkit (tests/fixtures/engine/efix) wired to a source and a control
//! directory.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_lunabox");

/// The binary the tests drive: `LUNABOX_BIN` when set (to run a suite
/// against another build, e.g. to show a regression test fails on an old
/// one), else this build's.
pub fn bin() -> String {
    std::env::var("LUNABOX_BIN").unwrap_or_else(|_| BIN.to_string())
}

/// The repository root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf()
}

/// A fixture toolkit directory.
pub fn fixture(name: &str) -> PathBuf {
    repo().join("tests/fixtures/engine").join(name)
}

/// One test's world: a temp dir holding the state, a source directory
/// (`src`), a control directory (`ctl`) and the config file pointing to them.
pub struct Lab {
    pub dir: tempfile::TempDir,
}

impl Lab {
    pub fn new() -> Lab {
        Lab::with_dir(tempfile::tempdir().unwrap())
    }

    /// A lab under `base` (e.g. a loop-mounted filesystem).
    pub fn in_dir(base: &Path) -> Lab {
        Lab::with_dir(tempfile::tempdir_in(base).unwrap())
    }

    fn with_dir(dir: tempfile::TempDir) -> Lab {
        for d in ["src", "ctl"] {
            std::fs::create_dir_all(dir.path().join(d)).unwrap();
        }
        let cfg = serde_json::json!({
            "path": dir.path().join("src"),
            "control": dir.path().join("ctl"),
        });
        std::fs::write(dir.path().join("config.json"), cfg.to_string()).unwrap();
        Lab { dir }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }
    pub fn state(&self) -> PathBuf {
        self.path("state")
    }
    pub fn src(&self) -> PathBuf {
        self.path("src")
    }
    pub fn ctl(&self) -> PathBuf {
        self.path("ctl")
    }
    pub fn storage(&self, ds: &str) -> PathBuf {
        self.state().join("storage").join(ds)
    }
    pub fn snapshot_files(&self, ds: &str, id: u64) -> PathBuf {
        self.storage(ds)
            .join("snapshots")
            .join(id.to_string())
            .join("files")
    }

    /// A `lunabox` command on this lab's state.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(bin());
        c.args(args)
            .env("LUNABOX_STATE", self.state())
            .env_remove("RUST_BACKTRACE")
            .env_remove("RUST_LOG")
            .stdin(Stdio::null());
        c
    }

    /// Run `lunabox ARGS`.
    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().unwrap()
    }

    /// Run `lunabox ARGS` and require success.
    pub fn ok(&self, args: &[&str]) -> Output {
        let o = self.run(args);
        assert!(o.status.success(), "lunabox {args:?} failed:\n{}", show(&o));
        o
    }

    /// Run `lunabox ARGS` (which must take `--json`) and parse stdout.
    pub fn json(&self, args: &[&str]) -> (bool, Value) {
        let mut a = args.to_vec();
        a.push("--json");
        let o = self.run(&a);
        let v: Value = serde_json::from_slice(&o.stdout)
            .unwrap_or_else(|e| panic!("lunabox {a:?}: stdout is not JSON ({e}):\n{}", show(&o)));
        (o.status.success(), v)
    }

    /// Write a control file: the next runs of `hook` obey `mode`.
    pub fn control(&self, hook: &str, mode: &str) {
        std::fs::write(self.ctl().join(hook), mode).unwrap();
    }
    /// Remove a control file.
    pub fn clear(&self, hook: &str) {
        let _ = std::fs::remove_file(self.ctl().join(hook));
    }
    /// The hooks run so far, in order.
    pub fn ran(&self) -> Vec<String> {
        std::fs::read_to_string(self.ctl().join("ran"))
            .unwrap_or_default()
            .lines()
            .map(String::from)
            .collect()
    }
    pub fn reset_ran(&self) {
        let _ = std::fs::remove_file(self.ctl().join("ran"));
    }

    /// Add env `local`, install efix, seed the source, link `name`.
    pub fn linked_efix(&self, name: &str) -> Value {
        self.ok(&["env", "add", "local", "--local"]);
        self.ok(&["toolkit", "install", fixture("efix").to_str().unwrap()]);
        write(&self.src().join("a.txt"), "alpha\n");
        write(&self.src().join("sub/b.txt"), "beta\n");
        settle();
        let (ok, v) = self.link_json(name, "efix", &[]);
        assert!(ok, "link failed: {v:#}");
        v
    }

    /// `link NAME --toolkit TOOLKIT --environment local --config
    /// <lab>/config.json`, then `extra`.
    fn link_args(&self, name: &str, toolkit: &str, extra: &[&str]) -> Vec<String> {
        let config = self.path("config.json");
        let a: Vec<String> = [
            "link",
            name,
            "--toolkit",
            toolkit,
            "--environment",
            "local",
            "--config",
            config.to_str().unwrap(),
        ]
        .iter()
        .chain(extra)
        .map(|s| s.to_string())
        .collect();
        a
    }

    /// Run [`Lab::link_args`] (see there).
    pub fn link(&self, name: &str, toolkit: &str, extra: &[&str]) -> Output {
        let a = self.link_args(name, toolkit, extra);
        self.run(&a.iter().map(String::as_str).collect::<Vec<_>>())
    }

    /// Run [`Lab::link_args`] with `--json`: (success, parsed stdout).
    pub fn link_json(&self, name: &str, toolkit: &str, extra: &[&str]) -> (bool, Value) {
        let a = self.link_args(name, toolkit, extra);
        self.json(&a.iter().map(String::as_str).collect::<Vec<_>>())
    }

    /// The snapshot ids of `ds`.
    pub fn snapshot_ids(&self, ds: &str) -> Vec<u64> {
        let (ok, v) = self.json(&["snapshots", ds]);
        assert!(ok);
        v.as_array()
            .unwrap()
            .iter()
            .map(|s| s["id"].as_u64().unwrap())
            .collect()
    }

    /// Names in the snapshots directory of `ds` (committed and partial).
    pub fn snapshot_dirs(&self, ds: &str) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(self.storage(ds).join("snapshots"))
            .map(|rd| {
                rd.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    }
}

/// Write a file, creating its directory.
pub fn write(p: &Path, text: &str) {
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

/// Let a file's change age past the snapshot store's racy-file window.
pub fn settle() {
    std::thread::sleep(std::time::Duration::from_millis(250));
}

/// stdout and stderr of a run, for assertion messages.
pub fn show(o: &Output) -> String {
    format!(
        "status: {:?}\n--- stdout\n{}\n--- stderr\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// The steps of a job JSON as (step, outcome).
pub fn steps(job: &Value) -> Vec<(String, String)> {
    job["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["step"].as_str().unwrap().to_string(),
                s["outcome"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// `[(name, outcome)]` from string pairs.
pub fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
    p.iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}
