//! The SQLite [`Db`] as a server shares it: an old `.baton/` database upgrades in place, reads
//! and writes go through separate connections, heartbeat leases expire when not renewed, and a
//! termination request reaches the run's driver through the database alone.

use std::sync::Arc;
use std::time::{Duration, Instant};

mod common;

use baton::db::{Db, Heartbeat, RunFilter, SqliteDb};
use baton::engine::WorkflowState;
use baton::model::{Artifact, Driver, RunObject, WorkflowRunRecord, WorkflowRunSummary};
use baton::project::Project;
use baton::uri::StoreUri;
use rusqlite::Connection;
use serde_json::json;

/// The schema exactly as baton wrote it before migrations existed (user version 0), and the way
/// it opened the file: WAL, then the batch.
const SCHEMA_BEFORE_MIGRATIONS: &str = "
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

fn artifact() -> Artifact {
    serde_json::from_value(json!({
        "kind": "code",
        "metadata": {"key": "prep", "project": "p", "iter": 0, "tree": "t1", "uid": "u1"},
        "spec": {"inline": "print(1)", "code_type": "function"},
    }))
    .unwrap()
}

fn run(uid: &str, workflow: &str) -> RunObject {
    serde_json::from_value(json!({
        "metadata": {"uid": uid, "name": "f-main", "project": "p", "labels": {"workflow": workflow}},
        "spec": {"function": "p/f"},
        "status": {"state": "running"},
    }))
    .unwrap()
}

fn workflow_run(id: &str) -> WorkflowRunRecord {
    serde_json::from_value(json!({
        "id": id, "project": "p", "name": "main", "engine": "local", "state": "Running",
        "args": {}, "workflow": {"source": "main.py", "digest": "sha256:00"},
        "steps": [], "started": "2025-01-01T00:00:00Z",
        "driver": {"pid": 1, "host": "h"},
    }))
    .unwrap()
}

