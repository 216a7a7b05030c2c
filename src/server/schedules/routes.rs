//! baton's own schedule routes, under `/api/baton/v1/projects/{project}/schedules`: what
//! `baton run --schedule` and `baton schedules ...` call.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::store::{Fire, ScheduleRecord, ScheduleSpec};
use crate::error::{Error, Result};
use crate::model::ProjectFile;
use crate::schedule::{
    parse_zone, Catchup, Overlap, DEFAULT_CATCHUP_WINDOW, DEFAULT_CONCURRENCY_LIMIT,
};
use crate::server::api_error::ApiResult;
use crate::server::body::{JsonBody, Query};
use crate::server::AppState;

/// The path of a project's schedules.
pub const SCHEDULES_PATH: &str = "/api/baton/v1/projects/{project}/schedules";

/// How many fires `GET .../schedules/{name}` shows unless asked (`?fires=N`).
const SHOWN_FIRES: usize = 20;

/// Query of `GET .../schedules/{name}`.
#[derive(Debug, Deserialize)]
struct DetailQuery {
    /// How many of the newest fires to show.
    fires: Option<usize>,
}

/// The body of `POST .../schedules`: a schedule to store (replacing one of that name).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleBody {
    /// The schedule's name.
    pub name: String,
    /// The workflow each fire runs (default: the schedule's name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workflow: Option<String>,
    /// The cron expression (5 fields, or an `@hourly`-style macro).
    pub schedule: String,
    /// The IANA time zone (default `UTC`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
    /// The overlap policy (default `skip`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overlap: Option<String>,
    /// The catch-up policy (default `latest`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub catchup: Option<String>,
    /// How far back `catchup: all` reaches (e.g. `6h`; default a day).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub catchup_window: Option<String>,
    /// Runs going at once under `overlap: skip` (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency_limit: Option<u32>,
    /// Arguments of every run.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub args: Map<String, Value>,
    /// The server-side engine: `local` (default) or `kfp`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine: Option<String>,
    /// The project's definition, stored first (as a remote run sends it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<ProjectFile>,
}

impl ScheduleBody {
    /// The spec this body asks for, each field checked (errors name it).
    pub fn spec(&self) -> Result<ScheduleSpec> {
        let timezone = parse_zone(self.timezone.as_deref())?.name().to_string();
        let catchup_window = match &self.catchup_window {
            Some(text) => humantime::parse_duration(text).map_err(|e| {
                Error::invalid(format!("catchup_window: `{text}` is not a duration ({e})"))
            })?,
            None => DEFAULT_CATCHUP_WINDOW,
        };
        if let Some(engine) = self.engine.as_deref().filter(|e| !matches!(*e, "" | "kfp")) {
            // `local` gets MLRun's own refusal when the schedule is checked.
            if !engine.contains("local") {
                return Err(Error::invalid(format!(
                    "engine: unknown server-side engine `{engine}`; expected `kfp`, or none for the server's local engine"
                )));
            }
        }
        if self.concurrency_limit == Some(0) {
            return Err(Error::invalid("concurrency_limit: must be at least 1"));
        }
        Ok(ScheduleSpec {
            workflow: self.workflow.clone().unwrap_or_else(|| self.name.clone()),
            schedule: self.schedule.trim().to_string(),
            timezone,
            overlap: self
                .overlap
                .as_deref()
                .map(str::parse::<Overlap>)
                .transpose()?
                .unwrap_or_default(),
            catchup: self
                .catchup
                .as_deref()
                .map(str::parse::<Catchup>)
                .transpose()?
                .unwrap_or_default(),
            catchup_window_s: catchup_window.as_secs(),
            concurrency_limit: self.concurrency_limit.unwrap_or(DEFAULT_CONCURRENCY_LIMIT),
            args: self.args.clone(),
            engine: self.engine.clone().filter(|e| !e.is_empty()),
        })
    }
}

/// The body of `POST .../schedules/{name}/pause`.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct PauseBody {
    /// Why it is paused.
    #[serde(default)]
    pub note: Option<String>,
}

