//! The shell text an SSH call sends: the fixed driver (the exec request)
//! and the per-call payload (on stdin), and the marker lines the driver
//! writes at the start of stderr.
//!
//! The driver is POSIX sh, fixed text with no call data in it (the
//! server's login shell runs it). It makes a private directory with
//! `mktemp -d`, creates the empty output file in it, reports the directory
//! on stderr as a marker line, reads the payload from stdin and `eval`s it
//! (exports of the call's variables, the script as a shell variable; so no
//! value ever passes through `AcceptEnv` or a command line), starts a
//! watcher that kills the process group if the SSH session goes away or
//! the output file grows past its limit (it looks five times a second), and
//! finally `exec`s `timeout -k` with the interpreter. `exec` keeps the
//! command in the session's process group (sshd made the driver a session
//! leader, so `timeout`'s own `setpgid` is a no-op), which is the group an
//! SSH `signal` request reaches and the group `timeout` kills.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::RunFunction;

/// Marker byte that starts the driver's own stderr lines.
pub(super) const MARK: u8 = 0x01;

/// Largest script passed as one `-c` argument (Linux's limit on one
/// argument is 128 KiB); longer ones go through a file.
const MAX_ARG_SCRIPT: usize = 128 * 1024 - 1;

/// `'text'` for sh: single quotes, each `'` as `'\''`. Every byte other
/// than NUL survives (newlines too).
pub(super) fn quote(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('\'');
    for c in text.chars() {
        if c == '\'' {
            out.push_str("'\\''");
        } else {
            out.push(c);
        }
    }
    out.push('\'');
    out
}

/// The driver: the command of the exec request (no call data in it).
pub(super) const DRIVER: &str = r#"umask 077
__lunabox_d=$(mktemp -d "${TMPDIR:-/tmp}/lunabox.XXXXXXXXXX" 2>&1) || { printf '\001ERR could not make a temporary directory on this host: %s\n' "$__lunabox_d" >&2; exit 1; }
printf '\001DIR %s\n' "$__lunabox_d" >&2
: > "$__lunabox_d/out" || { printf '\001ERR could not create the output file\n' >&2; exit 1; }
__lunabox_p=$(cat) || { printf '\001ERR could not read the call from stdin\n' >&2; exit 1; }
eval "$__lunabox_p" || { printf '\001ERR could not read the call\n' >&2; exit 1; }
unset __lunabox_p
cd || { printf '\001ERR the home directory %s cannot be entered\n' "$HOME" >&2; exit 1; }
command -v "$__lunabox_prog" >/dev/null 2>&1 || { printf '\001ERR %s\n' "$__lunabox_missing" >&2; exit 1; }
export DLPX_OUTPUT_FILE="$__lunabox_d/out"
__lunabox_s=$$ __lunabox_ppid=$PPID
( trap '' HUP INT TERM
  while sleep 0.2 2>/dev/null || sleep 1; kill -0 "$__lunabox_s" 2>/dev/null; do
    if ! kill -0 "$__lunabox_ppid" 2>/dev/null && ! [ -d "/proc/$__lunabox_ppid" ]; then kill -KILL -- "-$__lunabox_s" 2>/dev/null; exit 0; fi
    if [ -n "$__lunabox_outmax" ]; then
      __lunabox_n=$(wc -c < "$__lunabox_d/out" 2>/dev/null) || __lunabox_n=0
      if [ $((__lunabox_n + 0)) -gt "$__lunabox_outmax" ]; then kill -KILL -- "-$__lunabox_s" 2>/dev/null; exit 0; fi
    fi
  done ) </dev/null >/dev/null 2>&1 &
printf '\001GO\n' >&2
if [ -n "$__lunabox_timeout" ] && command -v timeout >/dev/null 2>&1; then
  set -- timeout -k 2 "$__lunabox_timeout" "$@"
fi
exec "$@" </dev/null
"#;

/// The payload for one call: variable exports, then the program and its
/// arguments as positional parameters (`set -- ...`).
pub(super) fn payload(
    function: RunFunction,
    script: &str,
    name: &str,
    variables: &BTreeMap<String, String>,
    timeout: Option<Duration>,
    output_limit: u64,
) -> String {
    let mut p = String::with_capacity(script.len() + 256);
    p.push_str("export LANG=C.UTF-8\n");
    for (k, v) in variables {
        p.push_str("export ");
        p.push_str(k);
        p.push('=');
        p.push_str(&quote(v));
        p.push('\n');
    }
    let (prog, missing) = match function {
        RunFunction::RunBash => (
            "bash",
            "RunBash needs `bash` on this host, and it is not installed",
        ),
        RunFunction::RunCommand => ("/bin/sh", "RunCommand needs /bin/sh on this host"),
        RunFunction::RunExpect => (
            "expect",
            "RunExpect needs `expect` on this host, and it is not installed; install it (Debian: apt-get install expect)",
        ),
        RunFunction::RunPowerShell => (
            "pwsh",
            "RunPowerShell needs `pwsh` (PowerShell) on this host, and it is not installed",
        ),
        RunFunction::RunSync => ("true", ""),
    };
    p.push_str(&format!(
        "__lunabox_prog={}\n__lunabox_missing={}\n",
        quote(prog),
        quote(missing)
    ));
    p.push_str(&format!("__lunabox_outmax={output_limit}\n"));
    p.push_str(&format!(
        "__lunabox_timeout={}\n",
        timeout.map_or(String::new(), |t| format!("{:.3}", t.as_secs_f64()))
    ));
    let as_file = |p: &mut String, ext: &str| {
        // The script goes to a private file in the call's directory.
        p.push_str(&format!(
            "printf '%s' {} > \"$__lunabox_d/script{ext}\" || exit 1\n",
            quote(script)
        ));
    };
    match function {
        RunFunction::RunBash | RunFunction::RunCommand => {
            let prog = if function == RunFunction::RunBash {
                "bash"
            } else {
                "/bin/sh"
            };
            if script.len() > MAX_ARG_SCRIPT {
                as_file(&mut p, "");
                p.push_str(&format!("set -- {prog} \"$__lunabox_d/script\"\n"));
            } else {
                p.push_str(&format!(
                    "set -- {prog} -c {} {}\n",
                    quote(script),
                    quote(name)
                ));
            }
        }
        RunFunction::RunExpect => {
            as_file(&mut p, ".exp");
            p.push_str("set -- expect -f \"$__lunabox_d/script.exp\"\n");
        }
        RunFunction::RunPowerShell => {
            if script.len() > MAX_ARG_SCRIPT {
                as_file(&mut p, ".ps1");
                p.push_str(
                    "set -- pwsh -NoProfile -NonInteractive -File \"$__lunabox_d/script.ps1\"\n",
                );
            } else {
                p.push_str(&format!(
                    "set -- pwsh -NoProfile -NonInteractive -Command {}\n",
                    quote(script)
                ));
            }
        }
        RunFunction::RunSync => p.push_str("set -- true\n"),
    }
    p
}

