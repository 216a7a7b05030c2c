//! The embedded database: one SQLite file, WAL mode, one connection per handle.
//!
//! Several `baton` processes may write at once (parallel `log-code` runs, runners reporting
//! state), so every write is one `BEGIN IMMEDIATE` transaction and the busy timeout is long
//! enough to queue behind the others instead of failing.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use super::{ArtifactFilter, ArtifactVersion, BuildRecord, Db, RunFilter, StoredArtifact, LATEST};
use crate::error::{Error, Result};
use crate::model::{Artifact, RunObject, WorkflowRunRecord};
use crate::uri::StoreUri;

const SCHEMA: &str = "
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

/// The SQLite implementation of [`Db`].
#[derive(Clone)]
pub struct SqliteDb {
    conn: Arc<Mutex<Connection>>,
    path: PathBuf,
}

impl std::fmt::Debug for SqliteDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SqliteDb({})", self.path.display())
    }
}

fn db_error(path: &Path, what: &'static str) -> impl FnOnce(rusqlite::Error) -> Error {
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
    /// Opens (creating if needed) the database file at `path`.
    pub fn open(path: &Path) -> Result<Self> {
        let conn = Connection::open(path).map_err(db_error(path, "open"))?;
        conn.busy_timeout(Duration::from_secs(60))
            .map_err(db_error(path, "configure"))?;
        enable_wal(&conn).map_err(db_error(path, "enable WAL"))?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(db_error(path, "configure"))?;
        conn.execute_batch(SCHEMA)
            .map_err(db_error(path, "create the schema"))?;
        Ok(SqliteDb {
            conn: Arc::new(Mutex::new(conn)),
            path: path.to_path_buf(),
        })
    }

    /// Runs `f` on the connection in a blocking task.
    async fn with_conn<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection, &Path) -> Result<T> + Send + 'static,
    {
        let conn = self.conn.clone();
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = conn.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            f(&mut conn, &path)
        })
        .await
        .map_err(|e| Error::internal_from("The database task panicked", e))?
    }
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
        self.with_conn(move |conn, path| {
            conn.execute(
                &format!(
                    "INSERT INTO {} (project, name, body) VALUES (?1, ?2, ?3)
                     ON CONFLICT (project, name) DO UPDATE SET body = excluded.body",
                    t.table
                ),
                params![project, name, body],
            )
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
        self.with_conn(move |conn, path| {
            let body: Option<String> = conn
                .query_row(
                    &format!(
                        "SELECT body FROM {} WHERE project = ?1 AND name = ?2",
                        t.table
                    ),
                    params![project, name],
                    |row| row.get(0),
                )
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
        self.with_conn(move |conn, path| {
            let fail = |e| {
                Error::runtime_from(
                    format!("Database `{}`: failed to list {}s", path.display(), t.what),
                    e,
                )
            };
            let mut stmt = conn.prepare(&sql).map_err(fail)?;
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
    async fn store_artifact(
        &self,
        artifact: Artifact,
        tag: Option<&str>,
    ) -> Result<StoredArtifact> {
        let tag = tag.map(str::to_string);
        self.with_conn(move |conn, path| {
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
                .query_row(
                    "SELECT body FROM artifacts WHERE project = ?1 AND key = ?2 AND uid = ?3",
                    params![project, key, uid],
                    |row| row.get(0),
                )
                .optional()
                .map_err(db_error(path, "read an artifact"))?;
            let created = match existing {
                Some(body) => {
                    // Identical content: keep the version (and its tree), refresh what is not
                    // part of the uid.
                    let mut stored: Artifact = decode(path, &body)?;
                    stored.metadata.labels = artifact.metadata.labels.clone();
                    stored.metadata.updated = artifact.metadata.updated.clone();
                    tx.execute(
                        "UPDATE artifacts SET body = ?4 WHERE project = ?1 AND key = ?2 AND uid = ?3",
                        params![project, key, uid, encode(&stored)],
                    )
                    .map_err(db_error(path, "update an artifact"))?;
                    artifact = stored;
                    false
                }
                None => {
                    tx.execute(
                        "INSERT INTO artifacts (project, key, uid, iter, tree, body) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                        params![project, key, uid, artifact.metadata.iter, artifact.metadata.tree, encode(&artifact)],
                    )
                    .map_err(db_error(path, "insert an artifact"))?;
                    true
                }
            };
            for t in std::iter::once(LATEST).chain(tag.as_deref()) {
                tx.execute(
                    "INSERT INTO artifact_tags (project, key, tag, uid) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (project, key, tag) DO UPDATE SET uid = excluded.uid",
                    params![project, key, t, uid],
                )
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
        self.with_conn(move |conn, path| {
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
            if let Some(tree) = &uri.tree {
                bind(&mut sql, " AND a.tree = ?", tree.clone());
            }
            if let Some(iter) = uri.iter {
                bind(&mut sql, " AND a.iter = ?", iter.to_string());
            }
            sql.push_str(" ORDER BY a.seq DESC LIMIT 1");
            let body: Option<String> = conn
                .query_row(&sql, rusqlite::params_from_iter(args.iter()), |row| row.get(0))
                .optional()
                .map_err(db_error(path, "read an artifact"))?;
            let mut artifact: Artifact =
                decode(path, &body.ok_or_else(|| not_found(&project, &uri))?)?;
            let uid = artifact.metadata.uid.clone().unwrap_or_default();
            let attached: bool = conn
                .query_row(
                    "SELECT EXISTS (SELECT 1 FROM artifact_tags WHERE project = ?1 AND key = ?2 AND tag = ?3 AND uid = ?4)",
                    params![project, uri.key, tag, uid],
                    |row| row.get(0),
                )
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
        self.with_conn(move |conn, path| {
            let mut stmt = conn
                .prepare(
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
        self.with_conn(move |conn, path| {
            // One statement, so the check and the write are atomic across processes.
            let changed = conn
                .execute(
                    "UPDATE runs SET body = ?3 WHERE project = ?1 AND name = ?2
                     AND json_extract(body, '$.status.state')
                         NOT IN ('completed', 'error', 'aborted')",
                    params![project, uid, body],
                )
                .map_err(db_error(path, "update a run"))?;
            Ok(changed == 1)
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

    async fn request_workflow_termination(&self, project: &str, id: &str) -> Result<()> {
        let (project, id) = (project.to_string(), id.to_string());
        self.with_conn(move |conn, path| {
            let changed = conn
                .execute(
                    "UPDATE workflow_runs SET terminate = 1 WHERE project = ?1 AND name = ?2",
                    params![project, id],
                )
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
        self.with_conn(move |conn, path| {
            let flag: Option<bool> = conn
                .query_row(
                    "SELECT terminate FROM workflow_runs WHERE project = ?1 AND name = ?2",
                    params![project, id],
                    |row| row.get(0),
                )
                .optional()
                .map_err(db_error(path, "read a termination request"))?;
            Ok(flag.unwrap_or(false))
        })
        .await
    }
}
