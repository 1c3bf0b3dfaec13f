//! Toolkit loading and validation rules through the library, without the
//! sandbox (no Lua syntax check; `toolkit_cli` covers that): the corpus of
//! broken toolkits (one per rule) each gives its diagnostic with file and
//! field, the clean toolkit none, both forms load to the same toolkit, and
//! the hook catalog's parameter and context handling.

#[path = "../../../tests/common/paths.rs"]
mod support;

use std::path::Path;

use lunabox_toolkit::hook::catalog::spec;
use lunabox_toolkit::hook::globals::{build as build_globals, prepare_parameters};
use lunabox_toolkit::hook::{HookContext, SetupError};
use lunabox_toolkit::load::{from_built_json, load};
use lunabox_toolkit::validate::validate;
use lunabox_toolkit::{ApiVersion, HookGroup, HookId, LinkedKind, Severity, build, scaffold};
use serde_json::json;
use support::{copy_dir, delphixdb, fixtures};

/// (fixture, severity, rule, file, field): the diagnostic each broken
/// toolkit must give. For errors it must be the only kind of error; for
/// warnings there must be no error.
const CASES: &[(&str, Severity, &str, &str, Option<&str>)] = &[
    (
        "manifest-type",
        Severity::Error,
        "manifest-type",
        "main.json",
        Some("/type"),
    ),
    (
        "name-pattern",
        Severity::Error,
        "name",
        "main.json",
        Some("/name"),
    ),
    (
        "name-directory",
        Severity::Error,
        "name-directory",
        "main.json",
        Some("/name"),
    ),
    (
        "pretty-name",
        Severity::Error,
        "pretty-name",
        "main.json",
        Some("/prettyName"),
    ),
    (
        "version",
        Severity::Error,
        "version",
        "main.json",
        Some("/version"),
    ),
    (
        "host-types",
        Severity::Error,
        "host-types",
        "main.json",
        Some("/hostTypes/0"),
    ),
    (
        "default-locale",
        Severity::Error,
        "default-locale",
        "main.json",
        Some("/defaultLocale"),
    ),
    (
        "linked-type",
        Severity::Error,
        "linked-type",
        "main.json",
        Some("/linkedSourceDefinition/type"),
    ),
    (
        "linked-folder",
        Severity::Error,
        "linked-folder",
        "staged/",
        Some("/linkedSourceDefinition/type"),
    ),
    (
        "linked-folders-both",
        Severity::Error,
        "linked-folders-both",
        "direct/",
        None,
    ),
    (
        "linked-parameters",
        Severity::Error,
        "linked-parameters",
        "main.json",
        Some("/linkedSourceDefinition/parameters"),
    ),
    (
        "virtual-type",
        Severity::Error,
        "virtual-type",
        "main.json",
        Some("/virtualSourceDefinition/type"),
    ),
    (
        "snapshot-schema",
        Severity::Error,
        "snapshot-schema",
        "main.json",
        Some("/snapshotSchema"),
    ),
    (
        "discovery-fields",
        Severity::Error,
        "discovery-fields",
        "main.json",
        Some("/discoveryDefinition/sourceConfigNameField"),
    ),
    (
        "discovery-scripts",
        Severity::Error,
        "discovery-scripts",
        "discovery/sourceConfigDiscovery.lua",
        None,
    ),
    (
        "discovery-without-definition",
        Severity::Error,
        "discovery-without-definition",
        "discovery/repositoryDiscovery.lua",
        None,
    ),
    (
        "messages-default-locale",
        Severity::Error,
        "messages-default-locale",
        "messages/en-us.txt",
        Some("/defaultLocale"),
    ),
    (
        "message-id",
        Severity::Error,
        "message-id",
        "messages/en-us.txt",
        Some("1bad"),
    ),
    (
        "message-syntax",
        Severity::Error,
        "message-syntax",
        "messages/en-us.txt",
        None,
    ),
    (
        "upgrade-layout",
        Severity::Error,
        "upgrade-layout",
        "upgrade/",
        None,
    ),
    (
        "upgrade-scripts",
        Severity::Error,
        "upgrade-scripts",
        "upgrade/1.0/upgradeVirtualSource.lua",
        None,
    ),
    (
        "resources-in-manifest",
        Severity::Error,
        "resources-in-manifest",
        "main.json",
        Some("/resources"),
    ),
    (
        "schema-draft4",
        Severity::Error,
        "schema-draft4",
        "main.json",
        Some("/linkedSourceDefinition/parameters/properties/port/type"),
    ),
    (
        "schema-default",
        Severity::Error,
        "schema-default",
        "main.json",
        Some("/linkedSourceDefinition/parameters/properties/port/default"),
    ),
    (
        "api-version",
        Severity::Error,
        "api-version",
        "main.json",
        Some("/buildApi"),
    ),
    (
        "hook-wrong-folder",
        Severity::Warning,
        "hook-wrong-folder",
        "staged/configure.lua",
        None,
    ),
    (
        "unknown-hook-file",
        Severity::Warning,
        "unknown-hook-file",
        "staged/resynch.lua",
        None,
    ),
    (
        "resource-unused",
        Severity::Warning,
        "resource-unused",
        "resources/unused.sh",
        None,
    ),
    (
        "discovery-field-missing",
        Severity::Warning,
        "discovery-field-missing",
        "main.json",
        Some("/discoveryDefinition/repositoryIdentityFields/1"),
    ),
    (
        "resource-missing",
        Severity::Warning,
        "resource-missing",
        "staged/status.lua",
        Some("resources[\"nope.sh\"]"),
    ),
];

