//! `lunabox validate TOOLKIT [--json]`: every builder and field rule, the
//! schemas as draft-04 schemas, each hook compiled in the sandbox, and
//! warnings for likely mistakes; all problems at once.
//!
//! Exit status: 0 no errors (warnings allowed), 1 errors, 2 bad usage.

use std::path::PathBuf;
use std::process::ExitCode;

use super::Context;
use lunabox_sandbox::{Runtime, RuntimeConfig};
use lunabox_toolkit::validate::{SyntaxCheck, validate};
use lunabox_toolkit::{Report, load};

#[derive(clap::Args)]
#[command(
    after_help = "Each problem names its file (main.json, staged/resync.lua, ...), the field \
(a JSON pointer such as /linkedSourceDefinition/type) or line, and what to do.\n\
Exit status: 0 no errors (warnings allowed), 1 at least one error, 2 bad usage."
)]
pub struct Args {
    /// A toolkit directory (with main.json) or a built toolkit .json file.
    pub toolkit: PathBuf,
    /// Print {"ok": bool, "errors": [...], "warnings": [...]} on stdout.
    #[arg(long)]
    pub json: bool,
    /// Do not compile the hook scripts (skips starting the sandbox).
    #[arg(long)]
    pub no_syntax: bool,
}

/// The sandbox runtime for syntax checks (small: one hook at a time).
pub(super) fn syntax_runtime() -> anyhow::Result<Runtime> {
    Runtime::new(RuntimeConfig {
        max_concurrent_hooks: 2,
        max_memory: 64 << 20,
        ..RuntimeConfig::default()
    })
}

/// Print a report for a person: one line per problem, then a summary.
pub(super) fn print_report(name: &str, report: &Report) {
    for d in &report.diagnostics {
        say!("{d}");
    }
    let errors = report.errors().count();
    let warnings = report.warnings().count();
    say!("{name}: {errors} error(s), {warnings} warning(s)");
}

pub fn run(_ctx: &Context, args: Args) -> anyhow::Result<ExitCode> {
    let report = match load(&args.toolkit) {
        Err(e) => Report {
            diagnostics: vec![e.to_diagnostic()],
        },
        Ok(loaded) => {
            let runtime = if args.no_syntax {
                None
            } else {
                say_err!(
                    "validating {} (compiling hooks in the sandbox)...",
                    args.toolkit.display()
                );
                Some(syntax_runtime()?)
            };
            validate(&loaded, runtime.as_ref().map(|r| r as &dyn SyntaxCheck))
        }
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report.to_json())?);
    } else {
        print_report(&args.toolkit.display().to_string(), &report);
    }
    Ok(ExitCode::from(if report.ok() { 0 } else { 1 }))
}
