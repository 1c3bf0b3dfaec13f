//! `cargo xtask deps`: make sure the apt packages the guest build (and, with
//! `--test`, the test suite) needs are installed.
//!
//! Checks each package with `dpkg-query`. Missing ones are installed with
//! `apt-get update` + `apt-get install -y` when running as root; otherwise
//! the exact command to run is printed and the task fails.

use anyhow::{Context, Result, bail};
use std::process::Command;

/// What the guest build needs: clang and wasm-ld 22, compiler-rt builtins
/// for wasm32, and wasi-libc.
pub const GUEST: &[&str] = &[
    "clang-22",
    "lld-22",
    "libclang-rt-22-dev-wasm32",
    "wasi-libc",
];

/// Extra packages the test suite needs (real rsync and expect; sshd, the
/// ssh client and `ip` for the SSH test hosts of tests/remote_ssh.rs;
/// mkfs for the loop-mounted btrfs and XFS images of the storage tests;
/// PostgreSQL for tests/postgres_e2e.rs: the server, and contrib for the
/// amcheck extension pg_amcheck uses).
pub const TEST: &[&str] = &[
    "rsync",
    "expect",
    "openssh-server",
    "openssh-client",
    "iproute2",
    "btrfs-progs",
    "xfsprogs",
    "postgresql",
    "postgresql-contrib",
];

/// Parse `deps` arguments: `--test` adds [`TEST`], other words are package
/// names to ensure as well.
pub fn run(args: &[String]) -> Result<()> {
    let mut pkgs: Vec<&str> = GUEST.to_vec();
    for arg in args {
        match arg.as_str() {
            "--test" => pkgs.extend_from_slice(TEST),
            "-h" | "--help" => {
                println!(
                    "usage: cargo xtask deps [--test] [PACKAGE...]\n\n\
                     Ensure the apt packages for the guest build are installed\n\
                     ({}).\n  --test      also {}\n  PACKAGE... also these packages",
                    GUEST.join(", "),
                    TEST.join(", ")
                );
                return Ok(());
            }
            other if other.starts_with('-') => bail!("deps: unknown option `{other}` (try --help)"),
            other => pkgs.push(other),
        }
    }
    ensure(&pkgs)
}

/// Ensure every package in `pkgs` is installed (see the module docs).
pub fn ensure(pkgs: &[&str]) -> Result<()> {
    let mut missing: Vec<&str> = Vec::new();
    for &p in pkgs {
        if !installed(p)? && !missing.contains(&p) {
            missing.push(p);
        }
    }
    if missing.is_empty() {
        return Ok(());
    }
    let install = format!(
        "apt-get install -y --no-install-recommends {}",
        missing.join(" ")
    );
    if !is_root() {
        bail!(
            "missing apt packages: {}\nrun as root:\n  apt-get update && {install}",
            missing.join(", ")
        );
    }
    eprintln!("xtask deps: installing {}", missing.join(", "));
    apt(&["update"])?;
    let mut args = vec!["install", "-y", "--no-install-recommends"];
    args.extend_from_slice(&missing);
    apt(&args)?;
    for &p in &missing {
        if !installed(p)? {
            bail!("apt-get reported success but `{p}` is still not installed");
        }
    }
    Ok(())
}

fn apt(args: &[&str]) -> Result<()> {
    let status = Command::new("apt-get")
        .args(args)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .status()
        .context("running apt-get (is this a Debian-like system?)")?;
    if !status.success() {
        bail!("`apt-get {}` failed ({status})", args.join(" "));
    }
    Ok(())
}

fn installed(pkg: &str) -> Result<bool> {
    let out = Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", pkg])
        .output()
        .context("running dpkg-query (is this a Debian-like system?)")?;
    Ok(out.status.success()
        && String::from_utf8_lossy(&out.stdout).contains("install ok installed"))
}

fn is_root() -> bool {
    // SAFETY-free check: `id -u` avoids a libc dependency.
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}
