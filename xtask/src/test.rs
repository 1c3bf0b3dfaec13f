//! `cargo xtask test`: the project's test command (README, `.ci/run`).
//!
//! 1. ensure the apt packages (guest toolchain, rsync, expect);
//! 2. `guest --check`: the committed component is a byte-identical rebuild;
//! 3. the guest's own Lua tests (`guest-lua/tests/*.lua`, see `smoke.rs`);
//! 4. `cargo test --workspace`, which replays the self-fuzz corpora and
//!    runs every `lunabox-selffuzz` target for 3 seconds
//!    (`host/selffuzz/tests/bounded.rs`; `cargo xtask selffuzz` runs longer);
//! 5. the embedder examples (`cargo run --example ...`), which check their
//!    own outcomes.

use crate::{deps, guest, smoke};
use anyhow::{Context, Result, bail};
use std::process::Command;

/// Entry point of `test`; extra arguments go to `cargo test`.
pub fn run(args: &[String]) -> Result<()> {
    if args.iter().any(|a| a == "-h" || a == "--help") {
        println!(
            "usage: cargo xtask test [CARGO-TEST-ARGS...]\n\n\
             Install/check prerequisites, check the committed guest component is\n\
             up to date, run the guest's Lua tests, then `cargo test --workspace`."
        );
        return Ok(());
    }
    let mut pkgs = deps::GUEST.to_vec();
    pkgs.extend_from_slice(deps::TEST);
    deps::ensure(&pkgs)?;

    eprintln!("== guest: committed component matches a fresh build");
    guest::run(&["--check".to_string()])?;

    eprintln!("== guest: Lua tests (guest-lua/tests)");
    smoke::run(&["--tests".to_string()])?;

    eprintln!("== cargo test --workspace");
    // Tests that cannot run here (root, loop mounts, PostgreSQL) write why
    // to this log (tests/common/skip.rs); libtest would count them passed.
    let skip_log = std::env::temp_dir().join(format!("lunabox-skipped-{}.txt", std::process::id()));
    let _ = std::fs::remove_file(&skip_log);
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .args(["test", "--workspace"])
        .args(args)
        .env_remove("RUST_BACKTRACE")
        .env_remove("RUST_LIB_BACKTRACE")
        .env("LUNABOX_SKIP_LOG", &skip_log)
        .status()
        .context("running cargo test")?;
    report_skipped(&skip_log);
    if !status.success() {
        bail!("cargo test failed ({status})");
    }

    for (package, example) in EXAMPLES {
        eprintln!("== example: {package} {example}");
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let status = Command::new(cargo)
            .args(["run", "--quiet", "-p", package, "--example", example])
            .status()
            .with_context(|| format!("running example {example}"))?;
        if !status.success() {
            bail!("example {example} of {package} failed ({status})");
        }
    }
    Ok(())
}

/// Say which tests were skipped, and why, as skipped: libtest lists them
/// as passed.
fn report_skipped(log: &std::path::Path) {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let _ = std::fs::remove_file(log);
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    if lines.is_empty() {
        eprintln!("== skipped: none (every test ran)");
        return;
    }
    eprintln!(
        "== SKIPPED: {} test(s) did not run here and are not passed (libtest lists them as `ok`; \
         run as root with the packages `cargo xtask test` installs to run them):",
        lines.len()
    );
    for l in lines {
        eprintln!("   {l}");
    }
}

/// The examples that run as tests: (package, example).
const EXAMPLES: &[(&str, &str)] = &[("lunabox-sandbox", "multi_tenant")];
