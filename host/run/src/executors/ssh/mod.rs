//! Runs calls on another host over SSH.
//!
//! **Why russh.** [`SshExecutor`] speaks SSH itself with the `russh` crate
//! (on a small tokio runtime of its own) rather than driving the system
//! `ssh`: russh reports a channel's exit status and exit signal as such,
//! so a command's exit 255 or a command killed by a signal is never
//! confused with an SSH failure (the system client uses 255 for its own
//! errors, and the `openssh` crate turns a remote signal death into a
//! disconnection); and russh can send a `signal` request on a channel,
//! which OpenSSH's sshd delivers to the session's whole process group, so a
//! deadline kills the command and its children on the remote host. One
//! TCP connection per executor (per host, user and key) is made on first
//! use and reused by every call: each call is a new session channel on it,
//! with no handshake. A connection found dead is made again on the next
//! call.
//!
//! **Host keys** are checked strictly against the given `known_hosts` file
//! (`[host]:port` entries for other ports): an unknown or changed key is an
//! [`ExecError::Unavailable`] that shows the key's SHA256 fingerprint and
//! how to accept it. Authentication is by the identity file's key only.
//!
//! **A call** (see `ssh::script`): the exec request carries a fixed POSIX sh
//! driver; the call's variables and script go on the channel's stdin and
//! are `eval`ed there, so values of any size and content arrive intact and
//! nothing relies on the server's `AcceptEnv`. The call's files (the fresh,
//! empty output file `$DLPX_OUTPUT_FILE`, a script file where one is
//! needed) are `N.*` in the connection's private directory, made once with
//! the connection by its keeper (see `ssh::callfiles`), which also kills
//! every call still running when the connection goes away (a dropped
//! connection leaves nothing running). The driver runs the interpreter
//! from the user's home with stdin at `/dev/null`, wrapped in coreutils
//! `timeout -k` set a little past the hook's deadline (so the command ends
//! even if lunabox dies). The call ends when the channel closes, that is
//! when the command has exited *and* its stdout and stderr are closed. At
//! the deadline lunabox sends `SIGKILL` on the channel (the whole process
//! group) and reports [`ExecError::Deadline`]. The output file is watched
//! while it grows and read back (at most the output limit plus one byte)
//! over the host's SFTP subsystem, one `sftp-server` per connection; a
//! host without one gets the same from short shell commands. So a call
//! costs one session and the processes of the command itself.
//!
//! **Failures of SSH itself** (unreachable host, refused connection, bad
//! key, a connection lost during the call) are [`ExecError::Unavailable`]
//! messages that say so; they never become an exit code.
//!
//! **RunSync** from the host's `sourceDirectory` runs the local `rsync`
//! with its remote half on a new channel of the same connection (see
//! `ssh::rsync`): no second connection, no `ssh` client needed here. The
//! passes and filters are those of the local copy (`executors::sync`),
//! planned from a listing of the followed paths made on the host over the
//! connection.

mod callfiles;
mod rsync;
mod script;

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use russh::client::{self, Handle};
use russh::keys::{HashAlg, PrivateKeyWithHashAlg, PublicKey};
use russh::{ChannelMsg, Sig};

use super::account::{Account, RunAs};
use crate::{ExecError, Executor, RawResult, RunCall, RunContext, RunFunction};

/// How long making a connection (TCP, key exchange, authentication) may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

/// How far past the hook's deadline the remote `timeout` is set (lunabox's
/// own kill at the deadline comes first; this is for when lunabox is gone).
const REMOTE_SLACK: Duration = Duration::from_secs(2);

/// How often a running call's output file size is looked at (over SFTP).
const OUTPUT_LOOK: Duration = Duration::from_millis(200);

/// How long after the deadline's kill to wait for the channel to close.
const KILL_GRACE: Duration = Duration::from_secs(3);

/// Where and as whom to connect.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SshTarget {
    /// The user to log in as.
    pub user: String,
    /// The host name or address.
    pub host: String,
    /// The SSH port.
    pub port: u16,
    /// The private key (OpenSSH format, not encrypted).
    pub identity: PathBuf,
    /// The known_hosts file the host key is checked against.
    pub known_hosts: PathBuf,
}

