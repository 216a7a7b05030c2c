//! Bearer-token authentication for every route but `GET /healthz`.
//!
//! The token is compared in constant time and never written anywhere: [`Token`]'s `Debug`
//! hides it, and a refusal says only that the token is missing or wrong.

use std::fmt;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::api_error::ApiError;
use crate::error::{Error, Result};

/// The secret a client must present; `Debug` prints it redacted.
#[derive(Clone)]
pub struct Token(String);

impl Token {
    /// A token; an empty one is refused (it would let every request through unnoticed).
    pub fn new(secret: String) -> Result<Token> {
        if secret.trim().is_empty() {
            return Err(Error::invalid(
                "The server token is empty; give a non-empty --token or BATON_TOKEN",
            ));
        }
        Ok(Token(secret))
    }

    /// Whether `presented` is this token, in time independent of where they differ and of
    /// the token's length (both are hashed first, so the comparison is always 32 bytes).
    pub(crate) fn matches(&self, presented: &str) -> bool {
        let expected = Sha256::digest(self.0.as_bytes());
        let presented = Sha256::digest(presented.as_bytes());
        expected.ct_eq(&presented).into()
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(***)")
    }
}

/// Lets a request through when the server has no token or the request carries it as
/// `Authorization: Bearer <token>`; answers 401 otherwise.
pub async fn require_token(
    State(token): State<Arc<Option<Token>>>,
    request: Request,
    next: Next,
) -> Response {
    let Some(token) = token.as_ref() else {
        return next.run(request).await;
    };
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "));
    match presented {
        Some(presented) if token.matches(presented.trim()) => next.run(request).await,
        Some(_) => ApiError::with_status(StatusCode::UNAUTHORIZED, "The bearer token is wrong")
            .into_response(),
        None => ApiError::with_status(
            StatusCode::UNAUTHORIZED,
            "This server requires `Authorization: Bearer <token>`",
        )
        .into_response(),
    }
}
