//! `RunSync` over the executor's own SSH connection.
//!
//! rsync needs a byte stream to its remote half, which it gets by starting
//! its "remote shell" (`-e`) with pipes on stdin and stdout. Here that
//! remote shell is a few lines of `sh` ([`RSH`]) that talk to lunabox
//! through one end of a socket pair the local rsync inherits as fd 3: the
//! script first writes the remote command rsync asked for (its words, NUL
//! separated, after their count), then copies stdin to the socket and the
//! socket to stdout. On the other end, a [`Bridge`] task on the SSH runtime
//! reads the command, checks that it is `rsync --server ...`, runs it on a
//! new session channel of the existing connection (wrapped in coreutils
//! `timeout -k` past the hook's deadline, so it ends if lunabox dies) and
//! copies bytes both ways. So a RunSync makes no new SSH connection, needs
//! no `ssh` client on this machine, and checks the host key exactly as the
//! other calls do (it is the same connection).
//!
//! rsync runs with `--secluded-args` (`-s`): file names travel inside the
//! rsync protocol, never through the remote shell's command line.
//!
//! Ending: when the remote rsync exits its channel closes, the bridge
//! shuts the socket, the script exits and the local rsync finishes. When
//! the local side dies first (the deadline kills its process group, the
//! script included), the socket reads end and the bridge sends `SIGKILL` on
//! the channel, which sshd delivers to the remote process group.

use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream as StdUnixStream;
use std::sync::mpsc;
use std::time::Duration;

