//! The runs and workflows executing on a server, and who stops them.
//!
//! Every run (`submit_job`) and workflow (`workflows/.../submit`) accepted by the server becomes
//! a task tracked here. Function runs wait for one of `max_workers` slots before their runner
//! starts (until then they stay `created`); a workflow's steps are bounded by the workflow's
//! own parallelism. When the server stops, [`Jobs::shutdown`] asks every task to stop: runners
//! get SIGTERM and record their runs `aborted`, workflows are terminated and record
//! `Canceled`, and the tasks are waited for, so a graceful stop leaves nothing `running`.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::db::settle_run;
use crate::model::WorkflowRunRecord;
use crate::model::{RunObject, RunState};
use crate::project::{RunWorkflowOptions, WorkflowRunHandle};
use crate::service::Baton;

/// Told how a workflow run started by [`Jobs::start_workflow`] ended.
pub type OnWorkflowEnd = Box<dyn FnOnce(&crate::Result<WorkflowRunRecord>) + Send>;

/// The server's executing runs and workflows (a clone shares them).
#[derive(Clone)]
pub struct Jobs {
    tasks: TaskTracker,
    stop: CancellationToken,
    slots: Arc<Semaphore>,
}

impl Jobs {
    /// No jobs yet; at most `max_workers` function runs execute at once (at least one).
    pub fn new(max_workers: usize) -> Jobs {
        Jobs {
            tasks: TaskTracker::new(),
            stop: CancellationToken::new(),
            slots: Arc::new(Semaphore::new(max_workers.max(1))),
        }
    }

    /// The token that, once cancelled, stops every job.
    pub fn stopper(&self) -> CancellationToken {
        self.stop.clone()
    }

    /// Executes recorded run `run` of `baton`'s project: waits for a slot, starts its runner
    /// and waits for it, stopping it when the server stops.
    pub fn start_run(&self, baton: Baton, run: RunObject) {
        let stop = self.stop.clone();
        let slots = self.slots.clone();
        self.tasks.spawn(async move {
            let uid = run.metadata.uid.clone();
            let slot = tokio::select! {
                slot = slots.acquire_owned() => slot.ok(),
                () = stop.cancelled() => None,
            };
            let outcome = match slot {
                None => Err(crate::Error::runtime(
                    "The server stopped before the run started",
                )),
                Some(_slot) => match baton.start_run(&run) {
                    Ok(handle) => handle.wait_or_stop(baton.db(), stop.cancelled()).await,
                    Err(e) => Err(e),
                },
            };
            if let Err(err) = outcome {
                tracing::warn!("run `{uid}` failed to execute: {}", err.chain());
                let state = if stop.is_cancelled() {
                    RunState::Aborted
                } else {
                    RunState::Error
                };
                if let Err(e) = settle_run(baton.db(), &run, state, err.to_string()).await {
                    tracing::error!("cannot record the end of run `{uid}`: {}", e.chain());
                }
            }
        });
    }

    /// Runs workflow `name` of `baton`'s project here, the way every remote run is started:
    /// its source resolved now, the run recorded and followed to its end by the server (which
    /// terminates it when stopping), `on_end` told how it ended. Answers the run's id.
    pub async fn start_workflow(
        &self,
        baton: Baton,
        name: &str,
        options: &RunWorkflowOptions,
        on_end: Option<OnWorkflowEnd>,
    ) -> crate::Result<String> {
        let prepared = baton.prepare_workflow(name, options).await?;
        let handle = baton.start_workflow(prepared, options).await?;
        let id = handle.id().to_string();
        self.follow_workflow(baton, handle, on_end);
        Ok(id)
    }

    /// Follows started workflow run `handle` of `baton`'s project to its end, recording it;
    /// the server stopping terminates it.
    pub fn follow_workflow(
        &self,
        baton: Baton,
        handle: WorkflowRunHandle,
        on_end: Option<OnWorkflowEnd>,
    ) {
        let stop = self.stop.clone();
        self.tasks.spawn(async move {
            let id = handle.id();
            let ended = baton.finish_workflow(Ok(handle), stop.cancelled()).await;
            if let Err(err) = &ended {
                tracing::error!("workflow run `{id}` failed: {}", err.chain());
            }
            if let Some(on_end) = on_end {
                on_end(&ended);
            }
        });
    }

    /// Stops every job and waits up to `grace` for them to record their ends. Jobs still
    /// running after that are left to the next start's reconciliation (their runners get
    /// SIGTERM when this process exits).
    pub async fn shutdown(&self, grace: Duration) {
        self.stop.cancel();
        self.tasks.close();
        if tokio::time::timeout(grace, self.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                "{} job(s) did not stop within {}",
                self.tasks.len(),
                humantime::format_duration(grace)
            );
        }
    }
}
