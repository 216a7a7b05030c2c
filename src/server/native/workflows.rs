//! Hosted workflow runs: the remote engine's protocol ([`crate::engine::wire`]) and running a
//! project's workflow by name.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures::StreamExt;
use serde_json::{json, Value};

use crate::engine::wire::{
    EngineRunBody, RunIdBody, StreamLine, WorkflowRetryBody, WorkflowSubmitBody, ENGINE_RUNS_PATH,
};
use crate::engine::{EngineKind, WorkflowEngine, WorkflowRunId, WorkflowRunRequest};
use crate::error::{Error, ErrorKind};
use crate::model::WorkflowRunRecord;
use crate::project::RunWorkflowOptions;
use crate::server::api_error::ApiResult;
use crate::server::body::JsonBody;
use crate::server::AppState;
use crate::service::Termination;
use crate::workflow::{Dag, DagCheck};

/// The routes of hosted workflow runs.
pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route(ENGINE_RUNS_PATH, post(start))
        .route(&format!("{ENGINE_RUNS_PATH}/{{id}}"), get(status))
        .route(&format!("{ENGINE_RUNS_PATH}/{{id}}/events"), get(events))
        .route(
            &format!("{ENGINE_RUNS_PATH}/{{id}}/terminate"),
            post(terminate),
        )
        .route(
            "/api/baton/v1/projects/{project}/workflows/{name}/runs",
            post(submit),
        )
        .route(
            "/api/baton/v1/projects/{project}/workflow-runs/{id}",
            get(recorded),
        )
        .route(
            "/api/baton/v1/projects/{project}/workflow-runs/{id}/retry",
            post(retry),
        )
        .route(
            "/api/baton/v1/projects/{project}/workflow-runs/{id}/terminate",
            post(terminate_recorded),
        )
}

/// The engine new engine-protocol runs start on.
fn engine(state: &AppState) -> Arc<dyn WorkflowEngine> {
    state.engines.get(EngineKind::Local)
}

/// The engine that knows run `id`: the local one, else the `kfp` one (a `remote:kfp` run);
/// the local engine's answer when neither does (its "not found").
async fn engine_of(state: &AppState, id: &WorkflowRunId) -> Arc<dyn WorkflowEngine> {
    let local = engine(state);
    if state.has_kfp && local.status(id).await.is_err() {
        let kfp = state.engines.get(EngineKind::Kfp);
        if kfp.status(id).await.is_ok() {
            return kfp;
        }
    }
    local
}

/// `POST /api/baton/v1/engine/runs`: starts a run (a retry when `previous` is given).
async fn start(
    State(state): State<Arc<AppState>>,
    JsonBody(body): JsonBody<EngineRunBody>,
) -> ApiResult<Json<RunIdBody>> {
    let dag = Dag::build(body.graph, &DagCheck::default())?;
    let request = WorkflowRunRequest {
        project: body.project,
        dag,
        args: body.args,
    };
    let engine = engine(&state);
    let id = match &body.previous {
        Some(previous) => engine.retry(previous, request, body.options.into()).await?,
        None => engine.run(request, body.options.into()).await?,
    };
    Ok(Json(RunIdBody { id: id.to_string() }))
}

/// `GET /api/baton/v1/engine/runs/{id}`: the run's status.
async fn status(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let id = WorkflowRunId::from(id);
    let status = engine_of(&state, &id).await.status(&id).await?;
    Ok(Json(
        serde_json::to_value(status).expect("statuses serialize"),
    ))
}

/// `GET /api/baton/v1/engine/runs/{id}/events`: the status, then every event as it happens,
/// one JSON document per line; the stream ends after the run finished.
async fn events(State(state): State<Arc<AppState>>, Path(id): Path<String>) -> ApiResult<Body> {
    let id = WorkflowRunId::from(id);
    let subscription = engine_of(&state, &id).await.subscribe(&id).await?;
    let first = futures::stream::iter([StreamLine::Status(subscription.status)]);
    let lines = first
        .chain(subscription.events.map(StreamLine::Event))
        .map(|line| {
            let mut bytes = serde_json::to_vec(&line).expect("stream lines serialize");
            bytes.push(b'\n');
            Ok::<_, Infallible>(Bytes::from(bytes))
        });
    Ok(Body::from_stream(lines))
}

