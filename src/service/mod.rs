//! The service: one core that the CLI (and the coming server) call.
//!
//! A [`Baton`] holds the parts a request needs, built once and injected: the project (its
//! definition and home), the metadata database behind the [`Db`] trait, where code comes from
//! ([`CodeSources`]: the datastore and the digest cache), and the [`LogStore`]. Each method is
//! one use case (log a code artifact, describe a function, run a function, follow a log, pull
//! code, ...) and returns plain data; printing and exit codes stay with the caller, so a CLI
//! command is parse, one call, print.

mod artifacts;
mod compile;
mod functions;
mod pod_step;
mod portable;

mod profiles;
mod remote;
mod runs;
mod server_project;
mod step_executor;
mod workflows;

use std::sync::Arc;

use crate::db::{ApiClient, Db, HttpDb};
use crate::engine::EngineRegistry;
use crate::error::Result;
use crate::launcher::RunnerDb;
use crate::logs::LogStore;
use crate::project::Project;
use crate::runner::CodeSources;

pub use artifacts::PulledCode;
pub use functions::FunctionDescription;
pub use pod_step::{run_pod_step, PodStep};
pub use portable::import_project;
pub use remote::{server_engine, RemoteWorkflowRun};
pub use runs::SubmittedRun;
pub use server_project::ensure_server_project;
pub use step_executor::RunnerExecutor;
pub use workflows::{step_interpreter, Termination};

/// The core of baton for one project: see the module docs.
pub struct Baton {
    project: Project,
    db: Arc<dyn Db>,
    /// The server whose database `db` is, when the service works against one.
    server: Option<ApiClient>,
    /// The Kubeflow Pipelines the `kfp` engine submits to, when one is configured.
    kfp: Option<crate::kfp::client::KfpClient>,
    code: CodeSources,
    logs: LogStore,
    /// Built on first use (the local engine resolves the interpreter its steps run), then
    /// shared by every run of this service.
    engines: tokio::sync::OnceCell<EngineRegistry>,
    /// How the local engine isolates steps ([`Baton::set_isolation`]).
    isolation: crate::runner::Isolation,
    /// Warm Python workers for steps and the tracer ([`Baton::set_fork_server`]).
    fork: Option<crate::runner::ForkServer>,
}

impl Baton {
    /// The service over a project on the embedded default: its SQLite database and log folder
    /// in `.baton/`, and the code cache from the environment.
    pub fn open(project: Project) -> Result<Baton> {
        let db = Arc::new(project.open_db()?);
        Ok(Baton::with_parts(project, db, CodeSources::from_env()?))
    }

    /// The service over `project` with its database and code sources given, so a process
    /// serving many requests of one project (`baton server`) shares them instead of opening
    /// them per request. Logs live in the project's `.baton/logs/`.
    pub fn with_parts(project: Project, db: Arc<dyn Db>, code: CodeSources) -> Baton {
        let logs = LogStore::new(project.state_dir().join("logs"));
        Baton {
            project,
            db,
            server: None,
            kfp: None,
            code,
            logs,
            engines: tokio::sync::OnceCell::new(),
            isolation: crate::runner::Isolation::default(),
            fork: None,
        }
    }

    /// The service over `project` with its records on the `baton server` `api` talks to:
    /// runners started here record their runs there too, and logs of runs the server executed
    /// are read from it.
    pub fn with_server(project: Project, api: ApiClient, code: CodeSources) -> Baton {
        let db = Arc::new(HttpDb::with_client(api.clone()));
        Baton {
            server: Some(api),
            ..Baton::with_parts(project, db, code)
        }
    }

    /// The same service with the `kfp` engine submitting to `client`'s Kubeflow Pipelines.
    pub fn with_kfp(self, client: crate::kfp::client::KfpClient) -> Baton {
        Baton {
            kfp: Some(client),
            ..self
        }
    }

    /// How runners started by this service reach its database.
    pub fn runner_db(&self) -> RunnerDb {
        match &self.server {
            Some(api) => RunnerDb::Server {
                url: api.base_url().to_string(),
                token: api.token().map(str::to_string),
            },
            None => RunnerDb::File(self.project.db_path()),
        }
    }

    /// The same service running workflows on `engines` instead of engines of its own, so a
    /// process serving many projects hosts every run in one set of engines (and can find,
    /// follow and terminate any of them by id).
    pub fn with_engines(self, engines: EngineRegistry) -> Baton {
        Baton {
            engines: tokio::sync::OnceCell::new_with(Some(engines)),
            ..self
        }
    }

    /// The project this service serves.
    pub fn project(&self) -> &Project {
        &self.project
    }

    /// The metadata database.
    pub fn db(&self) -> &dyn Db {
        self.db.as_ref()
    }

    /// The database, shareable with tasks that outlive a call.
    pub fn shared_db(&self) -> Arc<dyn Db> {
        self.db.clone()
    }

    /// Where run logs are kept.
    pub fn logs(&self) -> &LogStore {
        &self.logs
    }
}
