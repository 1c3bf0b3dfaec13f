//! The Delphix DB walkthrough toolkit (toolkits/delphixdb): it validates
//! and builds, and each staged hook runs through `lunabox run-hook` both
//! for real (real bash, against the simulated `delphixdb` program in a
//! private temp dir) and with `--responses` (scripted: nothing runs; the
//! responses say what each call "printed").

#[path = "common/toolkit.rs"]
mod support;

use std::path::PathBuf;

use serde_json::{Value, json};
use support::{Sim, copy_dir, current_user, delphixdb, json_of, lunabox, parts, run_hook};

/// A primary database `prod` (running, with data), and a context whose
/// primary and staging environments have different names (to check which
/// calls go where) and whose staging storage is `<sim>/staging`.
struct World {
    sim: Sim,
    ctx: PathBuf,
    staging: PathBuf,
}

impl World {
    fn new() -> World {
        let sim = Sim::new();
        sim.ok(&["new", "prod", "--port=5000"]);
        sim.ok(&["start", "prod"]);
        sim.ok(&["write", "prod", "greeting", "hello"]);
        sim.ok(&["write", "prod", "count", "1"]);
        let staging = sim.path("staging");
        let user = current_user();
        let ctx = sim.path("ctx.json");
        std::fs::write(
            &ctx,
            json!({
                "config": {"dbName": "prod"},
                "repository": {"installPath": sim.program},
                "source": {
                    "environment": "primary-env", "environmentUser": user, "host": "primary-host",
                    "stagingEnvironment": "staging-env", "stagingEnvironmentUser": user, "stagingHost": "staging-host",
                    "dataDirectory": staging, "guid": "dsource-1"
                }
            })
            .to_string(),
        )
        .unwrap();
        World { sim, ctx, staging }
    }

    /// Run a hook for real; (exit code, --json output, transcript).
    fn hook(&self, hook: &str, extra: &[&str]) -> (i32, Value, Value) {
        let transcript = self.sim.path("transcript.json");
        let _ = std::fs::remove_file(&transcript);
        let mut args = vec!["--transcript", transcript.to_str().unwrap()];
        args.extend(extra);
        let out = run_hook(&delphixdb(), hook, &self.ctx, &args);
        let code = out.status.code().unwrap();
        let j = json_of(&out);
        let t = std::fs::read_to_string(&transcript)
            .map(|t| serde_json::from_str(&t).unwrap())
            .unwrap_or(Value::Null);
        (code, j, t)
    }

    fn ok(&self, hook: &str) -> (Value, Value) {
        let (code, j, t) = self.hook(hook, &[]);
        assert_eq!(code, 0, "{hook}: {j:#}");
        (j["value"].clone(), t)
    }

    fn status(&self) -> Value {
        self.ok("staged/status").0
    }

    fn staged_value(&self, key: &str) -> Option<String> {
        std::fs::read_to_string(self.staging.join("data").join(key))
            .ok()
            .map(|s| s.trim().to_string())
    }
}

/// (function, environment, resource) of each transcript entry.
fn calls(t: &Value) -> Vec<(String, String, Option<String>)> {
    t.as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["function"].as_str().unwrap().to_string(),
                e["environment"].as_str().unwrap_or("").to_string(),
                e["resource"].as_str().map(str::to_string),
            )
        })
        .collect()
}

/// The calls startStaging makes (as [`calls`] lists them): start-repl on
/// the primary, then the start_staging_database.sh resource on the staging
/// environment.
fn start_staging_calls() -> [(String, String, Option<String>); 2] {
    [
        ("RunBash".into(), "primary-env".into(), None),
        (
            "RunBash".into(),
            "staging-env".into(),
            Some("start_staging_database.sh".into()),
        ),
    ]
}

fn envs(t: &Value) -> Vec<String> {
    calls(t).into_iter().map(|c| c.1).collect()
}

