//! A fake Kubeflow Pipelines v2beta1 API server, in-process on a loopback port, for the kfp
//! client and engine tests (kfp.md §5). Nothing executes: a run's lifecycle is scripted.
//!
//! Routes (one handler, one `match`, so the table below is the whole server):
//!
//! | method and path                          | answer |
//! | ---------------------------------------- | ------ |
//! | `GET  /apis/v2beta1/healthz`             | `{multi_user: false, pipeline_store: "fake"}` |
//! | `POST /apis/v2beta1/experiments`         | the experiment (409 when the name is taken) |
//! | `GET  /apis/v2beta1/experiments`         | `{experiments, total_size}`, `filter` applied |
//! | `GET  /apis/v2beta1/experiments/{id}`    | the experiment, or 404 |
//! | `POST /apis/v2beta1/runs`                | a run of an inline spec (strictly checked) |
//! | `GET  /apis/v2beta1/runs/{id}`           | the run, advanced one state first |
//! | `GET  /apis/v2beta1/runs`                | `{runs, total_size, next_page_token}`: filter, paging, sort |
//! | `POST /apis/v2beta1/runs/{id}:terminate` | `{}`; 400 unless PENDING or RUNNING |
//! | `POST /apis/v2beta1/runs/{id}:retry`     | `{}`; 409 unless FAILED |
//! | `DELETE /apis/v2beta1/runs/{id}`         | `{}` |
//! | anything else                            | 404 (`google.rpc.Status`, code 5) |
//!
//! Lifecycle, one state per `GET` of the run (deterministic): PENDING → RUNNING → SUCCEEDED, or
//! FAILED when the effective `fake_outcome` parameter is `FAILED`; `FAIL_ONCE` fails, then
//! succeeds after `:retry`; `HANG` stays RUNNING. Terminate: CANCELING → FAILED (as KFP 2.x).
//! Task details are synthesized from the root tasks (display name = `taskInfo.name`) and mirror
//! the run's state. Errors are `{code, message, details: []}` with the real gRPC codes.
//! [`FakeKfp::requests`] is the request log; the fault knobs inject 500s, malformed JSON, slow
//! answers and vanished runs.

#![allow(dead_code)]

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Map, Value};

/// One request as the fake received it.
#[derive(Debug, Clone)]
pub struct Logged {
    /// `GET`, `POST`, ...
    pub method: String,
    /// The path, without the query.
    pub path: String,
    /// The query string, undecoded.
    pub query: String,
    /// Every header, lower-case names.
    pub headers: Vec<(String, String)>,
    /// The body, as JSON when it parsed (else a string).
    pub body: Value,
}

impl Logged {
    /// The value of header `name`.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The decoded value of query parameter `name`.
    pub fn query_param(&self, name: &str) -> Option<String> {
        form_urlencoded::parse(self.query.as_bytes())
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    }
}

/// A fault for the next request(s).
#[derive(Debug, Clone)]
pub enum Fault {
    /// Answer 500 with a `google.rpc.Status` (code 13).
    Internal,
    /// Answer 200 with a body that is not JSON.
    Malformed,
    /// Sleep this long before answering normally.
    Slow(Duration),
}

#[derive(Debug, Clone)]
struct FakeRun {
    id: String,
    experiment_id: String,
    display_name: String,
    description: String,
    spec: Value,
    runtime_config: Value,
    tasks: Vec<String>,
    outcome: String,
    state: &'static str,
    history: Vec<(String, &'static str)>,
    created_at: String,
    finished_at: Option<String>,
    retried: bool,
    seq: usize,
}

#[derive(Default)]
struct State {
    experiments: Vec<Value>,
    runs: Vec<FakeRun>,
    log: Vec<Logged>,
    faults: VecDeque<Fault>,
    token: Option<String>,
    user_header: Option<String>,
    next: usize,
}

/// The fake server; it stops when dropped.
pub struct FakeKfp {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl FakeKfp {
    /// A fake on `127.0.0.1:0`, served on the current tokio runtime.
    pub async fn start() -> FakeKfp {
        Self::start_on(0).await
    }

