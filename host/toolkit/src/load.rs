//! Loading a toolkit from a directory or from its built JSON form into one
//! [`Toolkit`] value, plus the [`Origin`] (where each part came from, for
//! diagnostics) and load-time notes (stray files, unreadable resources).
//!
//! Loading is lenient: it fails only when there is no manifest to read
//! ([`LoadError`]); everything else is a [`Diagnostic`] in
//! [`Loaded::notes`] so `validate` can report all problems at once.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use super::diag::Diagnostic;
use super::files::{self, Kind, Listed, ReadError, ToolkitFiles};
use super::model::{HookGroup, HookId, Toolkit};
use crate::hook::catalog::{self, Presence};

/// Which form a toolkit was loaded from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Form {
    /// A toolkit directory (main.json, staged/, resources/, ...).
    Directory,
    /// A built toolkit: one JSON document.
    Built,
}

/// Where a loaded toolkit came from.
#[derive(Debug, Clone)]
pub struct Origin {
    /// A directory or a built file.
    pub form: Form,
    /// The directory or the built file.
    pub path: PathBuf,
    /// Hooks filled in with their default script (not written by the author).
    pub defaulted: BTreeSet<HookId>,
}

impl Origin {
    fn built_label(&self) -> String {
        self.path.display().to_string()
    }

    /// The file holding the manifest: `main.json`, or the built file.
    pub fn manifest_file(&self) -> String {
        match self.form {
            Form::Directory => "main.json".into(),
            Form::Built => self.built_label(),
        }
    }

    /// The file (and, when built, the JSON pointer) of a hook's script.
    pub fn script_location(&self, toolkit: &Toolkit, hook: &HookId) -> (String, Option<String>) {
        match self.form {
            Form::Directory => {
                let file = match (hook.group, toolkit.upgrade_from()) {
                    (HookGroup::Upgrade, Some(v)) => format!("upgrade/{v}/{}.lua", hook.name),
                    _ => format!("{}/{}.lua", hook.group, hook.name),
                };
                (file, None)
            }
            Form::Built => (
                self.built_label(),
                Some(format!("/{}/{}", hook.group.definition_key(), hook.name)),
            ),
        }
    }

    /// The file (and, when built, the JSON pointer) of a resource.
    pub fn resource_location(&self, name: &str) -> (String, Option<String>) {
        match self.form {
            Form::Directory => (format!("resources/{name}"), None),
            Form::Built => (
                self.built_label(),
                Some(format!("/resources/{}", pointer_escape(name))),
            ),
        }
    }

    /// The file of a locale's messages.
    pub fn messages_file(&self, locale: &str) -> String {
        match self.form {
            Form::Directory => format!("messages/{locale}.txt"),
            Form::Built => self.built_label(),
        }
    }
}

/// Escape a JSON pointer token.
pub fn pointer_escape(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}

/// A loaded toolkit with its origin and what loading noticed.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The toolkit.
    pub toolkit: Toolkit,
    /// Where it was loaded from, and which hooks were filled in.
    pub origin: Origin,
    /// Problems found while reading (stray or misplaced files, unreadable
    /// resources, both staged/ and direct/, ...).
    pub notes: Vec<Diagnostic>,
}

/// Why a toolkit could not be loaded at all.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(
        "{path}: no such file or directory; give a toolkit directory (with main.json) or a built toolkit .json file"
    )]
    /// The path does not exist.
    NotFound {
        /// The path given.
        path: PathBuf,
    },
    #[error(
        "{dir}: no main.json; a toolkit directory needs its manifest (run `lunabox init NAME --staged` to start one)"
    )]
    /// A directory without `main.json` (or where `main.json` is a folder).
    NoManifest {
        /// The toolkit directory.
        dir: PathBuf,
    },
    #[error("{path}: cannot read it ({source}); check its permissions")]
    /// The path or the toolkit directory could not be read.
    Io {
        /// The path given.
        path: PathBuf,
        #[source]
        /// The OS error.
        source: std::io::Error,
    },
    #[error("{file}:{line}:{column}: not valid JSON ({message}); fix the syntax and try again")]
    /// `main.json` or the built file is not valid JSON.
    Json {
        /// The file.
        file: PathBuf,
        /// The line of the error (1-based).
        line: usize,
        /// The column of the error (1-based).
        column: usize,
        /// serde_json's message.
        message: String,
    },
    #[error("{file}: the document must be a JSON object (the toolkit manifest)")]
    /// The document is JSON but not an object.
    NotObject {
        /// The file.
        file: PathBuf,
    },
    #[error("{path}: {why}")]
    /// The file cannot be used: refused by the file rules, too large, not
    /// UTF-8, or JSON nested too deep.
    Refused {
        /// The file refused.
        path: PathBuf,
        /// Why, and what to do.
        why: String,
    },
}