#[test]
fn delphixdb_validates_and_builds() {
    let out = lunabox(&["validate", delphixdb().to_str().unwrap(), "--json"]);
    assert_eq!(
        json_of(&out),
        json!({"ok": true, "errors": [], "warnings": []})
    );
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("delphixdb.json");
    let (code, _, stderr) = parts(&lunabox(&[
        "build",
        delphixdb().to_str().unwrap(),
        "-o",
        file.to_str().unwrap(),
    ]));
    assert_eq!(code, 0, "{stderr}");
    let built: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    assert_eq!(built["name"], "delphixdb");
    assert_eq!(
        built["linkedSourceDefinition"]["parameters"]["properties"]["stagingPort"]["default"],
        1234
    );
    assert_eq!(
        built["linkedSourceDefinition"]["parameters"]["properties"]["stagingDbName"]["default"],
        "stagingDB"
    );
    for hook in [
        "resync",
        "startStaging",
        "stopStaging",
        "preSnapshot",
        "postSnapshot",
        "status",
    ] {
        assert!(
            built["linkedSourceDefinition"][hook]
                .as_str()
                .unwrap()
                .contains("RunBash"),
            "{hook}"
        );
    }
    assert!(built["resources"]["start_staging_database.sh"].is_string());
}

/// The seed's scripts as it prints them (each on one line, its line breaks
/// lost), from shared/seed/linking-and-snapsync.txt.
const SEED: &[(&str, &str)] = &[
    (
        "staged/resync.lua",
        r##"-- Get IP address of the staging environment. This address will be used to configure replication from the data source. ip = RunBash { command = "echo \"\\\"$(hostname -i)\\\"\" > $DLPX_OUTPUT_FILE", environment = source.stagingEnvironment, user = source.stagingEnvironmentUser, host = source.stagingHost, variables = {}, outputSchema = { type = "string" } } -- Initiate a map of "environment variable name" -> "environment variable value". -- This map draws from both the result of a Bash operation and the linkedSourceDefinition parameters. envMap = { DELPHIXDB = repository.installPath, PRIMARYDBNAME = sourceConfig.dbName, STAGINGDBNAME = parameters.stagingDbName, STAGINGPORT = parameters.stagingPort, STAGINGDIR = source.dataDirectory, STAGINGHOSTIP = ip } -- -- Begin body of resync logic. -- -- Step 1: -- Generate a backup of the primary Delphix DB instance at a known location. -- Note that this Bash logic is running on the primary environment (as opposed to the staging environment). RunBash { command = "$DELPHIXDB backup $PRIMARYDBNAME -o /tmp/backup.tar.gz", environment = source.environment, user = source.environmentUser, host = source.host, variables = envMap } -- Step 2: -- Create a fresh Delphix DB instance to later be configured as a slave to the primary database. -- Note that this Bash logic is running on the staging environment. RunBash { command = "$DELPHIXDB new $STAGINGDBNAME --port=$STAGINGPORT --dataDir=$STAGINGDIR", environment = source.stagingEnvironment, user = source.stagingEnvironmentUser, host = source.stagingHost, variables = envMap } -- Step 3: -- Initiate staging database by loading data from the backup. RunBash { command = "$DELPHIXDB restore $STAGINGDBNAME /tmp/backup.tar.gz", environment = source.stagingEnvironment, user = source.stagingEnvironmentUser, host = source.stagingHost, variables = envMap } -- Step 4: -- Start up the staging database. RunBash { command = "$DELPHIXDB start $STAGINGDBNAME", environment = source.stagingEnvironment, user = source.stagingEnvironmentUser, host = source.stagingHost, variables = envMap } -- Step 5: -- Configure the primary database as a master. This command will also configure the staging database as a slave. RunBash { command = "$DELPHIXDB add-slave $PRIMARYDBNAME $STAGINGHOSTIP", environment = source.environment, user = source.environmentUser, host = source.host, variables = envMap } -- Step 6: -- Start replication of data from the primary environment to the staging environment. RunBash { command = "$DELPHIXDB start-repl $STAGINGDBNAME", environment = source.environment, user = source.environmentUser, host = source.host, variables = envMap }"##,
    ),
    (
        "staged/preSnapshot.lua",
        r##"envMap = { DELPHIXDB = repository.installPath, PRIMARYDBNAME = sourceConfig.dbName, STAGINGDBNAME = parameters.stagingDbName, STAGINGPORT = parameters.stagingPort } RunBash { command = "$DELPHIXDB stop-repl $STAGINGDBNAME", environment = source.environment, user = source.environmentUser, host = source.host, variables = envMap } RunBash { command = "$DELPHIXDB flush $STAGINGDBNAME", environment = source.stagingEnvironment, user = source.stagingEnvironmentUser, host = source.stagingHost, variables = envMap }"##,
    ),
    (
        "staged/postSnapshot.lua",
        r##"envMap = { DELPHIXDB = repository.installPath, PRIMARYDBNAME = sourceConfig.dbName, STAGINGDBNAME = parameters.stagingDbName, STAGINGPORT = parameters.stagingPort } RunBash { command = "$DELPHIXDB start-repl $STAGINGDBNAME", environment = source.environment, user = source.environmentUser, host = source.host, variables = envMap }"##,
    ),
    (
        "staged/startStaging.lua",
        r##"envMap = { DELPHIXDB = repository.installPath, PRIMARYDBNAME = sourceConfig.dbName, STAGINGDBNAME = parameters.stagingDbName, STAGINGPORT = parameters.stagingPort } RunBash { command = "$DELPHIXDB start-repl $STAGINGDBNAME", environment = source.environment, user = source.environmentUser, host = source.host, variables = envMap } RunBash { command = resources["start_staging_database.sh"], environment = source.stagingEnvironment, user = source.stagingEnvironmentUser, host = source.stagingHost, variables = envMap }"##,
    ),
    (
        "staged/stopStaging.lua",
        r##"envMap = { DELPHIXDB = repository.installPath, PRIMARYDBNAME = sourceConfig.dbName, STAGINGDBNAME = parameters.stagingDbName, STAGINGPORT = parameters.stagingPort } RunBash { command = "$DELPHIXDB stop-repl $STAGINGDBNAME", environment = source.environment, user = source.environmentUser, host = source.host, variables = envMap } RunBash { command = "$DELPHIXDB stop $STAGINGDBNAME", environment = source.stagingEnvironment, user = source.stagingEnvironmentUser, host = source.stagingHost, variables = envMap }"##,
    ),
    (
        "staged/status.lua",
        r##"envMap = { DELPHIXDB = repository.installPath, PRIMARYDBNAME = sourceConfig.dbName, STAGINGDBNAME = parameters.stagingDbName, STAGINGPORT = parameters.stagingPort } status = RunBash { command = resources["query_staging_status.sh"], environment = source.stagingEnvironment, user = source.stagingEnvironmentUser, host = source.stagingHost, variables = envMap, outputSchema = { type = "string" } } return status"##,
    ),
    (
        "resources/query_staging_status.sh",
        r##"# Check if the output of status contains the string "replication-running" status=$($DELPHIXDB status $STAGINGDBNAME) if [[ $status == *"replication-running"* ]] then echo "\"ACTIVE\"" > $DLPX_OUTPUT_FILE else echo "\"INACTIVE\"" > $DLPX_OUTPUT_FILE fi"##,
    ),
];