    /// A fake on `127.0.0.1:port`.
    pub async fn start_on(port: u16) -> FakeKfp {
        let state = Arc::new(Mutex::new(State::default()));
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .expect("bind the fake KFP");
        let addr = listener.local_addr().unwrap();
        let shared = state.clone();
        let app = axum::Router::new().fallback(
            move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
                let state = shared.clone();
                async move { handle(state, method, uri, headers, body).await }
            },
        );
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await
                .ok();
        });
        FakeKfp {
            addr,
            state,
            _stop: stop,
        }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Requires `Authorization: Bearer <token>` on every request (401 otherwise).
    pub fn require_token(&self, token: &str) {
        self.lock().token = Some(token.to_string());
    }

    /// Requires header `name` on every request (401 otherwise, like multi-user KFP).
    pub fn require_user_header(&self, name: &str) {
        self.lock().user_header = Some(name.to_ascii_lowercase());
    }

    /// Applies `fault` to the next request (faults queue up, one per request).
    pub fn inject(&self, fault: Fault) {
        self.lock().faults.push_back(fault);
    }

    /// Deletes run `id` behind the client's back.
    pub fn vanish(&self, id: &str) {
        self.lock().runs.retain(|r| r.id != id);
    }

    /// Every request received so far.
    pub fn requests(&self) -> Vec<Logged> {
        self.lock().log.clone()
    }

    /// Forgets the request log.
    pub fn clear_requests(&self) {
        self.lock().log.clear();
    }

    /// The state of run `id`, without advancing it.
    pub fn run_state(&self, id: &str) -> Option<&'static str> {
        self.lock()
            .runs
            .iter()
            .find(|r| r.id == id)
            .map(|r| r.state)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap()
    }
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// A `google.rpc.Status` answer.
fn status(http: StatusCode, message: impl Into<String>) -> Response {
    let code = match http.as_u16() {
        400 => 3,
        401 => 16,
        403 => 7,
        404 => 5,
        409 => 10,
        _ => 13,
    };
    (
        http,
        axum::Json(json!({"code": code, "message": message.into(), "details": []})),
    )
        .into_response()
}

fn ok(value: Value) -> Response {
    (StatusCode::OK, axum::Json(value)).into_response()
}

