//! The embedded database: one SQLite file in WAL mode, one writer connection and a few readers
//! per handle.
//!
//! Several `baton` processes may write at once (parallel `log-code` runs, runners reporting
//! state), so every write is one `BEGIN IMMEDIATE` transaction or one statement, and the busy
//! timeout is long enough to queue behind the others instead of failing.
//!
//! # Why a writer and a free list of readers
//!
//! SQLite allows one writer at a time per file; in WAL mode readers never wait for it. A handle
//! therefore keeps one writer connection behind a mutex (writers of this process queue there
//! rather than in SQLite's busy handler) and hands each read a read-only connection from a
//! free list, opening one when the list is empty and keeping at most [`IDLE_READERS`]. Every
//! call runs in `spawn_blocking`, so the number of readers open at once is bounded by tokio's
//! blocking pool. A pool crate (r2d2 and `r2d2_sqlite`) would add a crate, its own threads and
//! timeouts for what is a `Vec` of connections here. From its first write, a handle also runs
//! passive WAL checkpoints on a thread of its own (see [`super::checkpoint`]).
//!
//! # Schema
//!
//! The schema is a list of migrations ([`rusqlite_migration`], version kept in `PRAGMA
//! user_version`). Migration 1 is the schema baton wrote before migrations existed, with `IF NOT
//! EXISTS` everywhere, so such a database (user version 0, tables present) upgrades in place.
//! Migrations run under an exclusive lock on a file next to the database, so processes opening
//! a database at once never apply one twice.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use rusqlite::{params, Connection, OpenFlags, OptionalExtension, TransactionBehavior};
use rusqlite_migration::{Migrations, M};

use super::checkpoint::Checkpointer;
use super::{
    ArtifactFilter, ArtifactVersion, BuildRecord, Db, LeaseChange, RunFilter, StoredArtifact,
    LATEST,
};
use crate::error::{Error, Result};
use crate::model::{Artifact, RunObject, WorkflowRunRecord, WorkflowRunSummary};
use crate::uri::StoreUri;

/// Migration 1: the schema as it was before migrations (so it must never change).
const SCHEMA_V1: &str = "
CREATE TABLE IF NOT EXISTS artifacts (
    seq      INTEGER PRIMARY KEY AUTOINCREMENT,
    project  TEXT NOT NULL,
    key      TEXT NOT NULL,
    uid      TEXT NOT NULL,
    iter     INTEGER NOT NULL,
    tree     TEXT NOT NULL,
    body     TEXT NOT NULL,
    UNIQUE (project, key, uid)
);
CREATE TABLE IF NOT EXISTS artifact_tags (
    project  TEXT NOT NULL,
    key      TEXT NOT NULL,
    tag      TEXT NOT NULL,
    uid      TEXT NOT NULL,
    PRIMARY KEY (project, key, tag)
);
CREATE TABLE IF NOT EXISTS runs (
    seq      INTEGER PRIMARY KEY AUTOINCREMENT,
    project  TEXT NOT NULL,
    name     TEXT NOT NULL,
    body     TEXT NOT NULL,
    UNIQUE (project, name)
);
CREATE INDEX IF NOT EXISTS runs_by_workflow
    ON runs (project, json_extract(body, '$.metadata.labels.\"workflow\"'));
CREATE TABLE IF NOT EXISTS workflow_runs (
    seq       INTEGER PRIMARY KEY AUTOINCREMENT,
    project   TEXT NOT NULL,
    name      TEXT NOT NULL,
    body      TEXT NOT NULL,
    terminate INTEGER NOT NULL DEFAULT 0,
    UNIQUE (project, name)
);
CREATE TABLE IF NOT EXISTS builds (
    seq      INTEGER PRIMARY KEY AUTOINCREMENT,
    project  TEXT NOT NULL,
    name     TEXT NOT NULL,
    body     TEXT NOT NULL,
    UNIQUE (project, name)
);
";

