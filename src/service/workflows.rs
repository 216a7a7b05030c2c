//! Workflows: define them, run and retry them, read and terminate their runs, draw their graph.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use super::step_executor::RunnerExecutor;
use super::Baton;
use crate::engine::{EngineKind, EngineRegistry, WorkflowRunRequest, WorkflowState};
use crate::engines::kfp::{CompileFn, KfpEngine};
use crate::engines::local::LocalEngine;
use crate::error::{Error, Result};
use crate::kfp::{configured_image, CompileOptions};
use crate::model::{WorkflowRunRecord, WorkflowRunSummary, WorkflowSpec};
use crate::project::{PreparedWorkflow, RunWorkflowOptions, SetWorkflowRequest, WorkflowRunHandle};
use crate::runner::{ForkServer, Isolation, PythonRunner};
use crate::workflow::{Dag, PYTHON_ENV};

/// How long a finished run waits, once steps were canceled, for their runners to record their
/// runs and exit before they are killed.
const RUNNER_GRACE: Duration = Duration::from_secs(10);

/// What asking a workflow run to terminate did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Termination {
    /// The run had already ended, in this state.
    AlreadyEnded(WorkflowState),
    /// The run was asked to stop; its driver stops its steps.
    Requested,
}

impl Baton {
    /// Validates a workflow definition and writes it into the project, replacing a workflow of
    /// the same name.
    pub async fn set_workflow(&mut self, request: SetWorkflowRequest) -> Result<WorkflowSpec> {
        let db = self.db.clone();
        self.project.set_workflow(db.as_ref(), request).await
    }

    /// How the local engine isolates the steps of this service's runs (default
    /// [`Isolation::Fork`]); takes effect if set before the first run is prepared.
    pub fn set_isolation(&mut self, isolation: Isolation) {
        self.isolation = isolation;
    }

    /// Warm Python workers for this service: with [`Isolation::Fork`] they fork its steps, and
    /// they fork the tracer of its Python workflows whatever the isolation (the tracer runs
    /// baton's code, never a step's). Takes effect if set before the first run is prepared;
    /// without it, each Python workflow is traced by a new interpreter.
    pub fn set_fork_server(&mut self, server: ForkServer) {
        self.fork = Some(server);
    }

    /// The workflow to run when none is named: the project's only one.
    pub fn default_workflow(&self) -> Result<String> {
        let names: Vec<String> = self
            .project
            .workflows()?
            .into_iter()
            .map(|w| w.name)
            .collect();
        match names.as_slice() {
            [only] => Ok(only.clone()),
            [] => Err(Error::invalid_with_hint(
                "Workflow name, path, or handler must be specified: the project has no workflows",
                "define one with `baton set-workflow --name main --path ...`",
            )),
            _ => Err(Error::invalid(format!(
                "Workflow name must be specified: the project has {}",
                names.join(", ")
            ))),
        }
    }

    /// The engines of this process for the project's runs, built once: `local` runs each step
    /// as [`Baton::set_isolation`] says ([`RunnerExecutor`]); `kfp` submits to the configured
    /// Kubeflow Pipelines ([`Baton::with_kfp`]); the others are not available here. With
    /// [`Isolation::Fork`] the warm Python worker starts here, while the caller goes on to
    /// prepare the workflow.
    async fn engines(&self) -> &EngineRegistry {
        self.engines
            .get_or_init(|| async {
                // Forked steps start no interpreter of their own: the worker starts once, and
                // resolving a version manager's shim first would only delay it.
                let python = match self.isolation {
                    Isolation::Fork => None,
                    Isolation::Process => step_interpreter().await,
                };
                let executor = RunnerExecutor::new(
                    self.project.clone(),
                    self.db.clone(),
                    self.runner_db(),
                    self.logs.clone(),
                    python,
                );
                let executor = match (self.isolation, &self.fork) {
                    (Isolation::Fork, Some(server)) => {
                        executor.forked_by(server.clone(), self.code.clone())
                    }
                    (isolation, _) => executor.with_isolation(isolation, self.code.clone()),
                };
                let registry =
                    EngineRegistry::new().with(Arc::new(LocalEngine::new(Arc::new(executor))));
                match self.kfp_engine() {
                    Ok(Some(engine)) => registry.with(Arc::new(engine)),
                    Ok(None) => registry,
                    Err(e) => {
                        tracing::warn!("the kfp engine is not available: {}", e.chain());
                        registry
                    }
                }
            })
            .await
    }

