//! `cargo xtask demo`: the seed's Delphix DB walkthrough, end to end, on a
//! fresh state directory with nothing to set up. It builds the `lunabox`
//! binary and drives it like a user would: create a primary database with
//! the simulated `delphixdb` program, link it with the delphixdb toolkit
//! (initial SnapSync), change the primary, incremental SnapSync, status,
//! disable, enable, list the snapshots, and prove that snapshot 1 lacks the
//! change while snapshot 2 holds it (by exporting both).
//!
//! `--keep` leaves the state directory for exploring afterwards;
//! `--bin PATH` uses an existing `lunabox` binary instead of building one.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};

use crate::workspace;

struct Demo {
    bin: PathBuf,
    state: PathBuf,
    delphixdb: PathBuf,
    step: usize,
}

impl Demo {
    fn title(&mut self, text: &str) {
        self.step += 1;
        println!("\n== {}. {text}", self.step);
    }

    /// Run `lunabox ARGS`, showing the command and its output.
    fn lunabox(&self, args: &[&str]) -> Result<()> {
        println!("$ lunabox {}", args.join(" "));
        let st = Command::new(&self.bin)
            .args(args)
            .env("LUNABOX_STATE", &self.state)
            .status()
            .with_context(|| format!("running {}", self.bin.display()))?;
        if !st.success() {
            bail!(
                "`lunabox {}` failed ({st}); the state is in {}",
                args.join(" "),
                self.state.display()
            );
        }
        Ok(())
    }

    /// Run the simulated delphixdb program, showing the command.
    fn db(&self, args: &[&str]) -> Result<String> {
        println!("$ delphixdb {}", args.join(" "));
        let out = Command::new(&self.delphixdb)
            .args(args)
            .output()
            .with_context(|| format!("running {}", self.delphixdb.display()))?;
        if !out.status.success() {
            bail!(
                "`delphixdb {}` failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        for l in text.lines() {
            println!("  {l}");
        }
        Ok(text)
    }
}

fn read_key(dir: &Path, key: &str) -> String {
    std::fs::read_to_string(dir.join("data").join(key))
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "(absent)".to_string())
}

