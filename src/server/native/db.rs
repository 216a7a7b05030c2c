//! The [`crate::db::Db`] operations over HTTP, for [`crate::db::HttpDb`]: one route per method
//! under `/api/baton/v1/projects/{project}/db`, each answering from that project's database.
//!
//! | Method | Path (under `.../{project}/db`) | `Db` method | Answer |
//! |---|---|---|---|
//! | `GET` | `/artifacts?key=&tag=` | `list_artifacts` | `[{"artifact", "tags"}]` |
//! | `GET` | `/artifacts/{key}?tag=&tree=&iter=&uid=` | `read_artifact` | the artifact |
//! | `PUT` | `/artifacts/{key}/{uid}?tag=` | `store_artifact` | `{"artifact", "created"}` |
//! | `GET` | `/runs?label=<key>=<value>` (repeatable) | `list_runs` | `[run]` |
//! | `GET` | `/runs/{uid}` | `read_run` | the run |
//! | `PUT` | `/runs/{uid}` | `store_run` | 204 |
//! | `POST` | `/runs/{uid}/update-active` | `update_active_run` | `{"updated": bool}` |
//! | `GET` | `/builds/{function}` | `read_build` | the build, or `null` |
//! | `PUT` | `/builds/{function}` | `store_build` | 204 |
//! | `GET` | `/workflow-runs` | `list_workflow_runs` | `[record]` |
//! | `GET` | `/workflow-runs/{id}` | `read_workflow_run` | the record |
//! | `PUT` | `/workflow-runs/{id}` | `store_workflow_run` | 204 |
//! | `GET` | `/workflow-runs/{id}/termination` | `workflow_termination_requested` | `{"requested": bool}` |
//! | `PUT` | `/workflow-runs/{id}/termination` | `request_workflow_termination` | 204 |
//! | `GET` | `/leases/{name}` | `lease_alive` | `{"alive": bool}` |
//! | `POST` | `/leases/{name}/acquire` | `acquire_lease` | `{"acquired": bool}` |
//! | `POST` | `/leases/{name}/renew` | `renew_lease` | `{"renewed": bool}` |
//! | `DELETE` | `/leases/{name}?owner=` | `release_lease` | 204 |
//!
//! # Why these methods
//!
//! A client retries what it may repeat (see [`crate::db::HttpDb`]), so the method says whether
//! repeating is harmless. Storing an artifact is `PUT` under its uid: the uid is the hash of
//! the content, so a repeat stores the same version and moves the same tags (it answers
//! `created: false` the second time, the only difference). Replacing a record is `PUT`;
//! asking for termination twice is asking once, so it is `PUT` too. `update_active_run` and
//! the lease calls are `POST`: their answer depends on the state the previous call left
//! (`update_active_run` repeated after it ended a run answers false), so a client never repeats
//! them blindly.
//!
//! # Records and paths
//!
//! A body's own identity (an artifact's project, db key and uid, a run's project and uid, a
//! workflow run's project and id) must match the path, or the request is a 400: a client cannot
//! write into one project's database through another's path. Leases are named
//! `<kind>/<project>/<id>` ([`crate::model::RunObject::runner_lease`]) and live in that project's
//! database; a name of another project is a 400. Keys and names in paths are checked before any
//! use (a project name by [`crate::server::Projects`], an artifact key by the key rules), so
//! `..` is a 400 and reaches nothing.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::db::wire::{LeaseRequest, StoredArtifactBody, VersionBody};
use crate::db::{lease_project, ArtifactFilter, BuildRecord, Db, RunFilter};
use crate::error::Error;
use crate::model::{Artifact, RunObject, WorkflowRunRecord};
use crate::server::api_error::ApiResult;
use crate::server::body::{JsonBody, Query};
use crate::server::AppState;
use crate::uri::names::{validate_key, validate_tag};
use crate::uri::StoreUri;