/// The command that reads back at most `limit` bytes of the output file
/// in `dir` and removes the directory.
pub(super) fn read_back(dir: &str, limit: u64) -> String {
    format!(
        "d={}; head -c {} -- \"$d/out\"; s=$?; rm -rf -- \"$d\"; exit $s",
        quote(dir),
        limit.saturating_add(1)
    )
}

/// The read-back command opened while the call runs: it waits for one
/// line `LIMIT DIR` on stdin, then writes at most LIMIT bytes of the output
/// file in DIR and removes DIR (no line: it does nothing).
pub(super) const READ_BACK_WAITING: &str =
    "IFS=' ' read -r n d || exit 0; head -c \"$n\" -- \"$d/out\"; s=$?; rm -rf -- \"$d\"; exit $s";

/// The command that removes a call's directory.
pub(super) fn remove(dir: &str) -> String {
    format!("rm -rf -- {}", quote(dir))
}

/// What the driver said on stderr before the command started.
#[derive(Debug, Default)]
pub(super) struct Preamble {
    /// Bytes of stderr not yet sorted into marker lines.
    pending: Vec<u8>,
    /// The call's directory (`DIR`).
    pub dir: Option<String>,
    /// The driver's error (`ERR`).
    pub error: Option<String>,
    /// The command started (`GO`).
    pub started: bool,
}

impl Preamble {
    /// Feed stderr bytes; returns the bytes that belong to the command.
    pub fn feed<'a>(&mut self, data: &'a [u8]) -> std::borrow::Cow<'a, [u8]> {
        if self.started {
            return std::borrow::Cow::Borrowed(data);
        }
        self.pending.extend_from_slice(data);
        loop {
            if self.started {
                let rest = std::mem::take(&mut self.pending);
                return std::borrow::Cow::Owned(rest);
            }
            if self.pending.first().is_some_and(|b| *b != MARK) {
                // Not a marker: something before the driver's GO wrote to
                // stderr (a login shell's rc file); keep it as the command's.
                let i = self
                    .pending
                    .iter()
                    .position(|b| *b == MARK)
                    .unwrap_or(self.pending.len());
                let head: Vec<u8> = self.pending.drain(..i).collect();
                let mut rest = self.feed_more();
                let mut out = head;
                out.append(&mut rest);
                return std::borrow::Cow::Owned(out);
            }
            let Some(nl) = self.pending.iter().position(|b| *b == b'\n') else {
                return std::borrow::Cow::Owned(Vec::new());
            };
            let line: Vec<u8> = self.pending.drain(..=nl).collect();
            let text = String::from_utf8_lossy(&line[1..line.len() - 1]).into_owned();
            if let Some(d) = text.strip_prefix("DIR ") {
                self.dir = Some(d.to_string());
            } else if let Some(e) = text.strip_prefix("ERR ") {
                self.error = Some(e.to_string());
            } else if text == "GO" {
                self.started = true;
            }
        }
    }

    fn feed_more(&mut self) -> Vec<u8> {
        if self.pending.is_empty() {
            return Vec::new();
        }
        let rest = std::mem::take(&mut self.pending);
        self.feed(&rest).into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_round_trips_through_sh() {
        let v = "it's \"quoted\"\n$HOME `x` \\ \t end\n\n";
        let out = std::process::Command::new("/bin/sh")
            .args(["-c", &format!("printf '%s' {}", quote(v))])
            .output()
            .unwrap();
        assert_eq!(String::from_utf8(out.stdout).unwrap(), v);
    }

    #[test]
    fn markers_are_split_off_in_any_chunking() {
        let all = b"\x01DIR /tmp/lunabox.abc\n\x01GO\nerr text\n";
        for cut in 0..all.len() {
            let mut p = Preamble::default();
            let mut got = p.feed(&all[..cut]).into_owned();
            got.extend_from_slice(&p.feed(&all[cut..]));
            assert_eq!(got, b"err text\n", "cut at {cut}");
            assert_eq!(p.dir.as_deref(), Some("/tmp/lunabox.abc"));
            assert!(p.started);
        }
    }
}
