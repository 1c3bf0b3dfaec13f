//! The shell text an SSH connection and its calls send: the keeper (a
//! connection's first channel, see [`super::callfiles`]), the fixed driver
//! (each call's exec request) and the per-call payload (on stdin), and the
//! marker lines the driver writes at the start of stderr.
//!
//! The driver is POSIX sh, fixed text with no call data in it (the
//! server's login shell runs it). It reads the payload from stdin and
//! `eval`s it (where the call's files go, exports of the call's variables,
//! the script as a shell variable; so no value ever passes through
//! `AcceptEnv` or a command line), registers its pid and creates the
//! empty output file in the connection's private directory (shell
//! builtins only), and finally `exec`s `timeout -k` with the interpreter.
//! `exec` keeps the command in the session's process group (sshd made the
//! driver a session leader, so `timeout`'s own `setpgid` is a no-op),
//! which is the group an SSH `signal` request reaches, the group `timeout`
//! kills, and the group the keeper kills when the connection goes away.
//! Only on a host without SFTP does the driver start a watcher of its own,
//! which kills the group when the output file grows past its limit (it
//! looks five times a second); elsewhere lunabox looks over SFTP.

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

/// The keeper: the command of the connection's first channel (see
/// [`super::callfiles`]). It makes the connection's private directory,
/// prints `DIR path` (or `ERR why`), waits for its stdin to close (the
/// connection went away), then kills the process group of every call still
/// registered in the directory and removes it.
pub(super) const KEEPER: &str = r#"umask 077
d=$(mktemp -d "${TMPDIR:-/tmp}/lunabox.XXXXXXXXXX" 2>&1) || { printf 'ERR could not make a temporary directory on this host: %s\n' "$d"; exit 1; }
printf 'DIR %s\n' "$d"
trap '' HUP INT TERM PIPE
while IFS= read -r __lunabox_l; do :; done
for f in "$d"/*.pid; do
  [ -f "$f" ] || continue
  IFS= read -r p < "$f" || continue
  case $p in ''|*[!0-9]*) continue ;; esac
  kill -KILL -- "-$p" 2>/dev/null
done
rm -rf -- "$d"
"#;

/// The driver: the command of a call's exec request (no call data in it).
/// The payload names the call's files (`$__lunabox_f.*` in the
/// connection's directory).
pub(super) const DRIVER: &str = r#"umask 077
__lunabox_p=$(cat) || { printf '\001ERR could not read the call from stdin\n' >&2; exit 1; }
eval "$__lunabox_p" || { printf '\001ERR could not read the call\n' >&2; exit 1; }
unset __lunabox_p
{ printf '%s\n' "$$" > "$__lunabox_f.pid" && : > "$__lunabox_f.out"; } 2>/dev/null || { printf '\001ERR could not create the output file %s.out (was the temporary directory removed?)\n' "$__lunabox_f" >&2; exit 1; }
cd || { printf '\001ERR the home directory %s cannot be entered\n' "$HOME" >&2; exit 1; }
command -v "$__lunabox_prog" >/dev/null 2>&1 || { printf '\001ERR %s\n' "$__lunabox_missing" >&2; exit 1; }
export DLPX_OUTPUT_FILE="$__lunabox_f.out"
if [ -n "$__lunabox_outmax" ]; then
  __lunabox_s=$$
  ( trap '' HUP INT TERM
    while sleep 0.2 2>/dev/null || sleep 1; kill -0 "$__lunabox_s" 2>/dev/null; do
      __lunabox_n=$(wc -c < "$DLPX_OUTPUT_FILE" 2>/dev/null) || __lunabox_n=0
      if [ $((__lunabox_n + 0)) -gt "$__lunabox_outmax" ]; then kill -KILL -- "-$__lunabox_s" 2>/dev/null; exit 0; fi
    done ) </dev/null >/dev/null 2>&1 &
fi
printf '\001GO\n' >&2
if [ -n "$__lunabox_timeout" ] && command -v timeout >/dev/null 2>&1; then
  set -- timeout -k 2 "$__lunabox_timeout" "$@"
fi
exec "$@" </dev/null
"#;

/// The payload of one call, and which of the call's files it makes.
pub(super) struct Payload {
    /// The text the driver `eval`s.
    pub text: String,
    /// The suffixes of the call's files (`PREFIX.SUFFIX`), to remove
    /// after the call.
    pub suffixes: &'static [&'static str],
}

/// What a call needs to know of where it runs.
pub(super) struct Place<'a> {
    /// The call's files are `prefix.*` (in the connection's directory).
    pub prefix: &'a str,
    /// The driver watches the output file's size itself (`Some(limit)`).
    pub watch_output: Option<u64>,
}

/// The payload for one call: where its files go, variable exports, then
/// the program and its arguments as positional parameters (`set -- ...`).
pub(super) fn payload(
    function: RunFunction,
    script: &str,
    name: &str,
    variables: &BTreeMap<String, String>,
    timeout: Option<Duration>,
    place: &Place<'_>,
) -> Payload {
    let mut p = String::with_capacity(script.len() + 256);
    p.push_str("__lunabox_f=");
    p.push_str(&quote(place.prefix));
    p.push_str("\nexport LANG=C.UTF-8\n");
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
    p.push_str(&format!(
        "__lunabox_outmax={}\n",
        place
            .watch_output
            .map_or(String::new(), |limit| limit.to_string())
    ));
    p.push_str(&format!(
        "__lunabox_timeout={}\n",
        timeout.map_or(String::new(), |t| format!("{:.3}", t.as_secs_f64()))
    ));
    // The script goes to a private file of the call.
    let as_file = |p: &mut String, ext: &str| {
        p.push_str(&format!(
            "printf '%s' {} > \"$__lunabox_f.{ext}\" || exit 1\n",
            quote(script)
        ));
    };
    const PLAIN: &[&str] = &["out", "pid"];
    let suffixes: &'static [&'static str] = match function {
        RunFunction::RunBash | RunFunction::RunCommand => {
            let prog = if function == RunFunction::RunBash {
                "bash"
            } else {
                "/bin/sh"
            };
            if script.len() > MAX_ARG_SCRIPT {
                as_file(&mut p, "script");
                p.push_str(&format!("set -- {prog} \"$__lunabox_f.script\"\n"));
                &["out", "pid", "script"]
            } else {
                p.push_str(&format!(
                    "set -- {prog} -c {} {}\n",
                    quote(script),
                    quote(name)
                ));
                PLAIN
            }
        }
        RunFunction::RunExpect => {
            as_file(&mut p, "exp");
            p.push_str("set -- expect -f \"$__lunabox_f.exp\"\n");
            &["out", "pid", "exp"]
        }
        RunFunction::RunPowerShell => {
            if script.len() > MAX_ARG_SCRIPT {
                as_file(&mut p, "ps1");
                p.push_str("set -- pwsh -NoProfile -NonInteractive -File \"$__lunabox_f.ps1\"\n");
                &["out", "pid", "ps1"]
            } else {
                p.push_str(&format!(
                    "set -- pwsh -NoProfile -NonInteractive -Command {}\n",
                    quote(script)
                ));
                PLAIN
            }
        }
        RunFunction::RunSync => {
            p.push_str("set -- true\n");
            PLAIN
        }
    };
    Payload { text: p, suffixes }
}

/// The command that writes at most `limit` bytes of the output file of the
/// call whose files are `prefix.*`, then removes those files.
pub(super) fn read_back(prefix: &str, limit: u64) -> String {
    format!(
        "f={}; head -c {limit} -- \"$f.out\"; s=$?; rm -f -- \"$f\".*; exit $s",
        quote(prefix)
    )
}

/// The command that removes the files of the call whose files are
/// `prefix.*`.
pub(super) fn remove(prefix: &str) -> String {
    format!("rm -f -- {}.*", quote(prefix))
}

/// What the driver said on stderr before the command started.
#[derive(Debug, Default)]
pub(super) struct Preamble {
    /// Bytes of stderr not yet sorted into marker lines.
    pending: Vec<u8>,
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
            if let Some(e) = text.strip_prefix("ERR ") {
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
        let all = b"rc noise\n\x01GO\nerr text\n";
        for cut in 0..all.len() {
            let mut p = Preamble::default();
            let mut got = p.feed(&all[..cut]).into_owned();
            got.extend_from_slice(&p.feed(&all[cut..]));
            assert_eq!(got, b"rc noise\nerr text\n", "cut at {cut}");
            assert!(p.error.is_none());
            assert!(p.started);
        }
    }
}
