//! Metadata storage behind the [`Db`] trait.
//!
//! The embedded default is [`SqliteDb`], a file in the project's `.baton/` folder; [`HttpDb`],
//! the client of a `baton server`, implements the same trait, so nothing above this module
//! knows where records live. Payloads never go through the database: they live in the datastore.

mod api_client;
mod checkpoint;
mod http;
pub mod profiles;
mod sqlite;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

pub use api_client::{segment, ApiClient, RETRY_DELAYS};
pub use http::HttpDb;
pub(crate) use http::{lease_project, wire};
pub use sqlite::SqliteDb;

use crate::datastore::profile::ProfileStore;
use crate::error::Result;
use crate::model::{now, Artifact, RunObject, RunState, WorkflowRunRecord, WorkflowRunSummary};
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
    /// other than `latest` must then also be attached; the tree is not compared, since the uid
    /// alone names the version), else by tag (default `latest`), filtered by tree; by iteration
    /// when given. Nothing matching is [`crate::Error::NotFound`] quoting
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

    /// [`Db::update_active_run`] together with a change to the heartbeat lease that covers the
    /// run ([`RunObject::runner_lease`]), as one transaction where the store allows: a runner
    /// takes the lease as it marks the run `running`, so no reader ever sees the run running
    /// without a live lease, and gives it up as it records the end. [`LeaseChange::Take`] fails
    /// with [`crate::Error::Conflict`] when someone else holds the lease, and takes nothing when
    /// the run is no longer active; [`LeaseChange::Give`] gives the lease up either way.
    async fn update_active_run_with_lease(
        &self,
        run: &RunObject,
        lease: &LeaseChange<'_>,
    ) -> Result<bool> {
        match *lease {
            LeaseChange::Take { name, owner, ttl } => {
                if !self.acquire_lease(name, owner, ttl).await? {
                    return Err(lease_held(name));
                }
                let updated = self.update_active_run(run).await?;
                if !updated {
                    self.release_lease(name, owner).await?;
                }
                Ok(updated)
            }
            LeaseChange::Give { name, owner } => {
                let updated = self.update_active_run(run).await;
                self.release_lease(name, owner).await?;
                updated
            }
        }
    }

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

    /// Lists the summaries of a project's workflow runs, newest first: what a listing shows,
    /// without decoding whole records (the default does decode them).
    async fn list_workflow_run_summaries(&self, project: &str) -> Result<Vec<WorkflowRunSummary>> {
        let runs = self.list_workflow_runs(project).await?;
        Ok(runs.iter().map(WorkflowRunSummary::of).collect())
    }

    /// Asks the engine that owns the run to terminate it: this is the only way to reach a run
    /// driven by another process (the driver polls [`Db::workflow_termination_requested`]), so
    /// an HTTP implementation delivers it to the server that drives the run. An unknown id is
    /// [`crate::Error::NotFound`]; asking twice is the same as asking once.
    async fn request_workflow_termination(&self, project: &str, id: &str) -> Result<()>;

    /// Whether termination of the run was requested.
    async fn workflow_termination_requested(&self, project: &str, id: &str) -> Result<bool>;

    /// Takes the heartbeat lease `name` for `owner` until `ttl` from now; returns whether it
    /// did. It does when nobody holds the lease, when its holder let it expire, or when `owner`
    /// already holds it (which renews it). A lease says "someone is still working on this":
    /// the holder renews it well within `ttl` ([`Db::renew_lease`], [`Heartbeat`]) and
    /// releases it when done, so a holder that died is noticed once `ttl` has passed, on any
    /// host that shares the database.
    async fn acquire_lease(&self, name: &str, owner: &str, ttl: Duration) -> Result<bool>;

    /// Extends `owner`'s lease `name` until `ttl` from now; returns false when `owner` no
    /// longer holds it (released, taken by another, or expired: once expired, a reader may
    /// already have acted on the holder's death, so the lease is not extended).
    async fn renew_lease(&self, name: &str, owner: &str, ttl: Duration) -> Result<bool>;

    /// Gives up `owner`'s lease `name`; releasing a lease one does not hold does nothing.
    async fn release_lease(&self, name: &str, owner: &str) -> Result<()>;

    /// Whether someone holds the lease `name` and it has not expired.
    async fn lease_alive(&self, name: &str) -> Result<bool>;

    /// The datastore profiles kept with these records (see [`profiles`]).
    fn profile_store(&self) -> Arc<dyn ProfileStore>;
}

/// Ends `run` in `state` with `error`, unless it ended meanwhile: the write is conditional
/// ([`Db::update_active_run`]), so whoever records an end first (the run's own runner, usually)
/// keeps it. Returns the run as stored afterwards. This is how a run whose runner is gone is
/// settled, whoever notices it.
pub async fn settle_run(
    db: &dyn Db,
    run: &RunObject,
    state: RunState,
    error: String,
) -> Result<RunObject> {
    if run.status.state.is_terminal() {
        return Ok(run.clone());
    }
    let mut settled = run.clone();
    settled.status.state = state;
    settled.status.error = Some(error);
    settled.status.end_time = Some(now());
    settled.status.last_update = settled.status.end_time.clone();
    if db.update_active_run(&settled).await? {
        Ok(settled)
    } else {
        db.read_run(&run.metadata.project, &run.metadata.uid).await
    }
}

