//! The KFP client and the kfp engine against the fake KFP server (`tests/common/fake_kfp.rs`),
//! plus a check that the fake answers the official `kfp.Client` the way KFP does.
//!
//! Conformance checks that cannot apply to a fake KFP, whose runs execute nothing and whose
//! tasks all mirror the run's state:
//! - `runs_a_linear_dag_in_order`, `retry_reruns_what_did_not_succeed`: they count the steps a
//!   `ConformanceExecutor` started, and no executor runs under KFP (the linear run and the
//!   retry are checked below on what KFP reports instead);
//! - `passes_outputs_and_arguments`: outputs are written by the steps' containers;
//! - `evaluates_conditions`, `retries_and_failures`: per-step outcomes (a skipped branch, one
//!   failed step beside succeeded ones, a retried attempt) are decided by KFP's driver, which
//!   the fake does not have;
//! - `fans_out_concurrently`: a barrier between steps needs steps that run.

mod common;

use std::sync::Arc;
use std::time::Duration;

use baton::engine::conformance;
use baton::engine::{RunOptions, StepState, WorkflowEngine, WorkflowRunRequest, WorkflowState};
use baton::engines::kfp::{CompileFn, KfpEngine};
use baton::error::{Error, ErrorKind};
use baton::kfp::client::{KfpClient, KfpConfig, ListRuns, NewRun, Predicate, RuntimeState};
use baton::workflow::Dag;
use common::fake_kfp::{FakeKfp, Fault};
use serde_json::{json, Map, Value};

const FAST: [Duration; 2] = [Duration::from_millis(10), Duration::from_millis(20)];

fn client(fake: &FakeKfp) -> KfpClient {
    client_with(KfpConfig::new(fake.url()))
}

fn client_with(config: KfpConfig) -> KfpClient {
    KfpClient::new(config)
        .unwrap()
        .with_retry_delays(FAST.to_vec())
}

/// A minimal valid pipeline spec of tasks `names` (no edges), declaring `params` (name → type)
/// and `fake_outcome` with `outcome` as its default.
fn spec(names: &[&str], outcome: &str, params: &[(&str, &str)]) -> Value {
    let mut tasks = Map::new();
    let mut components = Map::new();
    let mut executors = Map::new();
    for name in names {
        tasks.insert(
            name.to_string(),
            json!({"componentRef": {"name": format!("comp-{name}")}, "taskInfo": {"name": name}}),
        );
        components.insert(
            format!("comp-{name}"),
            json!({"executorLabel": format!("exec-{name}")}),
        );
        executors.insert(
            format!("exec-{name}"),
            json!({"container": {"image": "baton/runner:latest", "command": ["baton", "runner"]}}),
        );
    }
    let mut inputs = Map::new();
    inputs.insert(
        "fake_outcome".into(),
        json!({"parameterType": "STRING", "defaultValue": outcome, "isOptional": true}),
    );
    for (name, kind) in params {
        inputs.insert(name.to_string(), json!({"parameterType": kind}));
    }
    json!({
        "components": components,
        "deploymentSpec": {"executors": executors},
        "pipelineInfo": {"name": "test-pipeline"},
        "root": {"dag": {"tasks": tasks}, "inputDefinitions": {"parameters": inputs}},
        "schemaVersion": "2.1.0",
        "sdkVersion": "baton-test",
    })
}

/// The tests' compiler: one root task per step (ordered by `after` and data edges), and the
/// fake's outcome from the steps' handlers (`hang` > `fail` > `fail-once` > success).
fn compile(request: &WorkflowRunRequest) -> baton::Result<Value> {
    let dag: &Dag = &request.dag;
    if let Some(step) = dag
        .steps()
        .iter()
        .find(|s| s.action != baton::workflow::StepAction::Run)
    {
        return Err(Error::invalid(format!(
            "step `{}` cannot be compiled by the tests' compiler",
            step.name
        )));
    }
    let handlers: Vec<&str> = dag
        .steps()
        .iter()
        .filter_map(|s| s.handler.as_deref())
        .collect();
    let outcome = ["hang", "fail", "fail-once"]
        .iter()
        .zip(["HANG", "FAILED", "FAIL_ONCE"])
        .find(|(h, _)| handlers.contains(h))
        .map_or("SUCCEEDED", |(_, o)| o);
    let names: Vec<&str> = dag.steps().iter().map(|s| s.name.as_str()).collect();
    let mut spec = spec(&names, outcome, &[]);
    for (i, step) in dag.steps().iter().enumerate() {
        let deps: Vec<&str> = dag
            .predecessors(i)
            .map(|p| dag.step(p).name.as_str())
            .collect();
        if !deps.is_empty() {
            spec["root"]["dag"]["tasks"][&step.name]["dependentTasks"] = json!(deps);
        }
    }
    Ok(spec)
}