/// The one change to the seed's code: `lunabox fuzz toolkits/delphixdb`
/// found that status returned whatever string its command wrote (a
/// bad-return fault for anything but the three statuses); its outputSchema
/// now allows only those, so a bad output fails the Run call, saying so.
const FIXES: &[(&str, &str, &str)] = &[(
    "staged/status.lua",
    "outputSchema = { type = \"string\" }",
    "outputSchema = { type = \"string\", enum = { \"ACTIVE\", \"INACTIVE\", \"UNKNOWN\" } }",
)];

#[test]
fn the_seed_scripts_are_kept_as_given_one_statement_per_line() {
    // Only line breaks were restored: with whitespace squeezed, each file
    // is exactly the seed's text, and it has one line per statement or
    // comment (more than one line, none with two `RunBash`).
    let squeeze = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
    for (file, seed) in SEED {
        let text = std::fs::read_to_string(delphixdb().join(file)).unwrap();
        let mut seed = seed.to_string();
        for (f, from, to) in FIXES {
            if f == file {
                assert!(seed.contains(from), "{file}: the fix no longer applies");
                seed = seed.replace(from, to);
            }
        }
        assert_eq!(
            squeeze(&text),
            squeeze(&seed),
            "{file} differs from the seed"
        );
        assert!(text.lines().count() >= 2, "{file}");
        for line in text.lines() {
            assert!(line.matches("RunBash").count() <= 1, "{file}: {line}");
            if let Some(at) = line.find("--") {
                assert!(
                    !line[at..].contains("RunBash"),
                    "{file}: a comment swallows code: {line}"
                );
            }
        }
    }
}