/// What [`Db::update_active_run_with_lease`] does to a lease.
#[derive(Debug, Clone, Copy)]
pub enum LeaseChange<'a> {
    /// Take lease `name` for `owner` until `ttl` from now (see [`Db::acquire_lease`]).
    Take {
        /// The lease.
        name: &'a str,
        /// Who takes it.
        owner: &'a str,
        /// How long it lasts without renewal.
        ttl: Duration,
    },
    /// Give up `owner`'s lease `name` (see [`Db::release_lease`]).
    Give {
        /// The lease.
        name: &'a str,
        /// Who gives it up.
        owner: &'a str,
    },
}

/// The error of a lease someone else holds.
pub(crate) fn lease_held(name: &str) -> crate::Error {
    crate::Error::conflict(format!("Lease `{name}` is held by another process"))
}

/// How long a heartbeat lease of a run's driver or runner lasts without renewal: one killed
/// outright is noticed this long after its last renewal.
pub const LEASE_TTL: Duration = Duration::from_secs(10);

/// How often a driver or a runner renews its lease: a few renewals fit in one [`LEASE_TTL`], so
/// a late one (a busy machine, a slow write) does not declare a live holder dead.
pub const LEASE_RENEWAL: Duration = Duration::from_secs(2);

/// A lease held and renewed in the background: [`Heartbeat::start`] takes it, a task renews it
/// every `every`, and [`Heartbeat::release`] gives it up. Dropping a heartbeat without releasing
/// stops the renewals, so the lease expires after its `ttl`, as it would if the process died.
pub struct Heartbeat {
    db: Arc<dyn Db>,
    name: String,
    owner: String,
    renewals: tokio::task::JoinHandle<()>,
}

impl Heartbeat {
    /// Takes lease `name` for a new owner id (unique to this heartbeat) until `ttl` from now
    /// and renews it every `every` (which must be well below `ttl`). A lease held by someone
    /// else is [`crate::Error::Conflict`].
    pub async fn start(
        db: Arc<dyn Db>,
        name: &str,
        ttl: Duration,
        every: Duration,
    ) -> Result<Self> {
        let owner = Heartbeat::new_owner();
        if !db.acquire_lease(name, &owner, ttl).await? {
            return Err(lease_held(name));
        }
        Ok(Heartbeat::held(db, name, owner, ttl, every))
    }

    /// A new owner id, unique to one heartbeat: this process's id and a random part.
    pub fn new_owner() -> String {
        format!("{}:{}", std::process::id(), uuid::Uuid::new_v4().simple())
    }

    /// Renews lease `name`, which `owner` has just taken (for instance with
    /// [`Db::update_active_run_with_lease`]), every `every`.
    pub fn held(
        db: Arc<dyn Db>,
        name: &str,
        owner: String,
        ttl: Duration,
        every: Duration,
    ) -> Self {
        let renewals = tokio::spawn({
            let (db, name, owner) = (db.clone(), name.to_string(), owner.clone());
            async move {
                let mut tick = tokio::time::interval(every);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                tick.tick().await;
                loop {
                    tick.tick().await;
                    match db.renew_lease(&name, &owner, ttl).await {
                        Ok(true) => {}
                        Ok(false) => {
                            tracing::warn!("lost lease `{name}`: it expired before it was renewed");
                            return;
                        }
                        Err(e) => tracing::warn!("failed to renew lease `{name}`: {}", e.chain()),
                    }
                }
            }
        });
        Heartbeat {
            db,
            name: name.to_string(),
            owner,
            renewals,
        }
    }

    /// The owner id this heartbeat holds its lease as.
    pub fn owner(&self) -> &str {
        &self.owner
    }

    /// Stops renewing and gives the lease up.
    pub async fn release(self) -> Result<()> {
        self.renewals.abort();
        self.db.release_lease(&self.name, &self.owner).await
    }

    /// Stops renewing and records the end of `run` as it gives the lease up, in one
    /// transaction where the store allows ([`Db::update_active_run_with_lease`]).
    pub async fn release_with(self, run: &RunObject) -> Result<bool> {
        self.renewals.abort();
        let give = LeaseChange::Give {
            name: &self.name,
            owner: &self.owner,
        };
        self.db.update_active_run_with_lease(run, &give).await
    }
}

impl Drop for Heartbeat {
    fn drop(&mut self) {
        self.renewals.abort();
    }
}

impl std::fmt::Debug for Heartbeat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Heartbeat({} as {})", self.name, self.owner)
    }
}
