//! The per-connection side of a remote call's files: the connection's
//! private directory on the host, the keeper that cleans up after the
//! connection, and the file operations a call needs (read the output file
//! back, look at its size, remove the call's files).
//!
//! **Why per connection.** Each call used to make its own directory
//! (`mktemp`), run a watcher (a subshell and `sleep`), and open a second
//! session to read its output file back (`head`, `rm`): about eight
//! processes and two sshd sessions per call, against one of each for
//! `ssh HOST true`. Now the directory is made once, when the connection is
//! made, and each call's files are `DIR/N.*` (N counts the connection's
//! calls; the driver makes them with shell builtins). The files are handled
//! through the host's SFTP subsystem: one `sftp-server` per connection
//! that opens, reads, stats and removes files without starting a process.
//! A host whose sshd has no SFTP subsystem gets the same operations from
//! short shell commands on new channels ([`CallFiles::Shell`]), and its
//! calls watch their own output file's size (the driver's watcher).
//!
//! **The keeper** is a shell on a channel of its own, started with the
//! connection: it makes the directory, says where it is, and then waits
//! for its stdin to close, which happens when the connection goes away
//! (lunabox ended, or the connection dropped). It then kills the process
//! group of every call still registered (each driver writes its pid, which
//! is its process group, to `N.pid`; a call's files are removed when it
//! ends) and removes the directory. So a dropped connection leaves nothing
//! running, with no process per call watching for it.

use std::time::Duration;

use russh::ChannelMsg;
use russh::client::Msg;
use russh_sftp::client::SftpSession;
use tokio::io::AsyncReadExt;

use super::{Conn, script, simple, simple_bytes};
use crate::ExecError;

/// How long one SFTP request may take before the call reports the
/// connection lost.
const SFTP_TIMEOUT: Duration = Duration::from_secs(10);

/// How the call files of one connection are handled.
pub(super) enum CallFiles {
    /// Through the host's SFTP subsystem (no process per operation).
    Sftp(SftpSession),
    /// Through shell commands on new channels (no SFTP subsystem there).
    Shell,
}

impl CallFiles {
    /// The driver watches its own output file (no cheap way to look at it
    /// from here).
    pub(super) fn driver_watches(&self) -> bool {
        matches!(self, CallFiles::Shell)
    }
}

/// Start the keeper on `ch`: the connection's directory on the host.
pub(super) async fn start_keeper(
    ch: &mut russh::Channel<Msg>,
    label: &str,
) -> Result<String, ExecError> {
    ch.exec(true, script::KEEPER)
        .await
        .map_err(|e| ExecError::Unavailable(format!("SSH to {label}: {e}")))?;
    let mut line = Vec::new();
    let mut err = Vec::new();
    let got = tokio::time::timeout(super::CONNECT_TIMEOUT, async {
        while let Some(msg) = ch.wait().await {
            match msg {
                ChannelMsg::Data { data } => {
                    line.extend_from_slice(&data);
                    if line.contains(&b'\n') {
                        return true;
                    }
                }
                ChannelMsg::ExtendedData { data, .. } => err.extend_from_slice(&data),
                _ => {}
            }
        }
        false
    })
    .await;
    let text = String::from_utf8_lossy(&line).into_owned();
    let first = text.lines().next().unwrap_or_default();
    match got {
        Ok(true) => {}
        Ok(false) => {
            return Err(ExecError::Unavailable(format!(
                "on {label}: the login shell could not start lunabox's helper shell: {}",
                String::from_utf8_lossy(&err).trim()
            )));
        }
        Err(_) => {
            return Err(ExecError::Unavailable(format!(
                "on {label}: the login shell did not start lunabox's helper shell within {}s (does the user's shell rc file wait for input?)",
                super::CONNECT_TIMEOUT.as_secs()
            )));
        }
    }
    // A login shell's rc file may print before the keeper does: the keeper's
    // line is the last full one.
    let last = text
        .lines()
        .rev()
        .find(|l| l.starts_with("DIR ") || l.starts_with("ERR "))
        .unwrap_or(first);
    if let Some(d) = last.strip_prefix("DIR ")
        && d.starts_with('/')
    {
        return Ok(d.to_string());
    }
    let why = last.strip_prefix("ERR ").unwrap_or(last);
    Err(ExecError::Unavailable(format!("on {label}: {why}")))
}