#[test]
fn the_walkthrough_runs_for_real_against_the_simulated_delphixdb() {
    let w = World::new();

    // Before linking: no staging database, so not replicating.
    assert_eq!(w.status(), json!("INACTIVE"));

    // resync: backup on the primary, new/restore/start on staging,
    // add-slave/start-repl on the primary.
    let (v, t) = w.ok("staged/resync");
    assert_eq!(v, Value::Null);
    assert_eq!(
        envs(&t),
        [
            "staging-env",
            "primary-env",
            "staging-env",
            "staging-env",
            "staging-env",
            "primary-env",
            "primary-env"
        ]
    );
    let entries = t.as_array().unwrap();
    assert_eq!(entries[1]["variables"]["STAGINGPORT"], "1234");
    assert_eq!(entries[1]["variables"]["STAGINGDBNAME"], "stagingDB");
    assert_eq!(entries[1]["variables"]["PRIMARYDBNAME"], "prod");
    assert!(
        !entries[1]["variables"]["STAGINGHOSTIP"]
            .as_str()
            .unwrap()
            .is_empty()
    );
    // The staging copy's data files live on the staging storage.
    assert_eq!(w.staged_value("greeting").as_deref(), Some("hello"));
    assert!(w.staging.join("delphixdb.conf").is_file());
    assert!(
        w.sim
            .ok(&["status", "stagingDB"])
            .contains("replication-running")
    );
    let (v, t) = w.ok("staged/status");
    assert_eq!(v, json!("ACTIVE"));
    assert_eq!(
        calls(&t),
        [(
            "RunBash".into(),
            "staging-env".into(),
            Some("query_staging_status.sh".into())
        )]
    );

    // A change on the primary is replicated to the staging copy.
    w.sim.ok(&["write", "prod", "greeting", "bonjour"]);
    assert_eq!(w.staged_value("greeting").as_deref(), Some("bonjour"));

    // preSnapshot: replication stopped, buffers flushed -> writes wait.
    let (_, t) = w.ok("staged/preSnapshot");
    assert_eq!(envs(&t), ["primary-env", "staging-env"]);
    assert!(w.staging.join("flushed").is_file());
    w.sim.ok(&["write", "prod", "count", "2"]);
    assert_eq!(w.staged_value("count").as_deref(), Some("1"));
    assert_eq!(w.status(), json!("INACTIVE"));

    // postSnapshot: replication resumes and catches up; it returns nothing,
    // which is stored as {} (valid against snapshotSchema).
    let (v, t) = w.ok("staged/postSnapshot");
    assert_eq!(v, json!({}));
    assert_eq!(envs(&t), ["primary-env"]);
    assert_eq!(w.staged_value("count").as_deref(), Some("2"));
    assert_eq!(w.status(), json!("ACTIVE"));

    // Disable: replication stopped and the staging database shut down.
    let (_, t) = w.ok("staged/stopStaging");
    assert_eq!(envs(&t), ["primary-env", "staging-env"]);
    assert!(w.sim.ok(&["status", "stagingDB"]).contains("state=stopped"));
    assert_eq!(w.status(), json!("INACTIVE"));
    w.sim.ok(&["write", "prod", "count", "3"]);
    assert_eq!(w.staged_value("count").as_deref(), Some("2"));

    // Enable: replication restarted, the staging database started through
    // the start_staging_database.sh resource; the pending write arrives.
    let (_, t) = w.ok("staged/startStaging");
    assert_eq!(calls(&t), start_staging_calls());
    assert_eq!(w.status(), json!("ACTIVE"));
    assert_eq!(w.staged_value("count").as_deref(), Some("3"));
    // startStaging on a running database is harmless.
    w.ok("staged/startStaging");

    // A forced (hard) resync rebuilds the staging copy from a new backup.
    w.sim.ok(&["write", "prod", "extra", "x"]);
    w.ok("staged/resync");
    assert_eq!(w.staged_value("extra").as_deref(), Some("x"));
    assert_eq!(w.status(), json!("ACTIVE"));

    // Non-default parameters reach the commands.
    let (code, j, t) = w.hook("staged/status", &["--param", "stagingDbName=otherDB"]);
    assert_eq!((code, j["value"].clone()), (0, json!("INACTIVE")), "{j:#}");
    assert_eq!(t[0]["variables"]["STAGINGDBNAME"], "otherDB");
}

