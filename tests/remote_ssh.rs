//! Remote environments over SSH, against real test hosts: network
//! namespaces joined by veth pairs, each running Debian's sshd (see
//! tests/common/sshhosts.rs). lunabox itself runs inside a namespace too.
//! Without root or network namespaces every test here says SKIPPED, loudly,
//! and returns; `cargo xtask test` counts it as skipped, not passed.
//!
//! The namespaces share this machine's filesystem: a test host sees the
//! paths lunabox sees. Tests that check files a remote command wrote, or
//! that stage on a remote host, rely on that (it stands in for a host that
//! mounts the engine's storage over NFS).

mod common {
    #[path = "../common/engine.rs"]
    pub mod engine;
    #[path = "../common/sshhosts.rs"]
    pub mod sshhosts;
}

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

use common::engine::{bin, show};
use common::sshhosts::{Net, PORT};
use serde_json::{Value, json};

/// A state directory and the test hosts.
struct World {
    net: Net,
    state: tempfile::TempDir,
}

impl World {
    fn new(test: &str, hosts: usize) -> Option<World> {
        World::with(test, hosts, false, None)
    }

    fn with(test: &str, hosts: usize, root: bool, path: Option<&str>) -> Option<World> {
        let net = Net::with(test, hosts, root, path)?;
        let state = tempfile::tempdir().unwrap();
        Some(World { net, state })
    }

    /// `lunabox ARGS` inside the client namespace.
    fn run(&self, args: &[&str]) -> Output {
        self.run_stdin(args, "")
    }

    fn run_stdin(&self, args: &[&str], stdin: &str) -> Output {
        use std::io::Write;
        let mut c = self.net.cmd_plain(&bin(), args);
        c.env("LUNABOX_STATE", self.state.path())
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = c.spawn().unwrap();
        let mut input = child.stdin.take().unwrap();
        input.write_all(stdin.as_bytes()).unwrap();
        drop(input);
        child.wait_with_output().unwrap()
    }

    fn ok(&self, args: &[&str]) -> Output {
        let o = self.run(args);
        assert!(o.status.success(), "lunabox {args:?} failed:\n{}", show(&o));
        o
    }

    fn add_ssh(&self, name: &str, host: usize) -> Value {
        let o = self.add_ssh_output(name, host);
        serde_json::from_slice(&o.stdout).unwrap()
    }

    fn add_ssh_output(&self, name: &str, host: usize) -> Output {
        self.ok(&[
            "env",
            "add",
            name,
            "--ssh",
            &self.net.hosts[host].spec(),
            "--identity",
            self.net.identity.to_str().unwrap(),
            "--known-hosts",
            self.net.known_hosts.to_str().unwrap(),
            "--json",
        ])
    }

    /// Run a Lua chunk with `lunabox eval` on environment `env`; the JSON
    /// outcome.
    fn eval(&self, env: &str, chunk: &str, extra: &[&str]) -> Value {
        let mut args = vec!["eval", "-", "--json", "--environment", env];
        args.extend_from_slice(extra);
        let o = self.run_stdin(&args, chunk);
        let mut v: Value = serde_json::from_slice(&o.stdout)
            .unwrap_or_else(|e| panic!("eval printed no JSON ({e}):\n{}", show(&o)));
        v["_stderr"] = json!(stderr(&o));
        v
    }

