//! `http://` and `https://` payloads: read-only, streamed, bounded in size and time.
//!
//! A web server is a source, never a target: baton only reads from it. A response is streamed
//! chunk by chunk as it arrives; its size is checked against the limit on the `Content-Length`
//! it announces and again on the bytes actually received (a server may announce nothing, or
//! lie), so an endless or oversized body is cut off instead of filling the disk. The whole
//! transfer has a deadline, so a server that stops sending does not hang a runner.
//!
//! The same reader serves `ds://` payloads of a client that reaches its profiles through a
//! `baton server`: the server streams the object ([`Bearer`] carries the server's token), and
//! that route also accepts uploads ([`HttpSource::upload`]).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use reqwest::StatusCode;

use super::PayloadDigest;
use crate::error::{Error, Result};

/// The environment variable capping the size of one HTTP download, in bytes.
pub const MAX_BYTES_ENV: &str = "BATON_HTTP_MAX_BYTES";

/// The environment variable bounding the time one HTTP download may take (`30s`, `5m`).
pub const TIMEOUT_ENV: &str = "BATON_HTTP_TIMEOUT";

/// The header naming the digest an upload must have (`sha256:<hex>`).
pub const DIGEST_HEADER: &str = "x-baton-digest";

/// The default size cap: 1 GiB.
pub const DEFAULT_MAX_BYTES: u64 = 1024 * 1024 * 1024;

/// The default deadline of one download.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);

/// How long connecting may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The limits of HTTP downloads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpLimits {
    /// The largest body accepted, in bytes.
    pub max_bytes: u64,
    /// The deadline of a whole transfer, connection included.
    pub timeout: Duration,
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            max_bytes: DEFAULT_MAX_BYTES,
            timeout: DEFAULT_TIMEOUT,
        }
    }
}

impl HttpLimits {
    /// The limits from [`MAX_BYTES_ENV`] and [`TIMEOUT_ENV`], else the defaults; a malformed
    /// value is [`Error::InvalidArgument`] naming the variable.
    pub fn from_env() -> Result<HttpLimits> {
        let mut limits = HttpLimits::default();
        if let Some(v) = std::env::var(MAX_BYTES_ENV).ok().filter(|v| !v.is_empty()) {
            limits.max_bytes = v.parse().map_err(|e| {
                Error::invalid_from(
                    format!("{MAX_BYTES_ENV} (`{v}`) is not a number of bytes"),
                    e,
                )
            })?;
        }
        if let Some(v) = std::env::var(TIMEOUT_ENV).ok().filter(|v| !v.is_empty()) {
            limits.timeout = humantime::parse_duration(&v).map_err(|e| {
                Error::invalid_from(
                    format!("{TIMEOUT_ENV} (`{v}`) is not a duration such as `30s`"),
                    e,
                )
            })?;
        }
        Ok(limits)
    }
}

/// A bearer token sent with every request (a `baton server`'s).
#[derive(Clone)]
pub struct Bearer(pub String);

impl std::fmt::Debug for Bearer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Bearer(***)")
    }
}

/// A body being received: the size it announced and its chunks, each checked against the limit.
pub struct Incoming {
    /// The `Content-Length` of the answer, if it gave one.
    pub announced: Option<u64>,
    /// The chunks, ending with an error when the size limit or the deadline is passed.
    pub chunks: BoxStream<'static, Result<Bytes>>,
}

/// Reads payloads over HTTP(S).
///
/// Its HTTP client is built on first use, and shared by clones: building one loads the system's
/// CA certificates (hundreds of files), which a command that never reads over HTTP(S), such as a
/// `baton run` of cached code, should not pay for.
#[derive(Debug, Clone)]
pub struct HttpSource {
    client: Arc<tokio::sync::OnceCell<reqwest::Client>>,
    limits: HttpLimits,
}

impl HttpSource {
    /// A reader with `limits`.
    pub fn new(limits: HttpLimits) -> Result<HttpSource> {
        Ok(HttpSource {
            client: Arc::default(),
            limits,
        })
    }