/// The routes of the database API.
pub fn routes() -> Router<Arc<AppState>> {
    const DB: &str = "/api/baton/v1/projects/{project}/db";
    let route = |path: &str| format!("{DB}{path}");
    Router::new()
        .route(&route("/artifacts"), get(list_artifacts))
        .route(&route("/artifacts/{key}"), get(read_artifact))
        .route(&route("/artifacts/{key}/{uid}"), put(store_artifact))
        .route(&route("/runs"), get(list_runs))
        .route(&route("/runs/{uid}"), get(read_run).put(store_run))
        .route(&route("/runs/{uid}/update-active"), post(update_active_run))
        .route(
            &route("/builds/{function}"),
            get(read_build).put(store_build),
        )
        .route(&route("/workflow-runs"), get(list_workflow_runs))
        .route(
            &route("/workflow-runs/{id}"),
            get(read_workflow_run).put(store_workflow_run),
        )
        .route(
            &route("/workflow-runs/{id}/termination"),
            get(termination_requested).put(request_termination),
        )
        .route(
            &route("/leases/{name}"),
            get(lease_alive).delete(release_lease),
        )
        .route(&route("/leases/{name}/acquire"), post(acquire_lease))
        .route(&route("/leases/{name}/renew"), post(renew_lease))
}

/// The database of project `name`; an unknown project is [`Error::NotFound`], a malformed name
/// [`Error::InvalidArgument`] (checked before any path is built from it).
async fn db(state: &AppState, project: &str) -> crate::error::Result<Arc<dyn Db>> {
    Ok(state.projects.baton(project).await?.shared_db())
}

/// Refuses a body whose own `what` is not the one its path names.
fn same(what: &str, in_body: &str, in_path: &str) -> crate::error::Result<()> {
    if in_body == in_path {
        Ok(())
    } else {
        Err(Error::bad_request(format!(
            "The {what} `{in_body}` in the body is not the `{in_path}` the path names"
        )))
    }
}

/// Query of `GET .../artifacts`.
#[derive(Debug, Deserialize)]
struct ListArtifactsQuery {
    key: Option<String>,
    tag: Option<String>,
}

/// `GET .../db/artifacts`: versions of the project's artifacts, newest first.
async fn list_artifacts(
    State(state): State<Arc<AppState>>,
    Path(project): Path<String>,
    Query(query): Query<ListArtifactsQuery>,
) -> ApiResult<Json<Vec<VersionBody>>> {
    let db = db(&state, &project).await?;
    let filter = ArtifactFilter {
        key: query.key,
        tag: query.tag,
    };
    let versions = db.list_artifacts(&project, &filter).await?;
    Ok(Json(versions.into_iter().map(VersionBody::from).collect()))
}

/// Query of `GET .../artifacts/{key}`: the selectors of a store URI.
#[derive(Debug, Deserialize)]
struct ReadArtifactQuery {
    tag: Option<String>,
    tree: Option<String>,
    iter: Option<u32>,
    uid: Option<String>,
}

/// `GET .../db/artifacts/{key}`: the version the selectors name.
async fn read_artifact(
    State(state): State<Arc<AppState>>,
    Path((project, key)): Path<(String, String)>,
    Query(query): Query<ReadArtifactQuery>,
) -> ApiResult<Json<Artifact>> {
    validate_key("key", &key)?;
    if let Some(tag) = &query.tag {
        validate_tag(tag)?;
    }
    let db = db(&state, &project).await?;
    let uri = StoreUri {
        project: Some(project.clone()),
        key,
        iter: query.iter,
        tag: query.tag,
        tree: query.tree,
        uid: query.uid,
    };
    Ok(Json(db.read_artifact(&project, &uri).await?))
}

/// Query of `PUT .../artifacts/{key}/{uid}`.
#[derive(Debug, Deserialize)]
struct StoreArtifactQuery {
    tag: Option<String>,
}