impl SshTarget {
    /// Parse `USER@HOST[:PORT]` (`USER@[V6ADDR]:PORT` for IPv6).
    pub fn parse(spec: &str, identity: PathBuf, known_hosts: PathBuf) -> Result<SshTarget, String> {
        let bad = || format!("`{spec}` is not USER@HOST[:PORT] (e.g. postgres@db1.example.com:22)");
        let (user, rest) = spec.split_once('@').ok_or_else(bad)?;
        if user.is_empty() || rest.is_empty() {
            return Err(bad());
        }
        let (host, port) = if let Some(r) = rest.strip_prefix('[') {
            let (h, after) = r.split_once(']').ok_or_else(bad)?;
            let port = match after.strip_prefix(':') {
                Some(p) => p.parse().map_err(|_| bad())?,
                None if after.is_empty() => 22,
                None => return Err(bad()),
            };
            (h.to_string(), port)
        } else {
            match rest.rsplit_once(':') {
                Some((h, p)) if !h.contains(':') => (h.to_string(), p.parse().map_err(|_| bad())?),
                _ => (rest.to_string(), 22),
            }
        };
        if host.is_empty() || port == 0 {
            return Err(bad());
        }
        Ok(SshTarget {
            user: user.to_string(),
            host,
            port,
            identity,
            known_hosts,
        })
    }

    /// `user@host:port`, for messages.
    pub fn label(&self) -> String {
        if self.host.contains(':') {
            format!("{}@[{}]:{}", self.user, self.host, self.port)
        } else {
            format!("{}@{}:{}", self.user, self.host, self.port)
        }
    }

    /// The host as known_hosts names it (`host`, or `[host]:port`).
    fn known_hosts_name(&self) -> String {
        if self.port == 22 {
            self.host.clone()
        } else {
            format!("[{}]:{}", self.host, self.port)
        }
    }
}

/// What `probe` found on the host.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct HostInfo {
    /// `uname -s` (e.g. `Linux`).
    pub os: String,
    /// The user's home directory.
    pub home: String,
    /// The user the session runs as (`id -un`).
    pub user: String,
    /// The host's sshd offers the SFTP subsystem (each call's files are
    /// handled without starting a process; without it, each call costs a
    /// few more processes on the host).
    pub sftp: bool,
}

/// The tokio runtime every SSH executor runs on (one worker thread).
fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("lunabox-ssh")
            .enable_all()
            .build()
            .expect("cannot start the SSH runtime")
    })
}

/// Run `fut` on the SSH runtime and wait for it from this (any) thread.
fn block<T: Send + 'static>(
    fut: impl std::future::Future<Output = Result<T, ExecError>> + Send + 'static,
) -> Result<T, ExecError> {
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    runtime().spawn(async move {
        let _ = tx.send(fut.await);
    });
    rx.recv()
        .unwrap_or_else(|_| Err(ExecError::Unavailable("the SSH runtime stopped".into())))
}

/// Why a host key was refused (filled in by the handler).
#[derive(Debug, Clone)]
enum KeyProblem {
    Unknown { fingerprint: String, key: String },
    Changed { fingerprint: String, line: usize },
    Unreadable(String),
}

struct Client {
    target: SshTarget,
    problem: Arc<std::sync::Mutex<Option<KeyProblem>>>,
}

impl client::Handler for Client {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        offered: &russh::keys::PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        let key: &PublicKey = match offered {
            russh::keys::PublicKeyOrCertificate::PublicKey { key, .. } => key,
            russh::keys::PublicKeyOrCertificate::Certificate(_) => {
                *self.problem.lock().unwrap_or_else(|p| p.into_inner()) =
                    Some(KeyProblem::Unreadable(
                        "the host offered a certificate; lunabox checks plain host keys only"
                            .into(),
                    ));
                return Ok(false);
            }
        };
        let fingerprint = key.fingerprint(HashAlg::Sha256).to_string();
        let outcome = russh::keys::check_known_hosts_path(
            &self.target.host,
            self.target.port,
            key,
            &self.target.known_hosts,
        );
        let problem = match outcome {
            Ok(true) => return Ok(true),
            Ok(false) => KeyProblem::Unknown {
                fingerprint,
                key: key.to_openssh().unwrap_or_default(),
            },
            Err(russh::keys::Error::KeyChanged { line }) => {
                KeyProblem::Changed { fingerprint, line }
            }
            Err(e) if !self.target.known_hosts.exists() => {
                let _ = e;
                KeyProblem::Unknown {
                    fingerprint,
                    key: key.to_openssh().unwrap_or_default(),
                }
            }
            Err(e) => KeyProblem::Unreadable(e.to_string()),
        };
        *self.problem.lock().unwrap_or_else(|p| p.into_inner()) = Some(problem);
        Ok(false)
    }
}