    fn env_names(&self) -> Vec<String> {
        let o = self.ok(&["env", "list", "--json"]);
        let v: Value = serde_json::from_slice(&o.stdout).unwrap();
        v.as_array()
            .unwrap()
            .iter()
            .map(|e| e["name"].as_str().unwrap().to_string())
            .collect()
    }
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn env_add_over_ssh_checks_the_host_key_the_key_and_the_host() {
    let Some(w) = World::new(
        "env_add_over_ssh_checks_the_host_key_the_key_and_the_host",
        1,
    ) else {
        return;
    };
    let h = &w.net.hosts[0];
    let id = w.net.identity.to_str().unwrap();
    let dir = w.net.dir.path();
    let add = |name: &str, spec: &str, identity: &str, kh: &Path| {
        w.run(&[
            "env",
            "add",
            name,
            "--ssh",
            spec,
            "--identity",
            identity,
            "--known-hosts",
            kh.to_str().unwrap(),
        ])
    };

    // An unknown host key: refused, the fingerprint shown, nothing recorded.
    let empty = dir.join("empty_known_hosts");
    std::fs::write(&empty, "").unwrap();
    let o = add("unknown", &h.spec(), id, &empty);
    assert!(!o.status.success());
    let e = stderr(&o);
    assert!(e.contains("host key is not known"), "{e}");
    assert!(e.contains("SHA256:"), "{e}");
    assert!(e.contains(&format!("[{}]:{PORT}", h.addr)), "{e}");

    // A changed host key.
    let other = dir.join("otherkey");
    common_keygen(&other);
    let other_pub = std::fs::read_to_string(other.with_extension("pub")).unwrap();
    let wrong = dir.join("wrong_known_hosts");
    std::fs::write(
        &wrong,
        format!(
            "[{}]:{PORT} {}\n",
            h.addr,
            other_pub
                .split_whitespace()
                .take(2)
                .collect::<Vec<_>>()
                .join(" ")
        ),
    )
    .unwrap();
    let o = add("changed", &h.spec(), id, &wrong);
    assert!(!o.status.success());
    let e = stderr(&o);
    assert!(e.contains("HOST KEY HAS CHANGED"), "{e}");
    assert!(e.contains("SHA256:"), "{e}");

    // A key the host does not accept.
    let o = add(
        "badkey",
        &h.spec(),
        other.to_str().unwrap(),
        &w.net.known_hosts,
    );
    assert!(!o.status.success());
    assert!(stderr(&o).contains("refused the key"), "{}", stderr(&o));

    // Nobody listening, and no route at all.
    let o = add(
        "refused",
        &format!("{}@{}:{}", h.user, h.addr, PORT + 1),
        id,
        &w.net.known_hosts,
    );
    assert!(!o.status.success());
    assert!(stderr(&o).contains("connection refused"), "{}", stderr(&o));
    let o = add(
        "noroute",
        &format!("{}@10.77.99.2:{PORT}", h.user),
        id,
        &w.net.known_hosts,
    );
    assert!(!o.status.success());
    assert!(stderr(&o).contains("cannot connect"), "{}", stderr(&o));
    assert!(w.env_names().is_empty(), "{:?}", w.env_names());

    // The good one: OS and home recorded.
    let v = w.add_ssh("remote", 0);
    let env = &v["environment"];
    assert_eq!(env["kind"], "ssh");
    assert_eq!(env["os"], "Linux");
    assert_eq!(env["home"], h.home.display().to_string());
    assert_eq!(env["user"], h.user);
    assert_eq!(w.env_names(), vec!["remote".to_string()]);
}

fn common_keygen(path: &Path) {
    let o = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(path)
        .output()
        .unwrap();
    assert!(o.status.success());
}

/// The Run-call semantics checks, written once: the chunk returns a table
/// of what it saw; run on a local and on an SSH environment.
const SEMANTICS: &str = r##"
local out = {}
local big = string.rep("x", 16 * 1024 - 4) .. "'\"\n$"
local tricky = "it's \"quoted\"\nline two\t$HOME `id` \\ end\n"
RunBash { command = 'printf "%s" "$V" > "$HOME/lb-tricky"', variables = { V = tricky } }
RunBash { command = 'printf "%s" "$BIG" > "$HOME/lb-big"', variables = { BIG = big } }
out.tricky = true
out.big = RunBash { command = '[ ${#BIG} -eq 16384 ] && echo true > "$DLPX_OUTPUT_FILE"', variables = { BIG = big }, outputSchema = { type = "boolean" } }
out.evaled = RunBash { command = 'eval "$LIB"; f > "$DLPX_OUTPUT_FILE"', variables = { LIB = "f() { echo '\"from lib\"'; }\n" .. string.rep("# pad\n", 3000) }, outputSchema = { type = "string" } }
out.types = RunBash { command = 'printf "[\\"%s\\",\\"%s\\",\\"%s\\"]" "$I" "$F" "$B" > "$DLPX_OUTPUT_FILE"', variables = { I = 5, F = 2.5, B = true, N = nil }, outputSchema = { type = "array" } }
out.fresh = RunBash { command = '[ -f "$DLPX_OUTPUT_FILE" ] && [ ! -s "$DLPX_OUTPUT_FILE" ] && echo \'"yes"\' > "$DLPX_OUTPUT_FILE"; echo \'"twice"\' >> /dev/null', outputSchema = { type = "string" } }
out.append = RunBash { command = 'printf "[1" > "$DLPX_OUTPUT_FILE"; printf ",2]" >> "$DLPX_OUTPUT_FILE"', outputSchema = { type = "array" } }
out.home = RunBash { command = 'printf "\\"%s\\"" "$(pwd)" > "$DLPX_OUTPUT_FILE"', outputSchema = { type = "string" } } == RunBash { command = 'printf "\\"%s\\"" "$HOME" > "$DLPX_OUTPUT_FILE"', outputSchema = { type = "string" } }
out.stdin = RunBash { command = 'read -r x; printf "%s" "$?" > "$DLPX_OUTPUT_FILE"', outputSchema = { type = "integer" } }
out.sh = RunCommand { command = 'if [ -z "$BASH_VERSION" ]; then echo \'"sh"\'; else echo \'"bash"\'; fi > "$DLPX_OUTPUT_FILE"', outputSchema = { type = "string" } }
out.noschema = RunBash { command = 'echo \'"ignored"\' > "$DLPX_OUTPUT_FILE"' } == nil
local ok, e = pcall(RunBash, { command = 'echo out; echo err >&2; echo \"INACTIVE\" > "$DLPX_OUTPUT_FILE"; exit 7', outputSchema = { type = "string" } })
out.exit7 = { ok = ok, code = e.exitCode, stdout = e.stdout, stderr = e.stderr }
ok, e = pcall(RunBash, { command = 'exit 255' })
out.exit255 = e.exitCode
ok, e = pcall(RunBash, { command = 'kill -KILL $$' })
out.term = e.exitCode
ok, e = pcall(RunBash, { command = 'echo "not json" > "$DLPX_OUTPUT_FILE"', outputSchema = { type = "string" } })
out.badjson = not ok and string.find(tostring(e), "not json", 1, true) ~= nil
ok, e = pcall(RunBash, { command = 'true', outputSchema = { type = "string" } })
out.empty = not ok and string.find(tostring(e), "wrote no output", 1, true) ~= nil
ok, e = pcall(RunBash, { command = 'echo 5 > "$DLPX_OUTPUT_FILE"', outputSchema = { type = "string" } })
out.schema = not ok
local t = os.time()
out.bg = RunBash { command = '(sleep 2; echo late) & echo \'"early"\' > "$DLPX_OUTPUT_FILE"', outputSchema = { type = "string" } }
out.bgwaited = os.time() - t >= 1
out.bgfree = RunBash { command = 'nohup sleep 3 >/dev/null 2>&1 & echo \'"free"\' > "$DLPX_OUTPUT_FILE"', outputSchema = { type = "string" } }
ok, e = pcall(RunBash, { command = 'head -c 3000000 /dev/zero | tr "\\0" y' })
out.bigout = ok
return out
"##;

#[test]
fn run_calls_mean_the_same_locally_and_over_ssh() {
    let Some(w) = World::new("run_calls_mean_the_same_locally_and_over_ssh", 1) else {
        return;
    };
    w.ok(&["env", "add", "here", "--local"]);
    w.add_ssh("there", 0);
    let mut seen = Vec::new();
    for env in ["here", "there"] {
        let v = w.eval(env, SEMANTICS, &[]);
        assert_eq!(v["outcome"], "ok", "{env}: {v:#}");
        let o = &v["value"];
        for k in [
            "tricky", "big", "home", "noschema", "badjson", "empty", "schema", "bgwaited", "bigout",
        ] {
            assert_eq!(o[k], true, "{env}: {k}: {o:#}");
        }
        assert_eq!(o["evaled"], "from lib", "{env}");
        assert_eq!(o["types"], json!(["5", "2.5", "true"]), "{env}");
        assert_eq!(o["fresh"], "yes", "{env}");
        assert_eq!(o["append"], json!([1, 2]), "{env}");
        assert_eq!(o["stdin"], 1, "{env}: stdin is /dev/null");
        assert_eq!(o["sh"], "sh", "{env}");
        assert_eq!(
            o["exit7"],
            json!({"ok": false, "code": 7, "stdout": "out\n", "stderr": "err\n"}),
            "{env}"
        );
        assert_eq!(o["exit255"], 255, "{env}: 255 is the command's, not ssh's");
        assert_eq!(o["term"], 137, "{env}");
        assert_eq!(o["bg"], "early", "{env}");
        assert_eq!(o["bgfree"], "free", "{env}");
        // The capped stdout is in the transcript, marked truncated.
        let calls = v["runCalls"].as_array().unwrap();
        let last = calls.last().unwrap();
        assert_eq!(last["stdoutTruncated"], true, "{env}: {last}");
        let home = PathBuf::from(if env == "here" {
            std::env::var("HOME").unwrap_or_else(|_| "/root".into())
        } else {
            w.net.hosts[0].home.display().to_string()
        });
        assert_eq!(
            std::fs::read_to_string(home.join("lb-tricky")).unwrap(),
            "it's \"quoted\"\nline two\t$HOME `id` \\ end\n",
            "{env}"
        );
        let big = std::fs::read_to_string(home.join("lb-big")).unwrap();
        assert_eq!(big.len(), 16 * 1024, "{env}");
        assert!(big.ends_with("'\"\n$"), "{env}");
        let _ = std::fs::remove_file(home.join("lb-tricky"));
        let _ = std::fs::remove_file(home.join("lb-big"));
        seen.push(o.clone());
    }
    assert_eq!(seen[0], seen[1], "local and SSH calls differ");
}

fn running(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => false,
        Ok(s) => !matches!(
            s.rsplit_once(')')
                .map(|(_, r)| r.trim_start().chars().next()),
            Some(Some('Z' | 'X'))
        ),
    }
}