impl LoadError {
    /// The same problem as a diagnostic (for `validate`).
    pub fn to_diagnostic(&self) -> Diagnostic {
        let (file, line) = match self {
            LoadError::NotFound { path } | LoadError::Io { path, .. } => {
                (path.display().to_string(), None)
            }
            LoadError::NoManifest { dir } => (dir.join("main.json").display().to_string(), None),
            LoadError::Json { file, line, .. } => {
                (file.display().to_string(), u32::try_from(*line).ok())
            }
            LoadError::NotObject { file } => (file.display().to_string(), None),
            LoadError::Refused { path, .. } => (path.display().to_string(), None),
        };
        Diagnostic::error("load", file, None, self.to_string()).at_line(line)
    }
}

/// Load a toolkit directory or a built `.json` file.
pub fn load(path: &Path) -> Result<Loaded, LoadError> {
    let meta = fs::metadata(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => LoadError::NotFound { path: path.into() },
        _ => LoadError::Io {
            path: path.into(),
            source: e,
        },
    })?;
    if meta.is_dir() {
        from_dir(path)
    } else {
        from_built_file(path)
    }
}

/// Largest built toolkit file read: every file a toolkit may hold, and room
/// for the JSON around them.
pub const MAX_BUILT_BYTES: u64 = files::MAX_TOTAL_BYTES + (16 << 20);

fn parse_json(bytes: &[u8], file: &Path) -> Result<Value, LoadError> {
    crate::json::parse_slice(bytes).map_err(|e| match e {
        crate::json::JsonError::Syntax {
            message,
            line,
            column,
        } => LoadError::Json {
            file: file.into(),
            line,
            column,
            message,
        },
        e @ crate::json::JsonError::TooDeep => LoadError::Refused {
            path: file.into(),
            why: e.to_string(),
        },
    })
}

/// Load a built toolkit file.
pub fn from_built_file(path: &Path) -> Result<Loaded, LoadError> {
    let bytes = files::read_user_file(path, MAX_BUILT_BYTES).map_err(|e| LoadError::Refused {
        path: path.into(),
        why: e.to_string(),
    })?;
    let value = parse_json(&bytes, path)?;
    from_built_json(value, path.to_path_buf())
}

