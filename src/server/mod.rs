//! `baton server`: the HTTP API over the service layer, and the web pages ([`crate::web`]) at
//! `/`.
//!
//! The API is the part of MLRun's REST API that the unmodified MLRun client uses to log code
//! artifacts, store functions, run jobs and submit workflows (`server/mlrun/`), plus `GET /healthz`.
//! Every handler is thin: it parses the request, calls the service ([`crate::service::Baton`])
//! of the project it names, and answers in MLRun's shapes; errors become MLRun's error body with
//! the status of their kind. Runs and workflows submitted here execute on this host, started by
//! [`Jobs`], which owns them until they end or the server stops. Schedules ([`schedules`]) fire
//! workflow runs through the same path, from one scheduler task.
//!
//! A server keeps everything in its data folder: `projects/<name>/` holds each project's
//! `project.yaml` and its embedded state (SQLite database, logs), and `artifacts/` is the default
//! artifact path it hands to clients.

mod api_error;
mod auth;
mod body;
mod engine;
mod jobs;
mod mlrun;
mod native;
mod projects;
mod reconcile;
pub mod schedules;
mod web;

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::routing::get;
use axum::Router;
use tower_http::trace::{DefaultMakeSpan, DefaultOnResponse, TraceLayer};
use tracing::Level;

use crate::engine::{EngineRegistry, StepExecutor};
use crate::error::{Error, IoResultExt, Result};
use crate::kfp::client::KfpClient;
use crate::runner::{ForkServer, Isolation, PythonRunner};
pub use auth::Token;
pub use jobs::Jobs;
pub use projects::Projects;

/// The largest request body accepted: code never travels through the API (clients write
/// payloads to the artifact path themselves), so records are small.
pub const DEFAULT_BODY_LIMIT: usize = 8 * 1024 * 1024;

/// How long runs and workflows get to stop and record their end when the server shuts down.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// How a server is set up.
#[derive(Clone)]
pub struct ServerConfig {
    /// Address to listen on (port 0 picks a free port).
    pub addr: SocketAddr,
    /// The data folder: projects, their databases and logs, and the default artifact path.
    pub data_dir: PathBuf,
    /// The bearer token every request but `GET /healthz` must carry, if any.
    pub token: Option<Token>,
    /// How many runs and workflows execute at once; the rest wait in `created`/`Pending`.
    pub max_workers: usize,
    /// The largest request body, in bytes.
    pub body_limit: usize,
    /// What executes workflow steps; `None` runs each through `baton runner` in its project.
    /// Tests give the engine conformance suite's executor here.
    pub step_executor: Option<Arc<dyn StepExecutor>>,
    /// How function runs, and workflow steps when `step_executor` is `None`, are isolated:
    /// forked by the server's warm Python workers (the default), or a `baton runner` process
    /// each.
    pub isolation: Isolation,
    /// The Kubeflow Pipelines that `kfp` and `remote:kfp` runs go to, if any.
    pub kfp: Option<KfpClient>,
    /// This server's address as KFP pods reach it (`BATON_API` of their steps); `None` is the
    /// address it listens on.
    pub public_url: Option<String>,
    /// Schedules firing more often than this are refused (MLRun's minimum interval, 10
    /// minutes by default); zero allows any.
    pub schedule_min_interval: Duration,
}

/// What every handler shares.
pub(crate) struct AppState {
    /// The projects this server holds.
    pub projects: Arc<Projects>,
    /// The engines hosting every workflow run of this server.
    pub engines: EngineRegistry,
    /// Whether `engines` has a real `kfp` engine (a KFP is configured).
    pub has_kfp: bool,
    /// The runs and workflows executing on this server.
    pub jobs: Jobs,
    /// The default artifact path handed to clients (absolute).
    pub artifact_path: String,
    /// The scheduled workflow runs.
    pub schedules: schedules::Schedules,
}

/// A server bound to its address, not yet answering.
pub struct Server {
    listener: tokio::net::TcpListener,
    state: Arc<AppState>,
    scheduler: schedules::scheduler::Scheduler,
    token: Option<Token>,
    body_limit: usize,
}

