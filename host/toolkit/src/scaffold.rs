//! `lunabox init`: scaffold a new toolkit directory that passes `validate`
//! with no warnings. The toolkit manages a plain directory of data files
//! (its source config's `path`), so every hook does something real:
//! discovery finds bash and the directories under `~/<name>-data/`, a
//! staged resync copies the data into `source.dataDirectory` with RunBash,
//! a direct preSnapshot calls RunSync, postSnapshot returns metadata
//! through an `outputSchema`, status reports ACTIVE/INACTIVE, and the
//! virtual hooks bring a copy up and down.

use std::fs;
use std::path::{Path, PathBuf};

use super::model::LinkedKind;
use super::validate::name_problem;

/// Why scaffolding failed.
#[derive(Debug, thiserror::Error)]
pub enum ScaffoldError {
    #[error("`{name}` cannot be a toolkit name: {problem}; pick another (e.g. `my-db`)")]
    /// The name is not a valid toolkit name.
    BadName {
        /// The name given.
        name: String,
        /// What is wrong with it.
        problem: String,
    },
    #[error("{0} already exists; remove it or pick another --dir / NAME")]
    /// The directory to create already exists.
    Exists(PathBuf),
    #[error("cannot write {path}: {source}; check the directory's permissions")]
    /// A folder or file could not be written.
    Io {
        /// The folder or file.
        path: PathBuf,
        #[source]
        /// The OS error.
        source: std::io::Error,
    },
}

