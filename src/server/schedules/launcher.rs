//! How the server starts a fire's run: the schedule's workflow, resolved afresh, run on this
//! server exactly as a remote workflow run is ([`Jobs::start_workflow`]), labelled with the
//! schedule (`mlrun/schedule-name`) and the fire (`baton/schedule-fire`).

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;

use super::scheduler::{Launcher, RunEnded};
use super::store::{Fire, ScheduleSpec};
use crate::db::RunFilter;
use crate::engine::EngineKind;
use crate::error::Result;
use crate::project::RunWorkflowOptions;
use crate::server::{Jobs, Projects};

pub use crate::model::workflow_run::SCHEDULE_LABEL;

/// The label naming the fire (its scheduled time in epoch milliseconds) that started a run.
pub const FIRE_LABEL: &str = "baton/schedule-fire";

/// Set to `after-fire-recorded`, the server exits as a fire is about to start, right after
/// the fire was recorded: how the crash tests stop it at exactly that point.
const FAULT_ENV: &str = "BATON_TEST_FAULT";

/// Starts fires' runs on this server.
pub struct ServerLauncher {
    projects: Arc<Projects>,
    jobs: Jobs,
    has_kfp: bool,
}

impl ServerLauncher {
    /// Runs fires' workflows from `projects` as `jobs`, on KFP when asked and `has_kfp`.
    pub fn new(projects: Arc<Projects>, jobs: Jobs, has_kfp: bool) -> ServerLauncher {
        ServerLauncher {
            projects,
            jobs,
            has_kfp,
        }
    }
}

/// The labels of `fire`'s run.
fn fire_labels(fire: &Fire) -> BTreeMap<String, String> {
    BTreeMap::from([
        (SCHEDULE_LABEL.to_string(), fire.name.clone()),
        (FIRE_LABEL.to_string(), fire.label()),
    ])
}

#[async_trait]
impl Launcher for ServerLauncher {
    async fn start(&self, spec: &ScheduleSpec, fire: &Fire, ended: RunEnded) -> Result<String> {
        if std::env::var(FAULT_ENV).as_deref() == Ok("after-fire-recorded") {
            tracing::error!(
                "{FAULT_ENV}: exiting after recording the fire of {}",
                fire.scheduled
            );
            std::process::exit(70);
        }
        let baton = self.projects.baton(&fire.project).await?;
        let engine = match spec.engine.as_deref() {
            Some("kfp") if self.has_kfp => EngineKind::Kfp,
            _ => EngineKind::Local,
        };
        let options = RunWorkflowOptions {
            args: spec.args.clone(),
            engine: Some(engine),
            labels: fire_labels(fire),
            ..RunWorkflowOptions::default()
        };
        let on_end = Box::new(move |outcome: &Result<crate::model::WorkflowRunRecord>| {
            let state = match outcome {
                Ok(record) => record.state.to_string(),
                Err(e) => format!("Failed: {e}"),
            };
            ended.report(state);
        });
        self.jobs
            .start_workflow(baton, &spec.workflow, &options, Some(on_end))
            .await
    }

    async fn terminate(&self, project: &str, run_id: &str) -> Result<()> {
        let baton = self.projects.baton(project).await?;
        baton.terminate_workflow(run_id).await.map(|_| ())
    }

    async fn started_before(&self, fire: &Fire) -> Result<Option<String>> {
        let baton = self.projects.baton(&fire.project).await?;
        let labels = fire_labels(fire);
        let runs = baton
            .db()
            .list_workflow_run_summaries(&fire.project)
            .await?;
        if let Some(run) = runs.into_iter().find(|r| r.labels == labels) {
            return Ok(Some(run.id));
        }
        // The server may have died after a step run was recorded but before its workflow run
        // was: the step run names its workflow run.
        let filter = RunFilter {
            labels: labels.into_iter().collect(),
        };
        let steps = baton.db().list_runs(&fire.project, &filter).await?;
        Ok(steps
            .into_iter()
            .find_map(|r| r.metadata.labels.get("workflow").cloned()))
    }
}
