//! The pages over one project's embedded database (`baton ui`): no server, runs driven by
//! whichever `baton run` started them, and followed through their records.

use std::sync::Arc;

use async_trait::async_trait;

use super::{ScheduleAction, ScheduleView, WebSource};
use crate::db::Db;
use crate::engine::EngineRegistry;
use crate::error::{Error, Result};
use crate::project::{Project, WorkflowRunHandle};
use crate::runner::CodeSources;
use crate::service::Baton;

/// One project, its database opened once and shared by every request.
pub struct EmbeddedSource {
    project: Project,
    db: Arc<dyn Db>,
    code: CodeSources,
    /// Retries started from the pages, followed until they end or [`EmbeddedSource::shutdown`].
    retries: tokio_util::task::TaskTracker,
    stop: tokio_util::sync::CancellationToken,
}

impl EmbeddedSource {
    /// The pages of `project`, over its embedded database.
    pub fn open(project: Project) -> Result<EmbeddedSource> {
        let db: Arc<dyn Db> = Arc::new(project.open_db()?);
        Ok(EmbeddedSource {
            project,
            db,
            code: CodeSources::from_env()?,
            retries: tokio_util::task::TaskTracker::new(),
            stop: tokio_util::sync::CancellationToken::new(),
        })
    }

    /// Terminates the retries started from the pages and waits for them to record their end,
    /// as `baton run` does with its run when interrupted.
    pub async fn shutdown(&self) {
        self.stop.cancel();
        self.retries.close();
        self.retries.wait().await;
    }
}

#[async_trait]
impl WebSource for EmbeddedSource {
    fn projects(&self) -> Result<Vec<String>> {
        Ok(vec![self.project.name().to_string()])
    }

    async fn baton(&self, name: &str) -> Result<Baton> {
        if name != self.project.name() {
            return Err(Error::not_found(format!(
                "Project `{name}` not found: this page shows project `{}`",
                self.project.name()
            )));
        }
        Ok(Baton::with_parts(
            self.project.clone(),
            self.db.clone(),
            self.code.clone(),
        ))
    }

    fn engines(&self) -> Option<EngineRegistry> {
        None
    }

    fn follow(&self, baton: Baton, handle: WorkflowRunHandle) {
        let stop = self.stop.clone();
        self.retries.spawn(async move {
            let id = handle.id();
            if let Err(e) = baton.finish_workflow(Ok(handle), stop.cancelled()).await {
                tracing::error!("workflow run `{id}` failed: {}", e.chain());
            }
        });
    }

    async fn schedules(&self, _project: &str) -> Result<Option<Vec<ScheduleView>>> {
        Ok(None)
    }

    async fn schedule_action(&self, _: &str, _: &str, _: ScheduleAction) -> Result<()> {
        Err(Error::not_found(
            "Schedules live on a `baton server`; this page has none",
        ))
    }
}