/// Polls `check` until it holds, failing after a generous deadline.
async fn eventually(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn an_old_database_upgrades_in_place_keeping_its_records_and_gaining_the_lease_table() {
    let dir = tempfile::TempDir::new().unwrap();
    let path = dir.path().join("baton.db");
    {
        let old = Connection::open(&path).unwrap();
        old.pragma_update(None, "journal_mode", "WAL").unwrap();
        old.pragma_update(None, "synchronous", "NORMAL").unwrap();
        old.execute_batch(SCHEMA_BEFORE_MIGRATIONS).unwrap();
        let a = artifact();
        old.execute(
            "INSERT INTO artifacts (project, key, uid, iter, tree, body) VALUES ('p', 'prep', 'u1', 0, 't1', ?1)",
            [serde_json::to_string(&a).unwrap()],
        )
        .unwrap();
        old.execute(
            "INSERT INTO artifact_tags (project, key, tag, uid) VALUES ('p', 'prep', 'latest', 'u1')",
            [],
        )
        .unwrap();
        old.execute(
            "INSERT INTO runs (project, name, body) VALUES ('p', 'r1', ?1)",
            [serde_json::to_string(&run("r1", "w1")).unwrap()],
        )
        .unwrap();
        old.execute(
            "INSERT INTO workflow_runs (project, name, body, terminate) VALUES ('p', 'w1', ?1, 1)",
            [serde_json::to_string(&workflow_run("w1")).unwrap()],
        )
        .unwrap();
        let version: i64 = old
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(version, 0);
    }

    let db = SqliteDb::open(&path).unwrap();
    let uri: StoreUri = "store://p/prep".parse().unwrap();
    assert_eq!(
        db.read_artifact("p", &uri)
            .await
            .unwrap()
            .metadata
            .uid
            .as_deref(),
        Some("u1")
    );
    let runs = db
        .list_runs(
            "p",
            &RunFilter {
                labels: vec![("workflow".into(), "w1".into())],
            },
        )
        .await
        .unwrap();
    assert_eq!(runs.len(), 1);
    assert_eq!(db.read_workflow_run("p", "w1").await.unwrap().id, "w1");
    assert!(db.workflow_termination_requested("p", "w1").await.unwrap());
    // The new table is there and usable.
    assert!(db
        .acquire_lease("w1", "me", Duration::from_secs(60))
        .await
        .unwrap());
    assert!(db.lease_alive("w1").await.unwrap());
    drop(db);

    let upgraded = Connection::open(&path).unwrap();
    let version: i64 = upgraded
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert!(version >= 2, "user_version {version}");
    // Opening again migrates nothing and loses nothing.
    let db = SqliteDb::open(&path).unwrap();
    assert!(db.lease_alive("w1").await.unwrap());
    assert_eq!(db.list_workflow_runs("p").await.unwrap().len(), 1);
}

#[test]
fn many_processes_worth_of_handles_opening_a_fresh_database_at_once_all_succeed() {
    let dir = tempfile::TempDir::new().unwrap();
    let path = Arc::new(dir.path().join("baton.db"));
    let handles: Vec<_> = (0..8)
        .map(|_| {
            let path = path.clone();
            std::thread::spawn(move || SqliteDb::open(&path).map(drop))
        })
        .collect();
    for h in handles {
        h.join().unwrap().unwrap();
    }
    let conn = Connection::open(&*path).unwrap();
    let leases: i64 = conn
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'leases'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(leases, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_read_is_served_while_the_handles_writer_waits_for_the_write_lock() {
    let dir = tempfile::TempDir::new().unwrap();
    let path = dir.path().join("baton.db");
    let db = Arc::new(SqliteDb::open(&path).unwrap());
    db.store_workflow_run(&workflow_run("w1")).await.unwrap();
    // Another process in the middle of a long write transaction...
    let other = Connection::open(&path).unwrap();
    other
        .execute_batch("BEGIN IMMEDIATE; UPDATE builds SET body = body;")
        .unwrap();
    // ...so this handle's writer waits in SQLite's busy handler.
    let write = tokio::spawn({
        let db = db.clone();
        async move { db.store_workflow_run(&workflow_run("w2")).await }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    // A read does not queue behind that write (as it would on one shared connection): it is
    // answered while the lock is still held. The bound only turns a hang into a failure.
    let read = tokio::time::timeout(Duration::from_secs(20), db.read_workflow_run("p", "w1"));
    assert_eq!(
        read.await
            .expect("the read waited for the writer")
            .unwrap()
            .id,
        "w1"
    );
    assert!(!write.is_finished());
    other.execute_batch("COMMIT").unwrap();
    write.await.unwrap().unwrap();
    assert_eq!(db.list_workflow_runs("p").await.unwrap().len(), 2);
}

#[tokio::test]
async fn a_lease_expires_when_not_renewed_and_lives_while_it_is() {
    let dir = tempfile::TempDir::new().unwrap();
    let db = SqliteDb::open(&dir.path().join("baton.db")).unwrap();
    let (long, ttl) = (Duration::from_secs(600), Duration::from_millis(200));
    assert!(db.acquire_lease("run", "a", long).await.unwrap());
    assert!(db.lease_alive("run").await.unwrap());
    // Held: another owner cannot take it; its owner can take it again, for a new term.
    assert!(!db.acquire_lease("run", "b", long).await.unwrap());
    assert!(db.acquire_lease("run", "a", ttl).await.unwrap());
    eventually("the unrenewed lease to expire", async || {
        !db.lease_alive("run").await.unwrap()
    })
    .await;
    // Once expired it is not renewed (a reader may have acted on it) but anyone may take it.
    assert!(!db.renew_lease("run", "a", long).await.unwrap());
    assert!(db.acquire_lease("run", "b", long).await.unwrap());
    assert!(db.lease_alive("run").await.unwrap());
    assert!(!db.renew_lease("run", "a", long).await.unwrap());
    assert!(db.renew_lease("run", "b", long).await.unwrap());
    // Releasing someone else's lease does nothing; releasing one's own ends it.
    db.release_lease("run", "a").await.unwrap();
    assert!(db.lease_alive("run").await.unwrap());
    db.release_lease("run", "b").await.unwrap();
    assert!(!db.lease_alive("run").await.unwrap());
}

/// Committed pages reach the database file while the handle is still open (a background
/// checkpoint), so closing it has little left to copy and sync. Without one, a few writes stay
/// in the WAL until the close.
#[tokio::test]
async fn committed_pages_reach_the_database_file_while_the_handle_is_open() {
    let dir = tempfile::TempDir::new().unwrap();
    let path = dir.path().join("baton.db");
    let db = SqliteDb::open(&path).unwrap();
    let size = || std::fs::metadata(&path).unwrap().len();
    let before = size();
    for i in 0..20 {
        let run = format!("run-{i}");
        assert!(db
            .acquire_lease(&run, "a", Duration::from_secs(600))
            .await
            .unwrap());
    }
    eventually(
        "the committed pages to be checkpointed into the file",
        async || size() > before,
    )
    .await;
    for i in 0..20 {
        assert!(db.lease_alive(&format!("run-{i}")).await.unwrap());
    }
}

#[tokio::test]
async fn a_heartbeat_keeps_its_lease_alive_until_dropped_and_seen_from_another_handle() {
    let dir = tempfile::TempDir::new().unwrap();
    let path = dir.path().join("baton.db");
    let db: Arc<dyn Db> = Arc::new(SqliteDb::open(&path).unwrap());
    let other = SqliteDb::open(&path).unwrap();
    // Renewed 40 times per term, so a busy machine does not let it lapse.
    let ttl = Duration::from_secs(2);
    let beat = Heartbeat::start(db.clone(), "run", ttl, Duration::from_millis(50))
        .await
        .unwrap();
    // Renewed: its expiry moves past the first one (so it outlives its first TTL).
    let expiry = || -> i64 {
        Connection::open(&path)
            .unwrap()
            .query_row(
                "SELECT expires_ms FROM leases WHERE name = 'run'",
                [],
                |r| r.get(0),
            )
            .unwrap()
    };
    let first = expiry();
    eventually("the heartbeat to renew its lease", async || {
        expiry() > first
    })
    .await;
    assert!(other.lease_alive("run").await.unwrap());
    // Taken: a second heartbeat on the same name is a conflict.
    let err = Heartbeat::start(db.clone(), "run", ttl, Duration::from_millis(50))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), baton::error::ErrorKind::Conflict);
    // Dropped without release, as when its process dies: it expires.
    drop(beat);
    eventually("the dropped heartbeat's lease to expire", async || {
        !other.lease_alive("run").await.unwrap()
    })
    .await;
    // Released: gone at once.
    let beat = Heartbeat::start(db.clone(), "run", ttl, Duration::from_millis(50))
        .await
        .unwrap();
    beat.release().await.unwrap();
    assert!(!other.lease_alive("run").await.unwrap());
}

#[tokio::test]
async fn a_termination_request_from_another_handle_reaches_the_driver_through_the_db() {
    let dir = tempfile::TempDir::new().unwrap();
    let path = dir.path().join("baton.db");
    let driver = SqliteDb::open(&path).unwrap();
    let other = SqliteDb::open(&path).unwrap();
    driver
        .store_workflow_run(&workflow_run("w1"))
        .await
        .unwrap();
    assert!(!driver
        .workflow_termination_requested("p", "w1")
        .await
        .unwrap());
    other.request_workflow_termination("p", "w1").await.unwrap();
    assert!(driver
        .workflow_termination_requested("p", "w1")
        .await
        .unwrap());
    // The driver storing its record again keeps the request.
    driver
        .store_workflow_run(&workflow_run("w1"))
        .await
        .unwrap();
    assert!(driver
        .workflow_termination_requested("p", "w1")
        .await
        .unwrap());
    let err = other
        .request_workflow_termination("p", "nope")
        .await
        .unwrap_err();
    assert_eq!(err.kind(), baton::error::ErrorKind::NotFound);
}

#[tokio::test]
async fn a_workflow_run_is_settled_when_its_drivers_lease_ends_not_when_its_pid_is_gone() {
    let p = common::TestProject::new();
    let project = Project::load(p.path()).unwrap();
    let db = SqliteDb::open(&p.path().join(".baton").join("baton.db")).unwrap();
    // A driver whose pid is gone (or reused: the pid says nothing either way)...
    let mut gone = std::process::Command::new("true").spawn().unwrap();
    gone.wait().unwrap();
    let mut record = workflow_run("w1");
    record.project = project.name().to_string();
    record.driver = Some(Driver {
        pid: gone.id(),
        ..Driver::current()
    });
    db.store_workflow_run(&record).await.unwrap();
    // ...but whose lease is held is still driving the run.
    let lease = record.driver_lease();
    assert!(db
        .acquire_lease(&lease, "driver", Duration::from_secs(600))
        .await
        .unwrap());
    let read = project.workflow_run(&db, "w1").await.unwrap();
    assert_eq!(read.state, WorkflowState::Running);
    // Once the lease ends, the next reader settles it.
    db.release_lease(&lease, "driver").await.unwrap();
    let read = project.workflow_run(&db, "w1").await.unwrap();
    assert_eq!(read.state, WorkflowState::Failed);
    assert!(read
        .error
        .unwrap()
        .contains("exited before the run finished"));
    assert_eq!(
        db.read_workflow_run(project.name(), "w1")
            .await
            .unwrap()
            .state,
        WorkflowState::Failed
    );
}

/// Listing summaries (what `baton workflows list` shows) reads them without whole records, and
/// still settles a run whose driver is gone; every summary matches its record.
#[tokio::test]
async fn workflow_run_summaries_settle_orphaned_runs_and_match_their_records() {
    let p = common::TestProject::new();
    let project = Project::load(p.path()).unwrap();
    let db = SqliteDb::open(&p.path().join(".baton").join("baton.db")).unwrap();
    let record = |id: &str, state: WorkflowState| {
        let mut run = workflow_run(id);
        run.project = project.name().to_string();
        run.state = state;
        run.driver = Some(Driver::current());
        run
    };
    let done = record("done", WorkflowState::Succeeded);
    let orphan = record("orphan", WorkflowState::Running);
    let live = record("live", WorkflowState::Running);
    assert!(db
        .acquire_lease(&live.driver_lease(), "driver", Duration::from_secs(600))
        .await
        .unwrap());
    for run in [&done, &orphan, &live] {
        db.store_workflow_run(run).await.unwrap();
    }
    let summaries = project.workflow_run_summaries(&db).await.unwrap();
    let states: Vec<_> = summaries.iter().map(|s| (s.id.as_str(), s.state)).collect();
    assert_eq!(
        states,
        [
            ("live", WorkflowState::Running),
            ("orphan", WorkflowState::Failed),
            ("done", WorkflowState::Succeeded),
        ]
    );
    for summary in &summaries {
        let stored = db
            .read_workflow_run(project.name(), &summary.id)
            .await
            .unwrap();
        assert_eq!(*summary, WorkflowRunSummary::of(&stored));
    }
}

/// A reader that read the run while it ran, and checks the lease after the driver stored the
/// end and released it, must not overwrite that end as "orphaned".
#[tokio::test]
async fn a_run_that_ended_while_it_was_read_is_not_settled_as_orphaned() {
    let p = common::TestProject::new();
    let project = Project::load(p.path()).unwrap();
    let db = SqliteDb::open(&p.path().join(".baton").join("baton.db")).unwrap();
    let mut record = workflow_run("w1");
    record.project = project.name().to_string();
    record.driver = Some(Driver::current());
    let lease = record.driver_lease();
    assert!(db
        .acquire_lease(&lease, "driver", Duration::from_secs(600))
        .await
        .unwrap());
    db.store_workflow_run(&record).await.unwrap();
    let mut stale = db.read_workflow_run(project.name(), "w1").await.unwrap();
    assert_eq!(stale.state, WorkflowState::Running);
    // The driver ends the run: its last record first, then its lease.
    let mut ended = record.clone();
    ended.state = WorkflowState::Canceled;
    ended.finished = Some(baton::model::now());
    for step in &mut ended.steps {
        step.state = baton::engine::StepState::Canceled;
    }
    db.store_workflow_run(&ended).await.unwrap();
    db.release_lease(&lease, "driver").await.unwrap();
    let settled = project
        .settle_orphaned_workflow_run(&db, &mut stale)
        .await
        .unwrap();
    assert!(!settled);
    assert_eq!(stale.state, WorkflowState::Canceled);
    assert_eq!(
        db.read_workflow_run(project.name(), "w1")
            .await
            .unwrap()
            .state,
        WorkflowState::Canceled
    );
}

/// After the last `baton` process closes the database, its WAL has been checkpointed away:
/// the next process opens the database without replaying a log that grows with every run.
#[test]
fn no_write_ahead_log_is_left_behind_when_the_last_process_exits() {
    let p = common::TestProject::new();
    p.write("f.py", "def main():\n    return 1\n");
    p.log_code("f_code", "f.py", &[]);
    p.set_store_function("f", "f_code", "f:main");
    for _ in 0..3 {
        p.baton(&["run-function", "f", "--json"]).ok();
        p.baton(&["runs", "list", "--json"]).ok();
    }
    let wal = p.path().join(".baton/baton.db-wal");
    let left = std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0);
    assert_eq!(left, 0, "`{}` holds {left} bytes", wal.display());
}
