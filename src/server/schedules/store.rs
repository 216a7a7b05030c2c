//! The server's schedules and their fires, in one SQLite file of the data folder
//! (`schedules.db`).
//!
//! A fire is keyed by (project, schedule, scheduled time): the transaction that decides which
//! times are due ([`ScheduleStore::decide`]) inserts their fires and moves the schedule's
//! cursor together, so a time is decided once, whatever happens to the process afterwards. A
//! fire then goes `pending` (decided, its run not started yet) → `started` (its run id
//! recorded) → `ended`, or `pending` → `buffered` → `started`, or ends `skipped` or `failed`
//! with the reason in `detail`.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::{Error, Result};
use crate::schedule::{due_times, Catchup, CronSchedule, Overlap};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS schedules (
    project TEXT NOT NULL,
    name TEXT NOT NULL,
    spec TEXT NOT NULL,
    paused INTEGER NOT NULL DEFAULT 0,
    note TEXT,
    cursor_ms INTEGER NOT NULL,
    created TEXT NOT NULL,
    updated TEXT NOT NULL,
    PRIMARY KEY (project, name)
);
CREATE TABLE IF NOT EXISTS fires (
    project TEXT NOT NULL,
    name TEXT NOT NULL,
    scheduled_ms INTEGER NOT NULL,
    cause TEXT NOT NULL,
    state TEXT NOT NULL,
    run_id TEXT,
    detail TEXT,
    recorded TEXT NOT NULL,
    updated TEXT NOT NULL,
    PRIMARY KEY (project, name, scheduled_ms)
);
CREATE INDEX IF NOT EXISTS fires_by_state ON fires (state);
";

/// What a schedule runs and how: everything a client sets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScheduleSpec {
    /// The project's workflow that each fire runs (resolved afresh at fire time).
    pub workflow: String,
    /// The cron expression (5 fields, or an `@hourly`-style macro).
    pub schedule: String,
    /// The IANA time zone the expression is read in.
    pub timezone: String,
    /// What a fire does while earlier runs are going.
    pub overlap: Overlap,
    /// What happens to fires missed while the server was down.
    pub catchup: Catchup,
    /// How far back [`Catchup::All`] reaches, in seconds.
    pub catchup_window_s: u64,
    /// Runs going at once under [`Overlap::Skip`].
    pub concurrency_limit: u32,
    /// Arguments of every run.
    #[serde(default)]
    pub args: Map<String, Value>,
    /// The server-side engine (`kfp`), else the server's local one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine: Option<String>,
}

impl ScheduleSpec {
    /// The parsed cron expression in its zone.
    pub fn cron(&self) -> Result<CronSchedule> {
        CronSchedule::parse(&self.schedule, Some(&self.timezone))
    }

    /// The catch-up window.
    pub fn catchup_window(&self) -> Duration {
        Duration::from_secs(self.catchup_window_s)
    }
}

/// A stored schedule and where it stands.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ScheduleRecord {
    /// The project.
    pub project: String,
    /// The schedule's name (MLRun names it after the workflow).
    pub name: String,
    /// What it runs and how.
    #[serde(flatten)]
    pub spec: ScheduleSpec,
    /// Whether fires are held.
    pub paused: bool,
    /// Why it was paused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// Fires up to this instant were decided (RFC 3339).
    pub decided_until: String,
    /// When it was created (RFC 3339).
    pub created: String,
    /// When it last changed (RFC 3339).
    pub updated: String,
    /// The next fire time (RFC 3339); none while paused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_fire: Option<String>,
    /// The newest fire.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_fire: Option<Fire>,
}

/// Why a fire happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FireCause {
    /// The cron expression came due (or was caught up).
    Schedule,
    /// `trigger` / MLRun's `invoke`.
    Trigger,
    /// `backfill`.
    Backfill,
}

/// Where a fire stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FireState {
    /// Decided; its run not started yet.
    Pending,
    /// Waiting for the running fire of its schedule to end.
    Buffered,
    /// Its run is going.
    Started,
    /// Its run ended (its final state in `detail`).
    Ended,
    /// Not run (the reason in `detail`).
    Skipped,
    /// Its run could not start (the error in `detail`).
    Failed,
}

