//! The `lunabox` command: argument parsing and dispatch, one module per
//! command group, each a thin client of the libraries (lunabox-toolkit,
//! -run, -sandbox, -engine). What only a command line has lives here:
//! clap, tracing-subscriber, signals, context files.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// `println!` for a person: the text goes through [`lunabox_toolkit::text::for_person`]
/// (control characters from hooks' output shown escaped). JSON output uses
/// `println!`/`print_json` directly.
macro_rules! say {
    () => { println!() };
    ($($t:tt)*) => { println!("{}", lunabox_toolkit::text::for_person(&format!($($t)*))) };
}

/// [`say!`] on stderr.
macro_rules! say_err {
    () => { eprintln!() };
    ($($t:tt)*) => { eprintln!("{}", lunabox_toolkit::text::for_person(&format!($($t)*))) };
}

mod build;
mod daemon;
mod dsource;
mod env;
mod eval;
mod fuzz;
mod init;
mod jobs;
mod limits;
mod run_hook;
mod signals;
mod snapshots;
mod storage;
mod toolkit;
mod validate;
mod vdb;

/// Exit status for a usage error (bad flag, unreadable input file).
pub const EXIT_USAGE: u8 = 2;

#[derive(Parser)]
#[command(
    name = "lunabox",
    version,
    about = "Run data-platform toolkits (Lua hooks) in WebAssembly sandboxes, and link and SnapSync data sources",
    propagate_version = true
)]
struct Cli {
    /// State directory (environments, toolkits, dSources, snapshots). Also
    /// LUNABOX_STATE; default: the user's data directory.
    #[arg(long, global = true, env = "LUNABOX_STATE", value_name = "DIR")]
    state: Option<std::path::PathBuf>,

    /// Engine commands: most hooks running at once in this process (the
    /// sandbox's instance slots).
    #[arg(long, global = true, value_name = "N", default_value_t = 64,
          value_parser = clap::value_parser!(u32).range(1..=10_000))]
    max_concurrent_hooks: u32,

    /// Engine commands: the linear memory each hook may use (e.g. 256MiB).
    #[arg(long, global = true, value_name = "SIZE", value_parser = lunabox_toolkit::units::parse_size)]
    hook_memory: Option<u64>,

    /// Storage driver of a new state directory: btrfs (subvolume
    /// snapshots), reflink (file clones), copy, or auto (detected from the
    /// filesystem of DIR/storage). Recorded in the state; an existing state
    /// keeps its own. Also LUNABOX_STORAGE_DRIVER.
    #[arg(
        long,
        global = true,
        env = "LUNABOX_STORAGE_DRIVER",
        value_name = "DRIVER",
        value_parser = storage::driver_arg
    )]
    storage_driver: Option<storage::Requested>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run one Lua chunk in the sandbox, as a hook would run.
    Eval(eval::Args),
    /// Check a toolkit (directory or built JSON) and report every problem.
    Validate(validate::Args),
    /// Write a toolkit directory's built form (one JSON document).
    Build(build::Args),
    /// Create a new toolkit directory that passes `validate`.
    Init(init::Args),
    /// Run one hook of a toolkit, for real or against scripted responses.
    RunHook(run_hook::Args),
    /// Fuzz a toolkit's hooks: generated inputs and Run-call answers, bugs with reproducers.
    Fuzz(fuzz::Args),
    /// Manage environments (hosts that Run calls are carried out on).
    #[command(subcommand)]
    Env(env::Command),
    /// Install and list toolkits.
    #[command(subcommand)]
    Toolkit(toolkit::Command),
    /// Link a data source: create a dSource and run its initial SnapSync.
    Link(dsource::LinkArgs),
    /// SnapSync a dSource into a new snapshot.
    Sync(dsource::SyncArgs),
    /// Enable a dSource (runs startStaging).
    Enable(dsource::NameArgs),
    /// Disable a dSource (runs stopStaging).
    Disable(dsource::NameArgs),
    /// Show dSources' state (runs their status hooks).
    Status(dsource::StatusArgs),
    /// Set a dSource's SnapSync schedule and snapshot retention.
    Policy(dsource::PolicyArgs),
    /// List a dSource's snapshots.
    Snapshots(snapshots::ListArgs),
    /// Export or remove one snapshot.
    #[command(subcommand)]
    Snapshot(snapshots::Command),
    /// Provision a VDB: a writable copy of a dSource's snapshot, brought up
    /// by the toolkit's virtual hooks (configure, start).
    Provision(vdb::ProvisionArgs),
    /// List, inspect, start, stop, refresh, snapshot or remove VDBs.
    #[command(subcommand)]
    Vdb(vdb::Command),
    /// Show the state's storage driver and filesystem.
    Storage(storage::Args),
    /// List faults, or resolve one.
    Faults(jobs::FaultsArgs),
    /// List jobs (every operation is a job).
    Jobs(jobs::JobsArgs),
    /// Show one job: its hooks, logs and Run calls.
    Job(jobs::JobArgs),
    /// Run status, worker and scheduled SnapSyncs for every enabled dSource.
    Daemon(daemon::Args),
}

