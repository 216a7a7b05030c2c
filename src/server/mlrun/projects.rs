//! `client-spec` and projects.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde_json::{json, Value};

use crate::error::Error;
use crate::model::ProjectFile;
use crate::project::Project;
use crate::server::api_error::ApiResult;
use crate::server::body::JsonBody;
use crate::server::AppState;

/// The MLRun version whose client this API answers.
pub const MLRUN_VERSION: &str = "1.12.1";

/// The namespace reported to clients: any non-empty value tells the client that runs execute
/// on the server (an empty one makes it force local runs).
const NAMESPACE: &str = "baton";

/// `GET /api/v1/client-spec`: the configuration the client syncs at `import mlrun`.
///
/// Artifact targets are named by content hash (`generate_artifact_target_path_from_artifact_hash`),
/// so a new version of a key never overwrites the payload an older version points to.
pub async fn client_spec(State(state): State<Arc<AppState>>) -> Json<Value> {
    Json(json!({
        "version": MLRUN_VERSION,
        "namespace": NAMESPACE,
        "artifact_path": state.artifact_path,
        "calculate_artifact_hash": "True",
        "generate_artifact_target_path_from_artifact_hash": "True",
        "authentication_mode": "none",
        "ce": {"mode": "full"},
        "scrape_metrics": false,
        "default_function_pod_resources": {},
    }))
}

/// `GET /api/v1/projects`: every project.
pub async fn list(State(state): State<Arc<AppState>>) -> ApiResult<Json<Value>> {
    let mut projects = Vec::new();
    for name in state.projects.names()? {
        projects.push(project_json(&state.projects.load(&name)?));
    }
    Ok(Json(json!({ "projects": projects })))
}

/// `POST /api/v1/projects`: creates a project (409 when it exists).
pub async fn create(
    State(state): State<Arc<AppState>>,
    JsonBody(file): JsonBody<ProjectFile>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let project = state.projects.create(file)?;
    Ok((StatusCode::CREATED, Json(project_json(&project))))
}

/// `GET /api/v1/projects/{project}`.
pub async fn get(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    Ok(Json(project_json(&state.projects.load(&name)?)))
}

/// `PUT /api/v1/projects/{project}`: stores a project's whole definition.
pub async fn store(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    JsonBody(file): JsonBody<ProjectFile>,
) -> ApiResult<Json<Value>> {
    if file.metadata.name != name {
        return Err(Error::bad_request(format!(
            "metadata.name `{}` does not match the project `{name}` in the path",
            file.metadata.name
        ))
        .into());
    }
    Ok(Json(project_json(&state.projects.store(file)?)))
}

/// A project as MLRun answers it: its definition with `status.state: online`.
fn project_json(project: &Project) -> Value {
    let mut value = serde_json::to_value(&project.file).expect("project files serialize");
    value["status"]["state"] = "online".into();
    value
}