fn engine(fake: &FakeKfp) -> KfpEngine {
    let compile: CompileFn = Arc::new(compile);
    KfpEngine::new(client(fake), compile).with_poll_interval(Duration::from_millis(10))
}

fn request(yaml: &str) -> WorkflowRunRequest {
    WorkflowRunRequest {
        project: "p".into(),
        dag: conformance::dag(yaml),
        args: Map::new(),
    }
}

fn new_run<'a>(spec: &'a Value, parameters: &'a Map<String, Value>) -> NewRun<'a> {
    NewRun {
        display_name: "r",
        description: "a test run",
        pipeline_spec: spec,
        parameters,
    }
}

fn params(v: Value) -> Map<String, Value> {
    v.as_object().cloned().unwrap()
}

#[track_caller]
fn assert_error(e: &Error, kind: ErrorKind, parts: &[&str]) {
    assert_eq!(e.kind(), kind, "{}", e.chain());
    let text = e.chain().to_string();
    for part in parts {
        assert!(text.contains(part), "`{part}` not in: {text}");
    }
}

// ---- the client ----

#[tokio::test]
async fn healthz_and_the_experiment_is_found_or_created_once() {
    let fake = FakeKfp::start().await;
    let c = client(&fake);
    assert_eq!(c.healthz().await.unwrap()["multi_user"], json!(false));
    let spec = spec(&["a"], "SUCCEEDED", &[]);
    let none = Map::new();
    let first = c.create_run(&new_run(&spec, &none)).await.unwrap();
    let second = c.create_run(&new_run(&spec, &none)).await.unwrap();
    assert_eq!(first.experiment_id, second.experiment_id);
    let log = fake.requests();
    let calls: Vec<String> = log
        .iter()
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    assert_eq!(
        calls,
        [
            "GET /apis/v2beta1/healthz",
            "GET /apis/v2beta1/experiments",
            "POST /apis/v2beta1/experiments",
            "POST /apis/v2beta1/runs",
            "POST /apis/v2beta1/runs",
        ]
    );
    let filter: Value = serde_json::from_str(&log[1].query_param("filter").unwrap()).unwrap();
    assert_eq!(
        filter,
        json!({"predicates": [{"key": "display_name", "operation": "EQUALS", "string_value": "baton"}]})
    );
    assert_eq!(log[2].body["display_name"], "baton");
    // A second client finds the experiment by name.
    let other = client(&fake);
    fake.clear_requests();
    other.create_run(&new_run(&spec, &none)).await.unwrap();
    assert!(fake
        .requests()
        .iter()
        .all(|r| !(r.method == "POST" && r.path.ends_with("/experiments"))));
}

#[tokio::test]
async fn create_run_sends_the_run_with_typed_parameters_and_credentials() {
    let fake = FakeKfp::start().await;
    fake.require_token("s3cret");
    fake.require_user_header("kubeflow-userid");
    let mut config = KfpConfig::new(fake.url());
    config.token = Some("s3cret".into());
    config.user_id_header = Some(("kubeflow-userid".into(), "alice@example.com".into()));
    config.experiment = "exp".into();
    config.namespace = Some("team".into());
    let c = client_with(config);
    let spec = spec(
        &["a", "b"],
        "SUCCEEDED",
        &[("n", "NUMBER_INTEGER"), ("s", "STRING")],
    );
    let p = params(json!({"n": 3, "s": "x"}));
    let run = c.create_run(&new_run(&spec, &p)).await.unwrap();
    assert_eq!(run.state, RuntimeState::Pending);
    assert!(!run.run_id.is_empty());
    let log = fake.requests();
    let create = log.iter().find(|r| r.path == "/apis/v2beta1/runs").unwrap();
    assert_eq!(
        create.body,
        json!({
            "experiment_id": run.experiment_id,
            "display_name": "r",
            "description": "a test run",
            "pipeline_spec": spec,
            "runtime_config": {"parameters": {"n": 3, "s": "x"}},
        })
    );
    for r in &log {
        assert_eq!(r.header("authorization"), Some("Bearer s3cret"));
        assert_eq!(r.header("kubeflow-userid"), Some("alice@example.com"));
    }
    let experiments = log
        .iter()
        .find(|r| r.path.ends_with("/experiments"))
        .unwrap();
    assert_eq!(
        experiments.query_param("namespace").as_deref(),
        Some("team")
    );
    let created = log
        .iter()
        .find(|r| r.method == "POST" && r.path.ends_with("/experiments"))
        .unwrap();
    assert_eq!(created.body["namespace"], "team");
}