impl FireState {
    /// The state's word (`ended`), as it is serialized.
    pub fn word(self) -> &'static str {
        match self {
            FireState::Pending => "pending",
            FireState::Buffered => "buffered",
            FireState::Started => "started",
            FireState::Ended => "ended",
            FireState::Skipped => "skipped",
            FireState::Failed => "failed",
        }
    }
}

/// One fire of a schedule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fire {
    /// The project.
    pub project: String,
    /// The schedule.
    pub name: String,
    /// The time it was due (RFC 3339); with the schedule, its key.
    pub scheduled: String,
    /// The same, in milliseconds since the epoch.
    pub scheduled_ms: i64,
    /// Why it happened.
    pub cause: FireCause,
    /// Where it stands.
    pub state: FireState,
    /// Its workflow run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    /// The reason it was skipped or failed, or its run's final state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// When it was decided (RFC 3339).
    pub recorded: String,
}

impl Fire {
    /// The fire's key as a label value: `<scheduled ms>`, unique within its schedule.
    pub fn label(&self) -> String {
        self.scheduled_ms.to_string()
    }
}

/// A schedule's key.
pub type ScheduleKey = (String, String);

/// What [`ScheduleStore::decide`] decided.
#[derive(Debug, Default)]
pub struct Decided {
    /// The fires it recorded, oldest first.
    pub fires: Vec<Fire>,
    /// The schedule's spec; `None` when it is paused or gone.
    pub spec: Option<ScheduleSpec>,
    /// Its next fire time after this decision.
    pub next_fire: Option<DateTime<Utc>>,
}

/// The schedules database.
pub struct ScheduleStore {
    conn: Arc<Mutex<Connection>>,
}

fn db_error(what: &'static str) -> impl Fn(rusqlite::Error) -> Error {
    move |e| Error::internal_from(format!("The schedules database failed to {what}"), e)
}

