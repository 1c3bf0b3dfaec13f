//! `lunabox env add|list|rm`: environments.

use std::process::ExitCode;

use super::Context;
use super::jobs::{open_engine, print_json, print_table};
use lunabox_engine::environments;
use lunabox_engine::state::format_ms;

#[derive(clap::Subcommand)]
pub enum Command {
    /// Add an environment (a host Run calls are carried out on).
    #[command(
        after_help = "Example:\n  lunabox env add local --local\n  lunabox env add staging --local --user postgres"
    )]
    Add {
        /// Environment name (letters, digits, `_`, `-`, `.`).
        name: String,
        /// This machine (the only kind for now).
        #[arg(long, required = true)]
        local: bool,
        /// The environment user (default: the current user).
        #[arg(long)]
        user: Option<String>,
        /// Print JSON on stdout.
        #[arg(long)]
        json: bool,
    },
    /// List environments.
    List {
        /// Print JSON on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Remove an environment (refused while a dSource uses it).
    Rm {
        /// Environment name.
        name: String,
    },
}

pub fn run(ctx: &Context, cmd: Command) -> anyhow::Result<ExitCode> {
    let mut engine = open_engine(ctx)?;
    match cmd {
        Command::Add {
            name,
            local: _,
            user,
            json,
        } => {
            let env = environments::add_local(engine.state(), &name, user.as_deref())?;
            if json {
                print_json(&env)?;
            } else {
                say!(
                    "added environment `{}` (local, user {})",
                    env.name,
                    env.user
                );
            }
        }
        Command::List { json } => {
            let list = environments::list(engine.state())?;
            if json {
                print_json(&list)?;
            } else if list.is_empty() {
                say!("no environments; add one with `lunabox env add NAME --local`");
            } else {
                let rows: Vec<Vec<String>> = list
                    .iter()
                    .map(|e| {
                        vec![
                            e.name.clone(),
                            "local".into(),
                            e.host.clone(),
                            e.user.clone(),
                            format_ms(e.created_ms),
                        ]
                    })
                    .collect();
                print_table(&["NAME", "KIND", "HOST", "USER", "ADDED"], &rows);
            }
        }
        Command::Rm { name } => {
            environments::remove(engine.state_mut(), &name)?;
            say!("removed environment `{name}`");
        }
    }
    Ok(ExitCode::SUCCESS)
}
