//! `lunabox init NAME --staged|--direct [--dir PATH]`: scaffold a toolkit
//! that passes `lunabox validate`, with every hook of its kind doing
//! something real (see `toolkit::scaffold`).

use std::path::PathBuf;
use std::process::ExitCode;

use super::Context;
use lunabox_toolkit::LinkedKind;
use lunabox_toolkit::scaffold::{self, ScaffoldError};

#[derive(clap::Args)]
#[command(group = clap::ArgGroup::new("kind").required(true).args(["staged", "direct"]))]
#[command(
    after_help = "Creates PATH/NAME/ (default ./NAME/) with main.json, discovery/, staged/ or \
direct/, virtual/, resources/ and messages/. The toolkit manages a directory of data files \
(its source config's `path`).\nExit status: 0 created, 1 cannot write, 2 bad usage (bad name, NAME exists)."
)]
pub struct Args {
    /// The toolkit's name (a-z, 0-9, `_`, `:`, `-`); also its directory name.
    pub name: String,
    /// A staged toolkit: resync copies the data onto staging storage.
    #[arg(long)]
    pub staged: bool,
    /// A direct toolkit: preSnapshot copies the data in with RunSync.
    #[arg(long)]
    pub direct: bool,
    /// The directory to create the toolkit in.
    #[arg(long, value_name = "PATH", default_value = ".")]
    pub dir: PathBuf,
}

pub fn run(_ctx: &Context, args: Args) -> anyhow::Result<ExitCode> {
    let kind = if args.direct {
        LinkedKind::Direct
    } else {
        LinkedKind::Staged
    };
    match scaffold::create(&args.dir, &args.name, kind) {
        Ok(path) => {
            say_err!(
                "created {} toolkit `{}` in {}; check it with `lunabox validate {}`",
                match kind {
                    LinkedKind::Staged => "a staged",
                    LinkedKind::Direct => "a direct",
                },
                args.name,
                path.display(),
                path.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(e @ (ScaffoldError::BadName { .. } | ScaffoldError::Exists(_))) => {
            say_err!("error: {e}");
            Ok(ExitCode::from(super::EXIT_USAGE))
        }
        Err(e) => Err(e.into()),
    }
}