/// Migration 2: heartbeat leases (see [`Db::acquire_lease`]); `expires_ms` is Unix time in
/// milliseconds by the clock of the process that wrote it.
const SCHEMA_V2_LEASES: &str = "
CREATE TABLE leases (
    name       TEXT PRIMARY KEY,
    owner      TEXT NOT NULL,
    expires_ms INTEGER NOT NULL
);
";

/// The schema, oldest migration first. Append; never edit a migration that has shipped.
fn migrations() -> Migrations<'static> {
    Migrations::new(vec![M::up(SCHEMA_V1), M::up(SCHEMA_V2_LEASES)])
}

/// Read-only connections kept open for reuse per handle.
pub const IDLE_READERS: usize = 4;

/// Prepared statements each connection keeps (`prepare_cached`): more than the distinct
/// statements it runs, so a step's handful of writes never re-parses its SQL.
const STATEMENT_CACHE: usize = 64;

/// The SQLite implementation of [`Db`].
#[derive(Clone)]
pub struct SqliteDb {
    // Declared (so dropped) before the writer: the last connection to close checkpoints the
    // WAL into the database and deletes it, and only the writer can. Were a read-only
    // connection last, the WAL would stay behind, and every process opening the database would
    // first replay it (megabytes of it once it has grown).
    readers: Arc<Mutex<Vec<Connection>>>,
    // Also dropped before the writer (its thread and connection end first). Started at the
    // first write, so a handle that only reads has no thread.
    checkpointer: Arc<OnceLock<Option<Checkpointer>>>,
    writer: Arc<Mutex<Connection>>,
    path: PathBuf,
}

impl std::fmt::Debug for SqliteDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SqliteDb({})", self.path.display())
    }
}

pub(super) fn db_error(path: &Path, what: &'static str) -> impl FnOnce(rusqlite::Error) -> Error {
    let path = path.display().to_string();
    move |e| Error::runtime_from(format!("Database `{path}`: failed to {what}"), e)
}

/// Puts the database in WAL mode. The mode is stored in the file, so this is a read once it is
/// set; switching it can meet SQLITE_BUSY without waiting on the busy handler (another process
/// opening the same fresh file), so a busy switch is retried for a while.
fn enable_wal(conn: &Connection) -> rusqlite::Result<()> {
    let mode = |conn: &Connection| -> rusqlite::Result<String> {
        conn.pragma_query_value(None, "journal_mode", |row| row.get(0))
    };
    let mut delay = Duration::from_millis(1);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let result = mode(conn).and_then(|current| {
            if current.eq_ignore_ascii_case("wal") {
                Ok(())
            } else {
                conn.pragma_update(None, "journal_mode", "WAL")
            }
        });
        match result {
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::DatabaseBusy
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(delay);
                delay = (delay * 2).min(Duration::from_millis(100));
            }
            other => return other,
        }
    }
}

impl SqliteDb {
    /// Opens (creating if needed) the database file at `path`, bringing its schema up to date.
    ///
    /// This blocks (a fresh file may wait for other processes to switch it to WAL or migrate
    /// it); from async code, call it in `spawn_blocking`.
    pub fn open(path: &Path) -> Result<Self> {
        let mut conn = Connection::open(path).map_err(db_error(path, "open"))?;
        conn.busy_timeout(Duration::from_secs(60))
            .map_err(db_error(path, "configure"))?;
        enable_wal(&conn).map_err(db_error(path, "enable WAL"))?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(db_error(path, "configure"))?;
        migrate(&mut conn, path)?;
        super::profiles::ensure_schema(&conn)
            .map_err(db_error(path, "create the profile table"))?;
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        Ok(SqliteDb {
            writer: Arc::new(Mutex::new(conn)),
            readers: Arc::new(Mutex::new(Vec::new())),
            checkpointer: Arc::new(OnceLock::new()),
            path: path.to_path_buf(),
        })
    }