#[tokio::test]
async fn a_missing_or_wrong_token_is_invalid_with_a_hint() {
    let fake = FakeKfp::start().await;
    fake.require_token("s3cret");
    let e = client(&fake).healthz().await.unwrap_err();
    assert_error(
        &e,
        ErrorKind::InvalidArgument,
        &["HTTP 401", "/apis/v2beta1/healthz"],
    );
    assert!(e.hint().unwrap().contains("BATON_KFP_TOKEN"));
    let mut config = KfpConfig::new(fake.url());
    config.token = Some("wrong".into());
    let e = client_with(config).healthz().await.unwrap_err();
    assert!(e.hint().unwrap().contains("refused the credentials"));
    assert!(!e.chain().to_string().contains("wrong"));
}

#[tokio::test]
async fn get_advances_the_fake_and_maps_every_field() {
    let fake = FakeKfp::start().await;
    let c = client(&fake);
    let spec = spec(&["a", "b"], "SUCCEEDED", &[]);
    let none = Map::new();
    let id = c.create_run(&new_run(&spec, &none)).await.unwrap().run_id;
    let states: Vec<RuntimeState> = {
        let mut v = Vec::new();
        for _ in 0..3 {
            v.push(c.get_run(&id).await.unwrap().state);
        }
        v
    };
    assert_eq!(
        states,
        [
            RuntimeState::Running,
            RuntimeState::Succeeded,
            RuntimeState::Succeeded
        ]
    );
    let run = c.get_run(&id).await.unwrap();
    let tasks: Vec<(&str, RuntimeState)> = run
        .run_details
        .task_details
        .iter()
        .map(|t| (t.display_name.as_str(), t.state))
        .collect();
    assert_eq!(
        tasks,
        [
            ("a", RuntimeState::Succeeded),
            ("b", RuntimeState::Succeeded)
        ]
    );
    let history: Vec<RuntimeState> = run.state_history.iter().map(|c| c.state).collect();
    assert_eq!(
        history,
        [
            RuntimeState::Pending,
            RuntimeState::Running,
            RuntimeState::Succeeded
        ]
    );
    assert!(run.finished_at.is_some() && run.created_at.is_some());
    assert_eq!(run.pipeline_spec.as_ref(), Some(&spec));
}

#[tokio::test]
async fn list_filters_pages_and_sorts() {
    let fake = FakeKfp::start().await;
    let c = client(&fake);
    let spec = spec(&["a"], "SUCCEEDED", &[]);
    let none = Map::new();
    for name in ["alpha", "beta", "alphabet", "gamma", "alpha"] {
        c.create_run(&NewRun {
            display_name: name,
            ..new_run(&spec, &none)
        })
        .await
        .unwrap();
    }
    let names = |page: &baton::kfp::client::RunPage| -> Vec<String> {
        page.runs.iter().map(|r| r.display_name.clone()).collect()
    };
    let equals = c
        .list_runs(&ListRuns {
            filter: vec![Predicate::equals("display_name", "alpha")],
            ..ListRuns::default()
        })
        .await
        .unwrap();
    assert_eq!(names(&equals), ["alpha", "alpha"]);
    assert_eq!(equals.total_size, 2);
    let contains = c
        .list_runs(&ListRuns {
            filter: vec![Predicate::contains("display_name", "alpha")],
            sort_by: Some("display_name desc".into()),
            ..ListRuns::default()
        })
        .await
        .unwrap();
    assert_eq!(names(&contains), ["alphabet", "alpha", "alpha"]);
    // Paging through everything, two at a time, newest first.
    let mut seen = Vec::new();
    let mut token = None;
    loop {
        let page = c
            .list_runs(&ListRuns {
                page_size: Some(2),
                page_token: token.clone(),
                sort_by: Some("created_at desc".into()),
                experiment_id: Some(equals.runs[0].experiment_id.clone()),
                ..ListRuns::default()
            })
            .await
            .unwrap();
        assert_eq!(page.total_size, 5);
        seen.extend(names(&page));
        if page.next_page_token.is_empty() {
            break;
        }
        token = Some(page.next_page_token);
    }
    assert_eq!(seen, ["alpha", "gamma", "alphabet", "beta", "alpha"]);
    let empty = c
        .list_runs(&ListRuns {
            filter: vec![Predicate::equals("display_name", "none")],
            ..ListRuns::default()
        })
        .await
        .unwrap();
    assert!(empty.runs.is_empty() && empty.next_page_token.is_empty());
    let q = fake.requests().last().unwrap().clone();
    assert_eq!(
        serde_json::from_str::<Value>(&q.query_param("filter").unwrap()).unwrap()["predicates"][0]
            ["operation"],
        "EQUALS"
    );
}