use russh::{ChannelMsg, Sig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{SshExecutor, signal_number};

/// The local rsync's remote shell: rsync starts it as `sh -c RSH
/// lunabox-rsh HOST WORD...`, with the socket to lunabox on fd 3. It has
/// no single quote in it (rsync's `-e` parser takes it between single
/// quotes).
///
/// A background job of a non-interactive shell reads `/dev/null`, so the
/// copier of stdin reads it through fd 4, saved before.
pub(super) const RSH: &str = "printf \"%s\\0\" \"$#\" \"$@\" >&3 || exit 255; \
exec 4<&0; cat <&4 >&3 & w=$!; exec 4<&-; cat <&3; kill $w 2>/dev/null; exit 0";

/// Largest remote command the script may send (rsync's are short).
const MAX_HEADER: usize = 64 * 1024;

/// How much of the remote side's stderr is kept.
const STDERR_CAP: usize = 64 * 1024;

/// How long to wait for a bridge's report after the local rsync ended.
const REPORT_WAIT: Duration = Duration::from_secs(5);

/// What a bridge saw of its remote rsync.
#[derive(Debug, Default)]
pub(super) struct Report {
    /// The remote command's exit code (128+N for a signal), if it ended.
    pub exit: Option<i32>,
    /// What the remote side wrote to stderr (at most [`STDERR_CAP`]).
    pub stderr: String,
    /// Why the bridge failed (a lost connection, a refused command).
    pub error: Option<String>,
}

/// One rsync run's link to the host: the socket end the local rsync
/// inherits, and the report of the task serving the other end.
pub(super) struct Bridge {
    /// The end the local rsync gets as fd 3 (close-on-exec here).
    pub child_end: OwnedFd,
    report: mpsc::Receiver<Report>,
}

impl Bridge {
    /// Start a bridge for one rsync run on `exec`'s connection; the remote
    /// command gets `timeout` (when given) as its own time limit.
    pub(super) fn start(exec: &SshExecutor, timeout: Option<Duration>) -> std::io::Result<Bridge> {
        let (mine, theirs) = StdUnixStream::pair()?;
        mine.set_nonblocking(true)?;
        let (tx, report) = mpsc::sync_channel(1);
        let exec = exec.clone();
        super::runtime().spawn(async move {
            let r = match tokio::net::UnixStream::from_std(mine) {
                Ok(sock) => serve(&exec, sock, timeout).await,
                Err(e) => Report {
                    error: Some(format!("could not set up the RunSync bridge: {e}")),
                    ..Report::default()
                },
            };
            let _ = tx.send(r);
        });
        Ok(Bridge {
            child_end: theirs.into(),
            report,
        })
    }

    /// The report, once the local rsync has ended (the socket's last
    /// holder gone); `None` if the bridge did not finish in time.
    pub(super) fn report(self) -> Option<Report> {
        drop(self.child_end);
        self.report.recv_timeout(REPORT_WAIT).ok()
    }
}

/// Make `fd` the child's fd 3, inheritable: for `pre_exec`.
///
/// # Safety
/// Only async-signal-safe calls (dup2, fcntl); `fd` must stay open until
/// the child has been spawned.
pub(super) unsafe fn give_fd3(fd: &OwnedFd) -> impl FnMut() -> std::io::Result<()> + use<> {
    let raw = fd.as_raw_fd();
    move || {
        // SAFETY: dup2/fcntl on descriptors of this (forked) process.
        unsafe {
            if raw == 3 {
                let flags = libc::fcntl(3, libc::F_GETFD);
                if flags < 0 || libc::fcntl(3, libc::F_SETFD, flags & !libc::FD_CLOEXEC) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            } else if libc::dup2(raw, 3) < 0 {
                return Err(std::io::Error::last_os_error());
            }
        }
        Ok(())
    }
}

/// Read the script's header: the count, then that many words; also the
/// bytes of rsync's stream that came with it.
async fn read_header(sock: &mut tokio::net::UnixStream) -> Result<(Vec<String>, Vec<u8>), String> {
    let mut buf: Vec<u8> = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        // Complete once the count and that many words have arrived.
        let parts: Vec<&[u8]> = buf.split(|&b| b == 0).collect();
        if parts.len() > 1 {
            let count: usize = std::str::from_utf8(parts[0])
                .ok()
                .and_then(|s| s.parse().ok())
                .ok_or("the remote shell script sent no word count")?;
            // `parts` ends with the (possibly empty) unterminated rest.
            if parts.len() > count + 1 {
                let words = parts[1..=count]
                    .iter()
                    .map(|w| String::from_utf8_lossy(w).into_owned())
                    .collect();
                let used: usize = parts[..=count].iter().map(|p| p.len() + 1).sum();
                return Ok((words, buf[used..].to_vec()));
            }
        }
        if buf.len() > MAX_HEADER {
            return Err("the remote command rsync asked for is too long".into());
        }
        let n = sock
            .read(&mut chunk)
            .await
            .map_err(|e| format!("reading rsync's remote command: {e}"))?;
        if n == 0 {
            return Err("rsync ended before asking for its remote command".into());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// The remote command for rsync's words (`HOST rsync --server ...`):
/// rsync already wrote them for a remote shell, which joins them with
/// spaces (as `ssh` does).
fn remote_command(words: &[String], timeout: Option<Duration>) -> Result<String, String> {
    let cmd = match words {
        [_host, rsync, server, ..] if rsync == "rsync" && server == "--server" => {
            words[1..].join(" ")
        }
        _ => {
            return Err(format!(
                "rsync asked for an unexpected remote command: {:?}",
                words.get(1..).unwrap_or_default()
            ));
        }
    };
    Ok(match timeout {
        Some(t) => format!(
            "if command -v timeout >/dev/null 2>&1; then exec timeout -k 2 {:.3} {cmd}; else exec {cmd}; fi",
            t.as_secs_f64()
        ),
        None => format!("exec {cmd}"),
    })
}

/// Serve one rsync run: read its command, run it on a new channel, copy
/// bytes both ways until both sides are done.
async fn serve(
    exec: &SshExecutor,
    mut sock: tokio::net::UnixStream,
    timeout: Option<Duration>,
) -> Report {
    let fail = |e: String| Report {
        error: Some(e),
        ..Report::default()
    };
    let (words, early) = match read_header(&mut sock).await {
        Ok(w) => w,
        Err(e) => return fail(e),
    };
    let command = match remote_command(&words, timeout) {
        Ok(c) => c,
        Err(e) => return fail(e),
    };
    let (conn, ch) = match exec.channel().await {
        Ok(c) => c,
        Err(e) => return fail(e.to_string()),
    };
    if let Err(e) = ch.exec(true, command).await {
        exec.drop_connection(&conn).await;
        return fail(super::lost(&exec.target, &e.to_string()).to_string());
    }
    let (mut from_host, to_host) = ch.split();
    let (mut sock_r, mut sock_w) = sock.into_split();

    // Host to rsync, with the exit status and stderr on the side.
    let down = tokio::spawn(async move {
        let mut r = Report::default();
        let mut closed = false;
        while let Some(msg) = from_host.wait().await {
            match msg {
                ChannelMsg::Data { data } => {
                    closed = closed || sock_w.write_all(&data).await.is_err();
                }
                ChannelMsg::ExtendedData { data, .. } => {
                    let room = STDERR_CAP.saturating_sub(r.stderr.len()).min(data.len());
                    r.stderr.push_str(&String::from_utf8_lossy(&data[..room]));
                }
                ChannelMsg::Eof => {
                    let _ = sock_w.shutdown().await;
                    closed = true;
                }
                ChannelMsg::ExitStatus { exit_status } => r.exit = Some(exit_status as i32),
                ChannelMsg::ExitSignal { signal_name, .. } => {
                    r.exit = Some(128 + signal_number(&signal_name));
                }
                _ => {}
            }
        }
        let _ = sock_w.shutdown().await;
        r
    });

    // rsync to the host, until the local side has gone.
    let mut buf = vec![0u8; 64 * 1024];
    let mut lost = None;
    if !early.is_empty()
        && let Err(e) = to_host.data_bytes(early).await
    {
        lost = Some(e.to_string());
    }
    while lost.is_none() {
        match sock_r.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if let Err(e) = to_host.data_bytes(buf[..n].to_vec()).await {
                    lost = Some(e.to_string());
                    break;
                }
            }
        }
    }
    // The local rsync (and its remote shell) ended: whatever still runs on
    // the host is killed (an error here means the channel had closed).
    if !down.is_finished() {
        let _ = to_host.signal(Sig::KILL).await;
        let _ = to_host.eof().await;
    }
    let mut r = match tokio::time::timeout(REPORT_WAIT, down).await {
        Ok(Ok(r)) => r,
        _ => {
            let _ = to_host.close().await;
            Report {
                error: Some("the remote rsync did not end after it was killed".into()),
                ..Report::default()
            }
        }
    };
    if r.exit.is_none() && r.error.is_none() {
        if let Some(e) = lost {
            exec.drop_connection(&conn).await;
            r.error = Some(super::lost(&exec.target, &e).to_string());
        } else if conn.handle.is_closed() {
            exec.drop_connection(&conn).await;
            r.error =
                Some(super::lost(&exec.target, "the connection closed during RunSync").to_string());
        }
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_rsync_servers_are_run_and_get_the_time_limit() {
        let w = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        let c = remote_command(
            &w(&["h", "rsync", "--server", "--sender", "-lse.LsfxCIvu", "."]),
            Some(Duration::from_millis(2500)),
        )
        .unwrap();
        assert!(
            c.contains("exec timeout -k 2 2.500 rsync --server --sender"),
            "{c}"
        );
        assert_eq!(
            remote_command(&w(&["h", "rsync", "--server", "."]), None).unwrap(),
            "exec rsync --server ."
        );
        assert!(remote_command(&w(&["h", "rm", "-rf", "/"]), None).is_err());
        assert!(remote_command(&w(&["h", "rsync", "-a", "x"]), None).is_err());
        assert!(remote_command(&w(&["h"]), None).is_err());
    }

    #[test]
    fn the_script_has_no_single_quote() {
        assert!(!RSH.contains('\''));
    }
}
