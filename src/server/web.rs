//! The server's side of the web pages ([`crate::web`]): its projects, the engines hosting its
//! runs, and its jobs following retries.

use std::sync::Arc;

use async_trait::async_trait;

use super::schedules::Schedules;
use super::AppState;
use crate::engine::EngineRegistry;
use crate::error::Result;
use crate::project::WorkflowRunHandle;
use crate::service::Baton;
use crate::web::WebSource;

/// The pages over a server's state.
pub struct ServerSource(pub Arc<AppState>);

#[async_trait]
impl WebSource for ServerSource {
    fn projects(&self) -> Result<Vec<String>> {
        self.0.projects.names()
    }

    async fn baton(&self, name: &str) -> Result<Baton> {
        self.0.projects.baton(name).await
    }

    fn engines(&self) -> Option<EngineRegistry> {
        Some(self.0.engines.clone())
    }

    fn follow(&self, baton: Baton, handle: WorkflowRunHandle) {
        self.0.jobs.follow_workflow(baton, handle, None);
    }

    fn schedules(&self) -> Option<&Schedules> {
        Some(&self.0.schedules)
    }
}
