//! [`HttpDb`], the database of a `baton server` over HTTP, against a real server on a loopback
//! port.
//!
//! The semantics are checked by one suite of plain functions over `&dyn Db` (in the manner of
//! object_store's `integration.rs`) run against both [`SqliteDb`] and [`HttpDb`], and the error
//! messages each collects are compared, so the two implementations cannot drift apart. The rest
//! is HTTP's own: retries of what may be repeated (and nothing else), tokens, and paths that try
//! to reach outside a project.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use baton::db::{
    settle_run, ArtifactFilter, BuildRecord, Db, Heartbeat, HttpDb, RunFilter, SqliteDb,
};
use baton::error::{Error, ErrorKind};
use baton::model::{Artifact, RunObject, RunState, WorkflowRunRecord};
use baton::server::{Server, ServerConfig, Token, DEFAULT_BODY_LIMIT};
use baton::uri::StoreUri;
use serde_json::json;
use tempfile::TempDir;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

// ---------------------------------------------------------------------------------------------
// A server to talk to.

/// A server answering on a loopback port until dropped (or [`TestServer::stop`]ped).
struct TestServer {
    addr: SocketAddr,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<baton::Result<()>>,
}

impl TestServer {
    /// Starts a server over `data` on `addr` (port 0 for any free one).
    async fn start(data: &Path, addr: SocketAddr, token: Option<&str>) -> TestServer {
        let server = Server::bind(ServerConfig {
            addr,
            data_dir: data.to_path_buf(),
            token: token.map(|t| Token::new(t.to_string()).unwrap()),
            max_workers: 2,
            body_limit: DEFAULT_BODY_LIMIT,
            isolation: baton::runner::Isolation::default(),
            step_executor: None,
            kfp: None,
            public_url: None,
            schedule_min_interval: baton::server::schedules::DEFAULT_MIN_INTERVAL,
        })
        .await
        .unwrap();
        let addr = server.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(server.run(async {
            stopped.await.ok();
        }));
        TestServer { addr, stop, task }
    }

    /// A server over `data` with project `p` created.
    async fn with_project(data: &Path, token: Option<&str>) -> TestServer {
        let server = TestServer::start(data, loopback(0), token).await;
        server.create_project("p", token).await;
        server
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn db(&self, token: Option<&str>) -> HttpDb {
        HttpDb::new(&self.url(), token.map(str::to_string)).unwrap()
    }

    /// Creates project `name` through MLRun's API, as any client would.
    async fn create_project(&self, name: &str, token: Option<&str>) {
        let mut request = reqwest::Client::new()
            .post(format!("{}/api/v1/projects", self.url()))
            .json(
                &json!({"kind": "project", "metadata": {"name": name}, "spec": {}, "status": {}}),
            );
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 201, "{}", response.text().await.unwrap());
    }

    /// Stops taking requests and waits until the port is closed.
    async fn stop(self) {
        self.stop.send(()).unwrap();
        self.task.await.unwrap().unwrap();
    }
}

fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// A loopback port nobody listens on (it was free a moment ago).
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind(loopback(0)).unwrap();
    listener.local_addr().unwrap().port()
}

