//! The web page for runs: projects, their workflow runs drawn as a live DAG, step runs with
//! their logs, and the terminate and retry actions, served by `baton server` at `/` and by
//! `baton ui` over a project's embedded database.
//!
//! # Why this shape
//!
//! - **One router, two sources.** Everything reads through the service ([`Baton`]); what differs
//!   between a server and `baton ui` is behind [`WebSource`]: which projects exist, whose
//!   engines host live runs, and who follows a retried run to its end. The server implements it
//!   over its projects and jobs; [`EmbeddedSource`] over one project's database.
//! - **Server-side rendering.** Pages are HTML from [`maud`] (every value is escaped by the
//!   template, so a step name or a parameter holding `<script>` is shown as text), and the DAG is
//!   laid out here ([`layout`]) and sent as SVG: a 1,000-step run costs the browser one paint.
//! - **Live without polling per step.** A run page opens one server-sent-events stream; it
//!   carries the engine's own events when this process hosts the run, else the changes of the
//!   run's record, read once per tick for the whole run (`live`). Logs stream the same way,
//!   in chunks of bounded size.
//! - **Offline and small.** The stylesheet and the script (no framework) are compiled into the
//!   binary (`assets`); nothing is fetched from elsewhere; pages travel gzipped.
//! - **Safe actions.** Terminate and retry, and a schedule's trigger, pause and resume, are POSTs that pass [`Access`]: the server's token
//!   when it has one, and a same-origin check for browsers.

mod access;
mod actions;
mod assets;
mod embedded;
mod error;
pub mod layout;
mod live;
mod pages;
mod schedule_actions;

use std::sync::Arc;

use async_trait::async_trait;
use axum::routing::{get, post};
use axum::Router;

use crate::engine::EngineRegistry;
use crate::error::Result;
use crate::project::WorkflowRunHandle;
use crate::service::Baton;

pub use access::Access;
pub use embedded::EmbeddedSource;

/// Where the pages get their projects, and what they may do with runs. Implemented by the
/// server (many projects, runs hosted in its engines) and by [`EmbeddedSource`] (`baton ui`).
#[async_trait]
pub trait WebSource: Send + Sync {
    /// The names of the projects, sorted.
    fn projects(&self) -> Result<Vec<String>>;

    /// The service of project `name`; an unknown project is [`crate::Error::NotFound`].
    async fn baton(&self, name: &str) -> Result<Baton>;

    /// The engines hosting this process's workflow runs, whose events a run page follows
    /// directly; `None` when runs are driven elsewhere (pages then follow their records).
    fn engines(&self) -> Option<EngineRegistry>;

    /// Takes over a run a retry started, following it to its end and recording it.
    fn follow(&self, baton: Baton, handle: WorkflowRunHandle);

    /// The schedules of `project`, or `None` where there are none (`baton ui`: schedules live
    /// on a server).
    async fn schedules(&self, project: &str) -> Result<Option<Vec<ScheduleView>>>;

    /// Does `action` to schedule `name` of `project`, by the rules of `baton schedules`.
    async fn schedule_action(
        &self,
        project: &str,
        name: &str,
        action: ScheduleAction,
    ) -> Result<()>;
}

/// A schedule as its project's page shows it.
#[derive(Debug, Clone)]
pub struct ScheduleView {
    /// Its project.
    pub project: String,
    /// Its name.
    pub name: String,
    /// The workflow each fire runs.
    pub workflow: String,
    /// Its cron expression.
    pub cron: String,
    /// The time zone of the cron expression.
    pub timezone: String,
    /// The next fire time (RFC 3339); none while paused.
    pub next_fire: Option<String>,
    /// The newest fire.
    pub last_fire: Option<FireView>,
    /// Whether fires are held.
    pub paused: bool,
    /// Why it was paused.
    pub note: Option<String>,
}

/// A schedule's fire as a page shows it.
#[derive(Debug, Clone)]
pub struct FireView {
    /// The time it was due (RFC 3339).
    pub scheduled: String,
    /// Where it stands (`ended`).
    pub state: String,
    /// Why it was skipped or failed, or its run's final state.
    pub detail: Option<String>,
    /// Its workflow run.
    pub run_id: Option<String>,
}

/// What a page may do to a schedule.
#[derive(Debug, Clone)]
pub enum ScheduleAction {
    /// Fire it now.
    Trigger,
    /// Hold its fires, with an optional note.
    Pause(Option<String>),
    /// Fire from now on.
    Resume,
}

/// What every page handler shares.
struct Web {
    source: Arc<dyn WebSource>,
}

/// The pages, their assets, live streams and actions, over `source`, guarded by `access`.
pub fn router(source: Arc<dyn WebSource>, access: Access) -> Router {
    let web = Arc::new(Web { source });
    Router::new()
        .route("/", get(pages::projects::page))
        .route("/projects/{project}", get(pages::project::page))
        .route(
            "/projects/{project}/workflow-runs/{id}",
            get(pages::workflow_run::page),
        )
        .route(
            "/projects/{project}/workflow-runs/{id}/events",
            get(live::workflow_run_events),
        )
        .route(
            "/projects/{project}/workflow-runs/{id}/terminate",
            post(actions::terminate),
        )
        .route(
            "/projects/{project}/workflow-runs/{id}/retry",
            post(actions::retry),
        )
        .route(
            "/projects/{project}/schedules/{name}/trigger",
            post(schedule_actions::trigger),
        )
        .route(
            "/projects/{project}/schedules/{name}/pause",
            post(schedule_actions::pause),
        )
        .route(
            "/projects/{project}/schedules/{name}/resume",
            post(schedule_actions::resume),
        )
        .route("/projects/{project}/runs/{uid}", get(pages::run::page))
        .route("/projects/{project}/runs/{uid}/log", get(live::log_events))
        .with_state(web)
        .merge(assets::routes())
        .merge(access::login_routes(access.clone()))
        .layer(axum::middleware::from_fn_with_state(access, access::guard))
        // Pages and assets travel gzipped to browsers that accept it; event streams never are
        // (the default predicate leaves `text/event-stream` alone, so events are not held back).
        .layer(tower_http::compression::CompressionLayer::new().gzip(true))
}
