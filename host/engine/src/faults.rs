//! Faults: problems posted against a dSource (a failed hook, an interrupted
//! job) until a user resolves them.

use rusqlite::{OptionalExtension, Row, params};
use serde::Serialize;

use super::error::{EngineError, Result};
use super::state::{State, now_ms};

/// A posted fault.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Fault {
    /// The fault's id (increasing).
    pub id: i64,
    /// The dSource it was posted against, if any.
    pub dsource: Option<String>,
    /// The job that posted it, if any.
    pub job_id: Option<i64>,
    /// The hook (or step) that failed, e.g. `staged/preSnapshot`.
    pub hook: Option<String>,
    /// What went wrong.
    pub message: String,
    /// Traceback, or the failed Run call (`function`, `exitCode`, `stdout`,
    /// `stderr`), or other facts.
    pub detail: serde_json::Value,
    /// When it was posted, in milliseconds since the Unix epoch.
    pub created_ms: i64,
    /// When it was resolved, in milliseconds since the Unix epoch (`None`:
    /// still open).
    pub resolved_ms: Option<i64>,
}

/// A fault to post.
#[derive(Debug, Clone, Default)]
pub struct NewFault {
    /// The dSource to post it against.
    pub dsource: Option<String>,
    /// The job posting it.
    pub job_id: Option<i64>,
    /// The hook (or step) that failed, e.g. `staged/preSnapshot`.
    pub hook: Option<String>,
    /// What went wrong.
    pub message: String,
    /// Facts as JSON (`null` for none); `stdout` and `stderr` strings are cut
    /// to their last [`STORED_FAULT_STREAM_BYTES`].
    pub detail: serde_json::Value,
}

const COLUMNS: &str = "id, dsource, job_id, hook, message, detail, created_ms, resolved_ms";

fn from_row(r: &Row<'_>) -> rusqlite::Result<Fault> {
    let detail: Option<String> = r.get(5)?;
    Ok(Fault {
        id: r.get(0)?,
        dsource: r.get(1)?,
        job_id: r.get(2)?,
        hook: r.get(3)?,
        message: r.get(4)?,
        detail: detail
            .and_then(|d| serde_json::from_str(&d).ok())
            .unwrap_or(serde_json::Value::Null),
        created_ms: r.get(6)?,
        resolved_ms: r.get(7)?,
    })
}

/// Most bytes of a failed call's stdout (and of its stderr) a fault keeps.
pub const STORED_FAULT_STREAM_BYTES: usize = 64 << 10;

/// Post a fault (the failed call's streams cut to their last
/// [`STORED_FAULT_STREAM_BYTES`]); returns its id.
pub fn post(state: &State, f: &NewFault) -> Result<i64> {
    let mut detail = f.detail.clone();
    // A fault keeps the end of the failed call's output (where failures
    // show), bounded: faults of a periodic hook pile up.
    for key in ["stdout", "stderr"] {
        if let Some(serde_json::Value::String(s)) = detail.get_mut(key) {
            lunabox_run::keep_tail(s, STORED_FAULT_STREAM_BYTES);
        }
    }
    let detail = if detail.is_null() {
        None
    } else {
        Some(detail.to_string())
    };
    state
        .retry_when_full(|c| {
            c.execute(
                "INSERT INTO faults (dsource, job_id, hook, message, detail, created_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![f.dsource, f.job_id, f.hook, f.message, detail, now_ms()],
            )
        })
        .map_err(EngineError::db("posting a fault"))?;
    Ok(state.conn().last_insert_rowid())
}

/// Faults, newest last: of one dSource or all; open ones only unless `all`.
pub fn list(state: &State, dsource: Option<&str>, all: bool) -> Result<Vec<Fault>> {
    let sql = format!(
        "SELECT {COLUMNS} FROM faults WHERE (?1 IS NULL OR dsource = ?1) AND (?2 OR resolved_ms IS NULL) ORDER BY id"
    );
    let mut st = state
        .conn()
        .prepare(&sql)
        .map_err(EngineError::db("listing faults"))?;
    let rows = st
        .query_map(params![dsource, all], from_row)
        .map_err(EngineError::db("listing faults"))?;
    rows.collect::<rusqlite::Result<Vec<_>>>()
        .map_err(EngineError::db("listing faults"))
}

/// One fault by id.
pub fn get(state: &State, id: i64) -> Result<Fault> {
    state
        .conn()
        .query_row(
            &format!("SELECT {COLUMNS} FROM faults WHERE id = ?1"),
            [id],
            from_row,
        )
        .optional()
        .map_err(EngineError::db("reading a fault"))?
        .ok_or_else(|| {
            EngineError::NotFound(format!(
                "there is no fault {id}; `lunabox faults` lists the open ones"
            ))
        })
}

/// Mark a fault resolved (resolving twice is harmless).
pub fn resolve(state: &State, id: i64) -> Result<Fault> {
    get(state, id)?;
    state
        .conn()
        .execute(
            "UPDATE faults SET resolved_ms = ?2 WHERE id = ?1 AND resolved_ms IS NULL",
            params![id, now_ms()],
        )
        .map_err(EngineError::db("resolving a fault"))?;
    get(state, id)
}

/// Number of open faults of a dSource.
pub fn open_count(state: &State, dsource: &str) -> Result<i64> {
    state
        .conn()
        .query_row(
            "SELECT count(*) FROM faults WHERE dsource = ?1 AND resolved_ms IS NULL",
            [dsource],
            |r| r.get(0),
        )
        .map_err(EngineError::db("counting faults"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn post_list_resolve() {
        let dir = tempfile::tempdir().unwrap();
        let s = State::open(&dir.path().join("s.db")).unwrap();
        let id = post(
            &s,
            &NewFault {
                dsource: Some("db".into()),
                hook: Some("staged/resync".into()),
                message: "boom".into(),
                detail: serde_json::json!({"exitCode": 3}),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(open_count(&s, "db").unwrap(), 1);
        let f = &list(&s, Some("db"), false).unwrap()[0];
        assert_eq!(f.detail["exitCode"], 3);
        resolve(&s, id).unwrap();
        assert_eq!(open_count(&s, "db").unwrap(), 0);
        assert!(list(&s, None, false).unwrap().is_empty());
        assert_eq!(list(&s, None, true).unwrap().len(), 1);
        assert!(
            resolve(&s, 99)
                .unwrap_err()
                .to_string()
                .contains("lunabox faults")
        );
    }
}
