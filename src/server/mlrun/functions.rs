//! Functions: storing the function a client is about to run, and its build status.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use sha1::{Digest, Sha1};

use crate::error::Error;
use crate::project::SetFunctionRequest;
use crate::server::api_error::ApiResult;
use crate::server::body::parse_json;
use crate::server::AppState;

/// The parts of MLRun's function object that define a baton function.
#[derive(Debug, Deserialize)]
pub struct FunctionObject {
    kind: Option<String>,
    #[serde(default)]
    metadata: FunctionMetadata,
    #[serde(default)]
    spec: FunctionSpec,
}

#[derive(Debug, Default, Deserialize)]
struct FunctionMetadata {
    tag: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct FunctionSpec {
    image: Option<String>,
    default_handler: Option<String>,
    #[serde(default)]
    build: FunctionBuild,
}

#[derive(Debug, Default, Deserialize)]
struct FunctionBuild {
    source: Option<String>,
    #[serde(default)]
    requirements: Vec<String>,
    load_source_on_run: Option<bool>,
}

/// `POST /api/v1/projects/{project}/functions/{name}`: defines the function in the project (the
/// same checks as `baton set-function`: a `store://` source must be a function artifact) and
/// answers its `hash_key`, which the client puts in the run it submits next.
pub async fn store(
    State(state): State<Arc<AppState>>,
    Path((project, name)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> ApiResult<Json<Value>> {
    // Parsed from the bytes, which also give the function's hash key.
    let function: FunctionObject = parse_json(&body)?;
    let source = function
        .spec
        .build
        .source
        .filter(|s| !s.is_empty())
        .ok_or_else(|| {
            Error::bad_request(format!(
                "Function `{name}` has no spec.build.source: this server runs functions whose source is a code artifact (store://...), a .py file or an archive"
            ))
        })?;
    let mut baton = state.projects.baton(&project).await?;
    baton
        .set_function(SetFunctionRequest {
            name,
            func: source,
            kind: function.kind,
            handler: function.spec.default_handler.filter(|h| !h.is_empty()),
            image: function.spec.image.filter(|i| !i.is_empty()),
            requirements: function.spec.build.requirements,
            load_source_on_run: function.spec.build.load_source_on_run,
            tag: function.metadata.tag.filter(|t| !t.is_empty()),
        })
        .await?;
    Ok(Json(
        json!({ "hash_key": hex::encode(Sha1::digest(&body)) }),
    ))
}

/// `GET /api/v1/projects/{project}/functions/{name}`: the function as the project defines it.
pub async fn get(
    State(state): State<Arc<AppState>>,
    Path((project, name)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let baton = state.projects.baton(&project).await?;
    let description = baton.describe_function(&name).await?;
    Ok(Json(json!({ "func": description })))
}

/// `GET /api/v1/projects/{project}/functions`: every function of the project, with its
/// effective build (a function whose build cannot be resolved says why in `problem`).
pub async fn list(
    State(state): State<Arc<AppState>>,
    Path(project): Path<String>,
) -> ApiResult<Json<Value>> {
    let baton = state.projects.baton(&project).await?;
    Ok(Json(json!({ "funcs": baton.list_functions().await? })))
}

/// `GET /api/v1/build/status`: every function here is ready to run (its code is pulled when a
/// run starts, and images are built with `baton build`), so the client never tries to deploy.
pub async fn build_status() -> (HeaderMap, &'static str) {
    let mut headers = HeaderMap::new();
    headers.insert("x-mlrun-function-status", "ready".parse().expect("ascii"));
    (headers, "")
}
