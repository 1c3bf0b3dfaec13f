//! `lunabox validate`.

use std::process::ExitCode;

use super::Context;

#[derive(clap::Args)]
pub struct Args {}

pub fn run(_ctx: &Context, _args: Args) -> anyhow::Result<ExitCode> {
    super::not_yet("validate")
}
