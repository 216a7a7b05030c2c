//! MLRun's REST API, the part the MLRun 1.12.1 client uses for code artifacts, jobs and
//! workflows (see `shared/reference/mlrun-client-api.md` for each call and the answer it needs).
//!
//! Artifacts are under `/api/v2`, everything else under `/api/v1`, as in MLRun. The client sends
//! most bodies without a `Content-Type`; [`JsonBody`](super::body::JsonBody) parses them anyway.

mod artifacts;
mod functions;
mod profiles;
mod projects;
mod runs;
mod schedules;
mod workflows;

use std::sync::Arc;

use axum::routing::{get, post, put};
use axum::Router;

use super::AppState;

/// MLRun's routes.
pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/api/v1/client-spec", get(projects::client_spec))
        .route(
            "/api/v1/projects",
            post(projects::create).get(projects::list),
        )
        .route(
            "/api/v1/projects/{project}",
            get(projects::get).put(projects::store),
        )
        .route(
            "/api/v2/projects/{project}/artifacts/{key}",
            put(artifacts::store).get(artifacts::get),
        )
        .route(
            "/api/v1/projects/{project}/datastore-profiles",
            put(profiles::store).get(profiles::list),
        )
        .route(
            "/api/v1/projects/{project}/datastore-profiles/{name}",
            get(profiles::get).delete(profiles::delete),
        )
        .route("/api/v1/build/status", get(functions::build_status))
        .route("/api/v1/projects/{project}/functions", get(functions::list))
        .route(
            "/api/v1/projects/{project}/functions/{name}",
            post(functions::store).get(functions::get),
        )
        .route("/api/v1/submit_job", post(runs::submit_job))
        .route("/api/v1/projects/{project}/runs", get(runs::list))
        .route("/api/v1/projects/{project}/runs/{uid}", get(runs::get))
        .route("/api/v1/projects/{project}/logs/{uid}", get(runs::logs))
        .route(
            "/api/v1/projects/{project}/workflows/{name}/submit",
            post(workflows::submit),
        )
        .route(
            "/api/v1/projects/{project}/workflows/{name}/runs/{id}",
            get(workflows::workflow_id),
        )
        .route(
            "/api/v1/projects/{project}/pipelines/{id}",
            get(workflows::pipeline),
        )
        .route(
            "/api/v1/projects/{project}/pipelines/{id}/push-notifications",
            post(workflows::push_notifications),
        )
        .route("/api/v1/projects/{project}/schedules", get(schedules::list))
        .route(
            "/api/v1/projects/{project}/schedules/{name}",
            get(schedules::get)
                .put(schedules::update)
                .delete(schedules::delete),
        )
        .route(
            "/api/v1/projects/{project}/schedules/{name}/invoke",
            post(schedules::invoke),
        )
}