/// "my-db_tool" -> "My Db Tool".
fn pretty(name: &str) -> String {
    name.split(['-', '_', ':'])
        .filter(|w| !w.is_empty())
        .map(|w| {
            let mut c = w.chars();
            c.next()
                .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                .unwrap_or_default()
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The files of a new toolkit: (path relative to the toolkit dir, text).
pub fn files(name: &str, kind: LinkedKind) -> Result<Vec<(String, String)>, ScaffoldError> {
    if let Some(problem) = name_problem(name) {
        return Err(ScaffoldError::BadName {
            name: name.into(),
            problem,
        });
    }
    let fill = |t: &str| {
        t.replace("{{markRunning}}", V_MARK_RUNNING)
            .replace("{{markStopped}}", V_MARK_STOPPED)
            .replace("{{name}}", name)
            .replace("{{prettyName}}", &pretty(name))
            .replace("{{linkedType}}", kind.type_name())
            .replace(
                "{{linkedParameters}}",
                match kind {
                    LinkedKind::Staged => STAGED_PARAMETERS,
                    LinkedKind::Direct => DIRECT_PARAMETERS,
                },
            )
    };
    let mut out: Vec<(String, String)> = vec![
        ("main.json".into(), fill(MAIN_JSON)),
        (
            "discovery/repositoryDiscovery.lua".into(),
            fill(REPOSITORY_DISCOVERY),
        ),
        (
            "discovery/sourceConfigDiscovery.lua".into(),
            fill(SOURCE_CONFIG_DISCOVERY),
        ),
        (
            "resources/find_repositories.sh".into(),
            fill(FIND_REPOSITORIES_SH),
        ),
        (
            "resources/find_source_configs.sh".into(),
            fill(FIND_SOURCE_CONFIGS_SH),
        ),
        ("resources/snapshot_info.sh".into(), fill(SNAPSHOT_INFO_SH)),
        ("virtual/configure.lua".into(), fill(V_CONFIGURE)),
        ("virtual/reconfigure.lua".into(), fill(V_RECONFIGURE)),
        ("virtual/unconfigure.lua".into(), fill(V_UNCONFIGURE)),
        ("virtual/start.lua".into(), fill(V_START)),
        ("virtual/stop.lua".into(), fill(V_STOP)),
        ("virtual/preSnapshot.lua".into(), fill(V_PRE_SNAPSHOT)),
        ("virtual/postSnapshot.lua".into(), fill(V_POST_SNAPSHOT)),
        ("virtual/status.lua".into(), fill(V_STATUS)),
        ("messages/en-us.txt".into(), fill(MESSAGES)),
        ("README.md".into(), fill(README)),
    ];
    match kind {
        LinkedKind::Staged => out.extend([
            ("resources/copy_data.sh".into(), fill(COPY_DATA_SH)),
            ("staged/resync.lua".into(), fill(S_RESYNC)),
            ("staged/preSnapshot.lua".into(), fill(S_PRE_SNAPSHOT)),
            ("staged/postSnapshot.lua".into(), fill(S_POST_SNAPSHOT)),
            ("staged/startStaging.lua".into(), fill(S_START_STAGING)),
            ("staged/stopStaging.lua".into(), fill(S_STOP_STAGING)),
            ("staged/status.lua".into(), fill(S_STATUS)),
            ("staged/worker.lua".into(), fill(S_WORKER)),
        ]),
        LinkedKind::Direct => out.extend([
            ("direct/preSnapshot.lua".into(), fill(D_PRE_SNAPSHOT)),
            ("direct/postSnapshot.lua".into(), fill(D_POST_SNAPSHOT)),
        ]),
    }
    Ok(out)
}

/// Create toolkit `name` in `parent/name`; returns its path.
pub fn create(parent: &Path, name: &str, kind: LinkedKind) -> Result<PathBuf, ScaffoldError> {
    let files = files(name, kind)?;
    let root = parent.join(name);
    if root.exists() {
        return Err(ScaffoldError::Exists(root));
    }
    for (rel, text) in files {
        let path = root.join(&rel);
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir).map_err(|e| ScaffoldError::Io {
                path: dir.into(),
                source: e,
            })?;
        }
        fs::write(&path, text).map_err(|e| ScaffoldError::Io { path, source: e })?;
    }
    Ok(root)
}

const MAIN_JSON: &str = r#"{
  "type": "Toolkit",
  "name": "{{name}}",
  "prettyName": "{{prettyName}}",
  "version": "1.0.0",
  "hostTypes": ["UNIX"],
  "defaultLocale": "en-us",
  "buildApi": "1.7.0",
  "linkedSourceDefinition": {
    "type": "{{linkedType}}",
    "parameters": {{linkedParameters}}
  },
  "virtualSourceDefinition": {
    "type": "ToolkitVirtualSource",
    "parameters": {
      "type": "object",
      "additionalProperties": false,
      "properties": {
        "name": {
          "type": "string",
          "prettyName": "Name",
          "description": "The name of the virtual copy.",
          "default": "virtual-copy"
        }
      }
    }
  },
  "snapshotSchema": {
    "type": "object",
    "properties": {
      "takenAt": {
        "type": "string",
        "prettyName": "Taken At",
        "description": "When the data was captured (UTC, ISO 8601)."
      },
      "files": {
        "type": "integer",
        "prettyName": "Files",
        "description": "How many files the snapshot holds."
      }
    }
  },
  "discoveryDefinition": {
    "type": "ToolkitDiscoveryDefinition",
    "repositorySchema": {
      "type": "object",
      "required": ["installPath"],
      "properties": {
        "installPath": {
          "type": "string",
          "prettyName": "Install Path",
          "description": "The program that manages the data (here: bash)."
        },
        "version": {
          "type": "string",
          "prettyName": "Version"
        }
      }
    },
    "repositoryIdentityFields": ["installPath"],
    "repositoryNameField": "installPath",
    "sourceConfigSchema": {
      "type": "object",
      "required": ["path", "name"],
      "properties": {
        "path": {
          "type": "string",
          "prettyName": "Path",
          "description": "The directory holding the data files."
        },
        "name": {
          "type": "string",
          "prettyName": "Name"
        }
      }
    },
    "sourceConfigIdentityFields": ["path"],
    "sourceConfigNameField": "name"
  }
}
"#;

