//! Request extractors that answer bad input the way the rest of the API does.
//!
//! MLRun's client sends most JSON bodies without a `Content-Type`, so [`JsonBody`] parses the
//! bytes whatever the header says. Both extractors name the field that is wrong (`spec.params:
//! invalid type ...`) and answer 400 (413 for a body over the limit) with MLRun's error body,
//! never axum's plain-text rejections.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::StatusCode;
use serde::de::DeserializeOwned;

use super::api_error::ApiError;
use crate::error::Error;

/// A JSON request body, parsed whatever its `Content-Type`.
#[derive(Debug)]
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::with_status(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "The request body is larger than the server accepts",
                )
            } else {
                Error::bad_request(format!("Cannot read the request body: {rejection}")).into()
            }
        })?;
        parse_json(&bytes).map(JsonBody)
    }
}

/// Parses a JSON document, naming the path of the field that does not fit `T`.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(&mut deserializer).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let message = if path == "." || path.is_empty() {
            format!("Malformed JSON body: {inner}")
        } else {
            format!("Malformed JSON body at `{path}`: {inner}")
        };
        Error::bad_request(message).into()
    })
}

/// Query parameters, named in the error when one does not fit.
#[derive(Debug)]
pub struct Query<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        let query = parts.uri.query().unwrap_or_default();
        let deserializer =
            serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
        serde_path_to_error::deserialize(deserializer)
            .map(Query)
            .map_err(|e| {
                Error::bad_request(format!(
                    "Malformed query parameter `{}`: {}",
                    e.path(),
                    e.inner()
                ))
                .into()
            })
    }
}
