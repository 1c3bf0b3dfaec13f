//! `cargo xtask`: project tasks that are not part of the product.
//!
//! - `cargo xtask deps [--test] [PACKAGE...]`: check (and as root install) the
//!   apt packages the guest build needs; `--test` also ensures `rsync` and
//!   `expect`.
//! - `cargo xtask guest [--check]`: rebuild `guest-lua/lunabox-guest.wasm`, or
//!   check that the committed file is byte-identical to a fresh build.
//! - `cargo xtask guest-smoke ...`: run Lua in the built guest with stub host
//!   imports (a development harness; see `smoke.rs`).
//! - `cargo xtask test`: prerequisites, `guest --check`, the guest's Lua
//!   tests, `cargo test --workspace` (which includes a short bounded fuzz
//!   run of every `lunabox-selffuzz` target).
//! - `cargo xtask selffuzz [--time 20s] [--target NAME] [--seed N] [--release]`:
//!   a longer bounded fuzz run of lunabox itself.

mod bindings;
mod cc;
mod componentize;
mod demo;
mod deps;
mod guest;
mod selffuzz;
mod smoke;
mod test;
mod wizer;
mod workspace;

use anyhow::{Result, bail};
use std::process::ExitCode;

const USAGE: &str = "usage: cargo xtask <command> [args]\n\n\
commands:\n  \
  demo [--keep]            run the Delphix DB walkthrough end to end (lunabox link, sync, ...)\n  \
  deps [--test] [PKG...]   ensure the apt packages for the guest build (and tests)\n  \
  guest [--check]          rebuild guest-lua/lunabox-guest.wasm / check it is up to date\n  \
  guest-smoke [...]        run Lua files in the built guest with stub host imports\n  \
  selffuzz [--time 20s]    fuzz lunabox itself for a while per target (see --help)\n  \
  test [ARGS...]           prerequisites, guest --check, guest Lua tests, cargo test\n";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((cmd, rest)) = args.split_first() else {
        eprint!("{USAGE}");
        return ExitCode::from(2);
    };
    match dispatch(cmd, rest) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // `{:#}`: the whole cause chain on one line, and no backtrace
            // even when RUST_BACKTRACE is set.
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn dispatch(cmd: &str, rest: &[String]) -> Result<()> {
    match cmd {
        "demo" => demo::run(rest),
        "deps" => deps::run(rest),
        "guest" => guest::run(rest),
        "guest-smoke" => smoke::run(rest),
        "selffuzz" => selffuzz::run(rest),
        "test" => test::run(rest),
        "-h" | "--help" | "help" => {
            print!("{USAGE}");
            Ok(())
        }
        other => bail!("unknown command `{other}`\n\n{USAGE}"),
    }
}