/// One live connection.
struct Conn {
    handle: Handle<Client>,
    /// Whom it reaches (for messages).
    target: Arc<SshTarget>,
    /// The connection's private directory on the host (made by the keeper).
    dir: String,
    /// How the calls' files there are read and removed.
    files: callfiles::CallFiles,
    /// The number of the next call (its files are `dir/N.*`).
    next: AtomicU64,
    /// The keeper's channel, open as long as the connection.
    _keeper: russh::Channel<client::Msg>,
}

impl Conn {
    /// The file prefix of a new call.
    fn call_prefix(&self) -> String {
        format!("{}/{}", self.dir, self.next.fetch_add(1, Ordering::Relaxed))
    }
}

/// Carries out Run calls on one host as one user over one reused SSH
/// connection (see the module doc). Clones share the connection.
#[derive(Clone)]
pub struct SshExecutor {
    target: Arc<SshTarget>,
    conn: Arc<tokio::sync::Mutex<Option<Arc<Conn>>>>,
}

impl std::fmt::Debug for SshExecutor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SshExecutor")
            .field("target", &self.target)
            .finish()
    }
}

impl SshExecutor {
    /// An executor for `target`; nothing connects until the first call.
    pub fn new(target: SshTarget) -> SshExecutor {
        SshExecutor {
            target: Arc::new(target),
            conn: Arc::default(),
        }
    }

    /// The shared executor of `target` in this process: one connection per
    /// host, user and key, whoever asks.
    pub fn shared(target: SshTarget) -> SshExecutor {
        static ALL: OnceLock<std::sync::Mutex<BTreeMap<String, SshExecutor>>> = OnceLock::new();
        let key = format!(
            "{}\0{}\0{}",
            target.label(),
            target.identity.display(),
            target.known_hosts.display()
        );
        let mut all = ALL
            .get_or_init(Default::default)
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        all.entry(key)
            .or_insert_with(|| SshExecutor::new(target))
            .clone()
    }

    /// The target.
    pub fn target(&self) -> &SshTarget {
        &self.target
    }

    /// Connect (or reuse the connection) and report the host's OS, the
    /// user's home and the user the session runs as.
    pub fn probe(&self) -> Result<HostInfo, ExecError> {
        let this = self.clone();
        block(async move {
            let conn = this.connection(false).await?;
            let (code, out, err) =
                simple(&conn, "uname -s; printf '%s\\n' \"$HOME\"; id -un").await?;
            if code != 0 {
                return Err(ExecError::Unavailable(format!(
                    "{}: the login shell could not run `uname -s` (exit {code}): {}",
                    this.target.label(),
                    err.trim()
                )));
            }
            let mut lines = out.lines();
            Ok(HostInfo {
                os: lines.next().unwrap_or_default().to_string(),
                home: lines.next().unwrap_or_default().to_string(),
                user: lines.next().unwrap_or_default().to_string(),
                sftp: !conn.files.driver_watches(),
            })
        })
    }

    /// The live connection, made when there is none or it died (or when
    /// `fresh`, dropping the old one).
    async fn connection(&self, fresh: bool) -> Result<Arc<Conn>, ExecError> {
        let mut slot = self.conn.lock().await;
        if let Some(c) = slot.as_ref()
            && !fresh
            && !c.handle.is_closed()
        {
            return Ok(c.clone());
        }
        *slot = None;
        let c = Arc::new(connect(self.target.clone()).await?);
        *slot = Some(c.clone());
        Ok(c)
    }

    /// Forget the connection (after it failed during a call).
    async fn drop_connection(&self, conn: &Arc<Conn>) {
        let mut slot = self.conn.lock().await;
        if slot.as_ref().is_some_and(|c| Arc::ptr_eq(c, conn)) {
            *slot = None;
        }
    }

    /// A new session channel; a connection that turns out dead is made
    /// again once (nothing ran on it yet).
    async fn channel(&self) -> Result<(Arc<Conn>, russh::Channel<client::Msg>), ExecError> {
        let conn = self.connection(false).await?;
        match conn.handle.channel_open_session().await {
            Ok(ch) => Ok((conn, ch)),
            Err(e) => {
                tracing::debug!("opening a channel failed ({e}); reconnecting");
                let conn = self.connection(true).await?;
                let ch = conn.handle.channel_open_session().await.map_err(|e| {
                    ExecError::Unavailable(format!(
                        "SSH to {}: could not open a session channel: {e}",
                        self.target.label()
                    ))
                })?;
                Ok((conn, ch))
            }
        }
    }
}

