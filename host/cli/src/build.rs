//! `lunabox build DIR -o FILE.json`: validate a toolkit and write its built
//! form (one JSON document: the manifest with every script embedded and the
//! resources), which is what an engine uploads.
//!
//! Exit status: 0 written, 1 the toolkit has errors (nothing written), 2 bad usage.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;

use super::Context;
use super::validate::{print_report, syntax_runtime};
use lunabox_toolkit::validate::{SyntaxCheck, validate};
use lunabox_toolkit::{build, load};

#[derive(clap::Args)]
#[command(
    after_help = "The toolkit is validated first (as `lunabox validate` does); with an error \
nothing is written.\nExit status: 0 written, 1 the toolkit has errors, 2 bad usage."
)]
pub struct Args {
    /// The toolkit directory (a built .json file is accepted and rewritten).
    pub dir: PathBuf,
    /// Where to write the built toolkit.
    #[arg(short = 'o', long = "output", value_name = "FILE.json")]
    pub output: PathBuf,
    /// Do not compile the hook scripts first.
    #[arg(long)]
    pub no_syntax: bool,
}

pub fn run(_ctx: &Context, args: Args) -> anyhow::Result<ExitCode> {
    let loaded = match load(&args.dir) {
        Ok(l) => l,
        Err(e) => {
            say_err!("error: {e}");
            return Ok(ExitCode::from(super::EXIT_USAGE));
        }
    };
    let runtime = if args.no_syntax {
        None
    } else {
        say_err!(
            "checking {} (compiling hooks in the sandbox)...",
            args.dir.display()
        );
        Some(syntax_runtime()?)
    };
    let report = validate(&loaded, runtime.as_ref().map(|r| r as &dyn SyntaxCheck));
    if !report.ok() {
        print_report(&args.dir.display().to_string(), &report);
        say_err!("error: not built; fix the errors above and run `lunabox build` again");
        return Ok(ExitCode::from(1));
    }
    for w in report.warnings() {
        say_err!("{w}");
    }
    let text = build::to_built_text(&loaded.toolkit);
    let tmp = args.output.with_extension("json.tmp");
    std::fs::write(&tmp, &text).with_context(|| {
        format!(
            "cannot write {}; check the directory exists and is writable",
            tmp.display()
        )
    })?;
    std::fs::rename(&tmp, &args.output)
        .with_context(|| format!("cannot move {} to {}", tmp.display(), args.output.display()))?;
    say_err!(
        "built {} {} -> {} ({} hooks, {} resources, {} bytes)",
        loaded.toolkit.name().unwrap_or("?"),
        loaded.toolkit.version().unwrap_or("?"),
        args.output.display(),
        loaded.toolkit.scripts.len(),
        loaded.toolkit.resources.len(),
        text.len()
    );
    Ok(ExitCode::SUCCESS)
}
