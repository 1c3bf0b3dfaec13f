//! `cargo xtask`: project tasks that are not part of the product.
//!
//! - `cargo xtask deps [--test] [PACKAGE...]`: check (and as root install) the
//!   apt packages the guest build needs; `--test` also ensures `rsync` and
//!   `expect`.
//! - `cargo xtask guest [--check]`: rebuild `guest-lua/lunabox-guest.wasm`, or
//!   check that the committed file is byte-identical to a fresh build.
//! - `cargo xtask guest-smoke ...`: run Lua in the built guest with stub host
//!   imports (a development harness; see `smoke.rs`).

mod bindings;
mod cc;
mod componentize;
mod deps;
mod guest;
mod smoke;
mod wizer;
mod workspace;

use anyhow::{Result, bail};

const USAGE: &str = "usage: cargo xtask <command> [args]\n\n\
commands:\n  \
  deps [--test] [PKG...]   ensure the apt packages for the guest build (and tests)\n  \
  guest [--check]          rebuild guest-lua/lunabox-guest.wasm / check it is up to date\n  \
  guest-smoke [...]        run Lua files in the built guest with stub host imports\n";

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((cmd, rest)) = args.split_first() else {
        eprint!("{USAGE}");
        std::process::exit(2);
    };
    match cmd.as_str() {
        "deps" => deps::run(rest),
        "guest" => guest::run(rest),
        "guest-smoke" => smoke::run(rest),
        "-h" | "--help" | "help" => {
            print!("{USAGE}");
            Ok(())
        }
        other => bail!("unknown command `{other}`\n\n{USAGE}"),
    }
}