async fn connect(target: Arc<SshTarget>) -> Result<Conn, ExecError> {
    let t = &*target;
    let label = t.label();
    let key = russh::keys::load_secret_key(&t.identity, None).map_err(|e| {
        ExecError::Unavailable(format!(
            "SSH to {label}: cannot read the identity file {}: {e} (give an unencrypted OpenSSH private key with --identity)",
            t.identity.display()
        ))
    })?;
    let config = Arc::new(client::Config {
        inactivity_timeout: None,
        keepalive_interval: Some(Duration::from_secs(15)),
        keepalive_max: 4,
        nodelay: true,
        ..Default::default()
    });
    let problem = Arc::new(std::sync::Mutex::new(None));
    let handler = Client {
        target: t.clone(),
        problem: problem.clone(),
    };
    let attempt = tokio::time::timeout(
        CONNECT_TIMEOUT,
        client::connect(config, (t.host.as_str(), t.port), handler),
    )
    .await;
    let mut handle = match attempt {
        Err(_) => {
            return Err(ExecError::Unavailable(format!(
                "SSH to {label}: the host did not answer within {}s (is it up, and is the address right?)",
                CONNECT_TIMEOUT.as_secs()
            )));
        }
        Ok(Ok(h)) => h,
        Ok(Err(e)) => {
            let p = problem.lock().unwrap_or_else(|p| p.into_inner()).clone();
            return Err(ExecError::Unavailable(connect_error(t, &e, p)));
        }
    };
    let hash = if key.algorithm().is_rsa() {
        handle
            .best_supported_rsa_hash()
            .await
            .ok()
            .flatten()
            .flatten()
    } else {
        None
    };
    let auth = tokio::time::timeout(
        CONNECT_TIMEOUT,
        handle.authenticate_publickey(&t.user, PrivateKeyWithHashAlg::new(Arc::new(key), hash)),
    )
    .await;
    match auth {
        Ok(Ok(r)) if r.success() => {}
        Ok(Ok(_)) => {
            return Err(ExecError::Unavailable(format!(
                "SSH to {label}: the server refused the key {} for user `{}` (authentication failed; is its public key in ~{}/.ssh/authorized_keys on the host, and does the user exist?)",
                t.identity.display(),
                t.user,
                t.user
            )));
        }
        Ok(Err(e)) => {
            return Err(ExecError::Unavailable(format!(
                "SSH to {label}: authentication failed: {e}"
            )));
        }
        Err(_) => {
            return Err(ExecError::Unavailable(format!(
                "SSH to {label}: authentication did not finish within {}s",
                CONNECT_TIMEOUT.as_secs()
            )));
        }
    }
    // The keeper and the SFTP subsystem, each on a channel of its own that
    // lives as long as the connection.
    let open = || async {
        handle.channel_open_session().await.map_err(|e| {
            ExecError::Unavailable(format!(
                "SSH to {label}: could not open a session channel: {e}"
            ))
        })
    };
    let (mut keeper, sftp) = (open().await?, open().await?);
    let (dir, files) = tokio::join!(
        callfiles::start_keeper(&mut keeper, &label),
        callfiles::open(sftp)
    );
    Ok(Conn {
        handle,
        target,
        dir: dir?,
        files,
        next: AtomicU64::new(0),
        _keeper: keeper,
    })
}

fn connect_error(t: &SshTarget, e: &russh::Error, problem: Option<KeyProblem>) -> String {
    let label = t.label();
    let kh = t.known_hosts.display();
    match problem {
        Some(KeyProblem::Unknown { fingerprint, key }) => format!(
            "SSH to {label}: the host key is not known: {fingerprint} is not in {kh}. \
             If that is the host's key (check it on the host with `ssh-keygen -lf /etc/ssh/ssh_host_*_key.pub`), \
             accept it with: echo '{} {}' >> {kh}",
            t.known_hosts_name(),
            key.trim()
        ),
        Some(KeyProblem::Changed { fingerprint, line }) => format!(
            "SSH to {label}: THE HOST KEY HAS CHANGED: the host offered {fingerprint}, which differs from the key on line {line} of {kh}. \
             Someone may be intercepting the connection, or the host was reinstalled; if you know it was, \
             remove line {line} of {kh} and accept the new key"
        ),
        Some(KeyProblem::Unreadable(m)) => {
            format!("SSH to {label}: cannot check the host key against {kh}: {m}")
        }
        None => match e {
            russh::Error::IO(io) if io.kind() == std::io::ErrorKind::ConnectionRefused => format!(
                "SSH to {label}: connection refused (no SSH server listens on port {}?)",
                t.port
            ),
            russh::Error::IO(io) => format!("SSH to {label}: cannot connect: {io}"),
            other => format!("SSH to {label}: the SSH handshake failed: {other}"),
        },
    }
}

