//! [`HttpDb`]: the [`Db`] of a `baton server`, reached over HTTP, so a CLI (or a runner) on one
//! host and a server on another share one set of records.
//!
//! Each method is one request to the server's database API (`/api/baton/v1/projects/{project}/db`;
//! the route table is in the server's `native/db.rs`), which calls the same method on that
//! project's database. The server keeps one database per project, so every request names a
//! project: the one the method takes, the one a record names, or, for a lease, the one its name
//! names (`<kind>/<project>/<id>`, see [`crate::model::RunObject::runner_lease`]).
//!
//! # Errors
//!
//! The server answers an error as MLRun's body (`{"detail": "MLRunNotFoundError('...')"}`, see
//! [`crate::error::MlrunErrorBody`]); the client turns it back into the same [`Error`] kind with
//! the same message, so a caller matching on [`crate::error::ErrorKind::NotFound`] behaves the
//! same over HTTP as on SQLite. A 401 says the token is missing or wrong, with a hint about
//! `BATON_TOKEN`; any 5xx is [`Error::Runtime`].
//!
//! # Retries
//!
//! A request that never got an answer (the connection was refused or reset, or timed out) is
//! retried a few times with a doubling delay ([`RETRY_DELAYS`]) when repeating it is harmless:
//! reads (`GET`), replaces (`PUT`, including an artifact store, which is keyed by its
//! content-derived uid) and releases (`DELETE`). `POST`s (a conditional run update, taking or
//! renewing a lease) are never repeated: the first attempt may have been applied, and the
//! second would answer differently. An answer, even a 5xx, is never retried here.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use reqwest::header::CONTENT_TYPE;
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::{ArtifactFilter, ArtifactVersion, BuildRecord, Db, RunFilter, StoredArtifact};
use crate::error::{Error, Result};
use crate::model::{Artifact, RunObject, WorkflowRunRecord};
use crate::uri::StoreUri;

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

/// How long one request may take in all. The server's SQLite may wait up to a minute for its
/// write lock, so this is longer than that.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(90);

/// The prefix of every route of the database API.
const API: &str = "/api/baton/v1/projects";

/// The bodies the database API exchanges beyond the model's own types, shared by the server
/// and [`HttpDb`] so the two cannot disagree.
pub(crate) mod wire {
    use serde::{Deserialize, Serialize};

    use crate::db::{ArtifactVersion, StoredArtifact};
    use crate::model::Artifact;

    /// [`StoredArtifact`] on the wire.
    #[derive(Debug, Serialize, Deserialize)]
    pub(crate) struct StoredArtifactBody {
        /// The stored record.
        pub artifact: Artifact,
        /// Whether this version is new.
        pub created: bool,
    }

    impl From<StoredArtifact> for StoredArtifactBody {
        fn from(s: StoredArtifact) -> Self {
            StoredArtifactBody {
                artifact: s.artifact,
                created: s.created,
            }
        }
    }

    /// [`ArtifactVersion`] on the wire.
    #[derive(Debug, Serialize, Deserialize)]
    pub(crate) struct VersionBody {
        /// The record.
        pub artifact: Artifact,
        /// Its tags, sorted.
        pub tags: Vec<String>,
    }

    impl From<ArtifactVersion> for VersionBody {
        fn from(v: ArtifactVersion) -> Self {
            VersionBody {
                artifact: v.artifact,
                tags: v.tags,
            }
        }
    }

    /// The body of taking or renewing a lease. The TTL is relative, so the server's clock
    /// alone decides when the lease expires.
    #[derive(Debug, Serialize, Deserialize)]
    pub(crate) struct LeaseRequest {
        /// Who takes or renews it.
        pub owner: String,
        /// For how long, in milliseconds.
        pub ttl_ms: u64,
    }
}

use wire::{LeaseRequest, StoredArtifactBody, VersionBody};

/// The project a lease belongs to: leases are named `<kind>/<project>/<id>`
/// ([`crate::model::RunObject::runner_lease`], [`WorkflowRunRecord::driver_lease`]), and a
/// server keeps each in that project's database. Any other name is [`Error::InvalidArgument`].
pub(crate) fn lease_project(name: &str) -> Result<&str> {
    let mut parts = name.splitn(3, '/');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(kind), Some(project), Some(id))
            if !kind.is_empty() && !project.is_empty() && !id.is_empty() =>
        {
            Ok(project)
        }
        _ => Err(Error::invalid(format!(
            "Lease name `{name}` names no project: a server keeps leases named `<kind>/<project>/<id>`"
        ))),
    }
}