/// Load a built toolkit from its JSON document; `path` names it in
/// diagnostics.
pub fn from_built_json(value: Value, path: PathBuf) -> Result<Loaded, LoadError> {
    let Value::Object(mut manifest) = value else {
        return Err(LoadError::NotObject { file: path });
    };
    let origin_file = path.display().to_string();
    let mut notes = Vec::new();
    let mut toolkit = Toolkit::default();

    match manifest.remove("resources") {
        None => {}
        Some(Value::Object(res)) => {
            for (name, text) in res {
                match text {
                    Value::String(t) => {
                        std::sync::Arc::make_mut(&mut toolkit.resources).insert(name, t);
                    }
                    _ => notes.push(Diagnostic::error(
                        "resource-not-text",
                        &origin_file,
                        Some(format!("/resources/{}", pointer_escape(&name))),
                        "a resource must be a string (the file's text); rebuild the toolkit with `lunabox build`",
                    )),
                }
            }
        }
        Some(_) => notes.push(Diagnostic::error(
            "resources-shape",
            &origin_file,
            Some("/resources".into()),
            "`resources` must be an object mapping resource path -> text",
        )),
    }

    match manifest.remove("messages") {
        None => {}
        Some(Value::Object(locales)) => {
            for (locale, ids) in locales {
                let Value::Object(ids) = ids else {
                    notes.push(Diagnostic::error(
                        "messages-shape",
                        &origin_file,
                        Some(format!("/messages/{}", pointer_escape(&locale))),
                        "each locale in `messages` must be an object mapping message id -> text",
                    ));
                    continue;
                };
                let mut map = BTreeMap::new();
                for (id, text) in ids {
                    match text {
                        Value::String(t) => {
                            map.insert(id, t);
                        }
                        _ => notes.push(Diagnostic::error(
                            "messages-shape",
                            &origin_file,
                            Some(format!(
                                "/messages/{}/{}",
                                pointer_escape(&locale),
                                pointer_escape(&id)
                            )),
                            "a message must be a string",
                        )),
                    }
                }
                toolkit.messages.insert(locale, map);
            }
        }
        Some(_) => notes.push(Diagnostic::error(
            "messages-shape",
            &origin_file,
            Some("/messages".into()),
            "`messages` must be an object mapping locale -> {id: text}",
        )),
    }

    // Pull embedded scripts out of their definitions.
    let linked_group = manifest
        .get("linkedSourceDefinition")
        .and_then(|d| d.get("type"))
        .and_then(Value::as_str)
        .and_then(super::model::LinkedKind::from_type_name)
        .map(|k| k.group())
        .unwrap_or(HookGroup::Staged);
    for group in [
        HookGroup::Discovery,
        linked_group,
        HookGroup::Virtual,
        HookGroup::Upgrade,
    ] {
        let key = group.definition_key();
        let Some(Value::Object(def)) = manifest.get_mut(key) else {
            continue;
        };
        for spec in catalog::hooks_of(group) {
            match def.remove(spec.name) {
                None => {}
                Some(Value::String(script)) => {
                    toolkit.scripts.insert(spec.id(), script);
                }
                Some(other) => {
                    notes.push(Diagnostic::error(
                        "script-not-text",
                        &origin_file,
                        Some(format!("/{key}/{}", spec.name)),
                        format!("the {} hook must be a string (its Lua source)", spec.name),
                    ));
                    def.insert(spec.name.to_string(), other);
                }
            }
        }
    }

    toolkit.manifest = manifest;
    let defaulted = fill_defaults(&mut toolkit);
    Ok(Loaded {
        toolkit,
        origin: Origin {
            form: Form::Built,
            path,
            defaulted,
        },
        notes,
    })
}

/// Fill in the scripts the builder fills in (linked hooks of the declared
/// kind and virtual hooks); returns which.
pub fn fill_defaults(toolkit: &mut Toolkit) -> BTreeSet<HookId> {
    let mut filled = BTreeSet::new();
    let groups = toolkit
        .linked_kind()
        .map(|k| k.group())
        .into_iter()
        .chain([HookGroup::Virtual]);
    for group in groups {
        for spec in catalog::hooks_of(group) {
            if let Presence::Filled(default) = spec.presence {
                let id = spec.id();
                if !toolkit.scripts.contains_key(&id) {
                    toolkit.scripts.insert(id.clone(), default.to_string());
                    filled.insert(id);
                }
            }
        }
    }
    filled
}

/// The entries of a folder inside the toolkit (`rel`; `shown` as the
/// toolkit names it, e.g. `upgrade/`). Entries the file rule refuses become
/// errors naming them; when the folder cannot be listed, `None` and an
/// `unreadable` error.
fn list_folder(
    files: &ToolkitFiles,
    rel: &Path,
    shown: impl Into<String>,
    notes: &mut Vec<Diagnostic>,
) -> Option<Vec<Listed>> {
    let shown = shown.into();
    match files.list(rel) {
        Ok(list) => Some(
            list.into_iter()
                .filter(|l| match &l.kind {
                    Kind::Refused(why) => {
                        notes.push(refused(&format!("{shown}{}", l.name), why));
                        false
                    }
                    _ => true,
                })
                .collect(),
        ),
        Err(e) => {
            notes.push(Diagnostic::error(
                "unreadable",
                shown,
                None,
                format!("cannot list the folder ({e})"),
            ));
            None
        }
    }
}