/// Run a short fixed command on a new channel; exit code, stdout, stderr.
async fn simple(conn: &Conn, command: &str) -> Result<(i32, String, String), ExecError> {
    let (code, out, err) = simple_bytes(conn, command).await?;
    Ok((
        code,
        String::from_utf8_lossy(&out).into_owned(),
        String::from_utf8_lossy(&err).into_owned(),
    ))
}

/// [`simple`] with stdout and stderr as bytes.
async fn simple_bytes(conn: &Conn, command: &str) -> Result<(i32, Vec<u8>, Vec<u8>), ExecError> {
    let t = &*conn.target;
    let mut ch = conn
        .handle
        .channel_open_session()
        .await
        .map_err(|e| lost(t, &e.to_string()))?;
    ch.exec(true, command)
        .await
        .map_err(|e| lost(t, &e.to_string()))?;
    let _ = ch.eof().await;
    let (mut out, mut err, mut code) = (Vec::new(), Vec::new(), None);
    while let Some(msg) = ch.wait().await {
        match msg {
            ChannelMsg::Data { data } => out.extend_from_slice(&data),
            ChannelMsg::ExtendedData { data, .. } => err.extend_from_slice(&data),
            ChannelMsg::ExitStatus { exit_status } => code = Some(exit_status as i32),
            ChannelMsg::ExitSignal { signal_name, .. } => {
                code = Some(128 + signal_number(&signal_name))
            }
            _ => {}
        }
    }
    let code = code.ok_or_else(|| lost(t, "the channel closed without an exit status"))?;
    Ok((code, out, err))
}

fn lost(t: &SshTarget, detail: &str) -> ExecError {
    ExecError::Unavailable(format!(
        "SSH to {}: the connection was lost during the call ({detail}); the next call reconnects",
        t.label()
    ))
}

fn signal_number(sig: &Sig) -> i32 {
    match sig {
        Sig::ABRT => libc::SIGABRT,
        Sig::ALRM => libc::SIGALRM,
        Sig::FPE => libc::SIGFPE,
        Sig::HUP => libc::SIGHUP,
        Sig::ILL => libc::SIGILL,
        Sig::INT => libc::SIGINT,
        Sig::KILL => libc::SIGKILL,
        Sig::PIPE => libc::SIGPIPE,
        Sig::QUIT => libc::SIGQUIT,
        Sig::SEGV => libc::SIGSEGV,
        Sig::TERM => libc::SIGTERM,
        Sig::USR1 => libc::SIGUSR1,
        Sig::Custom(name) => match name.as_str() {
            "USR2" => libc::SIGUSR2,
            "BUS" => libc::SIGBUS,
            "CHLD" => libc::SIGCHLD,
            "CONT" => libc::SIGCONT,
            "STOP" => libc::SIGSTOP,
            "TSTP" => libc::SIGTSTP,
            "XCPU" => libc::SIGXCPU,
            "XFSZ" => libc::SIGXFSZ,
            "SYS" => libc::SIGSYS,
            "TRAP" => libc::SIGTRAP,
            _ => 0,
        },
    }
}

/// Capture of one stream, keeping the first `cap` bytes.
#[derive(Default)]
struct Capture {
    data: Vec<u8>,
    dropped: bool,
}

impl Capture {
    fn push(&mut self, bytes: &[u8], cap: usize) {
        let room = cap.saturating_sub(self.data.len()).min(bytes.len());
        self.data.extend_from_slice(&bytes[..room]);
        self.dropped |= room < bytes.len();
    }
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.data).into_owned()
    }
}

/// How the command's channel ended.
enum Ended {
    Exit { code: i32, signal: Option<i32> },
    Deadline,
}

