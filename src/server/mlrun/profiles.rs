//! MLRun's datastore-profile routes, as the MLRun 1.12.1 client calls them
//! (`HTTPRunDB.store_datastore_profile`, `get_datastore_profile`, `list_datastore_profiles`,
//! `delete_datastore_profile`).
//!
//! MLRun's wire form is `{"name", "type", "object", "private", "project"}`, where `object` is a
//! JSON object of the profile's public attributes with base64-encoded values, and `private` the
//! same for its secrets (the client usually keeps those in project secrets and sends `null`).
//! baton maps MLRun's `s3` profile (`bucket`, `endpoint_url`; secrets `access_key_id`,
//! `secret_key`) onto its own; its `file` and `http` kinds travel with an `endpoint`. Answers
//! always carry `"private": null`: secrets never leave the server.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::datastore::profile::{DatastoreProfile, ProfileKind, ProfileSecrets};
use crate::error::{Error, Result};
use crate::server::api_error::ApiResult;
use crate::server::body::JsonBody;
use crate::server::AppState;

/// MLRun's `DatastoreProfile` schema.
#[derive(Debug, Deserialize)]
pub struct MlrunProfile {
    name: String,
    #[serde(rename = "type")]
    kind: String,
    object: String,
    #[serde(default)]
    private: Option<String>,
}

/// `PUT /api/v1/projects/{project}/datastore-profiles`: creates or replaces a profile.
pub async fn store(
    State(state): State<Arc<AppState>>,
    Path(project): Path<String>,
    JsonBody(body): JsonBody<MlrunProfile>,
) -> ApiResult<StatusCode> {
    let (profile, secrets) = from_mlrun(&body)?;
    let store = state.projects.profiles(&project).await?;
    store.store_profile(&project, &profile, &secrets).await?;
    Ok(StatusCode::OK)
}

/// `GET /api/v1/projects/{project}/datastore-profiles`: every profile, public parts only.
pub async fn list(
    State(state): State<Arc<AppState>>,
    Path(project): Path<String>,
) -> ApiResult<Json<Vec<Value>>> {
    let store = state.projects.profiles(&project).await?;
    let list = store.list_profiles(&project).await?;
    Ok(Json(list.iter().map(|p| to_mlrun(p, &project)).collect()))
}

/// `GET /api/v1/projects/{project}/datastore-profiles/{name}`.
pub async fn get(
    State(state): State<Arc<AppState>>,
    Path((project, name)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let store = state.projects.profiles(&project).await?;
    let profile = store.read_profile(&project, &name).await?;
    Ok(Json(to_mlrun(&profile, &project)))
}

/// `DELETE /api/v1/projects/{project}/datastore-profiles/{name}`.
pub async fn delete(
    State(state): State<Arc<AppState>>,
    Path((project, name)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let store = state.projects.profiles(&project).await?;
    store.delete_profile(&project, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The attributes of an MLRun attribute object: JSON of base64 values.
fn decode_attributes(json_text: &str, what: &str) -> Result<BTreeMap<String, String>> {
    let encoded: BTreeMap<String, String> = serde_json::from_str(json_text).map_err(|e| {
        Error::invalid_from(
            format!("The profile's `{what}` is not a JSON object of strings"),
            e,
        )
    })?;
    encoded
        .into_iter()
        .map(|(k, v)| {
            let bytes = STANDARD.decode(v.as_bytes()).map_err(|e| {
                Error::invalid_from(
                    format!("The profile's `{what}` attribute `{k}` is not base64"),
                    e,
                )
            })?;
            let value = String::from_utf8(bytes).map_err(|e| {
                Error::invalid_from(
                    format!("The profile's `{what}` attribute `{k}` is not text"),
                    e,
                )
            })?;
            Ok((k, value))
        })
        // Python's `str(None)`: an attribute that is not set.
        .filter(|r| !matches!(r, Ok((_, v)) if v == "None"))
        .collect()
}

/// baton's profile from MLRun's wire form.
fn from_mlrun(body: &MlrunProfile) -> Result<(DatastoreProfile, ProfileSecrets)> {
    let kind: ProfileKind = body.kind.parse().map_err(|_| {
        Error::invalid(format!(
            "Datastore profile type `{}` is not supported by this server: expected `s3`, `file` or `http`",
            body.kind
        ))
    })?;
    let public = decode_attributes(&body.object, "object")?;
    let private = match &body.private {
        Some(text) if !text.is_empty() => decode_attributes(text, "private")?,
        _ => BTreeMap::new(),
    };
    let profile = DatastoreProfile {
        name: body.name.clone(),
        kind,
        bucket: public.get("bucket").cloned(),
        endpoint: public
            .get("endpoint_url")
            .or_else(|| public.get("endpoint"))
            .cloned(),
        secrets: private.keys().cloned().collect(),
    };
    Ok((profile, ProfileSecrets(private)))
}

/// MLRun's wire form of a profile's public part.
fn to_mlrun(profile: &DatastoreProfile, project: &str) -> Value {
    let mut attributes = BTreeMap::new();
    attributes.insert("type", profile.kind.as_str().to_string());
    attributes.insert("name", profile.name.clone());
    if let Some(bucket) = &profile.bucket {
        attributes.insert("bucket", bucket.clone());
    }
    if let Some(endpoint) = &profile.endpoint {
        let key = match profile.kind {
            ProfileKind::S3 => "endpoint_url",
            _ => "endpoint",
        };
        attributes.insert(key, endpoint.clone());
    }
    let encoded: BTreeMap<&str, String> = attributes
        .into_iter()
        .map(|(k, v)| (k, STANDARD.encode(v.as_bytes())))
        .collect();
    json!({
        "name": profile.name,
        "type": profile.kind.as_str(),
        "object": serde_json::to_string(&encoded).expect("strings serialize"),
        "private": null,
        "project": project,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mlrun_s3_profiles_map_both_ways_and_answers_carry_no_secrets() {
        let encode = |pairs: &[(&str, &str)]| {
            let map: BTreeMap<_, _> = pairs
                .iter()
                .map(|(k, v)| (k.to_string(), STANDARD.encode(v)))
                .collect();
            serde_json::to_string(&map).unwrap()
        };
        let body = MlrunProfile {
            name: "my-profile".into(),
            kind: "s3".into(),
            object: encode(&[
                ("type", "s3"),
                ("name", "my-profile"),
                ("bucket", "b"),
                ("endpoint_url", "http://127.0.0.1:9000"),
                ("profile_name", "None"),
            ]),
            private: Some(encode(&[("access_key_id", "AK"), ("secret_key", "SK")])),
        };
        let (profile, secrets) = from_mlrun(&body).unwrap();
        assert_eq!(profile.bucket.as_deref(), Some("b"));
        assert_eq!(profile.endpoint.as_deref(), Some("http://127.0.0.1:9000"));
        assert_eq!(secrets.get("secret_key"), Some("SK"));
        let answer = to_mlrun(&profile, "p").to_string();
        assert!(
            !answer.contains("SK") && !answer.contains(&STANDARD.encode("SK")),
            "{answer}"
        );
        let object: BTreeMap<String, String> =
            serde_json::from_str(to_mlrun(&profile, "p")["object"].as_str().unwrap()).unwrap();
        assert_eq!(
            object["endpoint_url"],
            STANDARD.encode("http://127.0.0.1:9000")
        );
        let unsupported = MlrunProfile {
            kind: "redis".into(),
            ..body
        };
        assert!(from_mlrun(&unsupported)
            .unwrap_err()
            .to_string()
            .contains("`redis` is not supported"));
    }
}
