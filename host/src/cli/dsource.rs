//! `lunabox link|sync|enable|disable|status|policy`: dSources.

use std::process::ExitCode;

use super::Context;

#[derive(clap::Args)]
pub struct LinkArgs {}
#[derive(clap::Args)]
pub struct SyncArgs {}
#[derive(clap::Args)]
pub struct NameArgs {}
#[derive(clap::Args)]
pub struct StatusArgs {}
#[derive(clap::Args)]
pub struct PolicyArgs {}

pub fn link(_ctx: &Context, _a: LinkArgs) -> anyhow::Result<ExitCode> {
    super::not_yet("link")
}
pub fn sync(_ctx: &Context, _a: SyncArgs) -> anyhow::Result<ExitCode> {
    super::not_yet("sync")
}
pub fn enable(_ctx: &Context, _a: NameArgs) -> anyhow::Result<ExitCode> {
    super::not_yet("enable")
}
pub fn disable(_ctx: &Context, _a: NameArgs) -> anyhow::Result<ExitCode> {
    super::not_yet("disable")
}
pub fn status(_ctx: &Context, _a: StatusArgs) -> anyhow::Result<ExitCode> {
    super::not_yet("status")
}
pub fn policy(_ctx: &Context, _a: PolicyArgs) -> anyhow::Result<ExitCode> {
    super::not_yet("policy")
}