/// Entry point of the binary.
fn main() -> ExitCode {
    // SAFETY: first thing in main, before any other thread exists.
    unsafe { lunabox_sandbox::quiet_library_backtraces() };
    signals::install();
    init_tracing();
    let cli = Cli::parse();
    let ctx = Context {
        state: cli.state,
        max_concurrent_hooks: cli.max_concurrent_hooks,
        hook_memory: cli.hook_memory,
        storage_driver: cli.storage_driver.and_then(|r| r.0),
    };
    let result = match cli.command {
        Command::Eval(a) => eval::run(&ctx, a),
        Command::Validate(a) => validate::run(&ctx, a),
        Command::Build(a) => build::run(&ctx, a),
        Command::Init(a) => init::run(&ctx, a),
        Command::RunHook(a) => run_hook::run(&ctx, a),
        Command::Fuzz(a) => fuzz::run(&ctx, a),
        Command::Env(c) => env::run(&ctx, c),
        Command::Toolkit(c) => toolkit::run(&ctx, c),
        Command::Link(a) => dsource::link(&ctx, a),
        Command::Sync(a) => dsource::sync(&ctx, a),
        Command::Enable(a) => dsource::enable(&ctx, a),
        Command::Disable(a) => dsource::disable(&ctx, a),
        Command::Status(a) => dsource::status(&ctx, a),
        Command::Policy(a) => dsource::policy(&ctx, a),
        Command::Snapshots(a) => snapshots::list(&ctx, a),
        Command::Snapshot(c) => snapshots::run(&ctx, c),
        Command::Provision(a) => vdb::provision(&ctx, a),
        Command::Vdb(c) => vdb::run(&ctx, c),
        Command::Storage(a) => storage::run(&ctx, a),
        Command::Faults(a) => jobs::faults(&ctx, a),
        Command::Jobs(a) => jobs::jobs(&ctx, a),
        Command::Job(a) => jobs::job(&ctx, a),
        Command::Daemon(a) => daemon::run(&ctx, a),
    };
    if lunabox_run::executors::contain::stopping() {
        // A signal is stopping lunabox: the signal thread exits with its
        // own status once the running calls are dead; do not race it.
        loop {
            std::thread::park();
        }
    }
    match result {
        Ok(code) => code,
        Err(e) => {
            // Jobs this command started and could not finish are recorded
            // as failed with this error (even on a full disk).
            lunabox_engine::jobs::abandon_open_jobs(&format!("{e:#}"));
            say_err!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

/// Start `tracing` output on stderr, filtered by `RUST_LOG` (default: warn).
fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// What every command gets besides its own arguments.
pub struct Context {
    /// `--state` / `LUNABOX_STATE`, if given.
    pub state: Option<std::path::PathBuf>,
    /// `--max-concurrent-hooks`.
    pub max_concurrent_hooks: u32,
    /// `--hook-memory`, if given.
    pub hook_memory: Option<u64>,
    /// `--storage-driver` / `LUNABOX_STORAGE_DRIVER`, unless `auto`.
    pub storage_driver: Option<lunabox_engine::storage::DriverKind>,
}