    /// The `kfp` engine over the configured KFP: workflows compile with this project's
    /// functions, and their steps record their runs on [`Baton::pod_api_url`]'s server. Runs are
    /// polled every 2 s, or every `BATON_KFP_POLL` (e.g. `200ms`).
    fn kfp_engine(&self) -> Result<Option<KfpEngine>> {
        let Some(client) = self.kfp.clone() else {
            return Ok(None);
        };
        let functions = self
            .project
            .functions()?
            .into_iter()
            .map(|f| (f.name.clone(), f))
            .collect();
        let api = self.pod_api_url();
        let mut options = CompileOptions::new(self.project.name(), configured_image());
        options.functions = functions;
        if let Some(url) = &api {
            options.env.insert("BATON_API".to_string(), url.clone());
        }
        let compile: CompileFn = Arc::new(move |request: &WorkflowRunRequest| {
            if api.is_none() {
                return Err(Error::invalid_with_hint(
                    "The kfp engine's steps record their runs on a baton server, and none is given",
                    "pass --api http://<server>:8080 (or set BATON_API) to a server the pods can reach",
                ));
            }
            crate::kfp::compile(&request.dag, &options)
        });
        let mut engine = KfpEngine::new(client, compile);
        if let Some(every) = std::env::var("BATON_KFP_POLL")
            .ok()
            .and_then(|text| humantime::parse_duration(&text).ok())
        {
            engine = engine.with_poll_interval(every);
        }
        Ok(Some(engine))
    }

    /// The engine a run of workflow `name` with `options` uses (MLRun's selection rules).
    pub fn workflow_engine(&self, name: &str, options: &RunWorkflowOptions) -> Result<EngineKind> {
        self.project.workflow_engine(name, options)
    }

    /// Resolves workflow `name` (its artifact read now), builds and checks its DAG, merges its
    /// arguments and picks its engine, without starting anything.
    pub async fn prepare_workflow(
        &self,
        name: &str,
        options: &RunWorkflowOptions,
    ) -> Result<PreparedWorkflow> {
        let engines = self.engines().await;
        self.project
            .prepare_workflow(self.db.as_ref(), engines, name, options, self.fork.clone())
            .await
    }

    /// Starts a prepared workflow run and records it; [`Baton::finish_workflow`] follows it.
    pub async fn start_workflow(
        &self,
        prepared: PreparedWorkflow,
        options: &RunWorkflowOptions,
    ) -> Result<WorkflowRunHandle> {
        let engines = self.engines().await;
        self.project
            .start_workflow(&self.db, engines, prepared, options)
            .await
    }

    /// Starts a new run of recorded workflow run `id`, which did not succeed: steps that
    /// succeeded keep their outputs, the others run again.
    pub async fn retry_workflow(
        &self,
        id: &str,
        options: &RunWorkflowOptions,
    ) -> Result<WorkflowRunHandle> {
        let engines = self.engines().await;
        self.project
            .retry_workflow(&self.db, engines, id, options)
            .await
    }

    /// Follows a started run to its end, recording it; `cancel` resolving terminates it. Runners
    /// of canceled steps are then waited for (and killed after a grace period), so nothing of the
    /// run outlives this call.
    pub async fn finish_workflow(
        &self,
        handle: Result<WorkflowRunHandle>,
        cancel: impl Future<Output = ()>,
    ) -> Result<WorkflowRunRecord> {
        let record = match handle {
            Ok(handle) => handle.record(self.db.as_ref(), cancel).await,
            Err(e) => Err(e),
        };
        crate::launcher::reap_stopped_runners(self.db.as_ref(), self.project.name(), RUNNER_GRACE)
            .await?;
        record
    }

    /// The project's workflow runs, newest first; runs whose driver died are settled.
    pub async fn workflow_runs(&self) -> Result<Vec<WorkflowRunRecord>> {
        self.project.workflow_runs(self.db.as_ref()).await
    }

    /// The summaries of the project's workflow runs, newest first; runs whose driver died are
    /// settled.
    pub async fn workflow_run_summaries(&self) -> Result<Vec<WorkflowRunSummary>> {
        self.project.workflow_run_summaries(self.db.as_ref()).await
    }

    /// Workflow run `id`; settled first if its driver died.
    pub async fn workflow_run(&self, id: &str) -> Result<WorkflowRunRecord> {
        self.project.workflow_run(self.db.as_ref(), id).await
    }

    /// Asks workflow run `id` to terminate (its driver, in whatever process, stops its steps).
    pub async fn terminate_workflow(&self, id: &str) -> Result<Termination> {
        let run = self.workflow_run(id).await?;
        if run.state.is_terminal() {
            return Ok(Termination::AlreadyEnded(run.state));
        }
        self.db
            .request_workflow_termination(self.project.name(), id)
            .await?;
        Ok(Termination::Requested)
    }

    /// Workflow `name`'s step graph, its source resolved now.
    pub async fn workflow_dag(&self, name: &str) -> Result<Dag> {
        let spec = self.project.workflow(name)?;
        let (_, dag) = self
            .project
            .load_workflow_dag(self.db.as_ref(), &spec, self.fork.clone())
            .await?;
        Ok(dag)
    }
}

/// The interpreter for every step of a run: `BATON_PYTHON` when set, else the real executable
/// behind `python3`, resolved once here rather than through a version-manager shim per step. A
/// failure to resolve leaves each step to find `python3` itself (and report it).
pub async fn step_interpreter() -> Option<std::path::PathBuf> {
    if std::env::var_os(PYTHON_ENV).is_some_and(|p| !p.is_empty()) {
        return None;
    }
    PythonRunner::from_env()
        .resolve_executable()
        .await
        .inspect_err(|e| tracing::warn!("{e}"))
        .ok()
}