#[tokio::test]
async fn terminate_retry_and_delete() {
    let fake = FakeKfp::start().await;
    let c = client(&fake);
    let none = Map::new();
    let hang = spec(&["a"], "HANG", &[]);
    let id = c.create_run(&new_run(&hang, &none)).await.unwrap().run_id;
    c.get_run(&id).await.unwrap();
    c.terminate_run(&id).await.unwrap();
    assert_eq!(c.get_run(&id).await.unwrap().state, RuntimeState::Failed);
    let terminate = fake.requests().into_iter().rev().nth(1).unwrap();
    assert_eq!(
        (terminate.method.as_str(), terminate.path.clone()),
        ("POST", format!("/apis/v2beta1/runs/{id}:terminate"))
    );
    // A finished run cannot be terminated: KFP's 400.
    let e = c.terminate_run(&id).await.unwrap_err();
    assert_error(
        &e,
        ErrorKind::InvalidArgument,
        &[
            "HTTP 400",
            &format!("{}:terminate", c.run_url(&id)),
            &format!("run `{id}`"),
            "Row not found",
        ],
    );
    // Retry: 409 unless FAILED; FAIL_ONCE then succeeds.
    let once = spec(&["a"], "FAIL_ONCE", &[]);
    let id = c.create_run(&new_run(&once, &none)).await.unwrap().run_id;
    let e = c.retry_run(&id).await.unwrap_err();
    assert_error(&e, ErrorKind::Conflict, &["HTTP 409", "Failed/Error"]);
    c.get_run(&id).await.unwrap();
    assert_eq!(c.get_run(&id).await.unwrap().state, RuntimeState::Failed);
    c.retry_run(&id).await.unwrap();
    assert_eq!(fake.run_state(&id), Some("RUNNING"));
    assert_eq!(c.get_run(&id).await.unwrap().state, RuntimeState::Succeeded);
    // Delete, then the run is gone.
    c.delete_run(&id).await.unwrap();
    let e = c.get_run(&id).await.unwrap_err();
    assert_error(
        &e,
        ErrorKind::NotFound,
        &["HTTP 404", &c.run_url(&id), &format!("run `{id}`")],
    );
    let e = c.delete_run(&id).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
}

#[tokio::test]
async fn the_fake_checks_runtime_parameters_and_specs_like_kfp() {
    let fake = FakeKfp::start().await;
    let c = client(&fake);
    let spec = spec(&["a"], "SUCCEEDED", &[("n", "NUMBER_INTEGER")]);
    let rows: [(Value, &str); 3] = [
        (
            json!({"n": 1, "x": 2}),
            "parameter(s) provided are not required by pipeline: x",
        ),
        (json!({"n": "3"}), "parameter n has type NUMBER_INTEGER"),
        (json!({}), "parameter n is required"),
    ];
    for (given, want) in rows {
        let p = params(given);
        let e = c.create_run(&new_run(&spec, &p)).await.unwrap_err();
        assert_error(
            &e,
            ErrorKind::InvalidArgument,
            &["HTTP 400", "/apis/v2beta1/runs", want],
        );
    }
    let mut bad = spec.clone();
    bad["schemaVersion"] = json!("2.0.0");
    bad["root"]["dag"]["tasks"]["a"]["componentRef"]["name"] = json!("comp-missing");
    bad["root"]["dag"]["tasks"]["a"]["dependentTasks"] = json!(["ghost"]);
    let p = params(json!({"n": 1}));
    let e = c.create_run(&new_run(&bad, &p)).await.unwrap_err();
    assert_error(
        &e,
        ErrorKind::InvalidArgument,
        &[
            "invalid v2 pipeline spec",
            "schemaVersion",
            "comp-missing",
            "unknown task \"ghost\"",
        ],
    );
    // Unknown top-level Run fields are refused (the client never sends one).
    let raw = reqwest::Client::new()
        .post(format!("{}/apis/v2beta1/runs", fake.url()))
        .json(&json!({"display_name": "r", "pipeline_spec": spec, "colour": "red"}))
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status().as_u16(), 400);
    let body: Value = raw.json().await.unwrap();
    assert_eq!(body["code"], 3);
    assert!(body["message"]
        .as_str()
        .unwrap()
        .contains("unknown field \"colour\""));
    assert_eq!(body["details"], json!([]));
}

