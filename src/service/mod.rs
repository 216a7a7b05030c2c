//! The service: one core that the CLI (and the coming server) call.
//!
//! A [`Baton`] holds the parts a request needs, built once and injected: the project (its
//! definition and home), the metadata database behind the [`Db`] trait, where code comes from
//! ([`CodeSources`]: the datastore and the digest cache), and the [`LogStore`]. Each method is
//! one use case (log a code artifact, describe a function, run a function, follow a log, pull
//! code, ...) and returns plain data; printing and exit codes stay with the caller, so a CLI
//! command is parse, one call, print.

mod artifacts;
mod functions;
mod remote;
mod runs;
mod step_executor;
mod workflows;

use std::sync::Arc;

use crate::db::Db;
use crate::engine::EngineRegistry;
use crate::error::Result;
use crate::logs::LogStore;
use crate::project::Project;
use crate::runner::CodeSources;

pub use artifacts::PulledCode;
pub use functions::FunctionDescription;
pub use remote::RemoteWorkflowRun;
pub use runs::SubmittedRun;
pub use step_executor::RunnerExecutor;
pub use workflows::{step_interpreter, Termination};

/// The core of baton for one project: see the module docs.
pub struct Baton {
    project: Project,
    db: Arc<dyn Db>,
    code: CodeSources,
    logs: LogStore,
    /// Built on first use (the local engine resolves the interpreter its steps run), then
    /// shared by every run of this service.
    engines: tokio::sync::OnceCell<EngineRegistry>,
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
            code,
            logs,
            engines: tokio::sync::OnceCell::new(),
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
