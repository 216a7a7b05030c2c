//! Making sure a `baton server` holds the project a CLI works on.

use serde_json::json;

use crate::db::ApiClient;
use crate::error::{ErrorKind, Result};
use crate::project::Project;

/// Creates `project` on the server `api` talks to unless the server has it already (a project
/// the server holds keeps its own definition). Its artifact path is sent absolute, so the server
/// reads the payloads this machine writes.
pub async fn ensure_server_project(api: &ApiClient, project: &Project) -> Result<()> {
    let mut file = project.file.clone();
    file.spec.artifact_path = Some(project.resolve_artifact_path(None));
    file.spec.functions.clear();
    file.spec.workflows.clear();
    let url = api.url("/api/v1/projects");
    let created: Result<serde_json::Value> = api
        .send(reqwest::Method::POST, &url, &[], &json!(file))
        .await;
    match created {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == ErrorKind::Conflict => Ok(()),
        Err(e) => Err(e),
    }
}