#[tokio::test]
async fn a_down_server_is_a_runtime_error_naming_the_url() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let url = format!("http://127.0.0.1:{port}");
    let c = client_with(KfpConfig::new(url.clone()));
    let e = c.get_run("r1").await.unwrap_err();
    assert_error(
        &e,
        ErrorKind::Runtime,
        &[
            &format!("`GET {url}/apis/v2beta1/runs/r1`"),
            "run `r1`",
            "got no answer",
            "tried 3 times",
        ],
    );
    assert!(e.hint().unwrap().contains(&url));
    let spec = spec(&["a"], "SUCCEEDED", &[]);
    let none = Map::new();
    let e = c.create_run(&new_run(&spec, &none)).await.unwrap_err();
    // The experiment lookup is a GET (repeated); the failure names it.
    assert_error(&e, ErrorKind::Runtime, &["/apis/v2beta1/experiments"]);
    let e = c.terminate_run("r1").await.unwrap_err();
    assert_error(&e, ErrorKind::Runtime, &[":terminate", "got no answer"]);
    assert!(
        !e.chain().to_string().contains("tried"),
        "a POST is not repeated: {e}"
    );
}

#[tokio::test]
async fn a_5xx_is_repeated_for_get_and_delete_only() {
    let fake = FakeKfp::start().await;
    let c = client(&fake);
    let spec = spec(&["a"], "HANG", &[]);
    let none = Map::new();
    let id = c.create_run(&new_run(&spec, &none)).await.unwrap().run_id;
    let count = |method: &str, suffix: &str| {
        fake.requests()
            .iter()
            .filter(|r| r.method == method && r.path.ends_with(suffix))
            .count()
    };
    fake.clear_requests();
    fake.inject(Fault::Internal);
    c.get_run(&id).await.unwrap();
    assert_eq!(count("GET", &id), 2);
    // Every repeat answered 500: the last answer's error, named.
    for _ in 0..3 {
        fake.inject(Fault::Internal);
    }
    let e = c.get_run(&id).await.unwrap_err();
    assert_error(
        &e,
        ErrorKind::Runtime,
        &[
            "HTTP 500",
            "injected internal error",
            &format!("run `{id}`"),
        ],
    );
    assert_eq!(count("GET", &id), 5);
    fake.clear_requests();
    fake.inject(Fault::Internal);
    let e = c.create_run(&new_run(&spec, &none)).await.unwrap_err();
    assert_error(&e, ErrorKind::Runtime, &["HTTP 500", "POST"]);
    assert_eq!(count("POST", "/runs"), 1);
    fake.inject(Fault::Internal);
    c.terminate_run(&id).await.unwrap_err();
    assert_eq!(count("POST", ":terminate"), 1);
    fake.inject(Fault::Internal);
    c.delete_run(&id).await.unwrap();
    assert_eq!(count("DELETE", &id), 2);
}

#[tokio::test]
async fn a_slow_answer_times_out_and_a_get_is_tried_again() {
    let fake = FakeKfp::start().await;
    let c = client(&fake).with_timeout(Duration::from_millis(200));
    fake.inject(Fault::Slow(Duration::from_secs(2)));
    c.healthz().await.unwrap();
    assert_eq!(fake.requests().len(), 2);
    let c = c.with_retry_delays(vec![]);
    fake.inject(Fault::Slow(Duration::from_secs(2)));
    let e = c.healthz().await.unwrap_err();
    assert_error(
        &e,
        ErrorKind::Runtime,
        &["/apis/v2beta1/healthz", "got no answer in time"],
    );
}