fn rfc3339(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn not_found(project: &str, name: &str) -> Error {
    Error::not_found(format!(
        "Schedule `{name}` not found in project `{project}`"
    ))
}

const FIRE_COLUMNS: &str = "project, name, scheduled_ms, cause, state, run_id, detail, recorded";

fn fire_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Fire> {
    let text = |i: usize| -> rusqlite::Result<String> { row.get(i) };
    let parse = |i: usize| -> rusqlite::Result<Value> { Ok(Value::String(text(i)?)) };
    let scheduled_ms: i64 = row.get(2)?;
    Ok(Fire {
        project: text(0)?,
        name: text(1)?,
        scheduled: rfc3339(scheduled_ms),
        scheduled_ms,
        cause: serde_json::from_value(parse(3)?).unwrap_or(FireCause::Schedule),
        state: serde_json::from_value(parse(4)?).unwrap_or(FireState::Failed),
        run_id: row.get(5)?,
        detail: row.get(6)?,
        recorded: text(7)?,
    })
}

fn enum_text<T: Serialize>(value: T) -> String {
    match serde_json::to_value(value) {
        Ok(Value::String(s)) => s,
        _ => unreachable!("fire enums serialize as strings"),
    }
}

impl ScheduleStore {
    /// Opens (creating if needed) the schedules database at `path`.
    pub fn open(path: &Path) -> Result<ScheduleStore> {
        let conn = Connection::open(path)
            .map_err(|e| Error::internal_from(format!("Cannot open `{}`", path.display()), e))?;
        conn.busy_timeout(Duration::from_secs(60))
            .map_err(db_error("configure"))?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(db_error("configure"))?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(db_error("configure"))?;
        conn.execute_batch(SCHEMA)
            .map_err(db_error("create its tables"))?;
        Ok(ScheduleStore {
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    /// Runs `f` on the connection in a blocking task.
    async fn with<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T> + Send + 'static,
    {
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = conn.lock().unwrap_or_else(|e| e.into_inner());
            f(&mut conn)
        })
        .await
        .map_err(|e| Error::internal_from("The schedules database task panicked", e))?
    }

    /// Stores schedule `name` of `project`, replacing one of that name (whose fires and
    /// cursor are kept); a new one decides fires from `now` on. Answers whether it was new.
    pub async fn put(
        &self,
        project: &str,
        name: &str,
        spec: &ScheduleSpec,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let (project, name) = (project.to_string(), name.to_string());
        let spec = serde_json::to_string(spec).expect("specs serialize");
        self.with(move |conn| {
            let stamp = crate::model::now();
            let updated = conn
                .execute(
                    "UPDATE schedules SET spec = ?3, updated = ?4 WHERE project = ?1 AND name = ?2",
                    params![project, name, spec, stamp],
                )
                .map_err(db_error("update a schedule"))?;
            if updated == 1 {
                return Ok(false);
            }
            conn.execute(
                "INSERT INTO schedules (project, name, spec, cursor_ms, created, updated) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?5)",
                params![project, name, spec, now.timestamp_millis(), stamp],
            )
            .map_err(db_error("store a schedule"))?;
            Ok(true)
        })
        .await
    }

    /// Schedule `name` of `project`, with its newest fire (its next fire time left empty).
    pub async fn get(&self, project: &str, name: &str) -> Result<ScheduleRecord> {
        let (project, name) = (project.to_string(), name.to_string());
        self.with(move |conn| {
            read_schedule(conn, &project, &name)?.ok_or_else(|| not_found(&project, &name))
        })
        .await
    }

    /// The schedules of `project` (of every project when `None`), by name.
    pub async fn list(&self, project: Option<&str>) -> Result<Vec<ScheduleRecord>> {
        let project = project.map(str::to_string);
        self.with(move |conn| {
            let keys: Vec<(String, String)> = {
                let mut statement = conn
                    .prepare(
                        "SELECT project, name FROM schedules \
                         WHERE ?1 IS NULL OR project = ?1 ORDER BY project, name",
                    )
                    .map_err(db_error("list schedules"))?;
                let rows = statement
                    .query_map(params![project], |row| Ok((row.get(0)?, row.get(1)?)))
                    .map_err(db_error("list schedules"))?;
                rows.collect::<rusqlite::Result<_>>()
                    .map_err(db_error("list schedules"))?
            };
            let mut records = Vec::with_capacity(keys.len());
            for (project, name) in keys {
                records.extend(read_schedule(conn, &project, &name)?);
            }
            Ok(records)
        })
        .await
    }

    /// Every schedule that is not paused: its key, spec and cursor (for the scheduler's queue).
    pub async fn active(&self) -> Result<Vec<(ScheduleKey, ScheduleSpec, DateTime<Utc>)>> {
        self.with(|conn| {
            let mut statement = conn
                .prepare("SELECT project, name, spec, cursor_ms FROM schedules WHERE paused = 0")
                .map_err(db_error("list schedules"))?;
            let rows = statement
                .query_map([], |row| {
                    Ok((
                        (row.get::<_, String>(0)?, row.get::<_, String>(1)?),
                        row.get::<_, String>(2)?,
                        row.get::<_, i64>(3)?,
                    ))
                })
                .map_err(db_error("list schedules"))?;
            let mut active = Vec::new();
            for row in rows {
                let (key, spec, cursor) = row.map_err(db_error("list schedules"))?;
                let spec: ScheduleSpec = serde_json::from_str(&spec)
                    .map_err(|e| Error::internal_from("A stored schedule is malformed", e))?;
                let cursor = DateTime::<Utc>::from_timestamp_millis(cursor).unwrap_or_default();
                active.push((key, spec, cursor));
            }
            Ok(active)
        })
        .await
    }

    /// Deletes schedule `name` of `project` and its fires.
    pub async fn delete(&self, project: &str, name: &str) -> Result<()> {
        let (project, name) = (project.to_string(), name.to_string());
        self.with(move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(db_error("delete a schedule"))?;
            let removed = tx
                .execute(
                    "DELETE FROM schedules WHERE project = ?1 AND name = ?2",
                    params![project, name],
                )
                .map_err(db_error("delete a schedule"))?;
            if removed == 0 {
                return Err(not_found(&project, &name));
            }
            tx.execute(
                "DELETE FROM fires WHERE project = ?1 AND name = ?2",
                params![project, name],
            )
            .map_err(db_error("delete a schedule"))?;
            tx.commit().map_err(db_error("delete a schedule"))
        })
        .await
    }

    /// Pauses (with `note`) or resumes schedule `name` of `project`. A resumed schedule decides
    /// fires from `now` on: what came due while it was paused never fires.
    pub async fn set_paused(
        &self,
        project: &str,
        name: &str,
        paused: bool,
        note: Option<String>,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let (project, name) = (project.to_string(), name.to_string());
        self.with(move |conn| {
            let changed = if paused {
                conn.execute(
                    "UPDATE schedules SET paused = 1, note = ?3, updated = ?4 \
                     WHERE project = ?1 AND name = ?2",
                    params![project, name, note, crate::model::now()],
                )
            } else {
                conn.execute(
                    "UPDATE schedules SET paused = 0, note = NULL, updated = ?3, \
                     cursor_ms = max(cursor_ms, ?4) WHERE project = ?1 AND name = ?2",
                    params![project, name, crate::model::now(), now.timestamp_millis()],
                )
            }
            .map_err(db_error("pause a schedule"))?;
            if changed == 0 {
                return Err(not_found(&project, &name));
            }
            Ok(())
        })
        .await
    }

    /// Decides schedule `key`'s fires due at `now` (as its catch-up policy says), records them
    /// `pending` and moves its cursor to `now`, in one transaction. A paused or deleted
    /// schedule decides nothing.
    pub async fn decide(&self, key: &ScheduleKey, now: DateTime<Utc>) -> Result<Decided> {
        let mut decided = self.decide_all(vec![key.clone()], now).await?;
        Ok(decided.pop().map(|(_, d)| d).unwrap_or_default())
    }

    /// [`ScheduleStore::decide`] for each of `keys`, all in one transaction.
    pub async fn decide_all(
        &self,
        keys: Vec<ScheduleKey>,
        now: DateTime<Utc>,
    ) -> Result<Vec<(ScheduleKey, Decided)>> {
        self.with(move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(db_error("decide fires"))?;
            let mut all = Vec::with_capacity(keys.len());
            for key in keys {
                let decided = decide_in(&tx, &key, now)?;
                all.push((key, decided));
            }
            tx.commit().map_err(db_error("decide fires"))?;
            Ok(all)
        })
        .await
    }

    /// The fires of schedule `key` that wait (`buffered`) and those whose run is going
    /// (`started`), oldest first.
    pub async fn waiting_and_running(&self, key: &ScheduleKey) -> Result<(Vec<Fire>, Vec<Fire>)> {
        let (project, name) = key.clone();
        self.with(move |conn| {
            let mut statement = conn
                .prepare_cached(&format!(
                    "SELECT {FIRE_COLUMNS} FROM fires WHERE project = ?1 AND name = ?2 \
                     AND state IN ('buffered', 'started') ORDER BY scheduled_ms"
                ))
                .map_err(db_error("read fires"))?;
            let rows = statement
                .query_map(params![project, name], fire_from_row)
                .map_err(db_error("read fires"))?;
            let fires: Vec<Fire> = rows
                .collect::<rusqlite::Result<_>>()
                .map_err(db_error("read fires"))?;
            Ok(fires
                .into_iter()
                .partition(|f| f.state == FireState::Buffered))
        })
        .await
    }

    /// Records fires of schedule `key` at `times` for `cause` (`trigger`, `backfill`), each
    /// `pending`; a time that already has a fire keeps it. Answers the new fires.
    pub async fn record(
        &self,
        key: &ScheduleKey,
        times: Vec<DateTime<Utc>>,
        cause: FireCause,
    ) -> Result<Vec<Fire>> {
        let (project, name) = key.clone();
        self.with(move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(db_error("record fires"))?;
            let exists: bool = tx
                .query_row(
                    "SELECT 1 FROM schedules WHERE project = ?1 AND name = ?2",
                    params![project, name],
                    |_| Ok(true),
                )
                .optional()
                .map_err(db_error("record fires"))?
                .unwrap_or(false);
            if !exists {
                return Err(not_found(&project, &name));
            }
            let fires = insert_fires(&tx, &project, &name, &times, cause)?;
            tx.commit().map_err(db_error("record fires"))?;
            Ok(fires)
        })
        .await
    }

    /// The fires in `state` (of schedule `key` only, when given), oldest first.
    pub async fn fires_in(&self, state: FireState, key: Option<&ScheduleKey>) -> Result<Vec<Fire>> {
        let key = key.cloned();
        self.with(move |conn| {
            let (project, name) = key.unzip();
            let mut statement = conn
                .prepare(&format!(
                    "SELECT {FIRE_COLUMNS} FROM fires WHERE state = ?1 \
                     AND (?2 IS NULL OR (project = ?2 AND name = ?3)) ORDER BY scheduled_ms"
                ))
                .map_err(db_error("read fires"))?;
            let rows = statement
                .query_map(params![enum_text(state), project, name], fire_from_row)
                .map_err(db_error("read fires"))?;
            rows.collect::<rusqlite::Result<_>>()
                .map_err(db_error("read fires"))
        })
        .await
    }

    /// The fires of schedule `key`, newest first, at most `limit`.
    pub async fn fires(&self, key: &ScheduleKey, limit: usize) -> Result<Vec<Fire>> {
        let (project, name) = key.clone();
        self.with(move |conn| {
            let mut statement = conn
                .prepare(&format!(
                    "SELECT {FIRE_COLUMNS} FROM fires WHERE project = ?1 AND name = ?2 \
                     ORDER BY scheduled_ms DESC LIMIT ?3"
                ))
                .map_err(db_error("read fires"))?;
            let rows = statement
                .query_map(params![project, name, limit as i64], fire_from_row)
                .map_err(db_error("read fires"))?;
            rows.collect::<rusqlite::Result<_>>()
                .map_err(db_error("read fires"))
        })
        .await
    }

    /// Moves `fire` to `state`, with its run id and detail when given.
    pub async fn update_fire(
        &self,
        fire: &Fire,
        state: FireState,
        run_id: Option<&str>,
        detail: Option<&str>,
    ) -> Result<()> {
        let (project, name, at) = (fire.project.clone(), fire.name.clone(), fire.scheduled_ms);
        let (run_id, detail) = (run_id.map(str::to_string), detail.map(str::to_string));
        self.with(move |conn| {
            conn.execute(
                "UPDATE fires SET state = ?4, run_id = coalesce(?5, run_id), \
                 detail = coalesce(?6, detail), updated = ?7 \
                 WHERE project = ?1 AND name = ?2 AND scheduled_ms = ?3",
                params![
                    project,
                    name,
                    at,
                    enum_text(state),
                    run_id,
                    detail,
                    crate::model::now()
                ],
            )
            .map_err(db_error("update a fire"))?;
            Ok(())
        })
        .await
    }
}