/// `POST /api/baton/v1/engine/runs/{id}/terminate`.
async fn terminate(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let id = WorkflowRunId::from(id);
    engine_of(&state, &id).await.terminate(&id).await?;
    Ok(Json(json!({})))
}

/// `POST /api/baton/v1/projects/{project}/workflows/{name}/runs`: stores the project's
/// definition when given, then runs workflow `name` here: its source is resolved now, and the
/// run is recorded and followed by the server. Answers the run's first record.
async fn submit(
    State(state): State<Arc<AppState>>,
    Path((project, name)): Path<(String, String)>,
    JsonBody(body): JsonBody<WorkflowSubmitBody>,
) -> ApiResult<Json<WorkflowRunRecord>> {
    if let Some(file) = body.project {
        state.projects.store_sent(&project, file)?;
    }
    let engine = match body.engine.as_deref() {
        None | Some("local") => EngineKind::Local,
        Some("kfp") if state.has_kfp => EngineKind::Kfp,
        Some("kfp") => {
            return Err(Error::bad_request(
                "This server has no KFP engine (start it with --kfp-url): run the workflow \
                 with the `remote:local` engine",
            )
            .into())
        }
        Some(other) => {
            return Err(Error::invalid(format!(
                "Unknown server-side engine `{other}`: expected `local` or `kfp`"
            ))
            .into())
        }
    };
    let baton = state.projects.baton(&project).await?;
    let options = RunWorkflowOptions {
        args: body.args,
        engine: Some(engine),
        parallelism: body.parallelism,
        timeout: body.timeout_ms.map(Duration::from_millis),
        allow_extra_args: body.allow_extra_args,
        ..RunWorkflowOptions::default()
    };
    let id = state
        .jobs
        .start_workflow(baton, &name, &options, None)
        .await?;
    let baton = state.projects.baton(&project).await?;
    Ok(Json(baton.db().read_workflow_run(&project, &id).await?))
}

/// `GET /api/baton/v1/projects/{project}/workflow-runs/{id}`: the recorded run, settled first
/// when its driver is gone.
async fn recorded(
    State(state): State<Arc<AppState>>,
    Path((project, id)): Path<(String, String)>,
) -> ApiResult<Json<WorkflowRunRecord>> {
    let baton = state.projects.baton(&project).await?;
    Ok(Json(baton.workflow_run(&id).await?))
}

/// `POST /api/baton/v1/projects/{project}/workflow-runs/{id}/retry`: runs again, here, what
/// did not succeed in recorded run `id`. Answers the new run's first record.
async fn retry(
    State(state): State<Arc<AppState>>,
    Path((project, id)): Path<(String, String)>,
    JsonBody(body): JsonBody<WorkflowRetryBody>,
) -> ApiResult<Json<WorkflowRunRecord>> {
    let baton = state.projects.baton(&project).await?;
    let options = RunWorkflowOptions {
        parallelism: body.parallelism,
        timeout: body.timeout_ms.map(Duration::from_millis),
        ..RunWorkflowOptions::default()
    };
    let handle = baton.retry_workflow(&id, &options).await?;
    let new_id = handle.id().to_string();
    state.jobs.follow_workflow(baton, handle, None);
    let baton = state.projects.baton(&project).await?;
    Ok(Json(baton.db().read_workflow_run(&project, &new_id).await?))
}

/// `POST /api/baton/v1/projects/{project}/workflow-runs/{id}/terminate`: asks recorded run
/// `id` to stop. Answers `{"requested": true}`, or the state it already ended in.
async fn terminate_recorded(
    State(state): State<Arc<AppState>>,
    Path((project, id)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let baton = state.projects.baton(&project).await?;
    match baton.terminate_workflow(&id).await? {
        Termination::AlreadyEnded(ended) => Ok(Json(json!({ "ended": ended }))),
        Termination::Requested => {
            // The run lives in this server's engine: stop it now rather than at the driver's
            // next look at the database.
            let id = WorkflowRunId::from(id);
            match engine_of(&state, &id).await.terminate(&id).await {
                Err(e) if e.kind() != ErrorKind::NotFound => return Err(e.into()),
                _ => {}
            }
            Ok(Json(json!({ "requested": true })))
        }
    }
}
