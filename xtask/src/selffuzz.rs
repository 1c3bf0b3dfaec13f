//! `cargo xtask selffuzz`: lunabox fuzzes itself (crate `lunabox-selffuzz`).
//!
//! Runs the crate's bounded fuzz test (`host/selffuzz/tests/bounded.rs`)
//! for the time given per target, with its report (executions per second
//! per target, the slowest execution, crashes) printed:
//!
//! ```text
//! cargo xtask selffuzz [--time 20s] [--target NAME] [--seed N] [--release]
//! ```
//!
//! Crashing inputs are saved under `target/selffuzz-crashes/<target>/`.
//! `cargo xtask test` runs the same test inside `cargo test --workspace`
//! with its default of 3 seconds per target.

use anyhow::{Context, Result, bail};
use std::process::Command;

const USAGE: &str = "usage: cargo xtask selffuzz [--time DURATION] [--target NAME] [--seed N] [--release]\n\n\
Fuzz lunabox's own parsers and sandbox for DURATION per target (default 20s;\n\
e.g. 500ms, 20s, 2m), from seed N, optimized with --release.";

/// Entry point of `selffuzz`.
pub fn run(args: &[String]) -> Result<()> {
    let mut time = "20s".to_string();
    let mut target = None;
    let mut seed = None;
    let mut release = false;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = |name: &str| {
            it.next()
                .cloned()
                .with_context(|| format!("{name} needs a value\n\n{USAGE}"))
        };
        match a.as_str() {
            "--time" => time = value("--time")?,
            "--target" => target = Some(value("--target")?),
            "--seed" => seed = Some(value("--seed")?),
            "--release" => release = true,
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(());
            }
            other => bail!("unknown argument `{other}`\n\n{USAGE}"),
        }
    }
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args(["test", "-p", "lunabox-selffuzz", "--test", "bounded"]);
    if release {
        cmd.arg("--release");
    }
    cmd.args(["--", "--nocapture"])
        .env("LUNABOX_SELFFUZZ_TIME", &time)
        .env_remove("RUST_BACKTRACE")
        .env_remove("RUST_LIB_BACKTRACE");
    if let Some(t) = &target {
        cmd.env("LUNABOX_SELFFUZZ_TARGET", t);
    }
    if let Some(s) = &seed {
        cmd.env("LUNABOX_SELFFUZZ_SEED", s);
    }
    let status = cmd.status().context("running cargo test")?;
    if !status.success() {
        bail!(
            "selffuzz found crashes or failed ({status}); inputs are under target/selffuzz-crashes/"
        );
    }
    Ok(())
}
