//! Errors as a page: the status of the error's kind and its message, escaped like any value.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use maud::html;

use super::pages::shell;
use crate::error::{Error, ErrorKind};

/// An error answered as a page: bad input gets its status and message (and hint); an internal
/// failure gets 500 with "Something went wrong" and is logged.
#[derive(Debug)]
pub struct PageError(pub Error);

impl From<Error> for PageError {
    fn from(err: Error) -> Self {
        PageError(err)
    }
}

/// The result of a page handler.
pub type PageResult<T> = std::result::Result<T, PageError>;

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let err = self.0;
        let status =
            StatusCode::from_u16(err.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let internal = matches!(err.kind(), ErrorKind::Internal);
        if internal || err.kind() == ErrorKind::Runtime {
            tracing::error!("page failed: {}", err.chain());
        }
        let message = if internal {
            "Something went wrong".to_string()
        } else {
            err.to_string()
        };
        let body = shell(
            "Error",
            html! {
                h1 { "Error " (status.as_u16()) }
                p.error { (message) }
                @if let Some(hint) = err.hint() { p.hint { "hint: " (hint) } }
                p { a href="/" { "All projects" } }
            },
        );
        (status, body).into_response()
    }
}