    /// Runs `f` on the writer connection in a blocking task.
    pub(super) async fn write<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection, &Path) -> Result<T> + Send + 'static,
    {
        let conn = self.writer.clone();
        let path = self.path.clone();
        let checkpointer = self.checkpointer.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = conn.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            let result = f(&mut conn, &path);
            drop(conn);
            if result.is_ok() {
                if let Some(checkpointer) = checkpointer.get_or_init(|| Checkpointer::start(&path))
                {
                    checkpointer.committed();
                }
            }
            result
        })
        .await
        .map_err(|e| Error::internal_from("The database task panicked", e))?
    }

    /// Runs `f` on a read-only connection in a blocking task; it sees the last committed state
    /// and never waits for a writer.
    pub(super) async fn read<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection, &Path) -> Result<T> + Send + 'static,
    {
        let readers = self.readers.clone();
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || {
            let idle = readers
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .pop();
            let conn = match idle {
                Some(conn) => conn,
                None => open_reader(&path)?,
            };
            let result = f(&conn, &path);
            let mut idle = readers
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            if idle.len() < IDLE_READERS {
                idle.push(conn);
            }
            result
        })
        .await
        .map_err(|e| Error::internal_from("The database task panicked", e))?
    }
}

/// Replaces run `uid` while it is not in a terminal state; whether it did. One statement, so
/// the check and the write are atomic across processes.
fn update_active_run(
    conn: &Connection,
    project: &str,
    uid: &str,
    body: &str,
) -> rusqlite::Result<bool> {
    let changed = conn
        .prepare_cached(
            "UPDATE runs SET body = ?3 WHERE project = ?1 AND name = ?2
             AND json_extract(body, '$.status.state') NOT IN ('completed', 'error', 'aborted')",
        )?
        .execute(params![project, uid, body])?;
    Ok(changed == 1)
}

/// Takes lease `name` for `owner` when it is free or expired, or extends `owner`'s own; whether
/// it did. One statement, so the check and the write are atomic across processes.
fn acquire_lease(
    conn: &Connection,
    name: &str,
    owner: &str,
    ttl: Duration,
) -> rusqlite::Result<bool> {
    let now = unix_ms(SystemTime::now());
    let changed = conn
        .prepare_cached(
            "INSERT INTO leases (name, owner, expires_ms) VALUES (?1, ?2, ?3)
             ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, expires_ms = excluded.expires_ms
             WHERE leases.owner = excluded.owner OR leases.expires_ms <= ?4",
        )?
        .execute(params![name, owner, now.saturating_add(millis(ttl)), now])?;
    Ok(changed == 1)
}

/// Gives up `owner`'s lease `name`, if `owner` holds it.
fn release_lease(conn: &Connection, name: &str, owner: &str) -> rusqlite::Result<()> {
    conn.prepare_cached("DELETE FROM leases WHERE name = ?1 AND owner = ?2")?
        .execute(params![name, owner])?;
    Ok(())
}

/// A read-only connection to the (already created and migrated) database at `path`.
fn open_reader(path: &Path) -> Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(db_error(path, "open for reading"))?;
    // A reader waits only while a crashed writer's WAL is recovered.
    conn.busy_timeout(Duration::from_secs(60))
        .map_err(db_error(path, "configure"))?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    Ok(conn)
}

/// Brings the schema up to date. Other processes may open the same file at once; the version
/// is read before the migration's transaction starts, so migrations run under an exclusive lock
/// on `<database>.migrate.lock`, taken only when a migration is pending.
fn migrate(conn: &mut Connection, path: &Path) -> Result<()> {
    let migrations = migrations();
    let migrate_error = |e| {
        Error::runtime_from(
            format!(
                "Database `{}`: failed to migrate the schema",
                path.display()
            ),
            e,
        )
    };
    if migrations.pending_migrations(conn).map_err(migrate_error)? == 0 {
        return Ok(());
    }
    let mut lock_path = path.as_os_str().to_owned();
    lock_path.push(".migrate.lock");
    let lock_path = PathBuf::from(lock_path);
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| Error::io(format!("Failed to open `{}`", lock_path.display()), e))?;
    lock.lock()
        .map_err(|e| Error::io(format!("Failed to lock `{}`", lock_path.display()), e))?;
    conn.set_transaction_behavior(TransactionBehavior::Immediate);
    // Read the version again under the lock: another process may have migrated meanwhile.
    let result = migrations.to_latest(conn).map_err(migrate_error);
    conn.set_transaction_behavior(TransactionBehavior::Deferred);
    result
}