async fn handle(
    state: Arc<Mutex<State>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_string();
    let query = uri.query().unwrap_or("").to_string();
    let fault = {
        let mut s = state.lock().unwrap();
        s.log.push(Logged {
            method: method.to_string(),
            path: path.clone(),
            query: query.clone(),
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
                .collect(),
            body: serde_json::from_slice(&body)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into())),
        });
        s.faults.pop_front()
    };
    match fault {
        Some(Fault::Internal) => {
            return status(StatusCode::INTERNAL_SERVER_ERROR, "injected internal error")
        }
        Some(Fault::Malformed) => return (StatusCode::OK, "{not json").into_response(),
        Some(Fault::Slow(d)) => tokio::time::sleep(d).await,
        None => {}
    }
    let mut s = state.lock().unwrap();
    if let Some(token) = &s.token {
        let want = format!("Bearer {token}");
        if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(want.as_str()) {
            return status(StatusCode::UNAUTHORIZED, "Unauthenticated: invalid token");
        }
    }
    if let Some(name) = &s.user_header {
        if !headers.contains_key(name.as_str()) {
            return status(
                StatusCode::UNAUTHORIZED,
                "Request header error: there is no user identity header.",
            );
        }
    }
    let query: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect();
    let param = |name: &str| {
        query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let Some(rest) = path.strip_prefix("/apis/v2beta1/") else {
        return status(StatusCode::NOT_FOUND, format!("Not Found: {path}"));
    };
    let segments: Vec<&str> = rest.split('/').collect();
    match (method.as_str(), segments.as_slice()) {
        ("GET", ["healthz"]) => ok(json!({"multi_user": false, "pipeline_store": "fake"})),
        ("POST", ["experiments"]) => create_experiment(&mut s, &body),
        ("GET", ["experiments"]) => {
            let filter = match param("filter").map(|f| parse_filter(&f)).transpose() {
                Ok(f) => f.unwrap_or_default(),
                Err(e) => return status(StatusCode::BAD_REQUEST, e),
            };
            let experiments: Vec<Value> = s
                .experiments
                .iter()
                .filter(|e| matches(&filter, e))
                .cloned()
                .collect();
            let total = experiments.len();
            ok(json!({"experiments": experiments, "total_size": total}))
        }
        ("GET", ["experiments", id]) => {
            match s.experiments.iter().find(|e| e["experiment_id"] == *id) {
                Some(e) => ok(e.clone()),
                None => status(StatusCode::NOT_FOUND, format!("Experiment {id} not found")),
            }
        }
        ("POST", ["runs"]) => create_run(&mut s, &body),
        ("GET", ["runs"]) => list_runs(&s, &param),
        ("GET", ["runs", id]) => {
            let Some(run) = s.runs.iter_mut().find(|r| r.id == *id) else {
                return run_not_found(id);
            };
            advance(run);
            ok(run_json(run))
        }
        ("DELETE", ["runs", id]) => {
            let before = s.runs.len();
            s.runs.retain(|r| r.id != *id);
            if s.runs.len() == before {
                return run_not_found(id);
            }
            ok(json!({}))
        }
        ("POST", ["runs", action]) => {
            let Some((id, verb)) = action.rsplit_once(':') else {
                return status(StatusCode::NOT_FOUND, format!("Not Found: {path}"));
            };
            let Some(run) = s.runs.iter_mut().find(|r| r.id == id) else {
                return run_not_found(id);
            };
            match verb {
                "terminate" if matches!(run.state, "PENDING" | "RUNNING") => {
                    enter(run, "CANCELING");
                    ok(json!({}))
                }
                "terminate" => status(
                    StatusCode::BAD_REQUEST,
                    format!("Failed to terminate a run {id}. Row not found"),
                ),
                "retry" if run.state == "FAILED" => {
                    run.retried = true;
                    run.finished_at = None;
                    enter(run, "RUNNING");
                    ok(json!({}))
                }
                "retry" => status(
                    StatusCode::CONFLICT,
                    format!("Failed to retry run {id}: Workflow must be Failed/Error to retry"),
                ),
                _ => status(StatusCode::NOT_FOUND, format!("Not Found: {path}")),
            }
        }
        _ => status(StatusCode::NOT_FOUND, format!("Not Found: {method} {path}")),
    }
}

fn run_not_found(id: &str) -> Response {
    status(
        StatusCode::NOT_FOUND,
        format!("Failed to get run {id}: ResourceNotFoundError: Run {id} not found"),
    )
}

fn enter(run: &mut FakeRun, state: &'static str) {
    run.state = state;
    run.history.push((now(), state));
    if matches!(state, "SUCCEEDED" | "FAILED" | "CANCELED") {
        run.finished_at = Some(now());
    }
}

/// One step of the scripted lifecycle (kfp.md §5, `--mode poll`).
fn advance(run: &mut FakeRun) {
    let next = match (run.state, run.outcome.as_str()) {
        ("PENDING", _) => "RUNNING",
        ("RUNNING", "HANG") => return,
        ("RUNNING", "FAILED") => "FAILED",
        ("RUNNING", "FAIL_ONCE") if !run.retried => "FAILED",
        ("RUNNING", _) => "SUCCEEDED",
        ("CANCELING", _) => "FAILED",
        _ => return,
    };
    enter(run, next);
}