/// Polls `check` until it holds, failing after a generous deadline.
async fn eventually(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

// ---------------------------------------------------------------------------------------------
// Records.

fn artifact(uid: &str, tree: &str) -> Artifact {
    serde_json::from_value(json!({
        "kind": "code",
        "metadata": {"key": "prep", "project": "p", "iter": 0, "tree": tree, "uid": uid},
        "spec": {"inline": "print(1)", "code_type": "function"},
    }))
    .unwrap()
}

fn run(uid: &str, workflow: &str) -> RunObject {
    serde_json::from_value(json!({
        "metadata": {"uid": uid, "name": "f-main", "project": "p",
                     "labels": {"workflow": workflow, "kind": "job"}},
        "spec": {"function": "p/f", "parameters": {"x": 1}},
        "status": {"state": "running"},
    }))
    .unwrap()
}

fn workflow_run(id: &str) -> WorkflowRunRecord {
    serde_json::from_value(json!({
        "id": id, "project": "p", "name": "main", "engine": "local", "state": "Running",
        "args": {"n": 2}, "workflow": {"source": "main.py", "digest": "sha256:00"},
        "steps": [], "started": "2025-01-01T00:00:00Z",
        "driver": {"pid": 1, "host": "h"},
    }))
    .unwrap()
}

fn uri(text: &str) -> StoreUri {
    text.parse().unwrap()
}

/// The uids of `versions`, in order.
fn uids(versions: &[baton::db::ArtifactVersion]) -> Vec<&str> {
    versions
        .iter()
        .map(|v| v.artifact.metadata.uid.as_deref().unwrap())
        .collect()
}

/// Asserts `err` is of `kind` and returns its message, for comparing implementations.
#[track_caller]
fn failure(err: Error, kind: ErrorKind) -> String {
    assert_eq!(err.kind(), kind, "{}", err.chain());
    err.to_string()
}

// ---------------------------------------------------------------------------------------------
// The suite every `Db` passes; each returns the messages of the errors it provoked.

/// Versions, tags moving between them, reads by tag, uid and tree, and listing.
async fn artifacts(db: &dyn Db) -> Vec<String> {
    let mut errors = Vec::new();
    let first = db.store_artifact(artifact("u1", "t1"), None).await.unwrap();
    assert!(first.created);
    assert_eq!(
        first.artifact.metadata.tag, None,
        "no tag given, none shown"
    );
    let latest = db.read_artifact("p", &uri("store://p/prep")).await.unwrap();
    assert_eq!(latest.metadata.uid.as_deref(), Some("u1"));
    assert_eq!(latest.metadata.tag.as_deref(), Some("latest"));

    let second = db
        .store_artifact(artifact("u2", "t2"), Some("v1"))
        .await
        .unwrap();
    assert!(second.created);
    assert_eq!(second.artifact.metadata.tag.as_deref(), Some("v1"));
    for text in [
        "store://p/prep",
        "store://p/prep:v1",
        "store://artifacts/p/prep@t2",
    ] {
        let read = db.read_artifact("p", &uri(text)).await.unwrap();
        assert_eq!(read.metadata.uid.as_deref(), Some("u2"), "{text}");
    }

    // The same content again: no new version; labels and `updated` refresh, the tree stays,
    // and both `latest` and `v1` move back to it.
    let mut again = artifact("u1", "t9");
    again.metadata.labels.insert("owner".into(), "me".into());
    let again = db.store_artifact(again, Some("v1")).await.unwrap();
    assert!(!again.created);
    assert_eq!(again.artifact.metadata.tree, "t1");
    assert_eq!(again.artifact.metadata.labels["owner"], "me");
    for text in ["store://p/prep", "store://p/prep:v1"] {
        let read = db.read_artifact("p", &uri(text)).await.unwrap();
        assert_eq!(read.metadata.uid.as_deref(), Some("u1"), "{text}");
        assert_eq!(read.metadata.labels["owner"], "me");
    }

    // By uid: `latest` does not filter, any other tag must be attached.
    let by_uid = db
        .read_artifact("p", &uri("store://p/prep^u2"))
        .await
        .unwrap();
    assert_eq!(by_uid.metadata.uid.as_deref(), Some("u2"));
    assert_eq!(
        by_uid.metadata.tag, None,
        "no tag is attached to u2 any more"
    );
    let by_uid = db
        .read_artifact("p", &uri("store://p/prep^u1"))
        .await
        .unwrap();
    assert_eq!(by_uid.metadata.tag.as_deref(), Some("latest"));
    // A URI naming its project wins over the caller's.
    let elsewhere = db.read_artifact("q", &uri("store://p/prep")).await.unwrap();
    assert_eq!(elsewhere.metadata.uid.as_deref(), Some("u1"));

    for text in [
        "store://p/prep:v1^u2",
        "store://p/prep@t2",
        "store://p/prep#3",
        "store://p/missing",
        "store://p/prep:nope",
    ] {
        let err = db.read_artifact("p", &uri(text)).await.unwrap_err();
        errors.push(failure(err, ErrorKind::NotFound));
    }
    let unpinned = Artifact {
        metadata: baton::model::ArtifactMetadata {
            uid: None,
            ..artifact("u3", "t3").metadata
        },
        ..artifact("u3", "t3")
    };
    let err = db.store_artifact(unpinned, None).await.unwrap_err();
    errors.push(failure(err, ErrorKind::InvalidArgument));

    let all = db
        .list_artifacts("p", &ArtifactFilter::default())
        .await
        .unwrap();
    assert_eq!(uids(&all), ["u2", "u1"], "newest first");
    assert_eq!(all[0].tags, Vec::<String>::new());
    assert_eq!(all[0].artifact.metadata.tag, None);
    assert_eq!(all[1].tags, ["latest", "v1"]);
    assert_eq!(all[1].artifact.metadata.tag.as_deref(), Some("latest"));
    let tagged = ArtifactFilter {
        tag: Some("v1".into()),
        ..Default::default()
    };
    assert_eq!(
        uids(&db.list_artifacts("p", &tagged).await.unwrap()),
        ["u1"]
    );
    let other_key = ArtifactFilter {
        key: Some("other".into()),
        ..Default::default()
    };
    assert!(db.list_artifacts("p", &other_key).await.unwrap().is_empty());
    errors
}

/// Run records, label filters, and the conditional update that keeps the first final state.
async fn runs(db: &dyn Db) -> Vec<String> {
    let mut errors = Vec::new();
    let (r1, r2) = (run("r1", "w1"), run("r2", "w2"));
    db.store_run(&r1).await.unwrap();
    db.store_run(&r2).await.unwrap();
    assert_eq!(db.read_run("p", "r1").await.unwrap(), r1);

    let list = |labels: &[(&str, &str)]| RunFilter {
        labels: labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    };
    let names = |runs: Vec<RunObject>| -> Vec<String> {
        runs.into_iter().map(|r| r.metadata.uid).collect()
    };
    assert_eq!(
        names(db.list_runs("p", &list(&[])).await.unwrap()),
        ["r2", "r1"]
    );
    assert_eq!(
        names(
            db.list_runs("p", &list(&[("workflow", "w1")]))
                .await
                .unwrap()
        ),
        ["r1"]
    );
    assert_eq!(
        names(
            db.list_runs("p", &list(&[("workflow", "w2"), ("kind", "job")]))
                .await
                .unwrap()
        ),
        ["r2"]
    );
    assert!(db
        .list_runs("p", &list(&[("workflow", "w1"), ("kind", "other")]))
        .await
        .unwrap()
        .is_empty());

    // The first final state wins; a late writer is refused and changes nothing.
    let mut done = r1.clone();
    done.status.state = RunState::Completed;
    assert!(db.update_active_run(&done).await.unwrap());
    let mut late = r1.clone();
    late.status.state = RunState::Error;
    assert!(!db.update_active_run(&late).await.unwrap());
    assert_eq!(db.read_run("p", "r1").await.unwrap(), done);
    // Settling a run someone else ended keeps their outcome; an active one is settled.
    let kept = settle_run(db, &r1, RunState::Error, "gone".into())
        .await
        .unwrap();
    assert_eq!(kept.status.state, RunState::Completed);
    let settled = settle_run(db, &r2, RunState::Aborted, "gone".into())
        .await
        .unwrap();
    assert_eq!(settled.status.state, RunState::Aborted);
    assert_eq!(db.read_run("p", "r2").await.unwrap(), settled);
    // A plain store replaces whatever is there; an unknown run is never updated.
    db.store_run(&r1).await.unwrap();
    assert_eq!(
        db.read_run("p", "r1").await.unwrap().status.state,
        RunState::Running
    );
    assert!(!db.update_active_run(&run("r9", "w1")).await.unwrap());

    let err = db.read_run("p", "r9").await.unwrap_err();
    errors.push(failure(err, ErrorKind::NotFound));
    errors
}

/// The last build of a function.
async fn builds(db: &dyn Db) {
    assert_eq!(db.read_build("p", "f").await.unwrap(), None);
    let build = |hash: &str| BuildRecord {
        config_hash: hash.into(),
        built_at: "2025-01-01T00:00:00Z".into(),
        output: "/tmp/build".into(),
    };
    db.store_build("p", "f", &build("h1")).await.unwrap();
    db.store_build("p", "f", &build("h2")).await.unwrap();
    assert_eq!(db.read_build("p", "f").await.unwrap(), Some(build("h2")));
    assert_eq!(db.read_build("p", "g").await.unwrap(), None);
}

/// Workflow run records and termination requests.
async fn workflow_runs(db: &dyn Db) -> Vec<String> {
    let mut errors = Vec::new();
    db.store_workflow_run(&workflow_run("w1")).await.unwrap();
    db.store_workflow_run(&workflow_run("w2")).await.unwrap();
    assert_eq!(
        db.read_workflow_run("p", "w1").await.unwrap(),
        workflow_run("w1")
    );
    let ids: Vec<String> = db
        .list_workflow_runs("p")
        .await
        .unwrap()
        .into_iter()
        .map(|w| w.id)
        .collect();
    assert_eq!(ids, ["w2", "w1"]);

    assert!(!db.workflow_termination_requested("p", "w1").await.unwrap());
    db.request_workflow_termination("p", "w1").await.unwrap();
    db.request_workflow_termination("p", "w1").await.unwrap();
    assert!(db.workflow_termination_requested("p", "w1").await.unwrap());
    assert!(!db.workflow_termination_requested("p", "w2").await.unwrap());
    // The driver storing its record again keeps the request.
    db.store_workflow_run(&workflow_run("w1")).await.unwrap();
    assert!(db.workflow_termination_requested("p", "w1").await.unwrap());
    assert!(!db.workflow_termination_requested("p", "w9").await.unwrap());

    let err = db
        .request_workflow_termination("p", "w9")
        .await
        .unwrap_err();
    errors.push(failure(err, ErrorKind::NotFound));
    let err = db.read_workflow_run("p", "w9").await.unwrap_err();
    errors.push(failure(err, ErrorKind::NotFound));
    errors
}

/// Leases: one holder at a time, renewal only while held, expiry, release.
async fn leases(db: Arc<dyn Db>) {
    let name = "run/p/lease";
    let long = Duration::from_secs(600);
    assert!(!db.lease_alive(name).await.unwrap());
    assert!(db.acquire_lease(name, "a", long).await.unwrap());
    assert!(db.lease_alive(name).await.unwrap());
    // Held: a second owner is refused and cannot renew; the holder takes it again.
    assert!(!db.acquire_lease(name, "b", long).await.unwrap());
    assert!(!db.renew_lease(name, "b", long).await.unwrap());
    assert!(db.acquire_lease(name, "a", long).await.unwrap());
    assert!(db.renew_lease(name, "a", long).await.unwrap());
    // Releasing someone else's lease does nothing; releasing one's own ends it.
    db.release_lease(name, "b").await.unwrap();
    assert!(db.lease_alive(name).await.unwrap());
    db.release_lease(name, "a").await.unwrap();
    assert!(!db.lease_alive(name).await.unwrap());
    db.release_lease(name, "a").await.unwrap();

    // Unrenewed, it expires; expired, it is not renewed but anyone may take it.
    assert!(db
        .acquire_lease(name, "a", Duration::from_millis(200))
        .await
        .unwrap());
    eventually("the unrenewed lease to expire", async || {
        !db.lease_alive(name).await.unwrap()
    })
    .await;
    assert!(!db.renew_lease(name, "a", long).await.unwrap());
    assert!(db.acquire_lease(name, "b", long).await.unwrap());
    db.release_lease(name, "b").await.unwrap();

    // A heartbeat holds its lease against a second one until released.
    let (ttl, every) = (Duration::from_secs(5), Duration::from_millis(50));
    let beat = Heartbeat::start(db.clone(), "workflow-run/p/w1", ttl, every)
        .await
        .unwrap();
    assert!(db.lease_alive("workflow-run/p/w1").await.unwrap());
    let err = Heartbeat::start(db.clone(), "workflow-run/p/w1", ttl, every)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict);
    beat.release().await.unwrap();
    assert!(!db.lease_alive("workflow-run/p/w1").await.unwrap());
}

