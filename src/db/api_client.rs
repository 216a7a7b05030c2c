//! [`ApiClient`]: requests to a `baton server`, shared by [`super::HttpDb`] and the remote
//! engine.
//!
//! # Errors
//!
//! The server answers an error as MLRun's body (`{"detail": "MLRunNotFoundError('...')"}`, see
//! [`crate::error::MlrunErrorBody`]); the client turns it back into the same [`Error`] kind with
//! the same message ([`crate::error::from_api_answer`]), so a caller matching on
//! [`crate::error::ErrorKind::NotFound`] behaves the same over HTTP as in-process. A 401 says
//! the token is missing or wrong, with a hint about `BATON_TOKEN`.
//!
//! # Retries
//!
//! A request that never got an answer (the connection was refused or reset, or timed out) is
//! retried a few times with a doubling delay ([`RETRY_DELAYS`]) when repeating it is harmless:
//! reads (`GET`), replaces (`PUT`) and releases (`DELETE`). `POST`s are never repeated: the
//! first attempt may have been applied, and the second would answer differently. An answer,
//! even a 5xx, is never retried here.

use std::fmt;
use std::time::Duration;

use bytes::Bytes;
use reqwest::header::CONTENT_TYPE;
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{Error, Result};

/// The delays before each retry of a request that may be repeated: four retries, about 1.5 s in
/// all, enough to ride out a server restarting on the same port.
pub const RETRY_DELAYS: [Duration; 4] = [
    Duration::from_millis(100),
    Duration::from_millis(200),
    Duration::from_millis(400),
    Duration::from_millis(800),
];

/// How long to wait for a connection to be accepted.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long one request (other than a stream) may take in all. The server's SQLite may wait up to a minute for its
/// write lock, so this is longer than that.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(90);

/// A client of one `baton server`.
///
/// Built from the server's base URL (`http://host:port`; this build speaks plain HTTP only) and
/// the server's bearer token, if it has one. The token is sent on every request and never shown:
/// `Debug` prints it redacted and error messages never include it. Cloning is cheap and clones
/// share one connection pool.
#[derive(Clone)]
pub struct ApiClient {
    client: reqwest::Client,
    base: String,
    token: Option<String>,
}

impl fmt::Debug for ApiClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiClient")
            .field("base", &self.base)
            .field("token", &self.token.as_ref().map(|_| "***"))
            .finish()
    }
}

impl fmt::Display for ApiClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "baton server at {}", self.base)
    }
}

/// How a request may be repeated when it got no answer.
fn idempotent(method: &Method) -> bool {
    *method != Method::POST
}

/// Whether a failed request never got an answer, so repeating it can help.
fn unanswered(e: &reqwest::Error) -> bool {
    e.is_connect() || e.is_timeout() || (e.is_request() && e.status().is_none())
}

impl ApiClient {
    /// A client of the server at `base_url` (`http://127.0.0.1:8080`), sending `token` as
    /// `Authorization: Bearer <token>` when given. A URL that is not plain `http://`, or an
    /// empty token, is [`Error::InvalidArgument`].
    pub fn new(base_url: &str, token: Option<String>) -> Result<ApiClient> {
        let url = url::Url::parse(base_url).map_err(|e| {
            Error::invalid_from(format!("Malformed server URL `{base_url}`"), e)
                .with_hint("give the server's address as `http://<host>:<port>`")
        })?;
        if url.scheme() != "http" {
            return Err(Error::invalid_with_hint(
                format!(
                    "Unsupported server URL `{base_url}`: only `http://` is supported by this build"
                ),
                "reach the server over plain HTTP (put it behind a TLS proxy on its own network)",
            ));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(Error::invalid(format!(
                "Malformed server URL `{base_url}`: it must not have a query or fragment"
            )));
        }
        if token.as_deref().is_some_and(|t| t.trim().is_empty()) {
            return Err(Error::invalid_with_hint(
                "The server token is empty",
                "set BATON_TOKEN to the server's token, or unset it for a server without one",
            ));
        }
        let client = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .build()
            .map_err(|e| Error::internal_from("Failed to set up the HTTP client", e))?;
        Ok(ApiClient {
            client,
            base: url.as_str().trim_end_matches('/').to_string(),
            token,
        })
    }