/// `PUT .../db/artifacts/{key}/{uid}`: stores a version (see the module docs on why `PUT`).
async fn store_artifact(
    State(state): State<Arc<AppState>>,
    Path((project, key, uid)): Path<(String, String, String)>,
    Query(query): Query<StoreArtifactQuery>,
    JsonBody(artifact): JsonBody<Artifact>,
) -> ApiResult<Json<StoredArtifactBody>> {
    validate_key("key", &key)?;
    if let Some(tag) = &query.tag {
        validate_tag(tag)?;
    }
    same("project", &artifact.metadata.project, &project)?;
    same("artifact key", artifact.db_key(), &key)?;
    same(
        "artifact uid",
        artifact.metadata.uid.as_deref().unwrap_or_default(),
        &uid,
    )?;
    let db = db(&state, &project).await?;
    let stored = db.store_artifact(artifact, query.tag.as_deref()).await?;
    Ok(Json(stored.into()))
}

/// `GET .../db/runs?label=<key>=<value>`: the project's runs carrying every label, newest first.
async fn list_runs(
    State(state): State<Arc<AppState>>,
    Path(project): Path<String>,
    RawQuery(query): RawQuery,
) -> ApiResult<Json<Vec<RunObject>>> {
    let mut labels = Vec::new();
    for (name, value) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        if name != "label" {
            return Err(Error::bad_request(format!(
                "Unknown query parameter `{name}`: runs are filtered by `label=<key>=<value>`"
            ))
            .into());
        }
        let (key, value) = value.split_once('=').ok_or_else(|| {
            Error::bad_request(format!(
                "Malformed query parameter `label`: `{value}` is not `<key>=<value>`"
            ))
        })?;
        labels.push((key.to_string(), value.to_string()));
    }
    let db = db(&state, &project).await?;
    Ok(Json(db.list_runs(&project, &RunFilter { labels }).await?))
}

/// `GET .../db/runs/{uid}`.
async fn read_run(
    State(state): State<Arc<AppState>>,
    Path((project, uid)): Path<(String, String)>,
) -> ApiResult<Json<RunObject>> {
    let db = db(&state, &project).await?;
    Ok(Json(db.read_run(&project, &uid).await?))
}

