//! The server's side of the web pages ([`crate::web`]): its projects, the engines hosting its
//! runs, and its jobs following retries.

use std::sync::Arc;

use async_trait::async_trait;

use super::schedules::store::{Fire, ScheduleRecord};
use super::AppState;
use crate::engine::EngineRegistry;
use crate::error::Result;
use crate::project::WorkflowRunHandle;
use crate::service::Baton;
use crate::web::{FireView, ScheduleAction, ScheduleView, WebSource};

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

    async fn schedules(&self, project: &str) -> Result<Option<Vec<ScheduleView>>> {
        let listed = self.0.schedules.list(project).await?;
        Ok(Some(listed.into_iter().map(schedule_view).collect()))
    }

    async fn schedule_action(
        &self,
        project: &str,
        name: &str,
        action: ScheduleAction,
    ) -> Result<()> {
        let schedules = &self.0.schedules;
        match action {
            ScheduleAction::Trigger => schedules.trigger(project, name).await.map(drop),
            ScheduleAction::Pause(note) => schedules.pause(project, name, note).await.map(drop),
            ScheduleAction::Resume => schedules.resume(project, name).await.map(drop),
        }
    }
}

fn schedule_view(s: ScheduleRecord) -> ScheduleView {
    ScheduleView {
        project: s.project,
        name: s.name,
        workflow: s.spec.workflow,
        cron: s.spec.schedule,
        timezone: s.spec.timezone,
        next_fire: s.next_fire,
        last_fire: s.last_fire.map(fire_view),
        paused: s.paused,
        note: s.note,
    }
}

fn fire_view(f: Fire) -> FireView {
    FireView {
        scheduled: f.scheduled,
        state: f.state.word().to_string(),
        detail: f.detail,
        run_id: f.run_id,
    }
}