impl Server {
    /// Creates the data folder and binds the address.
    pub async fn bind(config: ServerConfig) -> Result<Server> {
        let data_dir = std::path::absolute(&config.data_dir)
            .io_context(|| format!("Failed to resolve `{}`", config.data_dir.display()))?;
        let artifacts = data_dir.join("artifacts");
        std::fs::create_dir_all(&artifacts)
            .io_context(|| format!("Failed to create `{}`", artifacts.display()))?;
        let projects = Arc::new(Projects::open(
            data_dir.join("projects"),
            artifacts.clone(),
        )?);
        // One set of warm Python workers for every project's steps and function runs.
        let python = crate::service::step_interpreter().await;
        let fork = (config.isolation == Isolation::Fork).then(ForkServer::new);
        let executor = match config.step_executor {
            Some(executor) => executor,
            None => Arc::new(engine::ProjectsExecutor::new(
                &projects,
                python.clone(),
                fork.clone(),
            )?),
        };
        let listener = tokio::net::TcpListener::bind(config.addr)
            .await
            .map_err(|e| {
                Error::io(format!("Cannot listen on {}", config.addr), e)
                    .with_hint("pick another port with --port, or 0 for any free one")
            })?;
        let bound = listener
            .local_addr()
            .map_err(|e| Error::io("Cannot read the listening address", e))?;
        let kfp = config.kfp.map(|client| {
            let url = config
                .public_url
                .clone()
                .unwrap_or_else(|| format!("http://{bound}"));
            engine::kfp_engine(&projects, client, url)
        });
        let has_kfp = kfp.is_some();
        let engines = engine::registry(executor, kfp);
        projects.set_engines(engines.clone());
        if let Some(server) = &fork {
            // The same workers trace the projects' Python workflows.
            projects.set_fork_server(server.clone());
        }
        let forked_runs = fork.map(|server| {
            python
                .map_or_else(PythonRunner::from_env, PythonRunner::new)
                .with_fork_server(server)
        });
        let jobs = Jobs::new(config.max_workers, forked_runs);
        let store = Arc::new(schedules::store::ScheduleStore::open(
            &data_dir.join("schedules.db"),
        )?);
        let clock: Arc<dyn crate::schedule::Clock> = Arc::new(crate::schedule::SystemClock);
        let launcher =
            schedules::launcher::ServerLauncher::new(projects.clone(), jobs.clone(), has_kfp);
        let (scheduler, handle) =
            schedules::scheduler::Scheduler::new(store.clone(), Arc::new(launcher), clock.clone());
        let schedules =
            schedules::Schedules::new(store, handle, clock, config.schedule_min_interval);
        Ok(Server {
            listener,
            scheduler,
            state: Arc::new(AppState {
                projects,
                engines,
                has_kfp,
                jobs,
                artifact_path: artifacts.to_string_lossy().into_owned(),
                schedules,
            }),
            token: config.token,
            body_limit: config.body_limit,
        })
    }

    /// The address the server listens on.
    pub fn local_addr(&self) -> Result<SocketAddr> {
        self.listener
            .local_addr()
            .map_err(|e| Error::io("Cannot read the listening address", e))
    }

    /// Answers requests and fires schedules until `shutdown` resolves, then stops taking
    /// requests, stops the runs and workflows still executing (each records its end) and
    /// returns. Records a previous server left `running` are reconciled in the background from
    /// the start.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send + 'static) -> Result<()> {
        let state = self.state.clone();
        let survey = reconcile::survey(&state).await;
        let reconcile = tokio::spawn(reconcile::settle_after_leases(state.clone(), survey));
        let jobs_stop = state.jobs.stopper();
        let scheduler = tokio::spawn(self.scheduler.run(jobs_stop.clone()));
        let app = router(state.clone(), self.token, self.body_limit);
        axum::serve(self.listener, app)
            .with_graceful_shutdown(async move {
                shutdown.await;
                tracing::info!("shutting down: no new requests; stopping runs and workflows");
                jobs_stop.cancel();
            })
            .await
            .map_err(|e| Error::io("The server stopped", e))?;
        reconcile.abort();
        let _ = scheduler.await;
        state.jobs.shutdown(SHUTDOWN_GRACE).await;
        Ok(())
    }
}

/// The whole API: `GET /healthz` (never behind the token), MLRun's routes under `/api`, and
/// the web pages (behind the same token, see [`crate::web::Access`]).
fn router(state: Arc<AppState>, token: Option<Token>, body_limit: usize) -> Router {
    let access = match token.clone() {
        Some(token) => crate::web::Access::with_token(Arc::new(move |t| token.matches(t))),
        None => crate::web::Access::open(),
    };
    let pages = crate::web::router(Arc::new(web::ServerSource(state.clone())), access);
    let api = mlrun::routes()
        .merge(native::routes())
        .merge(schedules::routes::routes())
        .fallback(api_error::unknown_route)
        .layer(axum::middleware::from_fn_with_state(
            Arc::new(token),
            auth::require_token,
        ));
    Router::new()
        .route("/healthz", get(healthz))
        .merge(api)
        .with_state(state)
        .merge(pages)
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(DefaultMakeSpan::new().level(Level::INFO))
                .on_response(DefaultOnResponse::new().level(Level::INFO)),
        )
}

async fn healthz() -> &'static str {
    "ok"
}