fn run_json(run: &FakeRun) -> Value {
    let started = run
        .history
        .iter()
        .find(|(_, s)| *s == "RUNNING")
        .map(|(t, _)| t.clone());
    let tasks: Vec<Value> = run
        .tasks
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let mut t = json!({
                "run_id": run.id, "task_id": format!("{}-task-{i}", run.id),
                "display_name": name, "create_time": run.created_at, "state": run.state,
            });
            if let Some(s) = &started {
                t["start_time"] = json!(s);
            }
            if let Some(f) = &run.finished_at {
                t["end_time"] = json!(f);
            }
            if run.state == "FAILED" {
                t["error"] = json!({"code": 2, "message": format!("task {name} failed (fake)"), "details": []});
            }
            t
        })
        .collect();
    let mut v = json!({
        "experiment_id": run.experiment_id,
        "run_id": run.id,
        "display_name": run.display_name,
        "storage_state": "AVAILABLE",
        "pipeline_spec": run.spec,
        "runtime_config": run.runtime_config,
        "created_at": run.created_at,
        "scheduled_at": run.created_at,
        "state": run.state,
        "run_details": {"task_details": tasks},
        "state_history": run.history.iter().map(|(t, s)| json!({"update_time": t, "state": s})).collect::<Vec<_>>(),
    });
    if !run.description.is_empty() {
        v["description"] = json!(run.description);
    }
    if let Some(f) = &run.finished_at {
        v["finished_at"] = json!(f);
    }
    if run.state == "FAILED" {
        v["error"] = json!({"code": 2, "message": "fake pipeline failed", "details": []});
    }
    v
}

type Filter = Vec<(String, String, String)>;

/// A `filter` query parameter: `{"predicates": [{key, operation, string_value}]}`, operations
/// by name or number, values in snake or camel case.
fn parse_filter(text: &str) -> Result<Filter, String> {
    let v: Value = serde_json::from_str(text).map_err(|e| format!("Invalid filter: {e}"))?;
    let mut out = Vec::new();
    for p in v["predicates"].as_array().cloned().unwrap_or_default() {
        let key = p["key"]
            .as_str()
            .ok_or("Invalid filter: predicate without key")?;
        let op = match &p["operation"] {
            Value::String(s) => s.clone(),
            Value::Number(n) => match n.as_u64() {
                Some(1) => "EQUALS".into(),
                Some(2) => "NOT_EQUALS".into(),
                Some(9) => "IS_SUBSTRING".into(),
                _ => return Err(format!("Invalid filter: unsupported operation {n}")),
            },
            other => return Err(format!("Invalid filter: operation {other}")),
        };
        let value = p
            .get("string_value")
            .or_else(|| p.get("stringValue"))
            .and_then(Value::as_str)
            .ok_or("Invalid filter: only string values are supported")?;
        out.push((key.to_string(), op, value.to_string()));
    }
    Ok(out)
}

fn matches(filter: &Filter, item: &Value) -> bool {
    filter.iter().all(|(key, op, value)| {
        let field = item[key.as_str()].as_str().unwrap_or("");
        match op.as_str() {
            "EQUALS" => field == value,
            "NOT_EQUALS" => field != value,
            "IS_SUBSTRING" => field.contains(value.as_str()),
            _ => false,
        }
    })
}

fn create_experiment(s: &mut State, body: &[u8]) -> Response {
    let Ok(Value::Object(b)) = serde_json::from_slice::<Value>(body) else {
        return status(
            StatusCode::BAD_REQUEST,
            "Invalid input error: body is not an Experiment",
        );
    };
    let name = b
        .get("display_name")
        .or_else(|| b.get("displayName"))
        .and_then(Value::as_str)
        .unwrap_or("");
    if name.is_empty() {
        return status(
            StatusCode::BAD_REQUEST,
            "Invalid input error: Experiment name is empty. Please specify a valid experiment name",
        );
    }
    if s.experiments.iter().any(|e| e["display_name"] == name) {
        return status(
            StatusCode::CONFLICT,
            format!("Failed to create a new experiment: AlreadyExistsError: Experiment {name} already exists"),
        );
    }
    s.next += 1;
    let mut e = json!({
        "experiment_id": format!("exp-{:04}", s.next),
        "display_name": name,
        "created_at": now(),
        "storage_state": "AVAILABLE",
    });
    if let Some(d) = b.get("description").and_then(Value::as_str) {
        e["description"] = json!(d);
    }
    if let Some(ns) = b.get("namespace").and_then(Value::as_str) {
        e["namespace"] = json!(ns);
    }
    s.experiments.push(e.clone());
    ok(e)
}

