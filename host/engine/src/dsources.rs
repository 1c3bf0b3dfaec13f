//! dSources: the record of a linked data source (toolkit version,
//! environments, config, repository, parameters, storage, enabled state,
//! policy), and the `source` object its hooks see.

use rusqlite::{OptionalExtension, Row, params};
use serde::Serialize;
use serde_json::{Value, json};

use super::error::{EngineError, Result};
use super::state::{State, now_ms};

/// How the toolkit gets data into the dSource's storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceKind {
    /// `ToolkitLinkedStagedSource`: hooks fill the storage on the staging host.
    Staged,
    /// `ToolkitLinkedDirectSource`: preSnapshot calls `RunSync`.
    Direct,
}

impl SourceKind {
    /// `staged` or `direct`.
    pub fn as_str(self) -> &'static str {
        match self {
            SourceKind::Staged => "staged",
            SourceKind::Direct => "direct",
        }
    }
    fn parse(s: &str) -> SourceKind {
        if s == "direct" {
            SourceKind::Direct
        } else {
            SourceKind::Staged
        }
    }
}

/// A linked data source.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DSource {
    /// The dSource's name (unique; also the name of its storage and lock file).
    pub name: String,
    /// A random uuid-like id, set when linked (`source.guid`).
    pub guid: String,
    /// The name of the toolkit it was linked with.
    pub toolkit: String,
    /// The installed version of that toolkit it runs.
    pub toolkit_version: String,
    /// Staged or direct (from the toolkit's `linkedSourceDefinition.type`).
    pub kind: SourceKind,
    /// The source environment's name (`source.environment` and `source.host`).
    pub environment: String,
    /// The user on the source environment (`source.environmentUser`).
    pub environment_user: String,
    /// The staging environment's name (the source environment when none was
    /// given).
    pub staging_environment: String,
    /// The user on the staging environment.
    pub staging_user: String,
    /// The source config (`config`), valid against the toolkit's
    /// sourceConfigDefinition.
    pub config: Value,
    /// The repository (`repository`), valid against the toolkit's
    /// repositoryDefinition.
    pub repository: Value,
    /// The linking parameters, with defaults applied (`parameters`).
    pub parameters: Value,
    /// The path hooks see as `source.dataDirectory`.
    pub data_directory: String,
    /// Where a mountSpec hook asked the storage to appear (a symlink to it).
    pub mount_path: Option<String>,
    /// Whether it is enabled; the daemon leaves a disabled dSource alone.
    pub enabled: bool,
    /// The next SnapSync must run resync first (initial, or a failed resync).
    pub needs_resync: bool,
    /// The id the next snapshot will get.
    pub next_snapshot: u64,
    /// Scheduled SnapSync interval for the daemon.
    pub sync_every_ms: Option<i64>,
    /// Keep at most this many snapshots.
    pub keep: Option<u32>,
    /// When the latest SnapSync started, in milliseconds since the Unix epoch.
    pub last_sync_ms: Option<i64>,
    /// The latest status recorded (`ACTIVE`, `INACTIVE` or `UNKNOWN`).
    pub last_status: Option<String>,
    /// When `last_status` was recorded, in milliseconds since the Unix epoch.
    pub last_status_ms: Option<i64>,
    /// When it was linked, in milliseconds since the Unix epoch.
    pub created_ms: i64,
    /// Deadlines set for this dSource's hooks (`policy --timeout`), in
    /// milliseconds by hook.
    #[serde(rename = "timeoutsMs")]
    pub timeouts: super::deadlines::HookTimeouts,
}

impl DSource {
    /// The `source` global of this dSource's hooks (spec section 4).
    pub fn source_global(&self) -> Value {
        let mut s = json!({
            "environment": self.environment,
            "environmentUser": self.environment_user,
            "host": self.environment,
            "dataDirectory": self.data_directory,
            "guid": self.guid,
        });
        if self.kind == SourceKind::Staged {
            s["stagingEnvironment"] = json!(self.staging_environment);
            s["stagingEnvironmentUser"] = json!(self.staging_user);
            s["stagingHost"] = json!(self.staging_environment);
        }
        s
    }
}