#[test]
fn each_broken_toolkit_gives_its_diagnostic_with_file_and_field() {
    let mut failures = Vec::new();
    for (case, severity, rule, file, field) in CASES {
        let dir = fixtures().join("broken").join(case);
        let loaded = load(&dir).unwrap_or_else(|e| panic!("{case}: {e}"));
        let report = validate(&loaded, None);
        let found = report.diagnostics.iter().any(|d| {
            d.severity == *severity
                && d.rule == *rule
                && d.file == *file
                && d.field.as_deref() == *field
        });
        let other_errors: Vec<_> = report
            .errors()
            .filter(|d| d.rule != *rule && d.rule != "linked-folder")
            .collect();
        if !found {
            failures.push(format!(
                "{case}: expected {severity:?} {rule} at {file} {field:?}, got {:#?}",
                report.diagnostics
            ));
        } else if *severity == Severity::Warning && !report.ok() {
            failures.push(format!(
                "{case}: a warning case has errors: {:#?}",
                report.diagnostics
            ));
        } else if !other_errors.is_empty() {
            failures.push(format!(
                "{case}: other errors besides {rule}: {other_errors:#?}"
            ));
        }
        // Every diagnostic says what to do next (it is not a bare rule name).
        for d in &report.diagnostics {
            if d.message.len() < 30 {
                failures.push(format!("{case}: terse message {d}"));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn the_message_syntax_error_names_its_line() {
    let loaded = load(&fixtures().join("broken/message-syntax")).unwrap();
    let d = validate(&loaded, None)
        .diagnostics
        .into_iter()
        .find(|d| d.rule == "message-syntax")
        .unwrap();
    assert_eq!(d.line, Some(3));
}

#[test]
fn both_staged_and_direct_folders_is_an_error_even_with_a_matching_type() {
    let loaded = load(&fixtures().join("broken/linked-folders-both")).unwrap();
    let report = validate(&loaded, None);
    let rules: Vec<&str> = report.errors().map(|d| d.rule).collect();
    assert!(rules.contains(&"linked-folders-both"), "{rules:?}");
    assert!(rules.contains(&"linked-folder"), "{rules:?}");
}

#[test]
fn the_clean_toolkit_gives_no_diagnostic_in_either_form() {
    for path in [
        fixtures().join("clean"),
        fixtures().join("built/built-clean.json"),
        delphixdb(),
    ] {
        let loaded = load(&path).unwrap();
        let report = validate(&loaded, None);
        assert!(
            report.diagnostics.is_empty(),
            "{}: {:#?}",
            path.display(),
            report.diagnostics
        );
    }
}

#[test]
fn built_form_problems_name_the_json_pointer() {
    let cases = [
        (
            "script-not-text",
            "script-not-text",
            "/linkedSourceDefinition/resync",
        ),
        ("resources-shape", "resources-shape", "/resources"),
        (
            "built-discovery-scripts",
            "discovery-scripts",
            "/discoveryDefinition/sourceConfigDiscovery",
        ),
    ];
    for (file, rule, pointer) in cases {
        let path = fixtures().join("built").join(format!("{file}.json"));
        let report = validate(&load(&path).unwrap(), None);
        let d = report
            .errors()
            .find(|d| d.rule == rule)
            .unwrap_or_else(|| panic!("{file}: no {rule}: {:#?}", report.diagnostics));
        assert_eq!(d.field.as_deref(), Some(pointer), "{file}");
        assert!(d.file.ends_with(&format!("{file}.json")), "{}", d.file);
    }
}

fn round_trip(dir: &Path) {
    let from_dir = load(dir).unwrap();
    assert!(from_dir.notes.is_empty(), "{:#?}", from_dir.notes);
    let built = build::to_built_json(&from_dir.toolkit);
    let from_json = from_built_json(built.clone(), "x.json".into()).unwrap();
    assert_eq!(from_dir.toolkit, from_json.toolkit, "{}", dir.display());
    // Through a file, as `lunabox build` writes it.
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("built.json");
    std::fs::write(&file, build::to_built_text(&from_dir.toolkit)).unwrap();
    let from_file = load(&file).unwrap();
    assert_eq!(from_dir.toolkit, from_file.toolkit);
    assert!(validate(&from_file, None).ok());
    // Building the loaded built form again gives the same document.
    assert_eq!(build::to_built_json(&from_file.toolkit), built);
}

#[test]
fn directory_and_built_json_load_to_the_same_toolkit() {
    round_trip(&fixtures().join("clean"));
    round_trip(&delphixdb());
}

#[test]
fn loading_accepts_what_real_toolkits_contain() {
    let tk = load(&fixtures().join("clean")).unwrap().toolkit;
    // buildApi as an APIVersion object, engineApi as a string.
    let v170 = ApiVersion {
        major: 1,
        minor: 7,
        micro: 0,
    };
    assert_eq!(tk.build_api(), Some(v170));
    assert_eq!(tk.engine_api(), Some(v170));
    // Resources in sub-folders, keyed by their path under resources/;
    // hidden files skipped (they are not even UTF-8 here).
    assert_eq!(
        tk.resources.keys().collect::<Vec<_>>(),
        vec!["copy.sh", "lib/common.sh"]
    );
    let hooks: Vec<String> = tk.scripts.keys().map(|h| h.to_string()).collect();
    assert!(!hooks.iter().any(|h| h.contains(".DS_Store")), "{hooks:?}");
    // A leading `#` line stays in the text (the sandbox skips it).
    let resync = tk.script(&"staged/resync".parse().unwrap()).unwrap();
    assert!(resync.starts_with("#!/usr/bin/env lua\n"));
    // Legacy `environmentVariable` and `format: password` stay in the schema.
    assert_eq!(
        tk.pointer("/linkedSourceDefinition/parameters/properties/port/environmentVariable"),
        Some(&json!("PORT"))
    );
    // Missing hooks: empty, except postSnapshot/configure/reconfigure.
    let s = |p: &str| tk.script(&p.parse::<HookId>().unwrap()).map(str::to_string);
    assert_eq!(s("staged/preSnapshot").as_deref(), Some(""));
    assert_eq!(s("staged/worker").as_deref(), Some(""));
    assert_eq!(s("virtual/reconfigure").as_deref(), Some("return {}"));
    assert_eq!(s("virtual/postSnapshot").as_deref(), Some("return {}"));
    assert_eq!(s("virtual/unconfigure").as_deref(), Some(""));
    // Optional hooks stay absent; the written ones are there.
    assert_eq!(s("staged/mountSpec"), None);
    assert_eq!(s("virtual/status"), None);
    assert_eq!(s("staged/status").as_deref(), Some("return \"ACTIVE\"\n"));
    // The upgrade folder's version becomes upgradeDefinition.fromVersion.
    assert_eq!(tk.upgrade_from(), Some("1.0"));
    assert_eq!(
        tk.chunk_name(&"upgrade/upgradeSnapshot".parse().unwrap()),
        "clean/upgrade/1.0/upgradeSnapshot.lua"
    );
    assert_eq!(
        tk.chunk_name(&"staged/resync".parse().unwrap()),
        "clean/staged/resync.lua"
    );
    assert_eq!(tk.messages["en-us"]["farewell_2"], "Goodbye");
    assert_eq!(tk.linked_kind(), Some(LinkedKind::Staged));
}

#[test]
fn scaffolded_toolkits_pass_validation_without_warnings() {
    let tmp = tempfile::tempdir().unwrap();
    for (name, kind) in [
        ("my-staged", LinkedKind::Staged),
        ("my-direct", LinkedKind::Direct),
    ] {
        let dir = scaffold::create(tmp.path(), name, kind).unwrap();
        let loaded = load(&dir).unwrap();
        let report = validate(&loaded, None);
        assert!(
            report.diagnostics.is_empty(),
            "{name}: {:#?}",
            report.diagnostics
        );
        assert_eq!(loaded.toolkit.linked_kind(), Some(kind));
        // Every hook of its kind is written (none left to defaults).
        let group = kind.group();
        for spec in lunabox_toolkit::hook::catalog::hooks_of(group) {
            if let lunabox_toolkit::hook::catalog::Presence::Filled(_) = spec.presence {
                assert!(
                    !loaded.origin.defaulted.contains(&spec.id()),
                    "{name}: {} not written",
                    spec.id()
                );
            }
        }
        round_trip(&dir);
        assert!(matches!(
            scaffold::create(tmp.path(), name, kind),
            Err(scaffold::ScaffoldError::Exists(_))
        ));
    }
}

#[test]
fn parameters_get_defaults_recursively_and_passwords_become_secrets() {
    let tk = load(&fixtures().join("clean")).unwrap().toolkit;
    let (params, secrets) = prepare_parameters(
        &tk,
        HookGroup::Staged,
        Some(&json!({"password": "hunter2"})),
    )
    .unwrap();
    assert_eq!(
        params,
        json!({"password": "hunter2", "port": 1234, "tuning": {"cache": 64}})
    );
    assert_eq!(secrets, vec!["hunter2".to_string()]);

    let err = prepare_parameters(
        &tk,
        HookGroup::Staged,
        Some(&json!({"port": "abc", "password": "hunter2"})),
    )
    .unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, SetupError::InvalidParameters { .. }));
    assert!(
        text.contains("/port") && text.contains("linkedSourceDefinition.parameters"),
        "{text}"
    );

    // additionalProperties: false; the password itself is never shown.
    let err = prepare_parameters(
        &tk,
        HookGroup::Staged,
        Some(&json!({"prot": 1, "password": "hunter2"})),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("prot"), "{err}");
    assert!(!err.contains("hunter2"), "{err}");
}

#[test]
fn a_missing_context_part_is_named() {
    let tk = load(&delphixdb()).unwrap().toolkit;
    let resync = spec(HookGroup::Staged, "resync").unwrap();
    let ctx = HookContext {
        config: Some(json!({"dbName": "prod"})),
        source: Some(json!({})),
        ..HookContext::default()
    };
    let err = build_globals(resync, &tk, &ctx, None).err().unwrap();
    assert!(
        matches!(
            err,
            SetupError::MissingContext {
                part: "repository",
                ..
            }
        ),
        "{err}"
    );
    assert!(
        err.to_string().contains("staged/resync needs `repository`"),
        "{err}"
    );

    let configure = spec(HookGroup::Virtual, "configure").unwrap();
    let ctx = HookContext {
        repository: Some(json!({})),
        source: Some(json!({})),
        ..HookContext::default()
    };
    let err = build_globals(configure, &tk, &ctx, None).err().unwrap();
    assert!(err.to_string().contains("`snapshotJson`"), "{err}");

    let discovery = spec(HookGroup::Discovery, "sourceConfigDiscovery").unwrap();
    let ctx = HookContext {
        remote: Some(json!({"environment": "e"})),
        ..HookContext::default()
    };
    let err = build_globals(discovery, &tk, &ctx, None).err().unwrap();
    assert!(err.to_string().contains("`repository`"), "{err}");
}

#[test]
fn globals_follow_the_hook_kind() {
    let tk = load(&delphixdb()).unwrap().toolkit;
    let ctx = HookContext {
        config: Some(json!({"dbName": "prod"})),
        repository: Some(json!({"installPath": "/x"})),
        source: Some(json!({"environment": "e"})),
        remote: Some(json!({"host": "h"})),
        snapshot_json: Some("{\"position\":3}".into()),
        parameters: None,
    };
    let g = build_globals(
        spec(HookGroup::Staged, "status").unwrap(),
        &tk,
        &ctx,
        Some(Path::new("/data")),
    )
    .unwrap();
    let keys: Vec<&str> = g.map.keys().map(String::as_str).collect();
    assert_eq!(keys, vec!["parameters", "config", "repository", "source"]);
    assert_eq!(
        g.map["parameters"],
        json!({"stagingDbName": "stagingDB", "stagingPort": 1234})
    );
    assert_eq!(g.map["source"]["dataDirectory"], json!("/data"));

    let g = build_globals(
        spec(HookGroup::Virtual, "configure").unwrap(),
        &tk,
        &ctx,
        None,
    )
    .unwrap();
    assert_eq!(g.map["snapshotJson"], json!("{\"position\":3}"));
    assert_eq!(g.map["parameters"], json!({"dbName": "vdb", "port": 2345}));

    let g = build_globals(
        spec(HookGroup::Discovery, "repositoryDiscovery").unwrap(),
        &tk,
        &ctx,
        None,
    )
    .unwrap();
    assert_eq!(g.map.keys().collect::<Vec<_>>(), vec!["remote"]);

    // Direct: source.dataDirectory is the source config's path.
    let direct = HookContext {
        config: Some(json!({"path": "/srv/data"})),
        ..ctx.clone()
    };
    let g = build_globals(
        spec(HookGroup::Direct, "preSnapshot").unwrap(),
        &tk,
        &direct,
        Some(Path::new("/x")),
    )
    .unwrap();
    assert_eq!(g.map["source"]["dataDirectory"], json!("/srv/data"));
}

#[test]
fn a_symlink_loop_under_resources_is_reported_not_followed_forever() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("clean");
    copy_dir(&fixtures().join("clean"), &dir);
    std::os::unix::fs::symlink(".", dir.join("resources/loop")).unwrap();
    let loaded = load(&dir).unwrap();
    let report = validate(&loaded, None);
    let d = report
        .errors()
        .find(|d| d.rule == "toolkit-file")
        .expect("toolkit-file error");
    assert_eq!(d.file, "resources/loop");
    assert!(
        d.message.contains("symlinks to folders are not followed"),
        "{}",
        d.message
    );
    assert!(
        !loaded
            .toolkit
            .resources
            .keys()
            .any(|k| k.starts_with("loop/"))
    );
}
