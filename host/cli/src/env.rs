//! `lunabox env add|refresh|show|list|rm`: environments, and what
//! discovery found on them.

use std::process::ExitCode;

use super::Context;
use super::jobs::{open_engine, print_json, print_table};
use lunabox_engine::state::format_ms;
use lunabox_engine::{discovery, environments};

#[derive(clap::Subcommand)]
pub enum Command {
    /// Add an environment (a host Run calls are carried out on).
    /// Discovery (each installed toolkit's repositoryDiscovery and
    /// sourceConfigDiscovery) runs on it right away.
    #[command(
        after_help = "Example:\n  lunabox env add local --local\n  lunabox env add staging --local --user postgres\n  \
lunabox env add db1 --ssh postgres@db1.example.com:22 --identity ~/.ssh/id_ed25519 --known-hosts ~/.ssh/known_hosts\n\n\
SSH host keys are checked strictly against --known-hosts: an unknown or changed key is an error that shows \
the key's fingerprint and how to accept it."
    )]
    Add {
        /// Environment name (letters, digits, `_`, `-`, `.`).
        name: String,
        /// This machine.
        #[arg(long, required_unless_present = "ssh", conflicts_with = "ssh")]
        local: bool,
        /// A host reached over SSH, as `USER@HOST[:PORT]`.
        #[arg(long, value_name = "USER@HOST[:PORT]")]
        ssh: Option<String>,
        /// The private key for --ssh (default ~/.ssh/id_ed25519).
        #[arg(long, value_name = "FILE", requires = "ssh")]
        identity: Option<std::path::PathBuf>,
        /// The known_hosts file for --ssh (default ~/.ssh/known_hosts).
        #[arg(long, value_name = "FILE", requires = "ssh")]
        known_hosts: Option<std::path::PathBuf>,
        /// The environment user (default: the current user; --local only).
        #[arg(long, conflicts_with = "ssh")]
        user: Option<String>,
        /// Add it without running discovery.
        #[arg(long)]
        no_discovery: bool,
        /// Print JSON on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Run discovery on an environment again (updates what it found, marks
    /// what is gone as vanished).
    Refresh {
        /// Environment name.
        name: String,
        /// Print JSON on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Show an environment and the repositories and source configs
    /// discovery found on it.
    Show {
        /// Environment name.
        name: String,
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
            ssh,
            identity,
            known_hosts,
            user,
            no_discovery,
            json,
        } => {
            let env = match &ssh {
                Some(spec) => {
                    let home = std::env::var_os("HOME")
                        .map(std::path::PathBuf::from)
                        .unwrap_or_default();
                    let identity = identity.unwrap_or_else(|| home.join(".ssh/id_ed25519"));
                    let known_hosts = known_hosts.unwrap_or_else(|| home.join(".ssh/known_hosts"));
                    environments::add_ssh(engine.state(), &name, spec, &identity, &known_hosts)?
                }
                None => environments::add_local(engine.state(), &name, user.as_deref())?,
            };
            let report = if no_discovery {
                None
            } else {
                Some(discovery::refresh(&engine, &env)?)
            };
            let env = environments::get(engine.state(), &name)?;
            if json {
                print_json(&serde_json::json!({"environment": env, "discovery": report}))?;
            } else {
                let how = match &env.ssh {
                    Some(a) => format!("ssh {}@{}:{}", a.user, a.host, a.port),
                    None => "local".to_string(),
                };
                say!(
                    "added environment `{}` ({how}, user {}, {}, home {})",
                    env.name,
                    env.user,
                    env.os.as_deref().unwrap_or("unknown OS"),
                    env.home.as_deref().unwrap_or("unknown")
                );
                if let Some(r) = &report {
                    say_report(r);
                }
            }
        }
        Command::Refresh { name, json } => {
            let env = environments::get(engine.state(), &name)?;
            let report = discovery::refresh(&engine, &env)?;
            if json {
                print_json(&report)?;
            } else {
                say_report(&report);
            }
            if !report.failures.is_empty() {
                return Ok(ExitCode::from(1));
            }
        }
        Command::Show { name, json } => {
            let env = environments::get(engine.state(), &name)?;
            let items = discovery::list(engine.state(), &name)?;
            let repos: Vec<_> = items.iter().filter(|i| i.kind == "repository").collect();
            let configs: Vec<_> = items.iter().filter(|i| i.kind == "sourceConfig").collect();
            if json {
                print_json(&serde_json::json!({
                    "environment": env,
                    "repositories": repos,
                    "sourceConfigs": configs,
                }))?;
            } else {
                say!(
                    "environment `{}`: {} {}@{} ({}, home {})",
                    env.name,
                    env.kind.as_str(),
                    env.user,
                    env.host,
                    env.os.as_deref().unwrap_or("unknown OS"),
                    env.home.as_deref().unwrap_or("unknown")
                );
                let rows: Vec<Vec<String>> = items
                    .iter()
                    .map(|i| {
                        vec![
                            i.toolkit.clone(),
                            if i.kind == "repository" {
                                "repository".into()
                            } else {
                                "source config".into()
                            },
                            i.name.clone(),
                            i.repository.clone().unwrap_or_default(),
                            if i.vanished {
                                "vanished".into()
                            } else {
                                "found".into()
                            },
                        ]
                    })
                    .collect();
                if rows.is_empty() {
                    say!(
                        "discovery found nothing here (`lunabox env refresh {name}` runs it again)"
                    );
                } else {
                    print_table(&["TOOLKIT", "KIND", "NAME", "REPOSITORY", "STATE"], &rows);
                }
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
                            e.kind.as_str().into(),
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

fn say_report(r: &discovery::Report) {
    if r.toolkits.is_empty() {
        say!("discovery: no installed toolkit has discovery hooks");
        return;
    }
    say!(
        "discovery ({}): {} new, {} updated, {} vanished",
        r.toolkits.join(", "),
        r.added.len(),
        r.updated.len(),
        r.vanished.len()
    );
    for a in &r.added {
        say!("  + {a}");
    }
    for u in &r.updated {
        say!("  ~ {u}");
    }
    for v in &r.vanished {
        say!("  - {v} (vanished)");
    }
    for f in &r.failures {
        say!("  ! {f}");
    }
}