/// A new uuid-like id (random, version 4 layout).
pub fn new_guid() -> String {
    let mut b: [u8; 16] = rand::random();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

const COLUMNS: &str = "name, guid, toolkit, toolkit_version, kind, environment, environment_user, \
    staging_environment, staging_user, config, repository, parameters, data_directory, mount_path, \
    enabled, needs_resync, next_snapshot, sync_every_ms, keep, last_sync_ms, last_status, last_status_ms, created_ms, timeouts";

fn parse_json(s: String) -> Value {
    serde_json::from_str(&s).unwrap_or(Value::Null)
}

fn from_row(r: &Row<'_>) -> rusqlite::Result<DSource> {
    let kind: String = r.get(4)?;
    let next: i64 = r.get(16)?;
    let keep: Option<i64> = r.get(18)?;
    Ok(DSource {
        name: r.get(0)?,
        guid: r.get(1)?,
        toolkit: r.get(2)?,
        toolkit_version: r.get(3)?,
        kind: SourceKind::parse(&kind),
        environment: r.get(5)?,
        environment_user: r.get(6)?,
        staging_environment: r.get(7)?,
        staging_user: r.get(8)?,
        config: parse_json(r.get(9)?),
        repository: parse_json(r.get(10)?),
        parameters: parse_json(r.get(11)?),
        data_directory: r.get(12)?,
        mount_path: r.get(13)?,
        enabled: r.get(14)?,
        needs_resync: r.get(15)?,
        next_snapshot: next as u64,
        sync_every_ms: r.get(17)?,
        keep: keep.map(|k| k as u32),
        last_sync_ms: r.get(19)?,
        last_status: r.get(20)?,
        last_status_ms: r.get(21)?,
        created_ms: r.get(22)?,
        timeouts: super::deadlines::HookTimeouts::from_json(&parse_json(r.get(23)?)),
    })
}

/// Insert a new dSource (the name must be free).
pub fn insert(state: &State, d: &DSource) -> Result<()> {
    state
        .conn()
        .execute(
            &format!("INSERT INTO dsources ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23, ?24)"),
            params![
                d.name,
                d.guid,
                d.toolkit,
                d.toolkit_version,
                d.kind.as_str(),
                d.environment,
                d.environment_user,
                d.staging_environment,
                d.staging_user,
                d.config.to_string(),
                d.repository.to_string(),
                d.parameters.to_string(),
                d.data_directory,
                d.mount_path,
                d.enabled,
                d.needs_resync,
                d.next_snapshot as i64,
                d.sync_every_ms,
                d.keep.map(i64::from),
                d.last_sync_ms,
                d.last_status,
                d.last_status_ms,
                d.created_ms,
                d.timeouts.to_json().to_string(),
            ],
        )
        .map_err(EngineError::db(format!("creating dSource `{}`", d.name)))?;
    Ok(())
}

/// A dSource, if it exists.
pub fn get_opt(state: &State, name: &str) -> Result<Option<DSource>> {
    state
        .conn()
        .query_row(
            &format!("SELECT {COLUMNS} FROM dsources WHERE name = ?1"),
            [name],
            from_row,
        )
        .optional()
        .map_err(EngineError::db("reading a dSource"))
}

/// A dSource; an error naming the fix when it does not exist.
pub fn get(state: &State, name: &str) -> Result<DSource> {
    get_opt(state, name)?.ok_or_else(|| {
        EngineError::NotFound(format!(
            "there is no dSource `{name}`; `lunabox status` lists the linked ones, `lunabox link {name} ...` links one"
        ))
    })
}

/// All dSources, by name.
pub fn list(state: &State) -> Result<Vec<DSource>> {
    let mut st = state
        .conn()
        .prepare(&format!("SELECT {COLUMNS} FROM dsources ORDER BY name"))
        .map_err(EngineError::db("listing dSources"))?;
    st.query_map([], from_row)
        .map_err(EngineError::db("listing dSources"))?
        .collect::<rusqlite::Result<Vec<_>>>()
        .map_err(EngineError::db("listing dSources"))
}

/// dSources linked with any version of `toolkit`.
pub fn of_toolkit(state: &State, toolkit: &str) -> Result<Vec<DSource>> {
    Ok(list(state)?
        .into_iter()
        .filter(|d| d.toolkit == toolkit)
        .collect())
}

fn update(state: &State, what: &str, sql: &str, p: impl rusqlite::Params) -> Result<()> {
    state
        .conn()
        .execute(sql, p)
        .map_err(EngineError::db(what.to_string()))?;
    Ok(())
}

/// Record enabled / disabled.
pub fn set_enabled(state: &State, name: &str, enabled: bool) -> Result<()> {
    update(
        state,
        "enabling/disabling a dSource",
        "UPDATE dsources SET enabled = ?2 WHERE name = ?1",
        params![name, enabled],
    )
}

/// Record whether the next SnapSync must resync.
pub fn set_needs_resync(state: &State, name: &str, needs: bool) -> Result<()> {
    update(
        state,
        "recording the resync flag",
        "UPDATE dsources SET needs_resync = ?2 WHERE name = ?1",
        params![name, needs],
    )
}

/// Record the start time of the latest SnapSync (for the schedule).
pub fn set_last_sync(state: &State, name: &str, ms: i64) -> Result<()> {
    update(
        state,
        "recording the last SnapSync",
        "UPDATE dsources SET last_sync_ms = ?2 WHERE name = ?1",
        params![name, ms],
    )
}

/// Record the latest status.
pub fn set_status(state: &State, name: &str, status: &str) -> Result<()> {
    update(
        state,
        "recording a status",
        "UPDATE dsources SET last_status = ?2, last_status_ms = ?3 WHERE name = ?1",
        params![name, status, now_ms()],
    )
}

/// Set the schedule and retention (`None` leaves a field as it is;
/// `Some(None)` clears it).
pub fn set_policy(
    state: &State,
    name: &str,
    sync_every_ms: Option<Option<i64>>,
    keep: Option<Option<u32>>,
) -> Result<()> {
    if let Some(v) = sync_every_ms {
        update(
            state,
            "setting the schedule",
            "UPDATE dsources SET sync_every_ms = ?2 WHERE name = ?1",
            params![name, v],
        )?;
    }
    if let Some(v) = keep {
        update(
            state,
            "setting the retention",
            "UPDATE dsources SET keep = ?2 WHERE name = ?1",
            params![name, v.map(i64::from)],
        )?;
    }
    Ok(())
}

/// Replace the hook deadlines set for a dSource.
pub fn set_timeouts(state: &State, name: &str, t: &super::deadlines::HookTimeouts) -> Result<()> {
    update(
        state,
        "setting the hook deadlines",
        "UPDATE dsources SET timeouts = ?2 WHERE name = ?1",
        params![name, t.to_json().to_string()],
    )
}

/// Move a dSource to another toolkit version with new parameters (upgrade).
pub fn set_toolkit_version(
    state: &State,
    name: &str,
    version: &str,
    parameters: &Value,
) -> Result<()> {
    update(
        state,
        "upgrading a dSource",
        "UPDATE dsources SET toolkit_version = ?2, parameters = ?3 WHERE name = ?1",
        params![name, version, parameters.to_string()],
    )
}

/// Take the next snapshot id of a dSource (ids are never reused).
pub fn allocate_snapshot_id(state: &mut State, name: &str) -> Result<u64> {
    state.write("allocating a snapshot id", |tx| {
        let id: i64 = tx
            .query_row(
                "UPDATE dsources SET next_snapshot = next_snapshot + 1 WHERE name = ?1 RETURNING next_snapshot - 1",
                [name],
                |r| r.get(0),
            )
            .map_err(EngineError::db("allocating a snapshot id"))?;
        Ok(id as u64)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guid_looks_like_a_uuid() {
        let g = new_guid();
        assert_eq!(g.len(), 36);
        assert_eq!(&g[14..15], "4");
        assert_ne!(g, new_guid());
    }
}
