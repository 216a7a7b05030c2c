//! Workflows run on a `baton server` (the `remote` engines): submitted by name, resolved and
//! recorded there, followed from here through the server's event stream.

use std::future::Future;
use std::time::Duration;

use futures::StreamExt;

use super::Baton;
use crate::engine::wire::{WorkflowRetryBody, WorkflowSubmitBody};
use crate::engine::{InnerEngine, Subscription, WorkflowEngine, WorkflowRunId};
use crate::engines::remote::RemoteEngine;
use crate::error::{Error, Result};
use crate::model::WorkflowRunRecord;
use crate::project::RunWorkflowOptions;
use crate::workflow::{Dag, DagCheck, WorkflowGraph};

/// How often the final record is looked for once the run's events ended (the server stores it
/// right after the last event).
const RECORD_POLL: Duration = Duration::from_millis(100);

/// How long the final record may take to appear.
const RECORD_WAIT: Duration = Duration::from_secs(30);

/// A workflow run on a server, followed from this process.
pub struct RemoteWorkflowRun {
    engine: RemoteEngine,
    project: String,
    record: WorkflowRunRecord,
    dag: Dag,
}

impl Baton {
    /// Runs workflow `name` on the server `remote` talks to, with the server-side engine
    /// `inner` (the server's choice when `None`). The project's definition is sent along (its
    /// artifact path made absolute, so the server reads the payloads this machine wrote), so
    /// the server runs the functions and workflows defined here; the workflow's source is
    /// resolved there, when the run starts.
    pub async fn submit_remote_workflow(
        &self,
        remote: &RemoteEngine,
        name: &str,
        inner: Option<InnerEngine>,
        options: &RunWorkflowOptions,
    ) -> Result<RemoteWorkflowRun> {
        let engine = server_engine(inner);
        let mut file = self.project.file.clone();
        file.spec.artifact_path = Some(self.project.resolve_artifact_path(None));
        let body = WorkflowSubmitBody {
            args: options.args.clone(),
            engine,
            parallelism: options.parallelism,
            timeout_ms: options.timeout.map(millis),
            allow_extra_args: options.allow_extra_args,
            project: Some(file),
        };
        let record = remote
            .submit_workflow(self.project.name(), name, &body)
            .await?;
        RemoteWorkflowRun::new(remote.clone(), record)
    }

    /// Runs again on the server what did not succeed in its recorded run `id`.
    pub async fn retry_remote_workflow(
        &self,
        remote: &RemoteEngine,
        id: &str,
        options: &RunWorkflowOptions,
    ) -> Result<RemoteWorkflowRun> {
        let body = WorkflowRetryBody {
            parallelism: options.parallelism,
            timeout_ms: options.timeout.map(millis),
        };
        let record = remote
            .retry_workflow(self.project.name(), id, &body)
            .await?;
        RemoteWorkflowRun::new(remote.clone(), record)
    }
}

/// The engine a server runs a remote workflow with: its local one (`None` lets it choose,
/// which is local too), or its KFP for `remote:kfp` (a server without one refuses the run).
pub fn server_engine(inner: Option<InnerEngine>) -> Option<String> {
    match inner {
        None | Some(InnerEngine::Local) => None,
        Some(InnerEngine::Kfp) => Some("kfp".to_string()),
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

impl RemoteWorkflowRun {
    fn new(engine: RemoteEngine, record: WorkflowRunRecord) -> Result<Self> {
        let graph = record.graph.clone().ok_or_else(|| {
            Error::runtime(format!(
                "The server recorded workflow run `{}` without its graph",
                record.id
            ))
        })?;
        let graph: WorkflowGraph = serde_json::from_value(graph).map_err(|e| {
            Error::runtime_from(format!("The graph of workflow run `{}`", record.id), e)
        })?;
        let dag = Dag::build(graph, &DagCheck::default())?;
        Ok(RemoteWorkflowRun {
            engine,
            project: record.project.clone(),
            record,
            dag,
        })
    }

    /// The workflow that runs.
    pub fn dag(&self) -> &Dag {
        &self.dag
    }

    /// The run's id.
    pub fn id(&self) -> WorkflowRunId {
        self.record.id.clone().into()
    }

    /// The run's status and its events from then on, streamed from the server.
    pub async fn subscribe(&self) -> Result<Subscription> {
        self.engine.subscribe(&self.id()).await
    }

    /// Follows the run to its end and returns its final record; when `cancel` resolves first,
    /// the run is terminated on the server (its steps are aborted there) and still followed to
    /// its end.
    pub async fn finish(self, cancel: impl Future<Output = ()>) -> Result<WorkflowRunRecord> {
        let id = self.id();
        let mut subscription = self.engine.subscribe(&id).await?;
        tokio::pin!(cancel);
        let mut terminating = false;
        loop {
            tokio::select! {
                event = subscription.events.next() => match event {
                    Some(event) => subscription.status.apply(&event),
                    None => break,
                },
                () = &mut cancel, if !terminating => {
                    terminating = true;
                    self.engine.terminate_workflow(&self.project, &self.record.id).await?;
                }
            }
        }
        let deadline = tokio::time::Instant::now() + RECORD_WAIT;
        loop {
            let record = self
                .engine
                .workflow_run(&self.project, &self.record.id)
                .await?;
            if record.state.is_terminal() || tokio::time::Instant::now() >= deadline {
                return Ok(record);
            }
            tokio::time::sleep(RECORD_POLL).await;
        }
    }
}