#[tokio::test]
async fn malformed_json_is_a_runtime_error_naming_the_url() {
    let fake = FakeKfp::start().await;
    let c = client(&fake);
    fake.inject(Fault::Malformed);
    let e = c.get_run("r9").await.unwrap_err();
    assert_error(
        &e,
        ErrorKind::Runtime,
        &[
            &format!("`GET {}`", c.run_url("r9")),
            "run `r9`",
            "not the JSON KFP sends",
        ],
    );
}

// ---- the engine ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kfp_terminate_cancels_the_run() {
    let fake = FakeKfp::start().await;
    conformance::terminate_cancels_the_run(&engine(&fake)).await;
    assert!(fake
        .requests()
        .iter()
        .any(|r| r.method == "POST" && r.path.ends_with(":terminate")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kfp_run_timeout_cancels_the_run() {
    let fake = FakeKfp::start().await;
    conformance::run_timeout_cancels_the_run(&engine(&fake)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kfp_events_fold_into_the_status() {
    let fake = FakeKfp::start().await;
    conformance::events_fold_into_the_status(&engine(&fake)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kfp_unknown_runs_are_not_found() {
    let fake = FakeKfp::start().await;
    conformance::unknown_runs_are_not_found(&engine(&fake)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_is_a_kfp_run_and_succeeds() {
    let fake = FakeKfp::start().await;
    let e = engine(&fake);
    let yaml = "{name: w, steps: [{name: a, function: f}, {name: b, function: f, after: [a]}, {name: c, function: f, after: [b]}]}";
    let id = e.run(request(yaml), RunOptions::default()).await.unwrap();
    assert_eq!(
        fake.run_state(id.as_str()),
        Some("PENDING"),
        "the KFP run id is the id"
    );
    let status = e.wait(&id, Some(Duration::from_secs(30))).await.unwrap();
    assert_eq!(status.state, WorkflowState::Succeeded, "{status:?}");
    assert_eq!(status.name, "w");
    for step in &status.steps {
        assert_eq!((step.state, step.attempts), (StepState::Succeeded, 1));
        assert!(step.started <= step.finished);
    }
    let create = fake
        .requests()
        .into_iter()
        .find(|r| r.method == "POST" && r.path == "/apis/v2beta1/runs")
        .unwrap();
    assert_eq!(create.body["display_name"], "w");
    assert_eq!(
        create.body["pipeline_spec"]["root"]["dag"]["tasks"]["c"]["dependentTasks"],
        json!(["b"])
    );
    // A second engine (another process) reads the same run from KFP alone.
    let other = engine(&fake);
    assert_eq!(other.status(&id).await.unwrap(), status);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_kfp_run_fails_naming_its_steps() {
    let fake = FakeKfp::start().await;
    let e = engine(&fake);
    let id = e
        .run(
            request("{name: w, steps: [{name: a, function: f, handler: fail}]}"),
            RunOptions::default(),
        )
        .await
        .unwrap();
    let status = e.wait(&id, None).await.unwrap();
    assert_eq!(status.state, WorkflowState::Failed);
    assert_eq!(status.steps[0].state, StepState::Failed);
    let error = status.error.unwrap();
    assert!(
        error.contains("step `a` failed") && error.contains(id.as_str()),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_reruns_the_kfp_run_in_place_under_a_new_id() {
    let fake = FakeKfp::start().await;
    let e = engine(&fake);
    let yaml = "{name: w, steps: [{name: a, function: f}, {name: b, function: f, handler: fail-once, after: [a]}]}";
    let id = e.run(request(yaml), RunOptions::default()).await.unwrap();
    let first = e.wait(&id, None).await.unwrap();
    assert_eq!(first.state, WorkflowState::Failed);
    let stored: baton::engine::WorkflowRunStatus =
        serde_json::from_value(serde_json::to_value(&first).unwrap()).unwrap();
    let retry = e
        .retry(&stored, request(yaml), RunOptions::default())
        .await
        .unwrap();
    assert_eq!(retry.as_str(), format!("{id}.retry-1"));
    let second = {
        let second = e.wait(&retry, None).await.unwrap();
        assert_eq!(second.state, WorkflowState::Succeeded, "{second:?}");
        assert_eq!(second.id, retry);
        let e2 = e
            .retry(&second, request(yaml), RunOptions::default())
            .await
            .unwrap_err();
        assert_eq!(e2.kind(), ErrorKind::BadRequest);
        second
    };
    let retries: Vec<_> = fake
        .requests()
        .into_iter()
        .filter(|r| r.path.ends_with(":retry"))
        .collect();
    assert_eq!(retries.len(), 1);
    assert_eq!(retries[0].path, format!("/apis/v2beta1/runs/{id}:retry"));
    assert_eq!(second.steps.len(), 2);
    // KFP refuses to retry what did not fail (409): a canceled record whose KFP run succeeded.
    let ok_id = e
        .run(
            request("{name: w, steps: [{name: a, function: f}]}"),
            RunOptions::default(),
        )
        .await
        .unwrap();
    let mut done = e.wait(&ok_id, None).await.unwrap();
    done.state = WorkflowState::Canceled;
    let e3 = e
        .retry(&done, request(yaml), RunOptions::default())
        .await
        .unwrap_err();
    assert_eq!(e3.kind(), ErrorKind::Conflict);
    let mut running = done.clone();
    running.state = WorkflowState::Running;
    let e4 = e
        .retry(&running, request(yaml), RunOptions::default())
        .await
        .unwrap_err();
    assert_eq!(e4.kind(), ErrorKind::Conflict);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vanished_run_ends_failed_naming_the_url_and_the_run() {
    let fake = FakeKfp::start().await;
    let e = engine(&fake);
    let id = e
        .run(
            request("{name: w, steps: [{name: h, function: f, handler: hang}, {name: n, function: f, after: [h]}]}"),
            RunOptions::default(),
        )
        .await
        .unwrap();
    let mut sub = e.subscribe(&id).await.unwrap();
    use futures::StreamExt;
    while sub.status.state != WorkflowState::Running {
        let event = sub.events.next().await.unwrap();
        sub.status.apply(&event);
    }
    fake.vanish(id.as_str());
    while let Some(event) = sub.events.next().await {
        sub.status.apply(&event);
    }
    let status = sub.status;
    assert_eq!(status.state, WorkflowState::Failed);
    let error = status.error.clone().unwrap();
    let url = e.client().run_url(id.as_str());
    assert!(
        error.contains(&url) && error.contains("vanished"),
        "{error}"
    );
    assert!(
        status.steps.iter().all(|s| s.state.is_terminal()),
        "{status:?}"
    );
    assert_eq!(e.status(&id).await.unwrap(), status);
    assert_eq!(e.wait(&id, None).await.unwrap(), status);
    e.terminate(&id).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workflow_that_does_not_compile_never_reaches_kfp() {
    let fake = FakeKfp::start().await;
    let e = engine(&fake);
    let err = e
        .run(
            request("{name: w, steps: [{name: d, function: f, action: deploy}]}"),
            RunOptions::default(),
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("step `d`"), "{err}");
    assert!(fake.requests().is_empty());
    let err = e
        .run(
            request("{name: w, steps: [{name: a, function: f}]}"),
            RunOptions {
                schedule: Some("0 * * * *".into()),
                ..RunOptions::default()
            },
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::BadRequest);
}

// ---- the fake against the official SDK ----

/// The official `kfp.Client` 2.17.3 against the fake: healthz, experiments, runs from an
/// SDK-compiled package, get, terminate, list with paging, a refused parameter. Needs Python and
/// PyPI the first time (the venv `tests/kfp/venv.sh` makes is cached).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_kfp_client_works_against_the_fake() {
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/kfp/venv.sh");
    let venv = tokio::process::Command::new("bash")
        .arg(&script)
        .output()
        .await
        .unwrap();
    assert!(
        venv.status.success(),
        "{}",
        String::from_utf8_lossy(&venv.stderr)
    );
    let python = String::from_utf8(venv.stdout).unwrap().trim().to_string();
    let fake = FakeKfp::start().await;
    let out = tokio::process::Command::new(python)
        .arg(script.with_file_name("fake_client_check.py"))
        .arg(fake.url())
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "stdout:\n{stdout}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        stdout.lines().filter(|l| l.starts_with("ok ")).count(),
        6,
        "{stdout}"
    );
}