impl SshExecutor {
    async fn run_command(
        &self,
        call: RunCall,
        name: String,
        deadline: Option<Instant>,
        capture_limit: usize,
        output_limit: u64,
        cancel: Option<crate::CancelToken>,
    ) -> Result<RawResult, ExecError> {
        let started = Instant::now();
        let mut cancelled = false;
        let t = self.target.clone();
        let timeout = deadline.map(|d| d.saturating_duration_since(Instant::now()) + REMOTE_SLACK);
        let (conn, mut ch) = self.channel().await?;
        let prefix = conn.call_prefix();
        let watch_here = !conn.files.driver_watches();
        let payload = script::payload(
            call.function,
            call.command.as_deref().unwrap_or_default(),
            &name,
            &call.variables,
            timeout,
            &script::Place {
                prefix: &prefix,
                watch_output: (!watch_here).then_some(output_limit),
            },
        );
        if let Err(e) = ch.exec(true, script::DRIVER).await {
            self.drop_connection(&conn).await;
            return Err(lost(&t, &e.to_string()));
        }
        let sent = async {
            ch.data(payload.text.as_bytes()).await?;
            ch.eof().await
        }
        .await;
        if let Err(e) = sent {
            self.drop_connection(&conn).await;
            return Err(lost(&t, &e.to_string()));
        }
        let mut pre = script::Preamble::default();
        let (mut out, mut err) = (Capture::default(), Capture::default());
        let mut exit: Option<(i32, Option<i32>)> = None;
        let mut killed_at: Option<Instant> = None;
        let mut too_large = false;
        // Over SFTP, the output file's size is looked at every 200 ms once
        // the call has run that long.
        let mut next_look = watch_here.then(|| Instant::now() + OUTPUT_LOOK);
        let ended = loop {
            let wait_until = match killed_at {
                Some(k) => Some(k + KILL_GRACE),
                None => {
                    // A cancellable call looks at its token every 20 ms.
                    let tick = cancel
                        .as_ref()
                        .map(|_| Instant::now() + Duration::from_millis(20));
                    [deadline, tick, next_look].into_iter().flatten().min()
                }
            };
            let msg = match wait_until {
                Some(d) => match tokio::time::timeout_at(d.into(), ch.wait()).await {
                    Ok(m) => m,
                    Err(_) if killed_at.is_some() => {
                        tracing::warn!(host = %t.label(), "the remote command did not end within the grace after SIGKILL; closing its channel");
                        let _ = ch.close().await;
                        break Ended::Deadline;
                    }
                    Err(_)
                        if cancel
                            .as_ref()
                            .is_some_and(crate::CancelToken::is_cancelled) =>
                    {
                        tracing::debug!(host = %t.label(), "cancelled: killing the remote process group");
                        let _ = ch.signal(Sig::KILL).await;
                        killed_at = Some(Instant::now());
                        cancelled = true;
                        continue;
                    }
                    Err(_) if deadline.is_some_and(|d| Instant::now() >= d) => {
                        tracing::debug!(host = %t.label(), "deadline passed: killing the remote process group");
                        let _ = ch.signal(Sig::KILL).await;
                        killed_at = Some(Instant::now());
                        continue;
                    }
                    Err(_) => {
                        if next_look.is_some_and(|l| Instant::now() >= l) {
                            next_look = Some(Instant::now() + OUTPUT_LOOK);
                            if callfiles::output_size(&conn, &prefix)
                                .await
                                .is_some_and(|n| n > output_limit)
                            {
                                tracing::debug!(host = %t.label(), "the output file passed its limit: killing the remote process group");
                                let _ = ch.signal(Sig::KILL).await;
                                too_large = true;
                                next_look = None;
                            }
                        }
                        continue;
                    }
                },
                None => ch.wait().await,
            };
            match msg {
                Some(ChannelMsg::Data { data }) => out.push(&data, capture_limit),
                Some(ChannelMsg::ExtendedData { data, ext: 1 }) => {
                    let mine = pre.feed(&data);
                    err.push(&mine, capture_limit);
                }
                Some(ChannelMsg::ExitStatus { exit_status }) => {
                    exit = Some((exit_status as i32, None));
                }
                Some(ChannelMsg::ExitSignal { signal_name, .. }) => {
                    let n = signal_number(&signal_name);
                    exit = Some((128 + n, Some(n)));
                }
                Some(_) => {}
                None => {
                    if killed_at.is_some() {
                        break Ended::Deadline;
                    }
                    match exit {
                        Some((code, signal)) => break Ended::Exit { code, signal },
                        None => {
                            self.drop_connection(&conn).await;
                            return Err(lost(
                                &t,
                                "the channel closed before the command's exit status arrived",
                            ));
                        }
                    }
                }
            }
        };
        let suffixes = payload.suffixes;
        let cleanup = || {
            let conn = conn.clone();
            let prefix = prefix.clone();
            async move { callfiles::remove(&conn, &prefix, suffixes).await }
        };
        if let Some(e) = &pre.error {
            cleanup().await;
            return Err(ExecError::Unavailable(format!("on {}: {e}", t.label())));
        }
        let (code, signal) = match ended {
            Ended::Deadline if cancelled => {
                cleanup().await;
                return Err(ExecError::Cancelled {
                    stdout: out.text(),
                    stderr: err.text(),
                });
            }
            Ended::Deadline => {
                cleanup().await;
                return Err(ExecError::Deadline {
                    stdout: out.text(),
                    stderr: err.text(),
                });
            }
            Ended::Exit { code, signal } => (code, signal),
        };
        if !pre.started {
            cleanup().await;
            return Err(ExecError::Unavailable(format!(
                "on {}: the call could not be started (the login shell exited with {code} before running it): {}",
                t.label(),
                err.text().trim()
            )));
        }
        // Read the output file back (at most the limit and one byte) and
        // remove the call's files.
        let mut output =
            callfiles::read_back(&conn, &prefix, output_limit.saturating_add(1), suffixes).await?;
        let output_truncated = output.len() as u64 > output_limit;
        // Killed (by lunabox or the driver's watcher) while it wrote the
        // output file.
        if output_truncated && (too_large || signal == Some(9)) {
            return Err(ExecError::OutputTooLarge {
                limit: output_limit,
                stdout: out.text(),
                stderr: err.text(),
            });
        }
        if output_truncated {
            output.truncate(usize::try_from(output_limit).unwrap_or(usize::MAX));
        }
        Ok(RawResult {
            exit_code: code,
            signal,
            stdout: out.text(),
            stderr: err.text(),
            stdout_truncated: out.dropped,
            stderr_truncated: err.dropped,
            output,
            output_truncated,
            duration: started.elapsed(),
        })
    }