/// `PUT .../db/runs/{uid}`: creates or replaces the run.
async fn store_run(
    State(state): State<Arc<AppState>>,
    Path((project, uid)): Path<(String, String)>,
    JsonBody(run): JsonBody<RunObject>,
) -> ApiResult<StatusCode> {
    same("project", &run.metadata.project, &project)?;
    same("run uid", &run.metadata.uid, &uid)?;
    db(&state, &project).await?.store_run(&run).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST .../db/runs/{uid}/update-active`: replaces the run unless it already ended.
async fn update_active_run(
    State(state): State<Arc<AppState>>,
    Path((project, uid)): Path<(String, String)>,
    JsonBody(run): JsonBody<RunObject>,
) -> ApiResult<Json<Value>> {
    same("project", &run.metadata.project, &project)?;
    same("run uid", &run.metadata.uid, &uid)?;
    let updated = db(&state, &project).await?.update_active_run(&run).await?;
    Ok(Json(json!({ "updated": updated })))
}

/// `GET .../db/builds/{function}`: the last build, or `null` when there was none.
async fn read_build(
    State(state): State<Arc<AppState>>,
    Path((project, function)): Path<(String, String)>,
) -> ApiResult<Json<Option<BuildRecord>>> {
    let db = db(&state, &project).await?;
    Ok(Json(db.read_build(&project, &function).await?))
}

/// `PUT .../db/builds/{function}`.
async fn store_build(
    State(state): State<Arc<AppState>>,
    Path((project, function)): Path<(String, String)>,
    JsonBody(build): JsonBody<BuildRecord>,
) -> ApiResult<StatusCode> {
    let db = db(&state, &project).await?;
    db.store_build(&project, &function, &build).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET .../db/workflow-runs`: newest first.
async fn list_workflow_runs(
    State(state): State<Arc<AppState>>,
    Path(project): Path<String>,
) -> ApiResult<Json<Vec<WorkflowRunRecord>>> {
    let db = db(&state, &project).await?;
    Ok(Json(db.list_workflow_runs(&project).await?))
}

/// `GET .../db/workflow-runs/{id}`.
async fn read_workflow_run(
    State(state): State<Arc<AppState>>,
    Path((project, id)): Path<(String, String)>,
) -> ApiResult<Json<WorkflowRunRecord>> {
    let db = db(&state, &project).await?;
    Ok(Json(db.read_workflow_run(&project, &id).await?))
}

/// `PUT .../db/workflow-runs/{id}`: creates or replaces the record, keeping a pending
/// termination request.
async fn store_workflow_run(
    State(state): State<Arc<AppState>>,
    Path((project, id)): Path<(String, String)>,
    JsonBody(run): JsonBody<WorkflowRunRecord>,
) -> ApiResult<StatusCode> {
    same("project", &run.project, &project)?;
    same("workflow run id", &run.id, &id)?;
    db(&state, &project).await?.store_workflow_run(&run).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET .../db/workflow-runs/{id}/termination`.
async fn termination_requested(
    State(state): State<Arc<AppState>>,
    Path((project, id)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let db = db(&state, &project).await?;
    let requested = db.workflow_termination_requested(&project, &id).await?;
    Ok(Json(json!({ "requested": requested })))
}

/// `PUT .../db/workflow-runs/{id}/termination`: the run's driver (on this server or wherever
/// it polls this database) sees the request and stops the run.
async fn request_termination(
    State(state): State<Arc<AppState>>,
    Path((project, id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let db = db(&state, &project).await?;
    db.request_workflow_termination(&project, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The database of the project lease `name` belongs to, which must be the path's.
async fn lease_db(
    state: &AppState,
    project: &str,
    name: &str,
) -> crate::error::Result<Arc<dyn Db>> {
    let owner = lease_project(name)?;
    if owner != project {
        return Err(Error::bad_request(format!(
            "Lease `{name}` belongs to project `{owner}`, not to the `{project}` the path names"
        )));
    }
    db(state, project).await
}

/// `GET .../db/leases/{name}`.
async fn lease_alive(
    State(state): State<Arc<AppState>>,
    Path((project, name)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let alive = lease_db(&state, &project, &name)
        .await?
        .lease_alive(&name)
        .await?;
    Ok(Json(json!({ "alive": alive })))
}

/// `POST .../db/leases/{name}/acquire`: the TTL runs on this server's clock.
async fn acquire_lease(
    State(state): State<Arc<AppState>>,
    Path((project, name)): Path<(String, String)>,
    JsonBody(lease): JsonBody<LeaseRequest>,
) -> ApiResult<Json<Value>> {
    let ttl = Duration::from_millis(lease.ttl_ms);
    let acquired = lease_db(&state, &project, &name)
        .await?
        .acquire_lease(&name, &lease.owner, ttl)
        .await?;
    Ok(Json(json!({ "acquired": acquired })))
}

/// `POST .../db/leases/{name}/renew`.
async fn renew_lease(
    State(state): State<Arc<AppState>>,
    Path((project, name)): Path<(String, String)>,
    JsonBody(lease): JsonBody<LeaseRequest>,
) -> ApiResult<Json<Value>> {
    let ttl = Duration::from_millis(lease.ttl_ms);
    let renewed = lease_db(&state, &project, &name)
        .await?
        .renew_lease(&name, &lease.owner, ttl)
        .await?;
    Ok(Json(json!({ "renewed": renewed })))
}

/// Query of `DELETE .../leases/{name}`.
#[derive(Debug, Deserialize)]
struct ReleaseQuery {
    owner: String,
}

/// `DELETE .../db/leases/{name}?owner=`: releasing a lease one does not hold does nothing.
async fn release_lease(
    State(state): State<Arc<AppState>>,
    Path((project, name)): Path<(String, String)>,
    Query(query): Query<ReleaseQuery>,
) -> ApiResult<StatusCode> {
    lease_db(&state, &project, &name)
        .await?
        .release_lease(&name, &query.owner)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
