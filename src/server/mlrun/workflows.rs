//! Workflows: submitting one to run on this server, and reading its state the ways MLRun's
//! client asks (the workflow id of a submission, the pipeline summary, the runner run).
//!
//! MLRun's client never stores the workflow in the project before `project.run(engine="remote")`:
//! the submission carries the workflow's spec, so it is set (and checked: a `store://` path must
//! be a workflow artifact) from there. The workflow's source is resolved now, its graph built and
//! its steps dispatched on this host by the local engine; the answer carries the run's id. A
//! submission with a schedule stores the schedule instead (answered `scheduled`): each fire
//! resolves the workflow afresh.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::engine::{EngineKind, WorkflowState};
use crate::error::Error;
use crate::model::WorkflowRunRecord;
use crate::project::{RunWorkflowOptions, SetWorkflowRequest};
use crate::server::api_error::ApiResult;
use crate::server::body::JsonBody;
use crate::server::AppState;

/// The body of `POST .../workflows/{name}/submit`.
#[derive(Debug, Default, Deserialize)]
pub struct SubmitWorkflow {
    /// The workflow's spec; when absent, the project's workflow of that name runs.
    spec: Option<WorkflowSubmitSpec>,
    /// Arguments overriding the spec's.
    arguments: Option<Map<String, Value>>,
}

#[derive(Debug, Default, Deserialize)]
struct WorkflowSubmitSpec {
    /// `kfp` (the client's default for `remote`, and `remote:kfp`) or `local`.
    engine: Option<String>,
    path: Option<String>,
    handler: Option<String>,
    #[serde(default)]
    args: Option<Map<String, Value>>,
    schedule: Option<Value>,
}

/// `POST /api/v1/projects/{project}/workflows/{name}/submit`.
pub async fn submit(
    State(state): State<Arc<AppState>>,
    Path((project, name)): Path<(String, String)>,
    JsonBody(body): JsonBody<SubmitWorkflow>,
) -> ApiResult<Json<Value>> {
    let mut baton = state.projects.baton(&project).await?;
    let spec = body.spec.unwrap_or_default();
    let schedule = spec.schedule.clone().filter(|s| !s.is_null());
    if schedule.is_some() && spec.engine.as_deref().is_some_and(|e| e.contains("local")) {
        return Err(
            Error::invalid("'schedule' argument is not supported for 'local' engine.").into(),
        );
    }
    let mut args = spec.args.clone().unwrap_or_default();
    args.extend(body.arguments.unwrap_or_default());
    if let Some(path) = spec.path.filter(|p| !p.is_empty()) {
        baton
            .set_workflow(SetWorkflowRequest {
                name: name.clone(),
                path,
                engine: None,
                handler: spec.handler.filter(|h| !h.is_empty()),
                args: spec.args.unwrap_or_default(),
                schedule: None,
                args_schema: Vec::new(),
            })
            .await?;
    }
    if let Some(schedule) = schedule {
        super::schedules::store_workflow_schedule(
            &state,
            &project,
            &name,
            &schedule,
            spec.engine.as_deref(),
            args,
        )
        .await?;
        return Ok(Json(json!({
            "project": project,
            "name": name,
            "status": "scheduled",
            "run_id": null,
            "schedule": schedule,
        })));
    }
    // MLRun's client asks for `kfp` for both `remote` and `remote:kfp`: KFP runs it when this
    // server has one, else its local engine does.
    let engine = match spec.engine.as_deref() {
        Some("kfp") if state.has_kfp => EngineKind::Kfp,
        _ => EngineKind::Local,
    };
    let options = RunWorkflowOptions {
        args,
        engine: Some(engine),
        ..RunWorkflowOptions::default()
    };
    let id = state
        .jobs
        .start_workflow(baton, &name, &options, None)
        .await?;
    Ok(Json(json!({
        "project": project,
        "name": name,
        "status": "Running",
        "run_id": id,
        "schedule": null,
    })))
}

/// `GET /api/v1/projects/{project}/workflows/{name}/runs/{id}`: the workflow id of a
/// submission, which here is the run's own id.
pub async fn workflow_id(
    State(state): State<Arc<AppState>>,
    Path((project, _name, id)): Path<(String, String, String)>,
) -> ApiResult<Json<Value>> {
    let baton = state.projects.baton(&project).await?;
    let run = baton.workflow_run(&id).await?;
    Ok(Json(json!({ "workflow_id": run.id })))
}

/// `GET /api/v1/projects/{project}/pipelines/{id}`: the run as a KFP pipeline summary, which
/// the client reads for the state of a `remote` run.
pub async fn pipeline(
    State(state): State<Arc<AppState>>,
    Path((project, id)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let baton = state.projects.baton(&project).await?;
    let run = baton.workflow_run(&id).await?;
    Ok(Json(json!({
        "graph": {},
        "run": {
            "id": run.id,
            "name": run.name,
            "status": kfp_status(run.state),
            "error": run.error,
            "created_at": run.started,
            "scheduled_at": run.started,
            "finished_at": run.finished,
            "description": "",
            "experiment_id": "",
            "project": run.project,
            "message": run.error.clone().unwrap_or_default(),
        }
    })))
}

/// `POST /api/v1/projects/{project}/pipelines/{id}/push-notifications`: the client asks for the
/// run's notifications once it ended; this server sends none, so there is nothing to push.
pub async fn push_notifications(
    State(state): State<Arc<AppState>>,
    Path((project, id)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    state
        .projects
        .baton(&project)
        .await?
        .workflow_run(&id)
        .await?;
    Ok(Json(json!({})))
}

/// A workflow state as KFP's run status string (the client matches `Succeeded` exactly).
fn kfp_status(state: WorkflowState) -> &'static str {
    match state {
        WorkflowState::Pending => "Pending",
        WorkflowState::Running => "Running",
        WorkflowState::Canceling => "Terminating",
        WorkflowState::Succeeded => "Succeeded",
        WorkflowState::Failed => "Failed",
        WorkflowState::Canceled => "Canceled",
    }
}

/// The run state of the workflow-runner run of a workflow in `state`.
pub fn runner_state(state: WorkflowState) -> &'static str {
    match state {
        WorkflowState::Pending | WorkflowState::Running | WorkflowState::Canceling => "running",
        WorkflowState::Succeeded => "completed",
        WorkflowState::Failed => "error",
        WorkflowState::Canceled => "aborted",
    }
}

/// A workflow run as MLRun's workflow-runner run: the job that drives the workflow, in
/// MLRun's run shape, with the run state the workflow's state maps to.
pub fn runner_run(run: &WorkflowRunRecord) -> Value {
    let state = runner_state(run.state);
    // The run's own labels (a scheduled run's `mlrun/schedule-name`), then the runner's.
    let mut labels: Map<String, Value> = run
        .labels
        .iter()
        .map(|(k, v)| (k.clone(), Value::from(v.as_str())))
        .collect();
    labels.extend([
        ("kind".to_string(), Value::from("job")),
        ("job-type".to_string(), Value::from("workflow-runner")),
        ("workflow".to_string(), Value::from(run.id.as_str())),
    ]);
    json!({
        "metadata": {
            "uid": run.id,
            "name": format!("workflow-runner-{}", run.name),
            "project": run.project,
            "iteration": 0,
            "labels": labels,
        },
        "spec": {"parameters": run.args},
        "status": {
            "state": state,
            "results": {},
            "error": run.error,
            "start_time": run.started,
            "last_update": run.finished.as_deref().unwrap_or(&run.started),
        },
    })
}