/// A table of JSON records keyed by project and name, listed newest first.
#[derive(Debug, Clone, Copy)]
struct RecordTable {
    table: &'static str,
    what: &'static str,
}

const RUNS: RecordTable = RecordTable {
    table: "runs",
    what: "run",
};
const BUILDS: RecordTable = RecordTable {
    table: "builds",
    what: "build",
};
const WORKFLOW_RUNS: RecordTable = RecordTable {
    table: "workflow_runs",
    what: "workflow run",
};

impl SqliteDb {
    /// Creates or replaces the record `name` of `project`.
    async fn put_record(
        &self,
        t: RecordTable,
        project: &str,
        name: &str,
        body: String,
    ) -> Result<()> {
        let (project, name) = (project.to_string(), name.to_string());
        self.write(move |conn, path| {
            conn.prepare_cached(&format!(
                "INSERT INTO {} (project, name, body) VALUES (?1, ?2, ?3)
                     ON CONFLICT (project, name) DO UPDATE SET body = excluded.body",
                t.table
            ))
            .and_then(|mut stmt| stmt.execute(params![project, name, body]))
            .map_err(|e| {
                Error::runtime_from(
                    format!(
                        "Database `{}`: failed to store a {}",
                        path.display(),
                        t.what
                    ),
                    e,
                )
            })?;
            Ok(())
        })
        .await
    }

    /// The record `name` of `project`, if any.
    async fn get_record<T: serde::de::DeserializeOwned + Send + 'static>(
        &self,
        t: RecordTable,
        project: &str,
        name: &str,
    ) -> Result<Option<T>> {
        let (project, name) = (project.to_string(), name.to_string());
        self.read(move |conn, path| {
            let body: Option<String> = conn
                .prepare_cached(&format!(
                    "SELECT body FROM {} WHERE project = ?1 AND name = ?2",
                    t.table
                ))
                .and_then(|mut stmt| stmt.query_row(params![project, name], |row| row.get(0)))
                .optional()
                .map_err(|e| {
                    Error::runtime_from(
                        format!("Database `{}`: failed to read a {}", path.display(), t.what),
                        e,
                    )
                })?;
            body.map(|b| decode(path, &b)).transpose()
        })
        .await
    }

    /// Every record of `project`, newest first.
    ///
    /// `labels` filters on `metadata.labels` inside SQLite; a label key that is not a plain name
    /// is left for the caller to filter.
    async fn all_records<T: serde::de::DeserializeOwned + Send + 'static>(
        &self,
        t: RecordTable,
        project: &str,
        labels: &[(String, String)],
    ) -> Result<Vec<T>> {
        let project = project.to_string();
        let mut sql = format!("SELECT body FROM {} WHERE project = ?1", t.table);
        let mut values = vec![project];
        for (key, value) in labels {
            if let Some(path) = label_path(key) {
                values.push(value.clone());
                sql.push_str(&format!(
                    " AND json_extract(body, '{path}') = ?{}",
                    values.len()
                ));
            }
        }
        sql.push_str(" ORDER BY seq DESC");
        self.read(move |conn, path| {
            let fail = |e| {
                Error::runtime_from(
                    format!("Database `{}`: failed to list {}s", path.display(), t.what),
                    e,
                )
            };
            let mut stmt = conn.prepare_cached(&sql).map_err(fail)?;
            let bodies = stmt
                .query_map(rusqlite::params_from_iter(values.iter()), |row| {
                    row.get::<_, String>(0)
                })
                .map_err(fail)?;
            bodies.map(|b| decode(path, &b.map_err(fail)?)).collect()
        })
        .await
    }
}