/// The [`Db`] of a `baton server`, over HTTP.
///
/// Built from the server's base URL (`http://host:port`; this build speaks plain HTTP only) and
/// the server's bearer token, if it has one. The token is sent on every request and never shown:
/// `Debug` prints it redacted and error messages never include it. Cloning is cheap and clones
/// share one connection pool.
#[derive(Clone)]
pub struct HttpDb {
    client: reqwest::Client,
    base: String,
    token: Option<String>,
}

impl fmt::Debug for HttpDb {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpDb")
            .field("base", &self.base)
            .field("token", &self.token.as_ref().map(|_| "***"))
            .finish()
    }
}

impl fmt::Display for HttpDb {
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

impl HttpDb {
    /// A client of the server at `base_url` (`http://127.0.0.1:8080`), sending `token` as
    /// `Authorization: Bearer <token>` when given. A URL that is not plain `http://`, or an
    /// empty token, is [`Error::InvalidArgument`].
    pub fn new(base_url: &str, token: Option<String>) -> Result<HttpDb> {
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
            .timeout(REQUEST_TIMEOUT)
            .build()
            .map_err(|e| Error::internal_from("Failed to set up the HTTP client", e))?;
        Ok(HttpDb {
            client,
            base: url.as_str().trim_end_matches('/').to_string(),
            token,
        })
    }

    /// The server's base URL, without a trailing slash.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// The URL of `path` (already encoded) under project `project`'s database API.
    fn url(&self, project: &str, path: &str) -> Result<String> {
        Ok(format!(
            "{}{API}/{}/db{path}",
            self.base,
            segment("project", project)?
        ))
    }

