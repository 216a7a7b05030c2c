//! The web pages' routes and rendering, through `Router::oneshot` over a real project's
//! SQLite database (`baton ui`'s source), and mounted in a real `baton server`: every page,
//! escaping of step names, errors, parameters and log lines, the live event and log streams,
//! and the access rules of the actions.

mod common;

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::Router;
use baton::db::Db;
use baton::engine::{StepState, StepStatus, WorkflowState};
use baton::model::{ResolvedCodeRecord, WorkflowRunRecord};
use baton::project::Project;
use baton::web::{router, Access, EmbeddedSource};
use common::server::TestServer;
use common::TestProject;
use futures::StreamExt;
use serde_json::{json, Value};
use tower::ServiceExt;

const SCRIPT: &str = "<script>alert(1)</script>";
const ESCAPED: &str = "&lt;script&gt;alert(1)&lt;/script&gt;";

/// The pages of `project` as `baton ui` serves them.
fn pages(project: &TestProject, access: Access) -> Router {
    let project = Project::load(project.path()).unwrap();
    router(Arc::new(EmbeddedSource::open(project).unwrap()), access)
}

fn db(project: &TestProject) -> Arc<dyn Db> {
    Arc::new(Project::load(project.path()).unwrap().open_db().unwrap())
}

async fn send(app: &Router, request: Request<Body>) -> (StatusCode, axum::http::HeaderMap, String) {
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let body = axum::body::to_bytes(response.into_body(), 16 << 20)
        .await
        .unwrap();
    (status, headers, String::from_utf8(body.to_vec()).unwrap())
}

async fn get(app: &Router, path: &str) -> (StatusCode, String) {
    let request = Request::get(path).body(Body::empty()).unwrap();
    let (status, _, body) = send(app, request).await;
    (status, body)
}

/// A POST as a browser sends it from one of the pages.
fn same_origin_post(path: &str) -> Request<Body> {
    Request::post(path)
        .header("sec-fetch-site", "same-origin")
        .body(Body::empty())
        .unwrap()
}

fn step(name: &str, state: StepState, attempts: u32, run_uid: Option<&str>) -> StepStatus {
    let mut step = StepStatus::pending(name.to_string());
    step.state = state;
    step.attempts = attempts;
    if state != StepState::Pending {
        step.started = "2026-01-01T00:00:00Z".parse().ok();
    }
    if state.is_terminal() {
        step.finished = "2026-01-01T00:00:02.5Z".parse().ok();
    }
    step.run_uid = run_uid.map(str::to_string);
    step
}

/// A workflow run record of `steps` (a chain, the last one guarded by a condition), stored
/// as a driver records it; no driver, so it is never settled as orphaned.
fn record(id: &str, state: WorkflowState, steps: Vec<StepStatus>) -> WorkflowRunRecord {
    let mut graph_steps: Vec<Value> = Vec::new();
    for (i, s) in steps.iter().enumerate() {
        let mut node = json!({"name": s.name, "function": "triv", "outputs": ["score"]});
        if i > 0 {
            node["after"] = json!([steps[i - 1].name]);
        }
        if i + 1 == steps.len() && i > 0 {
            node["when"] = json!(format!(
                "{{{{steps.{}.outputs.score}}}} > 0.5",
                steps[i - 1].name
            ));
        }
        graph_steps.push(node);
    }
    WorkflowRunRecord {
        id: id.to_string(),
        project: "my-project".into(),
        name: "main".into(),
        engine: "local".into(),
        state,
        args: serde_json::Map::from_iter([("label".to_string(), json!(SCRIPT))]),
        workflow: ResolvedCodeRecord {
            source: "store://artifacts/my-project/wf".into(),
            uid: Some("abc123".into()),
            digest: "sha256:feed".into(),
        },
        steps,
        error: None,
        started: "2026-01-01T00:00:00Z".into(),
        finished: state.is_terminal().then(|| "2026-01-01T00:00:05Z".into()),
        driver: None,
        graph: Some(json!({"name": "main", "steps": graph_steps})),
        retry_of: None,
        labels: Default::default(),
    }
}

