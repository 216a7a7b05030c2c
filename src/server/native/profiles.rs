//! Datastore profiles on baton's API, for [`crate::db::HttpDb`]'s
//! [`crate::datastore::profile::ProfileStore`]: the profile records, and the objects of a
//! profile, read and written here so a client's `ds://` URL works without its credentials.
//!
//! | Method | Path (under `/api/baton/v1/projects/{project}/datastore-profiles`) | Answer |
//! |---|---|---|
//! | `GET` | `` | `[profile]` (public parts) |
//! | `GET` | `/{name}` | the public part |
//! | `PUT` | `/{name}` | `{"profile", "secrets"}` in; 204 |
//! | `DELETE` | `/{name}` | 204 |
//! | `GET` | `/{name}/objects/{*path}` | the object's bytes, streamed; a bare 404 when missing |
//! | `PUT` | `/{name}/objects/{*path}` | the bytes in, with `x-baton-digest: sha256:<hex>`; 204 |
//!
//! Secrets go in once and never come out: every answer is a public part, and an object is
//! opened here, with the profile's credentials, by the project's datastore. An upload is stored
//! only if its bytes have the digest the client announced, so a broken connection never leaves
//! a short object. The object routes take bodies of any size (the body limit of JSON requests
//! does not apply): they are streamed, never held in memory.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use futures::TryStreamExt;

use crate::datastore::http::DIGEST_HEADER;
use crate::datastore::profile::{DatastoreProfile, DS_SCHEME};
use crate::datastore::PayloadDigest;
use crate::db::profiles::StoreProfileBody;
use crate::error::Error;
use crate::server::api_error::ApiResult;
use crate::server::body::JsonBody;
use crate::server::AppState;

/// The routes of datastore profiles.
pub fn routes() -> Router<Arc<AppState>> {
    const BASE: &str = "/api/baton/v1/projects/{project}/datastore-profiles";
    Router::new()
        .route(BASE, get(list))
        .route(
            &format!("{BASE}/{{name}}"),
            get(read).put(store).delete(delete),
        )
        .route(
            &format!("{BASE}/{{name}}/objects/{{*path}}"),
            get(read_object)
                .put(write_object)
                .layer(DefaultBodyLimit::disable()),
        )
}

/// `GET ...`: every profile's public part, by name.
async fn list(
    State(state): State<Arc<AppState>>,
    Path(project): Path<String>,
) -> ApiResult<Json<Vec<DatastoreProfile>>> {
    let store = state.projects.profiles(&project).await?;
    Ok(Json(store.list_profiles(&project).await?))
}

/// `GET .../{name}`: one profile's public part.
async fn read(
    State(state): State<Arc<AppState>>,
    Path((project, name)): Path<(String, String)>,
) -> ApiResult<Json<DatastoreProfile>> {
    let store = state.projects.profiles(&project).await?;
    Ok(Json(store.read_profile(&project, &name).await?))
}

/// `PUT .../{name}`: creates or replaces a profile with its secrets.
async fn store(
    State(state): State<Arc<AppState>>,
    Path((project, name)): Path<(String, String)>,
    JsonBody(body): JsonBody<StoreProfileBody>,
) -> ApiResult<StatusCode> {
    if body.profile.name != name {
        return Err(Error::bad_request(format!(
            "The profile `{}` in the body is not the `{name}` the path names",
            body.profile.name
        ))
        .into());
    }
    let store = state.projects.profiles(&project).await?;
    store
        .store_profile(&project, &body.profile, &body.secrets)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `DELETE .../{name}`.
async fn delete(
    State(state): State<Arc<AppState>>,
    Path((project, name)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let store = state.projects.profiles(&project).await?;
    store.delete_profile(&project, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET .../{name}/objects/{*path}`: streams the object, opened here with the profile.
async fn read_object(
    State(state): State<Arc<AppState>>,
    Path((project, name, path)): Path<(String, String, String)>,
) -> ApiResult<Response> {
    let url = format!("{DS_SCHEME}{name}/{path}");
    let baton = state.projects.baton(&project).await?;
    let Some(incoming) = baton.datastore().read(&url).await? else {
        return Ok(StatusCode::NOT_FOUND.into_response());
    };
    let mut response = Body::from_stream(incoming.chunks).into_response();
    if let Some(size) = incoming.announced {
        response
            .headers_mut()
            .insert(header::CONTENT_LENGTH, size.into());
    }
    Ok(response)
}

/// `PUT .../{name}/objects/{*path}`: stores the body as the object, if it has the announced
/// digest and size.
async fn write_object(
    State(state): State<Arc<AppState>>,
    Path((project, name, path)): Path<(String, String, String)>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<StatusCode> {
    let header_value = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let sha256 = header_value(DIGEST_HEADER)
        .filter(|d| d.starts_with("sha256:"))
        .ok_or_else(|| {
            Error::bad_request(format!(
                "An upload needs the `{DIGEST_HEADER}: sha256:<hex>` header"
            ))
        })?;
    let size = header_value(header::CONTENT_LENGTH.as_str())
        .and_then(|s| s.parse::<u64>().ok())
        .ok_or_else(|| Error::bad_request("An upload needs a Content-Length"))?;
    let expected = PayloadDigest {
        sha256,
        sha1: String::new(),
        size,
    };
    let url = format!("{DS_SCHEME}{name}/{path}");
    let chunks = body
        .into_data_stream()
        .map_err(|e| Error::runtime_from("The upload was interrupted", e));
    let baton = state.projects.baton(&project).await?;
    baton.datastore().write(&url, chunks, &expected).await?;
    Ok(StatusCode::NO_CONTENT)
}