/// The error for an entry the file rule refuses.
fn refused(shown: &str, why: &str) -> Diagnostic {
    Diagnostic::error("toolkit-file", shown, None, format!("`{shown}` {why}"))
}

/// The file an entry is read from.
fn target_of(l: &Listed) -> &Path {
    match &l.kind {
        Kind::File { target } => target,
        _ => &l.rel,
    }
}

/// Load a toolkit directory.
pub fn from_dir(dir: &Path) -> Result<Loaded, LoadError> {
    let files = ToolkitFiles::open(dir).map_err(|e| LoadError::Io {
        path: dir.into(),
        source: e,
    })?;
    let top = files.list(Path::new("")).map_err(|e| LoadError::Io {
        path: dir.into(),
        source: e,
    })?;
    let main = dir.join("main.json");
    let manifest_bytes = match top.iter().find(|l| l.name == "main.json") {
        None => return Err(LoadError::NoManifest { dir: dir.into() }),
        Some(Listed {
            kind: Kind::Refused(why),
            ..
        }) => {
            return Err(LoadError::Refused {
                path: main,
                why: why.clone(),
            });
        }
        Some(Listed {
            kind: Kind::Dir, ..
        }) => return Err(LoadError::NoManifest { dir: dir.into() }),
        Some(l) => files
            .read_bytes(target_of(l))
            .map_err(|e| LoadError::Refused {
                path: main.clone(),
                why: e.to_string(),
            })?,
    };
    let Value::Object(mut manifest) = parse_json(&manifest_bytes, &main)? else {
        return Err(LoadError::NotObject { file: main });
    };
    let mut notes = Vec::new();
    let mut toolkit = Toolkit::default();

    if manifest.contains_key("resources") {
        notes.push(Diagnostic::error(
            "resources-in-manifest",
            "main.json",
            Some("/resources".into()),
            "main.json must not have a `resources` field (the builder makes it from the resources/ folder); \
             move those files into resources/ and remove the field",
        ));
    }
    for l in &top {
        if let Kind::Refused(why) = &l.kind {
            notes.push(refused(&l.name, why));
        }
    }
    let has = |name: &str| top.iter().any(|l| l.name == name && l.is_dir());

    if has("staged") && has("direct") {
        notes.push(Diagnostic::error(
            "linked-folders-both",
            "direct/",
            None,
            "a toolkit has staged/ or direct/, never both; keep the folder that matches \
             linkedSourceDefinition.type and remove the other",
        ));
    }

    for group in [
        HookGroup::Discovery,
        HookGroup::Staged,
        HookGroup::Direct,
        HookGroup::Virtual,
    ] {
        if has(group.folder()) {
            load_hook_folder(
                &files,
                Path::new(group.folder()),
                group,
                group.folder(),
                &mut toolkit,
                &mut notes,
            );
        }
    }

    if has("upgrade") {
        load_upgrade(&files, &mut manifest, &mut toolkit, &mut notes);
    }

    if has("resources") {
        load_resources(
            &files,
            Path::new("resources"),
            "",
            std::sync::Arc::make_mut(&mut toolkit.resources),
            &mut notes,
        );
    }

    if has("messages") {
        load_messages(&files, &mut toolkit.messages, &mut notes);
    }

    toolkit.manifest = manifest;
    let defaulted = fill_defaults(&mut toolkit);
    Ok(Loaded {
        toolkit,
        origin: Origin {
            form: Form::Directory,
            path: dir.into(),
            defaulted,
        },
        notes,
    })
}

