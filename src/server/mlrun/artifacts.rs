//! Code artifacts (`/api/v2/projects/{project}/artifacts/{key}`).
//!
//! MLRun's client writes the payload to `spec.target_path` itself and sends only the record, so
//! storing one reads the payload back from there: its digest is recorded and checked by every
//! runner that resolves the version, exactly as for `baton log-code`.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::Json;
use serde::Deserialize;
use serde_json::Value;

use crate::artifact::names::validate_new_key;
use crate::artifact::{CodeSource, LogCodeRequest};
use crate::error::Error;
use crate::model::artifact::CODE_KIND;
use crate::model::Artifact;
use crate::server::api_error::ApiResult;
use crate::server::body::{JsonBody, Query};
use crate::server::AppState;
use crate::uri::StoreUri;

/// Query of `PUT .../artifacts/{key}`.
#[derive(Debug, Deserialize)]
pub struct StoreQuery {
    /// The producer tree the client pins in the URI it hands out.
    tree: Option<String>,
    /// A tag besides `latest`.
    tag: Option<String>,
}

/// `PUT /api/v2/projects/{project}/artifacts/{key}`: stores a code artifact version whose
/// payload the client already wrote to `spec.target_path` (or sent inline as `spec.body`).
pub async fn store(
    State(state): State<Arc<AppState>>,
    Path((project, key)): Path<(String, String)>,
    Query(query): Query<StoreQuery>,
    JsonBody(artifact): JsonBody<Artifact>,
) -> ApiResult<Json<Value>> {
    if artifact.kind != CODE_KIND {
        return Err(Error::bad_request(format!(
            "Artifact `{key}` has kind `{}`: this server stores only code artifacts (kind `code`)",
            artifact.kind
        ))
        .into());
    }
    let baton = state.projects.baton(&project).await?;
    let spec = &artifact.spec;
    let inline = spec.extra.get("body").and_then(Value::as_str);
    let source = match (&spec.target_path, inline) {
        (None, Some(body)) => CodeSource::Body {
            text: body.to_string(),
            path: None,
        },
        _ => CodeSource::Existing,
    };
    let request = LogCodeRequest {
        target_path: spec.target_path.clone(),
        code_type: spec.code_type.map(|c| c.as_str().to_string()),
        language: spec.language.clone(),
        requirements: spec.requirements.clone(),
        tag: query.tag.filter(|t| t != crate::db::LATEST),
        labels: artifact.metadata.labels.clone(),
        db_key: spec.db_key.clone().filter(|k| *k != key),
        src_path: spec.src_path.clone(),
        tree: query
            .tree
            .or_else(|| Some(artifact.metadata.tree.clone()))
            .filter(|t| !t.is_empty()),
        ..LogCodeRequest::new(key, source)
    };
    let stored = baton.log_code(request).await?;
    Ok(Json(artifact_json(&stored.artifact)))
}

/// Query of `GET .../artifacts/{key}`.
#[derive(Debug, Deserialize)]
pub struct GetQuery {
    tag: Option<String>,
    tree: Option<String>,
    #[serde(rename = "object-uid")]
    uid: Option<String>,
    iter: Option<u32>,
}

/// `GET /api/v2/projects/{project}/artifacts/{key}`: the version `object-uid` names, else the
/// one `tag` (default `latest`) points to, filtered by `tree` and `iter`.
pub async fn get(
    State(state): State<Arc<AppState>>,
    Path((project, key)): Path<(String, String)>,
    Query(query): Query<GetQuery>,
) -> ApiResult<Json<Value>> {
    // Keys follow the rules of new keys (so no `/` or `..`): one that breaks them names no
    // artifact and is refused as such.
    validate_new_key("key", &key)?;
    let baton = state.projects.baton(&project).await?;
    // The client sends `tag=latest` even with an uid; the uid alone names the version (and its
    // tree is the first tree it was stored under, which a re-log of the same content keeps).
    let uri = StoreUri {
        project: Some(project.clone()),
        key,
        iter: query.iter,
        tag: if query.uid.is_some() { None } else { query.tag },
        tree: if query.uid.is_some() {
            None
        } else {
            query.tree
        },
        uid: query.uid,
    };
    let artifact = baton.db().read_artifact(&project, &uri).await?;
    Ok(Json(artifact_json(&artifact)))
}

fn artifact_json(artifact: &Artifact) -> Value {
    let mut value = serde_json::to_value(artifact).expect("artifacts serialize");
    if value["metadata"]["tag"].is_null() {
        value["metadata"]["tag"] = crate::db::LATEST.into();
    }
    value
}