#[tokio::test]
async fn the_only_project_opens_with_its_runs_functions_and_artifacts() {
    let p = TestProject::with_trivial_function();
    let db = db(&p);
    let run = record(
        "r1",
        WorkflowState::Succeeded,
        vec![step("a", StepState::Succeeded, 1, None)],
    );
    db.store_workflow_run(&run).await.unwrap();
    let app = pages(&p, Access::open());
    let request = Request::get("/").body(Body::empty()).unwrap();
    let (status, headers, _) = send(&app, request).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(headers[header::LOCATION], "/projects/my-project");
    let (status, body) = get(&app, "/projects/my-project").await;
    assert_eq!(status, StatusCode::OK);
    for part in [
        "href=\"/projects/my-project/workflow-runs/r1\"",
        ">succeeded<",
        "<td>triv</td>",
        "store://my-project/triv_code",
        "<td>triv_code</td>",
        "latest",
        "Schedules live on a <code>baton server</code>",
    ] {
        assert!(body.contains(part), "missing `{part}` in:\n{body}");
    }
}

#[tokio::test]
async fn a_run_page_draws_each_step_with_state_duration_attempt_and_condition() {
    let p = TestProject::new();
    let steps = vec![
        step("prep", StepState::Succeeded, 1, Some("u1")),
        step("train", StepState::Failed, 3, Some("u2")),
        step("publish", StepState::Skipped, 0, None),
    ];
    let mut run = record("r2", WorkflowState::Failed, steps);
    run.error = Some("step `train` failed".into());
    db(&p).store_workflow_run(&run).await.unwrap();
    let (status, body) = get(
        &pages(&p, Access::open()),
        "/projects/my-project/workflow-runs/r2",
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    // One SVG box per step, each with its state word (not only a colour), duration and attempt.
    assert_eq!(body.matches("<g class=\"node").count(), 3, "{body}");
    for part in [
        "<tspan class=\"word\">succeeded</tspan> <tspan class=\"dur\">2.5s</tspan> · attempt <tspan class=\"att\">1</tspan>",
        "<tspan class=\"sym\">✖</tspan> <tspan class=\"word\">failed</tspan>",
        "attempt <tspan class=\"att\">3</tspan>",
        // The guarded step shows its condition, and the edge into it is drawn as guarded.
        "if train.score &gt; 0.5",
        "class=\"edge guarded\"",
        // Links to each step's run.
        "href=\"/projects/my-project/runs/u1\"",
        // The first failed step is highlighted and named.
        "class=\"node first-failed\"",
        "First failed step: <a href=\"#step-1\"><code>train</code>",
        "step `train` failed",
        // A failed run can be retried, not terminated.
        "action=\"/projects/my-project/workflow-runs/r2/retry\" data-when=\"retryable\">",
        "sha256:feed",
    ] {
        assert!(body.contains(part), "missing `{part}` in:\n{body}");
    }
    assert!(body.contains("data-when=\"active\" hidden"), "{body}");
}

#[tokio::test]
async fn step_names_errors_and_arguments_holding_markup_are_shown_as_text() {
    let p = TestProject::new();
    let mut bad = step(SCRIPT, StepState::Failed, 1, None);
    bad.error = Some(SCRIPT.into());
    let mut run = record("r3", WorkflowState::Failed, vec![bad]);
    run.error = Some(SCRIPT.into());
    run.name = SCRIPT.into();
    db(&p).store_workflow_run(&run).await.unwrap();
    let app = pages(&p, Access::open());
    for path in [
        "/projects/my-project/workflow-runs/r3",
        "/projects/my-project",
    ] {
        let (status, body) = get(&app, path).await;
        assert_eq!(status, StatusCode::OK);
        assert!(
            !body.contains(SCRIPT),
            "unescaped markup on {path}:\n{body}"
        );
        assert!(body.contains(ESCAPED), "{path}: {body}");
    }
}

#[tokio::test]
async fn a_step_run_page_shows_parameters_results_code_and_log_as_text() {
    let p = TestProject::new();
    p.write(
        "echo.py",
        "def main(context, msg):\n    print('said:', msg)\n    context.log_result('echo', msg)\n",
    );
    p.log_code("echo_code", "echo.py", &[]);
    p.set_store_function("echo", "echo_code", "echo:main");
    let run = p
        .baton(&[
            "run-function",
            "echo",
            "-p",
            &format!("msg={SCRIPT}"),
            "--json",
        ])
        .json();
    let uid = run["metadata"]["uid"].as_str().unwrap().to_string();
    let (status, body) = get(
        &pages(&p, Access::open()),
        &format!("/projects/my-project/runs/{uid}"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(!body.contains(SCRIPT), "unescaped markup:\n{body}");
    for part in [
        format!("<th>msg</th><td><code>{ESCAPED}</code>"),
        format!("<th>echo</th><td><code>{ESCAPED}</code>"),
        format!("said: {ESCAPED}"),
        "store://my-project/echo_code".to_string(),
        "Code digest".to_string(),
        ">completed<".to_string(),
    ] {
        assert!(body.contains(&part), "missing `{part}` in:\n{body}");
    }
    // An ended run's log is complete on the page: nothing to follow.
    assert!(!body.contains("data-follow"), "{body}");
}

#[tokio::test]
async fn unknown_projects_and_runs_are_404_pages_naming_them() {
    let p = TestProject::new();
    let app = pages(&p, Access::open());
    let (status, body) = get(&app, "/projects/my-project/workflow-runs/nope").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(
        body.contains("nope") && body.contains("<!DOCTYPE html>"),
        "{body}"
    );
    let (status, body) = get(&app, "/projects/other/workflow-runs/x").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body.contains("Project `other` not found"), "{body}");
}

/// Reads an SSE body until `done` holds for what was read, or fails after 20 s.
async fn read_until(
    stream: &mut (impl futures::Stream<Item = Result<axum::body::Bytes, axum::Error>> + Unpin),
    text: &mut String,
    done: impl Fn(&str) -> bool,
) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !done(text) {
        let frame = tokio::time::timeout_at(deadline, stream.next())
            .await
            .unwrap_or_else(|_| panic!("timed out; read so far:\n{text}"));
        match frame {
            Some(bytes) => text.push_str(std::str::from_utf8(&bytes.unwrap()).unwrap()),
            None => panic!("the stream ended; read:\n{text}"),
        }
    }
}

#[tokio::test]
async fn a_run_page_stream_sends_a_snapshot_then_each_change_until_the_run_ends() {
    let p = TestProject::new();
    let db = db(&p);
    let mut run = record(
        "r4",
        WorkflowState::Running,
        vec![
            step("a", StepState::Running, 1, None),
            step("b", StepState::Pending, 0, None),
        ],
    );
    db.store_workflow_run(&run).await.unwrap();
    let app = pages(&p, Access::open());
    let response = app
        .oneshot(
            Request::get("/projects/my-project/workflow-runs/r4/events")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(
        response.headers()[header::CONTENT_TYPE],
        "text/event-stream"
    );
    let mut stream = response.into_body().into_data_stream();
    let mut text = String::new();
    read_until(&mut stream, &mut text, |t| t.contains("event: run")).await;
    assert!(text.contains(r#""i":0,"state":"running""#), "{text}");
    assert!(text.contains(r#""i":1,"state":"pending""#), "{text}");

    text.clear();
    run.steps[0] = step("a", StepState::Succeeded, 1, Some("u1"));
    db.store_workflow_run(&run).await.unwrap();
    read_until(&mut stream, &mut text, |t| t.contains("succeeded")).await;
    // Only the step that changed is sent.
    assert!(text.contains(r#""i":0,"state":"succeeded""#), "{text}");
    assert!(text.contains("/projects/my-project/runs/u1"), "{text}");
    assert!(!text.contains(r#""i":1"#), "{text}");

    text.clear();
    run.steps[1] = step("b", StepState::Succeeded, 1, None);
    run.state = WorkflowState::Succeeded;
    db.store_workflow_run(&run).await.unwrap();
    read_until(&mut stream, &mut text, |t| t.contains(r#""ended":true"#)).await;
    let rest = tokio::time::timeout(Duration::from_secs(5), stream.next()).await;
    assert!(
        matches!(rest, Ok(None)),
        "the stream should end with the run: {rest:?}"
    );
}

#[tokio::test]
async fn a_log_streams_in_bounded_chunks_from_the_page_offset() {
    let p = TestProject::with_trivial_function();
    let run = p.baton(&["run-function", "triv", "--json"]).json();
    let uid = run["metadata"]["uid"].as_str().unwrap().to_string();
    // A 100 KiB log with markup in it, as a handler could print.
    let line = format!("{SCRIPT} é\n");
    let log: String = line.repeat(100 * 1024 / line.len() + 1);
    std::fs::write(p.path().join(format!(".baton/logs/{uid}.log")), &log).unwrap();
    let app = pages(&p, Access::open());
    let (_, page) = get(&app, &format!("/projects/my-project/runs/{uid}")).await;
    assert!(!page.contains(SCRIPT));
    // The page carries the last 64 KiB, starting on a whole character, and says what it left out.
    assert!(page.contains("bytes are not shown"), "{page}");

    let response = app
        .oneshot(
            Request::get(format!("/projects/my-project/runs/{uid}/log?from=100"))
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    let mut stream = response.into_body().into_data_stream();
    let mut text = String::new();
    read_until(&mut stream, &mut text, |t| t.contains("event: end")).await;
    let mut received = String::new();
    for event in text.split("\n\n").filter(|e| e.starts_with("event: log")) {
        let data = event
            .lines()
            .find_map(|l| l.strip_prefix("data: "))
            .unwrap();
        let chunk: String = serde_json::from_str(data).unwrap();
        assert!(chunk.len() <= 16 * 1024, "a chunk of {} bytes", chunk.len());
        received.push_str(&chunk);
    }
    assert_eq!(received, log[100..]);
}

#[tokio::test]
async fn actions_need_a_same_origin_post_and_follow_the_cli_rules() {
    let p = TestProject::with_trivial_function();
    let run = record(
        "r5",
        WorkflowState::Succeeded,
        vec![step("a", StepState::Succeeded, 1, None)],
    );
    db(&p).store_workflow_run(&run).await.unwrap();
    let app = pages(&p, Access::open());
    let path = "/projects/my-project/workflow-runs/r5/terminate";
    for refused in [
        Request::post(path).body(Body::empty()).unwrap(),
        Request::post(path)
            .header("sec-fetch-site", "cross-site")
            .body(Body::empty())
            .unwrap(),
        Request::post(path)
            .header("host", "a:1")
            .header("origin", "http://evil:1")
            .body(Body::empty())
            .unwrap(),
    ] {
        let (status, _, body) = send(&app, refused).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
        assert!(body.contains("same-origin"), "{body}");
    }
    // Terminating an ended run changes nothing and shows it again.
    let (status, headers, _) = send(&app, same_origin_post(path)).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(
        headers[header::LOCATION],
        "/projects/my-project/workflow-runs/r5"
    );
    let origin_post = Request::post(path)
        .header("host", "127.0.0.1:9")
        .header("origin", "http://127.0.0.1:9")
        .body(Body::empty())
        .unwrap();
    assert_eq!(send(&app, origin_post).await.0, StatusCode::SEE_OTHER);
    // Retrying a run that succeeded is refused with the CLI's message.
    let (status, _, body) = send(
        &app,
        same_origin_post("/projects/my-project/workflow-runs/r5/retry"),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body.contains("workflow run `r5` succeeded; there is nothing to retry"),
        "{body}"
    );
}

#[tokio::test]
async fn with_a_token_pages_need_it_as_a_bearer_or_the_login_cookie() {
    let p = TestProject::new();
    let app = pages(&p, Access::with_token(Arc::new(|t| t == "s3cret")));
    let (status, headers, _) = send(
        &app,
        Request::get("/projects/my-project")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(headers[header::LOCATION], "/login");
    let (status, body) = get(&app, "/login").await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("name=\"token\""), "{body}");

    let login = |token: &str| {
        Request::post("/login")
            .header("sec-fetch-site", "same-origin")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(format!("token={token}")))
            .unwrap()
    };
    assert_eq!(send(&app, login("wrong")).await.0, StatusCode::UNAUTHORIZED);
    let (status, headers, _) = send(&app, login("s3cret")).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let cookie = headers[header::SET_COOKIE].to_str().unwrap();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let cookie = cookie.split(';').next().unwrap().to_string();

    let with = |name: header::HeaderName, value: &str| {
        Request::get("/projects/my-project")
            .header(name, value)
            .body(Body::empty())
            .unwrap()
    };
    assert_eq!(
        send(&app, with(header::COOKIE, &cookie)).await.0,
        StatusCode::OK
    );
    assert_eq!(
        send(&app, with(header::AUTHORIZATION, "Bearer s3cret"))
            .await
            .0,
        StatusCode::OK
    );
    assert_eq!(
        send(&app, with(header::COOKIE, "baton_token=nope")).await.0,
        StatusCode::SEE_OTHER
    );
    // An action with the cookie but from another site is still refused.
    let cross = Request::post("/projects/my-project/workflow-runs/x/terminate")
        .header(header::COOKIE, &cookie)
        .header("sec-fetch-site", "cross-site")
        .body(Body::empty())
        .unwrap();
    assert_eq!(send(&app, cross).await.0, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn assets_are_built_in_and_pages_load_nothing_from_elsewhere() {
    let p = TestProject::new();
    let run = record(
        "r6",
        WorkflowState::Succeeded,
        vec![step("a", StepState::Succeeded, 1, None)],
    );
    db(&p).store_workflow_run(&run).await.unwrap();
    let app = pages(&p, Access::open());
    let (_, page) = get(&app, "/projects/my-project/workflow-runs/r6").await;
    let links: Vec<&str> = page
        .split(['"', '\''])
        .filter(|s| s.starts_with("http") && *s != "http://www.w3.org/2000/svg")
        .collect();
    assert!(links.is_empty(), "external references: {links:?}");
    for (path, kind) in [
        (
            concat!("/assets/baton-", env!("CARGO_PKG_VERSION"), ".css"),
            "text/css",
        ),
        (
            concat!("/assets/baton-", env!("CARGO_PKG_VERSION"), ".js"),
            "text/javascript",
        ),
    ] {
        assert!(page.contains(path), "{page}");
        let (status, headers, body) =
            send(&app, Request::get(path).body(Body::empty()).unwrap()).await;
        assert_eq!(status, StatusCode::OK);
        assert!(headers[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with(kind));
        assert!(body.len() > 500);
    }
}

#[test]
fn retry_from_a_server_page_starts_a_new_run_that_the_server_follows_to_its_end() {
    let (_keep, data) = common::server::data_dir();
    let server = TestServer::start_in(&data, &[]);
    let gated = common::gated::Gated::new(Some(&server.url));
    let (mut run, id) = gated.start();
    gated.baton(&["workflows", "terminate", &id]).ok();
    run.0.wait().unwrap();
    assert_eq!(gated.record(&id)["state"], "Canceled");

    let http = reqwest::blocking::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let retry = format!(
        "{}/projects/my-project/workflow-runs/{id}/retry",
        server.url
    );
    assert_eq!(http.post(&retry).send().unwrap().status(), 403);
    let answer = http
        .post(&retry)
        .header("sec-fetch-site", "same-origin")
        .send()
        .unwrap();
    assert_eq!(answer.status(), 303);
    let location = answer.headers()["location"].to_str().unwrap().to_string();
    let new_id = location.rsplit('/').next().unwrap().to_string();
    assert_ne!(new_id, id);
    assert_eq!(gated.record(&new_id)["retry_of"], id.as_str());
    // The page of the new run says what it retries; the server drives it to its end.
    let page = http
        .get(format!("{}{location}", server.url))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(
        page.contains(&format!(
            "retry of <a href=\"/projects/my-project/workflow-runs/{id}\">"
        )),
        "{page}"
    );
    gated.open();
    common::poll("the retried run succeeds", || {
        gated.record(&new_id)["state"] == "Succeeded"
    });
}

#[test]
fn a_servers_project_page_lists_its_schedules_and_pauses_resumes_and_triggers_them() {
    let (_keep, data) = common::server::data_dir();
    let server = TestServer::start_in(&data, &[]);
    let gated = common::gated::Gated::new(Some(&server.url));
    gated.open();
    let gate = gated.gate.display().to_string();
    // `baton run --schedule` sends the project's definition (workflow `gated`) to the server.
    let gate_arg = format!("gate={gate}");
    gated
        .baton(&["run", "gated", "--schedule", "0 4 * * *", "-a", &gate_arg])
        .ok();
    for name in ["nightly", SCRIPT] {
        let body = json!({
            "name": name, "workflow": "gated", "schedule": "0 3 * * *",
            "timezone": "Europe/Paris", "args": { "gate": gate },
        });
        let (status, answer) = server.call(
            reqwest::Method::POST,
            "/api/baton/v1/projects/my-project/schedules",
            Some(&body),
        );
        assert_eq!(status, 201, "{answer}");
    }
    let schedule = || server.get("/api/baton/v1/projects/my-project/schedules/nightly");
    let http = reqwest::blocking::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let page = || {
        http.get(format!("{}/projects/my-project", server.url))
            .send()
            .unwrap()
            .text()
            .unwrap()
    };
    let next = schedule()["next_fire"].as_str().unwrap().to_string();
    let next = chrono::DateTime::parse_from_rfc3339(&next).unwrap();
    let next = next
        .with_timezone(&chrono::Utc)
        .format("%Y-%m-%d %H:%M:%S UTC");
    let shown = page();
    for part in [
        "<section id=\"schedules\">",
        "<td>nightly</td>",
        "<td>gated</td>",
        "<code>0 3 * * *</code> <small>Europe/Paris</small>",
        &next.to_string(),
        "action=\"/projects/my-project/schedules/nightly/pause\"",
        ESCAPED,
    ] {
        assert!(shown.contains(part), "missing `{part}` in:\n{shown}");
    }
    assert!(!shown.contains(SCRIPT), "{shown}");

    // Actions need a same-origin POST (or the token), like a run's.
    let action = |what: &str, form: &[(&str, &str)], same_origin: bool| {
        let mut request = http
            .post(format!(
                "{}/projects/my-project/schedules/nightly/{what}",
                server.url
            ))
            .form(form);
        if same_origin {
            request = request.header("sec-fetch-site", "same-origin");
        }
        request.send().unwrap()
    };
    let refused = action("pause", &[("note", "x")], false);
    assert_eq!(refused.status(), 403);
    assert!(refused.text().unwrap().contains("same-origin"));
    assert_eq!(action("trigger", &[], false).status(), 403);
    assert_eq!(schedule()["paused"], false);

    let paused = action("pause", &[("note", "db <b>migration</b>")], true);
    assert_eq!(paused.status(), 303);
    assert_eq!(
        paused.headers()["location"],
        "/projects/my-project#schedules"
    );
    assert_eq!(schedule()["paused"], true);
    assert_eq!(schedule()["note"], "db <b>migration</b>");
    let shown = page();
    assert!(
        shown.contains("paused: <q class=\"note\">db &lt;b&gt;migration&lt;/b&gt;</q>"),
        "{shown}"
    );
    assert!(shown.contains("/schedules/nightly/resume"), "{shown}");

    assert_eq!(action("resume", &[], true).status(), 303);
    assert_eq!(schedule()["paused"], false);
    assert!(!page().contains("paused: "), "{}", page());

    // A trigger starts a run, listed as started by the schedule; its fire shows as the last.
    assert_eq!(action("trigger", &[], true).status(), 303);
    let mut id = String::new();
    common::poll("the triggered run succeeds", || {
        let runs = gated.baton(&["workflows", "list", "--json"]).json();
        let Some([run]) = runs.as_array().map(Vec::as_slice) else {
            return false;
        };
        id = run["id"].as_str().unwrap().to_string();
        run["state"] == "Succeeded"
    });
    let shown = page();
    for part in [
        format!("href=\"/projects/my-project/workflow-runs/{id}\""),
        "schedule <a href=\"/projects/my-project#schedules\"><code>nightly</code></a>".into(),
    ] {
        assert!(shown.contains(&part), "missing `{part}` in:\n{shown}");
    }
    // The service's rules and errors: an unknown schedule is its 404.
    let unknown = http
        .post(format!(
            "{}/projects/my-project/schedules/nope/trigger",
            server.url
        ))
        .header("sec-fetch-site", "same-origin")
        .send()
        .unwrap();
    assert_eq!(unknown.status(), 404);
    assert!(unknown.text().unwrap().contains("nope"));
}

#[test]
fn the_server_serves_the_pages_at_the_root_behind_its_token() {
    let (_keep, data) = common::server::data_dir();
    let server = TestServer::start_in(&data, &["--token", "s3cret"]);
    server.create_project("shown");
    server.create_project("other");
    let http = reqwest::blocking::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let anonymous = http.get(format!("{}/", server.url)).send().unwrap();
    assert_eq!(anonymous.status(), 303);
    assert_eq!(anonymous.headers()["location"], "/login");
    let projects = http
        .get(format!("{}/", server.url))
        .bearer_auth("s3cret")
        .send()
        .unwrap()
        .text()
        .unwrap();
    for link in ["href=\"/projects/shown\"", "href=\"/projects/other\""] {
        assert!(projects.contains(link), "{projects}");
    }
    let page = http
        .get(format!("{}/projects/shown", server.url))
        .bearer_auth("s3cret")
        .send()
        .unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().unwrap().contains("Project <code>shown</code>"));
    // The API keeps its own routes and answers.
    let (status, body) = server.call(reqwest::Method::GET, "/api/v1/projects/shown", None);
    assert_eq!(status, 200, "{body}");
    let (status, body) = server.call(reqwest::Method::GET, "/api/v1/nothing-here", None);
    assert_eq!(status, 404, "{body}");
}

#[test]
fn baton_ui_opens_the_browser_on_request_and_refuses_a_server() {
    let p = TestProject::new();
    let opened = p.path().join("opened");
    let browser = p.write(
        "browser.sh",
        format!("#!/bin/sh\necho \"$1\" > {}\n", opened.display()),
    );
    std::fs::set_permissions(
        &browser,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let ui =
        common::browser::Ui::start_with(p.path(), &["--open"], &[("BROWSER", browser.as_os_str())]);
    common::poll("the browser is opened", || {
        std::fs::read_to_string(&opened).is_ok_and(|url| url.trim() == ui.url)
    });
    let page = reqwest::blocking::get(format!("{}projects/my-project", ui.url)).unwrap();
    assert_eq!(page.status(), 200);

    let refused = common::Run::from(
        p.command(&["ui", "--port", "0"])
            .env("BATON_API", "http://127.0.0.1:9")
            .output()
            .unwrap(),
    );
    let stderr = refused.fails(2);
    assert!(stderr.contains("embedded database"), "{stderr}");
    assert!(stderr.contains("http://127.0.0.1:9/"), "{stderr}");
}
