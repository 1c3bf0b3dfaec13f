//! `lunabox daemon`.

use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use super::Context;
use super::jobs::{duration_arg, open_engine, print_json};
use lunabox_engine::daemon::{self, DaemonOptions};

#[derive(clap::Args)]
#[command(
    after_help = "Examples:\n  lunabox daemon\n  lunabox daemon --once --json\n\nCtrl-C (or SIGTERM) stops it cleanly: nothing new starts, SnapSyncs in flight finish.\nA second Ctrl-C stops it at once (an interrupted SnapSync is cleaned up by the next command)."
)]
pub struct Args {
    /// One pass: status, worker and due SnapSyncs of every enabled dSource, then exit.
    #[arg(long)]
    pub once: bool,
    /// How often to run each dSource's status hook.
    #[arg(long, value_parser = duration_arg, default_value = "30s", value_name = "DURATION")]
    pub interval: Duration,
    /// How often to run each dSource's worker hook.
    #[arg(long, value_parser = duration_arg, default_value = "10s", value_name = "DURATION")]
    pub worker_interval: Duration,
    #[command(flatten)]
    pub timeouts: super::dsource::TimeoutArgs,
    /// Print a summary as JSON on stdout when it stops.
    #[arg(long)]
    pub json: bool,
}

static STOP: AtomicBool = AtomicBool::new(false);

pub fn run(ctx: &Context, a: Args) -> anyhow::Result<ExitCode> {
    let mut engine = open_engine(ctx)?;
    a.timeouts.apply(&mut engine)?;
    // The first Ctrl-C / SIGTERM asks the daemon to stop; a second one
    // stops lunabox at once.
    super::signals::graceful(&STOP);
    let opts = DaemonOptions {
        once: a.once,
        status_interval: a.interval,
        worker_interval: a.worker_interval,
    };
    let summary = daemon::run(&mut engine, &opts, &STOP)?;
    if a.json {
        print_json(&summary)?;
    }
    Ok(ExitCode::SUCCESS)
}