    /// The server's base URL, without a trailing slash.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// The token sent with every request, if any (to hand to a child process).
    pub fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    /// The URL of `path` (already encoded) on the server.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Sends one request, retrying it while it gets no answer if it may be repeated, and
    /// returns the body of a successful answer; an error answer becomes its [`Error`].
    pub async fn call(
        &self,
        method: Method,
        url: &str,
        query: &[(&str, String)],
        body: Option<Bytes>,
    ) -> Result<Bytes> {
        let mut delays = RETRY_DELAYS.iter();
        let mut attempts = 1;
        loop {
            let mut request = self
                .client
                .request(method.clone(), url)
                .query(query)
                .timeout(REQUEST_TIMEOUT);
            if let Some(token) = &self.token {
                request = request.bearer_auth(token);
            }
            if let Some(body) = &body {
                request = request
                    .header(CONTENT_TYPE, "application/json")
                    .body(body.clone());
            }
            let response = match request.send().await {
                Ok(response) => response,
                Err(e) if idempotent(&method) && unanswered(&e) => match delays.next() {
                    Some(delay) => {
                        tracing::debug!(
                            "{method} {url} got no answer ({e}); retrying in {delay:?}"
                        );
                        tokio::time::sleep(*delay).await;
                        attempts += 1;
                        continue;
                    }
                    None => return Err(no_answer(&method, url, attempts, e)),
                },
                Err(e) => return Err(no_answer(&method, url, attempts, e)),
            };
            let status = response.status();
            let bytes = response.bytes().await.map_err(|e| {
                Error::runtime_from(
                    format!("Failed to read the answer to `{method} {url}`"),
                    e.without_url(),
                )
            })?;
            if status.is_success() {
                return Ok(bytes);
            }
            return Err(self.answer_error(status, &bytes));
        }
    }

    /// A `GET` whose answer is JSON.
    pub async fn get<T: DeserializeOwned>(&self, url: &str, query: &[(&str, String)]) -> Result<T> {
        let bytes = self.call(Method::GET, url, query, None).await?;
        decode(url, &bytes)
    }

    /// A request with a JSON body whose answer is JSON.
    pub async fn send<T: DeserializeOwned>(
        &self,
        method: Method,
        url: &str,
        query: &[(&str, String)],
        body: &impl Serialize,
    ) -> Result<T> {
        let body = serde_json::to_vec(body).expect("records always serialize");
        let bytes = self.call(method, url, query, Some(body.into())).await?;
        decode(url, &bytes)
    }

    /// A `PUT` of a JSON body answered with no content.
    pub async fn put(&self, url: &str, body: Option<&impl Serialize>) -> Result<()> {
        let body = body.map(|b| Bytes::from(serde_json::to_vec(b).expect("records serialize")));
        self.call(Method::PUT, url, &[], body).await?;
        Ok(())
    }

    /// The [`Error`] an error answer stands for: the kind and message the server's error had
    /// ([`crate::error::from_api_answer`]); a 401 says whether the token is missing or wrong.
    fn answer_error(&self, status: StatusCode, body: &[u8]) -> Error {
        if status == StatusCode::UNAUTHORIZED {
            let message = if self.token.is_some() {
                format!("The {self} refused the token it was given: the token is wrong")
            } else {
                format!("The {self} requires a token and none was given: the token is missing")
            };
            return Error::invalid(message)
                .with_hint("set BATON_TOKEN to the token the server was started with");
        }
        crate::error::from_api_answer(status.as_u16(), &String::from_utf8_lossy(body))
    }

    /// Opens a `GET` whose answer is read as it arrives (an event stream): no overall timeout,
    /// retried like any `GET` while it gets no answer.
    pub async fn open_stream(&self, url: &str) -> Result<reqwest::Response> {
        let mut delays = RETRY_DELAYS.iter();
        let mut attempts = 1;
        loop {
            let mut request = self.client.get(url);
            if let Some(token) = &self.token {
                request = request.bearer_auth(token);
            }
            match request.send().await {
                Ok(response) if response.status().is_success() => return Ok(response),
                Ok(response) => {
                    let status = response.status();
                    let body = response.bytes().await.unwrap_or_default();
                    return Err(self.answer_error(status, &body));
                }
                Err(e) if unanswered(&e) => match delays.next() {
                    Some(delay) => {
                        tokio::time::sleep(*delay).await;
                        attempts += 1;
                    }
                    None => return Err(no_answer(&Method::GET, url, attempts, e)),
                },
                Err(e) => return Err(no_answer(&Method::GET, url, attempts, e)),
            }
        }
    }
}

/// The error of a request that got no answer.
fn no_answer(method: &Method, url: &str, attempts: usize, e: reqwest::Error) -> Error {
    let tried = if attempts > 1 {
        format!(" (tried {attempts} times)")
    } else {
        String::new()
    };
    Error::runtime_from(
        format!("Cannot reach the baton server for `{method} {url}`{tried}"),
        e.without_url(),
    )
    .with_hint("check that `baton server` is running at that address")
}

/// Parses a successful answer.
fn decode<T: DeserializeOwned>(url: &str, bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|e| {
        Error::runtime_from(
            format!("The answer to `{url}` is not what baton expects"),
            e,
        )
    })
}

/// `value` as one path segment: everything but unreserved characters percent-encoded. An
/// empty, `.` or `..` segment cannot be sent (URL parsers drop or resolve dot segments, even
/// encoded ones), so it is [`Error::InvalidArgument`] naming `what`.
pub fn segment(what: &str, value: &str) -> Result<String> {
    if matches!(value, "" | "." | "..") {
        return Err(Error::invalid(format!(
            "Malformed {what} `{value}`: it cannot name a record"
        )));
    }
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    Ok(out)
}