/// The whole suite; the messages of every error it provoked, in order.
async fn suite(db: Arc<dyn Db>) -> Vec<String> {
    let mut errors = artifacts(db.as_ref()).await;
    errors.extend(runs(db.as_ref()).await);
    builds(db.as_ref()).await;
    errors.extend(workflow_runs(db.as_ref()).await);
    leases(db).await;
    errors
}

async fn sqlite_suite() -> Vec<String> {
    let dir = TempDir::new().unwrap();
    let db = SqliteDb::open(&dir.path().join("baton.db")).unwrap();
    suite(Arc::new(db)).await
}

#[tokio::test]
async fn sqlite_db_passes_the_suite() {
    let errors = sqlite_suite().await;
    assert!(errors.iter().any(|e| e.contains("store://")), "{errors:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_db_passes_the_suite_with_the_errors_of_sqlite() {
    let data = TempDir::new().unwrap();
    let server = TestServer::with_project(data.path(), None).await;
    let errors = suite(Arc::new(server.db(None))).await;
    assert_eq!(errors, sqlite_suite().await);
}

// ---------------------------------------------------------------------------------------------
// HTTP's own behaviour.

#[tokio::test]
async fn an_unknown_project_is_not_found_and_a_bad_name_never_leaves_the_client() {
    let data = TempDir::new().unwrap();
    let server = TestServer::with_project(data.path(), None).await;
    let db = server.db(None);
    let err = db.read_run("nope", "r1").await.unwrap_err();
    assert_eq!(
        failure(err, ErrorKind::NotFound),
        "Project `nope` not found"
    );
    let err = db.lease_alive("run/nope/r1").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    // A lease name that names no project cannot be routed.
    let err = db.lease_alive("lonely").await.unwrap_err();
    assert!(failure(err, ErrorKind::InvalidArgument).contains("`lonely`"));
    // Dot segments would be resolved away by the URL: refused before sending.
    let dots = StoreUri {
        key: "..".into(),
        ..StoreUri::latest("p", "x")
    };
    let err = db.read_artifact("p", &dots).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    let err = db.read_run("..", "r1").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
}

/// Sends `method path` as written (no client normalises its path) and returns the answer.
async fn raw_request(addr: SocketAddr, method: &str, path: &str) -> String {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    answer
}

/// Every entry under `dir`, recursively, sorted.
fn tree(dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path.clone());
            }
            found.push(path.display().to_string());
        }
    }
    found.sort();
    found
}

