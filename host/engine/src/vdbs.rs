//! VDBs (virtual databases): the record of a writable copy of a dSource's
//! snapshot, brought up by the toolkit's virtual hooks on an environment;
//! and the `source` object those hooks see. The operations are in
//! [`super::provision`].
//!
//! dSources and VDBs share one name space: a name is one or the other,
//! which gives each its own lock file and storage directory
//! (`<state>/storage/<name>/data` is a VDB's data, its own snapshots beside
//! it, as for a dSource).

use rusqlite::{OptionalExtension, Row, params};
use serde::Serialize;
use serde_json::{Value, json};

use super::deadlines::HookTimeouts;
use super::error::{EngineError, Result};
use super::state::State;

/// Where a VDB is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum VdbState {
    /// Cloned; configure has not succeeded yet (provisioning or refreshing
    /// now, or interrupted there: `vdb rm` removes it).
    Configuring,
    /// Configured and started.
    Running,
    /// Configured and stopped (`vdb stop`, or start failed).
    Stopped,
}

impl VdbState {
    /// `configuring`, `running` or `stopped`.
    pub fn as_str(self) -> &'static str {
        match self {
            VdbState::Configuring => "configuring",
            VdbState::Running => "running",
            VdbState::Stopped => "stopped",
        }
    }
    fn parse(s: &str) -> VdbState {
        match s {
            "running" => VdbState::Running,
            "stopped" => VdbState::Stopped,
            _ => VdbState::Configuring,
        }
    }
}

/// A virtual database.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Vdb {
    /// Its name.
    pub name: String,
    /// A unique id, kept across refreshes.
    pub guid: String,
    /// The dSource it was provisioned from.
    pub dsource: String,
    /// The dSource's snapshot its data was cloned from.
    pub snapshot: u64,
    /// The toolkit whose virtual hooks it runs.
    pub toolkit: String,
    /// That toolkit's version.
    pub toolkit_version: String,
    /// The environment it runs on.
    pub environment: String,
    /// The user its hooks run as.
    pub environment_user: String,
    /// Provisioning parameters (the toolkit's virtualSourceDefinition).
    pub parameters: Value,
    /// The source config configure returned.
    pub config: Value,
    /// Its data: the clone, `source.dataDirectory` of its hooks.
    pub data_directory: String,
    /// Whether it is running, stopped, ...
    pub state: VdbState,
    /// The id its next snapshot gets.
    pub next_snapshot: u64,
    /// What its last status hook returned.
    pub last_status: Option<String>,
    /// When that was, in milliseconds since the Unix epoch.
    pub last_status_ms: Option<i64>,
    /// When it was provisioned (ms since the Unix epoch).
    pub created_ms: i64,
    /// When it was last refreshed (ms since the Unix epoch).
    pub refreshed_ms: Option<i64>,
    /// Its own hook deadlines.
    #[serde(rename = "timeoutsMs")]
    pub timeouts: HookTimeouts,
}

impl Vdb {
    /// The `source` global of the VDB's virtual hooks.
    pub fn source_global(&self) -> Value {
        json!({
            "environment": self.environment,
            "environmentUser": self.environment_user,
            "host": self.environment,
            "dataDirectory": self.data_directory,
            "guid": self.guid,
            "name": self.name,
        })
    }
}

const COLUMNS: &str = "name, guid, dsource, snapshot, toolkit, toolkit_version, environment, \
    environment_user, parameters, config, data_directory, state, next_snapshot, last_status, \
    last_status_ms, created_ms, refreshed_ms, timeouts";

fn parse_json(s: String) -> Value {
    serde_json::from_str(&s).unwrap_or(Value::Null)
}

fn from_row(r: &Row<'_>) -> rusqlite::Result<Vdb> {
    let snapshot: i64 = r.get(3)?;
    let state: String = r.get(11)?;
    let next: i64 = r.get(12)?;
    Ok(Vdb {
        name: r.get(0)?,
        guid: r.get(1)?,
        dsource: r.get(2)?,
        snapshot: snapshot as u64,
        toolkit: r.get(4)?,
        toolkit_version: r.get(5)?,
        environment: r.get(6)?,
        environment_user: r.get(7)?,
        parameters: parse_json(r.get(8)?),
        config: parse_json(r.get(9)?),
        data_directory: r.get(10)?,
        state: VdbState::parse(&state),
        next_snapshot: next as u64,
        last_status: r.get(13)?,
        last_status_ms: r.get(14)?,
        created_ms: r.get(15)?,
        refreshed_ms: r.get(16)?,
        timeouts: HookTimeouts::from_json(&parse_json(r.get(17)?)),
    })
}