const STAGED_PARAMETERS: &str = r#"{
      "type": "object",
      "additionalProperties": false,
      "properties": {
        "includeHidden": {
          "type": "boolean",
          "prettyName": "Include Hidden Files",
          "description": "Copy files whose names start with a dot too.",
          "default": true
        }
      }
    }"#;

const DIRECT_PARAMETERS: &str = r#"{
      "type": "object",
      "additionalProperties": false,
      "properties": {
        "excludePaths": {
          "type": "array",
          "items": {"type": "string"},
          "prettyName": "Exclude Paths",
          "description": "Paths, relative to the source directory, not to copy.",
          "default": []
        }
      }
    }"#;

const REPOSITORY_DISCOVERY: &str = r#"-- Find the repositories (installations) on the environment: here, bash.
local repositories = RunBash {
  command = resources["find_repositories.sh"],
  environment = remote.environment,
  user = remote.environmentUser,
  host = remote.host,
  outputSchema = { type = "array", items = { type = "object" } },
}
return repositories
"#;

const SOURCE_CONFIG_DISCOVERY: &str = r#"-- Find the source configs of a repository: the directories under ~/{{name}}-data/.
local configs = RunBash {
  command = resources["find_source_configs.sh"],
  environment = remote.environment,
  user = remote.environmentUser,
  host = remote.host,
  variables = { INSTALL_PATH = repository.installPath },
  outputSchema = { type = "array", items = { type = "object" } },
}
return configs
"#;

const FIND_REPOSITORIES_SH: &str = r#"# Write the repositories found on this host, as a JSON array, to $DLPX_OUTPUT_FILE.
path=$(command -v bash)
printf '[{"installPath": "%s", "version": "%s"}]\n' "$path" "${BASH_VERSION}" > "$DLPX_OUTPUT_FILE"
"#;

