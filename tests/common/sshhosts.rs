//! Test hosts: network namespaces joined by veth pairs, each running
//! Debian's `sshd` with its own config, host key and a user made for the
//! test, torn down on drop.
//!
//! Layout: one client namespace (where lunabox runs: `Net::cmd`) and one
//! namespace per host, each joined to the client by its own veth pair
//! (client 10.77.I.1/30, host 10.77.I.2/30; the addresses exist only in
//! these namespaces, so nothing is ever sent from this machine's own
//! namespace). sshd listens on port 2222 (so known_hosts entries take the
//! `[host]:port` form). Namespaces share this machine's filesystem: a test
//! host sees the same paths as lunabox, standing in for a host that mounts
//! the engine's storage (as the seed's engine does over NFS).
//!
//! Needs root and `ip netns`; [`Net::new`] returns `None` (after saying
//! SKIPPED, see skip.rs) where they are missing.

#![allow(dead_code)]

#[path = "skip.rs"]
mod skip;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

static NEXT: AtomicU32 = AtomicU32::new(0);

pub const PORT: u16 = 2222;

fn run(args: &[&str]) -> Output {
    Command::new(args[0])
        .args(&args[1..])
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{args:?}: {e}"))
}

fn must(args: &[&str]) {
    let o = run(args);
    assert!(
        o.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// One test host.
pub struct Host {
    pub ns: String,
    /// Its address (reachable from the client namespace only).
    pub addr: String,
    /// The test user on it.
    pub user: String,
    /// The user's home.
    pub home: PathBuf,
    /// sshd's config, key and log.
    pub dir: PathBuf,
    /// The host key's public line (`ssh-ed25519 AAAA...`).
    pub host_key: String,
    sshd: Option<Child>,
}

impl Host {
    /// `USER@ADDR:PORT`.
    pub fn spec(&self) -> String {
        format!("{}@{}:{PORT}", self.user, self.addr)
    }

    /// The known_hosts line for this host.
    pub fn known_hosts_line(&self) -> String {
        format!("[{}]:{PORT} {}\n", self.addr, self.host_key)
    }

    /// Give the user's SSH sessions this `PATH` (through
    /// `~/.ssh/environment`; the test sshd permits it).
    pub fn set_path(&self, path: &str) {
        let o = self.sh(&format!(
            "mkdir -p ~/.ssh && printf 'PATH=%s\\n' '{path}' > ~/.ssh/environment"
        ));
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }

    /// Run `script` on the host as its user, which must succeed; stdout.
    pub fn must(&self, script: &str) -> String {
        let o = self.sh(script);
        assert!(
            o.status.success(),
            "on {}: {script}: {}",
            self.addr,
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// The pid of the listening sshd.
    pub fn sshd_pid(&self) -> u32 {
        self.sshd.as_ref().map_or(0, Child::id)
    }

    /// Run `script` on the host as its user (inside its namespace, not
    /// over SSH): to set up or check things there.
    pub fn sh(&self, script: &str) -> Output {
        run(&[
            "ip",
            "netns",
            "exec",
            &self.ns,
            "setpriv",
            "--reuid",
            &self.user,
            "--regid",
            &self.user,
            "--init-groups",
            "--",
            "env",
            &format!("HOME={}", self.home.display()),
            &format!("USER={}", self.user),
            "bash",
            "-c",
            &format!("cd && {script}"),
        ])
    }

    /// Kill the per-connection sshd processes (children of the listener):
    /// every SSH connection to the host drops.
    pub fn drop_connections(&self) {
        drop_connections_of(self.sshd_pid());
    }

    fn stop(&mut self) {
        if let Some(mut c) = self.sshd.take() {
            for pid in children(c.id()) {
                // SAFETY: as above.
                unsafe { libc::kill(pid as i32, libc::SIGKILL) };
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Kill the children of our sshd listener `listener` (its per-connection
/// processes).
pub fn drop_connections_of(listener: u32) {
    // The per-connection monitor and its unprivileged child (which holds
    // the socket), and nothing below them (the commands they run).
    for pid in children(listener) {
        let below = children(pid);
        for p in std::iter::once(pid).chain(below.into_iter().filter(|p| is_sshd(*p))) {
            // SAFETY: kill sends a signal to a process of our own sshd.
            unsafe { libc::kill(p as i32, libc::SIGKILL) };
        }
    }
}

fn is_sshd(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == "sshd")
}

/// Direct children of `pid`.
fn children(pid: u32) -> Vec<u32> {
    let Ok(d) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    d.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|p| {
            std::fs::read_to_string(format!("/proc/{p}/stat"))
                .ok()
                .and_then(|s| {
                    s.rsplit_once(')')
                        .and_then(|(_, r)| r.split_whitespace().nth(1).map(str::to_string))
                })
                .and_then(|pp| pp.parse::<u32>().ok())
                == Some(pid)
        })
        .collect()
}

/// A client namespace and its hosts.
pub struct Net {
    /// SSH sessions run as root (no test user is made).
    root: bool,
    /// `SetEnv PATH=...` for the hosts' sshd.
    path: Option<String>,
    /// The hosts' sshd offers the SFTP subsystem (Debian's default).
    sftp: bool,
    pub id: String,
    pub client: String,
    pub hosts: Vec<Host>,
    /// Keys and known_hosts for lunabox (a private directory).
    pub dir: tempfile::TempDir,
    /// The client key lunabox uses.
    pub identity: PathBuf,
    /// A known_hosts file holding every host's key.
    pub known_hosts: PathBuf,
    links: Vec<String>,
}

/// Why these tests cannot run here, if they cannot.
pub fn unavailable() -> Option<String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Some("not root (network namespaces and sshd need root)".into());
    }
    if !Path::new("/usr/sbin/sshd").exists() {
        return Some("/usr/sbin/sshd is missing (apt-get install openssh-server)".into());
    }
    for p in ["ssh-keygen", "ip", "useradd", "setpriv"] {
        if !run(&["sh", "-c", &format!("command -v {p}")])
            .status
            .success()
        {
            return Some(format!("`{p}` is missing"));
        }
    }
    None
}

impl Net {
    /// `n` hosts, or `None` (printing why) where they cannot be made.
    pub fn new(test: &str, n: usize) -> Option<Net> {
        Net::with(test, n, false, None)
    }

    /// [`Net::new`] with SSH sessions as root (`root`) and a `PATH` for
    /// every session (`path`, with sshd's `SetEnv`).
    pub fn with(test: &str, n: usize, root: bool, path: Option<&str>) -> Option<Net> {
        Net::build(test, n, root, path, true)
    }

    /// [`Net::new`] with hosts whose sshd has no SFTP subsystem.
    pub fn without_sftp(test: &str, n: usize) -> Option<Net> {
        Net::build(test, n, false, None, false)
    }

    fn build(test: &str, n: usize, root: bool, path: Option<&str>, sftp: bool) -> Option<Net> {
        if let Some(why) = unavailable() {
            skip::skipped(test, &why);
            return None;
        }
        let k = NEXT.fetch_add(1, Ordering::SeqCst);
        let id = format!("{}{k}", std::process::id() % 100000);
        let client = format!("lbc{id}");
        if !run(&["ip", "netns", "add", &client]).status.success() {
            let why = "`ip netns add` failed (no network namespaces here)";
            skip::skipped(test, why);
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let mut net = Net {
            root,
            path: path.map(str::to_string),
            sftp,
            id: id.clone(),
            client: client.clone(),
            hosts: Vec::new(),
            identity: dir.path().join("id_ed25519"),
            known_hosts: dir.path().join("known_hosts"),
            dir,
            links: Vec::new(),
        };
        must(&["ip", "-n", &client, "link", "set", "lo", "up"]);
        must(&[
            "ssh-keygen",
            "-q",
            "-t",
            "ed25519",
            "-N",
            "",
            "-C",
            "lunabox-test",
            "-f",
            net.identity.to_str().unwrap(),
        ]);
        for i in 0..n {
            net.add_host(i);
        }
        let mut kh = String::new();
        for h in &net.hosts {
            kh.push_str(&h.known_hosts_line());
        }
        std::fs::write(&net.known_hosts, kh).unwrap();
        Some(net)
    }

    fn add_host(&mut self, i: usize) {
        let ns = format!("lbh{}x{i}", self.id);
        let (a, b) = (format!("lb{}a{i}", self.id), format!("lb{}b{i}", self.id));
        must(&["ip", "netns", "add", &ns]);
        must(&["ip", "link", "add", &a, "type", "veth", "peer", "name", &b]);
        self.links.push(a.clone());
        must(&["ip", "link", "set", &a, "netns", &self.client]);
        must(&["ip", "link", "set", &b, "netns", &ns]);
        let (ca, ha) = (format!("10.77.{i}.1"), format!("10.77.{i}.2"));
        must(&[
            "ip",
            "-n",
            &self.client,
            "addr",
            "add",
            &format!("{ca}/30"),
            "dev",
            &a,
        ]);
        must(&[
            "ip",
            "-n",
            &ns,
            "addr",
            "add",
            &format!("{ha}/30"),
            "dev",
            &b,
        ]);
        for (n, l) in [(&self.client, &a), (&ns, &b)] {
            must(&["ip", "-n", n, "link", "set", l, "up"]);
            must(&["ip", "-n", n, "link", "set", "lo", "up"]);
        }
        // The user.
        let (user, home) = if self.root {
            ("root".to_string(), PathBuf::from("/root"))
        } else {
            let user = format!("lbt{}u{i}", self.id);
            let home = PathBuf::from(format!("/home/{user}"));
            must(&[
                "useradd",
                "-m",
                "-s",
                "/bin/bash",
                "-d",
                home.to_str().unwrap(),
                &user,
            ]);
            must(&["usermod", "-p", "*", &user]);
            (user, home)
        };
        let hdir = self.dir.path().join(format!("host{i}"));
        std::fs::create_dir_all(&hdir).unwrap();
        let hk = hdir.join("host_ed25519");
        must(&[
            "ssh-keygen",
            "-q",
            "-t",
            "ed25519",
            "-N",
            "",
            "-f",
            hk.to_str().unwrap(),
        ]);
        let host_key = std::fs::read_to_string(hk.with_extension("pub"))
            .unwrap()
            .split_whitespace()
            .take(2)
            .collect::<Vec<_>>()
            .join(" ");
        let pubkey = std::fs::read_to_string(self.identity.with_extension("pub")).unwrap();
        std::fs::write(hdir.join("authorized_keys"), pubkey).unwrap();
        let cfg = hdir.join("sshd_config");
        std::fs::write(
            &cfg,
            format!(
                "Port {PORT}\nListenAddress {ha}\nHostKey {}\nPidFile {}\nAuthorizedKeysFile {}\n\
                 PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\n\
                 PubkeyAuthentication yes\nPermitUserEnvironment yes\nAllowUsers {user}\nMaxSessions 100\nMaxStartups 100\nLogLevel ERROR\n\
                 PermitRootLogin prohibit-password\n{}{}",
                hk.display(),
                hdir.join("sshd.pid").display(),
                hdir.join("authorized_keys").display(),
                self.path
                    .as_ref()
                    .map_or(String::new(), |p| format!("SetEnv PATH={p}\n")),
                if self.sftp {
                    "Subsystem sftp /usr/lib/openssh/sftp-server\n"
                } else {
                    ""
                },
            ),
        )
        .unwrap();
        std::fs::create_dir_all("/run/sshd").unwrap();
        let log = std::fs::File::create(hdir.join("sshd.log")).unwrap();
        let sshd = Command::new("ip")
            .args(["netns", "exec", &ns, "/usr/sbin/sshd", "-D", "-e", "-f"])
            .arg(&cfg)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let host = Host {
            ns,
            addr: ha.clone(),
            user,
            home,
            dir: hdir,
            host_key,
            sshd: Some(sshd),
        };
        self.hosts.push(host);
        // Wait until it listens (checked from the client namespace).
        let t = Instant::now();
        loop {
            let o = self
                .cmd_plain("bash", &["-c", &format!("exec 3<>/dev/tcp/{ha}/{PORT}")])
                .output()
                .unwrap();
            if o.status.success() {
                break;
            }
            assert!(
                t.elapsed() < Duration::from_secs(10),
                "sshd on {ha} did not start: {}",
                std::fs::read_to_string(self.hosts[i].dir.join("sshd.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `program args...` inside the client namespace.
    pub fn cmd_plain(&self, program: &str, args: &[&str]) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.client, program]).args(args);
        c.stdin(Stdio::null());
        c
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        for h in &mut self.hosts {
            h.stop();
        }
        for h in &self.hosts {
            if !self.root {
                let _ = run(&["userdel", "-r", "-f", &h.user]);
            }
            let _ = run(&["ip", "netns", "del", &h.ns]);
        }
        let _ = run(&["ip", "netns", "del", &self.client]);
    }
}
