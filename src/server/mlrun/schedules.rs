//! Schedules the MLRun client's way: `project.run(name, schedule=...)` submits a workflow with
//! a schedule (stored here, answered `scheduled`), and `get_run_db()` lists, reads, updates,
//! invokes and deletes them under `/api/v1/projects/{project}/schedules`.
//!
//! A workflow's schedule is named after the workflow, as in MLRun, and shown as MLRun's
//! `ScheduleOutput`: kind `job`, the workflow-runner labels, the cron trigger's fields.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::error::{Error, Result};
use crate::server::api_error::ApiResult;
use crate::server::body::JsonBody;
use crate::server::schedules::routes::ScheduleBody;
use crate::server::schedules::store::ScheduleRecord;
use crate::server::AppState;

/// A schedule as the client sends it: a crontab string, or MLRun's `ScheduleCronTrigger`.
/// Answers the expression and the time zone.
pub fn cron_of(schedule: &Value) -> Result<(String, Option<String>)> {
    match schedule {
        Value::String(text) => Ok((text.clone(), None)),
        Value::Object(trigger) => {
            let field = |name: &str| match trigger.get(name) {
                None | Some(Value::Null) => "*".to_string(),
                Some(Value::String(s)) => s.clone(),
                Some(other) => other.to_string(),
            };
            for unsupported in ["year", "week", "second", "start_date", "end_date"] {
                if trigger.get(unsupported).is_some_and(|v| !v.is_null()) {
                    return Err(Error::invalid(format!(
                        "schedule: the cron trigger's `{unsupported}` is not supported; give the five crontab fields"
                    )));
                }
            }
            let expression = ["minute", "hour", "day", "month", "day_of_week"]
                .map(field)
                .join(" ");
            let timezone = trigger
                .get("timezone")
                .and_then(Value::as_str)
                .map(str::to_string);
            Ok((expression, timezone))
        }
        other => Err(Error::invalid(format!(
            "schedule: expected a crontab string or a cron trigger, got `{other}`"
        ))),
    }
}

/// Stores the schedule of workflow `name` of `project` from a submission whose spec has
/// `schedule` (replacing the workflow's schedule if it has one), as MLRun does.
pub async fn store_workflow_schedule(
    state: &AppState,
    project: &str,
    name: &str,
    schedule: &Value,
    engine: Option<&str>,
    args: Map<String, Value>,
) -> Result<ScheduleRecord> {
    let (expression, timezone) = cron_of(schedule)?;
    let body = ScheduleBody {
        name: name.to_string(),
        workflow: Some(name.to_string()),
        schedule: expression,
        timezone,
        args,
        // MLRun's client asks for `kfp` for `remote`: the server's choice, as for a run.
        engine: engine
            .filter(|e| *e == "kfp" && state.has_kfp)
            .map(str::to_string),
        ..ScheduleBody::default()
    };
    let (record, _) = state
        .schedules
        .put(&state.projects, project, name, body.spec()?)
        .await?;
    Ok(record)
}

/// A schedule as MLRun's `ScheduleOutput`.
fn output(record: &ScheduleRecord) -> Value {
    let fields: Vec<&str> = record.spec.schedule.split_whitespace().collect();
    let cron_trigger = match fields.as_slice() {
        [minute, hour, day, month, day_of_week] => json!({
            "minute": minute, "hour": hour, "day": day, "month": month,
            "day_of_week": day_of_week, "timezone": record.spec.timezone,
            "year": null, "week": null, "second": null, "jitter": null,
            "start_date": null, "end_date": null,
        }),
        _ => Value::String(record.spec.schedule.clone()),
    };
    let last_run = record.last_fire.as_ref().and_then(|f| f.run_id.as_ref());
    json!({
        "name": record.name,
        "kind": "job",
        "project": record.project,
        "scheduled_object": {
            "task": {"spec": {"parameters": {
                "workflow_name": record.spec.workflow,
                "workflow_arguments": record.spec.args,
                "engine": record.spec.engine,
            }}},
            "schedule": record.spec.schedule,
        },
        "cron_trigger": cron_trigger,
        "desired_state": if record.paused { Value::from("paused") } else { Value::Null },
        "labels": {"job-type": "workflow-runner", "workflow": record.spec.workflow},
        "concurrency_limit": record.spec.concurrency_limit,
        "creation_time": record.created,
        "last_run_uri": last_run.map(|id| format!("{}@{id}#0", record.project)),
        "state": record.last_fire.as_ref().map(|f| f.state),
        "next_run_time": record.next_fire,
        "last_run": {},
        "credentials": {"access_key": null},
    })
}

/// `GET /api/v1/projects/{project}/schedules`.
pub async fn list(
    State(state): State<Arc<AppState>>,
    Path(project): Path<String>,
) -> ApiResult<Json<Value>> {
    state.projects.load(&project)?;
    let schedules: Vec<Value> = state
        .schedules
        .list(&project)
        .await?
        .iter()
        .map(output)
        .collect();
    Ok(Json(json!({ "schedules": schedules })))
}

/// `GET /api/v1/projects/{project}/schedules/{name}`.
pub async fn get(
    State(state): State<Arc<AppState>>,
    Path((project, name)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    Ok(Json(output(&state.schedules.get(&project, &name).await?)))
}

/// `DELETE /api/v1/projects/{project}/schedules/{name}`: 204.
pub async fn delete(
    State(state): State<Arc<AppState>>,
    Path((project, name)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    state.schedules.delete(&project, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /api/v1/projects/{project}/schedules/{name}/invoke`: fires it now.
pub async fn invoke(
    State(state): State<Arc<AppState>>,
    Path((project, name)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let fire = state.schedules.trigger(&project, &name).await?;
    Ok(Json(json!({ "data": fire })))
}

/// The body of `PUT .../schedules/{name}` (MLRun's `ScheduleUpdate`).
#[derive(Debug, Deserialize)]
pub struct ScheduleUpdate {
    cron_trigger: Option<Value>,
    concurrency_limit: Option<u32>,
}

/// `PUT /api/v1/projects/{project}/schedules/{name}`: a new cron trigger or concurrency limit.
pub async fn update(
    State(state): State<Arc<AppState>>,
    Path((project, name)): Path<(String, String)>,
    JsonBody(body): JsonBody<ScheduleUpdate>,
) -> ApiResult<Json<Value>> {
    let mut spec = state.schedules.get(&project, &name).await?.spec;
    if let Some(trigger) = body.cron_trigger.filter(|t| !t.is_null()) {
        let (expression, timezone) = cron_of(&trigger)?;
        spec.schedule = expression;
        if let Some(zone) = timezone {
            spec.timezone = zone;
        }
    }
    if let Some(limit) = body.concurrency_limit {
        if limit == 0 {
            return Err(Error::invalid("concurrency_limit: must be at least 1").into());
        }
        spec.concurrency_limit = limit;
    }
    state
        .schedules
        .put(&state.projects, &project, &name, spec)
        .await?;
    Ok(Json(json!({})))
}