const FIND_SOURCE_CONFIGS_SH: &str = r#"# Write the source configs (directories under ~/{{name}}-data/) as a JSON array to $DLPX_OUTPUT_FILE.
root="$HOME/{{name}}-data"
printf '[' > "$DLPX_OUTPUT_FILE"
sep=""
if [ -d "$root" ]; then
  for dir in "$root"/*/; do
    [ -d "$dir" ] || continue
    dir=${dir%/}
    printf '%s{"path": "%s", "name": "%s"}' "$sep" "$dir" "$(basename "$dir")" >> "$DLPX_OUTPUT_FILE"
    sep=","
  done
fi
printf ']\n' >> "$DLPX_OUTPUT_FILE"
"#;

const SNAPSHOT_INFO_SH: &str = r#"# Write the snapshot metadata (snapshotSchema) for the data in $DATA_DIR to $DLPX_OUTPUT_FILE.
files=$(find "$DATA_DIR" -type f 2>/dev/null | wc -l)
printf '{"takenAt": "%s", "files": %d}\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$files" > "$DLPX_OUTPUT_FILE"
"#;

const COPY_DATA_SH: &str = r#"# Copy the source's data files ($SOURCE_PATH) into the staging storage ($DATA_DIR).
# MODE=full replaces everything (resync); MODE=incremental copies what changed.
set -euo pipefail
[ -d "$SOURCE_PATH" ] || { echo "source directory $SOURCE_PATH does not exist" >&2; exit 1; }
mkdir -p "$DATA_DIR"
if [ "$MODE" = full ]; then
  find "$DATA_DIR" -mindepth 1 -maxdepth 1 -exec rm -rf {} +
fi
if [ "$INCLUDE_HIDDEN" = true ]; then
  cp -a "$SOURCE_PATH/." "$DATA_DIR/"
else
  for f in "$SOURCE_PATH"/*; do [ -e "$f" ] && cp -a "$f" "$DATA_DIR/"; done
fi
echo "copied $SOURCE_PATH into $DATA_DIR ($MODE)"
"#;

const S_RESYNC: &str = r#"-- Resync: refresh ALL data on the staging storage (source.dataDirectory).
-- The copy runs on the staging host and reads the source directory
-- (config.path), so here the primary and staging host are the same machine.
RunBash {
  command = resources["copy_data.sh"],
  environment = source.stagingEnvironment,
  user = source.stagingEnvironmentUser,
  host = source.stagingHost,
  variables = {
    SOURCE_PATH = config.path,
    DATA_DIR = source.dataDirectory,
    MODE = "full",
    INCLUDE_HIDDEN = parameters.includeHidden,
  },
}
"#;

const S_PRE_SNAPSHOT: &str = r#"-- Before each snapshot: copy in what changed since the last sync.
RunBash {
  command = resources["copy_data.sh"],
  environment = source.stagingEnvironment,
  user = source.stagingEnvironmentUser,
  host = source.stagingHost,
  variables = {
    SOURCE_PATH = config.path,
    DATA_DIR = source.dataDirectory,
    MODE = "incremental",
    INCLUDE_HIDDEN = parameters.includeHidden,
  },
}
"#;

const S_POST_SNAPSHOT: &str = r#"-- After each snapshot (always runs): return the snapshot metadata (snapshotSchema).
local info = RunBash {
  command = resources["snapshot_info.sh"],
  environment = source.stagingEnvironment,
  user = source.stagingEnvironmentUser,
  host = source.stagingHost,
  variables = { DATA_DIR = source.dataDirectory },
  outputSchema = {
    type = "object",
    properties = { takenAt = { type = "string" }, files = { type = "integer" } },
  },
}
return info
"#;

const S_START_STAGING: &str = r#"-- Enable: mark the staging copy as in use.
RunBash {
  command = "mkdir -p \"$DATA_DIR\" && date -u > \"$DATA_DIR/.{{name}}-staging-enabled\"",
  environment = source.stagingEnvironment,
  user = source.stagingEnvironmentUser,
  host = source.stagingHost,
  variables = { DATA_DIR = source.dataDirectory },
}
"#;

const S_STOP_STAGING: &str = r#"-- Disable: mark the staging copy as not in use (the storage may be unmounted afterwards).
RunBash {
  command = "rm -f \"$DATA_DIR/.{{name}}-staging-enabled\"",
  environment = source.stagingEnvironment,
  user = source.stagingEnvironmentUser,
  host = source.stagingHost,
  variables = { DATA_DIR = source.dataDirectory },
}
"#;

const S_STATUS: &str = r#"-- Status (runs periodically, maybe while other hooks run): ACTIVE when the
-- source directory is there; must not assume the storage is mounted.
local status = RunBash {
  command = "if [ -d \"$SOURCE_PATH\" ]; then echo '\"ACTIVE\"'; else echo '\"INACTIVE\"'; fi > \"$DLPX_OUTPUT_FILE\"",
  environment = source.environment,
  user = source.environmentUser,
  host = source.host,
  variables = { SOURCE_PATH = config.path },
  outputSchema = { type = "string", enum = { "ACTIVE", "INACTIVE", "UNKNOWN" } },
}
return status
"#;

const S_WORKER: &str = r#"-- Worker (every 10 seconds while enabled): report a missing source directory in the log.
local ok, err = pcall(RunBash, {
  command = "test -d \"$SOURCE_PATH\"",
  environment = source.environment,
  user = source.environmentUser,
  host = source.host,
  variables = { SOURCE_PATH = config.path },
})
if not ok then
  print("worker: the source directory " .. config.path .. " is missing (" .. tostring(err) .. ")")
end
"#;

const D_PRE_SNAPSHOT: &str = r#"-- Before each snapshot: copy the source directory (config.path) into the
-- engine's storage with RunSync (rsync semantics).
RunSync {
  environment = source.environment,
  user = source.environmentUser,
  host = source.host,
  sourceDirectory = config.path,
  excludePaths = parameters.excludePaths,
  followSymlinkPaths = {},
}
"#;

const D_POST_SNAPSHOT: &str = r#"-- After each snapshot (always runs): return the snapshot metadata (snapshotSchema).
local info = RunBash {
  command = resources["snapshot_info.sh"],
  environment = source.environment,
  user = source.environmentUser,
  host = source.host,
  variables = { DATA_DIR = source.dataDirectory },
  outputSchema = {
    type = "object",
    properties = { takenAt = { type = "string" }, files = { type = "integer" } },
  },
}
return info
"#;

/// The call that marks a virtual copy as running; `{{markRunning}}` in the
/// virtual hooks (configure, reconfigure, start).
const V_MARK_RUNNING: &str = r#"RunBash {
  command = "date -u > \"$DATA_DIR/.$NAME.running\"",
  environment = source.environment,
  user = source.environmentUser,
  host = source.host,
  variables = { DATA_DIR = source.dataDirectory, NAME = parameters.name },
}"#;

/// The call that marks a virtual copy as down; `{{markStopped}}` in the
/// virtual hooks (unconfigure, stop).
const V_MARK_STOPPED: &str = r#"RunBash {
  command = "rm -f \"$DATA_DIR/.$NAME.running\"",
  environment = source.environment,
  user = source.environmentUser,
  host = source.host,
  variables = { DATA_DIR = source.dataDirectory, NAME = parameters.name },
}"#;

const V_CONFIGURE: &str = r#"-- Provision: the snapshot's files are mounted at source.dataDirectory; mark the
-- virtual copy as running and return its source config.
{{markRunning}}
return { path = source.dataDirectory, name = parameters.name }
"#;

const V_RECONFIGURE: &str = r#"-- Bring the virtual copy back after unconfigure; return its source config.
{{markRunning}}
return { path = source.dataDirectory, name = parameters.name }
"#;

const V_UNCONFIGURE: &str = r#"-- Take the virtual copy down for good.
{{markStopped}}
"#;

const V_START: &str = r#"-- Start the virtual copy.
{{markRunning}}
"#;

const V_STOP: &str = r#"-- Stop the virtual copy.
{{markStopped}}
"#;

const V_PRE_SNAPSHOT: &str = r#"-- Before snapshotting the virtual copy: flush file system buffers.
RunBash {
  command = "sync",
  environment = source.environment,
  user = source.environmentUser,
  host = source.host,
}
"#;

const V_POST_SNAPSHOT: &str = r#"-- After snapshotting the virtual copy: return the snapshot metadata.
local info = RunBash {
  command = resources["snapshot_info.sh"],
  environment = source.environment,
  user = source.environmentUser,
  host = source.host,
  variables = { DATA_DIR = source.dataDirectory },
  outputSchema = { type = "object" },
}
return info
"#;

const V_STATUS: &str = r#"-- Status of the virtual copy: ACTIVE while it runs.
local status = RunBash {
  command = "if [ -f \"$DATA_DIR/.$NAME.running\" ]; then echo '\"ACTIVE\"'; else echo '\"INACTIVE\"'; fi > \"$DLPX_OUTPUT_FILE\"",
  environment = source.environment,
  user = source.environmentUser,
  host = source.host,
  variables = { DATA_DIR = source.dataDirectory, NAME = parameters.name },
  outputSchema = { type = "string" },
}
return status
"#;

const MESSAGES: &str = r#"# Messages of {{prettyName}}: "id = text" lines.
sourceMissing = The source directory is missing.
copyFailed = Copying the data files failed.
"#;

const README: &str = r#"# {{prettyName}}

A toolkit made by `lunabox init`. It manages a directory of data files (the
source config's `path`). Check it with `lunabox validate .`, run one hook with
e.g. `lunabox run-hook . discovery/repositoryDiscovery --context ctx.json`,
and build it with `lunabox build . -o {{name}}.json`.
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(pretty("my-db_tool"), "My Db Tool");
        assert!(matches!(
            files("Bad Name", LinkedKind::Staged),
            Err(ScaffoldError::BadName { .. })
        ));
        assert!(matches!(
            files("builtin:x", LinkedKind::Direct),
            Err(ScaffoldError::BadName { .. })
        ));
    }
}
