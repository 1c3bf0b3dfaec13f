//! The snapshot catalog: the database rows of committed snapshots (id,
//! job, time, toolkit version, the postSnapshot metadata and the build
//! stats). A snapshot exists when its row exists; the files are in the
//! [`super::snapshots`] store.

use rusqlite::{OptionalExtension, Row, params};
use serde::Serialize;
use serde_json::Value;

use super::error::{EngineError, Result};
use super::state::State;

/// A committed snapshot.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SnapshotRow {
    /// The dSource the snapshot belongs to.
    pub dsource: String,
    /// The snapshot's number within its dSource (1, 2, ...; never reused).
    pub id: u64,
    /// The SnapSync job that took it (`None` when not recorded).
    pub job_id: Option<i64>,
    /// When it was committed, in milliseconds since the Unix epoch.
    pub created_ms: i64,
    /// The toolkit version the dSource ran when the snapshot was taken.
    pub toolkit_version: String,
    /// What postSnapshot returned (valid against the snapshotSchema).
    pub metadata: Value,
    /// [`super::snapshots::SnapshotStats`] as JSON.
    pub stats: Value,
}

fn from_row(r: &Row<'_>) -> rusqlite::Result<SnapshotRow> {
    let id: i64 = r.get(1)?;
    let m: String = r.get(5)?;
    let s: String = r.get(6)?;
    Ok(SnapshotRow {
        dsource: r.get(0)?,
        id: id as u64,
        job_id: r.get(2)?,
        created_ms: r.get(3)?,
        toolkit_version: r.get(4)?,
        metadata: serde_json::from_str(&m).unwrap_or(Value::Null),
        stats: serde_json::from_str(&s).unwrap_or(Value::Null),
    })
}

const COLUMNS: &str = "dsource, id, job_id, created_ms, toolkit_version, metadata, stats";

/// Record a committed snapshot.
pub fn insert(state: &State, row: &SnapshotRow) -> Result<()> {
    state
        .conn()
        .execute(
            &format!("INSERT INTO snapshots ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"),
            params![
                row.dsource,
                row.id as i64,
                row.job_id,
                row.created_ms,
                row.toolkit_version,
                row.metadata.to_string(),
                row.stats.to_string()
            ],
        )
        .map_err(EngineError::db("recording a snapshot"))?;
    Ok(())
}

/// The snapshots of a dSource, oldest first.
pub fn list(state: &State, dsource: &str) -> Result<Vec<SnapshotRow>> {
    let mut st = state
        .conn()
        .prepare(&format!(
            "SELECT {COLUMNS} FROM snapshots WHERE dsource = ?1 ORDER BY id"
        ))
        .map_err(EngineError::db("listing snapshots"))?;
    st.query_map([dsource], from_row)
        .map_err(EngineError::db("listing snapshots"))?
        .collect::<rusqlite::Result<Vec<_>>>()
        .map_err(EngineError::db("listing snapshots"))
}

/// The newest snapshot of a dSource.
pub fn latest(state: &State, dsource: &str) -> Result<Option<SnapshotRow>> {
    state
        .conn()
        .query_row(
            &format!("SELECT {COLUMNS} FROM snapshots WHERE dsource = ?1 ORDER BY id DESC LIMIT 1"),
            [dsource],
            from_row,
        )
        .optional()
        .map_err(EngineError::db("reading the latest snapshot"))
}

/// One snapshot; an error naming the fix when it does not exist.
pub fn get(state: &State, dsource: &str, id: u64) -> Result<SnapshotRow> {
    state
        .conn()
        .query_row(
            &format!("SELECT {COLUMNS} FROM snapshots WHERE dsource = ?1 AND id = ?2"),
            params![dsource, id as i64],
            from_row,
        )
        .optional()
        .map_err(EngineError::db("reading a snapshot"))?
        .ok_or_else(|| {
            EngineError::NotFound(format!(
                "dSource `{dsource}` has no snapshot {id}; `lunabox snapshots {dsource}` lists them"
            ))
        })
}

/// Forget a snapshot (its files are removed after).
pub fn delete(state: &State, dsource: &str, id: u64) -> Result<()> {
    state
        .conn()
        .execute(
            "DELETE FROM snapshots WHERE dsource = ?1 AND id = ?2",
            params![dsource, id as i64],
        )
        .map_err(EngineError::db("removing a snapshot"))?;
    Ok(())
}