/// The JSON path of a label, for keys made of letters, digits and `-_./` only.
fn label_path(key: &str) -> Option<String> {
    let plain = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'));
    plain.then(|| format!("$.metadata.labels.\"{key}\""))
}

fn decode<T: serde::de::DeserializeOwned>(path: &Path, body: &str) -> Result<T> {
    serde_json::from_str(body).map_err(|e| {
        Error::runtime_from(
            format!("Database `{}` holds an unreadable record", path.display()),
            e,
        )
    })
}

fn encode(record: &impl serde::Serialize) -> String {
    serde_json::to_string(record).expect("records always serialize")
}

fn not_found(project: &str, uri: &StoreUri) -> Error {
    let mut shown = uri.clone();
    shown.project.get_or_insert_with(|| project.to_string());
    Error::not_found(format!("Artifact `{shown}` not found"))
}

#[async_trait]
impl Db for SqliteDb {
    fn profile_store(&self) -> Arc<dyn crate::datastore::profile::ProfileStore> {
        Arc::new(self.clone())
    }

    async fn store_artifact(
        &self,
        artifact: Artifact,
        tag: Option<&str>,
    ) -> Result<StoredArtifact> {
        let tag = tag.map(str::to_string);
        self.write(move |conn, path| {
            let mut artifact = artifact;
            let uid = artifact
                .metadata
                .uid
                .clone()
                .ok_or_else(|| Error::invalid("An artifact must have a uid to be stored"))?;
            artifact.metadata.tag = None;
            let project = artifact.metadata.project.clone();
            let key = artifact.db_key().to_string();
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(db_error(path, "start a transaction"))?;
            let existing: Option<String> = tx
                .prepare_cached("SELECT body FROM artifacts WHERE project = ?1 AND key = ?2 AND uid = ?3")
.and_then(|mut stmt| stmt.query_row(params![project, key, uid],
                    |row| row.get(0),))
                .optional()
                .map_err(db_error(path, "read an artifact"))?;
            let created = match existing {
                Some(body) => {
                    // Identical content: keep the version (and its tree), refresh what is not
                    // part of the uid.
                    let mut stored: Artifact = decode(path, &body)?;
                    stored.metadata.labels = artifact.metadata.labels.clone();
                    stored.metadata.updated = artifact.metadata.updated.clone();
                    tx.prepare_cached("UPDATE artifacts SET body = ?4 WHERE project = ?1 AND key = ?2 AND uid = ?3")
.and_then(|mut stmt| stmt.execute(params![project, key, uid, encode(&stored)],))
                    .map_err(db_error(path, "update an artifact"))?;
                    artifact = stored;
                    false
                }
                None => {
                    tx.prepare_cached("INSERT INTO artifacts (project, key, uid, iter, tree, body) VALUES (?1, ?2, ?3, ?4, ?5, ?6)")
.and_then(|mut stmt| stmt.execute(params![project, key, uid, artifact.metadata.iter, artifact.metadata.tree, encode(&artifact)],))
                    .map_err(db_error(path, "insert an artifact"))?;
                    true
                }
            };
            for t in std::iter::once(LATEST).chain(tag.as_deref()) {
                tx.prepare_cached("INSERT INTO artifact_tags (project, key, tag, uid) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (project, key, tag) DO UPDATE SET uid = excluded.uid")
.and_then(|mut stmt| stmt.execute(params![project, key, t, uid],))
                .map_err(db_error(path, "tag an artifact"))?;
            }
            tx.commit().map_err(db_error(path, "commit"))?;
            // The URI of a logged artifact shows a tag only when one was given (MLRun's rule).
            artifact.metadata.tag = tag;
            Ok(StoredArtifact { artifact, created })
        })
        .await
    }

