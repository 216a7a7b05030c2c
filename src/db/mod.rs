//! Metadata storage behind the [`Db`] trait.
//!
//! The embedded default is [`SqliteDb`], a file in the project's `.baton/` folder; the HTTP
//! client of `baton server` implements the same trait later, so nothing above this module knows
//! where records live. Payloads never go through the database: they live in the datastore.

mod sqlite;

use async_trait::async_trait;

pub use sqlite::SqliteDb;

use crate::error::Result;
use crate::model::{Artifact, RunObject, WorkflowRunRecord};
use crate::uri::StoreUri;

/// The tag every newly stored version receives.
pub const LATEST: &str = "latest";

/// One version of an artifact together with every tag that points at it.
#[derive(Debug, Clone, PartialEq)]
pub struct ArtifactVersion {
    /// The record.
    pub artifact: Artifact,
    /// Tags attached to this version, sorted.
    pub tags: Vec<String>,
}

/// What [`Db::store_artifact`] did.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredArtifact {
    /// The stored record, with `metadata.tag` set to the tag given, if any.
    pub artifact: Artifact,
    /// False when a version with identical content already existed and was re-tagged.
    pub created: bool,
}

/// Filters for [`Db::list_artifacts`].
#[derive(Debug, Clone, Default)]
pub struct ArtifactFilter {
    /// Only this key.
    pub key: Option<String>,
    /// Only versions carrying this tag.
    pub tag: Option<String>,
}

/// Filters for [`Db::list_runs`].
#[derive(Debug, Clone, Default)]
pub struct RunFilter {
    /// Only runs carrying every one of these labels.
    pub labels: Vec<(String, String)>,
}

/// The last build of a function: the hash of the build configuration it was made from.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct BuildRecord {
    /// Hash of the effective build configuration.
    pub config_hash: String,
    /// When it was built (RFC 3339).
    pub built_at: String,
    /// Where the build context was written.
    pub output: String,
}

/// Where baton keeps its metadata.
///
/// Implementations must make [`Db::store_artifact`] atomic: concurrent stores of the same key
/// each record their version, and `latest` ends up on exactly one of them.
#[async_trait]
pub trait Db: Send + Sync {
    /// Stores a version whose `metadata.uid` is already computed. When that uid exists the
    /// record's labels and `updated` are refreshed in place; either way `latest` and `tag` (if
    /// given) move to it.
    async fn store_artifact(&self, artifact: Artifact, tag: Option<&str>)
        -> Result<StoredArtifact>;

    /// Resolves a store URI (`project` fills a URI that names none): by uid when given (a tag
    /// other than `latest` must then also be attached), else by tag (default `latest`), filtered
    /// by tree and iteration when given. Nothing matching is [`crate::Error::NotFound`] quoting
    /// the URI.
    async fn read_artifact(&self, project: &str, uri: &StoreUri) -> Result<Artifact>;

    /// Lists versions of a project's artifacts, newest first.
    async fn list_artifacts(
        &self,
        project: &str,
        filter: &ArtifactFilter,
    ) -> Result<Vec<ArtifactVersion>>;

    /// Creates or replaces a run record (keyed by uid).
    async fn store_run(&self, run: &RunObject) -> Result<()>;

    /// Replaces a run record only while the stored one is not in a terminal state; returns
    /// whether it did. Every final state goes through this, so whoever settles a run first (its
    /// runner, the process waiting for the runner, a reader that found the driver dead) wins and
    /// is never overwritten by a late writer.
    async fn update_active_run(&self, run: &RunObject) -> Result<bool>;

    /// Reads a run; an unknown uid is [`crate::Error::NotFound`].
    async fn read_run(&self, project: &str, uid: &str) -> Result<RunObject>;

    /// Lists a project's runs, newest first.
    async fn list_runs(&self, project: &str, filter: &RunFilter) -> Result<Vec<RunObject>>;

    /// Records the last build of a function.
    async fn store_build(&self, project: &str, function: &str, build: &BuildRecord) -> Result<()>;

    /// The last build of a function, if it was ever built.
    async fn read_build(&self, project: &str, function: &str) -> Result<Option<BuildRecord>>;

    /// Creates or replaces a workflow run record (keyed by id). A pending termination request
    /// is kept.
    async fn store_workflow_run(&self, run: &WorkflowRunRecord) -> Result<()>;

    /// Reads a workflow run; an unknown id is [`crate::Error::NotFound`].
    async fn read_workflow_run(&self, project: &str, id: &str) -> Result<WorkflowRunRecord>;

    /// Lists a project's workflow runs, newest first.
    async fn list_workflow_runs(&self, project: &str) -> Result<Vec<WorkflowRunRecord>>;

    /// Asks whoever drives the run to terminate it (the process running it polls this).
    async fn request_workflow_termination(&self, project: &str, id: &str) -> Result<()>;

    /// Whether termination of the run was requested.
    async fn workflow_termination_requested(&self, project: &str, id: &str) -> Result<bool>;
}
