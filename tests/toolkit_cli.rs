//! `lunabox validate`, `build`, `init` and `run-hook` driven as a user
//! would, with the real sandbox (hooks compiled and run in it) and real
//! bash/rsync for the scaffolded toolkits' Run calls.

#[path = "common/toolkit.rs"]
mod support;

use std::path::Path;

use serde_json::{Value, json};
use support::{copy_dir, current_user, delphixdb, fixtures, json_of, lunabox, parts, run_hook};

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn validate_reports_a_syntax_error_with_file_and_line() {
    let dir = fixtures().join("broken/lua-syntax");
    let out = lunabox(&["validate", s(&dir), "--json"]);
    let (code, _, stderr) = parts(&out);
    assert_eq!(code, 1, "{stderr}");
    let report = json_of(&out);
    assert_eq!(report["ok"], json!(false));
    let errors = report["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert_eq!(errors[0]["rule"], "lua-syntax");
    assert_eq!(errors[0]["file"], "staged/resync.lua");
    assert_eq!(errors[0]["line"], 3);
    assert!(
        errors[0]["message"]
            .as_str()
            .unwrap()
            .contains("lua-syntax/staged/resync.lua:3:"),
        "{report}"
    );
}

#[test]
fn validate_reports_every_problem_at_once_and_exits_1() {
    // Three independent mistakes in one toolkit: all are reported.
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("clean");
    copy_dir(&fixtures().join("clean"), &dir);
    let main = dir.join("main.json");
    let mut m: Value = serde_json::from_str(&std::fs::read_to_string(&main).unwrap()).unwrap();
    m["version"] = json!("one");
    m["linkedSourceDefinition"]["type"] = json!("Nope");
    std::fs::write(&main, m.to_string()).unwrap();
    std::fs::write(dir.join("staged/status.lua"), "return (\n").unwrap();
    let out = lunabox(&["validate", s(&dir), "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let report = json_of(&out);
    let rules: Vec<&str> = report["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["rule"].as_str().unwrap())
        .collect();
    for want in ["version", "linked-type", "lua-syntax"] {
        assert!(rules.contains(&want), "{want} missing in {rules:?}");
    }
    // The human form names file and field too.
    let (code, stdout, _) = parts(&lunabox(&["validate", s(&dir)]));
    assert_eq!(code, 1);
    assert!(stdout.contains("error: main.json [/version]:"), "{stdout}");
    assert!(stdout.contains("error: staged/status.lua:"), "{stdout}");
    assert!(stdout.contains("3 error(s)"), "{stdout}");
}

#[test]
fn validate_passes_clean_toolkits_and_warns_without_failing() {
    for dir in [
        fixtures().join("clean"),
        delphixdb(),
        fixtures().join("built/built-clean.json"),
    ] {
        let out = lunabox(&["validate", s(&dir), "--json"]);
        let (code, _, stderr) = parts(&out);
        assert_eq!(code, 0, "{}: {stderr}", dir.display());
        assert_eq!(
            json_of(&out),
            json!({"ok": true, "errors": [], "warnings": []}),
            "{}",
            dir.display()
        );
    }
    let out = lunabox(&[
        "validate",
        s(&fixtures().join("broken/resource-unused")),
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(0));
    let report = json_of(&out);
    assert_eq!(report["ok"], json!(true));
    assert_eq!(report["warnings"][0]["file"], "resources/unused.sh");
}

#[test]
fn validate_of_a_missing_or_broken_manifest_is_an_error_naming_it() {
    let tmp = tempfile::tempdir().unwrap();
    let out = lunabox(&["validate", s(&tmp.path().join("nothing-here")), "--json"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        json_of(&out)["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("no such file")
    );
    let dir = tmp.path().join("bad");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(
        dir.join("main.json"),
        "{\n  \"type\": \"Toolkit\",\n  oops\n}",
    )
    .unwrap();
    let out = lunabox(&["validate", s(&dir), "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let e = &json_of(&out)["errors"][0];
    assert_eq!(e["line"], 3, "{e}");
    assert!(e["file"].as_str().unwrap().ends_with("main.json"));
}

#[test]
fn build_writes_the_built_form_and_refuses_a_broken_toolkit() {
    let tmp = tempfile::tempdir().unwrap();
    let out_file = tmp.path().join("delphixdb.json");
    let (code, _, stderr) = parts(&lunabox(&["build", s(&delphixdb()), "-o", s(&out_file)]));
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("built delphixdb 1.0.0"), "{stderr}");
    let built: Value = serde_json::from_str(&std::fs::read_to_string(&out_file).unwrap()).unwrap();
    let resync = built["linkedSourceDefinition"]["resync"].as_str().unwrap();
    assert_eq!(
        resync,
        std::fs::read_to_string(delphixdb().join("staged/resync.lua")).unwrap()
    );
    assert_eq!(built["linkedSourceDefinition"]["worker"], json!(""));
    assert_eq!(
        built["virtualSourceDefinition"]["postSnapshot"],
        json!("return {}")
    );
    assert!(built["discoveryDefinition"]["repositoryDiscovery"].is_string());
    assert!(
        built["resources"]["query_staging_status.sh"]
            .as_str()
            .unwrap()
            .contains("replication-running")
    );
    // The built file validates and loads to the same toolkit.
    assert_eq!(lunabox(&["validate", s(&out_file)]).status.code(), Some(0));
    let a = lunabox_toolkit::load(&delphixdb()).unwrap().toolkit;
    let b = lunabox_toolkit::load(&out_file).unwrap().toolkit;
    assert_eq!(a, b);

    let broken_out = tmp.path().join("broken.json");
    let (code, stdout, _) = parts(&lunabox(&[
        "build",
        s(&fixtures().join("broken/lua-syntax")),
        "-o",
        s(&broken_out),
    ]));
    assert_eq!(code, 1);
    assert!(stdout.contains("lua-syntax"), "{stdout}");
    assert!(!broken_out.exists());
}

#[test]
fn init_scaffolds_toolkits_that_validate_and_whose_hooks_run() {
    let tmp = tempfile::tempdir().unwrap();
    let parent = tmp.path();
    for kind in ["--staged", "--direct"] {
        let name = format!("demo{}", kind.replace("--", "-"));
        let (code, _, stderr) = parts(&lunabox(&["init", &name, kind, "--dir", s(parent)]));
        assert_eq!(code, 0, "{stderr}");
        let out = lunabox(&["validate", s(&parent.join(&name)), "--json"]);
        assert_eq!(
            json_of(&out),
            json!({"ok": true, "errors": [], "warnings": []}),
            "{name}"
        );
        // Again: it exists -> usage error.
        assert_eq!(
            lunabox(&["init", &name, kind, "--dir", s(parent)])
                .status
                .code(),
            Some(2)
        );
    }
    assert_eq!(
        lunabox(&["init", "Bad Name", "--staged", "--dir", s(parent)])
            .status
            .code(),
        Some(2)
    );
    assert_eq!(
        lunabox(&["init", "both", "--staged", "--direct", "--dir", s(parent)])
            .status
            .code(),
        Some(2)
    );

    // Run the staged toolkit's hooks for real: resync copies the source
    // directory into source.dataDirectory, postSnapshot returns metadata.
    let src = parent.join("src");
    std::fs::create_dir_all(src.join("sub")).unwrap();
    std::fs::write(src.join("a.txt"), "A").unwrap();
    std::fs::write(src.join("sub/b.txt"), "B").unwrap();
    let data = parent.join("storage");
    let user = current_user();
    let ctx = parent.join("ctx.json");
    std::fs::write(
        &ctx,
        json!({
            "config": {"path": src, "name": "src"},
            "repository": {"installPath": "/bin/bash"},
            "source": {"environment": "local", "environmentUser": user, "host": "localhost",
                       "stagingEnvironment": "local", "stagingEnvironmentUser": user, "stagingHost": "localhost",
                       "dataDirectory": data, "guid": "g"}
        })
        .to_string(),
    )
    .unwrap();
    let staged = parent.join("demo-staged");
    let run = |hook: &str| {
        let out = run_hook(&staged, hook, &ctx, &[]);
        let (code, _, stderr) = parts(&out);
        assert_eq!(
            code,
            0,
            "{hook}: {stderr}\n{}",
            String::from_utf8_lossy(&out.stdout)
        );
        json_of(&out)["value"].clone()
    };
    run("staged/resync");
    assert_eq!(
        std::fs::read_to_string(data.join("sub/b.txt")).unwrap(),
        "B"
    );
    let meta = run("staged/postSnapshot");
    assert_eq!(meta["files"], json!(2), "{meta}");
    assert!(meta["takenAt"].as_str().unwrap().ends_with('Z'));
    assert_eq!(run("staged/status"), json!("ACTIVE"));
    run("staged/startStaging");
    run("staged/worker");
    run("staged/stopStaging");

    // The direct toolkit's preSnapshot copies with RunSync into --data-dir.
    let direct = parent.join("demo-direct");
    let target = parent.join("direct-storage");
    std::fs::create_dir_all(&target).unwrap();
    let out = run_hook(
        &direct,
        "direct/preSnapshot",
        &ctx,
        &["--data-dir", s(&target)],
    );
    let (code, stdout, stderr) = parts(&out);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert_eq!(
        std::fs::read_to_string(target.join("sub/b.txt")).unwrap(),
        "B"
    );
}

#[test]
fn run_hook_usage_errors_exit_2_and_name_the_problem() {
    let tk = delphixdb();
    let tmp = tempfile::tempdir().unwrap();
    let ctx = tmp.path().join("ctx.json");
    std::fs::write(
        &ctx,
        json!({"config": {"dbName": "p"}, "source": {}}).to_string(),
    )
    .unwrap();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["staged/nope"], "not a hook"),
        (vec!["resync"], "GROUP/HOOK"),
        (vec!["direct/preSnapshot"], "has no direct/preSnapshot hook"),
        (
            vec!["staged/resync", "--context", s(&ctx)],
            "needs `repository`",
        ),
        (
            vec!["staged/status", "--context", "/nonexistent.json"],
            "cannot read",
        ),
        (vec!["staged/resync", "--param", "novalue"], "NAME=VALUE"),
    ];
    for (args, want) in cases {
        let mut all = vec!["run-hook", s(&tk)];
        all.extend(args.iter().copied());
        let (code, _, stderr) = parts(&lunabox(&all));
        assert_eq!(code, 2, "{args:?}: {stderr}");
        assert!(stderr.contains(want), "{args:?}: want {want:?} in {stderr}");
    }
    // Invalid parameters (after defaults) name the field.
    let full = tmp.path().join("full.json");
    std::fs::write(
        &full,
        json!({"config": {"dbName": "p"}, "repository": {"installPath": "/x"}, "source": {}})
            .to_string(),
    )
    .unwrap();
    let (code, _, stderr) = parts(&lunabox(&[
        "run-hook",
        s(&tk),
        "staged/status",
        "--context",
        s(&full),
        "--param",
        "stagingPort=abc",
    ]));
    assert_eq!(code, 2);
    assert!(
        stderr.contains("/stagingPort") && stderr.contains("linkedSourceDefinition.parameters"),
        "{stderr}"
    );
}

/// A toolkit (the clean fixture, copied) with extra hook scripts.
fn clean_with(files: &[(&str, &str)]) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    copy_dir(&fixtures().join("clean"), &tmp.path().join("clean"));
    for (rel, text) in files {
        std::fs::write(tmp.path().join("clean").join(rel), text).unwrap();
    }
    tmp
}

fn clean_ctx(dir: &Path) -> std::path::PathBuf {
    let user = current_user();
    let ctx = dir.join("ctx.json");
    std::fs::write(
        &ctx,
        json!({
            "config": {"path": "/srv"},
            "repository": {"installPath": "/bin/true"},
            "source": {"environment": "local", "environmentUser": user, "host": "localhost",
                       "stagingEnvironment": "local", "stagingEnvironmentUser": user, "stagingHost": "localhost",
                       "dataDirectory": dir.join("data")}
        })
        .to_string(),
    )
    .unwrap();
    ctx
}

#[test]
fn run_hook_exit_status_follows_the_outcome_and_masks_passwords() {
    let tmp = clean_with(&[
        (
            "staged/worker.lua",
            "RunBash { command = 'sleep 30', environment = source.environment, user = source.environmentUser, host = source.host }\n",
        ),
        ("staged/status.lua", "return 'active'\n"),
        (
            "staged/startStaging.lua",
            "RunBash { command = 'echo \"pw=$PASSWORD\"; echo \"err $PASSWORD\" >&2; exit 4', environment = source.environment, \
             user = source.environmentUser, host = source.host, variables = { PASSWORD = parameters.password } }\n",
        ),
        (
            "staged/preSnapshot.lua",
            "print('using ' .. parameters.password)\nerror('bad ' .. parameters.password)\n",
        ),
    ]);
    let tk = tmp.path().join("clean");
    let ctx = clean_ctx(tmp.path());
    let transcript = tmp.path().join("transcript.json");
    let base = |hook: &'static str| {
        vec![
            "run-hook".to_string(),
            tk.display().to_string(),
            hook.to_string(),
            "--context".into(),
            ctx.display().to_string(),
        ]
    };

    // The return check: status must be one of three strings -> 1.
    let mut a = base("staged/status");
    a.push("--json".into());
    let out = lunabox(&a.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(out.status.code(), Some(1));
    let j = json_of(&out);
    assert_eq!(j["outcome"], "error");
    assert_eq!(j["kind"], "bad-result");
    assert!(
        j["message"]
            .as_str()
            .unwrap()
            .contains("\"ACTIVE\", \"INACTIVE\" or \"UNKNOWN\""),
        "{j}"
    );

    // A failed Run call -> 1 with the fault; the password is masked
    // everywhere (stdout, stderr, transcript variables).
    let mut a = base("staged/startStaging");
    a.extend([
        "--param".into(),
        "password=hunter2".into(),
        "--json".into(),
        "--transcript".into(),
        transcript.display().to_string(),
    ]);
    let out = lunabox(&a.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(!text.contains("hunter2"), "{text}");
    let j = json_of(&out);
    assert_eq!(j["fault"]["function"], "RunBash");
    assert_eq!(j["fault"]["exitCode"], 4);
    assert_eq!(j["fault"]["stdout"], "pw=********\n");
    assert_eq!(j["fault"]["stderr"], "err ********\n");
    let t = std::fs::read_to_string(&transcript).unwrap();
    assert!(!t.contains("hunter2"), "{t}");
    let t: Value = serde_json::from_str(&t).unwrap();
    assert_eq!(t[0]["variables"]["PASSWORD"], "********");
    assert_eq!(t[0]["exitCode"], 4);

    // A Lua error: message and log masked too.
    let mut a = base("staged/preSnapshot");
    a.extend(["--param".into(), "password=hunter2".into(), "--json".into()]);
    let out = lunabox(&a.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        !text.contains("hunter2") && text.contains("********"),
        "{text}"
    );

    // A limit: the deadline kills the Run call -> 3.
    let mut a = base("staged/worker");
    a.extend(["--timeout".into(), "1s".into(), "--json".into()]);
    let t0 = std::time::Instant::now();
    let out = lunabox(&a.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(t0.elapsed().as_secs() < 20);
    let j = json_of(&out);
    assert_eq!(j["outcome"], "limit");
    assert_eq!(j["limit"], "time");
}

#[test]
fn run_hook_checks_returns_of_every_kind() {
    let tmp = clean_with(&[
        (
            "staged/postSnapshot.lua",
            "return { port = 'not a number' }\n",
        ),
        ("discovery/repositoryDiscovery.lua", "return {}\n"),
        (
            "discovery/sourceConfigDiscovery.lua",
            "return { { name = 'no path' } }\n",
        ),
        ("virtual/configure.lua", "return { path = snapshotJson }\n"),
        (
            "virtual/mountSpec.lua",
            "return { { remotePath = source.dataDirectory } }\n",
        ),
        ("staged/mountSpec.lua", "return source.dataDirectory\n"),
        (
            "upgrade/1.0/upgradeLinkedSource.lua",
            "parameters.port = 99\nreturn parameters\n",
        ),
    ]);
    let tk = tmp.path().join("clean");
    let ctx = clean_ctx(tmp.path());
    let with_remote = tmp.path().join("remote.json");
    std::fs::write(
        &with_remote,
        json!({"remote": {"environment": "local", "environmentUser": current_user(), "host": "localhost"},
               "repository": {"installPath": "/bin/true"}, "parameters": {"port": 1}, "snapshotJson": {"at": 1},
               "config": {"path": "/x"}, "source": {"dataDirectory": "/mnt/d"}})
        .to_string(),
    )
    .unwrap();
    let run = |hook: &str, ctx: &Path| {
        let out = run_hook(&tk, hook, ctx, &[]);
        (out.status.code().unwrap(), json_of(&out))
    };
    let (code, j) = run("staged/postSnapshot", &ctx);
    assert_eq!(code, 1);
    assert!(
        j["message"].as_str().unwrap().contains("snapshotSchema"),
        "{j}"
    );
    // An empty table is an empty array where an array is expected.
    let (code, j) = run("discovery/repositoryDiscovery", &with_remote);
    assert_eq!((code, j["value"].clone()), (0, json!([])), "{j}");
    let (code, j) = run("discovery/sourceConfigDiscovery", &with_remote);
    assert_eq!(code, 1);
    assert!(
        j["message"]
            .as_str()
            .unwrap()
            .contains("sourceConfigSchema"),
        "{j}"
    );
    // snapshotJson arrives as a JSON string.
    let (code, j) = run("virtual/configure", &with_remote);
    assert_eq!(
        (code, j["value"].clone()),
        (0, json!({"path": "{\"at\":1}"})),
        "{j}"
    );
    let (code, j) = run("virtual/mountSpec", &with_remote);
    assert_eq!(
        (code, j["value"].clone()),
        (0, json!([{"remotePath": "/mnt/d"}])),
        "{j}"
    );
    let (code, j) = run("staged/mountSpec", &with_remote);
    assert_eq!((code, j["value"].clone()), (0, json!("/mnt/d")), "{j}");
    let (code, j) = run("upgrade/upgradeLinkedSource", &with_remote);
    assert_eq!((code, j["value"].clone()), (0, json!({"port": 99})), "{j}");
    // A leading `#` line runs (the clean resync has one), via --responses.
    let responses = tmp.path().join("responses.json");
    std::fs::write(&responses, json!({"default": {"exitCode": 0}}).to_string()).unwrap();
    let out = run_hook(&tk, "staged/resync", &ctx, &["--responses", s(&responses)]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}