/// Every field of a v2beta1 Run, in both spellings protojson accepts.
const RUN_FIELDS: &[&str] = &[
    "experiment_id",
    "run_id",
    "display_name",
    "storage_state",
    "description",
    "pipeline_version_id",
    "pipeline_spec",
    "pipeline_version_reference",
    "runtime_config",
    "service_account",
    "created_at",
    "scheduled_at",
    "finished_at",
    "state",
    "error",
    "run_details",
    "recurring_run_id",
    "state_history",
    "plugins_input",
];

fn camel(snake: &str) -> String {
    let mut out = String::new();
    let mut upper = false;
    for c in snake.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.push(c.to_ascii_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

fn field<'a>(b: &'a Map<String, Value>, snake: &str) -> Option<&'a Value> {
    b.get(snake).or_else(|| b.get(&camel(snake)))
}

fn create_run(s: &mut State, body: &[u8]) -> Response {
    let bad = |m: String| status(StatusCode::BAD_REQUEST, m);
    let Ok(Value::Object(b)) = serde_json::from_slice::<Value>(body) else {
        return bad("Invalid input error: the body is not a Run".into());
    };
    if let Some(unknown) = b.keys().find(|k| {
        !RUN_FIELDS
            .iter()
            .any(|f| *f == k.as_str() || camel(f) == **k)
    }) {
        return bad(format!("proto: unknown field \"{unknown}\""));
    }
    let display_name = field(&b, "display_name")
        .and_then(Value::as_str)
        .unwrap_or("");
    if display_name.is_empty() {
        return bad(
            "Invalid input error: The run name is empty. Please specify a valid name".into(),
        );
    }
    let spec = match (field(&b, "pipeline_spec"), field(&b, "pipeline_version_reference")) {
        (Some(spec), None) => spec.clone(),
        (None, Some(_)) => {
            return status(StatusCode::NOT_FOUND, "Pipeline version not found (the fake only runs inline specs)")
        }
        _ => return bad("Invalid input error: exactly one of pipeline_spec and pipeline_version_reference is required".into()),
    };
    let inner = field(spec.as_object().unwrap_or(&Map::new()), "pipeline_spec")
        .cloned()
        .unwrap_or_else(|| spec.clone());
    if let Err(errors) = validate_spec(&inner) {
        return bad(format!(
            "Invalid input error: invalid v2 pipeline spec: {}",
            errors.join("; ")
        ));
    }
    let experiment_id = match field(&b, "experiment_id").and_then(Value::as_str) {
        Some(id) if !id.is_empty() => {
            if !s.experiments.iter().any(|e| e["experiment_id"] == id) {
                return status(StatusCode::NOT_FOUND, format!("Experiment {id} not found"));
            }
            id.to_string()
        }
        _ => {
            if !s.experiments.iter().any(|e| e["display_name"] == "Default") {
                create_experiment(s, br#"{"display_name": "Default"}"#);
            }
            s.experiments
                .iter()
                .find(|e| e["display_name"] == "Default")
                .unwrap()["experiment_id"]
                .as_str()
                .unwrap()
                .to_string()
        }
    };
    let runtime_config = field(&b, "runtime_config").cloned().unwrap_or(json!({}));
    let given = runtime_config
        .get("parameters")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let outcome = match check_parameters(&inner, &given) {
        Ok(effective) => effective
            .get("fake_outcome")
            .and_then(Value::as_str)
            .unwrap_or("SUCCEEDED")
            .to_string(),
        Err(e) => return bad(e),
    };
    s.next += 1;
    let created = now();
    let run = FakeRun {
        id: format!("{:08x}-0000-4000-8000-{:012x}", s.next, s.next),
        experiment_id,
        display_name: display_name.to_string(),
        description: field(&b, "description")
            .and_then(Value::as_str)
            .unwrap_or("")
            .into(),
        tasks: root_task_names(&inner),
        spec,
        runtime_config,
        outcome,
        state: "PENDING",
        history: vec![(created.clone(), "PENDING")],
        created_at: created,
        finished_at: None,
        retried: false,
        seq: s.next,
    };
    let answer = run_json(&run);
    s.runs.push(run);
    ok(answer)
}

/// The runtime parameters checked against `root.inputDefinitions` as KFP checks them; the
/// effective parameters (given values over defaults).
fn check_parameters(
    spec: &Value,
    given: &Map<String, Value>,
) -> Result<Map<String, Value>, String> {
    let declared = spec
        .pointer("/root/inputDefinitions/parameters")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let mut extra: Vec<&str> = given
        .keys()
        .filter(|k| !declared.contains_key(*k))
        .map(String::as_str)
        .collect();
    if !extra.is_empty() {
        extra.sort();
        return Err(format!(
            "Invalid input error: parameter(s) provided are not required by pipeline: {}",
            extra.join(", ")
        ));
    }
    let mut effective = Map::new();
    for (name, def) in &declared {
        let kind = def["parameterType"].as_str().unwrap_or("");
        match given.get(name) {
            Some(v) => {
                let fits = match kind {
                    "STRING" => v.is_string(),
                    "NUMBER_INTEGER" => v.as_f64().is_some_and(|f| f.fract() == 0.0),
                    "NUMBER_DOUBLE" => v.is_number(),
                    "BOOLEAN" => v.is_boolean(),
                    "LIST" => v.is_array(),
                    "STRUCT" => v.is_object(),
                    _ => true,
                };
                if !fits {
                    return Err(format!(
                        "Invalid input error: parameter {name} has type {kind}, got {v}"
                    ));
                }
                effective.insert(name.clone(), v.clone());
            }
            None => match def.get("defaultValue") {
                Some(d) => {
                    effective.insert(name.clone(), d.clone());
                }
                None if def["isOptional"] == true => {}
                None => {
                    return Err(format!(
                        "Invalid input error: parameter {name} is required by the pipeline and has no default"
                    ))
                }
            },
        }
    }
    Ok(effective)
}

fn root_task_names(spec: &Value) -> Vec<String> {
    spec.pointer("/root/dag/tasks")
        .and_then(Value::as_object)
        .map(|tasks| {
            tasks
                .iter()
                .map(|(key, t)| {
                    t.pointer("/taskInfo/name")
                        .and_then(Value::as_str)
                        .unwrap_or(key)
                        .to_string()
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The server's checks (schema version, name, root) and the graph's references: every
/// `componentRef` names a component, every `executorLabel` an executor, every `dependentTasks`
/// entry a sibling task, in the root DAG and every sub-DAG.
pub fn validate_spec(spec: &Value) -> Result<(), Vec<String>> {
    let mut errors = Vec::new();
    if !spec.is_object() {
        return Err(vec!["the spec is not an object".into()]);
    }
    if spec["schemaVersion"] != "2.1.0" {
        errors.push(format!(
            "schemaVersion: must be 2.1.0, got {}",
            spec["schemaVersion"]
        ));
    }
    if spec
        .pointer("/pipelineInfo/name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .is_empty()
    {
        errors.push("pipelineInfo.name: required".into());
    }
    let Some(root) = spec.get("root").filter(|r| r.is_object()) else {
        errors.push("root: required".into());
        return Err(errors);
    };
    let components = spec["components"].as_object().cloned().unwrap_or_default();
    let executors = spec
        .pointer("/deploymentSpec/executors")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    for (name, c) in &components {
        match (c.get("executorLabel"), c.get("dag")) {
            (Some(label), None) => {
                if !label.as_str().is_some_and(|l| executors.contains_key(l)) {
                    errors.push(format!(
                        "components.{name}.executorLabel: no executor {label}"
                    ));
                }
            }
            (None, Some(_)) => {}
            _ => errors.push(format!(
                "components.{name}: exactly one of executorLabel and dag is required"
            )),
        }
    }
    let mut dags = vec![("root".to_string(), root.clone())];
    for (name, c) in &components {
        if c.get("dag").is_some() {
            dags.push((format!("components.{name}"), c.clone()));
        }
    }
    for (where_, comp) in dags {
        let tasks = comp
            .pointer("/dag/tasks")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        if where_ == "root" && tasks.is_empty() {
            errors.push("root.dag.tasks: DAG must contain one or more tasks".into());
        }
        for (key, task) in &tasks {
            let at = format!("{where_}.dag.tasks.{key}");
            match task.pointer("/componentRef/name").and_then(Value::as_str) {
                Some(c) if components.contains_key(c) => {}
                other => errors.push(format!(
                    "{at}.componentRef: cannot find component ref {other:?}"
                )),
            }
            for dep in task["dependentTasks"]
                .as_array()
                .cloned()
                .unwrap_or_default()
            {
                if !dep.as_str().is_some_and(|d| tasks.contains_key(d)) {
                    errors.push(format!("{at}.dependentTasks: unknown task {dep}"));
                }
            }
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

fn list_runs(s: &State, param: &dyn Fn(&str) -> Option<String>) -> Response {
    let filter = match param("filter")
        .filter(|f| !f.is_empty())
        .map(|f| parse_filter(&f))
        .transpose()
    {
        Ok(f) => f.unwrap_or_default(),
        Err(e) => return status(StatusCode::BAD_REQUEST, e),
    };
    let experiment = param("experiment_id").filter(|e| !e.is_empty());
    let mut runs: Vec<&FakeRun> = s
        .runs
        .iter()
        .filter(|r| experiment.as_ref().is_none_or(|e| &r.experiment_id == e))
        .filter(|r| {
            matches(
                &filter,
                &json!({"display_name": r.display_name, "run_id": r.id}),
            )
        })
        .collect();
    match param("sort_by").unwrap_or_default().as_str() {
        "" => {}
        sort => {
            let mut words = sort.split_whitespace();
            let key = words.next().unwrap_or("");
            let desc = words.next() == Some("desc");
            let value = |r: &FakeRun| match key {
                "display_name" | "name" => r.display_name.clone(),
                "created_at" => format!("{:012}", r.seq),
                "run_id" | "id" => r.id.clone(),
                _ => String::new(),
            };
            if !matches!(
                key,
                "display_name" | "name" | "created_at" | "run_id" | "id"
            ) {
                return status(
                    StatusCode::BAD_REQUEST,
                    format!("Invalid input error: cannot sort by {key}"),
                );
            }
            runs.sort_by_key(|r| value(r));
            if desc {
                runs.reverse();
            }
        }
    }
    let total = runs.len();
    let offset: usize = match param("page_token").filter(|t| !t.is_empty()) {
        Some(t) => match t.strip_prefix("offset-").and_then(|n| n.parse().ok()) {
            Some(n) => n,
            None => {
                return status(
                    StatusCode::BAD_REQUEST,
                    "Invalid input error: bad page token",
                )
            }
        },
        None => 0,
    };
    let size: usize = param("page_size")
        .and_then(|p| p.parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or(20);
    let page: Vec<Value> = runs
        .iter()
        .skip(offset)
        .take(size)
        .map(|r| run_json(r))
        .collect();
    let mut answer = json!({"total_size": total});
    if !page.is_empty() {
        answer["runs"] = json!(page);
    }
    if offset + size < total {
        answer["next_page_token"] = json!(format!("offset-{}", offset + size));
    }
    ok(answer)
}