    /// Kinds of the entries at `paths` (relative to `source`, itself
    /// relative to the user's home) on the host: for each, `None` when
    /// missing, else (is a symlink, resolves to a directory).
    async fn stat_paths(
        &self,
        source: &str,
        paths: Vec<String>,
    ) -> Result<Vec<Option<(bool, bool)>>, ExecError> {
        if paths.is_empty() {
            return Ok(Vec::new());
        }
        let mut cmd = format!("cd && cd -- {} || exit 3\n", script::quote(source));
        for p in &paths {
            let q = script::quote(p);
            cmd.push_str(&format!(
                "if [ -L {q} ] || [ -e {q} ]; then l=0; d=0; [ -L {q} ] && l=1; [ -d {q} ] && d=1; echo \"$l$d\"; else echo -; fi\n"
            ));
        }
        let (conn, _) = (self.connection(false).await?, ());
        let (code, out, err) = simple(&conn, &cmd).await?;
        if code != 0 {
            return Err(ExecError::Unavailable(format!(
                "RunSync on {}: the source directory `{source}` cannot be entered: {}",
                self.target.label(),
                err.trim()
            )));
        }
        Ok(out
            .lines()
            .map(|l| {
                let b = l.as_bytes();
                (b.len() == 2).then(|| (b[0] == b'1', b[1] == b'1'))
            })
            .collect())
    }

