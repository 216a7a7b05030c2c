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
use reqwest::Method;
use serde::Deserialize;

use super::api_client::{segment, ApiClient};
use super::{ArtifactFilter, ArtifactVersion, BuildRecord, Db, RunFilter, StoredArtifact};
use crate::error::{Error, Result};
use crate::model::{Artifact, RunObject, WorkflowRunRecord};
use crate::uri::StoreUri;

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
#[derive(Clone, Debug)]
pub struct HttpDb {
    pub(super) api: ApiClient,
}

impl HttpDb {
    /// The database of the server at `base_url` (`http://127.0.0.1:8080`), sending `token`
    /// as `Authorization: Bearer <token>` when given (see [`ApiClient::new`]).
    pub fn new(base_url: &str, token: Option<String>) -> Result<HttpDb> {
        Ok(HttpDb {
            api: ApiClient::new(base_url, token)?,
        })
    }

    /// The database of the server `api` talks to.
    pub fn with_client(api: ApiClient) -> HttpDb {
        HttpDb { api }
    }

    /// The server's base URL, without a trailing slash.
    pub fn base_url(&self) -> &str {
        self.api.base_url()
    }

    /// The URL of `path` (already encoded) under project `project`'s database API.
    fn url(&self, project: &str, path: &str) -> Result<String> {
        Ok(self
            .api
            .url(&format!("{API}/{}/db{path}", segment("project", project)?)))
    }
}

impl fmt::Display for HttpDb {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.api.fmt(f)
    }
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
    fn profile_store(&self) -> std::sync::Arc<dyn crate::datastore::profile::ProfileStore> {
        std::sync::Arc::new(self.clone())
    }

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
        let stored: StoredArtifactBody =
            self.api.send(Method::PUT, &url, &query, &artifact).await?;
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
        self.api.get(&url, &query).await
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
        let versions: Vec<VersionBody> = self.api.get(&url, &query).await?;
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
        self.api.put(&url, Some(run)).await
    }

    async fn update_active_run(&self, run: &RunObject) -> Result<bool> {
        let url = self.run_url(run, "/update-active")?;
        let flag: Flag = self.api.send(Method::POST, &url, &[], run).await?;
        flag.get(&url, "updated")
    }

    async fn read_run(&self, project: &str, uid: &str) -> Result<RunObject> {
        let url = self.url(project, &format!("/runs/{}", segment("run uid", uid)?))?;
        self.api.get(&url, &[]).await
    }

    async fn list_runs(&self, project: &str, filter: &RunFilter) -> Result<Vec<RunObject>> {
        let url = self.url(project, "/runs")?;
        let query: Vec<(&str, String)> = filter
            .labels
            .iter()
            .map(|(k, v)| ("label", format!("{k}={v}")))
            .collect();
        self.api.get(&url, &query).await
    }

    async fn store_build(&self, project: &str, function: &str, build: &BuildRecord) -> Result<()> {
        let url = self.url(
            project,
            &format!("/builds/{}", segment("function name", function)?),
        )?;
        self.api.put(&url, Some(build)).await
    }

    async fn read_build(&self, project: &str, function: &str) -> Result<Option<BuildRecord>> {
        let url = self.url(
            project,
            &format!("/builds/{}", segment("function name", function)?),
        )?;
        self.api.get(&url, &[]).await
    }

    async fn store_workflow_run(&self, run: &WorkflowRunRecord) -> Result<()> {
        let url = self.workflow_run_url(&run.project, &run.id, "")?;
        self.api.put(&url, Some(run)).await
    }

    async fn read_workflow_run(&self, project: &str, id: &str) -> Result<WorkflowRunRecord> {
        let url = self.workflow_run_url(project, id, "")?;
        self.api.get(&url, &[]).await
    }

    async fn list_workflow_runs(&self, project: &str) -> Result<Vec<WorkflowRunRecord>> {
        let url = self.url(project, "/workflow-runs")?;
        self.api.get(&url, &[]).await
    }

    async fn request_workflow_termination(&self, project: &str, id: &str) -> Result<()> {
        let url = self.workflow_run_url(project, id, "/termination")?;
        self.api.put(&url, None::<&()>).await
    }

    async fn workflow_termination_requested(&self, project: &str, id: &str) -> Result<bool> {
        let url = self.workflow_run_url(project, id, "/termination")?;
        let flag: Flag = self.api.get(&url, &[]).await?;
        flag.get(&url, "requested")
    }

    async fn acquire_lease(&self, name: &str, owner: &str, ttl: Duration) -> Result<bool> {
        let url = self.lease_url(name, "/acquire")?;
        let flag: Flag = self
            .api
            .send(Method::POST, &url, &[], &lease_request(owner, ttl))
            .await?;
        flag.get(&url, "acquired")
    }

    async fn renew_lease(&self, name: &str, owner: &str, ttl: Duration) -> Result<bool> {
        let url = self.lease_url(name, "/renew")?;
        let flag: Flag = self
            .api
            .send(Method::POST, &url, &[], &lease_request(owner, ttl))
            .await?;
        flag.get(&url, "renewed")
    }

    async fn release_lease(&self, name: &str, owner: &str) -> Result<()> {
        let url = self.lease_url(name, "")?;
        self.api
            .call(Method::DELETE, &url, &[("owner", owner.to_string())], None)
            .await?;
        Ok(())
    }

    async fn lease_alive(&self, name: &str) -> Result<bool> {
        let url = self.lease_url(name, "")?;
        let flag: Flag = self.api.get(&url, &[]).await?;
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