/// Open the SFTP subsystem on `ch`, or `Shell` when the host has none.
pub(super) async fn open(mut ch: russh::Channel<Msg>) -> CallFiles {
    if ch.request_subsystem(true, "sftp").await.is_err() {
        return CallFiles::Shell;
    }
    let answer = tokio::time::timeout(super::CONNECT_TIMEOUT, async {
        loop {
            match ch.wait().await {
                Some(ChannelMsg::Success) => return true,
                Some(ChannelMsg::Failure) | None => return false,
                Some(_) => {}
            }
        }
    })
    .await;
    if answer != Ok(true) {
        tracing::debug!("the host has no SFTP subsystem; call files go through the shell");
        return CallFiles::Shell;
    }
    match tokio::time::timeout(super::CONNECT_TIMEOUT, SftpSession::new(ch.into_stream())).await {
        Ok(Ok(s)) => {
            s.set_timeout(SFTP_TIMEOUT.as_secs());
            CallFiles::Sftp(s)
        }
        _ => {
            tracing::debug!("the SFTP subsystem did not start; call files go through the shell");
            CallFiles::Shell
        }
    }
}

/// Read at most `limit` bytes of the output file of the call whose files
/// are `prefix.*`, then remove the call's files `prefix.SUFFIX` for each of
/// `suffixes` (the SFTP way) or `prefix.*` (the shell way).
pub(super) async fn read_back(
    conn: &Conn,
    prefix: &str,
    limit: u64,
    suffixes: &'static [&'static str],
) -> Result<Vec<u8>, ExecError> {
    let t = &conn.target;
    match &conn.files {
        CallFiles::Sftp(s) => {
            let path = format!("{prefix}.out");
            let read = async {
                let f = s.open(path.as_str()).await?;
                let mut out = Vec::new();
                f.take(limit).read_to_end(&mut out).await?;
                Ok::<_, russh_sftp::client::error::Error>(out)
            }
            .await;
            remove(conn, prefix, suffixes).await;
            read.map_err(|e| {
                ExecError::Unavailable(format!(
                    "on {}: could not read the output file back: {e}",
                    t.label()
                ))
            })
        }
        CallFiles::Shell => {
            let (code, out, err) = simple_bytes(conn, &script::read_back(prefix, limit)).await?;
            if code != 0 {
                return Err(ExecError::Unavailable(format!(
                    "on {}: could not read the output file back (exit {code}): {}",
                    t.label(),
                    String::from_utf8_lossy(&err).trim()
                )));
            }
            Ok(out)
        }
    }
}

/// The size of the output file of the call whose files are `prefix.*`
/// (`None`: it could not be seen; the SFTP way only).
pub(super) async fn output_size(conn: &Conn, prefix: &str) -> Option<u64> {
    let CallFiles::Sftp(s) = &conn.files else {
        return None;
    };
    let m = tokio::time::timeout(Duration::from_secs(2), s.metadata(format!("{prefix}.out")))
        .await
        .ok()?
        .ok()?;
    m.size
}

/// Remove the call's files (errors ignored: the keeper removes the whole
/// directory when the connection goes away).
pub(super) async fn remove(conn: &Conn, prefix: &str, suffixes: &'static [&'static str]) {
    match &conn.files {
        CallFiles::Sftp(s) => {
            for suffix in suffixes {
                if let Err(e) = s.remove_file(format!("{prefix}.{suffix}")).await {
                    tracing::trace!("removing {prefix}.{suffix}: {e}");
                }
            }
        }
        CallFiles::Shell => {
            let _ = simple(conn, &script::remove(prefix)).await;
        }
    }
}
