//! `lunabox env add|list|rm`: environments.

use std::process::ExitCode;

use super::Context;

#[derive(clap::Subcommand)]
pub enum Command {}

pub fn run(_ctx: &Context, _cmd: Command) -> anyhow::Result<ExitCode> {
    super::not_yet("env")
}
