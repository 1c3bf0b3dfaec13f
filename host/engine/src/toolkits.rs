//! Installed toolkits: every installed version of every toolkit, stored in
//! the state database as its built JSON (so a dSource keeps working with
//! exactly the toolkit it was linked with), and version ordering.

use std::cmp::Ordering;

use rusqlite::{OptionalExtension, params};
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::error::{EngineError, Result};
use super::state::{State, now_ms};

/// One installed toolkit version.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Installed {
    /// The toolkit's name.
    pub name: String,
    /// The version.
    pub version: String,
    /// The toolkit's prettyName (its name when it has none).
    pub pretty_name: String,
    /// SHA-256 of the built JSON.
    pub sha256: String,
    /// When it was installed, in milliseconds since the Unix epoch.
    pub installed_ms: i64,
    #[serde(skip)]
    /// The built toolkit JSON (not serialized).
    pub built_json: String,
}

/// Compare toolkit versions `major.minor.patch`; numeric parts compare as
/// numbers, a non-numeric patch (`HOTFIX-1`) compares as text after the
/// numeric ones.
pub fn compare_versions(a: &str, b: &str) -> Ordering {
    let parts = |v: &str| -> Vec<(u64, String)> {
        v.split('.')
            .map(|p| match p.parse::<u64>() {
                Ok(n) => (n, String::new()),
                Err(_) => (u64::MAX, p.to_string()),
            })
            .collect()
    };
    parts(a).cmp(&parts(b))
}

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Installed> {
    Ok(Installed {
        name: r.get(0)?,
        version: r.get(1)?,
        pretty_name: r.get(2)?,
        sha256: r.get(3)?,
        installed_ms: r.get(4)?,
        built_json: r.get(5)?,
    })
}

const COLUMNS: &str = "name, version, pretty_name, sha256, installed_ms, built_json";

/// What storing a built toolkit did (a conflicting rebuild of an
/// installed version is an error instead).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreOutcome {
    /// A version not installed before.
    New,
    /// The same bytes were already installed under this version.
    Unchanged,
}

/// Store a built toolkit. Re-installing identical bytes is a no-op;
/// different content under an installed version is refused (bump the
/// version: dSources depend on what they were linked with).
pub fn store(
    state: &State,
    name: &str,
    version: &str,
    pretty_name: &str,
    built_json: &str,
) -> Result<StoreOutcome> {
    let sha = hex::encode(Sha256::digest(built_json.as_bytes()));
    if let Some(old) = get_opt(state, name, version)? {
        if old.sha256 == sha {
            return Ok(StoreOutcome::Unchanged);
        }
        return Err(EngineError::Conflict(format!(
            "toolkit `{name}` version {version} is already installed with different content; raise `version` in main.json and install again"
        )));
    }
    state
        .conn()
        .execute(
            &format!("INSERT INTO toolkits ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6)"),
            params![name, version, pretty_name, sha, now_ms(), built_json],
        )
        .map_err(EngineError::db("installing a toolkit"))?;
    Ok(StoreOutcome::New)
}

/// One installed version, if present.
pub fn get_opt(state: &State, name: &str, version: &str) -> Result<Option<Installed>> {
    state
        .conn()
        .query_row(
            &format!("SELECT {COLUMNS} FROM toolkits WHERE name = ?1 AND version = ?2"),
            params![name, version],
            row,
        )
        .optional()
        .map_err(EngineError::db("reading a toolkit"))
}

/// One installed version; an error naming the fix when absent.
pub fn get(state: &State, name: &str, version: &str) -> Result<Installed> {
    get_opt(state, name, version)?.ok_or_else(|| {
        EngineError::NotFound(format!(
            "toolkit `{name}` version {version} is not installed; `lunabox toolkit list` shows what is"
        ))
    })
}

/// Every installed version, by name then version (oldest first).
pub fn list(state: &State) -> Result<Vec<Installed>> {
    let mut st = state
        .conn()
        .prepare(&format!("SELECT {COLUMNS} FROM toolkits"))
        .map_err(EngineError::db("listing toolkits"))?;
    let mut all = st
        .query_map([], row)
        .map_err(EngineError::db("listing toolkits"))?
        .collect::<rusqlite::Result<Vec<_>>>()
        .map_err(EngineError::db("listing toolkits"))?;
    all.sort_by(|a, b| {
        a.name
            .cmp(&b.name)
            .then_with(|| compare_versions(&a.version, &b.version))
    });
    Ok(all)
}

/// The newest installed version of `name`.
pub fn latest(state: &State, name: &str) -> Result<Installed> {
    list(state)?
        .into_iter()
        .rfind(|t| t.name == name)
        .ok_or_else(|| {
            EngineError::NotFound(format!(
                "toolkit `{name}` is not installed; install it with `lunabox toolkit install DIR` (`lunabox toolkit list` shows what is installed)"
            ))
        })
}

/// Load an installed toolkit version into the model.
pub fn load_installed(inst: &Installed) -> Result<lunabox_toolkit::Toolkit> {
    let value: serde_json::Value = serde_json::from_str(&inst.built_json).map_err(|e| {
        EngineError::Toolkit(format!(
            "installed toolkit `{}` {} is damaged in the state database ({e}); install it again",
            inst.name, inst.version
        ))
    })?;
    let label = std::path::PathBuf::from(format!("<installed {} {}>", inst.name, inst.version));
    lunabox_toolkit::load::from_built_json(value, label)
        .map(|l| l.toolkit)
        .map_err(|source| EngineError::ToolkitLoad {
            toolkit: format!("{} {}", inst.name, inst.version),
            source,
        })
}

/// The toolkit version a dSource is linked with.
pub fn load_for_dsource(
    state: &State,
    ds: &super::dsources::DSource,
) -> Result<lunabox_toolkit::Toolkit> {
    load_installed(&get(state, &ds.toolkit, &ds.toolkit_version)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_order_numerically() {
        assert_eq!(compare_versions("1.10.0", "1.9.0"), Ordering::Greater);
        assert_eq!(compare_versions("1.0.0", "1.0.0"), Ordering::Equal);
        assert_eq!(compare_versions("1.0.HOTFIX-1", "1.0.3"), Ordering::Greater);
        assert_eq!(compare_versions("2.0.0", "10.0.0"), Ordering::Less);
    }

    #[test]
    fn store_is_idempotent_and_refuses_rebuilds() {
        let dir = tempfile::tempdir().unwrap();
        let s = State::open(&dir.path().join("s.db")).unwrap();
        assert_eq!(
            store(&s, "t", "1.0.0", "T", "{}").unwrap(),
            StoreOutcome::New
        );
        assert_eq!(
            store(&s, "t", "1.0.0", "T", "{}").unwrap(),
            StoreOutcome::Unchanged
        );
        assert!(
            store(&s, "t", "1.0.0", "T", "{\"x\":1}")
                .unwrap_err()
                .to_string()
                .contains("raise `version`")
        );
        store(&s, "t", "1.2.0", "T", "{}").unwrap();
        store(&s, "t", "1.10.0", "T", "{}").unwrap();
        assert_eq!(latest(&s, "t").unwrap().version, "1.10.0");
        assert!(latest(&s, "u").is_err());
    }
}