pub fn run(args: &[String]) -> Result<()> {
    let mut keep = false;
    let mut bin: Option<PathBuf> = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--keep" => keep = true,
            "--bin" => bin = Some(it.next().context("--bin needs a path")?.into()),
            "-h" | "--help" => {
                println!(
                    "usage: cargo xtask demo [--keep] [--bin PATH]\n\nRuns the Delphix DB walkthrough end to end on a fresh state directory.\n  --keep      keep the state directory afterwards\n  --bin PATH  use this lunabox binary (default: build it)"
                );
                return Ok(());
            }
            other => bail!("unknown argument `{other}` (try `cargo xtask demo --help`)"),
        }
    }
    let root = workspace::root();
    let bin = match bin {
        Some(b) => b,
        None => {
            println!("building lunabox (cargo build -p lunabox-cli) ...");
            let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
            let st = Command::new(cargo)
                .args([
                    "build",
                    "--quiet",
                    "-p",
                    "lunabox-cli",
                    "--bin",
                    "lunabox",
                    "--manifest-path",
                ])
                .arg(root.join("Cargo.toml"))
                .status()
                .context("running cargo build")?;
            if !st.success() {
                bail!("building lunabox failed");
            }
            root.join("target/debug/lunabox")
        }
    };
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let work = std::env::temp_dir().join(format!("lunabox-demo-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&work).with_context(|| format!("creating {}", work.display()))?;
    let result = walkthrough(&root, &bin, &work);
    if keep || result.is_err() {
        println!(
            "\nstate kept in {} (LUNABOX_STATE={}/state)",
            work.display(),
            work.display()
        );
    } else {
        // Stop the simulated databases, then clean up.
        let _ = std::fs::remove_dir_all(&work);
    }
    result
}

fn walkthrough(root: &Path, bin: &Path, work: &Path) -> Result<()> {
    let install = work.join("delphixdb-install");
    std::fs::create_dir_all(&install)?;
    let delphixdb = install.join("delphixdb");
    std::fs::copy(root.join("toolkits/delphixdb/sim/delphixdb"), &delphixdb)
        .context("copying the simulated delphixdb program")?;
    let mut d = Demo {
        bin: bin.to_path_buf(),
        state: work.join("state"),
        delphixdb: delphixdb.clone(),
        step: 0,
    };
    println!("lunabox walkthrough: the Delphix DB linking story, end to end");
    println!(
        "state directory: {} (fresh; embedded SQLite + local storage)",
        d.state.display()
    );
    d.db(&[
        "config",
        "backup-dir",
        work.join("backups").to_str().unwrap(),
    ])?;

    d.title("Create the primary database (simulated Delphix DB) and write some data");
    d.db(&["new", "prod", "--port=5000"])?;
    d.db(&["start", "prod"])?;
    d.db(&["write", "prod", "greeting", "hello"])?;
    d.db(&["write", "prod", "answer", "42"])?;

    d.title("Register this machine as an environment");
    d.lunabox(&["env", "add", "local", "--local"])?;

    d.title("Install the delphixdb toolkit (validated first)");
    d.lunabox(&[
        "toolkit",
        "install",
        root.join("toolkits/delphixdb").to_str().unwrap(),
    ])?;

    d.title("Link the primary: creates the dSource and runs the initial SnapSync (resync, preSnapshot, snapshot, postSnapshot)");
    let config = work.join("config.json");
    std::fs::write(&config, r#"{"dbName": "prod"}"#)?;
    let repository = work.join("repository.json");
    std::fs::write(
        &repository,
        serde_json::json!({"installPath": delphixdb}).to_string(),
    )?;
    d.lunabox(&[
        "link",
        "prod-ds",
        "--toolkit",
        "delphixdb",
        "--environment",
        "local",
        "--config",
        config.to_str().unwrap(),
        "--repository",
        repository.to_str().unwrap(),
        "--param",
        "stagingPort=5433",
    ])?;

    d.title("Change the primary (replication carries it to the staging database)");
    d.db(&["write", "prod", "greeting", "bonjour"])?;
    d.db(&["write", "prod", "colour", "blue"])?;

    d.title("Incremental SnapSync (preSnapshot, snapshot, postSnapshot)");
    d.lunabox(&["sync", "prod-ds"])?;

    d.title("Status (runs the status hook: replication running => ACTIVE)");
    d.lunabox(&["status", "prod-ds"])?;

    d.title("Disable (stopStaging), then status");
    d.lunabox(&["disable", "prod-ds"])?;
    d.lunabox(&["status", "prod-ds"])?;

    d.title("Enable (startStaging), then status");
    d.lunabox(&["enable", "prod-ds"])?;
    d.lunabox(&["status", "prod-ds"])?;

    d.title("The snapshots, and the jobs that made them");
    d.lunabox(&["snapshots", "prod-ds"])?;
    d.lunabox(&["jobs", "prod-ds"])?;

    d.title("Proof: export both snapshots and read the data files");
    let e1 = work.join("export-1");
    let e2 = work.join("export-2");
    d.lunabox(&["snapshot", "export", "prod-ds", "1", e1.to_str().unwrap()])?;
    d.lunabox(&["snapshot", "export", "prod-ds", "2", e2.to_str().unwrap()])?;
    let rows = [
        ("greeting", "hello", "bonjour"),
        ("colour", "(absent)", "blue"),
        ("answer", "42", "42"),
    ];
    println!(
        "\n  {:<10} {:<14} {:<14}",
        "key", "snapshot 1", "snapshot 2"
    );
    let mut ok = true;
    for (key, want1, want2) in rows {
        let (v1, v2) = (read_key(&e1, key), read_key(&e2, key));
        println!("  {key:<10} {v1:<14} {v2:<14}");
        ok &= v1 == want1 && v2 == want2;
    }
    // Stop the simulated databases before the directory goes away.
    let _ = Command::new(&delphixdb)
        .args(["stop", "stagingDB"])
        .output();
    let _ = Command::new(&delphixdb).args(["stop", "prod"]).output();
    if !ok {
        bail!("the snapshots do not hold what the walkthrough expects (see the table above)");
    }
    println!("\nwalkthrough OK: snapshot 1 lacks the change, snapshot 2 holds it.");
    Ok(())
}