    /// Sends one request, retrying it while it gets no answer if it may be repeated, and
    /// returns the body of a successful answer; an error answer becomes its [`Error`].
    async fn call(
        &self,
        method: Method,
        url: &str,
        query: &[(&str, String)],
        body: Option<Bytes>,
    ) -> Result<Bytes> {
        let mut delays = RETRY_DELAYS.iter();
        let mut attempts = 1;
        loop {
            let mut request = self.client.request(method.clone(), url).query(query);
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
    async fn get<T: DeserializeOwned>(&self, url: &str, query: &[(&str, String)]) -> Result<T> {
        let bytes = self.call(Method::GET, url, query, None).await?;
        decode(url, &bytes)
    }

    /// A request with a JSON body whose answer is JSON.
    async fn send<T: DeserializeOwned>(
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
    async fn put(&self, url: &str, body: Option<&impl Serialize>) -> Result<()> {
        let body = body.map(|b| Bytes::from(serde_json::to_vec(b).expect("records serialize")));
        self.call(Method::PUT, url, &[], body).await?;
        Ok(())
    }

    /// The [`Error`] an error answer stands for.
    fn answer_error(&self, status: StatusCode, body: &[u8]) -> Error {
        let detail = serde_json::from_slice::<crate::error::MlrunErrorBody>(body)
            .map(|b| b.detail)
            .unwrap_or_else(|_| {
                let text = String::from_utf8_lossy(body);
                let text = text.trim();
                match text.char_indices().nth(500) {
                    Some((end, _)) => format!("{}...", &text[..end]),
                    None => text.to_string(),
                }
            });
        let (class, message) = parse_detail(&detail);
        match status.as_u16() {
            401 => {
                let message = if self.token.is_some() {
                    format!("The {self} refused the token it was given: the token is wrong")
                } else {
                    format!("The {self} requires a token and none was given: the token is missing")
                };
                Error::invalid(message)
                    .with_hint("set BATON_TOKEN to the token the server was started with")
            }
            404 => Error::not_found(message),
            409 => Error::conflict(message),
            400 if class == Some("MLRunInvalidArgumentError") => Error::invalid(message),
            400..=499 => Error::bad_request(message),
            500..=599 if message.is_empty() => {
                Error::runtime(format!("The {self} answered {status}"))
            }
            500..=599 => Error::runtime(message),
            _ => Error::runtime(format!("The {self} answered {status}: {message}")),
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
fn segment(what: &str, value: &str) -> Result<String> {
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

/// Splits an error detail into its MLRun class and its message: `Class('message')` (what
/// [`Error::mlrun_body`] writes), `Class: message` (a refusal before any handler), or anything
/// else as the message itself.
fn parse_detail(detail: &str) -> (Option<&str>, String) {
    let is_class = |c: &str| !c.is_empty() && c.chars().all(|c| c.is_ascii_alphanumeric());
    if let Some((class, rest)) = detail.split_once('(') {
        if let Some(literal) = rest.strip_suffix(')') {
            if is_class(class) {
                if let Some(message) = python_unrepr(literal) {
                    return (Some(class), message);
                }
            }
        }
    }
    if let Some((class, message)) = detail.split_once(": ") {
        if is_class(class) {
            return (Some(class), message.to_string());
        }
    }
    (None, detail.to_string())
}

/// The text of a Python `str` literal as `repr` writes it (the inverse of
/// `crate::error::python_repr`): single or double quotes, and the escapes `\\`, `\'`, `\"`,
/// `\n`, `\r`, `\t`, `\xNN`, `\uNNNN` and `\UNNNNNNNN`. Anything else is `None`.
fn python_unrepr(literal: &str) -> Option<String> {
    let quote = literal.chars().next().filter(|q| matches!(q, '\'' | '"'))?;
    let inner = literal.strip_prefix(quote)?.strip_suffix(quote)?;
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c == quote {
            // An unescaped quote would have ended the literal.
            return None;
        }
        if c != '\\' {
            out.push(c);
            continue;
        }
        let escaped = chars.next()?;
        let hex = |chars: &mut std::str::Chars<'_>, n: usize| -> Option<char> {
            let digits: String = chars.by_ref().take(n).collect();
            if digits.len() != n {
                return None;
            }
            char::from_u32(u32::from_str_radix(&digits, 16).ok()?)
        };
        match escaped {
            '\\' | '\'' | '"' => out.push(escaped),
            'n' => out.push('\n'),
            'r' => out.push('\r'),
            't' => out.push('\t'),
            'x' => out.push(hex(&mut chars, 2)?),
            'u' => out.push(hex(&mut chars, 4)?),
            'U' => out.push(hex(&mut chars, 8)?),
            // Python keeps an unknown escape as written.
            other => {
                out.push('\\');
                out.push(other);
            }
        }
    }
    Some(out)
}

/// Whether an answer says `field` is true: `{"<field>": bool}`.
#[derive(Deserialize)]
struct Flag(serde_json::Map<String, serde_json::Value>);

impl Flag {
    fn get(&self, url: &str, field: &str) -> Result<bool> {
        self.0
            .get(field)
            .and_then(serde_json::Value::as_bool)
            .ok_or_else(|| {
                Error::runtime(format!(
                    "The answer to `{url}` has no boolean `{field}`, which baton expects"
                ))
            })
    }
}

#[async_trait]
impl Db for HttpDb {
    async fn store_artifact(
        &self,
        artifact: Artifact,
        tag: Option<&str>,
    ) -> Result<StoredArtifact> {
        let uid = artifact
            .metadata
            .uid
            .clone()
            .ok_or_else(|| Error::invalid("An artifact must have a uid to be stored"))?;
        let url = self.url(
            &artifact.metadata.project,
            &format!(
                "/artifacts/{}/{}",
                segment("artifact key", artifact.db_key())?,
                segment("artifact uid", &uid)?
            ),
        )?;
        let query: Vec<(&str, String)> = tag.map(|t| ("tag", t.to_string())).into_iter().collect();
        let stored: StoredArtifactBody = self.send(Method::PUT, &url, &query, &artifact).await?;
        Ok(StoredArtifact {
            artifact: stored.artifact,
            created: stored.created,
        })
    }

    async fn read_artifact(&self, project: &str, uri: &StoreUri) -> Result<Artifact> {
        let url = self.url(
            uri.project_or(project),
            &format!("/artifacts/{}", segment("artifact key", &uri.key)?),
        )?;
        let mut query = Vec::new();
        query.extend(uri.tag.clone().map(|v| ("tag", v)));
        query.extend(uri.tree.clone().map(|v| ("tree", v)));
        query.extend(uri.iter.map(|v| ("iter", v.to_string())));
        query.extend(uri.uid.clone().map(|v| ("uid", v)));
        self.get(&url, &query).await
    }

    async fn list_artifacts(
        &self,
        project: &str,
        filter: &ArtifactFilter,
    ) -> Result<Vec<ArtifactVersion>> {
        let url = self.url(project, "/artifacts")?;
        let mut query = Vec::new();
        query.extend(filter.key.clone().map(|v| ("key", v)));
        query.extend(filter.tag.clone().map(|v| ("tag", v)));
        let versions: Vec<VersionBody> = self.get(&url, &query).await?;
        Ok(versions
            .into_iter()
            .map(|v| ArtifactVersion {
                artifact: v.artifact,
                tags: v.tags,
            })
            .collect())
    }

    async fn store_run(&self, run: &RunObject) -> Result<()> {
        let url = self.run_url(run, "")?;
        self.put(&url, Some(run)).await
    }

    async fn update_active_run(&self, run: &RunObject) -> Result<bool> {
        let url = self.run_url(run, "/update-active")?;
        let flag: Flag = self.send(Method::POST, &url, &[], run).await?;
        flag.get(&url, "updated")
    }

    async fn read_run(&self, project: &str, uid: &str) -> Result<RunObject> {
        let url = self.url(project, &format!("/runs/{}", segment("run uid", uid)?))?;
        self.get(&url, &[]).await
    }

    async fn list_runs(&self, project: &str, filter: &RunFilter) -> Result<Vec<RunObject>> {
        let url = self.url(project, "/runs")?;
        let query: Vec<(&str, String)> = filter
            .labels
            .iter()
            .map(|(k, v)| ("label", format!("{k}={v}")))
            .collect();
        self.get(&url, &query).await
    }

    async fn store_build(&self, project: &str, function: &str, build: &BuildRecord) -> Result<()> {
        let url = self.url(
            project,
            &format!("/builds/{}", segment("function name", function)?),
        )?;
        self.put(&url, Some(build)).await
    }

    async fn read_build(&self, project: &str, function: &str) -> Result<Option<BuildRecord>> {
        let url = self.url(
            project,
            &format!("/builds/{}", segment("function name", function)?),
        )?;
        self.get(&url, &[]).await
    }

    async fn store_workflow_run(&self, run: &WorkflowRunRecord) -> Result<()> {
        let url = self.workflow_run_url(&run.project, &run.id, "")?;
        self.put(&url, Some(run)).await
    }

    async fn read_workflow_run(&self, project: &str, id: &str) -> Result<WorkflowRunRecord> {
        let url = self.workflow_run_url(project, id, "")?;
        self.get(&url, &[]).await
    }

    async fn list_workflow_runs(&self, project: &str) -> Result<Vec<WorkflowRunRecord>> {
        let url = self.url(project, "/workflow-runs")?;
        self.get(&url, &[]).await
    }

    async fn request_workflow_termination(&self, project: &str, id: &str) -> Result<()> {
        let url = self.workflow_run_url(project, id, "/termination")?;
        self.put(&url, None::<&()>).await
    }

    async fn workflow_termination_requested(&self, project: &str, id: &str) -> Result<bool> {
        let url = self.workflow_run_url(project, id, "/termination")?;
        let flag: Flag = self.get(&url, &[]).await?;
        flag.get(&url, "requested")
    }

    async fn acquire_lease(&self, name: &str, owner: &str, ttl: Duration) -> Result<bool> {
        let url = self.lease_url(name, "/acquire")?;
        let flag: Flag = self
            .send(Method::POST, &url, &[], &lease_request(owner, ttl))
            .await?;
        flag.get(&url, "acquired")
    }

    async fn renew_lease(&self, name: &str, owner: &str, ttl: Duration) -> Result<bool> {
        let url = self.lease_url(name, "/renew")?;
        let flag: Flag = self
            .send(Method::POST, &url, &[], &lease_request(owner, ttl))
            .await?;
        flag.get(&url, "renewed")
    }

    async fn release_lease(&self, name: &str, owner: &str) -> Result<()> {
        let url = self.lease_url(name, "")?;
        self.call(Method::DELETE, &url, &[("owner", owner.to_string())], None)
            .await?;
        Ok(())
    }

    async fn lease_alive(&self, name: &str) -> Result<bool> {
        let url = self.lease_url(name, "")?;
        let flag: Flag = self.get(&url, &[]).await?;
        flag.get(&url, "alive")
    }
}

impl HttpDb {
    fn run_url(&self, run: &RunObject, suffix: &str) -> Result<String> {
        let uid = segment("run uid", &run.metadata.uid)?;
        self.url(&run.metadata.project, &format!("/runs/{uid}{suffix}"))
    }

    fn workflow_run_url(&self, project: &str, id: &str, suffix: &str) -> Result<String> {
        let id = segment("workflow run id", id)?;
        self.url(project, &format!("/workflow-runs/{id}{suffix}"))
    }

    fn lease_url(&self, name: &str, suffix: &str) -> Result<String> {
        let project = lease_project(name)?;
        let name = segment("lease name", name)?;
        self.url(project, &format!("/leases/{name}{suffix}"))
    }
}

fn lease_request(owner: &str, ttl: Duration) -> LeaseRequest {
    LeaseRequest {
        owner: owner.to_string(),
        ttl_ms: u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    #[test]
    fn an_error_body_maps_back_to_its_kind_and_message() {
        let db = HttpDb::new("http://127.0.0.1:1", None).unwrap();
        let messages = [
            "Artifact `store://p/k` not found",
            "it's `x`",
            "say \"hi\" and it's",
            "a\\b\nc\td\r",
            "bell\u{7} naïve",
        ];
        type Make = fn(&str) -> Error;
        let rows: [(Make, ErrorKind); 5] = [
            (|m| Error::not_found(m), ErrorKind::NotFound),
            (|m| Error::conflict(m), ErrorKind::Conflict),
            (|m| Error::invalid(m), ErrorKind::InvalidArgument),
            (|m| Error::bad_request(m), ErrorKind::BadRequest),
            (|m| Error::runtime(m), ErrorKind::Runtime),
        ];
        for message in messages {
            for (make, kind) in &rows {
                let err = make(message);
                let body = serde_json::to_vec(&err.mlrun_body()).unwrap();
                let status = StatusCode::from_u16(err.http_status()).unwrap();
                let back = db.answer_error(status, &body);
                assert_eq!(back.kind(), *kind, "{message:?}");
                assert_eq!(back.to_string(), message, "{kind}");
            }
        }
    }

    #[test]
    fn an_internal_error_is_a_runtime_failure_for_the_client() {
        let db = HttpDb::new("http://127.0.0.1:1", None).unwrap();
        let err = Error::internal("The database task panicked");
        let body = serde_json::to_vec(&err.mlrun_body()).unwrap();
        let back = db.answer_error(StatusCode::INTERNAL_SERVER_ERROR, &body);
        assert_eq!(back.kind(), ErrorKind::Runtime);
        assert_eq!(back.to_string(), "The database task panicked");
    }

    #[test]
    fn a_body_that_is_not_mlruns_is_kept_as_the_message() {
        let db = HttpDb::new("http://127.0.0.1:1", None).unwrap();
        let back = db.answer_error(StatusCode::BAD_GATEWAY, b"upstream down");
        assert_eq!(back.kind(), ErrorKind::Runtime);
        assert_eq!(back.to_string(), "upstream down");
        let back = db.answer_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            br#"{"detail": "MLRunBadRequestError: The request body is larger than the server accepts"}"#,
        );
        assert_eq!(back.kind(), ErrorKind::BadRequest);
        assert_eq!(
            back.to_string(),
            "The request body is larger than the server accepts"
        );
    }

    #[test]
    fn python_unrepr_reads_what_repr_writes() {
        let rows = [
            ("'plain'", "plain"),
            ("\"it's\"", "it's"),
            ("'both \\' and \"'", "both ' and \""),
            ("'a\\\\b\\nc\\td'", "a\\b\nc\td"),
            ("'bell\\x07'", "bell\u{7}"),
            ("'\\u00e9\\U0001f600'", "é😀"),
            ("'keep \\q'", "keep \\q"),
        ];
        for (literal, text) in rows {
            assert_eq!(python_unrepr(literal).as_deref(), Some(text), "{literal}");
        }
        for bad in ["", "'", "plain", "'open", "'a'b'", "'\\x0'"] {
            assert_eq!(python_unrepr(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_lease_names_its_project() {
        assert_eq!(lease_project("run/p/u1").unwrap(), "p");
        assert_eq!(lease_project("workflow-run/p/a/b").unwrap(), "p");
        for bad in ["run", "run/p", "run//u", "/p/u", "run/p/"] {
            let err = lease_project(bad).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{bad}");
        }
    }

    #[test]
    fn segments_are_encoded_and_dot_segments_refused() {
        assert_eq!(segment("x", "a.b-c_~").unwrap(), "a.b-c_~");
        assert_eq!(segment("x", "run/p/u 1").unwrap(), "run%2Fp%2Fu%201");
        assert_eq!(segment("x", "é").unwrap(), "%C3%A9");
        for bad in ["", ".", ".."] {
            assert_eq!(
                segment("key", bad).unwrap_err().kind(),
                ErrorKind::InvalidArgument
            );
        }
    }

    #[test]
    fn the_token_never_shows() {
        let db = HttpDb::new("http://h:1/", Some("s3cret".into())).unwrap();
        let shown = format!("{db:?} {db}");
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(shown.contains("***"), "{shown}");
        assert_eq!(db.base_url(), "http://h:1");
        for bad in ["https://h:1", "ftp://h", "not a url", "http://h:1/?q=1"] {
            assert_eq!(
                HttpDb::new(bad, None).unwrap_err().kind(),
                ErrorKind::InvalidArgument,
                "{bad}"
            );
        }
        assert!(HttpDb::new("http://h:1", Some(" ".into())).is_err());
    }
}
