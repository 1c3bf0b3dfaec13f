//! Helpers shared by the toolkit tests (included with `#[path]`): fixture
//! paths, running the `lunabox` binary, and a private copy of the simulated
//! `delphixdb` program.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

#[path = "paths.rs"]
mod paths;
pub use paths::*;

/// The lunabox binary (only in integration tests of the binary).
pub fn lunabox(args: &[&str]) -> Output {
    let bin =
        std::env::var("LUNABOX_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_lunabox").to_string());
    Command::new(bin)
        .args(args)
        .env_remove("RUST_BACKTRACE")
        .output()
        .expect("run lunabox")
}

/// `lunabox run-hook TOOLKIT HOOK --context CONTEXT EXTRA... --json`.
pub fn run_hook(toolkit: &Path, hook: &str, context: &Path, extra: &[&str]) -> Output {
    let mut args = vec![
        "run-hook",
        toolkit.to_str().unwrap(),
        hook,
        "--context",
        context.to_str().unwrap(),
    ];
    args.extend(extra);
    args.push("--json");
    lunabox(&args)
}

/// Exit code, stdout, stderr of a run.
pub fn parts(out: &Output) -> (i32, String, String) {
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// stdout parsed as JSON (panics with the output when it is not).
pub fn json_of(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        let (code, so, se) = parts(out);
        panic!("stdout is not JSON ({e}); exit {code}\nstdout: {so}\nstderr: {se}")
    })
}

/// The name of the user running the tests (the environment user of local Run calls).
pub fn current_user() -> String {
    let out = Command::new("id").arg("-un").output().expect("id -un");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A private copy of the simulated delphixdb program in a temp dir, with
/// its own state and backup directory.
pub struct Sim {
    pub dir: tempfile::TempDir,
    pub program: PathBuf,
}

impl Sim {
    pub fn new() -> Sim {
        let dir = tempfile::tempdir().unwrap();
        let program = dir.path().join("delphixdb");
        std::fs::copy(delphixdb().join("sim/delphixdb"), &program).unwrap();
        let sim = Sim { dir, program };
        let backups = sim.dir.path().join("backups");
        sim.ok(&["config", "backup-dir", backups.to_str().unwrap()]);
        sim
    }

    /// Run the program; (exit code, stdout, stderr).
    pub fn run(&self, args: &[&str]) -> (i32, String, String) {
        let out = Command::new("bash")
            .arg(&self.program)
            .args(args)
            .output()
            .unwrap();
        parts(&out)
    }

    /// Run the program and require success; its stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let (code, so, se) = self.run(args);
        assert_eq!(code, 0, "delphixdb {args:?} failed: {so}{se}");
        so
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }
}
