//! The state database: one SQLite file (`state.db`) in WAL mode with a busy
//! timeout, so a command and the daemon can use the same state at once, and
//! numbered schema migrations (`PRAGMA user_version`).
//!
//! Every write is a short transaction; writes that read before they write
//! use `BEGIN IMMEDIATE` ([`State::write`]) so two processes never deadlock
//! on a lock upgrade.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, OpenFlags, Transaction, TransactionBehavior};

use super::error::{EngineError, Result};

/// How long a statement waits for another process' write lock.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// The schema, one migration per entry; entry `i` moves `user_version`
/// from `i` to `i + 1`. Never edit an entry once released: add one.
const MIGRATIONS: &[&str] = &[
    // 1: the first schema.
    r#"
    CREATE TABLE environments (
        name        TEXT PRIMARY KEY,
        kind        TEXT NOT NULL,
        host        TEXT NOT NULL,
        user        TEXT NOT NULL,
        created_ms  INTEGER NOT NULL
    );
    CREATE TABLE toolkits (
        name         TEXT NOT NULL,
        version      TEXT NOT NULL,
        pretty_name  TEXT NOT NULL,
        built_json   TEXT NOT NULL,
        sha256       TEXT NOT NULL,
        installed_ms INTEGER NOT NULL,
        PRIMARY KEY (name, version)
    );
    CREATE TABLE dsources (
        name                TEXT PRIMARY KEY,
        guid                TEXT NOT NULL UNIQUE,
        toolkit             TEXT NOT NULL,
        toolkit_version     TEXT NOT NULL,
        kind                TEXT NOT NULL,
        environment         TEXT NOT NULL REFERENCES environments(name),
        environment_user    TEXT NOT NULL,
        staging_environment TEXT NOT NULL REFERENCES environments(name),
        staging_user        TEXT NOT NULL,
        config              TEXT NOT NULL,
        repository          TEXT NOT NULL,
        parameters          TEXT NOT NULL,
        data_directory      TEXT NOT NULL,
        mount_path          TEXT,
        enabled             INTEGER NOT NULL,
        needs_resync        INTEGER NOT NULL,
        next_snapshot       INTEGER NOT NULL DEFAULT 1,
        sync_every_ms       INTEGER,
        keep                INTEGER,
        last_sync_ms        INTEGER,
        last_status         TEXT,
        last_status_ms      INTEGER,
        created_ms          INTEGER NOT NULL
    );
    CREATE TABLE snapshots (
        dsource         TEXT NOT NULL REFERENCES dsources(name),
        id              INTEGER NOT NULL,
        job_id          INTEGER,
        created_ms      INTEGER NOT NULL,
        toolkit_version TEXT NOT NULL,
        metadata        TEXT NOT NULL,
        stats           TEXT NOT NULL,
        PRIMARY KEY (dsource, id)
    );
    CREATE TABLE jobs (
        id          INTEGER PRIMARY KEY AUTOINCREMENT,
        kind        TEXT NOT NULL,
        dsource     TEXT,
        state       TEXT NOT NULL,
        started_ms  INTEGER NOT NULL,
        ended_ms    INTEGER,
        pid         INTEGER NOT NULL,
        pid_start   INTEGER,
        boot_id     TEXT,
        error       TEXT,
        snapshot_id INTEGER,
        detail      TEXT
    );
    CREATE INDEX jobs_by_dsource ON jobs (dsource, id);
    CREATE INDEX jobs_by_state ON jobs (state);
    CREATE TABLE job_steps (
        job_id      INTEGER NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
        seq         INTEGER NOT NULL,
        step        TEXT NOT NULL,
        outcome     TEXT NOT NULL,
        started_ms  INTEGER NOT NULL,
        duration_ms INTEGER NOT NULL,
        message     TEXT,
        log         TEXT,
        transcript  TEXT,
        stats       TEXT,
        value       TEXT,
        PRIMARY KEY (job_id, seq)
    );
    CREATE TABLE faults (
        id          INTEGER PRIMARY KEY AUTOINCREMENT,
        dsource     TEXT,
        job_id      INTEGER,
        hook        TEXT,
        message     TEXT NOT NULL,
        detail      TEXT,
        created_ms  INTEGER NOT NULL,
        resolved_ms INTEGER
    );
    CREATE INDEX faults_by_dsource ON faults (dsource, id);
    "#,
    // 2: per-dSource hook deadlines (`policy --timeout`), as JSON
    // {"hook": milliseconds}.
    r#"
    ALTER TABLE dsources ADD COLUMN timeouts TEXT NOT NULL DEFAULT '{}';
    "#,
    // 3: settings of the state (the storage driver), virtual copies
    // (VDBs), and snapshots that belong to a dSource or a VDB (one name
    // space: the snapshots table loses its reference to dsources).
    r#"
    CREATE TABLE settings (
        key   TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    CREATE TABLE vdbs (
        name             TEXT PRIMARY KEY,
        guid             TEXT NOT NULL UNIQUE,
        dsource          TEXT NOT NULL REFERENCES dsources(name),
        snapshot         INTEGER NOT NULL,
        toolkit          TEXT NOT NULL,
        toolkit_version  TEXT NOT NULL,
        environment      TEXT NOT NULL REFERENCES environments(name),
        environment_user TEXT NOT NULL,
        parameters       TEXT NOT NULL,
        config           TEXT NOT NULL,
        data_directory   TEXT NOT NULL,
        state            TEXT NOT NULL,
        next_snapshot    INTEGER NOT NULL DEFAULT 1,
        last_status      TEXT,
        last_status_ms   INTEGER,
        created_ms       INTEGER NOT NULL,
        refreshed_ms     INTEGER,
        timeouts         TEXT NOT NULL DEFAULT '{}'
    );
    CREATE INDEX vdbs_by_snapshot ON vdbs (dsource, snapshot);
    CREATE TABLE snapshots_v3 (
        dsource         TEXT NOT NULL,
        id              INTEGER NOT NULL,
        job_id          INTEGER,
        created_ms      INTEGER NOT NULL,
        toolkit_version TEXT NOT NULL,
        metadata        TEXT NOT NULL,
        stats           TEXT NOT NULL,
        PRIMARY KEY (dsource, id)
    );
    INSERT INTO snapshots_v3 SELECT dsource, id, job_id, created_ms, toolkit_version, metadata, stats FROM snapshots;
    DROP TABLE snapshots;
    ALTER TABLE snapshots_v3 RENAME TO snapshots;
    "#,
    // 4: SSH environments (how to reach the host, what it is) and what
    // discovery found on each environment. `identity` is the JSON array of
    // an item's identity field values; a source config's `repository` is
    // its repository's identity ('' for repositories).
    r#"
    ALTER TABLE environments ADD COLUMN ssh TEXT;
    ALTER TABLE environments ADD COLUMN os TEXT;
    ALTER TABLE environments ADD COLUMN home TEXT;
    ALTER TABLE environments ADD COLUMN refreshed_ms INTEGER;
    CREATE TABLE discovered (
        environment TEXT NOT NULL REFERENCES environments(name) ON DELETE CASCADE,
        toolkit     TEXT NOT NULL,
        kind        TEXT NOT NULL,
        repository  TEXT NOT NULL,
        identity    TEXT NOT NULL,
        name        TEXT NOT NULL,
        value       TEXT NOT NULL,
        found_ms    INTEGER NOT NULL,
        seen_ms     INTEGER NOT NULL,
        vanished_ms INTEGER,
        PRIMARY KEY (environment, toolkit, kind, repository, identity)
    );
    "#,
];

/// The schema version this build writes.
pub const SCHEMA_VERSION: u32 = MIGRATIONS.len() as u32;

/// An open state database (one connection; open one per thread).
pub struct State {
    conn: Connection,
    /// The state directory (where the disk-space reserve lives).
    root: std::path::PathBuf,
}

impl State {
    /// Open (creating if needed) the database at `path`: WAL, busy timeout,
    /// foreign keys, then apply pending migrations.
    pub fn open(path: &Path) -> Result<State> {
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(EngineError::db(format!(
            "cannot open `{}` (is the state directory writable?)",
            path.display()
        )))?;
        conn.busy_timeout(BUSY_TIMEOUT)
            .map_err(EngineError::db("setting busy_timeout"))?;
        // journal_mode returns a row; WAL persists in the file once set.
        let mode: String = conn
            .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
            .map_err(EngineError::db("switching to WAL"))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(EngineError::Invalid(format!(
                "the state database `{}` cannot use WAL (journal mode is {mode}); put the state directory on a local filesystem",
                path.display()
            )));
        }
        conn.execute_batch("PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;")
            .map_err(EngineError::db("setting pragmas"))?;
        let root = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let mut state = State { conn, root };
        state.migrate()?;
        Ok(state)
    }

    /// Apply the migrations this database lacks, each in its own
    /// `BEGIN IMMEDIATE` transaction (so two processes opening a new state
    /// at once apply each migration once).
    fn migrate(&mut self) -> Result<()> {
        loop {
            let tx = self
                .conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(EngineError::db("starting a migration"))?;
            let version: u32 = tx
                .query_row("PRAGMA user_version", [], |r| r.get(0))
                .map_err(EngineError::db("reading the schema version"))?;
            if version as usize >= MIGRATIONS.len() {
                if version > SCHEMA_VERSION {
                    return Err(EngineError::Invalid(format!(
                        "the state database has schema version {version}, newer than this lunabox ({SCHEMA_VERSION}); use a newer lunabox or another --state"
                    )));
                }
                return Ok(());
            }
            tx.execute_batch(MIGRATIONS[version as usize])
                .map_err(EngineError::db(format!(
                    "applying migration {}",
                    version + 1
                )))?;
            tx.pragma_update(None, "user_version", version + 1)
                .map_err(EngineError::db("recording the schema version"))?;
            tx.commit().map_err(EngineError::db(format!(
                "committing migration {}",
                version + 1
            )))?;
        }
    }

    /// Run the write `f`; when it fails because the disk is full, release
    /// the disk-space reserve (see [`super::space`]) and run it once more,
    /// so that what happened can still be recorded.
    pub fn retry_when_full<T>(
        &self,
        mut f: impl FnMut(&Connection) -> rusqlite::Result<T>,
    ) -> rusqlite::Result<T> {
        match f(&self.conn) {
            Err(e)
                if super::space::db_full(&e, &self.root)
                    && super::space::release_reserve(&self.root) =>
            {
                f(&self.conn)
            }
            other => other,
        }
    }

    /// The state directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The connection, for reads and single-statement writes.
    pub fn conn(&self) -> &Connection {
        &self.conn
    }

    /// Run `f` in a `BEGIN IMMEDIATE` transaction and commit it.
    pub fn write<T>(
        &mut self,
        what: &str,
        f: impl FnOnce(&Transaction<'_>) -> Result<T>,
    ) -> Result<T> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(EngineError::db(format!("starting: {what}")))?;
        let out = f(&tx)?;
        tx.commit()
            .map_err(EngineError::db(format!("committing: {what}")))?;
        Ok(out)
    }

    /// The schema version of the open database.
    pub fn schema_version(&self) -> Result<u32> {
        self.conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(EngineError::db("reading the schema version"))
    }
}

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// A time stored as epoch milliseconds, as RFC 3339 (UTC, seconds).
pub fn format_ms(ms: i64) -> String {
    let t = UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64);
    humantime::format_rfc3339_seconds(t).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_in_wal_and_migrates_once() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("state.db");
        let s = State::open(&db).unwrap();
        assert_eq!(s.schema_version().unwrap(), SCHEMA_VERSION);
        let mode: String = s
            .conn()
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
        drop(s);
        // Reopening does not re-run migrations (they would fail on CREATE TABLE).
        let s = State::open(&db).unwrap();
        assert_eq!(s.schema_version().unwrap(), SCHEMA_VERSION);
    }

    #[test]
    fn version_2_snapshots_survive_migration_3() {
        // A state written by the previous schema, with a dSource and a
        // snapshot: migration 3 rebuilds the snapshots table without its
        // reference to dsources (VDBs have snapshots too).
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("state.db");
        {
            let conn = Connection::open(&db).unwrap();
            conn.execute_batch(MIGRATIONS[0]).unwrap();
            conn.execute_batch(MIGRATIONS[1]).unwrap();
            conn.execute_batch(
                "INSERT INTO environments VALUES ('local', 'local', 'localhost', 'me', 1);
                 INSERT INTO dsources (name, guid, toolkit, toolkit_version, kind, environment,
                   environment_user, staging_environment, staging_user, config, repository,
                   parameters, data_directory, enabled, needs_resync, created_ms)
                   VALUES ('db1', 'g', 't', '1', 'staged', 'local', 'me', 'local', 'me', '{}', '{}', '{}', '/d', 1, 0, 1);
                 INSERT INTO snapshots VALUES ('db1', 1, NULL, 5, '1', '{\"a\":1}', '{}');
                 PRAGMA user_version = 2;",
            )
            .unwrap();
        }
        let s = State::open(&db).unwrap();
        assert_eq!(s.schema_version().unwrap(), SCHEMA_VERSION);
        let (id, meta): (i64, String) = s
            .conn()
            .query_row(
                "SELECT id, metadata FROM snapshots WHERE dsource = 'db1'",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!((id, meta.as_str()), (1, r#"{"a":1}"#));
        // A VDB's snapshot needs no dSource row.
        s.conn()
            .execute(
                "INSERT INTO snapshots VALUES ('dev1', 1, NULL, 6, '1', '{}', '{}')",
                [],
            )
            .unwrap();
    }

    #[test]
    fn refuses_a_newer_schema() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("state.db");
        let s = State::open(&db).unwrap();
        s.conn()
            .pragma_update(None, "user_version", SCHEMA_VERSION + 5)
            .unwrap();
        drop(s);
        let err = State::open(&db).err().unwrap().to_string();
        assert!(err.contains("newer than this lunabox"), "{err}");
    }

    #[test]
    fn two_connections_write_concurrently() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("state.db");
        State::open(&db).unwrap();
        let handles: Vec<_> = (0..4)
            .map(|t| {
                let db = db.clone();
                std::thread::spawn(move || {
                    let mut s = State::open(&db).unwrap();
                    for i in 0..50 {
                        s.write("insert", |tx| {
                            tx.execute(
                                "INSERT INTO faults (message, created_ms) VALUES (?1, ?2)",
                                (format!("{t}-{i}"), now_ms()),
                            )
                            .map_err(EngineError::db("insert"))?;
                            Ok(())
                        })
                        .unwrap();
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        let s = State::open(&db).unwrap();
        let n: i64 = s
            .conn()
            .query_row("SELECT count(*) FROM faults", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 200);
    }
}