    /// The HTTP client, built the first time it is needed.
    async fn client(&self) -> Result<&reqwest::Client> {
        self.client
            .get_or_try_init(|| async {
                reqwest::Client::builder()
                    .connect_timeout(CONNECT_TIMEOUT)
                    .build()
                    .map_err(|e| Error::internal_from("Failed to set up the HTTP client", e))
            })
            .await
    }

    /// The limits this reader applies.
    pub fn limits(&self) -> HttpLimits {
        self.limits
    }

    /// Starts a `GET` of `url`; `None` when the server answers 404.
    pub async fn get(&self, url: &str, bearer: Option<&Bearer>) -> Result<Option<Incoming>> {
        let mut request = self.client().await?.get(url).timeout(self.limits.timeout);
        if let Some(Bearer(token)) = bearer {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.map_err(|e| {
            Error::runtime_from(format!("Failed to download `{url}`"), e.without_url())
        })?;
        if response.status() == StatusCode::NOT_FOUND {
            // A `baton server` says why (a missing profile, project); a bare 404 is a missing
            // object.
            let body = response.bytes().await.unwrap_or_default();
            let text = String::from_utf8_lossy(&body);
            if text.contains("\"detail\"") {
                return Err(crate::error::from_api_answer(404, &text));
            }
            return Ok(None);
        }
        let response = check_status(url, response).await?;
        let announced = response.content_length();
        let max = self.limits.max_bytes;
        if let Some(size) = announced.filter(|&s| s > max) {
            return Err(too_large(url, size, max));
        }
        let shown = url.to_string();
        let mut received = 0u64;
        let chunks = response
            .bytes_stream()
            .map_err({
                let url = shown.clone();
                move |e| {
                    let what = if e.is_body() || e.is_decode() {
                        format!("The download of `{url}` was truncated: the connection ended before the body did")
                    } else {
                        format!("Failed to download `{url}`")
                    };
                    Error::runtime_from(what, e.without_url())
                }
            })
            .and_then(move |chunk| {
                received += chunk.len() as u64;
                let result = if received > max {
                    Err(too_large(&shown, received, max))
                } else {
                    Ok(chunk)
                };
                futures::future::ready(result)
            })
            .boxed();
        Ok(Some(Incoming { announced, chunks }))
    }

    /// Streams `body` to `url` with a `PUT`: only a `baton server`'s `ds://` route accepts it.
    /// The server stores the bytes only if they are `expected` (sent as [`DIGEST_HEADER`]).
    pub async fn upload(
        &self,
        url: &str,
        bearer: Option<&Bearer>,
        expected: &PayloadDigest,
        body: reqwest::Body,
    ) -> Result<()> {
        let mut request = self
            .client()
            .await?
            .put(url)
            .header(reqwest::header::CONTENT_LENGTH, expected.size)
            .header(DIGEST_HEADER, &expected.sha256)
            .body(body);
        if let Some(Bearer(token)) = bearer {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.map_err(|e| {
            Error::runtime_from(format!("Failed to upload to `{url}`"), e.without_url())
        })?;
        check_status(url, response).await?;
        Ok(())
    }
}

/// A successful answer, or the error it carries: a `baton server`'s error body keeps its kind
/// and message, anything else names the status.
async fn check_status(url: &str, response: reqwest::Response) -> Result<reqwest::Response> {
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let body = response.bytes().await.unwrap_or_default();
    let text = String::from_utf8_lossy(&body);
    if text.contains("\"detail\"") {
        return Err(crate::error::from_api_answer(status.as_u16(), &text));
    }
    Err(Error::runtime(format!("`{url}` answered {status}")))
}

fn too_large(url: &str, size: u64, max: u64) -> Error {
    Error::bad_request(format!(
        "`{url}` is larger than the {max}-byte limit of HTTP downloads (at least {size} bytes)"
    ))
    .with_hint(format!("raise the limit with {MAX_BYTES_ENV}"))
}