fn wait_dead(pids: &[i32], within: Duration) -> bool {
    let t = Instant::now();
    while t.elapsed() < within {
        if pids.iter().all(|p| !running(*p)) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

fn read_pids(path: &Path) -> Vec<i32> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

#[test]
fn the_deadline_kills_the_remote_command_and_its_children() {
    let Some(w) = World::new("the_deadline_kills_the_remote_command_and_its_children", 1) else {
        return;
    };
    w.add_ssh("there", 0);
    let h = &w.net.hosts[0];
    let pids = h.home.join("pids");
    let chunk = format!(
        "RunBash {{ command = 'sleep 300 & echo $! > {p}; (sleep 301; true) & echo $! >> {p}; echo $$ >> {p}; sleep 302' }}",
        p = pids.display()
    );
    let t = Instant::now();
    let v = w.eval("there", &chunk, &["--timeout", "2s"]);
    assert_eq!(v["outcome"], "limit", "{v:#}");
    assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
    let ps = read_pids(&pids);
    assert_eq!(ps.len(), 3, "{ps:?}");
    // Checked on the host itself.
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(1) && !ps.iter().all(|p| !running(*p)) {
        std::thread::sleep(Duration::from_millis(20));
    }
    let alive = h.sh(&format!(
        "for p in {}; do s=$(cut -d' ' -f3 /proc/$p/stat 2>/dev/null); [ -n \"$s\" ] && [ \"$s\" != Z ] && echo $p; done; true",
        ps.iter().map(i32::to_string).collect::<Vec<_>>().join(" ")
    ));
    assert_eq!(
        String::from_utf8_lossy(&alive.stdout).trim(),
        "",
        "still running on the host: {v:#}"
    );
    assert!(wait_dead(&ps, Duration::from_secs(3)));
}

#[test]
fn an_output_file_growing_past_the_limit_on_the_host_is_stopped_there() {
    let Some(w) = World::new(
        "an_output_file_growing_past_the_limit_on_the_host_is_stopped_there",
        1,
    ) else {
        return;
    };
    let o = w.add_ssh_output("there", 0);
    assert!(!stderr(&o).contains("SFTP"), "{}", show(&o));
    output_file_limit_and_read_back(&w);
}

/// A host whose sshd has no SFTP subsystem: the call files go through
/// shell commands, and the driver watches the output file itself.
#[test]
fn without_sftp_the_output_file_is_read_back_and_limited_all_the_same() {
    let test = "without_sftp_the_output_file_is_read_back_and_limited_all_the_same";
    let Some(net) = Net::without_sftp(test, 1) else {
        return;
    };
    let w = World {
        net,
        state: tempfile::tempdir().unwrap(),
    };
    let o = w.add_ssh_output("there", 0);
    assert!(
        stderr(&o).contains("no SFTP subsystem"),
        "env add should say what the host lacks: {}",
        show(&o)
    );
    output_file_limit_and_read_back(&w);
    // Same semantics for the rest: exit code, stdout, a binary document.
    let v = w.eval(
        "there",
        r#"local ok, e = pcall(RunBash, { command = 'echo out; exit 7' })
return { ok = ok, code = e.exitCode, stdout = e.stdout }"#,
        &[],
    );
    assert_eq!(
        v["value"],
        json!({"ok": false, "code": 7, "stdout": "out\n"}),
        "{v:#}"
    );
}

/// Files a call made on host `h` still there (every call's files go when
/// it ends; the connection's directory when the connection does).
fn leftovers(h: &common::sshhosts::Host) -> String {
    let t = Instant::now();
    loop {
        let o = std::process::Command::new("find")
            .args([
                "/tmp",
                "-maxdepth",
                "2",
                "-path",
                "/tmp/lunabox.*",
                "-user",
                &h.user,
            ])
            .output()
            .unwrap();
        let found = String::from_utf8_lossy(&o.stdout).into_owned();
        if found.trim().is_empty() || t.elapsed() > Duration::from_secs(3) {
            return found;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn output_file_limit_and_read_back(w: &World) {
    let h = &w.net.hosts[0];
    let pids = h.home.join("writer-pids");
    // Writes forever; without a watch only the 30 s deadline ends it.
    let chunk = format!(
        "return RunBash {{ command = 'echo $$ >> {p}; while :; do echo 0123456789 >> \"$DLPX_OUTPUT_FILE\"; sleep 0.01; done' }}",
        p = pids.display()
    );
    for _ in 0..2 {
        let t = Instant::now();
        let v = w.eval(
            "there",
            &chunk,
            &["--timeout", "30s", "--max-output-file", "200"],
        );
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "took {:?}: {v:#}",
            t.elapsed()
        );
        assert_eq!(v["outcome"], "error", "{v:#}");
        assert!(
            v["message"]
                .as_str()
                .unwrap_or_default()
                .contains("more than 200 bytes"),
            "{v:#}"
        );
    }
    let ps = read_pids(&pids);
    assert_eq!(ps.len(), 2, "{ps:?}");
    assert!(
        wait_dead(&ps, Duration::from_secs(3)),
        "a writer still runs"
    );
    // A document within the limit is still read back whole, and a fresh
    // empty file each call (the second call sees nothing of the first).
    let v = w.eval(
        "there",
        "local a = RunBash { command = 'printf \"[1,2,3]\" > \"$DLPX_OUTPUT_FILE\"', outputSchema = { type = \"array\" } }\n\
         local b = RunBash { command = 'wc -c < \"$DLPX_OUTPUT_FILE\" | tr -d \" \\n\" > /dev/stderr; printf \"[]\" >> \"$DLPX_OUTPUT_FILE\"', outputSchema = { type = \"array\" } }\n\
         return { a = a, b = b }",
        &["--max-output-file", "200"],
    );
    assert_eq!(v["value"], json!({"a": [1, 2, 3], "b": []}), "{v:#}");
    let left = leftovers(h);
    assert!(left.trim().is_empty(), "left on the host: {left}");
}

#[test]
fn a_connection_killed_mid_call_fails_the_call_and_the_next_call_reconnects() {
    let Some(w) = World::new(
        "a_connection_killed_mid_call_fails_the_call_and_the_next_call_reconnects",
        1,
    ) else {
        return;
    };
    w.add_ssh("there", 0);
    let h = &w.net.hosts[0];
    let marker = h.home.join("started");
    let pids = h.home.join("pids");
    let chunk = format!(
        r#"local ok, e = pcall(RunBash, {{ command = 'sleep 200 & echo $! > {p}; echo $$ >> {p}; touch {m}; sleep 201' }})
local second = RunBash {{ command = 'echo \'"again"\' > "$DLPX_OUTPUT_FILE"', outputSchema = {{ type = "string" }} }}
return {{ ok = ok, message = tostring(e), second = second }}"#,
        p = pids.display(),
        m = marker.display()
    );
    let killer = {
        let marker = marker.clone();
        let listener = h.sshd_pid();
        std::thread::spawn(move || {
            let t = Instant::now();
            while !marker.exists() && t.elapsed() < Duration::from_secs(30) {
                std::thread::sleep(Duration::from_millis(20));
            }
            // Well into the call (lunabox has looked at the output file's
            // size a few times).
            std::thread::sleep(Duration::from_millis(700));
            common::sshhosts::drop_connections_of(listener);
        })
    };
    let v = w.eval("there", &chunk, &["--timeout", "60s"]);
    killer.join().unwrap();
    assert_eq!(v["outcome"], "ok", "{v:#}");
    let o = &v["value"];
    assert_eq!(o["ok"], false);
    assert!(
        o["message"]
            .as_str()
            .unwrap()
            .contains("connection was lost"),
        "{o:#}"
    );
    assert_eq!(o["second"], "again");
    // Nothing of the dropped call keeps running on the host.
    let ps = read_pids(&pids);
    assert_eq!(ps.len(), 2);
    assert!(wait_dead(&ps, Duration::from_secs(5)), "{ps:?} still run");
}

#[test]
fn one_connection_serves_every_call() {
    let Some(w) = World::new("one_connection_serves_every_call", 1) else {
        return;
    };
    w.add_ssh("there", 0);
    let chunk = r#"local seen = {}
for i = 1, 20 do
  seen[#seen + 1] = RunBash { command = 'printf "\\"%s\\"" "${SSH_CLIENT% *}" > "$DLPX_OUTPUT_FILE"', outputSchema = { type = "string" } }
end
for i = 2, #seen do if seen[i] ~= seen[1] then return false end end
return true"#;
    let v = w.eval("there", chunk, &[]);
    assert_eq!(v["value"], true, "{v:#}");
}

/// The benchmark of the issue: RunBash `true` over the multiplexed
/// connection against `ssh HOST true` (fresh) and a warm multiplexed
/// `ssh HOST true` (ControlMaster), in the same run. Prints the numbers;
/// `LUNABOX_SSH_BENCH_STRICT=1` also asserts at most 1.2x the warm ssh.
#[test]
fn bench_run_bash_true_over_ssh() {
    let Some(w) = World::new("bench_run_bash_true_over_ssh", 1) else {
        return;
    };
    w.add_ssh("there", 0);
    let h = &w.net.hosts[0];
    let n = 30;
    let chunk = format!(
        "local t0 = os.clock()\nfor i = 1, {n} do RunBash {{ command = 'true' }} end\nreturn 0"
    );
    // Time the Run calls from the transcript (the chunk's own wall time
    // includes starting lunabox).
    let v = w.eval("there", &chunk, &["--timeout", "120s"]);
    assert_eq!(v["outcome"], "ok", "{v:#}");
    let calls: Vec<f64> = v["runCalls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["durationMs"].as_f64().unwrap())
        .collect();
    let lunabox_ms = median(calls);

    let ssh_args = |extra: &[&str]| -> Vec<String> {
        let mut a: Vec<String> = vec![
            "-F".into(),
            "/dev/null".into(),
            "-p".into(),
            PORT.to_string(),
            "-i".into(),
            w.net.identity.display().to_string(),
            "-o".into(),
            format!("UserKnownHostsFile={}", w.net.known_hosts.display()),
            "-o".into(),
            "BatchMode=yes".into(),
        ];
        a.extend(extra.iter().map(|s| s.to_string()));
        a.push(format!("{}@{}", h.user, h.addr));
        a.push("true".into());
        a
    };
    let time_ssh = |extra: &[&str], k: usize| -> f64 {
        let mut xs = Vec::new();
        for _ in 0..k {
            let args = ssh_args(extra);
            let refs: Vec<&str> = args.iter().map(String::as_str).collect();
            let t = Instant::now();
            let o = w.net.cmd_plain("ssh", &refs).output().unwrap();
            xs.push(t.elapsed().as_secs_f64() * 1e3);
            assert!(o.status.success(), "{}", show(&o));
        }
        median(xs)
    };
    let fresh_ms = time_ssh(&[], 10);
    let sock = w.net.dir.path().join("cm.sock");
    let cm = format!("ControlPath={}", sock.display());
    let master = [
        "-o",
        "ControlMaster=auto",
        "-o",
        &cm,
        "-o",
        "ControlPersist=60",
    ];
    time_ssh(&master, 1);
    let warm_ms = time_ssh(&master, n);
    let _ = w
        .net
        .cmd_plain("ssh", &["-o", &cm, "-O", "exit", "x"])
        .output();
    println!(
        "RunBash true over SSH: {lunabox_ms:.1} ms per call (median of {n}); ssh HOST true fresh: {fresh_ms:.1} ms; warm multiplexed: {warm_ms:.1} ms; ratio to warm {:.2}x",
        lunabox_ms / warm_ms
    );
    if std::env::var_os("LUNABOX_SSH_BENCH_STRICT").is_some() {
        assert!(lunabox_ms <= 1.2 * warm_ms, "{lunabox_ms} vs {warm_ms}");
    }
}

/// Put a `~/wrap/rsync` first on the host session's PATH: `prelude` (sh
/// lines), then the real rsync.
fn wrap_rsync(h: &common::sshhosts::Host, prelude: &str) {
    h.must(&format!(
        "mkdir -p ~/wrap && printf '#!/bin/sh\\n{prelude}\\nexec /usr/bin/rsync \"$@\"\\n' > ~/wrap/rsync && chmod +x ~/wrap/rsync"
    ));
    h.set_path(&format!("{}/wrap:/usr/bin:/bin", h.home.display()));
}

/// A direct toolkit (the `dfix` fixture) whose preSnapshot hook is `lua`.
fn toolkit_with_pre_snapshot(w: &World, lua: &str) -> PathBuf {
    let tk = w.net.dir.path().join("synctk");
    let o = std::process::Command::new("cp")
        .args(["-r"])
        .arg(common::engine::fixture("dfix"))
        .arg(&tk)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", show(&o));
    std::fs::write(tk.join("direct/preSnapshot.lua"), lua).unwrap();
    tk
}

/// Run `tk`'s preSnapshot on environment `there` (host `h`), with
/// `config.path` = `path` and RunSync's target `data`.
fn run_pre_snapshot(
    w: &World,
    h: &common::sshhosts::Host,
    tk: &Path,
    data: &Path,
    path: &str,
    extra: &[&str],
) -> Output {
    let ctx = w.net.dir.path().join("ctx.json");
    std::fs::write(
        &ctx,
        json!({
            "config": {"path": path},
            "repository": {},
            "source": {"environment": "there", "environmentUser": h.user, "host": h.addr, "guid": "g"},
            "parameters": {},
        })
        .to_string(),
    )
    .unwrap();
    let mut args = vec![
        "run-hook",
        tk.to_str().unwrap(),
        "direct/preSnapshot",
        "--environment",
        "there",
        "--context",
        ctx.to_str().unwrap(),
        "--data-dir",
        data.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    w.run(&args)
}

#[test]
fn run_sync_copies_from_a_remote_directory_with_excludes_and_symlinks() {
    let Some(w) = World::new(
        "run_sync_copies_from_a_remote_directory_with_excludes_and_symlinks",
        1,
    ) else {
        return;
    };
    w.add_ssh("there", 0);
    let h = &w.net.hosts[0];
    h.must(
        "mkdir -p ~/src/keep ~/src/skip-me ~/outside/inner && echo a > ~/src/keep/a && echo s > ~/src/skip-me/s \
         && echo o > ~/outside/inner/o && echo f > ~/outside/file && ln -s ../outside ~/src/followed \
         && ln -s keep ~/src/kept-link && ln -s ../outside/file ~/src/file-link && echo top > ~/src/top",
    );
    // The host's rsync, found first on the session's PATH, notes which
    // connection ran it (SSH_CLIENT names the client's port).
    wrap_rsync(
        h,
        "printf %%s \"$SSH_CLIENT\" >> ~/rsync-clients; echo >> ~/rsync-clients",
    );
    let tk = toolkit_with_pre_snapshot(
        &w,
        "RunBash { command = 'printf %s \"$SSH_CLIENT\" > ~/bash-client' }\n\
         RunSync { environment = source.environment, user = source.environmentUser, host = source.host, \
         sourceDirectory = config.path, excludePaths = { \"skip-me\", \"followed/inner\" }, \
         followSymlinkPaths = { \"followed\", \"file-link\" } }\n",
    );
    let data = w.net.dir.path().join("data");
    let o = run_pre_snapshot(&w, h, &tk, &data, "src", &[]);
    assert!(o.status.success(), "{}", show(&o));
    let read = |p: &str| std::fs::read_to_string(data.join(p)).ok();
    assert_eq!(read("keep/a").as_deref(), Some("a\n"));
    assert_eq!(read("top").as_deref(), Some("top\n"));
    assert!(!data.join("skip-me").exists(), "excluded");
    // followed: a real directory now, its excluded part left out.
    let m = std::fs::symlink_metadata(data.join("followed")).unwrap();
    assert!(m.is_dir(), "followed is copied as a directory");
    assert_eq!(read("followed/file").as_deref(), Some("f\n"));
    assert!(!data.join("followed/inner").exists());
    // file-link: followed to a file; kept-link: kept as a link.
    assert!(
        !std::fs::symlink_metadata(data.join("file-link"))
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert_eq!(read("file-link").as_deref(), Some("f\n"));
    assert_eq!(
        std::fs::read_link(data.join("kept-link")).unwrap(),
        PathBuf::from("keep")
    );
    // Every rsync pass (the tree, then each followed path) ran over the
    // connection the RunBash call used: no second connection.
    let bash_client = h.must("cat ~/bash-client");
    let clients = h.must("cat ~/rsync-clients");
    let clients: Vec<&str> = clients.lines().collect();
    assert_eq!(clients.len(), 3, "one remote rsync per pass: {clients:?}");
    assert!(!bash_client.is_empty());
    for c in &clients {
        assert_eq!(*c, bash_client, "RunSync used another connection");
    }
}

#[test]
fn a_run_sync_past_the_deadline_leaves_no_remote_rsync_and_a_missing_source_says_so() {
    let Some(w) = World::new(
        "a_run_sync_past_the_deadline_leaves_no_remote_rsync_and_a_missing_source_says_so",
        1,
    ) else {
        return;
    };
    w.add_ssh("there", 0);
    let h = &w.net.hosts[0];
    h.must("mkdir -p ~/src && echo a > ~/src/a");
    // The host's rsync notes its pid, then stalls before running.
    wrap_rsync(h, "echo $$ >> ~/rsync-pids\\nsleep 300");
    let tk = toolkit_with_pre_snapshot(
        &w,
        "RunSync { environment = source.environment, user = source.environmentUser, host = source.host, \
         sourceDirectory = config.path }\n",
    );
    let data = w.net.dir.path().join("data");
    let hook = |path: &str, extra: &[&str]| -> Value {
        let mut args = vec!["--json"];
        args.extend_from_slice(extra);
        let o = run_pre_snapshot(&w, h, &tk, &data, path, &args);
        serde_json::from_slice(&o.stdout)
            .unwrap_or_else(|e| panic!("run-hook printed no JSON ({e}):\n{}", show(&o)))
    };
    let t = Instant::now();
    let v = hook("src", &["--timeout", "2s"]);
    assert_eq!(v["outcome"], "limit", "{v:#}");
    assert!(t.elapsed() < Duration::from_secs(15), "{:?}", t.elapsed());
    let ps = read_pids(&h.home.join("rsync-pids"));
    assert_eq!(ps.len(), 1, "the remote rsync started once: {ps:?}");
    let t = Instant::now();
    let alive = || {
        let o = h.sh(&format!(
            "s=$(cut -d' ' -f3 /proc/{}/stat 2>/dev/null); [ -n \"$s\" ] && [ \"$s\" != Z ] && echo alive; true",
            ps[0]
        ));
        !String::from_utf8_lossy(&o.stdout).trim().is_empty()
    };
    while t.elapsed() < Duration::from_secs(5) && alive() {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!alive(), "the remote rsync still runs after the deadline");

    // A source directory that is not there: the call fails, and the
    // remote rsync's own words say why.
    h.set_path("/usr/bin:/bin");
    let v = hook("no-such-dir", &[]);
    assert_ne!(v["outcome"], "ok", "{v:#}");
    let text = v.to_string();
    assert!(text.contains("no-such-dir"), "{v:#}");
    assert!(text.contains("No such file or directory"), "{v:#}");
}

/// Install the delphixdb simulator in the host user's ~/bin (on its PATH
/// for SSH sessions); returns its path.
fn install_delphixdb(h: &common::sshhosts::Host) -> String {
    let sim = common::engine::repo().join("toolkits/delphixdb/sim/delphixdb");
    h.must(&format!(
        "mkdir -p ~/bin && cp {} ~/bin/delphixdb && chmod 755 ~/bin/delphixdb",
        sim.display()
    ));
    h.set_path(&format!(
        "{}/bin:/usr/local/bin:/usr/bin:/bin",
        h.home.display()
    ));
    format!("{}/bin/delphixdb", h.home.display())
}

fn names(v: &Value, key: &str) -> Vec<(String, bool)> {
    let mut n: Vec<(String, bool)> = v[key]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["name"].as_str().unwrap().to_string(),
                i["vanished"] == true,
            )
        })
        .collect();
    n.sort();
    n
}

#[test]
fn discovery_finds_what_to_link_and_a_refresh_shows_changes() {
    let Some(w) = World::new(
        "discovery_finds_what_to_link_and_a_refresh_shows_changes",
        1,
    ) else {
        return;
    };
    let h = &w.net.hosts[0];
    let prog = install_delphixdb(h);
    h.must("delphixdb() { ~/bin/delphixdb \"$@\"; }; delphixdb new prod --port=5000 && delphixdb new sales --port=5001");
    let tk = common::engine::repo().join("toolkits/delphixdb");
    w.ok(&["toolkit", "install", tk.to_str().unwrap()]);
    let v = w.add_ssh("there", 0);
    let added: Vec<String> = serde_json::from_value(v["discovery"]["added"].clone()).unwrap();
    assert!(
        added.contains(&format!("delphixdb repository {prog}")),
        "{v:#}"
    );
    assert!(
        added.contains(&"delphixdb sourceConfig prod".to_string()),
        "{v:#}"
    );

    let show_json = || -> Value {
        serde_json::from_slice(&w.ok(&["env", "show", "there", "--json"]).stdout).unwrap()
    };
    let s = show_json();
    assert_eq!(names(&s, "repositories"), vec![(prog.clone(), false)]);
    assert_eq!(
        names(&s, "sourceConfigs"),
        vec![("prod".into(), false), ("sales".into(), false)]
    );
    assert_eq!(s["sourceConfigs"][0]["repository"], prog);

    // One database added, one removed: the refresh shows both, and
    // duplicates nothing.
    h.must("~/bin/delphixdb new hr --port=5002 && ~/bin/delphixdb drop sales");
    let o = w.ok(&["env", "refresh", "there", "--json"]);
    let r: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(r["added"], json!(["delphixdb sourceConfig hr"]), "{r:#}");
    assert_eq!(
        r["vanished"],
        json!(["delphixdb sourceConfig sales"]),
        "{r:#}"
    );
    let s = show_json();
    assert_eq!(
        names(&s, "sourceConfigs"),
        vec![
            ("hr".into(), false),
            ("prod".into(), false),
            ("sales".into(), true)
        ]
    );
    let o = w.ok(&["env", "refresh", "there", "--json"]);
    let r: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(r["added"], json!([]), "{r:#}");
    assert_eq!(names(&show_json(), "sourceConfigs").len(), 3);

    // Link by discovered name: a vanished one and an unknown one are clear
    // errors; the state directory is private to root here, so the remote
    // staging host cannot see the storage: a clear error at link time.
    let o = w.run(&[
        "link",
        "ds",
        "--toolkit",
        "delphixdb",
        "--environment",
        "there",
        "--source-config",
        "sales",
    ]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("vanished"), "{}", stderr(&o));
    let o = w.run(&[
        "link",
        "ds",
        "--toolkit",
        "delphixdb",
        "--environment",
        "there",
        "--source-config",
        "nope",
    ]);
    assert!(
        stderr(&o).contains("discovered: hr, prod"),
        "{}",
        stderr(&o)
    );
    let mode = |m: u32| {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(w.state.path(), std::fs::Permissions::from_mode(m)).unwrap();
    };
    mode(0o700);
    let o = w.run(&[
        "link",
        "ds",
        "--toolkit",
        "delphixdb",
        "--environment",
        "there",
        "--source-config",
        "prod",
        "--no-sync",
    ]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("does not see the dSource's storage"),
        "{}",
        stderr(&o)
    );
    // Reachable (the shared filesystem stands in for an NFS mount).
    mode(0o755);
    let o = w.ok(&[
        "link",
        "ds",
        "--toolkit",
        "delphixdb",
        "--environment",
        "there",
        "--source-config",
        "prod",
        "--no-sync",
        "--json",
    ]);
    let l: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(l["dsource"]["config"]["dbName"], "prod", "{l:#}");
    assert_eq!(l["dsource"]["repository"]["installPath"], prog, "{l:#}");

    // A failing discovery hook is a fault against the environment.
    h.must("printf '#!/bin/sh\\necho broken >&2\\nexit 3\\n' > ~/bin/delphixdb");
    let o = w.run(&["env", "refresh", "there"]);
    assert!(!o.status.success());
    let f: Value = serde_json::from_slice(&w.ok(&["faults", "--json"]).stdout).unwrap();
    let text = f.to_string();
    assert!(text.contains("discovery on environment `there`"), "{f:#}");
    // What was found stays (not dropped by a failed refresh).
    assert_eq!(names(&show_json(), "sourceConfigs").len(), 3);
}

/// The walkthrough over SSH: the delphixdb primary on one test host, the
/// staging database on another, both discovered, then link, SnapSync,
/// change, incremental SnapSync, status, disable, enable. The SSH sessions
/// run as root here: the staging database lives in the engine's storage,
/// which the staging host must be able to write; the shared filesystem of
/// the namespaces stands in for the NFS mount of that storage on the
/// staging host, and the simulator's registry (one installation on a path
/// both hosts see) stands in for the network between the two databases.
#[test]
fn walkthrough_with_primary_and_staging_on_two_hosts() {
    let probe = tempfile::tempdir().unwrap();
    let simdir = probe.path().join("bin");
    std::fs::create_dir_all(&simdir).unwrap();
    let path = format!("{}:/usr/local/bin:/usr/bin:/bin", simdir.display());
    let Some(w) = World::with(
        "walkthrough_with_primary_and_staging_on_two_hosts",
        2,
        true,
        Some(&path),
    ) else {
        return;
    };
    let prog = simdir.join("delphixdb");
    std::fs::copy(
        common::engine::repo().join("toolkits/delphixdb/sim/delphixdb"),
        &prog,
    )
    .unwrap();
    let p = prog.display().to_string();
    let primary = &w.net.hosts[0];
    primary.must(&format!(
        "{p} config backup-dir {b} && {p} new prod --port=5000 && {p} start prod && {p} write prod greeting hello",
        b = probe.path().join("backups").display()
    ));
    let tk = common::engine::repo().join("toolkits/delphixdb");
    w.ok(&["toolkit", "install", tk.to_str().unwrap()]);
    w.add_ssh("primary", 0);
    w.add_ssh("staging", 1);
    let shown: Value =
        serde_json::from_slice(&w.ok(&["env", "show", "primary", "--json"]).stdout).unwrap();
    assert_eq!(names(&shown, "repositories"), vec![(p.clone(), false)]);
    assert!(names(&shown, "sourceConfigs").contains(&("prod".to_string(), false)));

    let json = |args: &[&str]| -> (bool, Value) {
        let mut a = args.to_vec();
        a.push("--json");
        let o = w.run(&a);
        let v = serde_json::from_slice(&o.stdout)
            .unwrap_or_else(|e| panic!("{args:?}: no JSON ({e}): {}", show(&o)));
        (o.status.success(), v)
    };
    let (ok, link) = json(&[
        "link",
        "prod-ds",
        "--toolkit",
        "delphixdb",
        "--environment",
        "primary",
        "--staging-environment",
        "staging",
        "--source-config",
        "prod",
        "--param",
        "stagingPort=5433",
    ]);
    assert!(ok, "{link:#}");
    assert_eq!(link["dsource"]["environment"], "primary");
    assert_eq!(link["dsource"]["stagingEnvironment"], "staging");
    let snap = |id: u64| {
        w.state
            .path()
            .join("storage/prod-ds/snapshots")
            .join(id.to_string())
            .join("files/data")
    };
    let read =
        |p: PathBuf| std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    assert_eq!(read(snap(1).join("greeting")), "hello\n");
    // The staging database runs, replicating (asked on the staging host).
    let staged = w.net.hosts[1].must(&format!("{p} status stagingDB"));
    assert!(staged.contains("replication-running"), "{staged}");

    let (_, st) = json(&["status", "prod-ds"]);
    assert_eq!(st["status"], "ACTIVE", "{st:#}");
    primary.must(&format!(
        "{p} write prod greeting bonjour && {p} write prod colour blue"
    ));
    let (ok, sync) = json(&["sync", "prod-ds"]);
    assert!(ok, "{sync:#}");
    assert_eq!(read(snap(2).join("greeting")), "bonjour\n");
    assert_eq!(read(snap(2).join("colour")), "blue\n");
    assert_eq!(
        read(snap(1).join("greeting")),
        "hello\n",
        "snapshot 1 unchanged"
    );
    let (ok, _) = json(&["disable", "prod-ds"]);
    assert!(ok);
    let (_, st) = json(&["status", "prod-ds"]);
    assert_eq!(st["status"], "INACTIVE");
    let (ok, _) = json(&["enable", "prod-ds"]);
    assert!(ok);
    let (_, st) = json(&["status", "prod-ds"]);
    assert_eq!(st["status"], "ACTIVE");
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(|a, b| a.partial_cmp(b).unwrap());
    xs[xs.len() / 2]
}