fn read_text(
    files: &ToolkitFiles,
    l: &Listed,
    shown: &str,
    notes: &mut Vec<Diagnostic>,
) -> Option<String> {
    match files.read_text(target_of(l)) {
        Ok(t) => Some(t),
        Err(e) => {
            let rule = match e {
                ReadError::NotUtf8 => "not-utf8",
                ReadError::Io(_) => "unreadable",
                _ => "toolkit-file",
            };
            notes.push(Diagnostic::error(rule, shown, None, e.to_string()));
            None
        }
    }
}

fn load_hook_folder(
    files: &ToolkitFiles,
    folder: &Path,
    group: HookGroup,
    shown_dir: &str,
    toolkit: &mut Toolkit,
    notes: &mut Vec<Diagnostic>,
) {
    let Some(list) = list_folder(files, folder, format!("{shown_dir}/"), notes) else {
        return;
    };
    for l in list {
        let name = &l.name;
        let shown = format!("{shown_dir}/{name}");
        if l.is_dir() {
            notes.push(Diagnostic::warning(
                "stray-file",
                format!("{shown}/"),
                None,
                format!("a folder inside {shown_dir}/ is ignored; hook scripts sit directly in it"),
            ));
            continue;
        }
        let Some(stem) = name.strip_suffix(".lua") else {
            notes.push(Diagnostic::warning(
                "stray-file",
                shown,
                None,
                "not a hook script (hooks are NAME.lua); it is ignored — put helper files under resources/",
            ));
            continue;
        };
        if catalog::spec(group, stem).is_none() {
            let elsewhere = catalog::groups_with(stem);
            let message = if let Some(g) = elsewhere.first() {
                format!(
                    "`{stem}` is a hook of {g}/, not of {}/; it is ignored here — move it to {g}/{stem}.lua",
                    group
                )
            } else {
                format!(
                    "`{stem}` is not a hook name; it is ignored. Hooks of {group}/ are: {}",
                    catalog::names_of(group)
                )
            };
            let rule = if elsewhere.is_empty() {
                "unknown-hook-file"
            } else {
                "hook-wrong-folder"
            };
            notes.push(Diagnostic::warning(rule, shown, None, message));
            continue;
        }
        if let Some(text) = read_text(files, &l, &shown, notes) {
            toolkit.scripts.insert(HookId::new(group, stem), text);
        }
    }
}