    async fn read_artifact(&self, project: &str, uri: &StoreUri) -> Result<Artifact> {
        let project = uri.project_or(project).to_string();
        let uri = uri.clone();
        self.read(move |conn, path| {
            let tag = uri.tag.clone().unwrap_or_else(|| LATEST.to_string());
            let mut sql = String::from(
                "SELECT a.body FROM artifacts a WHERE a.project = ?1 AND a.key = ?2",
            );
            let mut args: Vec<String> = vec![project.clone(), uri.key.clone()];
            let mut bind = |sql: &mut String, clause: &str, value: String| {
                args.push(value);
                sql.push_str(&clause.replace('?', &format!("?{}", args.len())));
            };
            let by_uid = uri.uid.is_some();
            if let Some(uid) = &uri.uid {
                bind(&mut sql, " AND a.uid = ?", uid.clone());
            }
            // With a uid, `latest` does not filter (MLRun's rule); any other tag must be attached.
            if !by_uid || tag != LATEST {
                bind(
                    &mut sql,
                    " AND a.uid = (SELECT t.uid FROM artifact_tags t WHERE t.project = a.project AND t.key = a.key AND t.tag = ?)",
                    tag.clone(),
                );
            }
            // A uid names one version whatever tree the caller pins (identical content logged
            // again keeps its first tree, while MLRun's client pins the tree it chose).
            if let Some(tree) = uri.tree.as_ref().filter(|_| !by_uid) {
                bind(&mut sql, " AND a.tree = ?", tree.clone());
            }
            if let Some(iter) = uri.iter {
                bind(&mut sql, " AND a.iter = ?", iter.to_string());
            }
            sql.push_str(" ORDER BY a.seq DESC LIMIT 1");
            let body: Option<String> = conn
                .prepare_cached(&sql)
.and_then(|mut stmt| stmt.query_row(rusqlite::params_from_iter(args.iter()), |row| row.get(0)))
                .optional()
                .map_err(db_error(path, "read an artifact"))?;
            let mut artifact: Artifact =
                decode(path, &body.ok_or_else(|| not_found(&project, &uri))?)?;
            let uid = artifact.metadata.uid.clone().unwrap_or_default();
            let attached: bool = conn
                .prepare_cached("SELECT EXISTS (SELECT 1 FROM artifact_tags WHERE project = ?1 AND key = ?2 AND tag = ?3 AND uid = ?4)")
.and_then(|mut stmt| stmt.query_row(params![project, uri.key, tag, uid],
                    |row| row.get(0),))
                .map_err(db_error(path, "read artifact tags"))?;
            artifact.metadata.tag = attached.then_some(tag);
            Ok(artifact)
        })
        .await
    }

    async fn list_artifacts(
        &self,
        project: &str,
        filter: &ArtifactFilter,
    ) -> Result<Vec<ArtifactVersion>> {
        let project = project.to_string();
        let filter = filter.clone();
        self.read(move |conn, path| {
            let mut stmt = conn
                .prepare_cached(
                    "SELECT a.body,
                            (SELECT group_concat(t.tag, ',') FROM
                                (SELECT tag FROM artifact_tags t WHERE t.project = a.project AND t.key = a.key AND t.uid = a.uid ORDER BY tag) t)
                     FROM artifacts a
                     WHERE a.project = ?1 AND (?2 IS NULL OR a.key = ?2)
                       AND (?3 IS NULL OR EXISTS (SELECT 1 FROM artifact_tags t WHERE t.project = a.project AND t.key = a.key AND t.uid = a.uid AND t.tag = ?3))
                     ORDER BY a.seq DESC",
                )
                .map_err(db_error(path, "list artifacts"))?;
            let rows = stmt
                .query_map(params![project, filter.key, filter.tag], |row| {
                    Ok((row.get::<_, String>(0)?, row.get::<_, Option<String>>(1)?))
                })
                .map_err(db_error(path, "list artifacts"))?;
            let mut versions = Vec::new();
            for row in rows {
                let (body, tags) = row.map_err(db_error(path, "list artifacts"))?;
                let tags: Vec<String> = tags
                    .map(|t| t.split(',').map(str::to_string).collect())
                    .unwrap_or_default();
                let mut artifact: Artifact = decode(path, &body)?;
                artifact.metadata.tag = tags.iter().find(|t| *t == LATEST).or(tags.first()).cloned();
                versions.push(ArtifactVersion { artifact, tags });
            }
            Ok(versions)
        })
        .await
    }