    fn sync(&self, call: &RunCall, ctx: &RunContext) -> Result<RawResult, ExecError> {
        let started = Instant::now();
        let source = call.source_directory.clone().unwrap_or_default();
        // Everything the planner may ask about: each followed path and its
        // parents.
        let mut asked: Vec<String> = Vec::new();
        for f in &call.follow_symlink_paths {
            let parts: Vec<&str> = f.split('/').collect();
            for i in 1..=parts.len() {
                let p = parts[..i].join("/");
                if !asked.contains(&p) {
                    asked.push(p);
                }
            }
        }
        let this = self.clone();
        let src = source.clone();
        let q = asked.clone();
        let kinds = block(async move { this.stat_paths(&src, q).await })?;
        let table: BTreeMap<String, Option<(bool, bool)>> = asked.into_iter().zip(kinds).collect();
        let stat = |rel: &str| table.get(rel).copied().flatten();
        let rsync = find_program("rsync").ok_or_else(|| {
            ExecError::Unavailable(
                "RunSync needs `rsync` on this machine, and it is not installed (Debian: apt-get install rsync)".into(),
            )
        })?;
        let me = super::account::current();
        let client = RunAs {
            account: Account { ..me },
            switch_groups: None,
        };
        let mut bridges: Vec<rsync::Bridge> = Vec::new();
        let mut setup_error: Option<String> = None;
        let remote_shell = format!("sh -c '{}' lunabox-rsh", rsync::RSH);
        let result = super::sync::run_with(
            call,
            ctx,
            &stat,
            &mut |args: Vec<OsString>, src_text: &str, dest: OsString| {
                let timeout = ctx
                    .deadline
                    .map(|d| d.saturating_duration_since(Instant::now()) + REMOTE_SLACK);
                let mut cmd = Command::new(&rsync);
                let mut full: Vec<OsString> =
                    vec!["-e".into(), remote_shell.clone().into(), "-s".into()];
                full.extend(args);
                full.push("--".into());
                full.push(format!("host:{src_text}").into());
                full.push(dest);
                cmd.args(full)
                    .env_clear()
                    .env("PATH", super::local::DEFAULT_PATH)
                    .env("HOME", &client.account.home)
                    .env("LANG", "C.UTF-8")
                    .current_dir(&client.account.home);
                super::contain::own_group_piped(&mut cmd);
                match rsync::Bridge::start(self, timeout) {
                    Ok(b) => {
                        // SAFETY: the closure makes only async-signal-safe
                        // calls (dup2, fcntl); the bridge's
                        // socket end stays open in `bridges` until the
                        // command has been spawned and has ended.
                        unsafe {
                            cmd.pre_exec(rsync::give_fd3(&b.child_end));
                        }
                        bridges.push(b);
                    }
                    Err(e) => {
                        // rsync then fails at once (no fd 3), and this is
                        // the error reported.
                        setup_error = Some(format!("could not make the RunSync socket pair: {e}"));
                    }
                }
                cmd
            },
            &rsync,
            &client,
        );
        let reports: Vec<Option<rsync::Report>> =
            bridges.into_iter().map(rsync::Bridge::report).collect();
        let mut raw = result?;
        raw.duration = started.elapsed();
        if raw.exit_code == 0 {
            return Ok(raw);
        }
        if let Some(e) = setup_error {
            return Err(ExecError::Unavailable(e));
        }
        let label = self.target.label();
        for r in reports.into_iter().flatten() {
            if let Some(e) = r.error {
                return Err(ExecError::Unavailable(format!("RunSync from {label}: {e}")));
            }
            if r.exit == Some(127) {
                return Err(ExecError::Unavailable(format!(
                    "RunSync from {label} needs `rsync` on that host, and it could not be run there (install it there; Debian: apt-get install rsync): {}",
                    r.stderr.trim()
                )));
            }
            // The host's side first: it is usually the cause (a missing
            // directory), the local side's words the consequence.
            if !r.stderr.trim().is_empty() {
                let mut remote = format!("[{label}] {}", r.stderr.trim_end());
                remote.push('\n');
                raw.stderr.insert_str(0, &remote);
            }
        }
        Ok(raw)
    }
}

fn find_program(name: &str) -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    dirs.extend(std::env::split_paths(super::local::DEFAULT_PATH));
    dirs.into_iter().map(|d| d.join(name)).find(|p| p.is_file())
}

impl Executor for SshExecutor {
    fn execute(&self, call: &RunCall, ctx: &RunContext) -> Result<RawResult, ExecError> {
        if let Some(u) = call.target.user.as_deref()
            && !u.trim().is_empty()
            && u.trim() != self.target.user
        {
            return Err(ExecError::Unavailable(format!(
                "{} asks for user `{u}`, but environment {} connects as `{}`; add an environment for that user (lunabox env add NAME --ssh {u}@{}:{})",
                call.function.name(),
                self.target.label(),
                self.target.user,
                self.target.host,
                self.target.port
            )));
        }
        for k in call.variables.keys() {
            if !crate::call::is_env_name(k) {
                return Err(ExecError::BadCall(format!(
                    "variable name `{k}` cannot be an environment variable"
                )));
            }
        }
        if call.function == RunFunction::RunSync {
            return self.sync(call, ctx);
        }
        let name = crate::resource_of(call.command.as_deref().unwrap_or_default(), &ctx.resources)
            .unwrap_or_else(|| call.function.name().to_string());
        let this = self.clone();
        let call = call.clone();
        let (deadline, cap, limit) = (ctx.deadline, ctx.capture_limit, ctx.output_limit);
        let cancel = ctx.cancel.clone();
        block(async move {
            this.run_command(call, name, deadline, cap, limit, cancel)
                .await
        })
    }
}