fn is_upgrade_version(name: &str) -> bool {
    let mut parts = name.split('.');
    let ok =
        |p: Option<&str>| p.is_some_and(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    ok(parts.next()) && ok(parts.next()) && parts.next().is_none()
}

fn load_upgrade(
    files: &ToolkitFiles,
    manifest: &mut Map<String, Value>,
    toolkit: &mut Toolkit,
    notes: &mut Vec<Diagnostic>,
) {
    let Some(list) = list_folder(files, Path::new("upgrade"), "upgrade/", notes) else {
        return;
    };
    let mut versions = Vec::new();
    for l in list {
        let name = l.name.clone();
        if l.is_dir() && is_upgrade_version(&name) {
            versions.push((name, l.rel));
        } else {
            notes.push(Diagnostic::error(
                "upgrade-layout",
                format!("upgrade/{name}"),
                None,
                "upgrade/ holds exactly one folder named after the version it upgrades from (`X.Y`, e.g. upgrade/1.0/); \
                 move or remove this entry",
            ));
        }
    }
    match versions.len() {
        0 => notes.push(Diagnostic::error(
            "upgrade-layout",
            "upgrade/",
            None,
            "upgrade/ has no `X.Y` folder; put upgradeSnapshot.lua, upgradeVirtualSource.lua and \
             upgradeLinkedSource.lua in upgrade/<previous version>/, or remove upgrade/",
        )),
        1 => {}
        _ => notes.push(Diagnostic::error(
            "upgrade-layout",
            "upgrade/",
            None,
            format!(
                "upgrade/ holds exactly one `X.Y` folder, found {}; keep only the version this release upgrades from",
                versions.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>().join(", ")
            ),
        )),
    }
    let Some((version, path)) = versions.into_iter().next() else {
        return;
    };
    let shown = format!("upgrade/{version}");
    load_hook_folder(files, &path, HookGroup::Upgrade, &shown, toolkit, notes);
    let def = manifest
        .entry("upgradeDefinition")
        .or_insert_with(|| Value::Object(Map::new()));
    if let Value::Object(def) = def {
        def.entry("type")
            .or_insert_with(|| Value::String("ToolkitUpgradeDefinition".into()));
        match def.get("fromVersion").and_then(Value::as_str) {
            Some(v) if v != version => notes.push(Diagnostic::error(
                "upgrade-version",
                "main.json",
                Some("/upgradeDefinition/fromVersion".into()),
                format!(
                    "fromVersion is `{v}` but the upgrade folder is upgrade/{version}/; make them the same \
                     (or drop fromVersion: the builder takes it from the folder)"
                ),
            )),
            _ => {
                def.insert("fromVersion".into(), Value::String(version));
            }
        }
    }
}

fn load_resources(
    files: &ToolkitFiles,
    folder: &Path,
    prefix: &str,
    out: &mut BTreeMap<String, String>,
    notes: &mut Vec<Diagnostic>,
) {
    // Folders are nested at most files::MAX_DEPTH deep (list refuses deeper).
    let mut pending = vec![(folder.to_path_buf(), prefix.to_string())];
    while let Some((folder, prefix)) = pending.pop() {
        let Some(list) = list_folder(files, &folder, format!("resources/{prefix}"), notes) else {
            continue;
        };
        for l in list {
            let key = format!("{prefix}{}", l.name);
            if l.is_dir() {
                pending.push((l.rel.clone(), format!("{key}/")));
            } else if let Some(text) = read_text(files, &l, &format!("resources/{key}"), notes) {
                out.insert(key, text);
            }
        }
    }
}

/// Parse a messages file: `id = text` lines, `#` comments, blank lines.
/// Returns the map and (line, problem) pairs.
pub fn parse_messages(text: &str) -> (BTreeMap<String, String>, Vec<(u32, String)>) {
    let mut map = BTreeMap::new();
    let mut problems = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        let n = u32::try_from(i + 1).unwrap_or(u32::MAX);
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        match line.split_once('=') {
            Some((id, msg)) => {
                let id = id.trim().to_string();
                if map.insert(id.clone(), msg.trim().to_string()).is_some() {
                    problems.push((n, format!("message id `{id}` appears twice; keep one")));
                }
            }
            None => problems.push((
                n,
                "not an `id = text` line (or a `#` comment); add the `=`".to_string(),
            )),
        }
    }
    (map, problems)
}

fn load_messages(
    files: &ToolkitFiles,
    out: &mut BTreeMap<String, BTreeMap<String, String>>,
    notes: &mut Vec<Diagnostic>,
) {
    let Some(list) = list_folder(files, Path::new("messages"), "messages/", notes) else {
        return;
    };
    for l in list {
        let name = &l.name;
        let shown = format!("messages/{name}");
        let Some(locale) = name.strip_suffix(".txt").filter(|_| !l.is_dir()) else {
            notes.push(Diagnostic::warning(
                "stray-file",
                shown,
                None,
                "messages/ holds <locale>.txt files (e.g. en-us.txt); this entry is ignored",
            ));
            continue;
        };
        let Some(text) = read_text(files, &l, &shown, notes) else {
            continue;
        };
        let (map, problems) = parse_messages(&text);
        for (line, problem) in problems {
            notes.push(
                Diagnostic::error("message-syntax", &shown, None, problem).at_line(Some(line)),
            );
        }
        out.insert(locale.to_string(), map);
    }
    if out.is_empty() {
        notes.push(Diagnostic::error(
            "messages-default-locale",
            "messages/",
            Some("/defaultLocale".into()),
            "messages/ exists but holds no <locale>.txt file; add one for the default locale \
             (e.g. messages/en-us.txt with `id = text` lines) or remove messages/",
        ));
    }
}
