//! `lunabox faults`, `lunabox jobs`, `lunabox job`.

use std::process::ExitCode;

use super::Context;

#[derive(clap::Args)]
pub struct FaultsArgs {}
#[derive(clap::Args)]
pub struct JobsArgs {}
#[derive(clap::Args)]
pub struct JobArgs {}

pub fn faults(_ctx: &Context, _a: FaultsArgs) -> anyhow::Result<ExitCode> {
    super::not_yet("faults")
}
pub fn jobs(_ctx: &Context, _a: JobsArgs) -> anyhow::Result<ExitCode> {
    super::not_yet("jobs")
}
pub fn job(_ctx: &Context, _a: JobArgs) -> anyhow::Result<ExitCode> {
    super::not_yet("job")
}