    async fn store_run(&self, run: &RunObject) -> Result<()> {
        self.put_record(RUNS, &run.metadata.project, &run.metadata.uid, encode(run))
            .await
    }

    async fn update_active_run(&self, run: &RunObject) -> Result<bool> {
        let (project, uid, body) = (
            run.metadata.project.clone(),
            run.metadata.uid.clone(),
            encode(run),
        );
        self.write(move |conn, path| {
            update_active_run(conn, &project, &uid, &body).map_err(db_error(path, "update a run"))
        })
        .await
    }

    async fn update_active_run_with_lease(
        &self,
        run: &RunObject,
        lease: &LeaseChange<'_>,
    ) -> Result<bool> {
        let (project, uid, body) = (
            run.metadata.project.clone(),
            run.metadata.uid.clone(),
            encode(run),
        );
        // Owned, for the blocking task: (name, owner, Some(ttl) to take, None to give).
        let (name, owner, take) = match *lease {
            LeaseChange::Take { name, owner, ttl } => {
                (name.to_string(), owner.to_string(), Some(ttl))
            }
            LeaseChange::Give { name, owner } => (name.to_string(), owner.to_string(), None),
        };
        self.write(move |conn, path| {
            let tx = conn
                .transaction()
                .map_err(db_error(path, "update a run and its lease"))?;
            let updated = match take {
                Some(ttl) => {
                    if !acquire_lease(&tx, &name, &owner, ttl)
                        .map_err(db_error(path, "acquire a lease"))?
                    {
                        return Err(super::lease_held(&name));
                    }
                    let updated = update_active_run(&tx, &project, &uid, &body)
                        .map_err(db_error(path, "update a run"))?;
                    if !updated {
                        // Rolled back on drop: the lease is not taken for a run that ended.
                        return Ok(false);
                    }
                    updated
                }
                None => {
                    let updated = update_active_run(&tx, &project, &uid, &body)
                        .map_err(db_error(path, "update a run"))?;
                    release_lease(&tx, &name, &owner).map_err(db_error(path, "release a lease"))?;
                    updated
                }
            };
            tx.commit()
                .map_err(db_error(path, "update a run and its lease"))?;
            Ok(updated)
        })
        .await
    }

    async fn read_run(&self, project: &str, uid: &str) -> Result<RunObject> {
        self.get_record(RUNS, project, uid).await?.ok_or_else(|| {
            Error::not_found(format!("Run `{uid}` not found in project `{project}`"))
        })
    }

    async fn list_runs(&self, project: &str, filter: &RunFilter) -> Result<Vec<RunObject>> {
        let runs: Vec<RunObject> = self.all_records(RUNS, project, &filter.labels).await?;
        Ok(runs
            .into_iter()
            .filter(|run| {
                filter
                    .labels
                    .iter()
                    .all(|(k, v)| run.metadata.labels.get(k) == Some(v))
            })
            .collect())
    }

    async fn store_build(&self, project: &str, function: &str, build: &BuildRecord) -> Result<()> {
        self.put_record(BUILDS, project, function, encode(build))
            .await
    }

    async fn read_build(&self, project: &str, function: &str) -> Result<Option<BuildRecord>> {
        self.get_record(BUILDS, project, function).await
    }

    async fn store_workflow_run(&self, run: &WorkflowRunRecord) -> Result<()> {
        self.put_record(WORKFLOW_RUNS, &run.project, &run.id, encode(run))
            .await
    }