/// Decides schedule `key`'s fires due at `now` within transaction `tx`: see
/// [`ScheduleStore::decide`].
fn decide_in(
    tx: &rusqlite::Transaction<'_>,
    (project, name): &ScheduleKey,
    now: DateTime<Utc>,
) -> Result<Decided> {
    let row: Option<(String, i64)> = tx
        .query_row(
            "SELECT spec, cursor_ms FROM schedules \
             WHERE project = ?1 AND name = ?2 AND paused = 0",
            params![project, name],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .optional()
        .map_err(db_error("decide fires"))?;
    let Some((spec, cursor)) = row else {
        return Ok(Decided::default());
    };
    let spec: ScheduleSpec = serde_json::from_str(&spec)
        .map_err(|e| Error::internal_from("A stored schedule is malformed", e))?;
    let cursor = DateTime::<Utc>::from_timestamp_millis(cursor).unwrap_or_default();
    let cron = spec.cron()?;
    if cursor >= now {
        return Ok(Decided {
            fires: Vec::new(),
            next_fire: cron.next_after(cursor),
            spec: Some(spec),
        });
    }
    let due = due_times(&cron, cursor, now, spec.catchup, spec.catchup_window());
    let fires = insert_fires(tx, project, name, &due, FireCause::Schedule)?;
    tx.execute(
        "UPDATE schedules SET cursor_ms = ?3 WHERE project = ?1 AND name = ?2",
        params![project, name, now.timestamp_millis()],
    )
    .map_err(db_error("decide fires"))?;
    Ok(Decided {
        fires,
        next_fire: cron.next_after(now),
        spec: Some(spec),
    })
}

/// Inserts a `pending` fire of `cause` for each of `times` that has none yet; answers those.
fn insert_fires(
    tx: &rusqlite::Transaction<'_>,
    project: &str,
    name: &str,
    times: &[DateTime<Utc>],
    cause: FireCause,
) -> Result<Vec<Fire>> {
    let recorded = crate::model::now();
    let mut fires = Vec::new();
    let mut insert = tx
        .prepare_cached(
            "INSERT OR IGNORE INTO fires \
             (project, name, scheduled_ms, cause, state, recorded, updated) \
             VALUES (?1, ?2, ?3, ?4, 'pending', ?5, ?5)",
        )
        .map_err(db_error("record fires"))?;
    for time in times {
        let at = time.timestamp_millis();
        let inserted = insert
            .execute(params![project, name, at, enum_text(cause), recorded])
            .map_err(db_error("record fires"))?;
        if inserted == 1 {
            fires.push(Fire {
                project: project.to_string(),
                name: name.to_string(),
                scheduled: rfc3339(at),
                scheduled_ms: at,
                cause,
                state: FireState::Pending,
                run_id: None,
                detail: None,
                recorded: recorded.clone(),
            });
        }
    }
    Ok(fires)
}

/// Schedule (`project`, `name`) with its newest fire, if it exists.
fn read_schedule(conn: &Connection, project: &str, name: &str) -> Result<Option<ScheduleRecord>> {
    let row = conn
        .query_row(
            "SELECT spec, paused, note, cursor_ms, created, updated FROM schedules \
             WHERE project = ?1 AND name = ?2",
            params![project, name],
            |row| {
                Ok((
                    row.get::<_, String>(0)?,
                    row.get::<_, bool>(1)?,
                    row.get::<_, Option<String>>(2)?,
                    row.get::<_, i64>(3)?,
                    row.get::<_, String>(4)?,
                    row.get::<_, String>(5)?,
                ))
            },
        )
        .optional()
        .map_err(db_error("read a schedule"))?;
    let Some((spec, paused, note, cursor, created, updated)) = row else {
        return Ok(None);
    };
    let spec: ScheduleSpec = serde_json::from_str(&spec)
        .map_err(|e| Error::internal_from("A stored schedule is malformed", e))?;
    let last_fire = conn
        .query_row(
            &format!(
                "SELECT {FIRE_COLUMNS} FROM fires WHERE project = ?1 AND name = ?2 \
                 ORDER BY scheduled_ms DESC LIMIT 1"
            ),
            params![project, name],
            fire_from_row,
        )
        .optional()
        .map_err(db_error("read a schedule"))?;
    let next_fire = match (paused, spec.cron()) {
        (false, Ok(cron)) => DateTime::<Utc>::from_timestamp_millis(cursor)
            .and_then(|c| cron.next_after(c))
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
        _ => None,
    };
    Ok(Some(ScheduleRecord {
        project: project.to_string(),
        name: name.to_string(),
        spec,
        paused,
        note,
        decided_until: rfc3339(cursor),
        created,
        updated,
        next_fire,
        last_fire,
    }))
}