/// Record a new VDB (the name must be free).
pub fn insert(state: &State, v: &Vdb) -> Result<()> {
    state
        .conn()
        .execute(
            &format!(
                "INSERT INTO vdbs ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18)"
            ),
            params![
                v.name,
                v.guid,
                v.dsource,
                v.snapshot as i64,
                v.toolkit,
                v.toolkit_version,
                v.environment,
                v.environment_user,
                v.parameters.to_string(),
                v.config.to_string(),
                v.data_directory,
                v.state.as_str(),
                v.next_snapshot as i64,
                v.last_status,
                v.last_status_ms,
                v.created_ms,
                v.refreshed_ms,
                v.timeouts.to_json().to_string(),
            ],
        )
        .map_err(EngineError::db(format!("recording VDB `{}`", v.name)))?;
    Ok(())
}

/// A VDB, if it exists.
pub fn get_opt(state: &State, name: &str) -> Result<Option<Vdb>> {
    state
        .conn()
        .query_row(
            &format!("SELECT {COLUMNS} FROM vdbs WHERE name = ?1"),
            [name],
            from_row,
        )
        .optional()
        .map_err(EngineError::db("reading a VDB"))
}

/// A VDB; an error naming the fix when it does not exist.
pub fn get(state: &State, name: &str) -> Result<Vdb> {
    get_opt(state, name)?.ok_or_else(|| {
        EngineError::NotFound(format!(
            "there is no VDB `{name}`; `lunabox vdb list` lists them, `lunabox provision {name} --from DSOURCE ...` makes one"
        ))
    })
}

/// All VDBs, by name.
pub fn list(state: &State) -> Result<Vec<Vdb>> {
    let mut st = state
        .conn()
        .prepare(&format!("SELECT {COLUMNS} FROM vdbs ORDER BY name"))
        .map_err(EngineError::db("listing VDBs"))?;
    st.query_map([], from_row)
        .map_err(EngineError::db("listing VDBs"))?
        .collect::<rusqlite::Result<Vec<_>>>()
        .map_err(EngineError::db("listing VDBs"))
}

/// The VDBs provisioned from snapshot `id` of `dsource` (by name).
pub fn of_snapshot(state: &State, dsource: &str, id: u64) -> Result<Vec<String>> {
    let mut st = state
        .conn()
        .prepare("SELECT name FROM vdbs WHERE dsource = ?1 AND snapshot = ?2 ORDER BY name")
        .map_err(EngineError::db("finding the VDBs of a snapshot"))?;
    st.query_map(params![dsource, id as i64], |r| r.get(0))
        .map_err(EngineError::db("finding the VDBs of a snapshot"))?
        .collect::<rusqlite::Result<Vec<_>>>()
        .map_err(EngineError::db("finding the VDBs of a snapshot"))
}

fn update(state: &State, what: &str, sql: &str, p: impl rusqlite::Params) -> Result<()> {
    state
        .conn()
        .execute(sql, p)
        .map_err(EngineError::db(what.to_string()))?;
    Ok(())
}

/// Record where the VDB is in its life.
pub fn set_state(state: &State, name: &str, s: VdbState) -> Result<()> {
    update(
        state,
        "recording a VDB's state",
        "UPDATE vdbs SET state = ?2 WHERE name = ?1",
        params![name, s.as_str()],
    )
}

/// Record the source config configure returned.
pub fn set_config(state: &State, name: &str, config: &Value) -> Result<()> {
    update(
        state,
        "recording a VDB's source config",
        "UPDATE vdbs SET config = ?2 WHERE name = ?1",
        params![name, config.to_string()],
    )
}

/// Record the snapshot a refresh cloned.
pub fn set_snapshot(state: &State, name: &str, snapshot: u64, ms: i64) -> Result<()> {
    update(
        state,
        "recording a VDB's snapshot",
        "UPDATE vdbs SET snapshot = ?2, refreshed_ms = ?3 WHERE name = ?1",
        params![name, snapshot as i64, ms],
    )
}

/// Record the latest status.
pub fn set_status(state: &State, name: &str, status: &str, ms: i64) -> Result<()> {
    update(
        state,
        "recording a VDB's status",
        "UPDATE vdbs SET last_status = ?2, last_status_ms = ?3 WHERE name = ?1",
        params![name, status, ms],
    )
}

/// Forget a VDB (after its storage is gone) with its snapshot rows.
pub fn delete(state: &mut State, name: &str) -> Result<()> {
    state.write("removing a VDB", |tx| {
        tx.execute("DELETE FROM snapshots WHERE dsource = ?1", [name])
            .map_err(EngineError::db("removing a VDB's snapshots"))?;
        tx.execute("DELETE FROM vdbs WHERE name = ?1", [name])
            .map_err(EngineError::db("removing a VDB"))?;
        Ok(())
    })
}

/// Whether `name` is taken by a dSource or a VDB (one name space).
pub fn name_taken(state: &State, name: &str) -> Result<Option<&'static str>> {
    if super::dsources::get_opt(state, name)?.is_some() {
        return Ok(Some("dSource"));
    }
    if get_opt(state, name)?.is_some() {
        return Ok(Some("VDB"));
    }
    Ok(None)
}