    async fn read_workflow_run(&self, project: &str, id: &str) -> Result<WorkflowRunRecord> {
        self.get_record(WORKFLOW_RUNS, project, id)
            .await?
            .ok_or_else(|| {
                Error::not_found(format!(
                    "Workflow run `{id}` not found in project `{project}`"
                ))
            })
    }

    async fn list_workflow_runs(&self, project: &str) -> Result<Vec<WorkflowRunRecord>> {
        self.all_records(WORKFLOW_RUNS, project, &[]).await
    }

    async fn list_workflow_run_summaries(&self, project: &str) -> Result<Vec<WorkflowRunSummary>> {
        self.all_records(WORKFLOW_RUNS, project, &[]).await
    }

    async fn request_workflow_termination(&self, project: &str, id: &str) -> Result<()> {
        let (project, id) = (project.to_string(), id.to_string());
        self.write(move |conn, path| {
            let changed = conn
                .prepare_cached(
                    "UPDATE workflow_runs SET terminate = 1 WHERE project = ?1 AND name = ?2",
                )
                .and_then(|mut stmt| stmt.execute(params![project, id]))
                .map_err(db_error(path, "request a termination"))?;
            if changed == 0 {
                return Err(Error::not_found(format!(
                    "Workflow run `{id}` not found in project `{project}`"
                )));
            }
            Ok(())
        })
        .await
    }

    async fn workflow_termination_requested(&self, project: &str, id: &str) -> Result<bool> {
        let (project, id) = (project.to_string(), id.to_string());
        self.read(move |conn, path| {
            let flag: Option<bool> = conn
                .prepare_cached(
                    "SELECT terminate FROM workflow_runs WHERE project = ?1 AND name = ?2",
                )
                .and_then(|mut stmt| stmt.query_row(params![project, id], |row| row.get(0)))
                .optional()
                .map_err(db_error(path, "read a termination request"))?;
            Ok(flag.unwrap_or(false))
        })
        .await
    }

    async fn acquire_lease(&self, name: &str, owner: &str, ttl: Duration) -> Result<bool> {
        let (name, owner) = (name.to_string(), owner.to_string());
        self.write(move |conn, path| {
            acquire_lease(conn, &name, &owner, ttl).map_err(db_error(path, "acquire a lease"))
        })
        .await
    }

    async fn renew_lease(&self, name: &str, owner: &str, ttl: Duration) -> Result<bool> {
        let (name, owner) = (name.to_string(), owner.to_string());
        self.write(move |conn, path| {
            let now = unix_ms(SystemTime::now());
            let changed = conn
                .prepare_cached(
                    "UPDATE leases SET expires_ms = ?3
                     WHERE name = ?1 AND owner = ?2 AND expires_ms > ?4",
                )
                .and_then(|mut stmt| {
                    stmt.execute(params![name, owner, now.saturating_add(millis(ttl)), now])
                })
                .map_err(db_error(path, "renew a lease"))?;
            Ok(changed == 1)
        })
        .await
    }

    async fn release_lease(&self, name: &str, owner: &str) -> Result<()> {
        let (name, owner) = (name.to_string(), owner.to_string());
        self.write(move |conn, path| {
            release_lease(conn, &name, &owner).map_err(db_error(path, "release a lease"))
        })
        .await
    }

    async fn lease_alive(&self, name: &str) -> Result<bool> {
        let name = name.to_string();
        self.read(move |conn, path| {
            conn.prepare_cached(
                "SELECT EXISTS (SELECT 1 FROM leases WHERE name = ?1 AND expires_ms > ?2)",
            )
            .and_then(|mut stmt| {
                stmt.query_row(params![name, unix_ms(SystemTime::now())], |row| row.get(0))
            })
            .map_err(db_error(path, "read a lease"))
        })
        .await
    }
}

/// Milliseconds since the Unix epoch (0 for a clock set before it).
fn unix_ms(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH).map_or(0, millis)
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}
