//! [`RunnerExecutor`]: the local engine's steps, each run as a function run through
//! `baton runner`, exactly as `baton run-function` runs one.

use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use serde_json::{Map, Value};

use crate::db::Db;
use crate::engine::{StepExecutor, StepInvocation, StepOutcome};
use crate::launcher::{self, RunRequest};
use crate::logs::LogStore;
use crate::model::RunState;
use crate::project::Project;
use crate::workflow::StepAction;

/// Executes workflow steps as recorded function runs labelled `workflow=<id>`.
///
/// A step whose future is dropped (timeout, terminate) drops its [`launcher::RunHandle`], which
/// stops the runner; the runner aborts the handler and records the run as `aborted`.
pub struct RunnerExecutor {
    project: Project,
    db: Arc<dyn Db>,
    runner_db: launcher::RunnerDb,
    logs: LogStore,
    python: Option<PathBuf>,
}

impl RunnerExecutor {
    /// An executor for the steps of `project`'s workflows, recorded in `db` (which runners reach
    /// as `runner_db`), their logs kept in `logs`; `python` is the interpreter every step's
    /// runner uses (else `BATON_PYTHON`, else `python3`).
    pub fn new(
        project: Project,
        db: Arc<dyn Db>,
        runner_db: launcher::RunnerDb,
        logs: LogStore,
        python: Option<PathBuf>,
    ) -> Self {
        RunnerExecutor {
            project,
            db,
            runner_db,
            logs,
            python,
        }
    }

    async fn run_function(&self, invocation: &StepInvocation) -> crate::Result<StepOutcome> {
        let step = &invocation.step;
        let request = RunRequest {
            function: step.function.clone(),
            handler: step.handler.clone(),
            params: step.params.clone().into_iter().collect(),
            inputs: step
                .inputs
                .iter()
                .map(|(k, v)| (k.clone(), input_text(v)))
                .collect(),
            // The run's labels, then the two that link the step run to the workflow run.
            labels: invocation
                .labels
                .clone()
                .into_iter()
                .chain([
                    ("workflow".to_string(), invocation.workflow_id.clone()),
                    ("workflow-step".to_string(), step.name.clone()),
                ])
                .collect(),
            uid: None,
        };
        let run = launcher::submit(&self.project, self.db.as_ref(), request).await?;
        invocation.report_run(&run.metadata.uid);
        let log = self.logs.path(&run.metadata.uid);
        let handle = launcher::start(
            &self.project,
            &self.runner_db,
            &run,
            self.python.as_deref(),
            &log,
        )?;
        tracing::trace!(step = %step.name, uid = %run.metadata.uid, "runner started");
        let run = handle.wait(self.db.as_ref()).await?;
        tracing::trace!(step = %step.name, uid = %run.metadata.uid, state = %run.status.state, "runner ended");
        let uid = run.metadata.uid.clone();
        if run.status.state != RunState::Completed {
            let error = run
                .status
                .error
                .unwrap_or_else(|| format!("run ended in state `{}`", run.status.state));
            let outcome = StepOutcome::failed(format!("run `{uid}`: {error}")).with_run_uid(uid);
            return Ok(match run.status.failure_kind {
                Some(kind) if !kind.is_retryable() => outcome.not_retryable(),
                _ => outcome,
            });
        }
        Ok(StepOutcome::succeeded(run.step_outputs()).with_run_uid(uid))
    }
}

/// An input value as the URL or path text a run takes.
fn input_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[async_trait]
impl StepExecutor for RunnerExecutor {
    async fn execute(&self, invocation: StepInvocation) -> StepOutcome {
        let result = match invocation.step.action {
            StepAction::Run => self.run_function(&invocation).await,
            StepAction::Build => self
                .project
                .build_function(self.db.as_ref(), &invocation.step.function, None)
                .await
                .map(|out| {
                    let mut outputs = Map::new();
                    outputs.insert(
                        "build_context".into(),
                        out.dir.to_string_lossy().into_owned().into(),
                    );
                    StepOutcome::succeeded(outputs)
                }),
            // `LocalEngine::check` refuses deploy steps before a run starts.
            StepAction::Deploy => Ok(StepOutcome::failed(format!(
                "the local engine cannot deploy function `{}`",
                invocation.step.function
            ))
            .not_retryable()),
        };
        result.unwrap_or_else(|err| {
            let outcome = StepOutcome::failed(err.chain().to_string());
            match crate::runner::failure_kind_of(&err) {
                Some(kind) if !kind.is_retryable() => outcome.not_retryable(),
                _ => outcome,
            }
        })
    }
}