#[tokio::test]
async fn dot_dot_in_a_path_is_a_400_that_touches_no_file() {
    let data = TempDir::new().unwrap();
    let server = TestServer::with_project(data.path(), None).await;
    // Open the project's database first, so only what the requests do could change the tree.
    server.db(None).list_workflow_runs("p").await.unwrap();
    let before = tree(data.path());
    let db = "/api/baton/v1/projects";
    for (method, path) in [
        ("GET", format!("{db}/p/db/artifacts/..")),
        ("GET", format!("{db}/p/db/artifacts/%2E%2E")),
        ("GET", format!("{db}/p/db/artifacts/..%2F..%2Fetc")),
        ("GET", format!("{db}/p/db/artifacts/..?uid=u1")),
        ("GET", format!("{db}/../db/runs")),
        ("GET", format!("{db}/%2E%2E/db/workflow-runs")),
        (
            "PUT",
            format!("{db}/..%2Fp/db/workflow-runs/w1/termination"),
        ),
        ("GET", format!("{db}/../db/leases/run%2F..%2Fx")),
    ] {
        let answer = raw_request(server.addr, method, &path).await;
        assert!(
            answer.starts_with("HTTP/1.1 400"),
            "{method} {path}:\n{answer}"
        );
        assert!(
            answer.contains("MLRunInvalidArgumentError"),
            "{method} {path}:\n{answer}"
        );
    }
    assert_eq!(tree(data.path()), before);
}

