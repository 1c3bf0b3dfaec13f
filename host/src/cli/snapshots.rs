//! `lunabox snapshots` and `lunabox snapshot export|rm`.

use std::process::ExitCode;

use super::Context;

#[derive(clap::Args)]
pub struct ListArgs {}
#[derive(clap::Subcommand)]
pub enum Command {}

pub fn list(_ctx: &Context, _a: ListArgs) -> anyhow::Result<ExitCode> {
    super::not_yet("snapshots")
}
pub fn run(_ctx: &Context, _c: Command) -> anyhow::Result<ExitCode> {
    super::not_yet("snapshot")
}
