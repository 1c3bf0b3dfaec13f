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
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .args(["test", "--workspace"])
        .args(args)
        .env_remove("RUST_BACKTRACE")
        .env_remove("RUST_LIB_BACKTRACE")
        .status()
        .context("running cargo test")?;
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

/// The examples that run as tests: (package, example).
const EXAMPLES: &[(&str, &str)] = &[("lunabox-sandbox", "multi_tenant")];