#[tokio::test]
async fn a_body_or_lease_of_another_project_or_key_is_refused() {
    let data = TempDir::new().unwrap();
    let server = TestServer::with_project(data.path(), None).await;
    server.create_project("q", None).await;
    let client = reqwest::Client::new();
    let db = format!("{}/api/baton/v1/projects", server.url());
    let put = |path: String, body: serde_json::Value| client.put(path).json(&body).send();
    let cases = [
        (format!("{db}/q/db/runs/r1"), json!(run("r1", "w1"))),
        (format!("{db}/p/db/runs/r2"), json!(run("r1", "w1"))),
        (
            format!("{db}/p/db/workflow-runs/w2"),
            json!(workflow_run("w1")),
        ),
        (
            format!("{db}/p/db/artifacts/prep/u2"),
            json!(artifact("u1", "t")),
        ),
        (
            format!("{db}/p/db/artifacts/other/u1"),
            json!(artifact("u1", "t")),
        ),
    ];
    for (path, body) in cases {
        let response = put(path.clone(), body).await.unwrap();
        assert_eq!(response.status(), 400, "{path}");
        let detail = response.json::<serde_json::Value>().await.unwrap()["detail"].clone();
        assert!(
            detail
                .as_str()
                .unwrap()
                .starts_with("MLRunBadRequestError("),
            "{path}: {detail}"
        );
    }
    let response = client
        .get(format!("{db}/p/db/leases/run%2Fq%2Fr1"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    // Nothing was written anywhere.
    let http = server.db(None);
    for project in ["p", "q"] {
        assert!(http
            .list_runs(project, &RunFilter::default())
            .await
            .unwrap()
            .is_empty());
        assert!(http.list_workflow_runs(project).await.unwrap().is_empty());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_get_waits_for_a_server_that_starts_listening_late() {
    let data = TempDir::new().unwrap();
    let first = TestServer::with_project(data.path(), None).await;
    first.db(None).store_run(&run("r1", "w1")).await.unwrap();
    first.stop().await;

    // Nobody listens on the port yet; the server starts there a little later.
    let port = closed_port();
    let late = tokio::spawn({
        let data = data.path().to_path_buf();
        async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            TestServer::start(&data, loopback(port), None).await
        }
    });
    let db = HttpDb::new(&format!("http://127.0.0.1:{port}"), None).unwrap();
    let read = db.read_run("p", "r1").await.unwrap();
    assert_eq!(read.metadata.uid, "r1");
    late.await.unwrap().stop().await;
}

#[tokio::test]
async fn a_post_to_a_dead_port_fails_at_once_naming_the_url() {
    let port = closed_port();
    let db = HttpDb::new(&format!("http://127.0.0.1:{port}"), None).unwrap();
    let err = db
        .acquire_lease("run/p/r1", "me", Duration::from_secs(10))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Runtime);
    let message = err.to_string();
    let url =
        format!("http://127.0.0.1:{port}/api/baton/v1/projects/p/db/leases/run%2Fp%2Fr1/acquire");
    assert!(message.contains(&url), "{message}");
    assert!(message.contains("POST"), "{message}");
    assert!(!message.contains("tried"), "{message}");
    assert!(err.hint().unwrap().contains("baton server"));
}

/// A port that accepts connections and closes them unanswered, counting them.
async fn hang_up_port() -> (u16, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind(loopback(0)).await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let count = Arc::new(AtomicUsize::new(0));
    tokio::spawn({
        let count = count.clone();
        async move {
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                count.fetch_add(1, Ordering::SeqCst);
                drop(stream);
            }
        }
    });
    (port, count)
}

#[tokio::test]
async fn only_requests_that_may_be_repeated_are_retried() {
    let (port, connections) = hang_up_port().await;
    let db = HttpDb::new(&format!("http://127.0.0.1:{port}"), None).unwrap();

    let err = db.read_run("p", "r1").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Runtime);
    assert!(err.to_string().contains("tried 5 times"), "{}", err.chain());
    assert_eq!(
        connections.swap(0, Ordering::SeqCst),
        5,
        "GET: 1 + 4 retries"
    );

    db.store_run(&run("r1", "w1")).await.unwrap_err();
    assert_eq!(connections.swap(0, Ordering::SeqCst), 5, "PUT is repeated");

    db.release_lease("run/p/r1", "me").await.unwrap_err();
    assert_eq!(
        connections.swap(0, Ordering::SeqCst),
        5,
        "DELETE is repeated"
    );

    let err = db.update_active_run(&run("r1", "w1")).await.unwrap_err();
    assert!(!err.to_string().contains("tried"), "{}", err.chain());
    assert_eq!(
        connections.swap(0, Ordering::SeqCst),
        1,
        "POST is never repeated"
    );

    db.renew_lease("run/p/r1", "me", Duration::from_secs(1))
        .await
        .unwrap_err();
    assert_eq!(
        connections.swap(0, Ordering::SeqCst),
        1,
        "POST is never repeated"
    );
}

#[tokio::test]
async fn a_token_protected_server_needs_the_right_token() {
    let data = TempDir::new().unwrap();
    let secret = "s3cret-token";
    let server = TestServer::with_project(data.path(), Some(secret)).await;

    let err = server.db(None).read_run("p", "r1").await.unwrap_err();
    let message = failure(err, ErrorKind::InvalidArgument);
    assert!(message.contains("token is missing"), "{message}");
    let err = server.db(None).list_workflow_runs("p").await.unwrap_err();
    assert!(err.hint().unwrap().contains("BATON_TOKEN"), "{err:?}");

    let err = server
        .db(Some("wrong"))
        .list_workflow_runs("p")
        .await
        .unwrap_err();
    let message = failure(err, ErrorKind::InvalidArgument);
    assert!(message.contains("token is wrong"), "{message}");
    assert!(!message.contains(secret), "{message}");

    let db = server.db(Some(secret));
    db.store_run(&run("r1", "w1")).await.unwrap();
    assert_eq!(db.read_run("p", "r1").await.unwrap(), run("r1", "w1"));
    assert!(!format!("{db:?}").contains(secret));
}
