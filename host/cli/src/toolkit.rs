//! `lunabox toolkit install|list`: installed toolkits.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use super::Context;
use super::jobs::{duration_arg, open_engine, print_json, print_table};
use lunabox_engine::progress::Stderr;
use lunabox_engine::state::format_ms;
use lunabox_engine::{install, toolkits};

#[derive(clap::Subcommand)]
pub enum Command {
    /// Validate and install a toolkit (each version is kept); dSources
    /// linked with an older version are upgraded (upgradeLinkedSource).
    #[command(
        after_help = "Examples:\n  lunabox toolkit install toolkits/delphixdb\n  lunabox toolkit install build/delphixdb.json"
    )]
    Install {
        /// A toolkit directory or a built toolkit .json file.
        path: PathBuf,
        /// How long to wait for another operation on a dSource being upgraded.
        #[arg(long, value_parser = duration_arg, default_value = "10m", value_name = "DURATION")]
        lock_timeout: Duration,
        /// Print JSON on stdout.
        #[arg(long)]
        json: bool,
    },
    /// List installed toolkits and versions.
    List {
        /// Print JSON on stdout.
        #[arg(long)]
        json: bool,
    },
}

pub fn run(ctx: &Context, cmd: Command) -> anyhow::Result<ExitCode> {
    let mut engine = open_engine(ctx)?;
    match cmd {
        Command::Install {
            path,
            lock_timeout,
            json,
        } => {
            let r = install::install(&mut engine, &path, lock_timeout, &Stderr::new(None))?;
            let ok = r.upgrades.iter().all(|u| u.ok);
            if json {
                print_json(&r)?;
            } else {
                for w in &r.warnings {
                    say_err!("{w}");
                }
                match r.outcome.as_str() {
                    "unchanged" => say!(
                        "toolkit `{}` {} is already installed (identical)",
                        r.name,
                        r.version
                    ),
                    _ => say!("installed toolkit `{}` {}", r.name, r.version),
                }
                for u in &r.upgrades {
                    if u.ok {
                        say!(
                            "upgraded dSource `{}` from {} to {} (job {})",
                            u.dsource,
                            u.from,
                            u.to,
                            u.job
                        );
                    } else {
                        say!(
                            "dSource `{}` NOT upgraded (job {}): {}",
                            u.dsource,
                            u.job,
                            u.error.as_deref().unwrap_or("")
                        );
                    }
                }
            }
            Ok(if ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        Command::List { json } => {
            let list = toolkits::list(engine.state())?;
            if json {
                print_json(&list)?;
            } else if list.is_empty() {
                say!("no toolkits installed; `lunabox toolkit install DIR` installs one");
            } else {
                let rows: Vec<Vec<String>> = list
                    .iter()
                    .map(|t| {
                        vec![
                            t.name.clone(),
                            t.version.clone(),
                            t.pretty_name.clone(),
                            format_ms(t.installed_ms),
                            t.sha256[..12].to_string(),
                        ]
                    })
                    .collect();
                print_table(
                    &["NAME", "VERSION", "PRETTY NAME", "INSTALLED", "SHA256"],
                    &rows,
                );
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