/// The body of `POST .../schedules/{name}/backfill`.
#[derive(Debug, Serialize, Deserialize)]
pub struct BackfillBody {
    /// The first instant of the range (RFC 3339).
    pub from: DateTime<Utc>,
    /// The last instant of the range (RFC 3339), not in the future.
    pub to: DateTime<Utc>,
}

/// A schedule with its newest fires, as `GET .../schedules/{name}` answers.
#[derive(Debug, Serialize, Deserialize)]
pub struct ScheduleDetail {
    /// The schedule.
    #[serde(flatten)]
    pub schedule: ScheduleRecord,
    /// Its newest fires, newest first.
    pub fires: Vec<Fire>,
}

/// The routes.
pub(crate) fn routes() -> Router<Arc<AppState>> {
    let one = format!("{SCHEDULES_PATH}/{{name}}");
    Router::new()
        .route(SCHEDULES_PATH, post(put).get(list))
        .route(&one, get(detail).delete(delete))
        .route(&format!("{one}/pause"), post(pause))
        .route(&format!("{one}/resume"), post(resume))
        .route(&format!("{one}/trigger"), post(trigger))
        .route(&format!("{one}/backfill"), post(backfill))
}

/// `POST .../schedules`: stores the project's definition when given, then the schedule.
/// Answers 201 with a new schedule, 200 with an updated one.
async fn put(
    State(state): State<Arc<AppState>>,
    Path(project): Path<String>,
    JsonBody(body): JsonBody<ScheduleBody>,
) -> ApiResult<(StatusCode, Json<ScheduleRecord>)> {
    let spec = body.spec()?;
    if spec.engine.as_deref() == Some("kfp") && !state.has_kfp {
        return Err(Error::bad_request(
            "engine: this server has no KFP engine (start it with --kfp-url); schedule the workflow on its local engine",
        )
        .into());
    }
    if let Some(file) = body.project {
        state.projects.store_sent(&project, file)?;
    }
    let (record, created) = state
        .schedules
        .put(&state.projects, &project, &body.name, spec)
        .await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(record)))
}

async fn list(
    State(state): State<Arc<AppState>>,
    Path(project): Path<String>,
) -> ApiResult<Json<Vec<ScheduleRecord>>> {
    Ok(Json(state.schedules.list(&project).await?))
}

async fn detail(
    State(state): State<Arc<AppState>>,
    Path((project, name)): Path<(String, String)>,
    Query(query): Query<DetailQuery>,
) -> ApiResult<Json<ScheduleDetail>> {
    let schedule = state.schedules.get(&project, &name).await?;
    let shown = query.fires.unwrap_or(SHOWN_FIRES);
    let fires = state.schedules.fires(&project, &name, shown).await?;
    Ok(Json(ScheduleDetail { schedule, fires }))
}

async fn delete(
    State(state): State<Arc<AppState>>,
    Path((project, name)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    state.schedules.delete(&project, &name).await?;
    Ok(Json(json!({ "deleted": name })))
}

async fn pause(
    State(state): State<Arc<AppState>>,
    Path((project, name)): Path<(String, String)>,
    JsonBody(body): JsonBody<PauseBody>,
) -> ApiResult<Json<ScheduleRecord>> {
    let note = body.note.filter(|n| !n.is_empty());
    Ok(Json(state.schedules.pause(&project, &name, note).await?))
}

async fn resume(
    State(state): State<Arc<AppState>>,
    Path((project, name)): Path<(String, String)>,
) -> ApiResult<Json<ScheduleRecord>> {
    Ok(Json(state.schedules.resume(&project, &name).await?))
}

async fn trigger(
    State(state): State<Arc<AppState>>,
    Path((project, name)): Path<(String, String)>,
) -> ApiResult<Json<Fire>> {
    Ok(Json(state.schedules.trigger(&project, &name).await?))
}

async fn backfill(
    State(state): State<Arc<AppState>>,
    Path((project, name)): Path<(String, String)>,
    JsonBody(body): JsonBody<BackfillBody>,
) -> ApiResult<Json<Vec<Fire>>> {
    Ok(Json(
        state
            .schedules
            .backfill(&project, &name, body.from, body.to)
            .await?,
    ))
}