#[test]
fn virtual_and_discovery_hooks_run_against_the_simulator() {
    let w = World::new();
    w.ok("staged/resync");
    w.ok("staged/preSnapshot");
    // "Snapshot" the staging storage: a copy, which the VDB is brought up on.
    let vdb_dir = w.sim.path("vdb-storage");
    copy_dir(&w.staging, &vdb_dir);
    w.ok("staged/postSnapshot");
    let user = current_user();
    let vctx = w.sim.path("vctx.json");
    std::fs::write(
        &vctx,
        json!({
            "repository": {"installPath": w.sim.program},
            "source": {"environment": "target-env", "environmentUser": user, "host": "target", "dataDirectory": vdb_dir},
            "snapshotJson": {},
            "parameters": {"dbName": "vdb1"},
            "config": {"dbName": "vdb1", "port": 2345}
        })
        .to_string(),
    )
    .unwrap();
    let tk = delphixdb();
    let run = |hook: &str| {
        let out = run_hook(&tk, hook, &vctx, &[]);
        let (code, so, se) = parts(&out);
        assert_eq!(code, 0, "{hook}: {so}{se}");
        json_of(&out)["value"].clone()
    };
    assert_eq!(
        run("virtual/configure"),
        json!({"dbName": "vdb1", "port": 2345})
    );
    assert_eq!(w.sim.ok(&["read", "vdb1", "greeting"]).trim(), "hello");
    assert_eq!(run("virtual/status"), json!("ACTIVE"));
    run("virtual/preSnapshot");
    run("virtual/stop");
    assert_eq!(run("virtual/status"), json!("INACTIVE"));
    run("virtual/start");
    run("virtual/unconfigure");
    assert_eq!(run("virtual/status"), json!("INACTIVE"));
    // The staging copy is untouched by the VDB.
    assert!(
        w.sim
            .ok(&["status", "stagingDB"])
            .contains("replication-running")
    );

    // sourceConfigDiscovery lists the simulator's databases.
    let dctx = w.sim.path("dctx.json");
    std::fs::write(
        &dctx,
        json!({
            "remote": {"environment": "local", "environmentUser": user, "host": "localhost"},
            "repository": {"installPath": w.sim.program}
        })
        .to_string(),
    )
    .unwrap();
    let out = run_hook(&tk, "discovery/sourceConfigDiscovery", &dctx, &[]);
    let (code, so, se) = parts(&out);
    assert_eq!(code, 0, "{so}{se}");
    let names: Vec<String> = json_of(&out)["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["dbName"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, ["prod", "stagingDB"]);
    // repositoryDiscovery always returns an array (maybe empty here).
    let out = run_hook(&tk, "discovery/repositoryDiscovery", &dctx, &[]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(json_of(&out)["value"].is_array());
}

/// Run a staged hook with scripted responses; (exit code, json, transcript).
fn scripted(hook: &str, responses: Value) -> (i32, Value, Value) {
    let tmp = tempfile::tempdir().unwrap();
    let ctx = tmp.path().join("ctx.json");
    std::fs::write(
        &ctx,
        json!({
            "config": {"dbName": "prod"},
            "repository": {"installPath": "/opt/delphixdb/bin/delphixdb"},
            "source": {
                "environment": "primary-env", "environmentUser": "dbuser", "host": "db1",
                "stagingEnvironment": "staging-env", "stagingEnvironmentUser": "stage", "stagingHost": "db2",
                "dataDirectory": "/mnt/provision/dsource-1", "guid": "g"
            }
        })
        .to_string(),
    )
    .unwrap();
    let rfile = tmp.path().join("responses.json");
    std::fs::write(&rfile, responses.to_string()).unwrap();
    let tfile = tmp.path().join("transcript.json");
    let out = run_hook(
        &delphixdb(),
        hook,
        &ctx,
        &[
            "--responses",
            rfile.to_str().unwrap(),
            "--transcript",
            tfile.to_str().unwrap(),
        ],
    );
    let code = out.status.code().unwrap();
    let t = serde_json::from_str(&std::fs::read_to_string(&tfile).unwrap()).unwrap();
    (code, json_of(&out), t)
}

fn commands_contain(t: &Value, i: usize) -> String {
    t[i]["variables"].to_string()
}

#[test]
fn each_staged_hook_runs_with_scripted_responses() {
    // resync: the staging host's IP comes from the first call's output.
    let (code, j, t) = scripted(
        "staged/resync",
        json!({"default": {"exitCode": 0},
               "calls": [{"match": {"commandContains": "hostname -i"}, "output": "10.0.0.7"}]}),
    );
    assert_eq!(code, 0, "{j:#}");
    assert_eq!(t.as_array().unwrap().len(), 7);
    assert_eq!(t[5]["variables"]["STAGINGHOSTIP"], "10.0.0.7");
    assert_eq!(t[5]["host"], "db1");
    assert_eq!(t[5]["user"], "dbuser");
    assert_eq!(t[3]["host"], "db2");
    assert_eq!(t[2]["variables"]["STAGINGDIR"], "/mnt/provision/dsource-1");

    // resync fails at the backup: the fault carries the call's output and
    // the hook stops there.
    let (code, j, t) = scripted(
        "staged/resync",
        json!({"default": {"exitCode": 0},
               "calls": [{"match": {"commandContains": "hostname -i"}, "output": "10.0.0.7"},
                         {"match": {"commandContains": "backup"}, "exitCode": 5, "stderr": "disk full\n"}]}),
    );
    assert_eq!(code, 1, "{j:#}");
    assert_eq!(
        j["fault"],
        json!({"function": "RunBash", "exitCode": 5, "stdout": "", "stderr": "disk full\n"})
    );
    assert_eq!(t.as_array().unwrap().len(), 2);

    // status: whatever query_staging_status.sh writes is returned...
    for word in ["ACTIVE", "INACTIVE"] {
        let (code, j, t) = scripted(
            "staged/status",
            json!({"calls": [{"match": {"resource": "query_staging_status.sh", "environment": "staging-env"}, "output": word}]}),
        );
        assert_eq!((code, j["value"].clone()), (0, json!(word)), "{j:#}");
        assert_eq!(t[0]["resource"], "query_staging_status.sh");
    }
    // ...and checked: not one of the three strings fails the Run call (its
    // outputSchema allows only those; see FIXES).
    let (code, j, _) = scripted("staged/status", json!({"default": {"output": "RUNNING"}}));
    assert_eq!(code, 1);
    assert_eq!(j["kind"], "runtime");
    assert!(
        j["message"]
            .as_str()
            .unwrap()
            .contains("does not match its outputSchema"),
        "{j:#}"
    );
    // No output at all: the outputSchema check fails the Run call.
    let (code, j, _) = scripted("staged/status", json!({"default": {"exitCode": 0}}));
    assert_eq!(code, 1, "{j:#}");

    // preSnapshot: stop-repl on the primary, flush on staging.
    let (code, j, t) = scripted("staged/preSnapshot", json!({"default": {}}));
    assert_eq!(code, 0, "{j:#}");
    assert_eq!(envs(&t), ["primary-env", "staging-env"]);
    assert!(commands_contain(&t, 0).contains("stagingDB"));
    let (code, j, _) = scripted(
        "staged/preSnapshot",
        json!({"default": {}, "calls": [{"match": {"commandContains": "flush"}, "exitCode": 2, "stdout": "busy"}]}),
    );
    assert_eq!(code, 1);
    assert_eq!(j["fault"]["exitCode"], 2);
    assert_eq!(j["fault"]["stdout"], "busy");

    // postSnapshot: start-repl; returns {} (nothing).
    let (code, j, t) = scripted("staged/postSnapshot", json!({"default": {}}));
    assert_eq!((code, j["value"].clone()), (0, json!({})), "{j:#}");
    assert_eq!(envs(&t), ["primary-env"]);

    // startStaging: start-repl, then the start_staging_database.sh resource.
    let (code, _, t) = scripted("staged/startStaging", json!({"default": {}}));
    assert_eq!(code, 0);
    assert_eq!(calls(&t), start_staging_calls());

    // stopStaging: stop-repl, stop.
    let (code, _, t) = scripted("staged/stopStaging", json!({"default": {}}));
    assert_eq!(code, 0);
    assert_eq!(envs(&t), ["primary-env", "staging-env"]);
}
