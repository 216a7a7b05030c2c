//! Errors as the API answers them: MLRun's error body with the status of the error's kind.

use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;

use crate::error::{Error, ErrorKind};

/// An error answered to a client: `{"detail": "<MLRun class>('<message>')"}` with its status.
///
/// MLRun's client raises the exception class that the status maps to (400 is
/// `MLRunBadRequestError`, 404 `MLRunNotFoundError`, ...) with the detail as its message, and
/// retries idempotent requests on 5xx: only failures that may go away on their own are 5xx.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    detail: String,
}

impl ApiError {
    /// An error with a status of its own (413, 401), outside the kinds of [`Error`].
    pub fn with_status(status: StatusCode, message: impl Into<String>) -> ApiError {
        let class = match status {
            StatusCode::UNAUTHORIZED => "MLRunUnauthorizedError",
            StatusCode::PAYLOAD_TOO_LARGE => "MLRunBadRequestError",
            _ => "MLRunHTTPError",
        };
        ApiError {
            status,
            detail: format!("{class}: {}", message.into()),
        }
    }
}

impl From<Error> for ApiError {
    fn from(err: Error) -> ApiError {
        if err.kind() == ErrorKind::Internal || err.kind() == ErrorKind::Runtime {
            tracing::error!("request failed: {}", err.chain());
        }
        ApiError {
            status: StatusCode::from_u16(err.http_status())
                .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            detail: err.mlrun_body().detail,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "detail": self.detail });
        (self.status, Json(body)).into_response()
    }
}

/// The result of a handler.
pub type ApiResult<T> = std::result::Result<T, ApiError>;

/// Any route the API does not have: 404 with MLRun's error body.
pub async fn unknown_route(method: axum::http::Method, uri: Uri) -> ApiError {
    Error::not_found(format!("No route `{method} {}` on this server", uri.path())).into()
}
